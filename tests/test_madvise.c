/* SPDX-License-Identifier: MIT */
/*
 * tests/test_madvise.c - madvise(2): MADV_DONTNEED on 4 KiB pages and THPs,
 * MADV_FREE with lazyfree reclaim (uhmm_drop_lazyfree), MADV_HUGEPAGE and
 * MADV_NOHUGEPAGE splitting and merging VMAs, holes (-ENOMEM after advising
 * the mapped parts), the no-op advices and argument errors.  Linux x86-64
 * semantics throughout.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

#define PG PAGE_SIZE
#define HPS HPAGE_PMD_SIZE
#define NR HPAGE_PMD_NR

/* ---- local helpers ---- */

static bool is_pmd_thp(struct mm_struct *mm, unsigned long addr)
{
	uint64_t e = pagemap(mm, addr);
	if (!(e & PM_PRESENT))
		return false;
	struct folio *folio = page_folio(pfn_to_page((unsigned long)(e & PM_PFRAME_MASK)));
	return folio_order(folio) == HPAGE_PMD_ORDER && folio_entire_mapcount(folio) == 1 &&
	       !is_huge_zero_folio(folio);
}

TestSuite(madvise, .init = machine_setup, .fini = machine_teardown);

/* ---- MADV_DONTNEED ---- */

Test(madvise, dontneed_4k_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 8 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 8 * PG, 1);
	cr_assert_eq(rss_bytes(mm), 8 * PG);
	unsigned long pfn2 = pfn_at(mm, addr + 2 * PG);
	unsigned long free0 = uhmm_nr_free_pages(machine);

	cr_assert_eq(mm_madvise(mm, addr + 2 * PG, 4 * PG, MADV_DONTNEED), 0);

	cr_assert_eq(uhmm_nr_free_pages(machine), free0 + 4);
	cr_assert_eq(page_ref_count(pfn_to_page(pfn2)), 0);
	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.rss, 4 * PG);
	cr_assert_eq(s.anonymous, 4 * PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 4);
	for (int i = 2; i < 6; i++)
		cr_assert_eq(pagemap(mm, addr + i * PG), 0, "page %d still mapped", i);
	check_zero(mm, addr + 2 * PG, 4 * PG);
	for (int i = 2; i < 6; i++)
		cr_assert_eq(pfn_at(mm, addr + i * PG), uhmm_zero_pfn(machine));
	check_at(mm, addr, 0, 2 * PG, 1);
	check_at(mm, addr, 6 * PG, 2 * PG, 1);
	cr_assert_eq(rss_bytes(mm), 4 * PG);

	/* The length is rounded up to whole pages. */
	cr_assert_eq(mm_madvise(mm, addr, 1, MADV_DONTNEED), 0);
	check_zero(mm, addr, PG);
	check_at(mm, addr, PG, PG, 1);
	cr_assert_eq(rss_bytes(mm), 3 * PG);

	/* Writing again after DONTNEED allocates fresh zeroed pages. */
	uint8_t b = 3;
	cr_assert_eq(cpu_write(mm, addr + 3 * PG + 5, &b, 1), 0);
	cr_assert_neq(pfn_at(mm, addr + 3 * PG), uhmm_zero_pfn(machine));
	uint8_t buf[PG];
	cr_assert_eq(cpu_read(mm, addr + 3 * PG, buf, PG), 0);
	for (size_t i = 0; i < PG; i++)
		cr_assert_eq(buf[i], i == 5 ? 3 : 0);
	mmput(mm);
}

/*
 * Linux 6.14+ (CONFIG_PT_RECLAIM) frees a PTE table that MADV_DONTNEED
 * emptied when the zap covered its whole 2 MiB; a zap of part of it keeps
 * the table.  Afterwards the empty PMD can take a THP again, and
 * MADV_COLLAPSE stops there with -EINVAL.  Checked on the host (6.18).
 */
