// SPDX-License-Identifier: MIT
/*
 * tests/test_page_alloc.c - the machine, the PFN space, the buddy
 * allocator, folios (refcounts, lock, split) and allocation-failure
 * injection.
 *
 * Every test runs on the fixture's fresh default machine (1 GiB); tests
 * that need a small or a second machine build their own and destroy it.
 * The teardown audits the machine and checks that every page is free.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "internal.h"
#include "pfn_space.h"

TestSuite(page_alloc, .init = machine_setup, .fini = machine_teardown);

#define MiB (1UL << 20)
#define GiB (1UL << 30)

static struct uhmm_machine *make_machine(unsigned long ram_size)
{
	struct uhmm_machine_config cfg = {.ram_size = ram_size};
	struct uhmm_machine *m = uhmm_machine_create(&cfg);

	cr_assert(!IS_ERR_OR_NULL(m), "uhmm_machine_create(%#lx) = %ld", ram_size, PTR_ERR(m));
	return m;
}

static void snapshot_blocks(struct uhmm_machine *m, unsigned long blocks[NR_PAGE_ORDERS])
{
	for (unsigned int o = 0; o <= MAX_PAGE_ORDER; o++)
		blocks[o] = uhmm_nr_free_blocks(m, o);
}

static void assert_blocks(struct uhmm_machine *m, const unsigned long blocks[NR_PAGE_ORDERS])
{
	for (unsigned int o = 0; o <= MAX_PAGE_ORDER; o++)
		cr_assert_eq(uhmm_nr_free_blocks(m, o), blocks[o],
			     "order %u: %lu free blocks, want %lu", o, uhmm_nr_free_blocks(m, o),
			     blocks[o]);
}

/* The state a never-split machine has right after creation. */
static void assert_fresh_buddy(struct uhmm_machine *m)
{
	unsigned long nr = uhmm_totalram_pages(m);

	cr_assert_eq(uhmm_nr_free_pages(m), nr - 1);
	cr_assert_eq(uhmm_nr_free_blocks(m, MAX_PAGE_ORDER), nr / 512 - 1);
	for (unsigned int o = 0; o < MAX_PAGE_ORDER; o++)
		cr_assert_eq(uhmm_nr_free_blocks(m, o), 1, "order %u", o);
}

static unsigned long machine_start(struct uhmm_machine *m)
{
	return m->start_pfn;
}

/* ---- the machine ---- */

Test(page_alloc, default_machine_counters)
{
	unsigned long start = machine_start(machine), zero_pfn = uhmm_zero_pfn(machine);
	struct page *zero = pfn_to_page(zero_pfn), *last;
	const char *bytes;

	cr_assert_eq(uhmm_totalram_pages(machine), 262144);
	cr_assert_eq(uhmm_nr_reserved_pages(machine), 1);
	/* The default hugetlb pool took 8 order-9 blocks (uhmm/hugetlb.h). */
	cr_assert_eq(hugetlb_pool_pages(machine), 8 * 512);
	cr_assert_eq(uhmm_nr_free_pages(machine), 262143 - 8 * 512);
	cr_assert_eq(uhmm_nr_free_blocks(machine, 9), 511 - 8);
	for (unsigned int o = 0; o < 9; o++)
		cr_assert_eq(uhmm_nr_free_blocks(machine, o), 1, "order %u", o);
	cr_assert_eq(uhmm_nr_free_blocks(machine, 10), 0);

	cr_assert_geq(start, PFN_SPACE_FIRST_PFN);
	cr_assert_eq(start % PAGES_PER_SECTION, 0);

	/* The zero page: reserved, one reference, unmapped, zero bytes. */
	cr_assert(zero_pfn >= start && zero_pfn < start + 262144);
	cr_assert_eq(zero->flags, (1UL << PG_reserved) | (1UL << PG_zero));
	cr_assert_eq(page_ref_count(zero), 1);
	cr_assert_eq(atomic_load(&zero->_mapcount), -1);
	cr_assert(is_zero_pfn(zero_pfn));
	cr_assert_not(is_zero_pfn(zero_pfn + 1));
	cr_assert_not(is_zero_pfn(0));
	cr_assert_eq(page_machine(zero), machine);
	bytes = page_address(zero);
	for (unsigned long i = 0; i < PAGE_SIZE; i++)
		cr_assert_eq(bytes[i], 0);

	/* Lazy struct pages: the last max-order block is a free head; its tail never written. */
	last = pfn_to_page(start + 262144 - 512);
	cr_assert(test_page_flag(last, PG_buddy));
	cr_assert_eq(last->private, 9);
	cr_assert_eq(pfn_to_page(start + 262143)->flags, 0);
	cr_assert_eq(page_ref_count(pfn_to_page(start + 262143)), 0);

	cr_assert_eq(machine->thp_enabled, THP_MADVISE);
	cr_assert(machine->huge_zero_enabled);
	cr_assert_null(machine->huge_zero_folio);
	cr_assert_eq(machine->nr_mms, 0);
	cr_assert(list_empty(&machine->mms));
}

Test(page_alloc, config_and_set_thp)
{
	struct uhmm_machine_config cfg = {
		.ram_size = 4 * MiB,
		.thp_enabled = THP_ALWAYS,
		.no_huge_zero_page = true,
	};
	struct uhmm_machine *m = uhmm_machine_create(&cfg);

	cr_assert(!IS_ERR_OR_NULL(m));
	cr_assert_eq(uhmm_totalram_pages(m), 1024);
	cr_assert_eq(m->thp_enabled, THP_ALWAYS);
	cr_assert_not(m->huge_zero_enabled);
	assert_fresh_buddy(m);
	uhmm_machine_set_thp(m, THP_NEVER);
	cr_assert_eq(m->thp_enabled, THP_NEVER);
	uhmm_machine_set_thp(machine, THP_ALWAYS);
	cr_assert_eq(machine->thp_enabled, THP_ALWAYS);
	cr_assert_eq(uhmm_machine_destroy(m), 0);
}

