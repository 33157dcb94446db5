/* SPDX-License-Identifier: MIT */
/*
 * tests/test_gup.c - get_user_pages() and pin_user_pages(): references and
 * pins on 4 KiB pages and THPs, faulting (zero page, allocation, COW broken
 * by FOLL_WRITE, unsharing after fork), the zero pages never referenced,
 * errno and partial results, FOLL_NOFAULT, FOLL_SPLIT_PMD, the fast
 * variants, pins outliving munmap, unpin_user_pages_dirty_lock(), the
 * audit's pin rule, and threads pinning while others fault and zap.
 * Linux 6.x semantics throughout.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

TestSuite(gup, .init = machine_setup, .fini = machine_teardown);

#define PG PAGE_SIZE
#define HPS HPAGE_PMD_SIZE
#define NR HPAGE_PMD_NR
#define BIAS ((int)GUP_PIN_COUNTING_BIAS)

/* ---- local helpers ---- */

/* get_user_pages_remote() under mmap_lock for reading. */
static long gup(struct mm_struct *mm, unsigned long start, unsigned long nr, unsigned int flags,
		struct page **pages)
{
	long ret;

	pthread_rwlock_rdlock(&mm->mmap_lock);
	ret = get_user_pages_remote(mm, start, nr, flags, pages, NULL);
	pthread_rwlock_unlock(&mm->mmap_lock);
	return ret;
}

/* pin_user_pages_remote() under mmap_lock for reading. */
static long pin(struct mm_struct *mm, unsigned long start, unsigned long nr, unsigned int flags,
		struct page **pages)
{
	long ret;

	pthread_rwlock_rdlock(&mm->mmap_lock);
	ret = pin_user_pages_remote(mm, start, nr, flags, pages, NULL);
	pthread_rwlock_unlock(&mm->mmap_lock);
	return ret;
}

static struct page **page_array(unsigned long n)
{
	struct page **pages = calloc(n, sizeof(*pages));

	cr_assert(pages);
	return pages;
}

/* Assert @page holds pattern_byte(seed, off ...) for its 4 KiB. */
static void check_page_bytes(struct page *page, uint32_t seed, unsigned long off)
{
	const uint8_t *p = page_address(page);

	for (unsigned long j = 0; j < PG; j++)
		if (p[j] != pattern_byte(seed, off + j))
			cr_assert_fail("page pfn %#lx byte %#lx is %#x, want %#x",
				       page_to_pfn(page), j, p[j], pattern_byte(seed, off + j));
}

static bool page_is_zero(const struct page *page)
{
	const uint8_t *p = page_address(page);

	for (unsigned long j = 0; j < PG; j++)
		if (p[j])
			return false;
	return true;
}

static struct page *zero_page(void)
{
	return pfn_to_page(uhmm_zero_pfn(machine));
}

/* ---- 4 KiB pages ---- */

Test(gup, get_4k_pages_takes_one_reference_each)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 8 * PG, PROT_READ | PROT_WRITE, 0);
	struct page *pages[8];

	fill_pattern(mm, addr, 8 * PG, 1);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(folio_ref_count(folio_at(mm, addr + i * PG)), 1);
	/* An unaligned start is rounded down to its page. */
	cr_assert_eq(gup(mm, addr + 123, 8, 0, pages), 8);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(pages[i], pfn_to_page(pfn_at(mm, addr + i * PG)), "page %d", i);
		cr_assert_eq(folio_ref_count(page_folio(pages[i])), 2);
		cr_assert_eq(folio_mapcount(page_folio(pages[i])), 1);
		cr_assert_not(folio_maybe_dma_pinned(page_folio(pages[i])));
		check_page_bytes(pages[i], 1, (unsigned long)i * PG);
	}
	for (int i = 0; i < 8; i++)
		put_page(pages[i]);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(folio_ref_count(folio_at(mm, addr + i * PG)), 1);
	cr_assert_eq(atomic_load(&mm->flags) & (1UL << MMF_HAS_PINNED), 0);
	mmput(mm);
}

Test(gup, pin_4k_pages_adds_the_bias)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 8 * PG, PROT_READ | PROT_WRITE, 0);
	struct page *pages[8], *extra[2];

	fill_pattern(mm, addr, 8 * PG, 2);
	cr_assert_eq(pin(mm, addr, 8, FOLL_LONGTERM, pages), 8);
	cr_assert(atomic_load(&mm->flags) & (1UL << MMF_HAS_PINNED));
	for (int i = 0; i < 8; i++) {
		struct folio *folio = page_folio(pages[i]);

		cr_assert_eq(pages[i], pfn_to_page(pfn_at(mm, addr + i * PG)));
		cr_assert_eq(folio_ref_count(folio), 1 + BIAS);
		cr_assert(folio_maybe_dma_pinned(folio));
		check_page_bytes(pages[i], 2, (unsigned long)i * PG);
	}
	/* A second pin on two of them stacks. */
	cr_assert_eq(pin(mm, addr + 3 * PG, 2, 0, extra), 2);
	cr_assert_eq(extra[0], pages[3]);
	cr_assert_eq(folio_ref_count(folio_at(mm, addr + 3 * PG)), 1 + 2 * BIAS);
	cr_assert_eq(folio_ref_count(folio_at(mm, addr + 4 * PG)), 1 + 2 * BIAS);
	assert_audit_clean();
	unpin_user_pages(extra, 2);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(folio_ref_count(folio_at(mm, addr + i * PG)), 1 + BIAS);
	unpin_user_pages(pages, 4);
	for (int i = 4; i < 8; i++)
		unpin_user_page(pages[i]);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(folio_ref_count(folio_at(mm, addr + i * PG)), 1);
		cr_assert_not(folio_maybe_dma_pinned(folio_at(mm, addr + i * PG)));
	}
	mmput(mm);
}

