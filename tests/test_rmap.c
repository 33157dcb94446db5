/* SPDX-License-Identifier: MIT */
/*
 * tests/test_rmap.c - try_to_unmap(), try_to_migrate() and
 * remove_migration_ptes() through the reverse map: page-cache pages
 * unmapped from several mms, lazyfree anon discarded, other anon kept;
 * RAM-to-RAM migration round trips with data and counts intact, the
 * anon-exclusive state carried by the entry kinds, faults that sleep on a
 * migration entry until the migration ends.
 */
#include "helpers.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

TestSuite(rmap, .init = machine_setup, .fini = machine_teardown);

static unsigned int pm_swap_type(uint64_t pm) { return (unsigned int)(pm & ((1u << PM_SWAP_TYPE_BITS) - 1)); }

/* Lock and reference the folio at @addr (the migrator's or reclaimer's hold). */
static struct folio *grab(struct mm_struct *mm, unsigned long addr)
{
	struct folio *folio = folio_at(mm, addr);

	folio_get(folio);
	folio_lock(folio);
	return folio;
}

static void release(struct folio *folio)
{
	folio_unlock(folio);
	folio_put(folio);
}

/* ---- try_to_unmap() ---- */

Test(rmap, unmap_file_pages_from_every_mm)
{
	struct file *file = new_memfd();
	struct mm_struct *mm = new_mm(), *child;
	unsigned long addr, paddr;
	struct folio *folio;

	file_fill(file, 0, 2 * PAGE_SIZE, 21);
	addr = map_file(mm, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0);
	paddr = map_file(mm, 2 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, file, 0);
	check_pattern(mm, addr, 2 * PAGE_SIZE, 21);
	check_pattern(mm, paddr, 2 * PAGE_SIZE, 21);
	child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	check_pattern(child, addr, 2 * PAGE_SIZE, 21);
	check_pattern(child, paddr, PAGE_SIZE, 21);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 4);

	folio = grab(mm, addr);
	cr_assert_eq(folio_mapcount(folio), 4); /* shared + private, parent + child */
	cr_assert_eq(cpu_write(mm, addr + 7, "d", 1), 0); /* a dirty PTE */
	folio_clear_dirty(folio);
	try_to_unmap(folio, 0);
	cr_assert_not(folio_mapped(folio));
	cr_assert(folio_test_dirty(folio), "the dirty PTE's state moved to the folio");
	cr_assert_eq(folio_ref_count(folio), 2); /* the page cache and ours */
	cr_assert_eq(pagemap(mm, addr), 0);
	cr_assert_eq(pagemap(child, paddr), 0);
	cr_assert(pagemap(mm, addr + PAGE_SIZE) & PM_PRESENT);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 2);
	cr_assert_eq(mm_get_rss(child, MM_SHMEMPAGES), 1);
	release(folio);
	assert_audit_clean();
	/* Faulting again finds the same page-cache page and its data. */
	check_at(child, addr, 8, PAGE_SIZE - 8, 21);
	cr_assert_eq(folio_at(child, addr), folio);
	mmput(child);
	mmput(mm);
	fput(file);
}

Test(rmap, unmap_discards_clean_lazyfree_anon)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long before;
	struct folio *folio;

	fill_pattern(mm, addr, PAGE_SIZE, 1);
	cr_assert_eq(mm_madvise(mm, addr, PAGE_SIZE, MADV_FREE), 0);
	folio = grab(mm, addr);
	try_to_unmap(folio, 0);
	cr_assert_not(folio_mapped(folio));
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	before = uhmm_nr_free_pages(machine);
	release(folio);
	cr_assert_eq(uhmm_nr_free_pages(machine), before + 1);
	check_zero(mm, addr, PAGE_SIZE);
	mmput(mm);
}