Test(madvise, dontneed_whole_pmd_frees_the_pte_table)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_plain(mm, 2 * HPS);
	long tables;

	/* 4 KiB pages in both PMDs (no THP without MADV_HUGEPAGE). */
	fill_at(mm, a, 0, 8 * PG, 1);
	fill_at(mm, a + HPS, 0, 8 * PG, 2);
	tables = atomic_load(&mm->pgtables_bytes);
	cr_assert_eq(mm_madvise(mm, a, HPS, MADV_DONTNEED), 0);
	cr_assert_eq(atomic_load(&mm->pgtables_bytes), tables - (long)PG, "the table went");
	/* Two zaps that each cover part of the second PMD keep its table. */
	cr_assert_eq(mm_madvise(mm, a + HPS, PG, MADV_DONTNEED), 0);
	cr_assert_eq(mm_madvise(mm, a + HPS + PG, HPS - PG, MADV_DONTNEED), 0);
	cr_assert_eq(atomic_load(&mm->pgtables_bytes), tables - (long)PG);
	cr_assert_eq(rss_bytes(mm), 0);
	/* MADV_COLLAPSE meets the empty PMD first and stops: -EINVAL, nothing made. */
	cr_assert_eq(mm_madvise(mm, a, 2 * HPS, MADV_COLLAPSE), -EINVAL);
	cr_assert_eq(anon_huge(mm), 0);
	/* With MADV_HUGEPAGE, a fault in the empty PMD maps a THP; the other stays 4 KiB. */
	cr_assert_eq(mm_madvise(mm, a, 2 * HPS, MADV_HUGEPAGE), 0);
	fill_at(mm, a, 0, PG, 3);
	fill_at(mm, a + HPS, 0, PG, 4);
	cr_assert(is_pmd_thp(mm, a));
	cr_assert_not(is_pmd_thp(mm, a + HPS));
	cr_assert_eq(anon_huge(mm), HPS);
	check_at(mm, a, 0, PG, 3);
	check_at(mm, a + HPS, 0, PG, 4);
	assert_audit_clean();
	mmput(mm);
}

Test(madvise, dontneed_part_of_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, HPS, 2);
	cr_assert(is_pmd_thp(mm, addr));
	unsigned long head = pfn_at(mm, addr);
	struct folio *folio = page_folio(pfn_to_page(head));

	unsigned long zoff = HPS / 2, zlen = HPS / 8; /* 64 pages in the middle */
	cr_assert_eq(mm_madvise(mm, addr + zoff, zlen, MADV_DONTNEED), 0);

	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.anon_huge_pages, 0, "the PMD must be split");
	cr_assert_eq(s.rss, HPS - zlen);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)(NR - zlen / PG));
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER);
	cr_assert_eq(folio_mapcount(folio), (int)(NR - zlen / PG));
	cr_assert_eq(folio_ref_count(folio), (int)(NR - zlen / PG));
	cr_assert_eq(pagemap(mm, addr + zoff), 0);
	cr_assert_eq(pagemap(mm, addr + zoff + zlen - PG), 0);
	cr_assert_eq(pfn_at(mm, addr + zoff - PG), head + zoff / PG - 1);
	cr_assert_eq(pfn_at(mm, addr + zoff + zlen), head + (zoff + zlen) / PG);

	check_at(mm, addr, 0, zoff, 2);
	check_zero(mm, addr + zoff, zlen);
	check_at(mm, addr, zoff + zlen, HPS - zoff - zlen, 2);
	cr_assert_eq(pfn_at(mm, addr + zoff + PG), uhmm_zero_pfn(machine));
	cr_assert_eq(rss_bytes(mm), HPS - zlen);

	/* Writing into the zapped part gets a 4 KiB page. */
	fill_at(mm, addr, zoff + 3 * PG, 10, 3);
	cr_assert_eq(folio_order(folio_at(mm, addr + zoff + 3 * PG)), 0);
	cr_assert_eq(rss_bytes(mm), HPS - zlen + PG);
	mmput(mm);
}