Test(gup, get_user_page_vma_remote_returns_page_and_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	struct vm_area_struct *vma = NULL;
	struct page *page;

	pthread_rwlock_rdlock(&mm->mmap_lock);
	page = get_user_page_vma_remote(mm, addr + 2 * PG + 9, FOLL_WRITE, &vma);
	pthread_rwlock_unlock(&mm->mmap_lock);
	cr_assert(!IS_ERR_OR_NULL(page));
	cr_assert_eq(page, pfn_to_page(pfn_at(mm, addr + 2 * PG)));
	cr_assert_not_null(vma);
	cr_assert_eq(vma->vm_start, addr);
	cr_assert_eq(folio_ref_count(page_folio(page)), 2);
	put_page(page);
	pthread_rwlock_rdlock(&mm->mmap_lock);
	page = get_user_page_vma_remote(mm, addr + 4 * PG, 0, &vma);
	pthread_rwlock_unlock(&mm->mmap_lock);
	cr_assert_eq(PTR_ERR(page), -EFAULT);
	mmput(mm);
}

/* ---- THP ---- */

Test(gup, pin_thp_counts_each_page_in_refcount_and_pincount)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, 2 * HPS);
	struct page **pages = page_array(NR + 16);
	struct folio *folio, *folio2;

	fill_pattern(mm, addr, 2 * HPS, 3);
	cr_assert_eq(anon_huge(mm), 2 * HPS);
	folio = folio_at(mm, addr);
	folio2 = folio_at(mm, addr + HPS);
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER);
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(atomic_load(&folio->_pincount), 0);
	cr_assert_not(folio_maybe_dma_pinned(folio));

	cr_assert_eq(pin(mm, addr, NR, 0, pages), (long)NR);
	cr_assert_eq(folio_ref_count(folio), 1 + (int)NR);
	cr_assert_eq(atomic_load(&folio->_pincount), (int)NR);
	cr_assert(folio_maybe_dma_pinned(folio));
	for (unsigned long i = 0; i < NR; i++)
		cr_assert_eq(pages[i], folio_page(folio, i), "page %lu", i);
	check_page_bytes(pages[0], 3, 0);
	check_page_bytes(pages[300], 3, 300 * PG);
	cr_assert_eq(anon_huge(mm), 2 * HPS, "a pin does not split the PMD");
	assert_audit_clean();

	/* An unaligned start in the middle, and a range across both THPs. */
	cr_assert_eq(pin(mm, addr + 100 * PG + 5, 10, FOLL_LONGTERM, pages + NR), 10);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(pages[NR + i], folio_page(folio, 100 + i));
	cr_assert_eq(pin(mm, addr + HPS - 2 * PG, 4, 0, pages + NR + 10), 4);
	cr_assert_eq(pages[NR + 12], folio_page(folio2, 0));
	cr_assert_eq(atomic_load(&folio->_pincount), (int)NR + 12);
	cr_assert_eq(folio_ref_count(folio), 1 + (int)NR + 12);
	cr_assert_eq(atomic_load(&folio2->_pincount), 2);
	cr_assert_eq(folio_ref_count(folio2), 3);
	assert_audit_clean();

	unpin_user_pages(pages, NR + 14);
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(atomic_load(&folio->_pincount), 0);
	cr_assert_eq(folio_ref_count(folio2), 1);
	cr_assert_eq(atomic_load(&folio2->_pincount), 0);
	cr_assert_not(folio_maybe_dma_pinned(folio2));

	/* FOLL_GET on a THP: references only. */
	cr_assert_eq(gup(mm, addr + 5 * PG, 3, 0, pages), 3);
	cr_assert_eq(folio_ref_count(folio), 4);
	cr_assert_eq(atomic_load(&folio->_pincount), 0);
	for (int i = 0; i < 3; i++)
		put_page(pages[i]);
	cr_assert_eq(folio_ref_count(folio), 1);
	free(pages);
	mmput(mm);
}

