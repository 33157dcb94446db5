/* SPDX-License-Identifier: MIT */
/*
 * uhmm/mm.h - address spaces: creation and teardown, the mapping calls with
 * Linux's semantics and errno, the CPU (loads, stores and atomics that walk
 * the page tables and fault like hardware), and introspection.
 *
 * Every call is thread-safe.  Mapping calls return 0 or a negative errno,
 * exactly what the system call returns on Linux (mm_mmap() returns the
 * address or a negative errno).  A NULL @mm, which Linux cannot be given
 * (it would oops), is -EINVAL everywhere (uhmm only).
 */
#ifndef UHMM_MM_H
#define UHMM_MM_H

#include <stdio.h>
#include <sys/mman.h>

#include "uhmm/machine.h"
#include "uhmm/pgtable.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
/* Advice values older libc headers lack (Linux's uapi numbers). */
#ifndef MADV_NORMAL
#define MADV_NORMAL 0
#endif
#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_DONTFORK
#define MADV_DONTFORK 10
#endif
#ifndef MADV_DOFORK
#define MADV_DOFORK 11
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MADV_KEEPONFORK
#define MADV_KEEPONFORK 19
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/**
 * mm_alloc() - create an empty address space on @machine.
 * Return: the mm with mm_users = mm_count = 1, or ERR_PTR(-ENOMEM), or
 * ERR_PTR(-EINVAL) for a NULL @machine (uhmm only).
 */
struct mm_struct *mm_alloc(struct uhmm_machine *machine);
/** mmget() - take a user reference (mm_users). */
void mmget(struct mm_struct *mm);
/** mmget_not_zero() - take a user reference unless the mm is being torn down. */
bool mmget_not_zero(struct mm_struct *mm);
/**
 * mmput() - drop a user reference; the last one unmaps everything, frees
 * every page table, and drops the mm_count reference the users held.
 */
void mmput(struct mm_struct *mm);
/** mmgrab() - pin the struct itself (mm_count). */
void mmgrab(struct mm_struct *mm);
/** mmdrop() - drop an mm_count reference; the last one frees the struct. */
void mmdrop(struct mm_struct *mm);

/**
 * mm_fork() - fork(2) for an address space: a copy-on-write copy of @oldmm.
 * @oldmm: the parent; its mmap_lock is taken for writing.
 *
 * Private anonymous pages and THPs (a PMD stays a PMD) become shared and
 * write-protected on both sides; a later write on either side copies, or
 * reuses a page it is again the only user of.  Shared mappings (shmem,
 * MAP_SHARED files) stay shared: the child maps the same page-cache pages,
 * faulting them in on first touch.  Private file mappings keep their
 * page-cache pages mapped read-only on both sides and their copies COW.
 * VM_DONTCOPY VMAs are left out, VM_WIPEONFORK VMAs come up empty.
 * Exclusive pages that may be pinned for DMA are copied at once.
 *
 * Return: the child (mm_users 1), or ERR_PTR(-ENOMEM), or ERR_PTR(-EINVAL)
 * for a NULL @oldmm (uhmm only).
 */
struct mm_struct *mm_fork(struct mm_struct *oldmm);

