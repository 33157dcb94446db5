/* SPDX-License-Identifier: MIT */
/*
 * mm/internal.h - what the files of mm/ share and users do not see, as
 * Linux's mm/internal.h.
 *
 * Lock order (DESIGN.md principle 4):
 *   mm->mmap_lock  ->  folio lock  ->  page-table lock (PTE table's ptl, or
 *   the PMD table's ptl)  ->  machine->zone_lock
 * mm->page_table_lock (PGD/PUD population) nests inside mmap_lock and is
 * never held with a split page-table lock.
 *
 * Files add, as in Linux's mm/rmap.c:
 *   inode->i_rwsem  ->  folio lock  ->  mapping->i_mmap_rwsem  ->
 *   anon_vma rwsem  ->  page-table lock
 *   mm->mmap_lock  ->  mapping->i_mmap_rwsem (VMA link, unlink, resize)
 *   folio lock  ->  mapping->i_pages_lock (page-cache index; a leaf apart
 *   from malloc and the zone lock)
 *   machine->mms_lock / machine->inodes_lock  ->  the locks above (audit)
 * Notifiers (mmu_notifier.c): mmu_notifier_invalidate_range_start()/_end()
 * run under mmap_lock or the rmap locks (i_mmap_rwsem, anon_vma lock, folio
 * lock), never under a page-table lock; a driver's invalidate() and the
 * driver lock it takes nest there.  mm->notifier_subscriptions->lock is a
 * leaf.  mmu_interval_read_begin() and mmu_interval_notifier_remove() sleep
 * until invalidations end: no mmap_lock, rmap lock or driver lock held.
 * i_rwsem and mmap_lock are never held together (MADV_REMOVE drops
 * mmap_lock before it punches the hole, as Linux's madvise_remove() does).
 * A reverse-map walk of a file (unmap_mapping_range()) zaps page tables
 * under i_mmap_rwsem alone, without the mms' mmap_locks: it relies on VMA
 * bounds changing only under i_mmap_rwsem held for writing, on VMAs being
 * unlinked from i_mmap before their page tables are freed, and on
 * free_pgtables() never freeing a table that covers part of a file VMA.
 */
#ifndef UHMM_MM_INTERNAL_H
#define UHMM_MM_INTERNAL_H

#include <pthread.h>
#include <stdio.h>

#include "uhmm/mm.h"
#include "uhmm/fs.h"
#include "uhmm/hugetlb.h"
#include "uhmm/mmu_notifier.h"

/* ------------------------------------------------------------------ */
/* The machine (page_alloc.c)                                          */
/* ------------------------------------------------------------------ */

/**
 * struct hstate - the hugetlb pool of 2 MiB pages (Linux's default hstate).
 * @lock: hugetlb_lock; protects the lists and every counter below, and
 *        the reservation maps (mm/hugetlb.c).
 * @free_list: free pool folios (PG_hugetlb, refcount 0), linked by lru.
 * @nr_huge_pages: pool folios, free or in use (HugePages_Total).
 * @free_huge_pages: folios on @free_list (HugePages_Free).
 * @resv_huge_pages: free folios promised to mappings (HugePages_Rsvd).
 * @surplus_huge_pages: folios beyond the persistent size (HugePages_Surp).
 * @nr_overcommit_huge_pages: vm.nr_overcommit_hugepages: how many surplus
 *                            folios reservations and faults may allocate.
 */
struct hstate {
	pthread_mutex_t lock;
	struct list_head free_list;
	unsigned long nr_huge_pages;
	unsigned long free_huge_pages;
	unsigned long resv_huge_pages;
	unsigned long surplus_huge_pages;
	unsigned long nr_overcommit_huge_pages;
};

/**
 * struct uhmm_machine - system RAM, its allocator, its address spaces and
 * its files.
 * @ram: the bytes of system RAM (reserved with MAP_NORESERVE).
 * @start_pfn/@nr_pages: the machine's PFN range.
 * @zone_lock: protects @free_area and @nr_free.
 * @mms_lock: protects @mms, the list of live mm_structs.
 * @inodes_lock: protects @inodes, the list of live inodes (files and the
 *               shmem objects of shared anonymous mappings).
 */
struct uhmm_machine {
	char *ram;
	unsigned long start_pfn;
	unsigned long nr_pages;

	pthread_mutex_t zone_lock;
	struct list_head free_area[NR_PAGE_ORDERS];
	unsigned long nr_free[NR_PAGE_ORDERS];
	atomic_ulong nr_free_pages;

	struct fault_injector fail_page_alloc;

	unsigned long zero_pfn;
	pthread_mutex_t huge_zero_lock;
	struct folio *huge_zero_folio; /* NULL until an mm first needs it */
	int huge_zero_users;           /* mms with MMF_HUGE_ZERO_PAGE */

	_Atomic enum thp_mode thp_enabled;
	bool huge_zero_enabled;

	pthread_mutex_t mms_lock;
	struct list_head mms;
	int nr_mms;

	pthread_mutex_t pgmap_lock; /* protects @pgmaps, @nr_pgmaps (a leaf lock) */
	struct list_head pgmaps;    /* memremapped device memory (struct memremap_info) */
	int nr_pgmaps;

	pthread_mutex_t inodes_lock; /* protects @inodes, @nr_inodes, @last_ino */
	struct list_head inodes;     /* every live inode (inode->i_sb_list) */
	int nr_inodes;
	unsigned long last_ino;

	struct hstate hstate;        /* the hugetlb pool (mm/hugetlb.c) */
};

/* ------------------------------------------------------------------ */
/* Page tables (pgtable.c)                                             */
/* ------------------------------------------------------------------ */