Test(rmap, unmap_keeps_dirty_and_plain_anon)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct folio *folio;

	fill_pattern(mm, addr, 2 * PAGE_SIZE, 2);
	/* Written after MADV_FREE: it holds data again. */
	cr_assert_eq(mm_madvise(mm, addr, PAGE_SIZE, MADV_FREE), 0);
	cr_assert_eq(cpu_write(mm, addr, "x", 1), 0);
	folio = grab(mm, addr);
	cr_assert(folio_test_lazyfree(folio));
	try_to_unmap(folio, 0);
	cr_assert(folio_mapped(folio));
	cr_assert_not(folio_test_lazyfree(folio), "a written lazyfree folio is swap-backed again");
	release(folio);
	/* Plain anonymous memory would need swap. */
	folio = grab(mm, addr + PAGE_SIZE);
	try_to_unmap(folio, 0);
	cr_assert(folio_mapped(folio));
	release(folio);
	check_at(mm, addr, PAGE_SIZE, PAGE_SIZE, 2);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 2);
	mmput(mm);
}

Test(rmap, unmap_lazyfree_thp_needs_split_flag)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, PMD_SIZE);
	struct folio *folio;

	fill_pattern(mm, addr, PMD_SIZE, 3);
	cr_assert_eq(anon_huge(mm), PMD_SIZE);
	cr_assert_eq(mm_madvise(mm, addr, PMD_SIZE, MADV_FREE), 0);
	folio = grab(mm, addr);
	try_to_unmap(folio, 0);
	cr_assert(folio_mapped(folio));
	cr_assert_eq(folio_entire_mapcount(folio), 1);
	try_to_unmap(folio, TTU_SPLIT_HUGE_PMD);
	cr_assert_not(folio_mapped(folio));
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	release(folio);
	assert_audit_clean();
	check_zero(mm, addr, PAGE_SIZE);
	mmput(mm);
}

/* ---- try_to_migrate() and remove_migration_ptes() ---- */

/* Migrate the locked, referenced @src to a new RAM folio; return it (unlocked, no ref of ours). */
static struct folio *finish_to_new(struct folio *src)
{
	struct folio *dst = folio_alloc(machine, 0, folio_order(src));

	cr_assert_not_null(dst);
	folio_lock(dst);
	memcpy(folio_address(dst), folio_address(src), folio_size(src));
	cr_assert_eq(folio_migrate_mapping(NULL, dst, src, 0), 0);
	folio_migrate_flags(dst, src);
	remove_migration_ptes(src, dst, 0);
	folio_unlock(dst);
	folio_put(dst);
	return dst;
}

Test(rmap, migrate_shared_page_round_trip)
{
	struct mm_struct *mm = new_mm(), *child;
	unsigned long addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct folio *src, *dst;
	unsigned long free_before;

	fill_pattern(mm, addr, 2 * PAGE_SIZE, 4);
	child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	src = grab(mm, addr);
	cr_assert_eq(folio_ref_count(src), 3);
	try_to_migrate(src, 0);
	cr_assert_not(folio_mapped(src));
	cr_assert_eq(folio_ref_count(src), 1); /* migration entries hold nothing */
	cr_assert_eq(pm_swap_type(pagemap(mm, addr)), SWP_MIGRATION_READ);
	cr_assert_eq(pm_swap_type(pagemap(child, addr)), SWP_MIGRATION_READ);
	cr_assert(pagemap(mm, addr) & PM_SWAP);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 2); /* still counted */
	cr_assert_eq(smaps(mm).anonymous, 2 * PAGE_SIZE);
	cr_assert_eq(smaps(mm).rss, PAGE_SIZE);
	assert_audit_clean();

	dst = finish_to_new(src);
	cr_assert_eq(pfn_at(mm, addr), folio_pfn(dst));
	cr_assert_eq(pfn_at(child, addr), folio_pfn(dst));
	cr_assert_eq(folio_mapcount(dst), 2);
	cr_assert_eq(folio_ref_count(dst), 2);
	cr_assert_eq(dst->index, src->index);
	cr_assert_eq(dst->mapping, src->mapping);
	free_before = uhmm_nr_free_pages(machine);
	release(src);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before + 1);
	assert_audit_clean();
	check_pattern(mm, addr, 2 * PAGE_SIZE, 4);
	check_pattern(child, addr, 2 * PAGE_SIZE, 4);
	/* Still shared read-only: a write in the child copies. */
	fill_pattern(child, addr, PAGE_SIZE, 5);
	cr_assert_neq(pfn_at(child, addr), folio_pfn(dst));
	check_pattern(mm, addr, PAGE_SIZE, 4);
	mmput(child);
	mmput(mm);
}

