/* SPDX-License-Identifier: MIT */
/*
 * tests/test_shmem.c - shared anonymous memory (MAP_SHARED | MAP_ANONYMOUS,
 * backed by an internal shmem file) and memfd mappings under fork and
 * threads: sharing across fork both ways, private anonymous memory beside
 * shared memory, VMA split/merge rules, mremap (growing past the object is
 * SIGBUS; old_len 0 duplicates), madvise (DONTNEED keeps the data, REMOVE
 * punches it, FREE / WIPEONFORK / COLLAPSE refuse), no THP in shmem
 * (shmem_enabled "never"), and threads racing faults, truncation, munmap
 * and mprotect on one file.  Linux 6.x semantics.
 *
 * This suite also runs under ThreadSanitizer (tests/meson.build).
 */
#include "helpers.h"
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PG PAGE_SIZE
#define RW (PROT_READ | PROT_WRITE)

TestSuite(shmem, .init = machine_setup, .fini = machine_teardown);

/* ---- local helpers ---- */

static unsigned long map_shared_anon(struct mm_struct *mm, unsigned long len)
{
	long ret = mm_mmap(mm, 0, len, RW, MAP_SHARED | MAP_ANONYMOUS, NULL, 0);

	cr_assert(ret > 0, "mm_mmap(MAP_SHARED | MAP_ANONYMOUS) = %ld", ret);
	return (unsigned long)ret;
}

static struct mm_struct *fork_mm(struct mm_struct *mm)
{
	struct mm_struct *child = mm_fork(mm);

	cr_assert(!IS_ERR_OR_NULL(child), "mm_fork() = %ld", PTR_ERR(child));
	return child;
}

static struct vm_area_struct *vma_at(struct mm_struct *mm, unsigned long addr)
{
	struct vm_area_struct *vma = vma_lookup(mm, addr);

	cr_assert(vma, "no VMA at %#lx", addr);
	return vma;
}

static int read_byte(struct mm_struct *mm, unsigned long addr)
{
	uint8_t b;
	int err = cpu_read(mm, addr, &b, 1);

	return err ? err : b;
}

/* ------------------------------------------------------------------ */
/* MAP_SHARED | MAP_ANONYMOUS                                          */
/* ------------------------------------------------------------------ */

Test(shmem, shared_anon_is_a_shmem_object)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_shared_anon(mm, 4 * PG);
	struct vm_area_struct *vma = vma_at(mm, addr);
	struct file *file = vma->vm_file;
	unsigned long free0 = uhmm_nr_free_pages(machine);
	unsigned long tables0 = smaps(mm).page_tables / PG;

	cr_assert(file, "shmem_zero_setup() gives the VMA a file");
	cr_assert(inode_is_shmem(file->f_inode));
	cr_assert_eq(uhmm_file_size(file), 4 * PG);
	cr_assert_eq(vma->vm_pgoff, 0);
	cr_assert((vma->vm_flags & (VM_SHARED | VM_MAYSHARE)) == (VM_SHARED | VM_MAYSHARE));
	cr_assert(!(vma->vm_flags & VM_ACCOUNT));
	cr_assert(!vma_is_anonymous(vma));
	/* Reads of holes allocate (shmem_fault()), zeroed; no zero page. */
	check_zero(mm, addr, 4 * PG);
	cr_assert_eq(uhmm_file_nrpages(file), 4);
	cr_assert_eq(free0 - uhmm_nr_free_pages(machine), 4 + smaps(mm).page_tables / PG - tables0,
		     "4 pages and the page tables");
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 4);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	fill_pattern(mm, addr, 4 * PG, 1);
	check_pattern(mm, addr, 4 * PG, 1);
	for (unsigned long i = 0; i < 4; i++) {
		uint64_t pm = pagemap(mm, addr + i * PG);
		struct folio *folio = folio_at(mm, addr + i * PG);

		cr_assert(pm & PM_FILE, "shmem pages are PM_FILE on Linux");
		cr_assert(!folio_test_anon(folio));
		cr_assert(folio_test_swapbacked(folio));
		cr_assert_eq(folio_ref_count(folio), 2);
		cr_assert_eq(folio->index, i);
	}
	cr_assert_eq(smaps(mm).anonymous, 0);
	assert_audit_clean();
	mmput(mm);
}