Test(gup, foll_split_pmd_pte_maps_the_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	struct folio *folio;
	struct page *page;

	fill_pattern(mm, addr, HPS, 4);
	folio = folio_at(mm, addr);
	cr_assert_eq(pin(mm, addr + 7 * PG, 1, FOLL_WRITE | FOLL_SPLIT_PMD, &page), 1);
	cr_assert_eq(anon_huge(mm), 0, "the PMD was split");
	cr_assert_eq(page, folio_page(folio, 7));
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER, "the folio stays large");
	cr_assert_eq(folio_mapcount(folio), (int)NR);
	cr_assert_eq(folio_ref_count(folio), (int)NR + 1);
	cr_assert_eq(atomic_load(&folio->_pincount), 1);
	check_pattern(mm, addr, HPS, 4);
	assert_audit_clean();
	unpin_user_page(page);
	cr_assert_eq(folio_ref_count(folio), (int)NR);
	mmput(mm);
}

/* ---- faulting ---- */

Test(gup, write_on_unpopulated_memory_allocates_writable_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	struct page *pages[4];
	uint8_t buf[64];

	cr_assert_eq(rss_bytes(mm), 0);
	cr_assert_eq(pin(mm, addr, 4, FOLL_WRITE, pages), 4);
	cr_assert_eq(rss_bytes(mm), 4 * PG);
	for (int i = 0; i < 4; i++) {
		unsigned long pfn = pfn_at(mm, addr + i * PG);

		cr_assert_eq(pages[i], pfn_to_page(pfn));
		cr_assert_neq(pfn, uhmm_zero_pfn(machine));
		cr_assert(PageAnonExclusive(pages[i]));
		cr_assert_eq(folio_ref_count(page_folio(pages[i])), 1 + BIAS);
		cr_assert(page_is_zero(pages[i]));
		/* The "device" writes through the pin; the CPU sees it. */
		memset(page_address(pages[i]), 0x40 + i, PG);
	}
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(cpu_read(mm, addr + i * PG + 100, buf, sizeof(buf)), 0);
		for (size_t j = 0; j < sizeof(buf); j++)
			cr_assert_eq(buf[j], 0x40 + i);
	}
	/* The entries are writable: a CPU write does not move the pages. */
	memset(buf, 0x77, sizeof(buf));
	cr_assert_eq(cpu_write(mm, addr + 2 * PG, buf, sizeof(buf)), 0);
	cr_assert_eq(pfn_at(mm, addr + 2 * PG), page_to_pfn(pages[2]));
	cr_assert_eq(((uint8_t *)page_address(pages[2]))[5], 0x77);
	assert_audit_clean();
	unpin_user_pages(pages, 4);
	mmput(mm);
}

Test(gup, write_on_unpopulated_thp_range_maps_a_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	struct page *pages[2];

	cr_assert_eq(pin(mm, addr + 10 * PG, 2, FOLL_WRITE, pages), 2);
	cr_assert_eq(anon_huge(mm), HPS);
	cr_assert_eq(page_folio(pages[0]), folio_at(mm, addr));
	cr_assert_eq(pages[0], folio_page(page_folio(pages[0]), 10));
	cr_assert_eq(atomic_load(&page_folio(pages[0])->_pincount), 2);
	unpin_user_pages(pages, 2);
	mmput(mm);
}

Test(gup, write_replaces_the_zero_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	struct page *pages[4];
	int zero_refs = page_ref_count(zero_page());

	check_zero(mm, addr, 4 * PG);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pfn_at(mm, addr + i * PG), uhmm_zero_pfn(machine));
	cr_assert_eq(gup(mm, addr, 4, FOLL_WRITE, pages), 4);
	for (int i = 0; i < 4; i++) {
		unsigned long pfn = pfn_at(mm, addr + i * PG);

		cr_assert_neq(pfn, uhmm_zero_pfn(machine), "page %d still maps the zero page", i);
		cr_assert_eq(pages[i], pfn_to_page(pfn));
		cr_assert(page_is_zero(pages[i]));
		cr_assert_eq(folio_ref_count(page_folio(pages[i])), 2);
	}
	cr_assert_eq(page_ref_count(zero_page()), zero_refs);
	for (int i = 0; i < 4; i++)
		put_page(pages[i]);
	check_zero(mm, addr, 4 * PG);
	mmput(mm);
}

Test(gup, write_replaces_the_huge_zero_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	struct page *page;
	unsigned long pfn;

	check_zero(mm, addr, PG);
	pfn = pfn_at(mm, addr);
	cr_assert(is_huge_zero_folio(page_folio(pfn_to_page(pfn))));
	cr_assert_eq(pin(mm, addr + 5 * PG, 1, FOLL_WRITE, &page), 1);
	/* As a CPU write: the huge zero PMD is replaced by a new THP (Linux 6.13+). */
	cr_assert_eq(page, pfn_to_page(pfn_at(mm, addr + 5 * PG)));
	cr_assert_not(is_huge_zero_folio(page_folio(page)));
	cr_assert_eq(folio_order(page_folio(page)), HPAGE_PMD_ORDER);
	cr_assert_eq(pfn_at(mm, addr + 6 * PG), page_to_pfn(page) + 1);
	cr_assert(folio_maybe_dma_pinned(page_folio(page)));
	assert_audit_clean();
	unpin_user_page(page);
	mmput(mm);
}