Test(rmap, migrate_keeps_write_and_exclusive)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct folio *src, *dst;

	fill_pattern(mm, addr, 2 * PAGE_SIZE, 6);
	/* Writable and exclusive: a writable migration entry, a writable PTE after. */
	src = grab(mm, addr);
	try_to_migrate(src, 0);
	cr_assert_eq(pm_swap_type(pagemap(mm, addr)), SWP_MIGRATION_WRITE);
	dst = finish_to_new(src);
	release(src);
	cr_assert(PageAnonExclusive(folio_head(dst)));
	fill_pattern(mm, addr, PAGE_SIZE, 7);
	cr_assert_eq(pfn_at(mm, addr), folio_pfn(dst), "written in place, no COW");

	/* Read-only but exclusive: readable-exclusive, so a later write reuses it. */
	cr_assert_eq(mm_mprotect(mm, addr + PAGE_SIZE, PAGE_SIZE, PROT_READ), 0);
	src = grab(mm, addr + PAGE_SIZE);
	try_to_migrate(src, 0);
	cr_assert_eq(pm_swap_type(pagemap(mm, addr + PAGE_SIZE)), SWP_MIGRATION_READ_EXCLUSIVE);
	/* mprotect keeps it, a writable one would become readable-exclusive. */
	cr_assert_eq(mm_mprotect(mm, addr + PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(pm_swap_type(pagemap(mm, addr + PAGE_SIZE)), SWP_MIGRATION_READ_EXCLUSIVE);
	dst = finish_to_new(src);
	release(src);
	cr_assert(PageAnonExclusive(folio_head(dst)));
	fill_pattern(mm, addr + PAGE_SIZE, PAGE_SIZE, 8);
	cr_assert_eq(pfn_at(mm, addr + PAGE_SIZE), folio_pfn(dst));
	check_pattern(mm, addr, PAGE_SIZE, 7);
	assert_audit_clean();
	mmput(mm);
}

Test(rmap, mprotect_and_fork_downgrade_writable_migration_entries)
{
	struct mm_struct *mm = new_mm(), *child;
	unsigned long addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct folio *a, *b;

	fill_pattern(mm, addr, 2 * PAGE_SIZE, 9);
	a = grab(mm, addr);
	b = grab(mm, addr + PAGE_SIZE);
	try_to_migrate(a, 0);
	try_to_migrate(b, 0);
	cr_assert_eq(mm_mprotect(mm, addr, PAGE_SIZE, PROT_READ), 0);
	cr_assert_eq(pm_swap_type(pagemap(mm, addr)), SWP_MIGRATION_READ_EXCLUSIVE);
	child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	cr_assert_eq(pm_swap_type(pagemap(mm, addr + PAGE_SIZE)), SWP_MIGRATION_READ);
	cr_assert_eq(pm_swap_type(pagemap(child, addr + PAGE_SIZE)), SWP_MIGRATION_READ);
	cr_assert_eq(pm_swap_type(pagemap(child, addr)), SWP_MIGRATION_READ);
	cr_assert_eq(mm_get_rss(child, MM_ANONPAGES), 2);
	assert_audit_clean();
	/* A failed migration restores the old pages, now shared with the child. */
	remove_migration_ptes(a, a, 0);
	remove_migration_ptes(b, b, 0);
	cr_assert_eq(folio_mapcount(b), 2);
	cr_assert_eq(folio_ref_count(b), 3);
	cr_assert_not(PageAnonExclusive(folio_head(b)));
	release(a);
	release(b);
	assert_audit_clean();
	check_pattern(child, addr, 2 * PAGE_SIZE, 9);
	fill_pattern(mm, addr + PAGE_SIZE, PAGE_SIZE, 10);
	cr_assert_neq(folio_at(mm, addr + PAGE_SIZE), b, "shared now: the write copies");
	mmput(child);
	mmput(mm);
}

Test(rmap, references_make_migration_fail)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct folio *src, *dst;
	struct page *page;

	fill_pattern(mm, addr, 2 * PAGE_SIZE, 11);
	/* A GUP reference: the mapping check fails with -EAGAIN. */
	mmap_read_lock(mm);
	cr_assert_eq(get_user_pages_remote(mm, addr, 1, 0, &page, NULL), 1);
	mmap_read_unlock(mm);
	src = grab(mm, addr);
	try_to_migrate(src, 0);
	dst = folio_alloc(machine, 0, 0);
	folio_lock(dst);
	cr_assert_eq(folio_migrate_mapping(NULL, dst, src, 0), -EAGAIN);
	cr_assert_null(dst->mapping);
	folio_unlock(dst);
	folio_put(dst);
	remove_migration_ptes(src, src, 0);
	cr_assert_eq(pfn_at(mm, addr), folio_pfn(src));
	release(src);
	put_page(page);
	/* A pinned exclusive page is not unmapped at all. */
	mmap_read_lock(mm);
	cr_assert_eq(pin_user_pages_remote(mm, addr + PAGE_SIZE, 1, FOLL_WRITE, &page, NULL), 1);
	mmap_read_unlock(mm);
	src = grab(mm, addr + PAGE_SIZE);
	try_to_migrate(src, 0);
	cr_assert(folio_mapped(src));
	cr_assert(pagemap(mm, addr + PAGE_SIZE) & PM_PRESENT);
	release(src);
	unpin_user_page(page);
	assert_audit_clean();
	check_pattern(mm, addr, 2 * PAGE_SIZE, 11);
	mmput(mm);
}

