/* SPDX-License-Identifier: MIT */
/*
 * tests/test_device_entries.c - device-private entries (and coherent
 * pages) in the core: a tiny test driver installs them by hand with
 * try_to_migrate(), folio_migrate_mapping() and remove_migration_ptes(),
 * then CPU faults (migrate_to_ram), fork, munmap/exit, MADV_DONTNEED,
 * mprotect, mremap, pagemap and the PMD-level paths are checked.
 */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "uhmm/memremap.h"

#define DEV_SIZE (128UL << 20)

/* ---- the test driver ---- */

struct tdev {
	struct resource *res;
	struct dev_pagemap pgmap;
	unsigned long base_pfn;
	unsigned long next; /* bump allocator: pages handed out so far */
	atomic_int nr_freed; /* callbacks run on faulting threads */
	atomic_int nr_migrate_to_ram;
	atomic_int nr_pmd_faults;
	bool fail_migrate;
};

static struct tdev tdev;
static int owner_cookie;

static void t_folio_free(struct folio *folio)
{
	cr_assert_eq(folio_ref_count(folio), 0);
	cr_assert_null(folio->mapping);
	tdev.nr_freed++;
}

static struct folio *dev_alloc(unsigned int order)
{
	unsigned long nr = 1UL << order;
	struct folio *folio;

	tdev.next = ALIGN(tdev.next, nr);
	cr_assert_leq(tdev.next + nr, DEV_SIZE >> PAGE_SHIFT);
	folio = (struct folio *)(void *)pfn_to_page(tdev.base_pfn + tdev.next);
	tdev.next += nr;
	zone_device_folio_init(folio, &tdev.pgmap, order);
	cr_assert_eq(folio_ref_count(folio), 1);
	return folio;
}

/*
 * Move the locked, referenced @src (mapped by the reverse map) into the
 * locked @dst: the driver's half of a migration, done by hand.
 * Return: 0 or the folio_migrate_mapping() error (src restored).
 */
static int move_folio(struct folio *src, struct folio *dst, int extra)
{
	int ret;

	try_to_migrate(src, 0);
	cr_assert_not(folio_mapped(src));
	memcpy(folio_address(dst), folio_address(src), folio_size(src));
	ret = folio_migrate_mapping(NULL, dst, src, extra);
	if (ret) {
		remove_migration_ptes(src, src, 0);
		return ret;
	}
	folio_migrate_flags(dst, src);
	remove_migration_ptes(src, dst, 0);
	return 0;
}

/* migrate_to_ram: copy the faulting page's folio back into system RAM. */
static vm_fault_t t_migrate_to_ram(struct vm_fault *vmf)
{
	struct folio *dfolio = page_folio(vmf->page);
	struct folio *new;

	cr_assert(folio_test_locked(dfolio));
	cr_assert(folio_is_device_private(dfolio));
	tdev.nr_migrate_to_ram++;
	if (!vmf->pte)
		tdev.nr_pmd_faults++;
	if (tdev.fail_migrate)
		return VM_FAULT_SIGBUS;
	new = folio_alloc(page_machine(folio_head(dfolio)), 0, folio_order(dfolio));
	if (!new)
		return VM_FAULT_OOM;
	folio_lock(new);
	cr_assert_eq(move_folio(dfolio, new, 0), 0);
	folio_unlock(new);
	folio_put(new);
	return 0;
}

static const struct dev_pagemap_ops t_ops = {
	.folio_free = t_folio_free,
	.migrate_to_ram = t_migrate_to_ram,
};

static void dev_create(enum memory_type type)
{
	void *bytes;

	tdev.res = request_free_mem_region(DEV_SIZE, "tdev");
	cr_assert(!IS_ERR_OR_NULL(tdev.res));
	tdev.pgmap.type = type;
	tdev.pgmap.ops = &t_ops;
	tdev.pgmap.owner = &owner_cookie;
	tdev.pgmap.range.start = tdev.res->start;
	tdev.pgmap.range.end = tdev.res->end;
	tdev.pgmap.nr_range = 1;
	bytes = memremap_pages(&tdev.pgmap, machine);
	cr_assert(!IS_ERR_OR_NULL(bytes));
	tdev.base_pfn = (unsigned long)(tdev.res->start >> PAGE_SHIFT);
}