Test(gup, read_of_unpopulated_memory_returns_the_zero_page_unreferenced)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	struct page *pages[4];
	int zero_refs = page_ref_count(zero_page());

	cr_assert_eq(pin(mm, addr, 4, FOLL_LONGTERM, pages), 4);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pages[i], zero_page());
		cr_assert_eq(pfn_at(mm, addr + i * PG), uhmm_zero_pfn(machine));
	}
	cr_assert_eq(page_ref_count(zero_page()), zero_refs);
	cr_assert_eq(rss_bytes(mm), 0);
	assert_audit_clean();
	unpin_user_pages(pages, 4);
	unpin_user_page(pages[0]);
	cr_assert_eq(page_ref_count(zero_page()), zero_refs);
	cr_assert_eq(gup(mm, addr, 4, 0, pages), 4);
	cr_assert_eq(pages[3], zero_page());
	cr_assert_eq(page_ref_count(zero_page()), zero_refs);
	assert_audit_clean();
	mmput(mm);
}

Test(gup, read_of_huge_zero_memory_returns_its_pages_unreferenced)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	struct page **pages = page_array(NR);
	struct folio *zero;
	int refs;

	cr_assert_eq(pin(mm, addr, NR, 0, pages), (long)NR);
	zero = page_folio(pages[0]);
	cr_assert(is_huge_zero_folio(zero));
	refs = folio_ref_count(zero);
	cr_assert_eq(refs, 1, "one mm uses the huge zero folio");
	for (unsigned long i = 0; i < NR; i++)
		cr_assert_eq(pages[i], folio_page(zero, i));
	cr_assert_eq(pfn_at(mm, addr + 9 * PG), page_to_pfn(pages[9]));
	cr_assert_eq(atomic_load(&zero->_pincount), 0);
	cr_assert_eq(rss_bytes(mm), 0);
	assert_audit_clean();
	unpin_user_pages(pages, NR);
	cr_assert_eq(folio_ref_count(zero), refs);
	free(pages);
	mmput(mm);
}

/* ---- errors ---- */

Test(gup, efault_for_holes_and_forbidden_access)
{
	struct mm_struct *mm = new_mm();
	unsigned long rw = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long none = map_anon(mm, 0, 4 * PG, PROT_NONE, 0);
	unsigned long ro = map_anon(mm, 0, 4 * PG, PROT_READ, 0);
	unsigned long xo = map_anon(mm, 0, 4 * PG, PROT_EXEC, 0);
	struct page *pages[4];

	cr_assert_eq(mm_munmap(mm, rw, 4 * PG), 0);
	cr_assert_eq(pin(mm, rw, 1, 0, pages), -EFAULT, "hole");
	cr_assert_eq(gup(mm, rw, 4, FOLL_WRITE, pages), -EFAULT, "hole");
	cr_assert_eq(pin(mm, TASK_SIZE, 1, 0, pages), -EFAULT, "past TASK_SIZE");
	cr_assert_eq(pin(mm, none, 4, 0, pages), -EFAULT, "PROT_NONE");
	cr_assert_eq(pin(mm, none, 4, FOLL_WRITE, pages), -EFAULT, "PROT_NONE");
	cr_assert_eq(pin(mm, none, 1, FOLL_FORCE, pages), -EFAULT, "forced read of PROT_NONE");
	cr_assert_eq(pin(mm, ro, 4, FOLL_WRITE, pages), -EFAULT, "write to PROT_READ");
	cr_assert_eq(gup(mm, ro, 4, FOLL_WRITE | FOLL_FORCE, pages), -EFAULT,
		     "forced write to PROT_READ (not built)");
	cr_assert_eq(pin(mm, xo, 1, 0, pages), -EFAULT, "read of exec-only without VM_READ");
	cr_assert_eq(rss_bytes(mm), 0, "nothing was faulted in");
	/* What is allowed still works. */
	cr_assert_eq(pin(mm, ro, 4, FOLL_ANON, pages), 4);
	cr_assert_eq(pages[0], zero_page());
	cr_assert_eq(pin(mm, xo, 1, FOLL_FORCE, pages), 1, "FOLL_FORCE reads VM_MAYREAD");
	cr_assert_eq(pages[0], zero_page());
	assert_audit_clean();
	mmput(mm);
}

Test(gup, foll_dump_refuses_holes_and_zero_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	struct page *pages[4];

	cr_assert_eq(gup(mm, addr, 1, FOLL_DUMP, pages), -EFAULT);
	cr_assert_eq(rss_bytes(mm), 0);
	check_zero(mm, addr, PG);
	cr_assert_eq(gup(mm, addr, 1, FOLL_DUMP, pages), -EFAULT);
	fill_pattern(mm, addr + PG, PG, 5);
	cr_assert_eq(gup(mm, addr + PG, 2, FOLL_DUMP, pages), 1, "stops at the hole after it");
	check_page_bytes(pages[0], 5, 0);
	put_page(pages[0]);
	mmput(mm);
}