Test(shmem, fork_shares_both_ways)
{
	struct mm_struct *parent = new_mm(), *child;
	unsigned long addr = map_shared_anon(parent, 4 * PG);

	fill_at(parent, addr, 0, PG, 2);
	child = fork_mm(parent);
	check_at(child, addr, 0, PG, 2);
	cr_assert_eq(pfn_at(child, addr), pfn_at(parent, addr), "no copy on write");
	fill_at(child, addr, PG, PG, 3);
	check_at(parent, addr, PG, PG, 3);
	fill_at(parent, addr, 2 * PG, PG, 4);
	check_at(child, addr, 2 * PG, PG, 4);
	/* Atomics through one side, read through the other. */
	uint64_t old;
	cr_assert_eq(cpu_atomic_fetch_add_u64(child, addr + 3 * PG, 5, &old), 0);
	cr_assert_eq(cpu_atomic_fetch_add_u64(parent, addr + 3 * PG, 7, &old), 0);
	cr_assert_eq(old, 5);
	cr_assert_eq(vma_at(child, addr)->vm_file, vma_at(parent, addr)->vm_file, "one object");
	cr_assert_eq(atomic_load(&vma_at(parent, addr)->vm_file->f_count), 2);
	cr_assert_eq(folio_mapcount(folio_at(parent, addr + PG)), 2);
	cr_assert_eq(folio_ref_count(folio_at(parent, addr + PG)), 3);
	struct mm_smaps s = smaps(parent);
	cr_assert_eq(s.shared_dirty, 4 * PG);
	assert_audit_clean();
	/* The parent exits first: the child keeps the object. */
	mmput(parent);
	check_at(child, addr, 0, PG, 2);
	check_at(child, addr, PG, PG, 3);
	check_at(child, addr, 2 * PG, PG, 4);
	assert_audit_clean();
	mmput(child);
}

Test(shmem, fork_grandchildren_share_one_object)
{
	struct mm_struct *a = new_mm(), *b, *c;
	unsigned long addr = map_shared_anon(a, 2 * PG);

	b = fork_mm(a);
	c = fork_mm(b);
	fill_at(c, addr, 0, 2 * PG, 5);
	check_at(a, addr, 0, 2 * PG, 5);
	check_at(b, addr, 0, 2 * PG, 5);
	cr_assert_eq(folio_mapcount(folio_at(a, addr)), 3);
	cr_assert_eq(vma_at(a, addr)->vm_file->f_mapping->nr_mmap, 3);
	cr_assert_eq(folio_rmap_query(folio_at(a, addr), NULL, 0), 3);
	assert_audit_clean();
	mmput(b);
	mmput(a);
	check_at(c, addr, 0, 2 * PG, 5);
	mmput(c);
}

Test(shmem, fork_private_anon_beside_shared)
{
	struct mm_struct *parent = new_mm(), *child;
	unsigned long priv = map_anon(parent, 0, 2 * PG, RW, 0);
	unsigned long shared = map_shared_anon(parent, 2 * PG);
	struct file *file = new_memfd();
	unsigned long fmap;

	cr_assert_eq(uhmm_ftruncate(file, 2 * PG), 0);
	fmap = map_file(parent, 2 * PG, RW, MAP_SHARED, file, 0);
	fill_pattern(parent, priv, 2 * PG, 6);
	fill_pattern(parent, shared, 2 * PG, 7);
	fill_pattern(parent, fmap, 2 * PG, 8);
	child = fork_mm(parent);
	cr_assert_eq(mm_get_rss(child, MM_ANONPAGES), 2, "private pages are copied at fork");
	cr_assert_eq(mm_get_rss(child, MM_SHMEMPAGES), 0, "shared ones are faulted later");
	fill_pattern(child, priv, 2 * PG, 9);
	fill_pattern(child, shared, 2 * PG, 10);
	fill_pattern(child, fmap, 2 * PG, 11);
	check_pattern(parent, priv, 2 * PG, 6);
	check_pattern(parent, shared, 2 * PG, 10);
	check_pattern(parent, fmap, 2 * PG, 11);
	file_check(file, 0, 2 * PG, 11);
	cr_assert_eq(mm_get_rss(child, MM_SHMEMPAGES), 4);
	cr_assert_eq(mm_get_rss(parent, MM_SHMEMPAGES), 4);
	assert_audit_clean();
	mmput(child);
	mmput(parent);
	fput(file);
}

Test(shmem, dontcopy_vma_is_not_shared_with_the_child)
{
	struct mm_struct *parent = new_mm(), *child;
	unsigned long addr = map_shared_anon(parent, PG);

	cr_assert_eq(mm_madvise(parent, addr, PG, 10 /* MADV_DONTFORK */), 0);
	child = fork_mm(parent);
	cr_assert_eq(read_byte(child, addr), -EFAULT);
	cr_assert_eq(vma_at(parent, addr)->vm_file->f_mapping->nr_mmap, 1);
	mmput(child);
	mmput(parent);
}