Test(page_alloc, bad_configs)
{
	static const unsigned long bad[] = {
		4096,
		1 * MiB,
		3 * MiB,
		2 * MiB + 4096,
		64 * GiB + 2 * MiB,
		128 * GiB,
		~0UL & ~(2 * MiB - 1),
	};
	struct uhmm_machine_config cfg = {0};
	struct uhmm_machine *m;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.ram_size = bad[i];
		m = uhmm_machine_create(&cfg);
		cr_assert_eq(PTR_ERR(m), -EINVAL, "ram_size %#lx gave %ld", bad[i], PTR_ERR(m));
	}
	cfg.ram_size = 2 * MiB;
	cfg.thp_enabled = (enum thp_mode)7;
	cr_assert_eq(PTR_ERR(uhmm_machine_create(&cfg)), -EINVAL);

	/* 0 means the default size; the smallest and the largest sizes work. */
	cfg.thp_enabled = THP_MADVISE;
	cfg.ram_size = 0;
	m = uhmm_machine_create(&cfg);
	cr_assert(!IS_ERR_OR_NULL(m));
	cr_assert_eq(uhmm_totalram_pages(m), 262144);
	cr_assert_eq(uhmm_machine_destroy(m), 0);

	m = make_machine(2 * MiB);
	cr_assert_eq(uhmm_totalram_pages(m), 512);
	cr_assert_eq(uhmm_nr_free_pages(m), 511);
	cr_assert_eq(uhmm_nr_free_blocks(m, 9), 0);
	cr_assert_null(alloc_pages(m, 0, 9));
	cr_assert_eq(uhmm_machine_destroy(m), 0);

	m = make_machine(64 * GiB);
	cr_assert_eq(uhmm_totalram_pages(m), 64 * GiB / PAGE_SIZE);
	cr_assert_eq(hugetlb_pool_pages(m), 8 * 512); /* the default pool */
	cr_assert_eq(uhmm_nr_free_blocks(m, 9), 64 * GiB / PMD_SIZE - 1 - 8);
	cr_assert_eq(uhmm_machine_destroy(m), 0);
}

Test(page_alloc, destroy_busy)
{
	struct uhmm_machine *m = make_machine(4 * MiB);
	struct page *page = alloc_pages(m, 0, 0);
	struct folio *folio;
	char *bytes;

	cr_assert_not_null(page);
	cr_assert_eq(uhmm_machine_destroy(m), -EBUSY);
	/* Nothing was freed: the page and the counters are intact. */
	cr_assert_eq(uhmm_nr_free_pages(m), 1022);
	cr_assert(pfn_valid(page_to_pfn(page)));
	bytes = page_address(page);
	memset(bytes, 0x5a, PAGE_SIZE);
	cr_assert_eq(bytes[PAGE_SIZE - 1], 0x5a);
	__free_pages(page, 0);

	folio = folio_alloc(m, 0, 9);
	cr_assert_not_null(folio);
	cr_assert_eq(uhmm_machine_destroy(m), -EBUSY);
	folio_put(folio);

	pthread_mutex_lock(&m->mms_lock);
	m->nr_mms = 1;
	pthread_mutex_unlock(&m->mms_lock);
	cr_assert_eq(uhmm_machine_destroy(m), -EBUSY);
	pthread_mutex_lock(&m->mms_lock);
	m->nr_mms = 0;
	pthread_mutex_unlock(&m->mms_lock);

	assert_fresh_buddy(m);
	cr_assert_eq(uhmm_machine_destroy(m), 0);
}

/* ---- the PFN space ---- */

Test(page_alloc, pfn_round_trip_and_edges)
{
	unsigned long start = machine_start(machine), nr = uhmm_totalram_pages(machine);

	for (unsigned long pfn = start; pfn < start + nr; pfn++) {
		struct page *page = pfn_to_page(pfn);

		if (page_to_pfn(page) != pfn || !pfn_valid(pfn) || page_machine(page) != machine)
			cr_assert_fail("pfn %#lx does not round-trip", pfn);
	}
	cr_assert_not(pfn_valid(0));
	cr_assert_not(pfn_valid(start - 1));
	cr_assert(pfn_valid(start));
	cr_assert(pfn_valid(start + nr - 1));
	cr_assert_not(pfn_valid(start + nr));
	cr_assert_not(pfn_valid(PFN_SPACE_MAX_PFN));
	cr_assert_not(pfn_valid(~0UL));
	cr_assert_null(page_machine(pfn_to_page(start + nr)));
	cr_assert_null(page_address(pfn_to_page(start + nr)));
	cr_assert_null(page_address(pfn_to_page(start - 1)));
	cr_assert_eq(page_address(pfn_to_page(start)), machine->ram);
	cr_assert_eq((char *)page_address(pfn_to_page(start + nr - 1)),
		     machine->ram + (nr - 1) * PAGE_SIZE);
}

Test(page_alloc, page_address_every_page)
{
	struct uhmm_machine *m = make_machine(8 * MiB);
	unsigned long start = machine_start(m), nr = uhmm_totalram_pages(m), count = 0;
	struct page **pages = calloc(nr, sizeof(*pages));
	struct page *page;

	cr_assert_not_null(pages);
	while ((page = alloc_pages(m, 0, 0))) {
		unsigned long pfn = page_to_pfn(page);
		uint64_t *words = page_address(page);

		cr_assert_eq((char *)words, m->ram + (pfn - start) * PAGE_SIZE);
		words[0] = pfn;
		words[PAGE_SIZE / 8 - 1] = ~pfn;
		pages[count++] = page;
	}
	cr_assert_eq(count, nr - 1);
	/* Had two pages shared bytes, a later stamp would have overwritten an earlier one. */
	for (unsigned long i = 0; i < count; i++) {
		unsigned long pfn = page_to_pfn(pages[i]);
		uint64_t *words = page_address(pages[i]);

		cr_assert_eq(words[0], pfn);
		cr_assert_eq(words[PAGE_SIZE / 8 - 1], ~pfn);
		__free_pages(pages[i], 0);
	}
	free(pages);
	assert_fresh_buddy(m);
	cr_assert_eq(uhmm_machine_destroy(m), 0);
}