static void setup(void)
{
	machine_setup();
	memset(&tdev, 0, sizeof(tdev));
	dev_create(MEMORY_DEVICE_PRIVATE);
}

static void teardown(void)
{
	assert_audit_clean();
	memunmap_pages(&tdev.pgmap);
	cr_assert_null(tdev.pgmap.priv, "device pages still in use at teardown");
	release_mem_region(tdev.res);
	machine_teardown();
}

/* Migrate the folio mapped at @addr of @mm to a new device folio; return it. */
static struct folio *to_device(struct mm_struct *mm, unsigned long addr)
{
	struct folio *src = folio_at(mm, addr), *dst;

	mmap_read_lock(mm);
	folio_get(src);
	folio_lock(src);
	dst = dev_alloc(folio_order(src));
	cr_assert_eq(move_folio(src, dst, 0), 0);
	folio_unlock(src);
	folio_unlock(dst);
	folio_put(dst);
	folio_put(src); /* the last reference: back to the buddy allocator */
	mmap_read_unlock(mm);
	return dst;
}

static unsigned int pm_swap_type(uint64_t pm) { return (unsigned int)(pm & ((1u << PM_SWAP_TYPE_BITS) - 1)); }

TestSuite(device_entries, .init = setup, .fini = teardown);

Test(device_entries, install_then_read_faults_back)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct folio *dev;
	uint64_t pm;

	fill_pattern(mm, addr, 4 * PAGE_SIZE, 7);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 4);
	dev = to_device(mm, addr + PAGE_SIZE);
	cr_assert(folio_is_device_private(dev));
	cr_assert_eq(folio_ref_count(dev), 1);
	cr_assert_eq(folio_mapcount(dev), 1);
	cr_assert(folio_test_anon(dev));
	cr_assert(PageAnonExclusive(folio_head(dev)));
	pm = pagemap(mm, addr + PAGE_SIZE);
	cr_assert(pm & PM_SWAP);
	cr_assert_not(pm & PM_PRESENT);
	cr_assert_eq(pm_swap_type(pm), SWP_DEVICE_WRITE);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 4); /* device-private pages count as anon */
	cr_assert_eq(smaps(mm).rss, 4 * PAGE_SIZE);
	for (unsigned long i = 0; i < PAGE_SIZE; i++)
		cr_assert_eq(((uint8_t *)folio_address(dev))[i], pattern_byte(7, PAGE_SIZE + i));
	assert_audit_clean();

	check_pattern(mm, addr, 4 * PAGE_SIZE, 7);
	cr_assert_eq(tdev.nr_migrate_to_ram, 1);
	cr_assert_eq(tdev.nr_freed, 1);
	cr_assert(pagemap(mm, addr + PAGE_SIZE) & PM_PRESENT);
	cr_assert_not(folio_is_zone_device(folio_at(mm, addr + PAGE_SIZE)));
	cr_assert(PageAnonExclusive(pfn_to_page(pfn_at(mm, addr + PAGE_SIZE))));
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 4);
	assert_audit_clean();
	mmput(mm);
}

Test(device_entries, write_faults_back_and_writes)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long pfn;

	fill_pattern(mm, addr, PAGE_SIZE, 3);
	to_device(mm, addr);
	cr_assert_eq(cpu_write(mm, addr + 100, "xyz", 3), 0);
	cr_assert_eq(tdev.nr_migrate_to_ram, 1);
	pfn = pfn_at(mm, addr);
	check_at(mm, addr, 0, 100, 3);
	check_at(mm, addr, 103, PAGE_SIZE - 103, 3);
	char buf[3];
	cr_assert_eq(cpu_read(mm, addr + 100, buf, 3), 0);
	cr_assert_eq(memcmp(buf, "xyz", 3), 0);
	/* Still exclusive: written in place, no copy. */
	cr_assert_eq(pfn_at(mm, addr), pfn);
	mmput(mm);
	cr_assert_eq(tdev.nr_freed, 1);
}