Test(madvise, dontneed_whole_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, HPS, 4);
	cr_assert(is_pmd_thp(mm, addr));
	unsigned long head = pfn_at(mm, addr);
	unsigned long free0 = uhmm_nr_free_pages(machine);

	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_DONTNEED), 0);

	unsigned long freed = uhmm_nr_free_pages(machine) - free0;
	cr_assert(freed == NR || freed == NR + 1, "freed %lu pages, want %lu (+ a table)", freed,
		  NR);
	cr_assert_eq(page_ref_count(pfn_to_page(head)), 0);
	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.rss, 0);
	cr_assert_eq(s.anon_huge_pages, 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	cr_assert_eq(pagemap(mm, addr), 0);
	cr_assert_eq(pagemap(mm, addr + HPS - PG), 0);

	/* The PMD is empty again: a read maps the huge zero page, a write a new THP. */
	check_zero(mm, addr, HPS);
	cr_assert(is_huge_zero_folio(folio_at(mm, addr)));
	cr_assert_eq(rss_bytes(mm), 0);
	mmput(mm);
}

Test(madvise, dontneed_whole_thp_then_write_gets_new_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, PG, 5);
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_DONTNEED), 0);
	fill_at(mm, addr, HPS - 10, 10, 6);
	cr_assert(is_pmd_thp(mm, addr));
	cr_assert_eq(anon_huge(mm), HPS);
	check_zero(mm, addr, HPS - 10);
	check_at(mm, addr, HPS - 10, 10, 6);
	mmput(mm);
}

Test(madvise, dontneed_zero_and_untouched_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	check_zero(mm, addr, 2 * PG);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(mm_madvise(mm, addr, 4 * PG, MADV_DONTNEED), 0);
	cr_assert_eq(pagemap(mm, addr), 0);
	cr_assert_eq(pagemap(mm, addr + PG), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	cr_assert_eq(rss_bytes(mm), 0);
	mmput(mm);
}

Test(madvise, dontneed_prot_none)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 2 * PG, 7);
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PG, PROT_NONE), 0);
	cr_assert_eq(mm_madvise(mm, addr, 2 * PG, MADV_DONTNEED), 0);
	cr_assert_eq(rss_bytes(mm), 0);
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PG, PROT_READ), 0);
	check_zero(mm, addr, 2 * PG);
	mmput(mm);
}

/* ---- MADV_FREE ---- */

Test(madvise, free_keeps_data_until_reclaim)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 8 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 8 * PG, 10);
	unsigned long pfn0 = pfn_at(mm, addr);
	unsigned long pfn1 = pfn_at(mm, addr + PG);

	cr_assert_eq(mm_madvise(mm, addr, 6 * PG, MADV_FREE), 0);

	/* Linux keeps the pages until reclaim: nothing changes yet. */
	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.rss, 8 * PG);
	cr_assert_eq(s.lazy_free, 6 * PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 8);
	cr_assert_eq(pfn_at(mm, addr), pfn0);
	cr_assert(folio_test_lazyfree(page_folio(pfn_to_page(pfn0))));
	cr_assert(!folio_test_lazyfree(folio_at(mm, addr + 7 * PG)));
	check_at(mm, addr, 0, 8 * PG, 10);

	/* A page written after MADV_FREE is dirty again and must survive. */
	uint8_t b = 0x77;
	cr_assert_eq(cpu_write(mm, addr + PG + 123, &b, 1), 0);
	cr_assert_eq(pfn_at(mm, addr + PG), pfn1, "the write reuses the lazyfree page");
	cr_assert_eq(smaps(mm).lazy_free, 5 * PG);

	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(uhmm_drop_lazyfree(machine), 5);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 + 5);
	s = smaps(mm);
	cr_assert_eq(s.rss, 3 * PG);
	cr_assert_eq(s.lazy_free, 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 3);
	cr_assert_eq(pagemap(mm, addr), 0);
	cr_assert_eq(page_ref_count(pfn_to_page(pfn0)), 0);

	check_zero(mm, addr, PG);
	check_zero(mm, addr + 2 * PG, 4 * PG);
	uint8_t buf[PG];
	cr_assert_eq(cpu_read(mm, addr + PG, buf, PG), 0);
	for (size_t i = 0; i < PG; i++)
		cr_assert_eq(buf[i], i == 123 ? 0x77 : pattern_byte(10, PG + i), "byte %zu", i);
	check_at(mm, addr, 6 * PG, 2 * PG, 10);
	cr_assert_eq(pfn_at(mm, addr + PG), pfn1);

	/* Nothing is left to drop. */
	cr_assert_eq(uhmm_drop_lazyfree(machine), 0);
	cr_assert_eq(rss_bytes(mm), 3 * PG);
	mmput(mm);
}