Test(gup, a_range_running_into_a_hole_returns_the_pages_before_it)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	struct page *pages[4] = { 0 };

	fill_pattern(mm, addr, 4 * PG, 6);
	cr_assert_eq(mm_munmap(mm, addr + 2 * PG, 2 * PG), 0);
	cr_assert_eq(pin(mm, addr, 4, 0, pages), 2);
	cr_assert_null(pages[2]);
	cr_assert_eq(folio_ref_count(page_folio(pages[1])), 1 + BIAS);
	unpin_user_pages(pages, 2);
	cr_assert_eq(pin(mm, addr + 2 * PG, 2, 0, pages), -EFAULT);

	/* A permission change part-way does the same. */
	cr_assert_eq(mm_mprotect(mm, addr + PG, PG, PROT_READ), 0);
	cr_assert_eq(pin(mm, addr, 2, FOLL_WRITE, pages), 1);
	unpin_user_page(pages[0]);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(folio_ref_count(folio_at(mm, addr + i * PG)), 1);
	mmput(mm);
}

Test(gup, foll_nofault_returns_only_what_is_mapped)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	struct page *pages[4];

	fill_pattern(mm, addr, 2 * PG, 7);
	cr_assert_eq(pin(mm, addr, 4, FOLL_NOFAULT, pages), 2);
	cr_assert_eq(rss_bytes(mm), 2 * PG, "nothing faulted");
	unpin_user_pages(pages, 2);
	cr_assert_eq(pin(mm, addr + 2 * PG, 2, FOLL_NOFAULT, pages), -EFAULT);
	check_zero(mm, addr + 2 * PG, PG); /* now the zero page */
	cr_assert_eq(gup(mm, addr + 2 * PG, 1, FOLL_NOFAULT, pages), 1);
	cr_assert_eq(pages[0], zero_page());
	cr_assert_eq(gup(mm, addr + 2 * PG, 1, FOLL_NOFAULT | FOLL_WRITE, pages), -EFAULT,
		     "a write would need a fault");
	cr_assert_eq(pfn_at(mm, addr + 2 * PG), uhmm_zero_pfn(machine));
	cr_assert_eq(get_user_pages_fast_only(mm, addr, 4, 0, pages), 3);
	for (int i = 0; i < 2; i++)
		put_page(pages[i]);
	cr_assert_eq(get_user_pages_fast_only(mm, addr + 3 * PG, 1, 0, pages), 0);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	mmput(mm);
}

Test(gup, einval_for_bad_arguments)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	struct page *pages[4];
	int locked = 0;

	cr_assert_eq(pin(mm, addr, 1, FOLL_GET, pages), -EINVAL, "FOLL_GET | FOLL_PIN");
	cr_assert_eq(gup(mm, addr, 1, FOLL_PIN, pages), -EINVAL, "FOLL_PIN is internal");
	cr_assert_eq(gup(mm, addr, 1, FOLL_FAST_ONLY, pages), -EINVAL, "internal");
	cr_assert_eq(gup(mm, addr, 1, FOLL_LONGTERM, pages), -EINVAL, "LONGTERM without PIN");
	cr_assert_eq(pin(mm, addr, 1, FOLL_LONGTERM | FOLL_PCI_P2PDMA, pages), -EINVAL);
	cr_assert_eq(gup(mm, addr, 1, 0x2000, pages), -EINVAL, "unknown flag");
	cr_assert_eq(pin(mm, addr, 1, 0, NULL), -EINVAL, "pins need pages");
	pthread_rwlock_rdlock(&mm->mmap_lock);
	cr_assert_eq(get_user_pages_remote(mm, addr, 1, 0, pages, &locked), -EINVAL);
	locked = 1;
	cr_assert_eq(get_user_pages_remote(mm, addr, 1, 0, pages, &locked), 1);
	pthread_rwlock_unlock(&mm->mmap_lock);
	cr_assert_eq(locked, 1);
	cr_assert_eq(pages[0], zero_page());
	cr_assert_eq(gup(mm, addr, 0, 0, pages), 0, "nr_pages 0");
	cr_assert_eq(pin(mm, addr, 0, 0, pages), 0, "nr_pages 0");
	cr_assert_eq(get_user_pages_fast(mm, addr, 1, FOLL_DUMP, pages), -EINVAL,
		     "not a gup_fast flag");
	cr_assert_eq(pin_user_pages_fast(mm, addr, 1, FOLL_GET, pages), -EINVAL);
	cr_assert_eq(get_user_pages_fast(mm, addr, 0, 0, pages), 0);
	cr_assert_eq(get_user_pages_fast(mm, addr, -1, 0, pages), -EOVERFLOW);
	cr_assert_eq(get_user_pages_fast(mm, TASK_SIZE - PG, 2, 0, pages), -EFAULT);
	cr_assert_eq(rss_bytes(mm), 0);
	mmput(mm);
}

Test(gup, null_pages_only_faults_in)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);

	cr_assert_eq(gup(mm, addr, 4, FOLL_WRITE, NULL), 4);
	cr_assert_eq(rss_bytes(mm), 4 * PG);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(folio_ref_count(folio_at(mm, addr + i * PG)), 1);
	assert_audit_clean();
	mmput(mm);
}

/* ---- pins outlive the mapping ---- */