/**
 * mm_mmap() - mmap(2) on @mm.
 * @mm: the address space.
 * @addr: hint, or the fixed address with MAP_FIXED / MAP_FIXED_NOREPLACE.
 * @len: bytes, rounded up to pages.
 * @prot: PROT_READ | PROT_WRITE | PROT_EXEC, or PROT_NONE.
 * @flags: MAP_PRIVATE or MAP_SHARED (exactly one; a file also takes
 *         MAP_SHARED_VALIDATE), MAP_ANONYMOUS, MAP_FIXED,
 *         MAP_FIXED_NOREPLACE, MAP_NORESERVE, MAP_POPULATE, and with
 *         MAP_ANONYMOUS MAP_HUGETLB (| MAP_HUGE_2MB): see uhmm/hugetlb.h.
 * @file: the file to map (see uhmm/fs.h), or NULL with MAP_ANONYMOUS (which
 *        ignores @file, as Linux does).  The mapping takes its own
 *        reference.
 * @off: file offset in bytes; must be page aligned.
 *
 * Takes mmap_lock for writing, and the file's i_mmap_rwsem to link the VMA.
 * Private anonymous mappings whose length is a multiple of 2 MiB are placed
 * 2 MiB aligned, as Linux does for THP; shared and file mappings are not
 * (shmem_enabled is "never").
 *
 * MAP_SHARED | MAP_ANONYMOUS maps a new shmem object of @len bytes (fork
 * shares it).  MAP_SHARED of a file maps its page-cache pages; it needs the
 * file open for reading, and for writing too to get VM_MAYWRITE (without
 * it the VMA is a read-only VM_MAYSHARE one, as in Linux).  MAP_PRIVATE of
 * a file maps the page-cache pages read-only and copies one into an
 * anonymous page on the first write to it.  An access to a page past the
 * end of the file raises SIGBUS (-EFAULT from the CPU calls).
 *
 * Unknown @prot bits are ignored, as Linux's mmap ignores them.
 *
 * Return: the address, or -EINVAL (zero length, unaligned fixed address or
 * offset, no sharing type), -ENOMEM (length overflows or no room), -EEXIST
 * (MAP_FIXED_NOREPLACE over a mapping), -EBADF (not anonymous and no file),
 * -EACCES (a file not open for reading, or MAP_SHARED with PROT_WRITE of a
 * file not open for writing), -EOVERFLOW (offset plus length past the
 * largest file), -EOPNOTSUPP (MAP_SHARED_VALIDATE with an unknown flag).
 * MAP_HUGETLB (private or shared, see uhmm/hugetlb.h): the length is
 * rounded up to 2 MiB; -EINVAL for a page size other than 2 MiB
 * (MAP_HUGE_1GB) or a fixed address that is not 2 MiB aligned, -ENOMEM
 * when the pool cannot reserve the pages (not with MAP_NORESERVE).
 */
long mm_mmap(struct mm_struct *mm, unsigned long addr, unsigned long len,
	     int prot, int flags, struct file *file, unsigned long off);

/**
 * mm_munmap() - munmap(2) on @mm.  Unmapping part of a PMD-mapped THP splits
 * the PMD; the folio stays large and PTE-mapped, as in Linux.
 * Return: 0, or -EINVAL (unaligned @addr, zero length, range past TASK_SIZE).
 */
int mm_munmap(struct mm_struct *mm, unsigned long addr, unsigned long len);

/**
 * mm_mprotect() - mprotect(2) on @mm.
 * Return: 0, -EINVAL (unaligned @addr, unknown @prot bits), -ENOMEM (the
 * range wraps around, or part of it is unmapped: as in Linux, VMAs before
 * the hole have already been changed), -EACCES (PROT_WRITE on a shared mapping opened
 * read-only).
 */
int mm_mprotect(struct mm_struct *mm, unsigned long addr, unsigned long len, int prot);

/**
 * mm_madvise() - madvise(2) on @mm: MADV_NORMAL, MADV_RANDOM,
 * MADV_SEQUENTIAL, MADV_WILLNEED (accepted, no effect), MADV_DONTNEED,
 * MADV_FREE, MADV_REMOVE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_COLLAPSE.
 * MADV_REMOVE punches a hole in the shmem file behind a shared writable
 * mapping (its pages read zeros afterwards everywhere; private copies
 * stay); it drops mmap_lock around the punch, as Linux does.
 * Return: 0, -EINVAL (bad advice, unaligned, MADV_FREE on a non-anonymous
 * or locked VMA, MADV_COLLAPSE where THP is forbidden, which includes file
 * and shmem VMAs, MADV_REMOVE without a file), -EACCES (MADV_REMOVE on a
 * mapping that is not shared and writable), -EOPNOTSUPP (MADV_REMOVE on a
 * file that cannot punch holes), -ENOMEM (a hole in the range; as in Linux
 * the mapped parts are still advised), -EAGAIN or -ENOMEM from
 * MADV_COLLAPSE.
 */
int mm_madvise(struct mm_struct *mm, unsigned long addr, unsigned long len, int advice);

#ifndef MREMAP_MAYMOVE
#define MREMAP_MAYMOVE 1
#endif
#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