Test(rmap, zap_of_migration_entries_leaves_the_migrator_reference)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct anon_vma *anon_vma;
	struct folio *src;

	fill_pattern(mm, addr, 2 * PAGE_SIZE, 12);
	src = grab(mm, addr);
	anon_vma = folio_get_anon_vma(src);
	cr_assert_not_null(anon_vma);
	try_to_migrate(src, 0);
	cr_assert_eq(mm_munmap(mm, addr, 2 * PAGE_SIZE), 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	cr_assert_eq(folio_ref_count(src), 1);
	remove_migration_ptes(src, src, 0); /* nothing left to restore */
	cr_assert_not(folio_mapped(src));
	put_anon_vma(anon_vma);
	release(src);
	mmput(mm);
}

Test(rmap, thp_migrates_as_pmd_or_split)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, 2 * PMD_SIZE);
	struct folio *src, *dst;

	fill_pattern(mm, addr, 2 * PMD_SIZE, 13);
	cr_assert_eq(anon_huge(mm), 2 * PMD_SIZE);
	/* Without TTU_SPLIT_HUGE_PMD: one PMD migration entry, restored as a PMD. */
	src = grab(mm, addr);
	try_to_migrate(src, 0);
	cr_assert_not(folio_mapped(src));
	cr_assert(pagemap(mm, addr + 5 * PAGE_SIZE) & PM_SWAP);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 2 * (long)HPAGE_PMD_NR);
	assert_audit_clean();
	dst = finish_to_new(src);
	release(src);
	cr_assert_eq(folio_entire_mapcount(dst), 1);
	cr_assert_eq(anon_huge(mm), 2 * PMD_SIZE);
	cr_assert(PageAnonExclusive(folio_page(dst, 17)));
	/* With it: 512 PTE migration entries, restored as PTEs of the same folio. */
	src = grab(mm, addr + PMD_SIZE);
	try_to_migrate(src, TTU_SPLIT_HUGE_PMD);
	cr_assert_not(folio_mapped(src));
	cr_assert_eq(anon_huge(mm), PMD_SIZE);
	assert_audit_clean();
	remove_migration_ptes(src, src, 0);
	cr_assert_eq(folio_mapcount(src), (int)HPAGE_PMD_NR);
	cr_assert_eq(folio_entire_mapcount(src), 0);
	release(src);
	assert_audit_clean();
	check_pattern(mm, addr, 2 * PMD_SIZE, 13);
	mmput(mm);
}

/* ---- a CPU access on a migration entry sleeps until the migration ends ---- */

struct toucher {
	struct mm_struct *mm;
	unsigned long addr;
	bool write;
	atomic_int done;
	int err;
};

static void *touch_thread(void *arg)
{
	struct toucher *t = arg;
	char c = 'w';

	t->err = t->write ? cpu_write(t->mm, t->addr, &c, 1) : cpu_read(t->mm, t->addr, &c, 1);
	atomic_store(&t->done, 1);
	return NULL;
}