Test(madvise, free_then_write_whole_range_keeps_all)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 4 * PG, 11);
	cr_assert_eq(mm_madvise(mm, addr, 4 * PG, MADV_FREE), 0);
	fill_at(mm, addr, 0, 4 * PG, 12);
	cr_assert_eq(uhmm_drop_lazyfree(machine), 0);
	check_at(mm, addr, 0, 4 * PG, 12);
	cr_assert_eq(rss_bytes(mm), 4 * PG);
	mmput(mm);
}

Test(madvise, free_on_zero_and_untouched_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	check_zero(mm, addr, PG);
	cr_assert_eq(mm_madvise(mm, addr, 4 * PG, MADV_FREE), 0);
	cr_assert_eq(pfn_at(mm, addr), uhmm_zero_pfn(machine));
	cr_assert_eq(uhmm_drop_lazyfree(machine), 0);
	cr_assert_eq(rss_bytes(mm), 0);
	check_zero(mm, addr, 4 * PG);
	mmput(mm);
}

Test(madvise, free_whole_thp_then_drop)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, HPS, 13);
	cr_assert(is_pmd_thp(mm, addr));
	unsigned long head = pfn_at(mm, addr);

	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_FREE), 0);
	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.anon_huge_pages, HPS, "MADV_FREE of a whole PMD does not split it");
	cr_assert_eq(s.rss, HPS);
	cr_assert_eq(s.lazy_free, HPS);
	cr_assert(is_pmd_thp(mm, addr));
	check_at(mm, addr, 0, HPS, 13);

	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(uhmm_drop_lazyfree(machine), NR);
	unsigned long freed = uhmm_nr_free_pages(machine) - free0;
	cr_assert(freed == NR || freed == NR + 1, "freed %lu", freed);
	cr_assert_eq(page_ref_count(pfn_to_page(head)), 0);
	s = smaps(mm);
	cr_assert_eq(s.rss, 0);
	cr_assert_eq(s.anon_huge_pages, 0);
	cr_assert_eq(s.lazy_free, 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	check_zero(mm, addr, HPS);
	mmput(mm);
}

Test(madvise, free_whole_thp_written_after_is_kept)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, HPS, 14);
	unsigned long head = pfn_at(mm, addr);
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_FREE), 0);
	uint8_t b = 1;
	cr_assert_eq(cpu_write(mm, addr + 1000 * 2, &b, 1), 0);
	cr_assert_eq(uhmm_drop_lazyfree(machine), 0);
	cr_assert(is_pmd_thp(mm, addr));
	cr_assert_eq(pfn_at(mm, addr), head);
	cr_assert_eq(rss_bytes(mm), HPS);
	check_at(mm, addr, 0, 2000, 14);
	check_at(mm, addr, 2001, HPS - 2001, 14);
	mmput(mm);
}

/*
 * Linux 6.12+: splitting an anonymous THP maps the shared zero page over
 * every page that holds only zeroes and frees it.  A partial MADV_FREE
 * splits the folio, so an underused THP gives its unused pages back
 * (checked on the host, 6.18: pagemap shows the zero page there).
 */
Test(madvise, free_part_of_thp_maps_zero_page_over_unused_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);

	fill_at(mm, addr, 0, 8 * PG, 16);
	cr_assert(is_pmd_thp(mm, addr));
	cr_assert_eq(mm_madvise(mm, addr, HPS / 4, MADV_FREE), 0);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), 8 * PG, "only the 8 written pages stay");
	for (unsigned long p = 8; p < NR; p += 37)
		cr_assert_eq(pfn_at(mm, addr + p * PG), uhmm_zero_pfn(machine),
			     "page %lu maps the zero page", p);
	cr_assert_neq(pfn_at(mm, addr + 7 * PG), uhmm_zero_pfn(machine));
	check_at(mm, addr, 0, 8 * PG, 16);
	check_zero(mm, addr + 8 * PG, HPS - 8 * PG);
	assert_audit_clean();
	/* A write to one of them gets a new page, as after any zero-page read. */
	fill_at(mm, addr + 300 * PG, 0, PG, 17);
	cr_assert_eq(rss_bytes(mm), 9 * PG);
	mmput(mm);
}