Test(page_alloc, two_machines)
{
	unsigned long s1 = machine_start(machine), n1 = uhmm_totalram_pages(machine);
	struct uhmm_machine *m2 = make_machine(16 * MiB), *m3;
	unsigned long s2 = machine_start(m2), n2 = uhmm_totalram_pages(m2);
	struct page *p1, *p2;

	cr_assert_eq(n2, 4096);
	cr_assert(s2 >= s1 + n1 || s1 >= s2 + n2, "ranges overlap: %#lx+%lu, %#lx+%lu", s1, n1, s2,
		  n2);
	cr_assert_eq(s2 % PAGES_PER_SECTION, 0);
	cr_assert_neq(uhmm_zero_pfn(machine), uhmm_zero_pfn(m2));
	cr_assert(is_zero_pfn(uhmm_zero_pfn(m2)));

	p1 = alloc_pages(machine, __GFP_ZERO, 0);
	p2 = alloc_pages(m2, __GFP_ZERO, 0);
	cr_assert(p1 && p2);
	cr_assert_eq(page_machine(p1), machine);
	cr_assert_eq(page_machine(p2), m2);
	memset(page_address(p1), 0x11, PAGE_SIZE);
	memset(page_address(p2), 0x22, PAGE_SIZE);
	cr_assert_eq(((uint8_t *)page_address(p1))[100], 0x11);
	cr_assert_eq(((uint8_t *)page_address(p2))[100], 0x22);
	/* The default machine's hugetlb pool; 16 MiB is too small for one. */
	n1 -= hugetlb_pool_pages(machine);
	cr_assert_eq(hugetlb_pool_pages(m2), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), n1 - 2);
	cr_assert_eq(uhmm_nr_free_pages(m2), n2 - 2);
	__free_pages(p2, 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), n1 - 2);
	cr_assert_eq(uhmm_nr_free_pages(m2), n2 - 1);
	__free_pages(p1, 0);

	/* A destroyed machine's range is invalid, then handed to the next one. */
	cr_assert_eq(uhmm_machine_destroy(m2), 0);
	cr_assert_not(pfn_valid(s2));
	cr_assert_not(pfn_valid(s2 + n2 - 1));
	cr_assert(pfn_valid(s1));
	m3 = make_machine(16 * MiB);
	cr_assert_eq(machine_start(m3), s2);
	/* Its struct pages start clean, not with m2's leftovers. */
	assert_fresh_buddy(m3);
	cr_assert_eq(pfn_to_page(s2 + 1)->flags, 1UL << PG_buddy);
	cr_assert_eq(pfn_to_page(s2 + 3)->flags, 0);
	cr_assert_eq(uhmm_machine_destroy(m3), 0);
}

/* ---- the buddy allocator ---- */

Test(page_alloc, alloc_free_every_order)
{
	unsigned long start = machine_start(machine), before[NR_PAGE_ORDERS];
	unsigned long free_before = uhmm_nr_free_pages(machine);
	struct page *held[NR_PAGE_ORDERS];

	snapshot_blocks(machine, before);
	for (unsigned int order = 0; order <= MAX_PAGE_ORDER; order++) {
		unsigned long nr = 1UL << order;
		struct page *page = alloc_pages(machine, 0, order);
		unsigned long pfn;

		cr_assert_not_null(page, "order %u", order);
		pfn = page_to_pfn(page);
		cr_assert_eq((pfn - start) % nr, 0, "order %u pfn %#lx unaligned", order, pfn);
		cr_assert_eq(page_machine(page), machine);
		cr_assert_eq(uhmm_nr_free_pages(machine), free_before - nr);
		for (unsigned long i = 0; i < nr; i++) {
			struct page *p = page + i;

			cr_assert_eq(p->flags, 0, "order %u page %lu", order, i);
			cr_assert_eq(atomic_load(&p->_mapcount), -1);
			cr_assert_eq(page_ref_count(p), i ? 0 : 1);
			cr_assert_not(PageTail(p));
			cr_assert_null(p->mapping);
			cr_assert_eq(p->private, 0);
		}
		__free_pages(page, order);
		cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
		assert_blocks(machine, before);
	}

	/* All orders at once, freed in another order: everything merges back. */
	for (unsigned int order = 0; order <= MAX_PAGE_ORDER; order++) {
		held[order] = alloc_pages(machine, 0, order);
		cr_assert_not_null(held[order]);
	}
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before - 1023);
	for (unsigned int order = 0; order <= MAX_PAGE_ORDER; order += 2)
		__free_pages(held[order], order);
	for (unsigned int order = 1; order <= MAX_PAGE_ORDER; order += 2)
		__free_pages(held[order], order);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
	assert_blocks(machine, before);
}

Test(page_alloc, order_too_large)
{
	unsigned long free_before = uhmm_nr_free_pages(machine);

	cr_assert_null(alloc_pages(machine, 0, MAX_PAGE_ORDER + 1));
	cr_assert_null(alloc_pages(machine, __GFP_NOFAIL, 31));
	cr_assert_null(folio_alloc(machine, 0, MAX_PAGE_ORDER + 1));
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
}

Test(page_alloc, exhaust_small_machine)
{
	struct uhmm_machine *m = make_machine(8 * MiB);
	unsigned long start = machine_start(m), nr = uhmm_totalram_pages(m), count = 0;
	struct page **pages = calloc(nr, sizeof(*pages));
	uint8_t *seen = calloc(nr, 1);
	struct page *page;

	cr_assert(pages && seen);
	cr_assert_eq(nr, 2048);
	cr_assert_eq(uhmm_nr_free_pages(m), 2047);
	while ((page = alloc_pages(m, 0, 0))) {
		unsigned long idx = page_to_pfn(page) - start;

		cr_assert_lt(idx, nr);
		cr_assert_eq(seen[idx], 0, "pfn %#lx handed out twice", start + idx);
		cr_assert_neq(page_to_pfn(page), uhmm_zero_pfn(m));
		seen[idx] = 1;
		pages[count++] = page;
		cr_assert_leq(count, nr);
	}
	cr_assert_eq(count, 2047);
	cr_assert_eq(uhmm_nr_free_pages(m), 0);
	for (unsigned int o = 0; o <= MAX_PAGE_ORDER; o++)
		cr_assert_eq(uhmm_nr_free_blocks(m, o), 0);
	cr_assert_null(alloc_pages(m, 0, 0));
	cr_assert_null(alloc_pages(m, 0, 9));
	cr_assert_null(alloc_pages(m, __GFP_NOFAIL, 0));
	cr_assert_eq(uhmm_machine_destroy(m), -EBUSY);

	for (unsigned long i = 0; i < count; i++)
		__free_pages(pages[i], 0);
	cr_assert_eq(uhmm_nr_free_pages(m), 2047);
	cr_assert_eq(uhmm_nr_free_blocks(m, 9), 3);
	for (unsigned int o = 0; o < 9; o++)
		cr_assert_eq(uhmm_nr_free_blocks(m, o), 1);
	/* Merged blocks are usable at full size again. */
	for (int i = 0; i < 3; i++) {
		pages[i] = alloc_pages(m, 0, 9);
		cr_assert_not_null(pages[i]);
	}
	cr_assert_null(alloc_pages(m, 0, 9));
	for (int i = 0; i < 3; i++)
		__free_pages(pages[i], 9);
	free(pages);
	free(seen);
	cr_assert_eq(uhmm_machine_destroy(m), 0);
}