Test(device_entries, failed_migrate_to_ram_is_sigbus)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	char c;

	fill_pattern(mm, addr, PAGE_SIZE, 3);
	to_device(mm, addr);
	tdev.fail_migrate = true;
	cr_assert_eq(cpu_read(mm, addr, &c, 1), -EFAULT);
	cr_assert(pagemap(mm, addr) & PM_SWAP);
	cr_assert_not(folio_test_locked(page_folio(pfn_to_page(tdev.base_pfn))));
	tdev.fail_migrate = false;
	check_pattern(mm, addr, PAGE_SIZE, 3);
	mmput(mm);
}

Test(device_entries, munmap_dontneed_and_exit_free_device_folios)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);

	fill_pattern(mm, addr, 3 * PAGE_SIZE, 1);
	to_device(mm, addr);
	to_device(mm, addr + PAGE_SIZE);
	to_device(mm, addr + 2 * PAGE_SIZE);
	cr_assert_eq(mm_munmap(mm, addr, PAGE_SIZE), 0);
	cr_assert_eq(tdev.nr_freed, 1);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 2);
	cr_assert_eq(mm_madvise(mm, addr + PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED), 0);
	cr_assert_eq(tdev.nr_freed, 2);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 1);
	check_zero(mm, addr + PAGE_SIZE, PAGE_SIZE);
	/* MADV_FREE leaves device-private entries alone (Linux skips them). */
	cr_assert_eq(mm_madvise(mm, addr + 2 * PAGE_SIZE, PAGE_SIZE, MADV_FREE), 0);
	cr_assert(pagemap(mm, addr + 2 * PAGE_SIZE) & PM_SWAP);
	assert_audit_clean();
	mmput(mm);
	cr_assert_eq(tdev.nr_freed, 3);
	cr_assert_eq(tdev.nr_migrate_to_ram, 0);
}

Test(device_entries, fork_shares_and_write_protects)
{
	struct mm_struct *mm = new_mm(), *child;
	unsigned long addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct folio *dev;
	unsigned long pfn;

	fill_pattern(mm, addr, 2 * PAGE_SIZE, 5);
	dev = to_device(mm, addr);
	cr_assert_eq(pm_swap_type(pagemap(mm, addr)), SWP_DEVICE_WRITE);
	child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	cr_assert_eq(folio_ref_count(dev), 2);
	cr_assert_eq(folio_mapcount(dev), 2);
	cr_assert_not(PageAnonExclusive(folio_head(dev)));
	cr_assert_eq(pm_swap_type(pagemap(mm, addr)), SWP_DEVICE_READ);
	cr_assert_eq(pm_swap_type(pagemap(child, addr)), SWP_DEVICE_READ);
	cr_assert_eq(mm_get_rss(child, MM_ANONPAGES), 2);
	assert_audit_clean();

	/* The child's read brings the page back for both. */
	check_pattern(child, addr, 2 * PAGE_SIZE, 5);
	cr_assert_eq(tdev.nr_migrate_to_ram, 1);
	cr_assert_eq(tdev.nr_freed, 1);
	pfn = pfn_at(child, addr);
	cr_assert_eq(pfn_at(mm, addr), pfn);
	cr_assert_eq(folio_mapcount(folio_at(mm, addr)), 2);
	assert_audit_clean();
	/* A write in the parent copies; the child keeps the old bytes. */
	fill_pattern(mm, addr, PAGE_SIZE, 9);
	cr_assert_neq(pfn_at(mm, addr), pfn);
	check_pattern(child, addr, PAGE_SIZE, 5);
	check_pattern(mm, addr, PAGE_SIZE, 9);
	mmput(child);
	mmput(mm);
}

Test(device_entries, exit_of_one_mm_after_fork)
{
	struct mm_struct *mm = new_mm(), *child;
	unsigned long addr = map_anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct folio *dev;

	fill_pattern(mm, addr, PAGE_SIZE, 5);
	dev = to_device(mm, addr);
	child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	mmput(mm);
	cr_assert_eq(folio_ref_count(dev), 1);
	cr_assert_eq(tdev.nr_freed, 0);
	assert_audit_clean();
	mmput(child);
	cr_assert_eq(tdev.nr_freed, 1);
}