/**
 * mm_mremap() - mremap(2) on @mm, as Linux 6.18 does it.
 * @mm: the address space.
 * @old_addr: page-aligned start of the mapping to remap.
 * @old_len: its length, rounded up to pages (0 duplicates a shared mapping).
 * @new_len: the new length, rounded up to pages.
 * @flags: MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP.
 * @new_addr: the destination (MREMAP_FIXED), or a hint (MREMAP_DONTUNMAP).
 *
 * Shrinks in place, grows in place when the space after the VMA is free,
 * else moves (MREMAP_MAYMOVE): page-table entries move (a PMD whole when
 * both sides cover an aligned PMD), pages are never copied.  MREMAP_FIXED
 * unmaps the destination first; with @old_len == @new_len it may move
 * several VMAs.  MREMAP_DONTUNMAP leaves the old range mapped and empty.
 * Takes mmap_lock for writing.
 *
 * Return: the new address, or -EINVAL (bad flags, alignment or lengths,
 * overlapping ranges, a destination past TASK_SIZE, DONTUNMAP with a
 * resize, @old_len 0 on a private mapping), -EFAULT (no VMA at @old_addr,
 * or the range to keep or grow leaves its VMA), -ENOMEM (no room to grow
 * without MREMAP_MAYMOVE, nowhere to move, out of memory).
 */
long mm_mremap(struct mm_struct *mm, unsigned long old_addr, unsigned long old_len,
	       unsigned long new_len, int flags, unsigned long new_addr);

/* ---- the CPU ---- */
/**
 * cpu_read() - load @len bytes at @addr into @buf, faulting like a CPU.
 *
 * Holds mmap_lock for reading and, while it copies out of a page, that
 * page's page-table lock.  Checks the whole range against the VMAs first, so
 * an access that would raise SIGSEGV anywhere copies nothing.  A page of a
 * file mapping past the end of the file raises SIGBUS when it is reached;
 * the bytes before it have been copied.
 *
 * Return: 0, -EFAULT (no VMA or no permission: SIGSEGV; or SIGBUS; or a
 * NULL @buf with @len above 0, checked first), -ENOMEM (the fault could
 * not allocate: the OOM case), -EINVAL for a NULL @mm (uhmm only).
 */
int cpu_read(struct mm_struct *mm, unsigned long addr, void *buf, size_t len);
/** cpu_write() - store @len bytes from @buf at @addr; see cpu_read(). */
int cpu_write(struct mm_struct *mm, unsigned long addr, const void *buf, size_t len);
/** cpu_memset() - store @len copies of @c at @addr; see cpu_read(). */
int cpu_memset(struct mm_struct *mm, unsigned long addr, int c, size_t len);
/**
 * cpu_atomic_fetch_add_u64() - atomically add @val to the 8 bytes at @addr.
 * @old: where the previous value goes, or NULL.
 * Return: 0, -EINVAL if @addr is not 8-byte aligned, else as cpu_write().
 */
int cpu_atomic_fetch_add_u64(struct mm_struct *mm, unsigned long addr, uint64_t val, uint64_t *old);
/** cpu_atomic_xchg_u64() - atomically store @val, returning the old value in @old. */
int cpu_atomic_xchg_u64(struct mm_struct *mm, unsigned long addr, uint64_t val, uint64_t *old);
/**
 * cpu_atomic_cmpxchg_u64() - compare-and-swap the 8 bytes at @addr.
 * @prev: the value found there (the swap happened if it equals @expected).
 * Note: like a locked cmpxchg on x86, a failed compare still needs write
 * permission and takes a write fault.
 */
int cpu_atomic_cmpxchg_u64(struct mm_struct *mm, unsigned long addr, uint64_t expected,
			   uint64_t desired, uint64_t *prev);

/* ---- introspection ---- */
/* /proc/pid/pagemap bits. */
#define PM_PFRAME_BITS 55
#define PM_PFRAME_MASK ((1ULL << PM_PFRAME_BITS) - 1)
#define PM_SOFT_DIRTY (1ULL << 55)
#define PM_MMAP_EXCLUSIVE (1ULL << 56)
#define PM_UFFD_WP (1ULL << 57)
#define PM_FILE (1ULL << 61)
#define PM_SWAP (1ULL << 62)
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP_TYPE_BITS 5

/**
 * mm_pagemap_read() - /proc/pid/pagemap for @npages pages from @addr.
 * @out: one 64-bit entry per page, Linux's format: PFN (or swap type and
 * offset) in bits 0..54, PM_SOFT_DIRTY, PM_MMAP_EXCLUSIVE (mapped once),
 * PM_FILE, PM_SWAP, PM_PRESENT.  Device-private and migration entries are
 * reported as swap entries, as Linux does.  Pages past TASK_SIZE read 0.
 * Return: 0, or -EINVAL for an unaligned @addr, a NULL @out or an @npages
 * larger than the address space.
 */