Test(page_alloc, gfp_zero)
{
	struct uhmm_machine *m = make_machine(8 * MiB);
	unsigned long nr = uhmm_totalram_pages(m), count = 0;
	struct page **pages = calloc(nr, sizeof(*pages));
	struct page *page, *big[3];

	cr_assert_not_null(pages);
	while ((page = alloc_pages(m, 0, 0))) {
		memset(page_address(page), 0xa5, PAGE_SIZE);
		pages[count++] = page;
	}
	for (unsigned long i = 0; i < count; i++)
		__free_pages(pages[i], 0);

	/* Without __GFP_ZERO the old bytes are still there: the memory is real. */
	page = alloc_pages(m, 0, 9);
	cr_assert_not_null(page);
	cr_assert_eq(((uint8_t *)page_address(page))[0], 0xa5);
	cr_assert_eq(((uint8_t *)page_address(page))[PMD_SIZE - 1], 0xa5);
	__free_pages(page, 9);

	for (int i = 0; i < 3; i++) {
		const uint8_t *bytes;

		big[i] = alloc_pages(m, __GFP_ZERO, 9);
		cr_assert_not_null(big[i]);
		bytes = page_address(big[i]);
		for (unsigned long b = 0; b < PMD_SIZE; b++)
			if (bytes[b])
				cr_assert_fail("block %d byte %#lx is %#x", i, b, bytes[b]);
		memset(page_address(big[i]), 0xa5, PMD_SIZE);
	}
	for (int i = 0; i < 3; i++)
		__free_pages(big[i], 9);

	count = 0;
	while ((page = alloc_pages(m, __GFP_ZERO, 0))) {
		const uint64_t *words = page_address(page);

		for (unsigned long w = 0; w < PAGE_SIZE / 8; w++)
			if (words[w])
				cr_assert_fail("pfn %#lx word %lu is %#lx", page_to_pfn(page), w,
					       (unsigned long)words[w]);
		pages[count++] = page;
	}
	cr_assert_eq(count, nr - 1);
	for (unsigned long i = 0; i < count; i++)
		__free_pages(pages[i], 0);
	free(pages);
	cr_assert_eq(uhmm_machine_destroy(m), 0);
}

Test(page_alloc, free_pages_with_extra_ref)
{
	unsigned long before[NR_PAGE_ORDERS], free_before = uhmm_nr_free_pages(machine);
	struct page *page;

	snapshot_blocks(machine, before);
	page = alloc_pages(machine, 0, 2);
	cr_assert_not_null(page);
	get_page(page);
	cr_assert_eq(page_ref_count(page), 2);
	/* As in Linux: pages 1..3 go now, page 0 with its last reference. */
	__free_pages(page, 2);
	cr_assert_eq(page_ref_count(page), 1);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before - 1);
	put_page(page);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
	assert_blocks(machine, before);

	/* A second free of the same block is refused and changes nothing. */
	__free_pages(page, 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
}

Test(page_alloc, table_page_put)
{
	unsigned long before[NR_PAGE_ORDERS], free_before = uhmm_nr_free_pages(machine);
	struct page *page;

	snapshot_blocks(machine, before);
	page = alloc_pages(machine, __GFP_ZERO, 0);
	cr_assert_not_null(page);
	set_page_flag(page, PG_table);
	folio_put(page_folio(page));
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
	cr_assert_not(test_page_flag(page, PG_table));
	assert_blocks(machine, before);
}

/* ---- folios ---- */

static void check_new_folio(struct folio *folio, unsigned int order)
{
	unsigned long nr = 1UL << order;

	cr_assert_eq(folio_order(folio), order);
	cr_assert_eq(folio_nr_pages(folio), nr);
	cr_assert_eq(folio_size(folio), PAGE_SIZE << order);
	cr_assert_eq(folio_test_large(folio), order > 0);
	cr_assert_eq(folio_test_pmd_mappable(folio), order == 9);
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(folio_mapcount(folio), 0);
	cr_assert_not(folio_mapped(folio));
	cr_assert_eq(folio_pfn(folio) % nr, 0);
	cr_assert_eq(folio_address(folio), page_address(folio_head(folio)));
	cr_assert_not(folio_test_locked(folio));
	cr_assert_null(folio->mapping);
	if (order) {
		cr_assert_eq(folio_entire_mapcount(folio), 0);
		cr_assert_eq(atomic_load(&folio->_large_mapcount), -1);
		cr_assert_eq(atomic_load(&folio->_nr_pages_mapped), 0);
		cr_assert_eq(atomic_load(&folio->_pincount), 0);
		cr_assert_eq(atomic_load(&folio->_mapcount_1), -1);
		cr_assert_eq(folio->_flags_1, order);
	}
	if (order >= 2)
		cr_assert(list_empty(&folio->_deferred_list));
	cr_assert_eq(folio_next(folio), (struct folio *)(void *)(folio_head(folio) + nr));
	for (unsigned long i = 0; i < nr; i++) {
		struct page *p = folio_page(folio, i);

		cr_assert_eq(page_folio(p), folio, "order %u page %lu", order, i);
		cr_assert_eq(PageTail(p), i > 0);
		cr_assert_eq(page_mapcount(p), 0);
		cr_assert_eq(atomic_load(&p->_mapcount), -1);
		if (i)
			cr_assert_eq(page_ref_count(p), 0);
	}
}