Test(device_entries, mprotect_removes_write)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	char c = 'q';

	fill_pattern(mm, addr, PAGE_SIZE, 2);
	to_device(mm, addr);
	cr_assert_eq(mm_mprotect(mm, addr, PAGE_SIZE, PROT_READ), 0);
	cr_assert_eq(pm_swap_type(pagemap(mm, addr)), SWP_DEVICE_READ);
	cr_assert_eq(cpu_write(mm, addr, &c, 1), -EFAULT);
	cr_assert_eq(tdev.nr_migrate_to_ram, 0);
	cr_assert_eq(mm_mprotect(mm, addr, PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(pm_swap_type(pagemap(mm, addr)), SWP_DEVICE_READ);
	assert_audit_clean();
	/* The page is still exclusive: the write fault reuses the RAM copy. */
	cr_assert_eq(cpu_write(mm, addr, &c, 1), 0);
	cr_assert_eq(tdev.nr_migrate_to_ram, 1);
	check_at(mm, addr, 1, PAGE_SIZE - 1, 2);
	cr_assert(PageAnonExclusive(pfn_to_page(pfn_at(mm, addr))));
	mmput(mm);
}

Test(device_entries, mremap_moves_entries)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long dst = map_anon(mm, 0, 8 * PAGE_SIZE, PROT_NONE, 0);
	long moved;

	fill_pattern(mm, addr, 2 * PAGE_SIZE, 4);
	to_device(mm, addr + PAGE_SIZE);
	moved = mm_mremap(mm, addr, 2 * PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED,
			  dst + 3 * PAGE_SIZE);
	cr_assert_eq(moved, (long)(dst + 3 * PAGE_SIZE));
	cr_assert(pagemap(mm, dst + 4 * PAGE_SIZE) & PM_SWAP);
	cr_assert_eq(pagemap(mm, addr + PAGE_SIZE), 0);
	assert_audit_clean();
	check_pattern(mm, dst + 3 * PAGE_SIZE, 2 * PAGE_SIZE, 4);
	cr_assert_eq(tdev.nr_migrate_to_ram, 1);
	mmput(mm);
}

Test(device_entries, gup_faults_device_page_back)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct page *page;
	long got;

	fill_pattern(mm, addr, PAGE_SIZE, 8);
	to_device(mm, addr);
	mmap_read_lock(mm);
	got = get_user_pages_remote(mm, addr, 1, FOLL_WRITE, &page, NULL);
	mmap_read_unlock(mm);
	cr_assert_eq(got, 1);
	cr_assert_eq(tdev.nr_migrate_to_ram, 1);
	cr_assert_not(is_zone_device_page(page));
	cr_assert_eq(page_to_pfn(page), pfn_at(mm, addr));
	put_page(page);
	check_pattern(mm, addr, PAGE_SIZE, 8);
	mmput(mm);
}

/* A CPU access to a device page the driver holds locked waits for the unlock. */
struct reader {
	struct mm_struct *mm;
	unsigned long addr;
	atomic_int done;
	int err;
};

static void *read_thread(void *arg)
{
	struct reader *r = arg;
	char c;

	r->err = cpu_read(r->mm, r->addr, &c, 1);
	atomic_store(&r->done, 1);
	return NULL;
}

Test(device_entries, fault_on_locked_device_page_waits)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct reader r = { .mm = mm, .addr = addr };
	struct folio *dev;
	pthread_t t;

	fill_pattern(mm, addr, PAGE_SIZE, 6);
	dev = to_device(mm, addr);
	folio_lock(dev);
	cr_assert_eq(pthread_create(&t, NULL, read_thread, &r), 0);
	for (int i = 0; i < 20; i++) {
		usleep(1000);
		cr_assert_eq(atomic_load(&r.done), 0, "the fault did not wait for the folio lock");
	}
	cr_assert_eq(tdev.nr_migrate_to_ram, 0);
	folio_unlock(dev);
	pthread_join(t, NULL);
	cr_assert_eq(r.err, 0);
	cr_assert_eq(tdev.nr_migrate_to_ram, 1);
	check_pattern(mm, addr, PAGE_SIZE, 6);
	mmput(mm);
}

/* ---- PMD-level device-private entries ---- */