/* Levels recorded in a table page's pt_index. */
#define PT_LEVEL_PTE 1
#define PT_LEVEL_PMD 2
#define PT_LEVEL_PUD 3
#define PT_LEVEL_PGD 4

/**
 * pt_alloc_table() - allocate a zeroed page-table page of @level for @mm.
 * Accounts mm->pgtables_bytes.  Return: the table, or NULL on -ENOMEM.
 */
uint64_t *pt_alloc_table(struct mm_struct *mm, int level);
/** pt_free_table() - free a table page that no entry points to any more. */
void pt_free_table(struct mm_struct *mm, uint64_t *table);
/**
 * vm_normal_page() - the page a present PTE of @mm maps, or NULL for a
 * non-present entry, the zero page or a special mapping (as Linux's).
 */
static inline struct page *vm_normal_page(const struct mm_struct *mm, pte_t pte)
{
	if (!pte_present(pte) || pte_special(pte) || pte_pfn(pte) == mm->machine->zero_pfn)
		return NULL;
	return pfn_to_page(pte_pfn(pte));
}
/** machine_virt_to_page() - the struct page of an address inside @machine's RAM. */
static inline struct page *machine_virt_to_page(const struct uhmm_machine *machine, const void *addr)
{
	return pfn_to_page(machine->start_pfn +
			   (unsigned long)((const char *)addr - machine->ram) / PAGE_SIZE);
}
/** machine_pfn_to_virt() - the bytes of @pfn, a page of @machine's RAM. */
static inline void *machine_pfn_to_virt(const struct uhmm_machine *machine, unsigned long pfn)
{
	return machine->ram + ((pfn - machine->start_pfn) << PAGE_SHIFT);
}
/** pt_table_page() - the struct page of a page-table page of @mm. */
static inline struct page *pt_table_page(const struct mm_struct *mm, const void *table)
{
	return machine_virt_to_page(mm->machine, table);
}
/** pt_entry_table() - the table a non-leaf entry value of @mm points to. */
static inline uint64_t *pt_entry_table(const struct mm_struct *mm, uint64_t entry)
{
	return machine_pfn_to_virt(mm->machine,
				   (unsigned long)((entry & PTE_PFN_MASK) >> PAGE_SHIFT));
}

/* Lock-free reads and writes of entries: walkers without the ptl read them. */
static inline pte_t ptep_get(pte_t *ptep) { return __pte(__atomic_load_n(&ptep->pte, __ATOMIC_ACQUIRE)); }
static inline void set_pte(pte_t *ptep, pte_t pte) { __atomic_store_n(&ptep->pte, pte.pte, __ATOMIC_RELEASE); }
static inline pmd_t pmdp_get(pmd_t *pmdp) { return __pmd(__atomic_load_n(&pmdp->pmd, __ATOMIC_ACQUIRE)); }
static inline void set_pmd(pmd_t *pmdp, pmd_t pmd) { __atomic_store_n(&pmdp->pmd, pmd.pmd, __ATOMIC_RELEASE); }
static inline pte_t ptep_get_and_clear(pte_t *ptep) { return __pte(__atomic_exchange_n(&ptep->pte, 0, __ATOMIC_ACQ_REL)); }
static inline pmd_t pmdp_get_and_clear(pmd_t *pmdp) { return __pmd(__atomic_exchange_n(&pmdp->pmd, 0, __ATOMIC_ACQ_REL)); }

/**
 * pmd_off_alloc() / pmd_off() - the PMD slot covering @addr, allocating the
 * PUD and PMD tables when asked (under mm->page_table_lock / the PUD's ptl).
 * Needs mmap_lock.  Return: the slot, or NULL (not present / -ENOMEM).
 */
pmd_t *pmd_off_alloc(struct mm_struct *mm, unsigned long addr);
pmd_t *pmd_off(struct mm_struct *mm, unsigned long addr);
/**
 * pte_alloc() - make sure the PMD slot points to a PTE table.
 * Needs mmap_lock.  Return: 0; 1 if the PMD is a leaf or swap entry (huge);
 * -ENOMEM.
 */
int pte_alloc(struct mm_struct *mm, pmd_t *pmd);
/**
 * pte_offset_map_lock() - lock the PTE table under @pmd, return @addr's slot.
 * Return: the slot with *@ptlp locked, or NULL (and nothing locked) when the
 * PMD no longer points to a PTE table.  Needs mmap_lock.
 */
pte_t *pte_offset_map_lock(struct mm_struct *mm, pmd_t *pmd, unsigned long addr,
			   pthread_mutex_t **ptlp);
/** pte_lockptr() - the ptl of the PTE table @pmd points to (no check). */
pthread_mutex_t *pte_lockptr(struct mm_struct *mm, pmd_t pmd);
/** pmd_lockptr() - the ptl of the PMD table that holds the slot @pmd. */
pthread_mutex_t *pmd_lockptr(struct mm_struct *mm, pmd_t *pmd);
/** pmd_lock() - lock and return pmd_lockptr(@pmd). */
pthread_mutex_t *pmd_lock(struct mm_struct *mm, pmd_t *pmd);
static inline void spin_unlock(pthread_mutex_t *ptl) { pthread_mutex_unlock(ptl); }
/**
 * pgtable_trans_huge_deposit() - keep @pgtable (a PTE table) with the PMD
 * leaf at @pmd, so that splitting that PMD later needs no allocation.
 * Needs the PMD's ptl.
 */
void pgtable_trans_huge_deposit(struct mm_struct *mm, pmd_t *pmd, uint64_t *pgtable);
/** pgtable_trans_huge_withdraw() - take back a deposited PTE table. Needs the PMD's ptl. */
uint64_t *pgtable_trans_huge_withdraw(struct mm_struct *mm, pmd_t *pmd);
/**
 * try_to_free_pte() - free the PTE table under @pmd if all its entries are
 * none.  Needs mmap_lock for writing and the VMA's reverse-map locks.
 * Return: true when it was freed.
 */