Test(page_alloc, folio_alloc_metadata)
{
	unsigned long before[NR_PAGE_ORDERS], free_before = uhmm_nr_free_pages(machine);

	snapshot_blocks(machine, before);
	for (unsigned int order = 0; order <= MAX_PAGE_ORDER; order++) {
		struct folio *folio = folio_alloc(machine, __GFP_ZERO, order);

		cr_assert_not_null(folio, "order %u", order);
		check_new_folio(folio, order);
		cr_assert_eq(uhmm_nr_free_pages(machine), free_before - (1UL << order));
		folio_put(folio);
		cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
		assert_blocks(machine, before);
	}
}

Test(page_alloc, folio_get_put)
{
	unsigned long before[NR_PAGE_ORDERS], free_before = uhmm_nr_free_pages(machine);
	struct folio *folio;

	snapshot_blocks(machine, before);
	folio = folio_alloc(machine, 0, 4);
	cr_assert_not_null(folio);
	folio_get(folio);
	get_page(folio_page(folio, 7)); /* a tail reference counts on the folio */
	cr_assert_eq(folio_ref_count(folio), 3);
	cr_assert_eq(page_ref_count(folio_page(folio, 7)), 0);
	folio_put(folio);
	put_page(folio_page(folio, 3));
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before - 16);

	folio_ref_add(folio, 4);
	folio_put_refs(folio, 3);
	cr_assert_eq(folio_ref_count(folio), 2);
	folio_put_refs(folio, 3); /* more than it has: refused */
	cr_assert_eq(folio_ref_count(folio), 2);
	cr_assert(folio_try_get(folio));
	folio_put_refs(folio, 3);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
	assert_blocks(machine, before);
}

Test(page_alloc, folio_free_clears_state)
{
	unsigned long before[NR_PAGE_ORDERS], free_before = uhmm_nr_free_pages(machine);
	struct folio *folio;
	struct page *head;

	snapshot_blocks(machine, before);
	folio = folio_alloc(machine, 0, 4);
	cr_assert_not_null(folio);
	head = folio_head(folio);
	folio->mapping = (void *)(0x1000UL | PAGE_MAPPING_ANON);
	folio->index = 77;
	folio_set_dirty(folio);
	folio_set_uptodate(folio);
	folio_set_swapbacked(folio);
	SetPageAnonExclusive(folio_page(folio, 0));
	SetPageAnonExclusive(folio_page(folio, 1));
	SetPageAnonExclusive(folio_page(folio, 15));
	cr_assert(folio_test_anon(folio));
	cr_assert_eq(folio_order(folio), 4);

	folio_put(folio);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
	assert_blocks(machine, before);
	cr_assert_null(head->mapping);
	for (unsigned long i = 0; i < 16; i++) {
		struct page *p = head + i;

		cr_assert_not(PageTail(p), "page %lu", i);
		cr_assert_eq(page_folio(p), (struct folio *)(void *)p);
		cr_assert_eq(p->flags & ~(1UL << PG_buddy), 0, "page %lu flags %#lx", i, p->flags);
		cr_assert_eq(page_ref_count(p), 0);
	}

	/* The same pages come back as small pages without stale state. */
	folio = folio_alloc(machine, 0, 0);
	cr_assert_not_null(folio);
	cr_assert_eq(folio_head(folio)->flags, 0);
	cr_assert_not(folio_test_large(folio));
	folio_put(folio);
}

Test(page_alloc, bad_puts_change_nothing)
{
	unsigned long free_before = uhmm_nr_free_pages(machine);
	struct folio *folio = folio_alloc(machine, 0, 0);
	struct folio *zero = page_folio(pfn_to_page(uhmm_zero_pfn(machine)));

	cr_assert_not_null(folio);
	cr_assert(folio_ref_freeze(folio, 1));
	folio_put(folio); /* refcount already 0 */
	cr_assert_eq(folio_ref_count(folio), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before - 1);
	folio_ref_unfreeze(folio, 1);

	/* The last put of a locked folio is reported and the folio leaked, not freed. */
	folio_lock(folio);
	folio_put(folio);
	cr_assert_eq(folio_ref_count(folio), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before - 1);
	cr_assert(folio_test_locked(folio));
	/* Repair it by hand and free it properly. */
	folio_unlock(folio);
	folio_ref_unfreeze(folio, 1);
	folio_put(folio);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);

	/* The zero page's last reference is never dropped. */
	folio_put(zero);
	cr_assert_eq(folio_ref_count(zero), 1);
	cr_assert(folio_test_reserved(zero));
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
}

/* ---- the folio lock ---- */

Test(page_alloc, folio_lock_basic)
{
	struct folio *folio = folio_alloc(machine, 0, 9);

	cr_assert_not_null(folio);
	cr_assert(folio_trylock(folio));
	cr_assert(folio_test_locked(folio));
	/* The lock is the head's bit (page 1's low byte holds the order instead). */
	cr_assert_not(test_page_flag(folio_page(folio, 2), PG_locked));
	cr_assert_not(test_page_flag(folio_page(folio, 511), PG_locked));
	cr_assert_not(folio_trylock(folio));
	folio_unlock(folio);
	cr_assert_not(folio_test_locked(folio));
	folio_unlock(folio); /* not locked: reported, stays unlocked */
	cr_assert_not(folio_test_locked(folio));
	folio_lock(folio);
	cr_assert(folio_test_locked(folio));
	cr_assert_eq(folio_order(folio), 9);
	folio_unlock(folio);
	cr_assert(folio_trylock(folio));
	folio_unlock(folio);
	folio_put(folio);
}

struct lock_args {
	struct folio *folio;
	long *counter;
	int iterations;
	atomic_int acquired;
};

static void *lock_hammer(void *arg)
{
	struct lock_args *a = arg;

	for (int i = 0; i < a->iterations; i++) {
		folio_lock(a->folio);
		long v = *a->counter; /* plain accesses: only the folio lock orders them */
		if ((i & 63) == 0)
			sched_yield();
		*a->counter = v + 1;
		folio_unlock(a->folio);
	}
	return NULL;
}

Test(page_alloc, folio_lock_contention)
{
	struct folio *folio = folio_alloc(machine, 0, 0);
	long counter = 0;
	struct lock_args args = {.folio = folio, .counter = &counter, .iterations = 20000};
	pthread_t t[2];

	cr_assert_not_null(folio);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, lock_hammer, &args), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(counter, 40000);
	cr_assert_not(folio_test_locked(folio));
	folio_put(folio);
}