int mm_pagemap_read(struct mm_struct *mm, unsigned long addr, unsigned long npages, uint64_t *out);

/* /proc/kpageflags bits. */
#define KPF_LOCKED 0
#define KPF_REFERENCED 2
#define KPF_UPTODATE 3
#define KPF_DIRTY 4
#define KPF_LRU 5
#define KPF_MMAP 11
#define KPF_ANON 12
#define KPF_SWAPCACHE 13
#define KPF_SWAPBACKED 14
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16
#define KPF_HUGE 17 /* a hugetlb page (head or tail) */
#define KPF_NOPAGE 20
#define KPF_THP 22
#define KPF_ZERO_PAGE 24
#define KPF_PGTABLE 26
#define KPF_BUDDY 10
#define KPF_RESERVED 32

/** uhmm_kpageflags() - /proc/kpageflags for @pfn (KPF_NOPAGE if invalid). */
uint64_t uhmm_kpageflags(unsigned long pfn);
/** uhmm_kpagecount() - /proc/kpagecount for @pfn: its mapcount. */
int uhmm_kpagecount(unsigned long pfn);

/**
 * struct mm_smaps - totals of /proc/pid/smaps_rollup, in bytes.
 * The zero pages are not counted in rss, as in Linux; nor are hugetlb
 * pages, which Shared_Hugetlb and Private_Hugetlb count instead.
 */
struct mm_smaps {
	unsigned long rss;
	unsigned long anonymous;
	unsigned long anon_huge_pages; /* PMD-mapped THP */
	unsigned long private_clean;
	unsigned long private_dirty;
	unsigned long shared_clean;
	unsigned long shared_dirty;
	unsigned long swap;
	unsigned long lazy_free;
	unsigned long page_tables; /* bytes of page-table pages (VmPTE) */
	unsigned long shared_hugetlb;  /* hugetlb pages mapped more than once (not in rss) */
	unsigned long private_hugetlb; /* hugetlb pages mapped once (not in rss) */
};

/**
 * mm_smaps_rollup() - fill @out for the whole of @mm.
 * Return: 0, or -EINVAL for a NULL @mm or @out (uhmm only).
 */
int mm_smaps_rollup(struct mm_struct *mm, struct mm_smaps *out);
/**
 * mm_get_rss() - mm's RSS counter @member (MM_ANONPAGES, ...) in pages.
 * Return: the count, or -EINVAL for a NULL @mm or a @member out of range.
 */
long mm_get_rss(struct mm_struct *mm, int member);

/**
 * mm_dump() - print @mm's VMAs and page tables to @out, one line per run of
 * like entries (ptdump style).
 */
void mm_dump(struct mm_struct *mm, FILE *out);

/**
 * struct folio_mapping_info - one mapping of a folio, from folio_rmap_query().
 * @mm: the address space.
 * @address: where the entry maps (the PMD's start for a PMD mapping).
 * @pfn: the page that entry maps.
 * @pmd_mapped: mapped by a PMD leaf.
 * @entry: the raw PTE/PMD value (present, or a migration/device entry).
 */
struct folio_mapping_info {
	struct mm_struct *mm;
	unsigned long address;
	unsigned long pfn;
	bool pmd_mapped;
	uint64_t entry;
};

/**
 * folio_rmap_query() - the reverse map: every (mm, address) whose page
 * tables map a page of @folio, found through its anon_vma tree (anonymous
 * folios) or its file's i_mmap list (page-cache folios, shared and private
 * mappings alike).
 * @folio: the folio (takes the folio lock, then the anon_vma lock or
 *         i_mmap_rwsem, then page-table locks).
 * @out: array of @max records, or NULL with @max 0 to only count.
 * Return: how many entries map the folio (more than @max are counted, not
 * stored); 0 for a folio that is neither anonymous nor in a page cache;
 * -EINVAL (uhmm only) for a NULL @folio, a negative @max, or a NULL @out
 * with @max above 0.
 */
int folio_rmap_query(struct folio *folio, struct folio_mapping_info *out, int max);