/* ------------------------------------------------------------------ */
/* VMAs: merge, split, mremap                                          */
/* ------------------------------------------------------------------ */

Test(shmem, separate_objects_never_merge)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_shared_anon(mm, 2 * PG);
	long b = mm_mmap(mm, a + 2 * PG, 2 * PG, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, NULL, 0);

	cr_assert_eq(b, (long)(a + 2 * PG));
	cr_assert_eq(nr_vmas(mm), 2);
	cr_assert_neq(vma_at(mm, a)->vm_file, vma_at(mm, a + 2 * PG)->vm_file);
	cr_assert_eq(vma_at(mm, a + 2 * PG)->vm_pgoff, 0, "each object starts at offset 0");
	fill_pattern(mm, a, 4 * PG, 12);
	check_pattern(mm, a, 4 * PG, 12);
	assert_audit_clean();
	mmput(mm);
}

Test(shmem, munmap_middle_keeps_offsets)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_shared_anon(mm, 6 * PG);
	struct file *file = vma_at(mm, addr)->vm_file;

	fill_pattern(mm, addr, 6 * PG, 13);
	cr_assert_eq(mm_munmap(mm, addr + 2 * PG, 2 * PG), 0);
	cr_assert_eq(nr_vmas(mm), 2);
	cr_assert_eq(vma_at(mm, addr + 4 * PG)->vm_pgoff, 4);
	cr_assert_eq(vma_at(mm, addr + 4 * PG)->vm_file, file);
	cr_assert_eq(file->f_mapping->nr_mmap, 2);
	/* The object keeps the unmapped pages: its size did not change. */
	cr_assert_eq(uhmm_file_nrpages(file), 6);
	check_at(mm, addr, 0, 2 * PG, 13);
	check_at(mm, addr, 4 * PG, 2 * PG, 13);
	/* Mapping the hole again with MAP_FIXED gives a new, empty object. */
	cr_assert_eq(mm_mmap(mm, addr + 2 * PG, 2 * PG, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
			     NULL, 0), (long)(addr + 2 * PG));
	check_zero(mm, addr + 2 * PG, 2 * PG);
	cr_assert_neq(vma_at(mm, addr + 2 * PG)->vm_file, file);
	assert_audit_clean();
	mmput(mm);
}

Test(shmem, mremap_grow_past_the_object_is_sigbus)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_shared_anon(mm, 2 * PG);
	long ret;

	fill_pattern(mm, addr, 2 * PG, 14);
	ret = mm_mremap(mm, addr, 2 * PG, 4 * PG, MREMAP_MAYMOVE, 0);
	cr_assert_gt(ret, 0);
	check_pattern(mm, (unsigned long)ret, 2 * PG, 14);
	cr_assert_eq(read_byte(mm, (unsigned long)ret + 2 * PG), -EFAULT,
		     "shmem objects do not grow with their mappings (SIGBUS on Linux)");
	assert_audit_clean();
	mmput(mm);
}

Test(shmem, mremap_old_len_zero_duplicates)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_shared_anon(mm, 2 * PG);
	long dup;

	fill_pattern(mm, addr, 2 * PG, 15);
	dup = mm_mremap(mm, addr, 0, 2 * PG, MREMAP_MAYMOVE, 0);
	cr_assert_gt(dup, 0);
	cr_assert_neq(dup, (long)addr);
	check_pattern(mm, (unsigned long)dup, 2 * PG, 15);
	cr_assert_eq(pfn_at(mm, (unsigned long)dup), pfn_at(mm, addr));
	fill_pattern(mm, (unsigned long)dup, PG, 16);
	check_pattern(mm, addr, PG, 16);
	cr_assert_eq(vma_at(mm, addr)->vm_file->f_mapping->nr_mmap, 2);
	/* A private mapping cannot be duplicated. */
	unsigned long priv = map_anon(mm, 0, PG, RW, 0);
	cr_assert_eq(mm_mremap(mm, priv, 0, PG, MREMAP_MAYMOVE, 0), -EINVAL);
	assert_audit_clean();
	mmput(mm);
}