Test(madvise, free_part_of_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, HPS, 15);
	cr_assert(is_pmd_thp(mm, addr));
	/*
	 * Linux (madvise_free_huge_pmd) splits the exclusive folio for a partial
	 * MADV_FREE, so exactly the advised quarter becomes lazyfree.
	 */
	cr_assert_eq(mm_madvise(mm, addr, HPS / 4, MADV_FREE), 0);
	cr_assert_eq(rss_bytes(mm), HPS);
	cr_assert_eq(anon_huge(mm), 0);
	check_at(mm, addr, 0, HPS, 15);
	unsigned long dropped = uhmm_drop_lazyfree(machine);
	cr_assert_eq(dropped, NR / 4);
	cr_assert_eq(rss_bytes(mm), HPS - dropped * PG);
	/* Whatever was dropped reads zero; the rest is intact. */
	uint8_t *buf = malloc(HPS / 4);
	cr_assert(buf);
	cr_assert_eq(cpu_read(mm, addr, buf, HPS / 4), 0);
	unsigned long zero_pages = 0;
	for (unsigned long p = 0; p < NR / 4; p++) {
		bool z = true, same = true;
		for (unsigned long j = 0; j < PG; j++) {
			z &= buf[p * PG + j] == 0;
			same &= buf[p * PG + j] == pattern_byte(15, p * PG + j);
		}
		cr_assert(z || same, "page %lu is neither dropped nor intact", p);
		zero_pages += z;
	}
	cr_assert_eq(zero_pages, dropped);
	free(buf);
	check_at(mm, addr, HPS / 4, 3 * HPS / 4, 15);
	mmput(mm);
}

Test(madvise, free_prot_none_anonymous)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 2 * PG, 16);
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PG, PROT_NONE), 0);
	/* Linux: MADV_FREE works on any anonymous VMA, PROT_NONE included. */
	cr_assert_eq(mm_madvise(mm, addr, 2 * PG, MADV_FREE), 0);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PG, PROT_READ | PROT_WRITE), 0);
	check_at(mm, addr, 0, 2 * PG, 16);
	cr_assert_eq(uhmm_drop_lazyfree(machine), 2);
	check_zero(mm, addr, 2 * PG);
	cr_assert_eq(rss_bytes(mm), 0);
	mmput(mm);
}

