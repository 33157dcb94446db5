/* SPDX-License-Identifier: MIT */
/*
 * tests/test_memremap.c - device memory: request_free_mem_region(),
 * memremap_pages()/memunmap_pages(), zone-device folio life cycle,
 * page_pgmap()/page_address()/page_machine() of device pages, and the
 * audit of device pages.
 */
#include "helpers.h"

#include <string.h>

#include "internal.h"
#include "uhmm/memremap.h"

#define DEV_SIZE (128UL << 20)

static int nr_freed;
static struct folio *last_freed;
static unsigned int last_freed_order;
static int last_freed_refcount;

static void t_folio_free(struct folio *folio)
{
	nr_freed++;
	last_freed = folio;
	last_freed_order = folio_order(folio);
	last_freed_refcount = folio_ref_count(folio);
}

static vm_fault_t t_migrate_to_ram(struct vm_fault *vmf)
{
	(void)vmf;
	return VM_FAULT_SIGBUS;
}

static const struct dev_pagemap_ops t_ops = {
	.folio_free = t_folio_free,
	.migrate_to_ram = t_migrate_to_ram,
};
static const struct dev_pagemap_ops t_ops_nomigrate = {
	.folio_free = t_folio_free,
};

static int owner_cookie;
static struct resource *res;
static struct dev_pagemap pgmap;

static void setup(void)
{
	machine_setup();
	nr_freed = 0;
	last_freed = NULL;
	res = NULL;
	memset(&pgmap, 0, sizeof(pgmap));
}

static void teardown(void)
{
	if (pgmap.priv)
		memunmap_pages(&pgmap);
	if (res)
		release_mem_region(res);
	machine_teardown();
}

static void *remap(enum memory_type type, const struct dev_pagemap_ops *ops)
{
	void *bytes;

	res = request_free_mem_region(DEV_SIZE, "test");
	cr_assert(!IS_ERR_OR_NULL(res), "request_free_mem_region: %ld", PTR_ERR(res));
	pgmap.type = type;
	pgmap.ops = ops;
	pgmap.owner = &owner_cookie;
	pgmap.range.start = res->start;
	pgmap.range.end = res->end;
	pgmap.nr_range = 1;
	bytes = memremap_pages(&pgmap, machine);
	cr_assert(!IS_ERR_OR_NULL(bytes), "memremap_pages: %ld", PTR_ERR(bytes));
	return bytes;
}

static unsigned long first_pfn(void) { return (unsigned long)(pgmap.range.start >> PAGE_SHIFT); }

TestSuite(memremap, .init = setup, .fini = teardown);

Test(memremap, request_free_mem_region_errors)
{
	cr_assert_eq(PTR_ERR(request_free_mem_region(0, "x")), -EINVAL);
	cr_assert_eq(PTR_ERR(request_free_mem_region(PAGE_SIZE + 1, "x")), -EINVAL);
	cr_assert_eq(PTR_ERR(request_free_mem_region(1UL << 50, "x")), -ERANGE);
	res = request_free_mem_region(PAGE_SIZE, "one page");
	cr_assert(!IS_ERR_OR_NULL(res));
	cr_assert_eq(resource_size(res), PAGE_SIZE);
	cr_assert(IS_ALIGNED(res->start, PAGE_SIZE));
	/* Reserved but not memremapped: valid PFNs with no pgmap, bytes or machine. */
	cr_assert(pfn_valid(res->start >> PAGE_SHIFT));
	cr_assert_null(page_pgmap(pfn_to_page(res->start >> PAGE_SHIFT)));
	cr_assert_null(page_address(pfn_to_page(res->start >> PAGE_SHIFT)));
	cr_assert_null(page_machine(pfn_to_page(res->start >> PAGE_SHIFT)));
	release_mem_region(res);
	res = NULL;
}

Test(memremap, private_pages_have_pgmap_bytes_and_machine)
{
	void *bytes = remap(MEMORY_DEVICE_PRIVATE, &t_ops);
	unsigned long pfn = first_pfn(), nr = DEV_SIZE >> PAGE_SHIFT;
	struct page *page = pfn_to_page(pfn), *last = pfn_to_page(pfn + nr - 1);

	cr_assert_eq(pgmap.bytes, bytes);
	cr_assert_eq(pgmap.machine, machine);
	cr_assert_eq(page_pgmap(page), &pgmap);
	cr_assert_eq(page_pgmap(last), &pgmap);
	cr_assert(is_device_private_page(last));
	cr_assert_not(is_device_coherent_page(last));
	cr_assert(is_zone_device_page(page));
	cr_assert_eq(page_address(page), bytes);
	cr_assert_eq(page_address(last), (char *)bytes + (nr - 1) * PAGE_SIZE);
	cr_assert_eq(page_machine(last), machine);
	cr_assert_eq(page_ref_count(last), 0);
	cr_assert_eq(atomic_load(&last->_mapcount), -1);
	cr_assert_eq(page->pgmap, &pgmap);
	/* The bytes are real. */
	memset(page_address(last), 0x5a, PAGE_SIZE);
	cr_assert_eq(((uint8_t *)bytes)[(nr - 1) * PAGE_SIZE + 17], 0x5a);
	/* System RAM has no pgmap. */
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	fill_pattern(mm, addr, PAGE_SIZE, 1);
	cr_assert_null(page_pgmap(pfn_to_page(pfn_at(mm, addr))));
	cr_assert_not(folio_is_zone_device(folio_at(mm, addr)));
	mmput(mm);
	/* A machine with memremapped memory cannot go away. */
	cr_assert_eq(uhmm_machine_destroy(machine), -EBUSY);
	assert_audit_clean();
}