static void *lock_waiter(void *arg)
{
	struct lock_args *a = arg;

	folio_lock(a->folio);
	atomic_store(&a->acquired, 1);
	folio_unlock(a->folio);
	return NULL;
}

Test(page_alloc, folio_lock_blocks_until_unlock)
{
	struct folio *folio = folio_alloc(machine, 0, 2);
	struct lock_args args = {.folio = folio};
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
	pthread_t t;

	cr_assert_not_null(folio);
	atomic_init(&args.acquired, 0);
	folio_lock(folio);
	cr_assert_eq(pthread_create(&t, NULL, lock_waiter, &args), 0);
	nanosleep(&ts, NULL);
	cr_assert_eq(atomic_load(&args.acquired), 0, "folio_lock did not wait for the holder");
	folio_unlock(folio);
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&args.acquired), 1);
	cr_assert_not(folio_test_locked(folio));
	folio_put(folio);
}

/* ---- splitting ---- */

static void fill_folio(struct folio *folio, uint32_t seed)
{
	uint32_t *words = folio_address(folio);

	for (unsigned long i = 0; i < folio_size(folio) / 4; i++)
		words[i] = seed * 2654435761u + (uint32_t)i;
}

/*
 * Split a 2^@order folio carrying recognisable state into 2^@new_order
 * folios and check every one: metadata, refcounts, lock, flags, mapping,
 * index, anon-exclusive bits and bytes.  Then unlock and free them all.
 */
static void split_and_check(unsigned int order, unsigned int new_order)
{
	unsigned long before[NR_PAGE_ORDERS], free_before = uhmm_nr_free_pages(machine);
	unsigned long nr = 1UL << order, step = 1UL << new_order, n = 0;
	void *mapping = (void *)(0x5000UL | PAGE_MAPPING_ANON);
	struct folio *folio, *f, *next;
	struct page *head;

	snapshot_blocks(machine, before);
	folio = folio_alloc(machine, 0, order);
	cr_assert_not_null(folio);
	head = folio_head(folio);
	fill_folio(folio, order);
	folio->mapping = mapping;
	folio->index = 1000;
	folio_set_dirty(folio);
	folio_set_uptodate(folio);
	folio_set_swapbacked(folio);
	/* Anon-exclusive on the head, page 1 (which holds the order) and the last page. */
	SetPageAnonExclusive(head);
	SetPageAnonExclusive(head + 1);
	SetPageAnonExclusive(head + nr - 1);
	folio_lock(folio);

	cr_assert_eq(split_folio_to_order(folio, new_order), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before - nr);

	for (f = folio; f != (struct folio *)(void *)(head + nr); f = folio_next(f), n++) {
		unsigned long off = (unsigned long)(folio_head(f) - head);
		const uint32_t *words = folio_address(f);

		cr_assert_eq(off, n * step);
		cr_assert_eq(folio_order(f), new_order, "folio at offset %lu", off);
		cr_assert_eq(folio_test_large(f), new_order > 0);
		cr_assert_not(PageTail(folio_head(f)));
		cr_assert_eq(folio_ref_count(f), 1);
		cr_assert(folio_test_locked(f));
		cr_assert(folio_test_dirty(f));
		cr_assert(folio_test_uptodate(f));
		cr_assert(folio_test_swapbacked(f));
		cr_assert_eq(f->mapping, mapping);
		cr_assert_eq(f->index, 1000 + off);
		cr_assert_eq(folio_mapcount(f), 0);
		cr_assert_not(folio_mapped(f));
		if (new_order) {
			cr_assert_eq(f->_flags_1 & FOLIO_ORDER_MASK, new_order);
			cr_assert_eq(folio_entire_mapcount(f), 0);
			cr_assert_eq(atomic_load(&f->_large_mapcount), -1);
			cr_assert_eq(atomic_load(&f->_nr_pages_mapped), 0);
			cr_assert_eq(atomic_load(&f->_pincount), 0);
			cr_assert_eq(atomic_load(&f->_mapcount_1), -1);
		}
		if (new_order >= 2)
			cr_assert(list_empty(&f->_deferred_list));
		for (unsigned long i = 0; i < step; i++) {
			struct page *p = folio_page(f, i);
			unsigned long idx = off + i;
			bool ae = idx == 0 || idx == 1 || idx == nr - 1;

			cr_assert_eq(page_folio(p), f, "page %lu", idx);
			cr_assert_eq(PageTail(p), i > 0);
			cr_assert_eq(PageAnonExclusive(p), ae, "page %lu", idx);
			cr_assert_eq(page_mapcount(p), 0);
			if (i) {
				cr_assert_eq(page_ref_count(p), 0);
				cr_assert_not(test_page_flag(p, PG_locked) && i != 1);
			}
		}
		for (unsigned long w = 0; w < folio_size(f) / 4; w++)
			if (words[w] != order * 2654435761u + (uint32_t)(off * PAGE_SIZE / 4 + w))
				cr_assert_fail("data lost at page %lu word %lu", off, w);
	}
	cr_assert_eq(n, nr / step);

	for (f = folio; f != (struct folio *)(void *)(head + nr); f = next) {
		next = folio_next(f);
		folio_unlock(f);
		folio_put(f);
	}
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
	assert_blocks(machine, before);
}

Test(page_alloc, split_9_to_0)
{
	split_and_check(9, 0);
}

Test(page_alloc, split_9_to_2)
{
	split_and_check(9, 2);
}

Test(page_alloc, split_4_to_1)
{
	split_and_check(4, 1);
}

Test(page_alloc, split_9_to_8)
{
	split_and_check(9, 8);
}