Test(shmem, mremap_fixed_and_dontunmap)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_shared_anon(mm, 2 * PG);
	unsigned long target = map_anon(mm, 0, 4 * PG, RW, 0);
	long ret;

	fill_pattern(mm, addr, 2 * PG, 17);
	ret = mm_mremap(mm, addr, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, target + PG);
	cr_assert_eq(ret, (long)(target + PG));
	check_pattern(mm, target + PG, 2 * PG, 17);
	cr_assert_eq(read_byte(mm, addr), -EFAULT);
	cr_assert_eq(vma_at(mm, target + PG)->vm_file->f_mapping->nr_mmap, 1);
	/* DONTUNMAP of a shared mapping: the old range refaults the same object. */
	ret = mm_mremap(mm, target + PG, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
	cr_assert_gt(ret, 0);
	check_pattern(mm, (unsigned long)ret, 2 * PG, 17);
	check_pattern(mm, target + PG, 2 * PG, 17);
	cr_assert_eq(vma_at(mm, target + PG)->vm_file->f_mapping->nr_mmap, 2);
	assert_audit_clean();
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* madvise                                                             */
/* ------------------------------------------------------------------ */

Test(shmem, madvise_on_shared_anon)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_shared_anon(mm, 4 * PG);
	struct file *file = vma_at(mm, addr)->vm_file;

	fill_pattern(mm, addr, 4 * PG, 18);
	cr_assert_eq(mm_madvise(mm, addr, 4 * PG, MADV_DONTNEED), 0);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 0);
	check_pattern(mm, addr, 4 * PG, 18); /* the object still holds the data */
	cr_assert_eq(mm_madvise(mm, addr + PG, PG, MADV_REMOVE), 0);
	check_zero(mm, addr + PG, PG);
	check_at(mm, addr, 0, PG, 18);
	check_at(mm, addr, 2 * PG, 2 * PG, 18);
	cr_assert_eq(mm_madvise(mm, addr, PG, MADV_FREE), -EINVAL);
	cr_assert_eq(mm_madvise(mm, addr, PG, MADV_WIPEONFORK), -EINVAL);
	cr_assert_eq(mm_madvise(mm, addr, PG, MADV_COLLAPSE), -EINVAL);
	cr_assert_eq(uhmm_file_nrpages(file), 4);
	assert_audit_clean();
	mmput(mm);
}

Test(shmem, no_thp_in_shmem)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr;

	uhmm_machine_set_thp(machine, THP_ALWAYS);
	addr = map_shared_anon(mm, 2 * HPAGE_PMD_SIZE);
	cr_assert_eq(mm_madvise(mm, addr, 2 * HPAGE_PMD_SIZE, MADV_HUGEPAGE), 0);
	cr_assert_eq(cpu_memset(mm, addr, 1, 2 * HPAGE_PMD_SIZE), 0);
	cr_assert_eq(anon_huge(mm), 0, "shmem_enabled is never: 4 KiB pages only");
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 2 * HPAGE_PMD_NR);
	cr_assert(!folio_test_large(folio_at(mm, addr)));
	assert_audit_clean();
	mmput(mm);
}

Test(shmem, running_out_of_ram_is_oom)
{
	struct uhmm_machine_config cfg = { .ram_size = 4UL << 20 };
	struct mm_struct *mm;
	unsigned long addr;
	int err = 0;

	machine_teardown();
	machine_setup_with(&cfg);
	mm = new_mm();
	addr = map_shared_anon(mm, 8UL << 20);
	for (unsigned long off = 0; off < (8UL << 20) && !err; off += PG)
		err = cpu_memset(mm, addr + off, 1, 1);
	cr_assert_eq(err, -ENOMEM, "running out of RAM is the OOM case");
	assert_audit_clean();
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* threads                                                             */
/* ------------------------------------------------------------------ */

#define RACE_PAGES 16
#define RACE_ROUNDS 2000

struct race {
	struct file *file;
	struct mm_struct *mm[2];
	unsigned long addr[2];
	atomic_int stop;
	atomic_long touch_rounds, vma_rounds; /* so that the truncater overlaps both */
};

/* Write and read every page over and over; SIGBUS while truncated is fine. */
static void *race_toucher(void *arg)
{
	struct race *r = arg;
	static atomic_int next;
	int me = atomic_fetch_add(&next, 1) & 1;
	uint64_t old;

	while (!atomic_load(&r->stop)) {
		for (unsigned long i = 0; i < RACE_PAGES; i++) {
			int err = cpu_atomic_fetch_add_u64(r->mm[me], r->addr[me] + i * PG +
							   8 * (unsigned long)me, 1, &old);

			cr_assert(!err || err == -EFAULT, "fetch_add: %d", err);
		}
		atomic_fetch_add(&r->touch_rounds, 1);
	}
	return NULL;
}

/* Shrink and grow the file, page aligned (no partial-page zeroing races). */
static void *race_truncater(void *arg)
{
	struct race *r = arg;

	for (long i = 0; i < RACE_ROUNDS || atomic_load(&r->vma_rounds) < RACE_ROUNDS / 10 ||
			 atomic_load(&r->touch_rounds) < RACE_ROUNDS / 10; i++) {
		cr_assert_eq(uhmm_ftruncate(r->file, (loff_t)(i % RACE_PAGES) * PG), 0);
		cr_assert_eq(uhmm_ftruncate(r->file, RACE_PAGES * PG), 0);
	}
	atomic_store(&r->stop, 1);
	return NULL;
}

/* Change VMAs of the file under the truncater's reverse-map walks. */
static void *race_vma_changer(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->stop)) {
		long extra = mm_mmap(r->mm[1], 0, 4 * PG, RW, MAP_SHARED, r->file, 0);

		cr_assert_gt(extra, 0);
		cr_assert_eq(mm_mprotect(r->mm[0], r->addr[0] + 4 * PG, 4 * PG, PROT_READ), 0);
		cr_assert_eq(mm_mprotect(r->mm[0], r->addr[0] + 4 * PG, 4 * PG, RW), 0);
		cr_assert_eq(mm_madvise(r->mm[1], r->addr[1], RACE_PAGES * PG, MADV_DONTNEED), 0);
		cr_assert_eq(mm_munmap(r->mm[1], (unsigned long)extra, 4 * PG), 0);
		atomic_fetch_add(&r->vma_rounds, 1);
	}
	return NULL;
}