Test(gup, munmap_while_pinned_keeps_the_page_until_unpin)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long thp = map_thp(mm, HPS);
	struct page *pages[4], *tp;
	struct folio *tf;
	unsigned long free_unmapped;

	fill_pattern(mm, addr, 4 * PG, 8);
	fill_pattern(mm, thp, HPS, 9);
	cr_assert_eq(pin(mm, addr, 4, FOLL_LONGTERM, pages), 4);
	cr_assert_eq(pin(mm, thp + 33 * PG, 1, 0, &tp), 1);
	tf = page_folio(tp);
	cr_assert_eq(mm_munmap(mm, addr, 4 * PG), 0);
	cr_assert_eq(mm_munmap(mm, thp, HPS), 0);
	cr_assert_eq(rss_bytes(mm), 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(folio_mapcount(page_folio(pages[i])), 0);
		cr_assert_eq(folio_ref_count(page_folio(pages[i])), BIAS);
		check_page_bytes(pages[i], 8, (unsigned long)i * PG);
	}
	cr_assert_eq(folio_mapcount(tf), 0);
	cr_assert_eq(folio_ref_count(tf), 1);
	cr_assert_eq(atomic_load(&tf->_pincount), 1);
	check_page_bytes(tp, 9, 33 * PG);
	assert_audit_clean();
	free_unmapped = uhmm_nr_free_pages(machine);
	unpin_user_pages(pages, 4);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_unmapped + 4);
	unpin_user_page(tp);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_unmapped + 4 + NR);
	assert_audit_clean();
	mmput(mm);
}

Test(gup, unpin_pinned_page_after_mmput)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PG, PROT_READ | PROT_WRITE, 0);
	struct page *page;

	fill_pattern(mm, addr, PG, 10);
	cr_assert_eq(pin_user_pages_fast(mm, addr, 1, FOLL_WRITE | FOLL_LONGTERM, &page), 1);
	mmput(mm);
	check_page_bytes(page, 10, 0);
	cr_assert_eq(folio_ref_count(page_folio(page)), BIAS);
	unpin_user_page(page);
}

Test(gup, unpin_dirty_lock_marks_folios_dirty)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long thp = map_thp(mm, HPS);
	struct page *pages[2], *tp[2];

	fill_pattern(mm, addr, 2 * PG, 11);
	fill_pattern(mm, thp, HPS, 12);
	cr_assert_eq(pin(mm, addr, 2, 0, pages), 2);
	cr_assert_eq(pin(mm, thp + PG, 2, 0, tp), 2);
	cr_assert_not(folio_test_dirty(page_folio(pages[0])));
	cr_assert_not(folio_test_dirty(page_folio(pages[1])));
	cr_assert_not(folio_test_dirty(page_folio(tp[0])));
	unpin_user_pages_dirty_lock(pages, 1, true);
	unpin_user_pages_dirty_lock(pages + 1, 1, false);
	unpin_user_pages_dirty_lock(tp, 2, true);
	cr_assert(folio_test_dirty(page_folio(pages[0])));
	cr_assert_not(folio_test_dirty(page_folio(pages[1])));
	cr_assert(folio_test_dirty(page_folio(tp[0])));
	cr_assert_not(folio_test_locked(page_folio(pages[0])));
	for (int i = 0; i < 2; i++)
		cr_assert_eq(folio_ref_count(folio_at(mm, addr + i * PG)), 1);
	cr_assert_eq(atomic_load(&page_folio(tp[0])->_pincount), 0);
	mmput(mm);
	/* The zero page is neither dirtied nor unpinned. */
	mm = new_mm();
	addr = map_anon(mm, 0, PG, PROT_READ, 0);
	cr_assert_eq(pin(mm, addr, 1, 0, pages), 1);
	cr_assert_eq(pages[0], zero_page());
	unpin_user_pages_dirty_lock(pages, 1, true);
	cr_assert_not(folio_test_dirty(page_folio(zero_page())));
	mmput(mm);
}

/* ---- the fast variants ---- */

Test(gup, fast_variants_take_mmap_lock_themselves)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 8 * PG, PROT_READ | PROT_WRITE, 0);
	struct page *pages[8];

	fill_pattern(mm, addr, 4 * PG, 13);
	cr_assert_eq(get_user_pages_fast(mm, addr, 4, 0, pages), 4);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pages[i], pfn_to_page(pfn_at(mm, addr + i * PG)));
		cr_assert_eq(folio_ref_count(page_folio(pages[i])), 2);
		check_page_bytes(pages[i], 13, (unsigned long)i * PG);
		put_page(pages[i]);
	}
	cr_assert_eq(pin_user_pages_fast(mm, addr + 4 * PG, 4, FOLL_WRITE | FOLL_LONGTERM, pages),
		     4);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pages[i], pfn_to_page(pfn_at(mm, addr + (4 + i) * PG)));
		cr_assert_eq(folio_ref_count(page_folio(pages[i])), 1 + BIAS);
	}
	assert_audit_clean();
	unpin_user_pages(pages, 4);
	/* A hole part-way: the pages before it. */
	cr_assert_eq(mm_munmap(mm, addr + 6 * PG, 2 * PG), 0);
	cr_assert_eq(pin_user_pages_fast(mm, addr + 4 * PG, 4, 0, pages), 2);
	unpin_user_pages(pages, 2);
	cr_assert_eq(get_user_pages_fast(mm, addr + 6 * PG, 1, 0, pages), -EFAULT);
	mmput(mm);
}