Test(memremap, memremap_pages_errors)
{
	struct dev_pagemap bad;
	struct dev_pagemap_ops noop = { 0 };

	res = request_free_mem_region(DEV_SIZE, "test");
	cr_assert(!IS_ERR_OR_NULL(res));
	memset(&bad, 0, sizeof(bad));
	bad.type = MEMORY_DEVICE_PRIVATE;
	bad.ops = &t_ops;
	bad.owner = &owner_cookie;
	bad.range.start = res->start;
	bad.range.end = res->end;
	bad.nr_range = 1;

	bad.type = 0;
	cr_assert_eq(PTR_ERR(memremap_pages(&bad, machine)), -EINVAL);
	bad.type = MEMORY_DEVICE_FS_DAX;
	cr_assert_eq(PTR_ERR(memremap_pages(&bad, machine)), -EINVAL);
	bad.type = MEMORY_DEVICE_PRIVATE;
	bad.ops = NULL;
	cr_assert_eq(PTR_ERR(memremap_pages(&bad, machine)), -EINVAL);
	bad.ops = &noop;
	cr_assert_eq(PTR_ERR(memremap_pages(&bad, machine)), -EINVAL);
	bad.ops = &t_ops_nomigrate; /* private needs migrate_to_ram */
	cr_assert_eq(PTR_ERR(memremap_pages(&bad, machine)), -EINVAL);
	bad.ops = &t_ops;
	bad.owner = NULL;
	cr_assert_eq(PTR_ERR(memremap_pages(&bad, machine)), -EINVAL);
	bad.owner = &owner_cookie;
	bad.nr_range = 2;
	cr_assert_eq(PTR_ERR(memremap_pages(&bad, machine)), -EINVAL);
	bad.nr_range = 1;
	bad.range.end -= PAGE_SIZE; /* not the reserved range */
	cr_assert_eq(PTR_ERR(memremap_pages(&bad, machine)), -EINVAL);
	bad.range.end += PAGE_SIZE;
	/* System RAM is not a reserved range. */
	bad.range.start = (uint64_t)page_to_pfn(pfn_to_page(uhmm_zero_pfn(machine))) << PAGE_SHIFT;
	bad.range.end = bad.range.start + DEV_SIZE - 1;
	cr_assert_eq(PTR_ERR(memremap_pages(&bad, machine)), -EINVAL);
	bad.range.start = res->start;
	bad.range.end = res->end;
	cr_assert_null(bad.priv);
	cr_assert_null(page_pgmap(pfn_to_page(res->start >> PAGE_SHIFT)));

	/* A coherent pgmap needs no migrate_to_ram; a second memremap is refused. */
	bad.type = MEMORY_DEVICE_COHERENT;
	bad.ops = &t_ops_nomigrate;
	cr_assert(!IS_ERR_OR_NULL(memremap_pages(&bad, machine)));
	cr_assert(is_device_coherent_page(pfn_to_page(res->start >> PAGE_SHIFT)));
	pgmap = bad;
	cr_assert_eq(PTR_ERR(memremap_pages(&bad, machine)), -EINVAL);
	/* release_mem_region refuses a memremapped range. */
	release_mem_region(res);
	cr_assert_eq(page_pgmap(pfn_to_page(res->start >> PAGE_SHIFT)), &bad);
	memunmap_pages(&bad);
	pgmap.priv = NULL;
	cr_assert_null(page_pgmap(pfn_to_page(res->start >> PAGE_SHIFT)));
	cr_assert_null(page_address(pfn_to_page(res->start >> PAGE_SHIFT)));
	cr_assert_null(bad.bytes);
}