static unsigned long thp_on_device(struct mm_struct *mm, struct folio **devp)
{
	unsigned long addr = map_thp(mm, PMD_SIZE);

	fill_pattern(mm, addr, PMD_SIZE, 11);
	cr_assert(folio_test_large(folio_at(mm, addr)));
	*devp = to_device(mm, addr);
	cr_assert_eq(folio_order(*devp), HPAGE_PMD_ORDER);
	cr_assert_eq(folio_entire_mapcount(*devp), 1);
	cr_assert_eq(folio_ref_count(*devp), 1);
	return addr;
}

Test(device_entries, pmd_entry_faults_back_whole)
{
	struct mm_struct *mm = new_mm();
	struct folio *dev;
	unsigned long addr = thp_on_device(mm, &dev);

	for (unsigned long off = 0; off < PMD_SIZE; off += 64 * PAGE_SIZE)
		cr_assert(pagemap(mm, addr + off) & PM_SWAP);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)HPAGE_PMD_NR);
	assert_audit_clean();
	check_pattern(mm, addr, PMD_SIZE, 11);
	cr_assert_eq(tdev.nr_pmd_faults, 1);
	cr_assert_eq(tdev.nr_freed, 1);
	cr_assert_eq(anon_huge(mm), PMD_SIZE);
	mmput(mm);
}

Test(device_entries, pmd_entry_partial_munmap_splits)
{
	struct mm_struct *mm = new_mm();
	struct folio *dev;
	unsigned long addr = thp_on_device(mm, &dev);

	cr_assert_eq(mm_munmap(mm, addr, PAGE_SIZE), 0);
	cr_assert_eq(folio_ref_count(dev), (int)HPAGE_PMD_NR - 1);
	cr_assert_eq(folio_mapcount(dev), (int)HPAGE_PMD_NR - 1);
	cr_assert_eq(folio_entire_mapcount(dev), 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)HPAGE_PMD_NR - 1);
	cr_assert(pagemap(mm, addr + PAGE_SIZE) & PM_SWAP);
	assert_audit_clean();
	/* A PTE-level fault on the split device folio brings the whole folio back. */
	check_at(mm, addr, PAGE_SIZE, PMD_SIZE - PAGE_SIZE, 11);
	cr_assert_eq(tdev.nr_freed, 1);
	assert_audit_clean();
	mmput(mm);
}

Test(device_entries, pmd_entry_fork_and_mprotect)
{
	struct mm_struct *mm = new_mm(), *child;
	struct folio *dev;
	unsigned long addr = thp_on_device(mm, &dev);

	child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	cr_assert_eq(folio_ref_count(dev), 2);
	cr_assert_eq(folio_entire_mapcount(dev), 2);
	cr_assert_eq(pm_swap_type(pagemap(mm, addr)), SWP_DEVICE_READ);
	cr_assert_eq(pm_swap_type(pagemap(child, addr)), SWP_DEVICE_READ);
	assert_audit_clean();
	cr_assert_eq(mm_mprotect(child, addr, PMD_SIZE / 2, PROT_READ), 0); /* splits the child's PMD */
	assert_audit_clean();
	mmput(child);
	cr_assert_eq(folio_ref_count(dev), 1);
	cr_assert_eq(mm_mprotect(mm, addr, PMD_SIZE, PROT_READ), 0);
	assert_audit_clean();
	check_pattern(mm, addr, PMD_SIZE, 11);
	mmput(mm);
	cr_assert_eq(tdev.nr_freed, 1);
}

/* ---- device-coherent pages: present PTEs, accessed in place ---- */

TestSuite(device_coherent, .init = machine_setup, .fini = teardown);