Test(madvise, free_two_mms_only_drops_clean)
{
	struct mm_struct *a = new_mm(), *b = new_mm();
	unsigned long xa = map_anon(a, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long xb = map_anon(b, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(a, xa, 0, 4 * PG, 17);
	fill_at(b, xb, 0, 4 * PG, 18);
	cr_assert_eq(mm_madvise(a, xa, 4 * PG, MADV_FREE), 0);
	cr_assert_eq(mm_madvise(b, xb, 2 * PG, MADV_FREE), 0);
	cr_assert_eq(uhmm_drop_lazyfree(machine), 6);
	check_zero(a, xa, 4 * PG);
	check_zero(b, xb, 2 * PG);
	check_at(b, xb, 2 * PG, 2 * PG, 18);
	cr_assert_eq(rss_bytes(a), 0);
	cr_assert_eq(rss_bytes(b), 2 * PG);
	mmput(a);
	mmput(b);
}

/* ---- MADV_HUGEPAGE / MADV_NOHUGEPAGE ---- */

Test(madvise, hugepage_splits_and_merges_vmas)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, 4 * HPS);
	cr_assert_eq(nr_vmas(mm), 1);

	/* Advice on the middle splits the VMA in three. */
	cr_assert_eq(mm_madvise(mm, addr + HPS, HPS, MADV_HUGEPAGE), 0);
	cr_assert_eq(nr_vmas(mm), 3);
	/* NOHUGEPAGE there: still three (flags still differ from the neighbours). */
	cr_assert_eq(mm_madvise(mm, addr + HPS, HPS, MADV_NOHUGEPAGE), 0);
	cr_assert_eq(nr_vmas(mm), 3);
	/* Advising the whole range makes the flags equal again: one VMA. */
	cr_assert_eq(mm_madvise(mm, addr, 4 * HPS, MADV_HUGEPAGE), 0);
	cr_assert_eq(nr_vmas(mm), 1);
	/* Advice that changes nothing does not split. */
	cr_assert_eq(mm_madvise(mm, addr + HPS, PG, MADV_HUGEPAGE), 0);
	cr_assert_eq(nr_vmas(mm), 1);

	for (int i = 0; i < 4; i++)
		fill_at(mm, addr, i * HPS + 8 * i, 16, 20);
	for (int i = 0; i < 4; i++)
		cr_assert(is_pmd_thp(mm, addr + i * HPS), "PMD %d is not a THP", i);
	cr_assert_eq(anon_huge(mm), 4 * HPS);

	/* NOHUGEPAGE in the middle splits the VMA at PMD boundaries: THPs stay. */
	cr_assert_eq(mm_madvise(mm, addr + 2 * HPS, HPS, MADV_NOHUGEPAGE), 0);
	cr_assert_eq(nr_vmas(mm), 3);
	cr_assert_eq(anon_huge(mm), 4 * HPS);
	for (int i = 0; i < 4; i++) {
		cr_assert(is_pmd_thp(mm, addr + i * HPS), "PMD %d is not a THP", i);
		check_at(mm, addr, i * HPS + 8 * i, 16, 20);
	}
	mmput(mm);
}

Test(madvise, hugepage_on_middle_only_changes_middle)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, 3 * HPS);
	cr_assert_eq(mm_madvise(mm, addr + HPS, HPS, MADV_HUGEPAGE), 0);
	cr_assert_eq(nr_vmas(mm), 3);
	for (int i = 0; i < 3; i++)
		fill_at(mm, addr, i * HPS + 100, 16, 21);
	cr_assert(!is_pmd_thp(mm, addr));
	cr_assert(is_pmd_thp(mm, addr + HPS));
	cr_assert(!is_pmd_thp(mm, addr + 2 * HPS));
	cr_assert_eq(folio_order(folio_at(mm, addr + 100)), 0);
	cr_assert_eq(folio_order(folio_at(mm, addr + 2 * HPS + 100)), 0);
	cr_assert_eq(anon_huge(mm), HPS);
	cr_assert_eq(rss_bytes(mm), HPS + 2 * PG);
	for (int i = 0; i < 3; i++)
		check_at(mm, addr, i * HPS + 100, 16, 21);
	mmput(mm);
}

Test(madvise, nohugepage_middle_in_always_mode)
{
	uhmm_machine_set_thp(machine, THP_ALWAYS);
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 3 * HPS, PROT_READ | PROT_WRITE, 0);
	cr_assert_eq(mm_madvise(mm, addr + HPS, HPS, MADV_NOHUGEPAGE), 0);
	cr_assert_eq(nr_vmas(mm), 3);
	for (int i = 0; i < 3; i++)
		fill_at(mm, addr, i * HPS + 100, 8, 22);
	cr_assert(is_pmd_thp(mm, addr));
	cr_assert(!is_pmd_thp(mm, addr + HPS));
	cr_assert_eq(folio_order(folio_at(mm, addr + HPS)), 0);
	cr_assert(is_pmd_thp(mm, addr + 2 * HPS));
	cr_assert_eq(anon_huge(mm), 2 * HPS);
	cr_assert_eq(rss_bytes(mm), 2 * HPS + PG);
	mmput(mm);
}

/* ---- holes ---- */