/* ---- COW and fork ---- */

Test(gup, write_gup_after_fork_breaks_cow)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PG, PROT_READ | PROT_WRITE, 0);
	struct mm_struct *child;
	unsigned long shared_pfn;
	struct page *page;

	fill_pattern(mm, addr, PG, 14);
	child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	shared_pfn = pfn_at(mm, addr);
	cr_assert_eq(pfn_at(child, addr), shared_pfn);
	cr_assert_not(PageAnonExclusive(pfn_to_page(shared_pfn)));

	/* FOLL_GET read: the shared page itself. */
	cr_assert_eq(gup(mm, addr, 1, 0, &page), 1);
	cr_assert_eq(page_to_pfn(page), shared_pfn);
	put_page(page);

	/* FOLL_WRITE: COW broken as by a CPU write; the child keeps the old page. */
	cr_assert_eq(pin(mm, addr, 1, FOLL_WRITE, &page), 1);
	cr_assert_neq(page_to_pfn(page), shared_pfn);
	cr_assert_eq(pfn_at(mm, addr), page_to_pfn(page));
	cr_assert_eq(pfn_at(child, addr), shared_pfn);
	cr_assert(PageAnonExclusive(page));
	check_page_bytes(page, 14, 0);
	memset(page_address(page), 0x5a, 16);
	check_pattern(child, addr, PG, 14);
	assert_audit_clean();
	unpin_user_page(page);
	mmput(child);
	mmput(mm);
}

Test(gup, read_pin_after_fork_unshares)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_READ | PROT_WRITE, 0);
	struct mm_struct *child;
	unsigned long shared_pfn;
	struct page *page;
	uint8_t byte = 0xee;

	fill_pattern(mm, addr, 2 * PG, 15);
	child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	shared_pfn = pfn_at(mm, addr);
	/* A read pin must not stay on a page a later COW could leave behind. */
	cr_assert_eq(pin(mm, addr, 1, 0, &page), 1);
	cr_assert(PageAnonExclusive(page));
	cr_assert_eq(pfn_at(mm, addr), page_to_pfn(page));
	cr_assert_neq(page_to_pfn(page), shared_pfn);
	cr_assert_eq(pfn_at(child, addr), shared_pfn);
	/* The parent's writes reach the pinned page. */
	cr_assert_eq(cpu_write(mm, addr + 7, &byte, 1), 0);
	cr_assert_eq(((uint8_t *)page_address(page))[7], 0xee);
	check_pattern(child, addr, PG, 15);
	assert_audit_clean();
	unpin_user_page(page);
	mmput(child);
	mmput(mm);
}

Test(gup, fork_copies_pinned_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PG, PROT_READ | PROT_WRITE, 0);
	struct mm_struct *child;
	struct page *page;

	fill_pattern(mm, addr, PG, 16);
	cr_assert_eq(pin(mm, addr, 1, FOLL_WRITE | FOLL_LONGTERM, &page), 1);
	child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	cr_assert_eq(pfn_at(mm, addr), page_to_pfn(page), "the parent keeps the pinned page");
	cr_assert_neq(pfn_at(child, addr), page_to_pfn(page), "the child got a copy");
	check_pattern(child, addr, PG, 16);
	memset(page_address(page), 0, PG);
	check_pattern(child, addr, PG, 16);
	check_zero(mm, addr, PG);
	assert_audit_clean();
	unpin_user_page(page);
	mmput(child);
	mmput(mm);
}

/* ---- the audit's pin rule ---- */

Test(gup, audit_accepts_pins_and_flags_stray_references)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PG, PROT_READ | PROT_WRITE, 0);
	unsigned long thp = map_thp(mm, HPS);
	struct folio *folio, *big;
	struct page *page;

	fill_pattern(mm, addr, PG, 17);
	fill_pattern(mm, thp, HPS, 18);
	folio = folio_at(mm, addr);
	big = folio_at(mm, thp);
	folio_get(folio);
	cr_assert_gt(uhmm_audit(machine, NULL), 0, "an unexplained reference on a small folio");
	folio_put(folio);
	folio_get(big);
	cr_assert_gt(uhmm_audit(machine, NULL), 0, "an unexplained reference on a THP");
	folio_put(big);
	atomic_fetch_add(&big->_pincount, 1);
	cr_assert_gt(uhmm_audit(machine, NULL), 0, "a pin count without its reference");
	atomic_fetch_sub(&big->_pincount, 1);
	assert_audit_clean();
	cr_assert_eq(pin(mm, addr, 1, 0, &page), 1);
	cr_assert_eq(pin(mm, addr, 1, 0, &page), 1);
	assert_audit_clean();
	unpin_user_page(page);
	unpin_user_page(page);
	mmput(mm);
}