Test(page_alloc, split_refused)
{
	struct folio *folio = folio_alloc(machine, 0, 9), *small = folio_alloc(machine, 0, 0);
	struct list_head queue;

	cr_assert(folio && small);
	folio_lock(small);
	cr_assert_eq(split_folio_to_order(small, 0), -EINVAL);
	folio_unlock(small);
	folio_put(small);

	/* Unlocked, or a new order that is not smaller. */
	cr_assert_eq(split_folio_to_order(folio, 0), -EINVAL);
	folio_lock(folio);
	cr_assert_eq(split_folio_to_order(folio, 9), -EINVAL);
	cr_assert_eq(split_folio_to_order(folio, 12), -EINVAL);

	/* Another reference: -EBUSY and nothing changes. */
	folio_get(folio);
	cr_assert_eq(split_folio_to_order(folio, 0), -EBUSY);
	cr_assert_eq(folio_ref_count(folio), 2);
	cr_assert_eq(folio_order(folio), 9);
	cr_assert(folio_test_locked(folio));
	for (unsigned long i = 0; i < 512; i++)
		cr_assert_eq(page_folio(folio_page(folio, i)), folio);
	folio_put(folio);

	/* Mapped: -EBUSY, refcount untouched. */
	atomic_store(&folio->_large_mapcount, 0);
	cr_assert_eq(split_folio_to_order(folio, 0), -EBUSY);
	cr_assert_eq(folio_ref_count(folio), 1);
	atomic_store(&folio->_large_mapcount, -1);

	/* Queued for deferred split: -EBUSY, refcount restored. */
	INIT_LIST_HEAD(&queue);
	list_add(&folio->_deferred_list, &queue);
	cr_assert_eq(split_folio_to_order(folio, 0), -EBUSY);
	cr_assert_eq(folio_ref_count(folio), 1);
	list_del_init(&folio->_deferred_list);

	/* __split_unmapped_folio() insists on a frozen refcount. */
	cr_assert_eq(__split_unmapped_folio(folio, 0), -EBUSY);
	cr_assert_eq(__split_unmapped_folio(folio, 9), -EINVAL);
	cr_assert_eq(folio_order(folio), 9);

	folio_unlock(folio);
	folio_put(folio);
}

Test(page_alloc, split_unmapped_frozen)
{
	unsigned long free_before = uhmm_nr_free_pages(machine);
	struct folio *folio = folio_alloc(machine, 0, 3);

	cr_assert_not_null(folio);
	folio_lock(folio);
	cr_assert(folio_ref_freeze(folio, 1));
	cr_assert_eq(__split_unmapped_folio(folio, 0), 0);
	for (unsigned long i = 0; i < 8; i++) {
		struct folio *f = page_folio(folio_page(folio, i));

		cr_assert_eq(f, (struct folio *)(void *)folio_page(folio, i));
		cr_assert_eq(folio_ref_count(f), 0);
		cr_assert(folio_test_locked(f));
		cr_assert_not(folio_test_large(f));
		folio_ref_unfreeze(f, 1);
		folio_unlock(f);
		folio_put(f);
	}
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
}

/* ---- allocation-failure injection ---- */

/* Try an allocation and free it; return whether it succeeded. */
static bool try_alloc(struct uhmm_machine *m, gfp_t gfp, unsigned int order)
{
	struct page *page = alloc_pages(m, gfp, order);

	if (!page)
		return false;
	__free_pages(page, order);
	return true;
}

Test(page_alloc, fail_nth_call)
{
	struct fault_attr attr = {.probability = 100, .interval = 3, .times = 1};
	unsigned long free_before = uhmm_nr_free_pages(machine), before[NR_PAGE_ORDERS];

	snapshot_blocks(machine, before);
	uhmm_fail_page_alloc(machine, &attr);
	cr_assert(try_alloc(machine, 0, 0));
	cr_assert(try_alloc(machine, 0, 0));
	cr_assert_not(try_alloc(machine, 0, 0));
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
	assert_blocks(machine, before);
	for (int i = 0; i < 10; i++)
		cr_assert(try_alloc(machine, 0, 0), "call %d", 4 + i);
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 1);

	/* Every 2nd eligible call, twice: calls 2 and 4 fail, then none. */
	attr.interval = 2;
	attr.times = 2;
	uhmm_fail_page_alloc(machine, &attr);
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 0);
	cr_assert(try_alloc(machine, 0, 0));
	cr_assert_null(folio_alloc(machine, 0, 4));
	cr_assert(try_alloc(machine, 0, 0));
	cr_assert_not(try_alloc(machine, 0, 9));
	for (int i = 0; i < 6; i++)
		cr_assert(try_alloc(machine, 0, 0));
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 2);
	uhmm_fail_page_alloc(machine, NULL);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
}

Test(page_alloc, fail_times)
{
	struct fault_attr attr = {.probability = 100, .times = 3};

	uhmm_fail_page_alloc(machine, &attr);
	for (int i = 0; i < 3; i++)
		cr_assert_not(try_alloc(machine, 0, i), "call %d", i + 1);
	cr_assert(try_alloc(machine, 0, 0));
	cr_assert(try_alloc(machine, 0, 9));
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 3);

	/* times 0: never. */
	attr.times = 0;
	uhmm_fail_page_alloc(machine, &attr);
	cr_assert(try_alloc(machine, 0, 0));
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 0);
}

Test(page_alloc, fail_min_order)
{
	struct fault_attr attr = {.probability = 100, .times = -1, .min_order = HPAGE_PMD_ORDER};

	uhmm_fail_page_alloc(machine, &attr);
	for (unsigned int order = 0; order < HPAGE_PMD_ORDER; order++)
		cr_assert(try_alloc(machine, 0, order), "order %u", order);
	for (int i = 0; i < 5; i++)
		cr_assert_null(folio_alloc(machine, GFP_TRANSHUGE, HPAGE_PMD_ORDER));
	cr_assert(try_alloc(machine, 0, 0));
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 5);
}

Test(page_alloc, fail_nofail_exempt)
{
	struct fault_attr attr = {.probability = 100, .times = -1};

	uhmm_fail_page_alloc(machine, &attr);
	for (unsigned int order = 0; order <= MAX_PAGE_ORDER; order++) {
		cr_assert(try_alloc(machine, __GFP_NOFAIL, order), "order %u", order);
		cr_assert_not(try_alloc(machine, 0, order), "order %u", order);
	}
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), NR_PAGE_ORDERS);

	/* NOFAIL calls are not even counted as eligible for the interval. */
	attr.interval = 2;
	uhmm_fail_page_alloc(machine, &attr);
	cr_assert(try_alloc(machine, 0, 0));
	cr_assert(try_alloc(machine, __GFP_NOFAIL, 0));
	cr_assert_not(try_alloc(machine, 0, 0));
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 1);

	/* Disabling keeps the count and stops failures. */
	uhmm_fail_page_alloc(machine, NULL);
	cr_assert(try_alloc(machine, 0, 0));
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 1);
}