/**
 * uhmm_drop_lazyfree() - discard every clean MADV_FREE (lazyfree) page of
 * @machine, as reclaim would under memory pressure; a later read of such a
 * page sees zeros.  Pages written after MADV_FREE are kept.
 * Return: the number of 4 KiB mappings discarded (a page shared by fork
 * counts once per mm that mapped it).
 */
unsigned long uhmm_drop_lazyfree(struct uhmm_machine *machine);

/* ------------------------------------------------------------------ */
/* For drivers: mmap_lock, VMA lookup and faults                       */
/* ------------------------------------------------------------------ */

/** mmap_read_lock() - take @mm's mmap_lock for reading (faults, walks). */
static inline void mmap_read_lock(struct mm_struct *mm) { pthread_rwlock_rdlock(&mm->mmap_lock); }
/** mmap_read_unlock() - drop a read hold of @mm's mmap_lock. */
static inline void mmap_read_unlock(struct mm_struct *mm) { pthread_rwlock_unlock(&mm->mmap_lock); }
/** mmap_write_lock() - take @mm's mmap_lock for writing (VMA changes). */
static inline void mmap_write_lock(struct mm_struct *mm) { pthread_rwlock_wrlock(&mm->mmap_lock); }
/** mmap_write_unlock() - drop a write hold of @mm's mmap_lock. */
static inline void mmap_write_unlock(struct mm_struct *mm) { pthread_rwlock_unlock(&mm->mmap_lock); }

/** find_vma() - the first VMA with vm_end > @addr, or NULL. Needs mmap_lock. */
struct vm_area_struct *find_vma(struct mm_struct *mm, unsigned long addr);
/** vma_lookup() - the VMA containing @addr, or NULL. Needs mmap_lock. */
struct vm_area_struct *vma_lookup(struct mm_struct *mm, unsigned long addr);

/**
 * mm_mmap_device() - mmap(2) of a device file: the driver's @mmap fills a
 * VMA that has no file and no anonymous memory, with vm_insert_page().
 * @mmap runs with mmap_lock held for writing; its error unmaps the VMA.
 * Return: the address or a negative errno, as mm_mmap() (see mm/mmap.c).
 */
long mm_mmap_device(struct mm_struct *mm, unsigned long addr, unsigned long len, int prot,
		    int flags, int (*mmap)(struct vm_area_struct *vma, void *priv), void *priv);
/**
 * vm_insert_page() - map a driver's order-0 RAM page at @addr of @vma
 * (mmap_lock held for writing); the VMA becomes VM_MIXEDMAP and the PTE
 * takes its own reference.  Return: 0, -EFAULT, -EINVAL, -EBUSY, -ENOMEM.
 */
int vm_insert_page(struct vm_area_struct *vma, unsigned long addr, struct page *page);

/* fault flags (Linux's enum fault_flag values) */
#define FAULT_FLAG_WRITE 0x01
#define FAULT_FLAG_REMOTE 0x80 /* GUP or a device, not the CPU */

typedef unsigned int vm_fault_t;
#define VM_FAULT_OOM 0x0001
#define VM_FAULT_SIGBUS 0x0002
#define VM_FAULT_SIGSEGV 0x0040
#define VM_FAULT_RETRY 0x0400
#define VM_FAULT_FALLBACK 0x0800
#define VM_FAULT_ERROR (VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)

/**
 * struct vm_fault - a fault, as handed to vm_ops->fault (file VMAs) and to
 * dev_pagemap_ops->migrate_to_ram (device-private entries).
 * @vma: the VMA; mmap_lock held for reading.
 * @address: the faulting address (page aligned).
 * @pgoff: its page offset in the file (file faults).
 * @flags: FAULT_FLAG_*.
 * @folio: file faults, out: the page-cache folio of @pgoff, locked, with a
 *         reference the caller owns.
 * @page: migrate_to_ram: the device-private page the entry points at,
 *        locked (trylocked by the fault path) and referenced.
 * @pmd: the PMD entry of @address.
 * @pte: migrate_to_ram: the PTE of @address, or NULL when the fault came
 *       through a device-private PMD entry (do_huge_pmd_device_private).
 * @orig_pte: the entry the fault saw.
 */
struct vm_fault {
	struct vm_area_struct *vma;
	unsigned long address;
	unsigned long pgoff;
	unsigned int flags;
	struct folio *folio;
	struct page *page;
	pmd_t *pmd;
	pte_t *pte;
	pte_t orig_pte;
};

#endif /* UHMM_MM_H */