bool try_to_free_pte(struct mm_struct *mm, pmd_t *pmd);
/**
 * free_pgtables() - free every PTE, PMD and PUD table that covers part of
 * [@start, @end), has no entry left and lies wholly inside [@floor,
 * @ceiling) (@ceiling 0: no upper limit).  The callers pass the bounds of
 * the nearest file VMAs, whose tables a file's reverse-map walk may be
 * reading without this mm's mmap_lock (Linux's floor/ceiling).
 * Needs mmap_lock for writing; the range's VMAs are already unlinked.
 */
void free_pgtables(struct mm_struct *mm, unsigned long start, unsigned long end,
		   unsigned long floor, unsigned long ceiling);
/** free_all_pgtables() - exit_mmap: free the whole tree including the PGD. */
void free_all_pgtables(struct mm_struct *mm);

/* ---- walk_page_range() (pagewalk.c) ---- */
struct mm_walk {
	struct mm_struct *mm;
	void *private;
};
#define WALK_SKIP_PTES 1
struct mm_walk_ops {
	int (*pmd_entry)(pmd_t *pmd, unsigned long addr, unsigned long next, struct mm_walk *walk);
	int (*pte_entry)(pte_t *pte, unsigned long addr, unsigned long next, struct mm_walk *walk);
	int (*pte_hole)(unsigned long addr, unsigned long next, struct mm_walk *walk);
};
int walk_page_range(struct mm_struct *mm, unsigned long start, unsigned long end,
		    const struct mm_walk_ops *ops, void *private);

/* vm_get_page_prot() - the present-entry bits for @vm_flags (RW only for shared writable). */
uint64_t vm_get_page_prot(unsigned long vm_flags);

/*
 * maybe_pmd_mkwrite() - @pmd made writable when @vma is VM_WRITE; a fault
 * in a read-only VMA (PROT_READ, PROT_READ|PROT_EXEC) maps read-only.
 * Return: the new entry.
 */
static inline pmd_t maybe_pmd_mkwrite(pmd_t pmd, const struct vm_area_struct *vma)
{
	return (vma->vm_flags & VM_WRITE) ? pmd_mkwrite(pmd) : pmd;
}

/* ------------------------------------------------------------------ */
/* VMAs (mmap.c)                                                       */
/* ------------------------------------------------------------------ */

/* find_vma() and vma_lookup() are public: uhmm/mm.h. */
/** vma_index() - position of the first VMA with vm_end > @addr in mm_mt. */
size_t vma_index(struct mm_struct *mm, unsigned long addr);
/* vm.max_map_count: the most VMAs one mm may have. */
#define MAX_MAP_COUNT 65530

/* The VMA tree and placement (mmap.c); all need mmap_lock for writing. */
int vma_tree_reserve(struct mm_struct *mm);
void vma_tree_insert_at(struct mm_struct *mm, size_t i, struct vm_area_struct *vma);
void vma_tree_remove_at(struct mm_struct *mm, size_t i);
void vm_area_free(struct vm_area_struct *vma);
/**
 * vm_area_dup() - a copy of @orig for split, fork and mremap: the same
 * fields and a new reference on its file, but no anon_vma links, no
 * anon_vma and not yet on the file's i_mmap (see vma_link_file()).
 * Return: the copy, or NULL on -ENOMEM.
 */
struct vm_area_struct *vm_area_dup(struct vm_area_struct *orig);
/**
 * vma_link_file() - put @vma on its file's i_mmap, just after @after (a VMA
 * of the same file, or NULL for the end), so that a reverse-map walk meets
 * a fork child after its parent.  Takes i_mmap_rwsem for writing; needs
 * @vma's mmap_lock for writing.  No-op for a VMA without a file.
 */
void vma_link_file(struct vm_area_struct *vma, struct vm_area_struct *after);
/** vma_mapping() - the page cache @vma maps, or NULL for an anonymous VMA. */
static inline struct address_space *vma_mapping(const struct vm_area_struct *vma)
{
	return vma->vm_file ? vma->vm_file->f_mapping : NULL;
}
static inline void i_mmap_lock_write(struct address_space *mapping)
{
	pthread_rwlock_wrlock(&mapping->i_mmap_rwsem);
}
static inline void i_mmap_unlock_write(struct address_space *mapping)
{
	pthread_rwlock_unlock(&mapping->i_mmap_rwsem);
}
static inline void i_mmap_lock_read(struct address_space *mapping)
{
	pthread_rwlock_rdlock(&mapping->i_mmap_rwsem);
}
static inline void i_mmap_unlock_read(struct address_space *mapping)
{
	pthread_rwlock_unlock(&mapping->i_mmap_rwsem);
}
/**
 * vma_bounds_lock() / vma_bounds_unlock() - around a change of vm_start,
 * vm_end or vm_pgoff of a VMA that may be on a file's i_mmap: that file's
 * i_mmap_rwsem for writing (nothing for an anonymous VMA).
 */
static inline void vma_bounds_lock(struct vm_area_struct *vma)
{
	if (vma->vm_file)
		i_mmap_lock_write(vma->vm_file->f_mapping);
}
static inline void vma_bounds_unlock(struct vm_area_struct *vma)
{
	if (vma->vm_file)
		i_mmap_unlock_write(vma->vm_file->f_mapping);
}
/**
 * get_unmapped_area() - where a new mapping of @len goes.
 * @file: the file to map, or NULL.
 * @flags: MAP_FIXED, MAP_SHARED: only private anonymous mappings without a
 *         hint are THP aligned (shmem_enabled is "never").
 * Return: the address or -ENOMEM.
 */