static void blocks_until_finalize(bool thp, bool write)
{
	struct mm_struct *mm = new_mm();
	unsigned long len = thp ? PMD_SIZE : PAGE_SIZE;
	unsigned long addr = thp ? map_thp(mm, len) : map_anon(mm, 0, len, PROT_READ | PROT_WRITE, 0);
	struct toucher t = { .mm = mm, .addr = addr + len / 2, .write = write };
	struct folio *src, *dst;
	pthread_t thread;

	fill_pattern(mm, addr, len, 14);
	src = grab(mm, addr);
	try_to_migrate(src, 0);
	cr_assert_eq(pthread_create(&thread, NULL, touch_thread, &t), 0);
	for (int i = 0; i < 20; i++) {
		usleep(1000);
		cr_assert_eq(atomic_load(&t.done), 0, "the access did not wait for the migration");
	}
	dst = finish_to_new(src);
	cr_assert_eq(atomic_load(&t.done), 0, "the access ran before the folio was unlocked");
	release(src);
	pthread_join(thread, NULL);
	cr_assert_eq(t.err, 0);
	cr_assert_eq(pfn_at(mm, addr + len / 2), folio_pfn(dst) + (thp ? HPAGE_PMD_NR / 2 : 0));
	if (write) {
		char c;

		cr_assert_eq(cpu_read(mm, addr + len / 2, &c, 1), 0);
		cr_assert_eq(c, 'w');
		check_at(mm, addr, 0, len / 2, 14);
	} else {
		check_pattern(mm, addr, len, 14);
	}
	assert_audit_clean();
	mmput(mm);
}

Test(rmap, read_on_migration_entry_waits) { blocks_until_finalize(false, false); }
Test(rmap, write_on_migration_entry_waits) { blocks_until_finalize(false, true); }
Test(rmap, access_on_pmd_migration_entry_waits) { blocks_until_finalize(true, true); }

Test(rmap, pmd_migration_entry_fork_and_munmap)
{
	struct mm_struct *mm = new_mm(), *child;
	unsigned long addr = map_thp(mm, PMD_SIZE);
	struct anon_vma *anon_vma;
	struct folio *src;

	fill_pattern(mm, addr, PMD_SIZE, 15);
	src = grab(mm, addr);
	anon_vma = folio_get_anon_vma(src);
	try_to_migrate(src, 0);
	cr_assert_eq(pm_swap_type(pagemap(mm, addr)), SWP_MIGRATION_WRITE);
	child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	cr_assert_eq(pm_swap_type(pagemap(mm, addr + PAGE_SIZE)), SWP_MIGRATION_READ);
	cr_assert_eq(pm_swap_type(pagemap(child, addr + PAGE_SIZE)), SWP_MIGRATION_READ);
	cr_assert_eq(mm_get_rss(child, MM_ANONPAGES), (long)HPAGE_PMD_NR);
	assert_audit_clean();
	/* munmap in the parent: the entry goes, the migrator's reference stays. */
	cr_assert_eq(mm_munmap(mm, addr, PMD_SIZE), 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	cr_assert_eq(folio_ref_count(src), 1);
	remove_migration_ptes(src, src, 0);
	cr_assert_eq(folio_entire_mapcount(src), 1);
	cr_assert_eq(folio_ref_count(src), 2);
	cr_assert_not(PageAnonExclusive(folio_head(src)));
	put_anon_vma(anon_vma);
	release(src);
	assert_audit_clean();
	check_pattern(child, addr, PMD_SIZE, 15);
	mmput(child);
	mmput(mm);
}

/* ---- the invalidations try_to_unmap() and try_to_migrate() send ---- */

struct inval_log {
	struct mmu_interval_notifier sub;
	int clear, other;
	unsigned long start, end;
};

static bool log_invalidate(struct mmu_interval_notifier *sub, const struct mmu_notifier_range *range,
			   unsigned long cur_seq)
{
	struct inval_log *log = (struct inval_log *)sub;

	mmu_interval_set_seq(sub, cur_seq);
	if (range->event == MMU_NOTIFY_CLEAR) {
		log->clear++;
		log->start = range->start;
		log->end = range->end;
	} else {
		log->other++;
	}
	return true;
}

static const struct mmu_interval_notifier_ops log_ops = { .invalidate = log_invalidate };

Test(rmap, unmap_and_migrate_send_clear_invalidations)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct inval_log log = { 0 };
	struct folio *folio;

	fill_pattern(mm, addr, 4 * PAGE_SIZE, 16);
	cr_assert_eq(mmu_interval_notifier_insert(&log.sub, mm, addr + PAGE_SIZE, PAGE_SIZE,
						  &log_ops), 0);
	folio = grab(mm, addr + PAGE_SIZE);
	try_to_migrate(folio, 0);
	cr_assert_eq(log.clear, 1);
	cr_assert_leq(log.start, addr + PAGE_SIZE);
	cr_assert_geq(log.end, addr + 2 * PAGE_SIZE);
	remove_migration_ptes(folio, folio, 0);
	release(folio);
	cr_assert_eq(mm_madvise(mm, addr, 4 * PAGE_SIZE, MADV_FREE), 0);
	log.clear = 0;
	folio = grab(mm, addr + PAGE_SIZE);
	try_to_unmap(folio, 0);
	cr_assert_not(folio_mapped(folio));
	cr_assert_eq(log.clear, 1);
	release(folio);
	/* A folio outside the interval does not reach it. */
	log.clear = 0;
	folio = grab(mm, addr + 3 * PAGE_SIZE);
	try_to_unmap(folio, 0);
	release(folio);
	cr_assert_eq(log.clear, 0);
	mmu_interval_notifier_remove(&log.sub);
	mmput(mm);
}