Test(device_coherent, accessed_in_place)
{
	struct mm_struct *mm;
	unsigned long addr;
	struct folio *dev;

	memset(&tdev, 0, sizeof(tdev));
	dev_create(MEMORY_DEVICE_COHERENT);
	mm = new_mm();
	addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	fill_pattern(mm, addr, 2 * PAGE_SIZE, 12);
	dev = to_device(mm, addr);
	cr_assert(folio_is_device_coherent(dev));
	cr_assert(pagemap(mm, addr) & PM_PRESENT);
	cr_assert_eq(pfn_at(mm, addr), folio_pfn(dev));
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 2);
	assert_audit_clean();
	check_pattern(mm, addr, 2 * PAGE_SIZE, 12);
	cr_assert_eq(cpu_write(mm, addr + 5, "dev", 3), 0);
	cr_assert_eq(memcmp((char *)folio_address(dev) + 5, "dev", 3), 0);
	cr_assert_eq(pfn_at(mm, addr), folio_pfn(dev)); /* written in place */
	cr_assert_eq(tdev.nr_migrate_to_ram, 0);
	/* fork shares it COW like any anonymous page. */
	struct mm_struct *child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	cr_assert_eq(folio_ref_count(dev), 2);
	assert_audit_clean();
	mmput(child);
	cr_assert_eq(mm_munmap(mm, addr, PAGE_SIZE), 0);
	cr_assert_eq(tdev.nr_freed, 1);
	mmput(mm);
}

Test(device_coherent, longterm_pin_migrates_to_ram)
{
	struct mm_struct *mm;
	unsigned long addr;
	struct folio *dev;
	struct page *pages[2];
	long got;

	memset(&tdev, 0, sizeof(tdev));
	dev_create(MEMORY_DEVICE_COHERENT);
	mm = new_mm();
	addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	fill_pattern(mm, addr, 2 * PAGE_SIZE, 13);
	dev = to_device(mm, addr + PAGE_SIZE);
	/* A short-term pin holds the coherent page where it is. */
	mmap_read_lock(mm);
	got = pin_user_pages_remote(mm, addr + PAGE_SIZE, 1, FOLL_WRITE, pages, NULL);
	mmap_read_unlock(mm);
	cr_assert_eq(got, 1);
	cr_assert_eq(page_folio(pages[0]), dev);
	unpin_user_page(pages[0]);
	/* A long-term one moves it to system RAM first. */
	mmap_read_lock(mm);
	got = pin_user_pages_remote(mm, addr, 2, FOLL_WRITE | FOLL_LONGTERM, pages, NULL);
	mmap_read_unlock(mm);
	cr_assert_eq(got, 2);
	cr_assert_not(is_zone_device_page(pages[1]));
	cr_assert_eq(page_to_pfn(pages[1]), pfn_at(mm, addr + PAGE_SIZE));
	cr_assert_eq(tdev.nr_freed, 1);
	cr_assert(folio_maybe_dma_pinned(page_folio(pages[1])));
	assert_audit_clean();
	unpin_user_pages(pages, 2);
	check_pattern(mm, addr, 2 * PAGE_SIZE, 13);
	mmput(mm);
}

Test(device_entries, pmd_entry_mremap_and_dontneed)
{
	struct mm_struct *mm = new_mm();
	struct folio *dev;
	unsigned long addr = thp_on_device(mm, &dev);
	unsigned long dst = map_anon(mm, 0, 4 * PMD_SIZE, PROT_NONE, 0);
	unsigned long to = ALIGN(dst, PMD_SIZE) + PMD_SIZE;
	long moved;

	moved = mm_mremap(mm, addr, PMD_SIZE, PMD_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	cr_assert_eq(moved, (long)to);
	cr_assert_eq(folio_entire_mapcount(dev), 1, "moved whole, still one PMD");
	cr_assert(pagemap(mm, to + 3 * PAGE_SIZE) & PM_SWAP);
	assert_audit_clean();
	/* DONTNEED of half of it splits the PMD and drops 256 mappings. */
	cr_assert_eq(mm_madvise(mm, to, PMD_SIZE / 2, MADV_DONTNEED), 0);
	cr_assert_eq(folio_mapcount(dev), (int)HPAGE_PMD_NR / 2);
	cr_assert_eq(folio_ref_count(dev), (int)HPAGE_PMD_NR / 2);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)HPAGE_PMD_NR / 2);
	assert_audit_clean();
	cr_assert_eq(mm_madvise(mm, to, PMD_SIZE, MADV_DONTNEED), 0);
	cr_assert_eq(tdev.nr_freed, 1);
	cr_assert_eq(tdev.nr_migrate_to_ram, 0);
	mmput(mm);
}