/* ---- threads ---- */

#define GUP_THREADS 3
#define GUP_ROUNDS 2000
#define GUP_RANGE 16

struct gup_worker {
	pthread_barrier_t *start;
	struct mm_struct *mm;
	unsigned long addr;
	int id;
	long bad;
};

/* Pin the range, check each page is the one mapped or was just replaced, unpin. */
static void *pin_worker(void *arg)
{
	struct gup_worker *w = arg;
	struct page *pages[GUP_RANGE];

	pthread_barrier_wait(w->start);
	for (int r = 0; r < GUP_ROUNDS; r++) {
		unsigned int flags = (r + w->id) % 2 ? FOLL_WRITE : 0;
		long got = pin_user_pages_fast(w->mm, w->addr, GUP_RANGE, flags, pages);

		if (got != GUP_RANGE) {
			w->bad++;
			if (got > 0)
				unpin_user_pages(pages, (unsigned long)got);
			continue;
		}
		if (flags & FOLL_WRITE)
			for (int i = 0; i < GUP_RANGE; i++)
				__atomic_store_n((uint8_t *)page_address(pages[i]) + 8 * w->id,
						 (uint8_t)r, __ATOMIC_RELAXED);
		unpin_user_pages_dirty_lock(pages, GUP_RANGE, flags & FOLL_WRITE);
	}
	return NULL;
}

/* Write and zap the range while the pinners run. */
static void *zap_worker(void *arg)
{
	struct gup_worker *w = arg;
	uint64_t v = 1;

	pthread_barrier_wait(w->start);
	for (int r = 0; r < GUP_ROUNDS; r++) {
		if (cpu_write(w->mm, w->addr + (unsigned long)(r % GUP_RANGE) * PG + 512, &v,
			      sizeof(v)))
			w->bad++;
		if (r % 16 == 15 && mm_madvise(w->mm, w->addr, GUP_RANGE * PG, MADV_DONTNEED))
			w->bad++;
	}
	return NULL;
}

Test(gup, threads_pin_while_others_write_and_zap)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, GUP_RANGE * PG, PROT_READ | PROT_WRITE, 0);
	struct gup_worker w[GUP_THREADS + 1];
	pthread_t t[GUP_THREADS + 1];
	pthread_barrier_t start;

	cr_assert_eq(pthread_barrier_init(&start, NULL, GUP_THREADS + 1), 0);
	for (int i = 0; i <= GUP_THREADS; i++) {
		w[i] = (struct gup_worker){ .start = &start, .mm = mm, .addr = addr, .id = i };
		cr_assert_eq(pthread_create(&t[i], NULL, i ? pin_worker : zap_worker, &w[i]), 0);
	}
	for (int i = 0; i <= GUP_THREADS; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
		cr_assert_eq(w[i].bad, 0, "worker %d failed %ld times", i, w[i].bad);
	}
	pthread_barrier_destroy(&start);
	assert_audit_clean();
	for (int i = 0; i < GUP_RANGE; i++) {
		uint64_t e = pagemap(mm, addr + i * PG);

		if (e & PM_PRESENT && (e & PM_PFRAME_MASK) != uhmm_zero_pfn(machine))
			cr_assert_eq(folio_ref_count(folio_at(mm, addr + i * PG)), 1);
	}
	mmput(mm);
}

/* Zap all or part of a THP range while the pinners run: PMDs split and vanish under them. */
static void *thp_zap_worker(void *arg)
{
	struct gup_worker *w = arg;
	uint64_t v = 1;

	pthread_barrier_wait(w->start);
	for (int r = 0; r < GUP_ROUNDS / 4; r++) {
		unsigned long off = (unsigned long)(r % 3) * PG;

		if (cpu_write(w->mm, w->addr + off, &v, sizeof(v)))
			w->bad++;
		if (mm_madvise(w->mm, w->addr + (r % 2 ? 2 * PG : 0), r % 2 ? 4 * PG : HPS,
			       MADV_DONTNEED))
			w->bad++;
	}
	return NULL;
}

Test(gup, threads_pin_a_thp_while_it_is_split_and_zapped)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	struct gup_worker w[GUP_THREADS + 1];
	pthread_t t[GUP_THREADS + 1];
	pthread_barrier_t start;

	fill_pattern(mm, addr, HPS, 19);
	cr_assert_eq(pthread_barrier_init(&start, NULL, GUP_THREADS + 1), 0);
	for (int i = 0; i <= GUP_THREADS; i++) {
		w[i] = (struct gup_worker){ .start = &start, .mm = mm, .addr = addr, .id = i };
		cr_assert_eq(pthread_create(&t[i], NULL, i ? pin_worker : thp_zap_worker, &w[i]),
			     0);
	}
	for (int i = 0; i <= GUP_THREADS; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
		cr_assert_eq(w[i].bad, 0, "worker %d failed %ld times", i, w[i].bad);
	}
	pthread_barrier_destroy(&start);
	assert_audit_clean();
	mmput(mm);
}