Test(memremap, folio_life_cycle_order0)
{
	remap(MEMORY_DEVICE_PRIVATE, &t_ops);
	struct page *page = pfn_to_page(first_pfn() + 5);
	struct folio *folio = page_folio(page);
	int data;

	folio_set_zone_device_data(folio, &data);
	zone_device_page_init(page);
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert(folio_test_locked(folio));
	cr_assert_not(folio_test_large(folio));
	cr_assert_null(folio->mapping);
	cr_assert_eq(folio_zone_device_data(folio), &data);
	assert_audit_clean(); /* held by the driver: not a leak */
	folio_get(folio);
	folio_unlock(folio);
	folio_put(folio);
	cr_assert_eq(nr_freed, 0);
	folio_put(folio);
	cr_assert_eq(nr_freed, 1);
	cr_assert_eq(last_freed, folio);
	cr_assert_eq(last_freed_refcount, 0);
	cr_assert_eq(folio_ref_count(folio), 0);
	cr_assert_eq(folio_zone_device_data(folio), &data);
	/* Reusable. */
	zone_device_folio_init(folio, &pgmap, 0);
	cr_assert_eq(folio_ref_count(folio), 1);
	folio_unlock(folio);
	/* Anon state is cleared on free. */
	folio->mapping = (void *)((unsigned long)&owner_cookie | PAGE_MAPPING_ANON);
	SetPageAnonExclusive(page);
	set_page_flag(page, PG_dirty);
	folio_put(folio);
	cr_assert_eq(nr_freed, 2);
	cr_assert_null(folio->mapping);
	cr_assert_not(PageAnonExclusive(page));
	cr_assert_not(folio_test_dirty(folio));
}

Test(memremap, folio_life_cycle_large)
{
	remap(MEMORY_DEVICE_PRIVATE, &t_ops);
	struct page *head = pfn_to_page(first_pfn() + HPAGE_PMD_NR);
	struct folio *folio = (struct folio *)(void *)head;

	/* Misaligned or odd orders are refused. */
	zone_device_folio_init((struct folio *)(void *)(head + 1), &pgmap, HPAGE_PMD_ORDER);
	cr_assert_eq(page_ref_count(head + 1), 0);
	zone_device_folio_init(folio, &pgmap, 3);
	cr_assert_eq(page_ref_count(head), 0);

	zone_device_folio_init(folio, &pgmap, HPAGE_PMD_ORDER);
	cr_assert(folio_test_large(folio));
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER);
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(page_folio(head + 511), folio);
	cr_assert_eq(page_pgmap(head + 511), &pgmap);
	cr_assert_eq(folio_mapcount(folio), 0);
	cr_assert(folio_test_locked(folio));
	folio_unlock(folio);
	assert_audit_clean();
	folio_put(folio);
	cr_assert_eq(nr_freed, 1);
	cr_assert_eq(last_freed_order, HPAGE_PMD_ORDER); /* the driver sees the order */

	/* A former tail can be handed out alone, then the head at order 0. */
	zone_device_page_init(head + 7);
	cr_assert_eq(page_folio(head + 7), (struct folio *)(void *)(head + 7));
	cr_assert_eq(page_ref_count(head + 7), 1);
	zone_device_page_init(head);
	cr_assert_not(folio_test_large(folio));
	cr_assert_eq(page_folio(head + 3), (struct folio *)(void *)(head + 3));
	cr_assert_eq(page_folio(head + 7), (struct folio *)(void *)(head + 7)); /* untouched */
	cr_assert_eq(page_ref_count(head + 7), 1);
	/* In use pages are refused. */
	zone_device_folio_init(folio, &pgmap, HPAGE_PMD_ORDER);
	cr_assert_not(folio_test_large(folio));
	assert_audit_clean();
	folio_unlock(folio);
	folio_unlock(page_folio(head + 7));
	folio_put(folio);
	folio_put(page_folio(head + 7));
	cr_assert_eq(nr_freed, 3);
}

Test(memremap, memunmap_refuses_pages_in_use)
{
	remap(MEMORY_DEVICE_PRIVATE, &t_ops);
	struct page *page = pfn_to_page(first_pfn());
	struct resource *r = res;

	zone_device_page_init(page);
	memunmap_pages(&pgmap);
	cr_assert_not_null(pgmap.priv);
	cr_assert_eq(page_pgmap(page), &pgmap);
	cr_assert_not_null(page_address(page));
	folio_unlock(page_folio(page));
	put_page(page);
	cr_assert_eq(nr_freed, 1);
	memunmap_pages(&pgmap);
	cr_assert_null(pgmap.priv);
	cr_assert_null(page_pgmap(page));
	cr_assert_null(page_machine(page));
	release_mem_region(r);
	res = NULL;
	cr_assert_not(pfn_valid(first_pfn()));
}

Test(memremap, audit_sees_bad_device_counts)
{
	remap(MEMORY_DEVICE_COHERENT, &t_ops_nomigrate);
	struct page *page = pfn_to_page(first_pfn() + 9);

	/* A free device page that claims a mapping. */
	atomic_store(&page->_mapcount, 0);
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	atomic_store(&page->_mapcount, -1);
	assert_audit_clean();
	/* An in-use device page with a mapcount nothing backs. */
	zone_device_page_init(page);
	atomic_store(&page->_mapcount, 0);
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	atomic_store(&page->_mapcount, -1);
	folio_unlock(page_folio(page));
	assert_audit_clean();
	put_page(page);
	cr_assert_eq(nr_freed, 1);
}