long get_unmapped_area(struct mm_struct *mm, struct file *file, unsigned long addr,
		       unsigned long len, unsigned long flags);
/** do_munmap_locked() - munmap [@start, @end). Return: 0 or -ENOMEM (a split failed). */
int do_munmap_locked(struct mm_struct *mm, unsigned long start, unsigned long end);
/**
 * split_vma() - split @vma at @addr (page aligned, strictly inside).
 * Splits a PMD mapping that straddles @addr.  Needs mmap_lock for writing.
 * Return: 0 or -ENOMEM.
 */
int split_vma(struct mm_struct *mm, struct vm_area_struct *vma, unsigned long addr);
/**
 * vma_try_merge_around() - merge the VMA at index @i with compatible
 * neighbours.  Needs mmap_lock for writing.  Return: the surviving VMA.
 */
struct vm_area_struct *vma_try_merge_around(struct mm_struct *mm, size_t i);
/**
 * vma_modify_flags() - new vm_flags for [@start, @end) of @vma, splitting
 * and merging VMAs (mprotect.c); @change_ptes rewrites entry protections.
 * Needs mmap_lock for writing.  Return: 0 or -ENOMEM.
 */
int vma_modify_flags(struct mm_struct *mm, struct vm_area_struct *vma, unsigned long start,
		     unsigned long end, unsigned long newflags, bool change_ptes);