Test(shmem, threads_race_faults_truncate_and_vma_changes)
{
	struct race r = { .file = new_memfd() };
	pthread_t t[4];

	cr_assert_eq(uhmm_ftruncate(r.file, RACE_PAGES * PG), 0);
	r.mm[0] = new_mm();
	r.addr[0] = map_file(r.mm[0], RACE_PAGES * PG, RW, MAP_SHARED, r.file, 0);
	r.mm[1] = fork_mm(r.mm[0]);
	r.addr[1] = r.addr[0];
	cr_assert_eq(pthread_create(&t[0], NULL, race_toucher, &r), 0);
	cr_assert_eq(pthread_create(&t[1], NULL, race_toucher, &r), 0);
	cr_assert_eq(pthread_create(&t[2], NULL, race_vma_changer, &r), 0);
	cr_assert_eq(pthread_create(&t[3], NULL, race_truncater, &r), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_audit_clean();
	cr_assert_eq(uhmm_file_size(r.file), RACE_PAGES * PG);
	/* The counters went up only while the pages were there; nothing is stale. */
	cr_assert_eq(uhmm_ftruncate(r.file, 0), 0);
	cr_assert_eq(mm_get_rss(r.mm[0], MM_SHMEMPAGES), 0);
	cr_assert_eq(mm_get_rss(r.mm[1], MM_SHMEMPAGES), 0);
	mmput(r.mm[1]);
	mmput(r.mm[0]);
	fput(r.file);
}

/* Faults in two mms of one shared anonymous object while a fork loop runs. */
struct fork_race {
	struct mm_struct *mm;
	unsigned long addr;
	atomic_int stop;
};

static void *fork_race_writer(void *arg)
{
	struct fork_race *f = arg;
	uint64_t old;

	while (!atomic_load(&f->stop))
		for (unsigned long i = 0; i < RACE_PAGES; i++)
			cr_assert_eq(cpu_atomic_fetch_add_u64(f->mm, f->addr + i * PG, 1, &old), 0);
	return NULL;
}

Test(shmem, threads_write_while_forking)
{
	struct fork_race f = { .mm = new_mm() };
	pthread_t t;
	uint64_t sum = 0, v;

	f.addr = map_shared_anon(f.mm, RACE_PAGES * PG);
	cr_assert_eq(pthread_create(&t, NULL, fork_race_writer, &f), 0);
	for (int i = 0; i < 50; i++) {
		struct mm_struct *child = fork_mm(f.mm);

		cr_assert_eq(cpu_atomic_fetch_add_u64(child, f.addr, 1000, &v), 0);
		mmput(child);
	}
	atomic_store(&f.stop, 1);
	pthread_join(t, NULL);
	for (unsigned long i = 0; i < RACE_PAGES; i++) {
		cr_assert_eq(cpu_read(f.mm, f.addr + i * PG, &v, 8), 0);
		sum += v;
	}
	cr_assert_geq(sum, 50 * 1000, "every child's add reached the shared object");
	assert_audit_clean();
	mmput(f.mm);
}