Test(page_alloc, fail_probability_replays)
{
	struct fault_attr attr = {.probability = 30, .times = -1, .seed = 12345};
	bool first[200], again[200];
	unsigned long failures = 0;

	uhmm_fail_page_alloc(machine, &attr);
	for (int i = 0; i < 200; i++) {
		first[i] = try_alloc(machine, 0, 0);
		failures += !first[i];
	}
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), failures);
	cr_assert(failures >= 30 && failures <= 90, "%lu failures of 200 at 30%%", failures);

	uhmm_fail_page_alloc(machine, &attr);
	for (int i = 0; i < 200; i++)
		again[i] = try_alloc(machine, 0, 0);
	cr_assert_arr_eq(first, again, sizeof(first), "the same seed must replay");

	/* Seed 0 picks a fixed seed, so it replays too; probability 0 never fails. */
	attr.seed = 0;
	uhmm_fail_page_alloc(machine, &attr);
	for (int i = 0; i < 200; i++)
		first[i] = try_alloc(machine, 0, 0);
	uhmm_fail_page_alloc(machine, &attr);
	for (int i = 0; i < 200; i++)
		again[i] = try_alloc(machine, 0, 0);
	cr_assert_arr_eq(first, again, sizeof(first));
	cr_assert_gt(uhmm_fail_page_alloc_count(machine), 0);

	attr.probability = 0;
	uhmm_fail_page_alloc(machine, &attr);
	for (int i = 0; i < 100; i++)
		cr_assert(try_alloc(machine, 0, 0));
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 0);
}

/* ---- the free-list audit ---- */

Test(page_alloc, mark_free_and_corruption)
{
	unsigned long start = machine_start(machine), nr = uhmm_totalram_pages(machine), n = 0;
	uint8_t *state = calloc(nr, 1);
	struct page *page = alloc_pages(machine, 0, 3), *victim;
	char *text = NULL;
	size_t len = 0;
	FILE *report;

	cr_assert(state && page);
	cr_assert_eq(page_alloc_mark_free(machine, state, NULL), 0);
	for (unsigned long i = 0; i < nr; i++)
		n += state[i] == AUDIT_FREE;
	cr_assert_eq(n, uhmm_nr_free_pages(machine));
	cr_assert_eq(state[uhmm_zero_pfn(machine) - start], AUDIT_UNSEEN);
	for (unsigned long i = 0; i < 8; i++)
		cr_assert_eq(state[page_to_pfn(page) - start + i], AUDIT_UNSEEN);

	/* A block head without PG_buddy, with the wrong order, bad counters. */
	victim = list_first_entry(&machine->free_area[9], struct page, lru);
	report = open_memstream(&text, &len);
	cr_assert_not_null(report);
	clear_page_flag(victim, PG_buddy);
	memset(state, 0, nr);
	cr_assert_eq(page_alloc_mark_free(machine, state, report), 1);
	set_page_flag(victim, PG_buddy);
	victim->private = 8;
	memset(state, 0, nr);
	cr_assert_eq(page_alloc_mark_free(machine, state, report), 1);
	victim->private = 9;
	machine->nr_free[0]++;
	memset(state, 0, nr);
	cr_assert_eq(page_alloc_mark_free(machine, state, report), 1);
	machine->nr_free[0]--;
	/* A free page the caller already saw in use. */
	memset(state, 0, nr);
	state[page_to_pfn(victim) - start + 5] = AUDIT_USED;
	cr_assert_eq(page_alloc_mark_free(machine, state, report), 1);
	fclose(report);
	cr_assert(strstr(text, "lacks PG_buddy"), "report: %s", text);
	cr_assert(strstr(text, "records order 8"), "report: %s", text);
	cr_assert(strstr(text, "nr_free[0]"), "report: %s", text);
	cr_assert(strstr(text, "in use"), "report: %s", text);
	free(text);

	memset(state, 0, nr);
	cr_assert_eq(page_alloc_mark_free(machine, state, NULL), 0);
	__free_pages(page, 3);
	free(state);
}

/* ---- concurrency ---- */

struct churn_args {
	struct uhmm_machine *m;
	uint64_t seed;
	int iterations;
};

static void *alloc_churn(void *arg)
{
	struct churn_args *a = arg;
	struct folio *held[16] = {NULL};
	uint64_t x = a->seed;

	for (int i = 0; i < a->iterations; i++) {
		unsigned int slot = (unsigned int)(i % 16), order;
		struct folio *folio;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		order = (unsigned int)(x % NR_PAGE_ORDERS);
		if (held[slot]) {
			uint8_t *b = folio_address(held[slot]);

			if (b[0] != (uint8_t)slot)
				return (void *)1;
			folio_put(held[slot]);
			held[slot] = NULL;
		}
		folio = folio_alloc(a->m, x & 1 ? __GFP_ZERO : 0, order);
		if (!folio)
			continue;
		((uint8_t *)folio_address(folio))[0] = (uint8_t)slot;
		if (x & 2) {
			folio_lock(folio);
			folio_unlock(folio);
		}
		held[slot] = folio;
	}
	for (int s = 0; s < 16; s++)
		if (held[s])
			folio_put(held[s]);
	return NULL;
}

Test(page_alloc, concurrent_alloc_free)
{
	unsigned long before[NR_PAGE_ORDERS], free_before = uhmm_nr_free_pages(machine);
	struct churn_args args[2] = {
		{.m = machine, .seed = 0x1234567, .iterations = 4000},
		{.m = machine, .seed = 0x7654321, .iterations = 4000},
	};
	pthread_t t[2];
	void *ret;

	snapshot_blocks(machine, before);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, alloc_churn, &args[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], &ret);
		cr_assert_null(ret, "thread %d saw another thread's bytes", i);
	}
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
	assert_blocks(machine, before);
}

static void *put_many(void *arg)
{
	for (int i = 0; i < 5000; i++)
		folio_put(arg);
	return NULL;
}

Test(page_alloc, concurrent_puts_free_once)
{
	unsigned long free_before = uhmm_nr_free_pages(machine);
	struct folio *folio = folio_alloc(machine, 0, 9);
	pthread_t t[2];

	cr_assert_not_null(folio);
	folio_ref_add(folio, 10000);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, put_many, folio), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before - 512);
	folio_put(folio);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
}