/* ---- migration racing with CPU accesses ---- */

struct race {
	struct mm_struct *mm;
	unsigned long addr;
	atomic_int stop;
	int err;
	uint64_t last;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	uint64_t v = 0, got;

	while (!atomic_load(&r->stop) && !r->err) {
		v++;
		r->err = cpu_write(r->mm, r->addr, &v, sizeof(v));
		if (!r->err)
			r->err = cpu_read(r->mm, r->addr + PAGE_SIZE - sizeof(v), &got, sizeof(got));
		if (!r->err && got != 0x5a5a5a5a5a5a5a5aULL)
			r->err = -EIO;
		if (!r->err)
			r->err = cpu_read(r->mm, r->addr, &got, sizeof(got));
		if (!r->err && got != v)
			r->err = -EIO;
	}
	r->last = v;
	return NULL;
}

Test(rmap, migrations_race_with_cpu_accesses)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct race r = { .mm = mm, .addr = addr };
	uint64_t pat = 0x5a5a5a5a5a5a5a5aULL, got;
	int migrated = 0;
	pthread_t t;

	cr_assert_eq(cpu_write(mm, addr + PAGE_SIZE - sizeof(pat), &pat, sizeof(pat)), 0);
	cr_assert_eq(pthread_create(&t, NULL, race_writer, &r), 0);
	for (int i = 0; i < 200; i++) {
		struct folio *src, *dst;
		struct page *page;

		dst = folio_alloc(machine, 0, 0);
		cr_assert_not_null(dst);
		mmap_read_lock(mm);
		cr_assert_eq(get_user_pages_remote(mm, addr, 1, 0, &page, NULL), 1);
		src = page_folio(page);
		folio_lock(src);
		folio_lock(dst);
		try_to_migrate(src, 0);
		if (!folio_mapped(src)) {
			memcpy(folio_address(dst), folio_address(src), PAGE_SIZE);
			if (!folio_migrate_mapping(NULL, dst, src, 0)) {
				folio_migrate_flags(dst, src);
				remove_migration_ptes(src, dst, 0);
				migrated++;
			} else {
				remove_migration_ptes(src, src, 0);
			}
		}
		folio_unlock(dst);
		folio_put(dst);
		folio_unlock(src);
		put_page(page);
		mmap_read_unlock(mm);
	}
	atomic_store(&r.stop, 1);
	pthread_join(t, NULL);
	cr_assert_eq(r.err, 0, "the CPU saw a torn or stale page");
	cr_assert_gt(migrated, 0);
	cr_assert_eq(cpu_read(mm, addr, &got, sizeof(got)), 0);
	cr_assert_eq(got, r.last);
	assert_audit_clean();
	mmput(mm);
}