Test(madvise, dontneed_over_hole_enomem_but_applied)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 6 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 6 * PG, 30);
	cr_assert_eq(mm_munmap(mm, addr + 2 * PG, 2 * PG), 0);
	cr_assert_eq(rss_bytes(mm), 4 * PG);

	cr_assert_eq(mm_madvise(mm, addr, 6 * PG, MADV_DONTNEED), -ENOMEM);
	cr_assert_eq(rss_bytes(mm), 0, "both mapped parts are advised despite the hole");
	check_zero(mm, addr, 2 * PG);
	check_zero(mm, addr + 4 * PG, 2 * PG);

	/* A hole at the start: the part after it is still advised. */
	fill_at(mm, addr, 4 * PG, 2 * PG, 31);
	fill_at(mm, addr, 0, 2 * PG, 31);
	cr_assert_eq(mm_madvise(mm, addr + 2 * PG, 4 * PG, MADV_DONTNEED), -ENOMEM);
	check_zero(mm, addr + 4 * PG, 2 * PG);
	check_at(mm, addr, 0, 2 * PG, 31);
	cr_assert_eq(rss_bytes(mm), 2 * PG);

	/* Only a hole. */
	cr_assert_eq(mm_madvise(mm, addr + 2 * PG, 2 * PG, MADV_DONTNEED), -ENOMEM);
	cr_assert_eq(mm_madvise(mm, addr + 2 * PG, PG, MADV_NORMAL), -ENOMEM);
	check_at(mm, addr, 0, 2 * PG, 31);
	mmput(mm);
}

Test(madvise, hugepage_over_hole_enomem_but_applied)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, 3 * HPS);
	cr_assert_eq(mm_munmap(mm, addr + HPS, HPS), 0);
	cr_assert_eq(mm_madvise(mm, addr, 3 * HPS, MADV_HUGEPAGE), -ENOMEM);
	fill_at(mm, addr, 0, 8, 32);
	fill_at(mm, addr, 2 * HPS, 8, 32);
	cr_assert(is_pmd_thp(mm, addr));
	cr_assert(is_pmd_thp(mm, addr + 2 * HPS));
	cr_assert_eq(anon_huge(mm), 2 * HPS);
	mmput(mm);
}

Test(madvise, free_over_hole_enomem_but_applied)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 4 * PG, 33);
	cr_assert_eq(mm_munmap(mm, addr + PG, PG), 0);
	cr_assert_eq(mm_madvise(mm, addr, 4 * PG, MADV_FREE), -ENOMEM);
	cr_assert_eq(uhmm_drop_lazyfree(machine), 3);
	check_zero(mm, addr, PG);
	check_zero(mm, addr + 2 * PG, 2 * PG);
	mmput(mm);
}

/* ---- no-op advice and argument errors ---- */

Test(madvise, noop_advice_returns_zero)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 2 * PG, 40);
	check_zero(mm, addr + 2 * PG, PG);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	static const int advice[] = { MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED };
	for (size_t i = 0; i < sizeof(advice) / sizeof(advice[0]); i++) {
		cr_assert_eq(mm_madvise(mm, addr, 4 * PG, advice[i]), 0, "advice %d", advice[i]);
		cr_assert_eq(mm_madvise(mm, addr + PG, PG, advice[i]), 0, "advice %d", advice[i]);
	}
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	cr_assert_eq(pagemap(mm, addr + 3 * PG), 0);
	cr_assert_eq(pfn_at(mm, addr + 2 * PG), uhmm_zero_pfn(machine));
	check_at(mm, addr, 0, 2 * PG, 40);
	check_zero(mm, addr + 2 * PG, 2 * PG);
	mmput(mm);
}

Test(madvise, argument_errors)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 4 * PG, 41);
	/* Unaligned start. */
	cr_assert_eq(mm_madvise(mm, addr + 1, PG, MADV_DONTNEED), -EINVAL);
	cr_assert_eq(mm_madvise(mm, addr + 8, PG, MADV_FREE), -EINVAL);
	/* Unknown advice. */
	cr_assert_eq(mm_madvise(mm, addr, PG, 12345), -EINVAL);
	cr_assert_eq(mm_madvise(mm, addr, PG, -1), -EINVAL);
	/* Wrapping range. */
	cr_assert_eq(mm_madvise(mm, addr, (unsigned long)-PG, MADV_DONTNEED), -EINVAL);
	/* Zero length: success, nothing done. */
	cr_assert_eq(mm_madvise(mm, addr, 0, MADV_DONTNEED), 0);
	check_at(mm, addr, 0, 4 * PG, 41);
	cr_assert_eq(rss_bytes(mm), 4 * PG);
	mmput(mm);
}