Test(device_entries, pmd_entry_whole_munmap_and_exit)
{
	struct mm_struct *mm = new_mm();
	struct folio *dev;
	unsigned long addr = thp_on_device(mm, &dev);
	unsigned long addr2;

	cr_assert_eq(mm_munmap(mm, addr, PMD_SIZE), 0);
	cr_assert_eq(tdev.nr_freed, 1);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	addr2 = thp_on_device(mm, &dev);
	(void)addr2;
	assert_audit_clean();
	mmput(mm);
	cr_assert_eq(tdev.nr_freed, 2);
}

/* Threads faulting the same device pages at once: each page comes back exactly once. */
struct faulter {
	struct mm_struct *mm;
	unsigned long addr, len;
	int err;
};

static void *fault_thread(void *arg)
{
	struct faulter *f = arg;
	uint8_t *buf = malloc(f->len);

	f->err = cpu_read(f->mm, f->addr, buf, f->len);
	for (unsigned long i = 0; !f->err && i < f->len; i++)
		if (buf[i] != pattern_byte(17, i))
			f->err = -EIO;
	free(buf);
	return NULL;
}

Test(device_entries, concurrent_faults_migrate_once)
{
	struct mm_struct *mm = new_mm();
	unsigned long len = 16 * PAGE_SIZE;
	unsigned long addr = map_anon(mm, 0, len, PROT_READ | PROT_WRITE, 0);
	struct faulter f[4];
	pthread_t t[4];

	fill_pattern(mm, addr, len, 17);
	for (unsigned long off = 0; off < len; off += PAGE_SIZE)
		to_device(mm, addr + off);
	for (int i = 0; i < 4; i++) {
		f[i] = (struct faulter){ .mm = mm, .addr = addr, .len = len };
		cr_assert_eq(pthread_create(&t[i], NULL, fault_thread, &f[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(f[i].err, 0);
	}
	cr_assert_eq(tdev.nr_migrate_to_ram, 16);
	cr_assert_eq(tdev.nr_freed, 16);
	assert_audit_clean();
	mmput(mm);
}

Test(device_entries, collapse_and_dump_leave_device_entries_alone)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, PMD_SIZE);
	char *text = NULL;
	size_t size = 0;
	FILE *out;

	cr_assert_eq(mm_madvise(mm, addr, PMD_SIZE, MADV_NOHUGEPAGE), 0);
	fill_pattern(mm, addr, PMD_SIZE, 18);
	cr_assert_eq(anon_huge(mm), 0);
	to_device(mm, addr + 3 * PAGE_SIZE);
	cr_assert_eq(mm_madvise(mm, addr, PMD_SIZE, MADV_HUGEPAGE), 0);
	cr_assert_eq(mm_madvise(mm, addr, PMD_SIZE, MADV_COLLAPSE), -EINVAL);
	cr_assert(pagemap(mm, addr + 3 * PAGE_SIZE) & PM_SWAP);
	out = open_memstream(&text, &size);
	mm_dump(mm, out);
	fclose(out);
	cr_assert_not_null(strstr(text, "type"), "the dump shows the device-private entry: %s", text);
	free(text);
	assert_audit_clean();
	check_pattern(mm, addr, PMD_SIZE, 18);
	mmput(mm);
}

Test(device_coherent, collapse_leaves_coherent_pages)
{
	struct mm_struct *mm;
	unsigned long addr;
	struct folio *dev;

	memset(&tdev, 0, sizeof(tdev));
	dev_create(MEMORY_DEVICE_COHERENT);
	mm = new_mm();
	addr = map_thp(mm, PMD_SIZE);
	cr_assert_eq(mm_madvise(mm, addr, PMD_SIZE, MADV_NOHUGEPAGE), 0);
	fill_pattern(mm, addr, PMD_SIZE, 19);
	dev = to_device(mm, addr + 9 * PAGE_SIZE);
	cr_assert_eq(mm_madvise(mm, addr, PMD_SIZE, MADV_HUGEPAGE), 0);
	cr_assert_eq(mm_madvise(mm, addr, PMD_SIZE, MADV_COLLAPSE), -EINVAL);
	cr_assert_eq(pfn_at(mm, addr + 9 * PAGE_SIZE), folio_pfn(dev));
	check_pattern(mm, addr, PMD_SIZE, 19);
	mmput(mm);
	cr_assert_eq(tdev.nr_freed, 1);
}