/** linear_page_index() - vm_pgoff-based index of @addr in @vma. */
static inline unsigned long linear_page_index(const struct vm_area_struct *vma, unsigned long addr)
{
	return vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
}
/** is_cow_mapping() - private and possibly writable: writes copy on write. */
static inline bool is_cow_mapping(unsigned long vm_flags)
{
	return (vm_flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE;
}
/** vma_is_anonymous() - no file behind the VMA. */
static inline bool vma_is_anonymous(const struct vm_area_struct *vma) { return !vma->vm_file && !vma->vm_ops; }
/* anon_vma and its chains (rmap.c); see the kernel-doc there. */
int anon_vma_prepare(struct vm_area_struct *vma);
int anon_vma_clone(struct vm_area_struct *dst, struct vm_area_struct *src);
int anon_vma_fork(struct vm_area_struct *vma, struct vm_area_struct *pvma);
void unlink_anon_vmas(struct vm_area_struct *vma);
void put_anon_vma(struct anon_vma *anon_vma);
static inline void get_anon_vma(struct anon_vma *anon_vma) { atomic_fetch_add(&anon_vma->refcount, 1); }
void anon_vma_lock_write(struct anon_vma *anon_vma);
void anon_vma_unlock_write(struct anon_vma *anon_vma);
long vma_address(const struct vm_area_struct *vma, unsigned long pgoff);
/**
 * struct folio_mapping - one page-table entry that maps part of a folio, as
 * folio_walk_mappings() hands it over (ptl held).
 * @pte / @pmd: the slot (one of them is NULL).
 * @entry: its value when found.
 * @page: the first page of the folio it maps.
 * @nr_pages: 1 for a PTE, HPAGE_PMD_NR for a PMD.
 */
struct folio_mapping {
	struct mm_struct *mm;
	struct vm_area_struct *vma;
	unsigned long address;
	pte_t *pte;
	pmd_t *pmd;
	uint64_t entry;
	struct page *page;
	unsigned long nr_pages;
	pthread_mutex_t *ptl;
};
void folio_walk_mappings(struct folio *folio, bool (*visit)(const struct folio_mapping *m, void *arg),
			 void *arg);
void rmap_walk_anon(struct folio *folio,
		    bool (*rmap_one)(struct folio *, struct vm_area_struct *, unsigned long, void *),
		    void *arg);
/**
 * folio_walk_migration_entries() - folio_walk_mappings() that also walks a
 * wholly unmapped folio (its entries are migration entries); the caller
 * keeps the anon_vma alive (mmap_lock, or folio_get_anon_vma()).
 */
void folio_walk_migration_entries(struct folio *folio,
				  bool (*visit)(const struct folio_mapping *m, void *arg), void *arg);
/** folio_get_anon_vma() - a reference on a mapped anon folio's anon_vma, or NULL. */
struct anon_vma *folio_get_anon_vma(struct folio *folio);

/* ------------------------------------------------------------------ */
/* Unmapping (memory.c)                                                */
/* ------------------------------------------------------------------ */

/**
 * zap_page_range() - unmap [@start, @end) inside @vma: clear every entry,
 * drop rmap, refcounts and RSS.  A PMD only partly inside is split first.
 * Needs mmap_lock (read is enough: tables are not freed).
 */
void zap_page_range(struct vm_area_struct *vma, unsigned long start, unsigned long end);
/**
 * zap_page_range_single() - zap_page_range() inside one MMU_NOTIFY_CLEAR
 * invalidation of [@start, @end) in @vma's mm (MADV_DONTNEED).
 */
void zap_page_range_single(struct vm_area_struct *vma, unsigned long start, unsigned long end);
/**
 * struct zap_details - what a file's reverse-map zap leaves alone.
 * @single_folio: only zap entries that map this folio (or NULL: all).
 * @even_cows: also zap anonymous (COWed) pages of private mappings.
 */
struct zap_details {
	struct folio *single_folio;
	bool even_cows;
};
/**
 * unmap_mapping_range() - zap, in every VMA that maps @mapping, the pages
 * of file pages [@first, @first + @nr) (@nr 0: to the end).  Holds
 * i_mmap_rwsem for reading, no mmap_lock.
 * @even_cows: also the private anonymous copies (truncate), not only the
 *             page-cache pages (hole punch).
 */
void unmap_mapping_range(struct address_space *mapping, unsigned long first, unsigned long nr,
			 bool even_cows);
/** unmap_mapping_folio() - zap every mapping of a locked page-cache folio. */
void unmap_mapping_folio(struct folio *folio);

/* ------------------------------------------------------------------ */
/* Faults (memory.c)                                                   */
/* ------------------------------------------------------------------ */

/* FAULT_FLAG_*, vm_fault_t, VM_FAULT_* and struct vm_fault are public: uhmm/mm.h. */

/**
 * handle_mm_fault() - resolve a fault at @addr in @vma.
 * Needs mmap_lock for reading.  Return: 0, VM_FAULT_RETRY (walk again) or
 * an error bit.
 */
vm_fault_t handle_mm_fault(struct vm_area_struct *vma, unsigned long addr, unsigned int flags);
/**
 * do_huge_pmd_device_private() - fault on a device-private PMD entry: the
 * driver's migrate_to_ram() with vmf->pte NULL.  mmap_lock held for reading.
 */
vm_fault_t do_huge_pmd_device_private(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
				      unsigned int flags);
/** vm_fault_to_errno() - -ENOMEM, -EFAULT, ... for a fault result. */
int vm_fault_to_errno(vm_fault_t ret);

/**
 * struct vm_operations_struct - what a file's VMAs do (a subset of Linux's).
 * @name: for messages.
 * @fault: find (or create) the folio behind vmf->pgoff.  Return: 0 with
 *         vmf->folio set, VM_FAULT_SIGBUS past the end of the file,
 *         VM_FAULT_OOM.
 */
struct vm_operations_struct {
	const char *name;
	vm_fault_t (*fault)(struct vm_fault *vmf);
};

/* ------------------------------------------------------------------ */
/* Files and the page cache (filemap.c, shmem.c)                       */
/* ------------------------------------------------------------------ */

/* The most bytes one read or write moves (Linux's MAX_RW_COUNT). */
#define MAX_RW_COUNT ((size_t)(0x7fffffff & PAGE_MASK))

static inline loff_t i_size_read(const struct inode *inode)
{
	return atomic_load(&inode->i_size);
}
static inline void i_size_write(struct inode *inode, loff_t size)
{
	atomic_store(&inode->i_size, size);
}
/** i_size_pages() - pages that hold bytes below i_size (the first index past EOF). */
static inline unsigned long i_size_pages(const struct inode *inode)
{
	return (unsigned long)((i_size_read(inode) + (loff_t)PAGE_SIZE - 1) >> PAGE_SHIFT);
}
static inline bool inode_is_shmem(const struct inode *inode) { return inode->i_flags & S_SHMEM; }

/**
 * page_tree_next() - the first folio of @tree at an index >= *@index, which
 * is updated to its index.  The page-cache lock is held.
 * Return: the folio, or NULL when there is none.
 */
struct folio *page_tree_next(const struct page_tree *tree, unsigned long *index);
/** filemap_get_folio() - the cached folio at @index with a reference, or NULL. */
struct folio *filemap_get_folio(struct address_space *mapping, unsigned long index);
/**
 * filemap_grab_folio() - the cached folio at @index with a reference,
 * adding a zeroed one when there is none.  Takes the page-cache lock.
 * Return: 0 with *@foliop set (not locked), or -ENOMEM.
 */
int filemap_grab_folio(struct address_space *mapping, unsigned long index, struct folio **foliop);
/**
 * filemap_add_folio() - put a new @folio in @mapping at @index with the
 * cache's own reference (nrpages += its pages).  Return: 0, -EEXIST, -ENOMEM.
 */
int filemap_add_folio(struct address_space *mapping, struct folio *folio, unsigned long index);
/**
 * filemap_remove_folio() - take a locked folio out of its page cache and
 * drop the cache's reference (the caller keeps its own).  Its mapping
 * becomes NULL, so a racing fault that locks it next walks again.
 */
void filemap_remove_folio(struct folio *folio);
/**
 * truncate_inode_pages_range() - drop the folios wholly inside [@lstart,
 * @lend] (bytes, @lend inclusive) from the cache, unmapping any that are
 * still mapped, and zero the parts of the partial pages at either end.
 * Takes folio locks; the caller holds i_rwsem (or is the last user).
 */
void truncate_inode_pages_range(struct address_space *mapping, loff_t lstart, loff_t lend);
/**
 * truncate_pagecache() - after i_size shrank to @newsize: unmap everything
 * past it (private copies too), drop it from the cache, unmap again.
 * i_rwsem held.
 */
void truncate_pagecache(struct inode *inode, loff_t newsize);
/** device_vm_ops - the vm_ops of a driver's VMA (mm_mmap_device()): no file, no ->fault. */
extern const struct vm_operations_struct device_vm_ops;
/** file_vm_ops() - the vm_operations_struct of a VMA mapping @file. */
const struct vm_operations_struct *file_vm_ops(const struct file *file);
/**
 * shmem_zero_setup() - MAP_SHARED | MAP_ANONYMOUS: back @vma with a new
 * internal shmem file of the VMA's size ("dev/zero"), vm_pgoff 0.
 * Return: 0 or -ENOMEM.
 */
int shmem_zero_setup(struct vm_area_struct *vma);
/**
 * shmem_punch_hole() - fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
 * on @file: drop [@offset, @offset + @len) from the cache (mappings of it
 * are zapped, private copies kept), zero partial pages.  Takes i_rwsem;
 * the caller holds no mmap_lock.
 * Return: 0, -EBADF (not open for writing), -EOPNOTSUPP (not shmem),
 * -EINVAL (bad range).
 */
int shmem_punch_hole(struct file *file, loff_t offset, loff_t len);

/* ------------------------------------------------------------------ */
/* Reverse map and counters (rmap.c)                                   */
/* ------------------------------------------------------------------ */

static inline void add_mm_counter(struct mm_struct *mm, int member, long value)
{
	atomic_fetch_add(&mm->rss_stat[member], value);
}
/** folio_add_new_anon_rmap() - map a new anon folio: mapping, index, mapcounts, exclusive. */
void folio_add_new_anon_rmap(struct folio *folio, struct vm_area_struct *vma, unsigned long addr,
			     bool pmd_mapped);
/** folio_add_file_rmap_ptes() - @nr more PTE mappings of a page-cache folio's pages from @page. */
void folio_add_file_rmap_ptes(struct folio *folio, struct page *page, int nr);
/** mm_counter_file() - the RSS counter of a page-cache folio: shmem or file. */
static inline int mm_counter_file(const struct folio *folio)
{
	return folio_test_swapbacked(folio) ? MM_SHMEMPAGES : MM_FILEPAGES;
}
/** mm_counter() - the RSS counter a mapping of @folio is counted in. */
static inline int mm_counter(const struct folio *folio)
{
	return folio_test_anon(folio) ? MM_ANONPAGES : mm_counter_file(folio);
}
/**
 * rmap_walk_file() - call @rmap_one for every VMA on @folio's mapping's
 * i_mmap that covers the folio's index (i_mmap_rwsem held for reading).
 * @folio: a locked page-cache folio.
 */
void rmap_walk_file(struct folio *folio,
		    bool (*rmap_one)(struct folio *, struct vm_area_struct *, unsigned long, void *),
		    void *arg);
/** folio_add_anon_rmap_ptes() - @nr more PTE mappings of pages starting at @page. */
void folio_add_anon_rmap_ptes(struct folio *folio, struct page *page, int nr);
/** folio_add_anon_rmap_pmd() - one more PMD mapping of @folio. */
void folio_add_anon_rmap_pmd(struct folio *folio);
/** folio_remove_rmap_ptes() - drop @nr PTE mappings of pages starting at @page. */
void folio_remove_rmap_ptes(struct folio *folio, struct page *page, int nr);
/** folio_remove_rmap_pmd() - drop one PMD mapping of @folio. */
void folio_remove_rmap_pmd(struct folio *folio);
/**
 * folio_convert_pmd_to_ptes_rmap() - the mapcount side of a PMD split:
 * the entire mapping becomes one PTE mapping of each page.
 */
void folio_convert_pmd_to_ptes_rmap(struct folio *folio);

/* ------------------------------------------------------------------ */
/* THP (huge_memory.c, khugepaged.c)                                   */
/* ------------------------------------------------------------------ */

/**
 * thp_vma_allowable() - may a PMD-sized anonymous folio map @haddr in @vma?
 * @enforce_sysfs: honour transparent_hugepage/enabled (false for
 *                 MADV_COLLAPSE, which only respects VM_NOHUGEPAGE).
 */
bool thp_vma_allowable(struct vm_area_struct *vma, unsigned long haddr, bool enforce_sysfs);
/** do_huge_pmd_anonymous_page() - fault on an empty PMD in a THP-eligible range. */
vm_fault_t do_huge_pmd_anonymous_page(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
				      unsigned int flags);
/** do_huge_pmd_wp_page() - write fault on a read-only PMD leaf. */
vm_fault_t do_huge_pmd_wp_page(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr);
/**
 * __split_huge_pmd_locked() - replace the PMD leaf at @pmd (its ptl held)
 * with the deposited PTE table mapping the same pages: zero-page PTEs for the
 * huge zero folio, one PTE per page (and one folio reference each) for a THP;
 * a PMD migration entry becomes 512 migration PTEs of its kind, a
 * device-private PMD 512 device-private PTEs (a reference each, the folio
 * stays large).
 */
void __split_huge_pmd_locked(struct vm_area_struct *vma, pmd_t *pmd, unsigned long haddr);
/**
 * split_huge_pmd() - split the PMD leaf, PMD migration entry or
 * device-private PMD at @pmd (covering @addr), if it is still one.  Never fails: the PTE table was deposited with the leaf.
 * Needs mmap_lock.
 */
void split_huge_pmd(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr);
/** split_huge_pmd_address() - split_huge_pmd() of the PMD covering @addr in @vma. */
void split_huge_pmd_address(struct vm_area_struct *vma, unsigned long addr);
/**
 * zap_huge_pmd() - clear a PMD leaf, PMD migration entry or device-private
 * PMD (ptl taken inside) and release its folio (not for a migration entry:
 * the migrator holds that reference).
 * Return: true, or false when @pmd was no longer one (split meanwhile).
 */
bool zap_huge_pmd(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr);
/**
 * split_folio() - split a large anonymous folio (locked, referenced by the
 * caller) into order-0 folios through the reverse map; zero-filled pages
 * get the shared zero page.  Needs mmap_lock, no page-table lock.
 * Return: 0 (the caller keeps the lock and reference of the head page's
 * folio), or -EBUSY with nothing changed.
 */
int split_folio(struct folio *folio);
/**
 * try_split_folio_put() - trylock @folio, split_folio() it, unlock and put
 * the caller's reference.  Needs mmap_lock.  Return: true when split.
 */
bool try_split_folio_put(struct folio *folio);
/**
 * is_huge_zero_pfn() - @pfn is one of the pages of @machine's huge zero
 * folio.  Lock-free: the folio pointer is published with release semantics.
 */
static inline bool is_huge_zero_pfn(const struct uhmm_machine *machine, unsigned long pfn)
{
	struct folio *zero = __atomic_load_n(&machine->huge_zero_folio, __ATOMIC_ACQUIRE);

	return zero && pfn >= folio_pfn(zero) && pfn < folio_pfn(zero) + HPAGE_PMD_NR;
}
/** mm_get_huge_zero_folio() - the huge zero folio, referenced once per mm. NULL on -ENOMEM. */
struct folio *mm_get_huge_zero_folio(struct mm_struct *mm);
/** mm_put_huge_zero_folio() - drop @mm's reference (exit_mmap). */
void mm_put_huge_zero_folio(struct mm_struct *mm);
/** madvise_collapse() - MADV_COLLAPSE over [@start, @end) of @vma. */
int madvise_collapse(struct vm_area_struct *vma, unsigned long start, unsigned long end);

/* ------------------------------------------------------------------ */
/* Folios (folio.c)                                                    */
/* ------------------------------------------------------------------ */

/** __folio_free() - return a folio whose refcount reached 0 to the buddy allocator. */
void __folio_free(struct folio *folio);
/**
 * folio_wait_locked_unlock() - sleep until @folio is unlocked; @ptl (held,
 * or NULL) is dropped once the caller is registered as a waiter.  Takes no
 * reference.  Lock order: page-table lock -> folio wait-bucket lock (leaf).
 */
void folio_wait_locked_unlock(struct folio *folio, pthread_mutex_t *ptl);
/** prep_compound_folio() - turn the 2^@order pages at @page into a large folio. */
void prep_compound_folio(struct page *page, unsigned int order);

/* page_alloc.c internals the audit uses. */
/**
 * page_alloc_mark_free() - walk the free lists (zone_lock taken inside),
 * set @state[pfn - start_pfn] = AUDIT_FREE for every free page, and report
 * list corruption.  Return: violations found.
 */
int page_alloc_mark_free(struct uhmm_machine *machine, uint8_t *state, FILE *report);
#define AUDIT_UNSEEN 0
#define AUDIT_FREE 1
#define AUDIT_USED 2

/* vmscan.c */
/** folio_mark_lazyfree() - MADV_FREE: make an anon folio discardable while clean. */
void folio_mark_lazyfree(struct folio *folio);

/* ------------------------------------------------------------------ */
/* Unmapping and migration entries (rmap.c, migrate.c)                 */
/* ------------------------------------------------------------------ */

/* try_to_unmap() / try_to_migrate() flags (Linux's enum ttu_flags). */
enum ttu_flags {
	TTU_SPLIT_HUGE_PMD = 0x4, /* split a PMD mapping first */
	TTU_IGNORE_MLOCK = 0x8,
	TTU_SYNC = 0x10,          /* walk every mapping, no trylock shortcuts */
	TTU_HWPOISON = 0x20,
	TTU_BATCH_FLUSH = 0x40,
	TTU_RMAP_LOCKED = 0x80,   /* the caller holds the anon_vma / i_mmap lock */
};

/**
 * try_to_unmap() - remove every mapping of a locked folio through the
 * reverse map: page-cache pages lose their PTEs (dirty moved to the
 * folio), clean lazyfree anon pages are discarded, other anon pages need
 * swap and stay mapped.  Fires MMU_NOTIFY_CLEAR for each mapping.
 * Check folio_mapped() afterwards.
 */
void try_to_unmap(struct folio *folio, enum ttu_flags flags);
/**
 * try_to_migrate() - replace every mapping of a locked folio with a
 * migration entry (writable, readable-exclusive or readable after the
 * PTE), device-private entries included.  Fires MMU_NOTIFY_CLEAR per VMA,
 * as Linux's try_to_migrate_one() does.
 * Check folio_mapped() afterwards.
 */
void try_to_migrate(struct folio *folio, enum ttu_flags flags);

#define RMP_LOCKED 1              /* the caller holds the rmap lock */
#define RMP_USE_SHARED_ZEROPAGE 2 /* map the zero page for zero-filled subpages */
/**
 * remove_migration_ptes() - replace every migration entry that points at
 * @src with a mapping of @dst (the same folio when a migration failed).
 * Both folios locked.
 */
void remove_migration_ptes(struct folio *src, struct folio *dst, int flags);
/**
 * migration_entry_wait() - a fault found a migration entry at @addr:
 * wait until the migrating folio is unlocked.  mmap_lock held for reading.
 */
void migration_entry_wait(struct mm_struct *mm, pmd_t *pmd, unsigned long addr);
/** pmd_migration_entry_wait() - the same for a PMD migration entry. */
void pmd_migration_entry_wait(struct mm_struct *mm, pmd_t *pmd);
/**
 * folio_migrate_mapping() - move @folio's mapping, index and anon state
 * to @newfolio.  Both locked and unmapped.  @extra_count: references the
 * caller expects beyond its own and the mapping's.  Return: 0 or -EAGAIN
 * when the refcount shows another user (a pin, a GUP reference).
 */
int folio_migrate_mapping(struct address_space *mapping, struct folio *newfolio,
			  struct folio *folio, int extra_count);
/** folio_migrate_flags() - copy dirty, uptodate, anon-exclusive and the like. */
void folio_migrate_flags(struct folio *newfolio, struct folio *folio);

/* ------------------------------------------------------------------ */
/* Device memory (memremap.c)                                          */
/* ------------------------------------------------------------------ */

/**
 * free_zone_device_folio() - the refcount of a device folio reached 0:
 * clear its state and hand it to pgmap->ops->folio_free().  Called from
 * folio_put().
 */
void free_zone_device_folio(struct folio *folio);

/* ------------------------------------------------------------------ */
/* hugetlb (hugetlb.c); public part in uhmm/hugetlb.h                  */
/* ------------------------------------------------------------------ */

/**
 * hugetlb_pool_init() - machine creation: set up the hstate and fill the
 * pool with @nr_hugepages pages (0: the default, see uhmm/hugetlb.h).
 */
void hugetlb_pool_init(struct uhmm_machine *machine, unsigned long nr_hugepages);
/**
 * hugetlb_pool_destroy() - machine destruction: give every free pool page
 * back to the buddy allocator.  Return: 0, or -EBUSY (nothing freed) while
 * a hugetlb page is in use or reserved.
 */
int hugetlb_pool_destroy(struct uhmm_machine *machine);
/** free_huge_folio() - the last reference of a hugetlb folio went: back to the pool. */
void free_huge_folio(struct folio *folio);
/**
 * hugetlb_mmap_prepare() - mmap of a new VM_HUGETLB VMA (not yet in the
 * tree, bounds set, 2 MiB aligned): reserve its pages (unless
 * VM_NORESERVE) and, for MAP_SHARED, create its hugetlbfs object.
 * Return: 0, -ENOMEM (not enough free huge pages; nothing changed).
 */
int hugetlb_mmap_prepare(struct vm_area_struct *vma);
/** hugetlb_vm_op_open() - a copy of a hugetlb VMA was made (split, mremap): take its references. */
void hugetlb_vm_op_open(struct vm_area_struct *vma);
/**
 * hugetlb_vm_op_close() - a hugetlb VMA is unmapped for good (munmap,
 * exit): give back the reservations of its range that no fault used.
 */
void hugetlb_vm_op_close(struct vm_area_struct *vma);
/** hugetlb_vm_op_free() - a hugetlb VMA struct is freed: drop its references. */
void hugetlb_vm_op_free(struct vm_area_struct *vma);
/** hugetlb_dup_vma_private() - fork: the child's VMA owns no reservation. */
void hugetlb_dup_vma_private(struct vm_area_struct *vma);
/**
 * move_hugetlb_page_tables() - mremap: move the huge PMDs of [@old_addr,
 * @old_addr + @len) to @new_addr (all 2 MiB aligned).  mmap_lock held for
 * writing.  Return: the bytes moved (less when a table allocation failed).
 */
unsigned long move_hugetlb_page_tables(struct vm_area_struct *old_vma,
				       struct vm_area_struct *new_vma, unsigned long old_addr,
				       unsigned long new_addr, unsigned long len);
/**
 * hugetlb_change_protection() - mprotect: apply @vma's new vm_flags to the
 * huge PMDs of [@start, @end).  mmap_lock held for writing.
 */
void hugetlb_change_protection(struct vm_area_struct *vma, unsigned long start, unsigned long end);
/**
 * hugetlb_fault() - a fault at @addr in a hugetlb VMA: map the whole huge
 * page with a PMD leaf, break COW of a private one.  mmap_lock held for
 * reading; handle_mm_fault() has checked the VMA allows the access.  Return: 0, VM_FAULT_SIGBUS (no page: pool empty, no
 * reservation), VM_FAULT_OOM (no page table).
 */
vm_fault_t hugetlb_fault(struct vm_area_struct *vma, unsigned long addr, unsigned int flags);
/**
 * unmap_hugepage_range() - clear the huge PMDs of [@start, @end) (2 MiB
 * aligned) in @vma and release their folios.  mmap_lock held.
 */
void unmap_hugepage_range(struct vm_area_struct *vma, unsigned long start, unsigned long end);
/**
 * copy_hugetlb_page_range() - fork: share @src_vma's huge pages with the
 * child (write-protecting private ones).  Return: 0 or -ENOMEM.
 */
int copy_hugetlb_page_range(struct vm_area_struct *dst_vma, struct vm_area_struct *src_vma);
/** hugetlb_file_setup() - the S_HUGETLB file of a shared anonymous hugetlb mapping (shmem.c). */
struct file *hugetlb_file_setup(struct uhmm_machine *machine, loff_t size);
/** hugetlbfs_evict_inode() - the last reference of a hugetlbfs inode went: its reservations go. */
void hugetlbfs_evict_inode(struct inode *inode);
/** hugetlb_inode_resv_pages() - reservations a hugetlbfs inode still holds (audit). */
unsigned long hugetlb_inode_resv_pages(struct inode *inode);
/** hugetlb_vma_resv_pages() - reservations @vma still holds (audit). Takes hstate->lock. */
unsigned long hugetlb_vma_resv_pages(struct vm_area_struct *vma);
/** hugetlb_vma_may_split() - may_split: 0 when @addr is 2 MiB aligned, else -EINVAL. */
int hugetlb_vma_may_split(struct vm_area_struct *vma, unsigned long addr);

/**
 * struct memremap_info - what memremap_pages() keeps for a dev_pagemap
 * (pgmap->priv): its place on machine->pgmaps and its PFN range.
 */
struct memremap_info {
	struct list_head list;
	struct dev_pagemap *pgmap;
	unsigned long start_pfn;
	unsigned long nr_pages;
};

/* ------------------------------------------------------------------ */
/* Notifiers (mmu_notifier.c)                                          */
/* ------------------------------------------------------------------ */

/** mmu_notifier_subscriptions_destroy() - free @mm's notifier state (last mmdrop). */
void mmu_notifier_subscriptions_destroy(struct mm_struct *mm);
/** mmu_notifier_audit() - uhmm_audit()'s check of @mm's notifier state. Return: violations. */
int mmu_notifier_audit(struct mm_struct *mm, FILE *report);

/* Reports from the audit and from internal consistency checks. */
#define uhmm_warn(fmt, ...) fprintf(stderr, "uhmm: " fmt "\n", ##__VA_ARGS__)

#endif /* UHMM_MM_INTERNAL_H */