Test(madvise, dontneed_spanning_two_thps)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, 2 * HPS);
	fill_at(mm, addr, 0, 2 * HPS, 50);
	cr_assert(is_pmd_thp(mm, addr));
	cr_assert(is_pmd_thp(mm, addr + HPS));
	/* Zap the upper half of the first THP and the lower half of the second. */
	cr_assert_eq(mm_madvise(mm, addr + HPS / 2, HPS, MADV_DONTNEED), 0);
	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.anon_huge_pages, 0);
	cr_assert_eq(s.rss, HPS);
	check_at(mm, addr, 0, HPS / 2, 50);
	check_zero(mm, addr + HPS / 2, HPS);
	check_at(mm, addr, HPS + HPS / 2, HPS / 2, 50);
	/* Zapping the rest of both frees both folios. */
	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(mm_madvise(mm, addr, 2 * HPS, MADV_DONTNEED), 0);
	cr_assert_geq(uhmm_nr_free_pages(machine) - free0, 2 * NR);
	cr_assert_eq(rss_bytes(mm), 0);
	check_zero(mm, addr, 2 * HPS);
	mmput(mm);
}

Test(madvise, free_then_dontneed)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 4 * PG, 51);
	cr_assert_eq(mm_madvise(mm, addr, 4 * PG, MADV_FREE), 0);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(mm_madvise(mm, addr, 2 * PG, MADV_DONTNEED), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 + 2);
	cr_assert_eq(smaps(mm).lazy_free, 2 * PG);
	cr_assert_eq(uhmm_drop_lazyfree(machine), 2);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 + 4);
	check_zero(mm, addr, 4 * PG);
	mmput(mm);
}

Test(madvise, free_then_munmap_and_mmput)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 4 * PG, 52);
	cr_assert_eq(mm_madvise(mm, addr, 4 * PG, MADV_FREE), 0);
	cr_assert_eq(mm_munmap(mm, addr, 2 * PG), 0);
	cr_assert_eq(uhmm_drop_lazyfree(machine), 2);
	unsigned long addr2 = map_thp(mm, HPS);
	fill_at(mm, addr2, 0, HPS, 53);
	cr_assert_eq(mm_madvise(mm, addr2, HPS, MADV_FREE), 0);
	mmput(mm); /* lazyfree folios are freed with the mm */
	cr_assert_eq(uhmm_drop_lazyfree(machine), 0);
}

/*
 * MADV_POPULATE_WRITE of a read-only mapping, and MADV_POPULATE_READ of a
 * PROT_NONE one: -EINVAL (insufficient permissions, GUP's
 * check_vma_flags() under FOLL_MADV_POPULATE), nothing faulted in.  uhmm
 * used to fault the write and answer -EFAULT (found by stress/shadow_model).
 */
Test(madvise, populate_without_permission_is_einval)
{
	struct mm_struct *mm = new_mm();
	unsigned long ro = map_anon(mm, 0, 4 * PG, PROT_READ, 0);
	unsigned long none = map_anon(mm, 0, 4 * PG, PROT_NONE, 0);

	cr_assert_eq(mm_madvise(mm, ro, 4 * PG, 23 /* MADV_POPULATE_WRITE */), -EINVAL);
	cr_assert_eq(pagemap(mm, ro), 0);
	cr_assert_eq(mm_madvise(mm, none, 4 * PG, 22 /* MADV_POPULATE_READ */), -EINVAL);
	cr_assert_eq(mm_madvise(mm, none, 4 * PG, 23 /* MADV_POPULATE_WRITE */), -EINVAL);
	cr_assert_eq(rss_bytes(mm), 0);
	/* Reading a read-only mapping is fine: the zero page. */
	cr_assert_eq(mm_madvise(mm, ro, 4 * PG, 22 /* MADV_POPULATE_READ */), 0);
	cr_assert_eq(pfn_at(mm, ro), uhmm_zero_pfn(machine));
	check_zero(mm, ro, 4 * PG);
	mmput(mm);
}
