/* SPDX-License-Identifier: MIT */
/*
 * tests/test_thp.c - transparent huge pages on anonymous memory: PMD-mapped
 * THP on fault under each transparent_hugepage/enabled mode, VM_HUGEPAGE and
 * VM_NOHUGEPAGE, alignment, the huge zero page and its split on write,
 * allocation fallback, partial munmap and mprotect (PMD split, folio stays
 * large), MADV_COLLAPSE and write reuse after mprotect.  Linux x86-64
 * semantics throughout.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

#define PG PAGE_SIZE
#define HPS HPAGE_PMD_SIZE
#define NR HPAGE_PMD_NR

/* ---- local helpers ---- */

/* Assert [addr, addr+2M) is one PMD-mapped order-9 anon THP; return its head pfn. */
static unsigned long assert_pmd_thp(struct mm_struct *mm, unsigned long addr)
{
	uint64_t *pm = malloc(NR * sizeof(*pm));
	cr_assert(pm);
	cr_assert_eq(mm_pagemap_read(mm, addr, NR, pm), 0);
	unsigned long head = (unsigned long)(pm[0] & PM_PFRAME_MASK);
	cr_assert(IS_ALIGNED(head, NR), "THP head pfn %#lx is not 512-aligned", head);
	for (unsigned long i = 0; i < NR; i++) {
		cr_assert(pm[i] & PM_PRESENT, "page %lu of the THP is not present", i);
		cr_assert_eq(pm[i] & PM_PFRAME_MASK, head + i, "page %lu: pfn %#llx, want %#lx", i,
			     (unsigned long long)(pm[i] & PM_PFRAME_MASK), head + i);
		cr_assert(pm[i] & PM_MMAP_EXCLUSIVE, "page %lu not exclusive", i);
	}
	free(pm);
	struct folio *folio = page_folio(pfn_to_page(head));
	cr_assert_eq(folio_pfn(folio), head);
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER);
	cr_assert(folio_test_anon(folio));
	cr_assert_eq(folio_entire_mapcount(folio), 1);
	cr_assert_eq(folio_mapcount(folio), 1);
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 77)), 1);
	cr_assert_eq(uhmm_kpagecount(head + 300), 1);
	uint64_t kh = uhmm_kpageflags(head), kt = uhmm_kpageflags(head + 511);
	cr_assert(kh & (1ULL << KPF_THP), "head kpageflags %#llx", (unsigned long long)kh);
	cr_assert(kh & (1ULL << KPF_COMPOUND_HEAD));
	cr_assert(kh & (1ULL << KPF_ANON));
	cr_assert(kt & (1ULL << KPF_THP), "tail kpageflags %#llx", (unsigned long long)kt);
	cr_assert(kt & (1ULL << KPF_COMPOUND_TAIL));
	cr_assert_eq(kt & (1ULL << KPF_COMPOUND_HEAD), 0);
	cr_assert_eq(kh & (1ULL << KPF_ZERO_PAGE), 0);
	cr_assert(uhmm_kpageflags(head + 1) & (1ULL << KPF_THP));
	return head;
}

static struct fault_attr fail_order9(long times)
{
	struct fault_attr a = {
		.probability = 100, .interval = 1, .times = times, .min_order = HPAGE_PMD_ORDER,
		.seed = 3,
	};
	return a;
}

TestSuite(thp, .init = machine_setup, .fini = machine_teardown);

/* ---- THP on fault ---- */

Test(thp, hugepage_first_write_maps_pmd_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	uint64_t v = 0x1122334455667788ULL;
	cr_assert_eq(cpu_write(mm, addr + 3 * PG + 40, &v, sizeof(v)), 0);

	unsigned long head = assert_pmd_thp(mm, addr);
	cr_assert_geq(free0 - uhmm_nr_free_pages(machine), NR);
	cr_assert_leq(free0 - uhmm_nr_free_pages(machine), NR + 3, "THP + at most the page tables");
	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.anon_huge_pages, HPS);
	cr_assert_eq(s.rss, HPS);
	cr_assert_eq(s.anonymous, HPS);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)NR);

	uint64_t got = 0;
	cr_assert_eq(cpu_read(mm, addr + 3 * PG + 40, &got, sizeof(got)), 0);
	cr_assert_eq(got, v);
	check_zero(mm, addr, 3 * PG + 40);
	check_zero(mm, addr + 3 * PG + 48, HPS - 3 * PG - 48);

	/* More writes anywhere in the 2 MiB stay in the same folio. */
	fill_at(mm, addr, HPS - 5000, 5000, 9);
	cr_assert_eq(pfn_at(mm, addr + HPS - PG), head + NR - 1);
	cr_assert_eq(anon_huge(mm), HPS);
	mmput(mm);
}

/*
 * An anonymous VMA whose pgoff is not 2 MiB-aligned relative to its start
 * (moved there by mremap) still gets a THP at an aligned address: Linux's
 * thp_vma_suitable_order() checks the pgoff of file VMAs only.
 */
Test(thp, misaligned_anon_pgoff_still_gets_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long src = map_plain(mm, 3 * HPS), dst = map_plain(mm, 2 * HPS);
	struct vm_area_struct *vma;
	unsigned long head;

	/*
	 * A 4 KiB page at src gives the VMA its anon_vma (mremap of a VMA
	 * that never faulted resets the pgoff to the new address); then move
	 * [src + 2 MiB + 4 KiB, src + 4 MiB + 4 KiB), which has no page
	 * tables (so dst's PMD stays empty, as in Linux), to dst: its pgoff
	 * stays src's + 513.
	 */
	fill_pattern(mm, src, PG, 6);
	cr_assert_eq(mm_mremap(mm, src + HPS + PG, HPS, HPS, MREMAP_MAYMOVE | MREMAP_FIXED, dst),
		     (long)dst);
	mmap_read_lock(mm);
	vma = find_vma(mm, dst);
	cr_assert(vma && vma->vm_start == dst);
	cr_assert_eq(vma->vm_pgoff, (src >> PAGE_SHIFT) + NR + 1);
	mmap_read_unlock(mm);
	cr_assert_eq(mm_madvise(mm, dst, HPS, MADV_HUGEPAGE), 0);
	fill_pattern(mm, dst, HPS, 7);
	head = assert_pmd_thp(mm, dst);
	cr_assert_eq(page_folio(pfn_to_page(head))->index, (src >> PAGE_SHIFT) + NR + 1);
	check_pattern(mm, dst, HPS, 7);
	check_pattern(mm, src, PG, 6);
	assert_audit_clean();
	mmput(mm);
}

Test(thp, two_thps_in_4m)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, 2 * HPS);
	fill_at(mm, addr, 0, 2 * HPS, 4);
	unsigned long h0 = assert_pmd_thp(mm, addr), h1 = assert_pmd_thp(mm, addr + HPS);
	cr_assert_neq(h0, h1);
	cr_assert_eq(anon_huge(mm), 2 * HPS);
	cr_assert_eq(rss_bytes(mm), 2 * HPS);
	check_at(mm, addr, 0, 2 * HPS, 4);
	mmput(mm);
}

Test(thp, madvise_mode_without_hugepage_gives_4k)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, 2 * HPS);
	uint8_t b = 0xab;
	cr_assert_eq(cpu_write(mm, addr + 5, &b, 1), 0);
	struct folio *folio = folio_at(mm, addr);
	cr_assert_eq(folio_order(folio), 0);
	cr_assert_eq(uhmm_kpageflags(pfn_at(mm, addr)) & (1ULL << KPF_THP), 0);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), PG);
	cr_assert_eq(pagemap(mm, addr + PG), 0);
	/* A read in an untouched PMD range maps the small zero page, not the huge one. */
	check_zero(mm, addr + HPS + PG, PG);
	cr_assert_eq(pfn_at(mm, addr + HPS + PG), uhmm_zero_pfn(machine));
	cr_assert_eq(pagemap(mm, addr + HPS), 0);
	mmput(mm);
}

Test(thp, always_mode_without_madvise)
{
	uhmm_machine_set_thp(machine, THP_ALWAYS);
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, HPS);
	fill_at(mm, addr, 1000, 10, 1);
	assert_pmd_thp(mm, addr);
	cr_assert_eq(anon_huge(mm), HPS);
	cr_assert_eq(rss_bytes(mm), HPS);
	check_at(mm, addr, 1000, 10, 1);
	mmput(mm);
}

static void always_setup(void)
{
	struct uhmm_machine_config cfg = { .thp_enabled = THP_ALWAYS };
	machine_setup_with(&cfg);
}

TestSuite(thp_always, .init = always_setup, .fini = machine_teardown);

Test(thp_always, config_always_mode)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, 2 * HPS);
	fill_at(mm, addr, HPS + 10, 10, 2);
	assert_pmd_thp(mm, addr + HPS);
	cr_assert_eq(pagemap(mm, addr), 0);
	cr_assert_eq(anon_huge(mm), HPS);
	/* MADV_NOHUGEPAGE wins over "always". */
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_NOHUGEPAGE), 0);
	fill_at(mm, addr, 10, 10, 2);
	cr_assert_eq(folio_order(folio_at(mm, addr)), 0);
	cr_assert_eq(anon_huge(mm), HPS);
	cr_assert_eq(rss_bytes(mm), HPS + PG);
	mmput(mm);
}

Test(thp, never_mode_ignores_madvise)
{
	uhmm_machine_set_thp(machine, THP_NEVER);
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	/* Reads get the small zero page: no huge zero page where THP is off. */
	check_zero(mm, addr + HPS / 2, PG);
	cr_assert_eq(pfn_at(mm, addr + HPS / 2), uhmm_zero_pfn(machine));
	cr_assert_eq(pagemap(mm, addr + HPS / 2 + PG), 0);
	fill_at(mm, addr, 0, 100, 3);
	cr_assert_eq(folio_order(folio_at(mm, addr)), 0);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), PG);
	/* Switching to madvise at run time affects later faults in untouched PMDs. */
	unsigned long addr2 = map_thp(mm, HPS);
	uhmm_machine_set_thp(machine, THP_MADVISE);
	fill_at(mm, addr2, 0, 100, 3);
	assert_pmd_thp(mm, addr2);
	mmput(mm);
}

Test(thp, nohugepage_wins)
{
	struct mm_struct *mm = new_mm();
	/* madvise mode: HUGEPAGE then NOHUGEPAGE leaves no THP. */
	unsigned long addr = map_thp(mm, HPS);
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_NOHUGEPAGE), 0);
	fill_at(mm, addr, 0, 64, 1);
	cr_assert_eq(folio_order(folio_at(mm, addr)), 0);
	/* always mode: NOHUGEPAGE still wins. */
	uhmm_machine_set_thp(machine, THP_ALWAYS);
	unsigned long addr2 = map_plain(mm, 2 * HPS);
	cr_assert_eq(mm_madvise(mm, addr2, 2 * HPS, MADV_NOHUGEPAGE), 0);
	fill_at(mm, addr2, 0, 64, 1);
	cr_assert_eq(folio_order(folio_at(mm, addr2)), 0);
	/* No huge zero page either (read in an untouched PMD range). */
	check_zero(mm, addr2 + HPS + PG, PG);
	cr_assert_eq(pfn_at(mm, addr2 + HPS + PG), uhmm_zero_pfn(machine));
	cr_assert_eq(pagemap(mm, addr2 + HPS), 0);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	mmput(mm);
}

Test(thp, range_not_covering_aligned_pmd_gets_4k)
{
	struct mm_struct *mm = new_mm();
	unsigned long base = map_thp(mm, 2 * HPS);
	/* The VMA becomes [base + 4K, base + 4M): its first PMD range is incomplete. */
	cr_assert_eq(mm_munmap(mm, base, PG), 0);
	/* A read there maps the small zero page, not the huge one. */
	check_zero(mm, base + HPS - PG, PG);
	cr_assert_eq(pfn_at(mm, base + HPS - PG), uhmm_zero_pfn(machine));
	cr_assert_eq(pagemap(mm, base + HPS - 2 * PG), 0);
	fill_at(mm, base, PG, 100, 5);
	cr_assert_eq(folio_order(folio_at(mm, base + PG)), 0);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), PG);
	/* The second PMD range is whole and gets a THP. */
	fill_at(mm, base, HPS + 12345, 100, 5);
	assert_pmd_thp(mm, base + HPS);
	cr_assert_eq(anon_huge(mm), HPS);
	cr_assert_eq(rss_bytes(mm), HPS + PG);
	check_at(mm, base, PG, 100, 5);
	check_at(mm, base, HPS + 12345, 100, 5);

	/* Unmapping the upper half of that THP leaves its lower half PTE-mapped. */
	cr_assert_eq(mm_munmap(mm, base + HPS + HPS / 2, HPS / 2), 0);
	cr_assert_eq(rss_bytes(mm), HPS / 2 + PG);
	mmput(mm);
}

Test(thp, unaligned_vma_both_ends)
{
	uhmm_machine_set_thp(machine, THP_ALWAYS);
	struct mm_struct *mm = new_mm();
	unsigned long base = map_plain(mm, 2 * HPS);
	cr_assert_eq(mm_munmap(mm, base, PG), 0);
	cr_assert_eq(mm_munmap(mm, base + 2 * HPS - PG, PG), 0);
	fill_at(mm, base, PG, 2 * HPS - 2 * PG, 6);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), 2 * HPS - 2 * PG);
	cr_assert_eq(folio_order(folio_at(mm, base + HPS)), 0);
	check_at(mm, base, PG, 2 * HPS - 2 * PG, 6);
	mmput(mm);
}

/* ---- the huge zero page ---- */

Test(thp, read_maps_huge_zero_page_then_write_gets_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	uint8_t b = 0x11;
	cr_assert_eq(cpu_read(mm, addr + 12345, &b, 1), 0);
	cr_assert_eq(b, 0);

	uint64_t *pm = malloc(NR * sizeof(*pm));
	cr_assert(pm);
	cr_assert_eq(mm_pagemap_read(mm, addr, NR, pm), 0);
	unsigned long hz = (unsigned long)(pm[0] & PM_PFRAME_MASK);
	cr_assert_neq(hz, uhmm_zero_pfn(machine), "a THP range must map the huge zero page");
	struct folio *hzf = page_folio(pfn_to_page(hz));
	cr_assert(is_huge_zero_folio(hzf));
	cr_assert_eq(folio_pfn(hzf), hz);
	cr_assert_eq(folio_order(hzf), HPAGE_PMD_ORDER);
	for (unsigned long i = 0; i < NR; i++) {
		cr_assert(pm[i] & PM_PRESENT, "page %lu", i);
		cr_assert_eq(pm[i] & PM_PFRAME_MASK, hz + i, "page %lu", i);
	}
	cr_assert(uhmm_kpageflags(hz) & (1ULL << KPF_ZERO_PAGE));
	cr_assert(uhmm_kpageflags(hz + 200) & (1ULL << KPF_ZERO_PAGE));
	cr_assert_eq(uhmm_kpageflags(hz) & (1ULL << KPF_ANON), 0);
	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.rss, 0);
	cr_assert_eq(s.anon_huge_pages, 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	check_zero(mm, addr, HPS);

	/*
	 * A write replaces the huge zero PMD with a new zeroed THP, as Linux
	 * 6.13+ does (do_huge_zero_wp_pmd(); the differential suite found
	 * that uhmm split it and copied one page).
	 */
	const char msg[] = "written after the huge zero page";
	unsigned long woff = 8 * PG - 16; /* straddles pages 7 and 8 */
	cr_assert_eq(cpu_write(mm, addr + woff, msg, sizeof(msg)), 0);
	cr_assert_eq(mm_pagemap_read(mm, addr, NR, pm), 0);
	unsigned long head = (unsigned long)(pm[0] & PM_PFRAME_MASK);
	cr_assert(!is_huge_zero_folio(page_folio(pfn_to_page(head))));
	cr_assert_eq(folio_order(page_folio(pfn_to_page(head))), HPAGE_PMD_ORDER);
	for (unsigned long i = 0; i < NR; i++) {
		cr_assert(pm[i] & PM_PRESENT, "page %lu", i);
		cr_assert(pm[i] & PM_MMAP_EXCLUSIVE, "page %lu", i);
		cr_assert_eq((unsigned long)(pm[i] & PM_PFRAME_MASK), head + i, "page %lu", i);
	}
	free(pm);
	s = smaps(mm);
	cr_assert_eq(s.anon_huge_pages, HPS);
	cr_assert_eq(s.rss, HPS);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)NR);

	uint8_t *buf = malloc(HPS);
	cr_assert(buf);
	cr_assert_eq(cpu_read(mm, addr, buf, HPS), 0);
	for (unsigned long i = 0; i < HPS; i++) {
		uint8_t want = (i >= woff && i < woff + sizeof(msg)) ? (uint8_t)msg[i - woff] : 0;
		if (buf[i] != want)
			cr_assert_fail("byte %#lx is %#x, want %#x", i, buf[i], want);
	}
	free(buf);

	/* Later writes land in the same THP, in place. */
	fill_at(mm, addr, 300 * PG, 10, 1);
	cr_assert_eq(pfn_at(mm, addr + 300 * PG), head + 300);
	cr_assert_eq(rss_bytes(mm), HPS);
	mmput(mm);
}

Test(thp, huge_zero_page_shared_between_mms)
{
	struct mm_struct *a = new_mm(), *b = new_mm();
	unsigned long xa = map_thp(a, HPS), xb = map_thp(b, HPS);
	check_zero(a, xa, 8);
	check_zero(b, xb + HPS - 8, 8);
	unsigned long pa = pfn_at(a, xa), pb = pfn_at(b, xb);
	cr_assert_eq(pa, pb, "one huge zero folio per machine");
	cr_assert(is_huge_zero_folio(page_folio(pfn_to_page(pa))));
	mmput(a);
	/* b still maps it and reads zero. */
	cr_assert_eq(pfn_at(b, xb + PG), pb + 1);
	check_zero(b, xb, HPS);
	mmput(b);
}

static void nozero_setup(void)
{
	struct uhmm_machine_config cfg = { .no_huge_zero_page = true };
	machine_setup_with(&cfg);
}

TestSuite(thp_nozero, .init = nozero_setup, .fini = machine_teardown);

Test(thp_nozero, read_allocates_thp_without_huge_zero_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	check_zero(mm, addr + 100, 8);
	/* Linux: with use_zero_page off, a read fault allocates a real THP. */
	assert_pmd_thp(mm, addr);
	cr_assert_eq(anon_huge(mm), HPS);
	cr_assert_eq(rss_bytes(mm), HPS);
	check_zero(mm, addr, HPS);
	/* Outside THP ranges the small zero page is still used. */
	unsigned long small = map_anon(mm, 0, PG, PROT_READ | PROT_WRITE, 0);
	check_zero(mm, small, PG);
	cr_assert_eq(pfn_at(mm, small), uhmm_zero_pfn(machine));
	mmput(mm);
}

/* ---- allocation failure ---- */

Test(thp, thp_allocation_failure_falls_back_to_4k)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	struct fault_attr a = fail_order9(1);
	uhmm_fail_page_alloc(machine, &a);
	fill_at(mm, addr, 5000, 300, 12);
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 1, "the THP allocation was attempted");
	cr_assert_eq(folio_order(folio_at(mm, addr + 5000)), 0);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), PG);
	cr_assert_eq(pagemap(mm, addr), 0);
	cr_assert_eq(pagemap(mm, addr + 2 * PG), 0);
	check_at(mm, addr, 5000, 300, 12);
	check_zero(mm, addr, 5000);
	check_zero(mm, addr + 5300, PG);
	/* The PMD now holds a PTE table: later faults there stay 4 KiB. */
	uhmm_fail_page_alloc(machine, NULL);
	fill_at(mm, addr, HPS - 100, 100, 12);
	cr_assert_eq(folio_order(folio_at(mm, addr + HPS - 1)), 0);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	mmput(mm);
}

Test(thp, thp_allocation_always_failing)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, 2 * HPS);
	struct fault_attr a = fail_order9(-1);
	uhmm_fail_page_alloc(machine, &a);
	fill_at(mm, addr, HPS - 3000, 6000, 13); /* straddles two PMD ranges */
	cr_assert_geq(uhmm_fail_page_alloc_count(machine), 2);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	check_at(mm, addr, HPS - 3000, 6000, 13);
	uhmm_fail_page_alloc(machine, NULL);
	mmput(mm);
}

/* ---- partial munmap ---- */

Test(thp, partial_munmap_keeps_large_folio_pte_mapped)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, HPS, 20);
	unsigned long head = assert_pmd_thp(mm, addr);
	struct folio *folio = page_folio(pfn_to_page(head));
	unsigned long free0 = uhmm_nr_free_pages(machine);

	cr_assert_eq(mm_munmap(mm, addr, PG), 0);
	cr_assert_eq(mm_munmap(mm, addr + HPS / 4, HPS / 2), 0);
	cr_assert_eq(mm_munmap(mm, addr + HPS - PG, PG), 0);
	unsigned long remaining = NR - 1 - NR / 2 - 1; /* 254 */

	/* The folio is not freed page by page: it stays one order-9 folio. */
	cr_assert_leq(uhmm_nr_free_pages(machine), free0);
	cr_assert_eq(page_folio(pfn_to_page(head + 1)), folio);
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER);
	cr_assert_eq(folio_entire_mapcount(folio), 0);
	cr_assert_eq(folio_mapcount(folio), (int)remaining);
	cr_assert_eq(folio_ref_count(folio), (int)remaining);
	cr_assert_eq(page_mapcount(pfn_to_page(head)), 0);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 1)), 1);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 127)), 1);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 128)), 0);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 383)), 0);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 384)), 1);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 511)), 0);
	cr_assert_eq(uhmm_kpagecount(head + 1), 1);
	cr_assert_eq(uhmm_kpagecount(head + 200), 0);
	cr_assert(uhmm_kpageflags(head + 1) & (1ULL << KPF_THP));

	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.anon_huge_pages, 0);
	cr_assert_eq(s.rss, remaining * PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)remaining);

	/* Remaining pages keep their frames and bytes. */
	for (unsigned long i = 1; i < NR - 1; i++) {
		bool mapped = i < NR / 4 || i >= 3 * NR / 4;
		if (mapped) {
			cr_assert_eq(pfn_at(mm, addr + i * PG), head + i);
			cr_assert(pagemap(mm, addr + i * PG) & PM_MMAP_EXCLUSIVE, "page %lu", i);
		} else {
			cr_assert_eq(pagemap(mm, addr + i * PG), 0, "page %lu", i);
		}
	}
	check_at(mm, addr, PG, HPS / 4 - PG, 20);
	check_at(mm, addr, 3 * HPS / 4, HPS / 4 - PG, 20);
	uint8_t b;
	cr_assert_eq(cpu_read(mm, addr, &b, 1), -EFAULT);
	cr_assert_eq(cpu_read(mm, addr + HPS / 2, &b, 1), -EFAULT);
	cr_assert_eq(cpu_read(mm, addr + HPS - 1, &b, 1), -EFAULT);

	/* Writes to the remaining pages go to the same frames. */
	fill_at(mm, addr, 3 * HPS / 4 + 7, 100, 21);
	cr_assert_eq(pfn_at(mm, addr + 3 * HPS / 4), head + 3 * NR / 4);
	assert_audit_clean();

	/* Unmapping the rest frees all 512 pages at once. */
	unsigned long free1 = uhmm_nr_free_pages(machine);
	cr_assert_eq(mm_munmap(mm, addr, HPS), 0);
	cr_assert_geq(uhmm_nr_free_pages(machine) - free1, NR);
	cr_assert_eq(page_ref_count(pfn_to_page(head)), 0);
	cr_assert_eq(rss_bytes(mm), 0);
	mmput(mm);
}

Test(thp, munmap_whole_thp_frees_it)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, 2 * HPS);
	fill_at(mm, addr, 0, PG, 1);
	fill_at(mm, addr, HPS, PG, 1);
	unsigned long head = assert_pmd_thp(mm, addr);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(mm_munmap(mm, addr, HPS), 0);
	cr_assert_geq(uhmm_nr_free_pages(machine) - free0, NR);
	cr_assert_leq(uhmm_nr_free_pages(machine) - free0, NR + 1);
	cr_assert_eq(page_ref_count(pfn_to_page(head)), 0);
	cr_assert_eq(anon_huge(mm), HPS);
	assert_pmd_thp(mm, addr + HPS);
	mmput(mm);
}

/* ---- mprotect of part of a THP ---- */

Test(thp, mprotect_part_splits_pmd)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, HPS, 30);
	unsigned long head = assert_pmd_thp(mm, addr);
	struct folio *folio = page_folio(pfn_to_page(head));

	unsigned long ro = addr + HPS / 4, ro_len = HPS / 4;
	cr_assert_eq(mm_mprotect(mm, ro, ro_len, PROT_READ), 0);

	cr_assert_eq(anon_huge(mm), 0, "the PMD must be split");
	cr_assert_eq(rss_bytes(mm), HPS);
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER);
	cr_assert_eq(folio_entire_mapcount(folio), 0);
	cr_assert_eq(folio_mapcount(folio), (int)NR);
	cr_assert_eq(folio_ref_count(folio), (int)NR);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 200)), 1);
	for (unsigned long i = 0; i < NR; i += 37)
		cr_assert_eq(pfn_at(mm, addr + i * PG), head + i);
	check_at(mm, addr, 0, HPS, 30);

	uint8_t b = 0x5a;
	cr_assert_eq(cpu_write(mm, ro, &b, 1), -EFAULT);
	cr_assert_eq(cpu_write(mm, ro + ro_len - 1, &b, 1), -EFAULT);
	cr_assert_eq(cpu_write(mm, ro - 1, &b, 2), -EFAULT); /* straddles into RO */
	check_at(mm, addr, 0, HPS, 30);

	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(cpu_write(mm, ro - 1, &b, 1), 0);
	cr_assert_eq(cpu_write(mm, ro + ro_len, &b, 1), 0);
	cr_assert_eq(cpu_write(mm, addr + HPS - 1, &b, 1), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0, "writes to exclusive pages do not copy");
	cr_assert_eq(pfn_at(mm, ro - PG), head + NR / 4 - 1);
	cr_assert_eq(pfn_at(mm, ro + ro_len), head + NR / 2);

	/* Byte-exact check of the whole range. */
	uint8_t *buf = malloc(HPS);
	cr_assert(buf);
	cr_assert_eq(cpu_read(mm, addr, buf, HPS), 0);
	for (unsigned long i = 0; i < HPS; i++) {
		uint8_t want = pattern_byte(30, i);
		if (i == HPS / 4 - 1 || i == HPS / 2 || i == HPS - 1)
			want = 0x5a;
		if (buf[i] != want)
			cr_assert_fail("byte %#lx is %#x, want %#x", i, buf[i], want);
	}
	free(buf);
	mmput(mm);
}

/* ---- MADV_COLLAPSE ---- */

Test(thp, collapse_mixed_range)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, HPS); /* madvise mode, no MADV_HUGEPAGE */
	static const unsigned long written[] = { 0, 1, 7, 100, 101, 102, 103, 104,
						 105, 106, 107, 108, 109, 511 };
	static const unsigned long read_only[] = { 2, 50, 300 };
	const unsigned long k = sizeof(written) / sizeof(written[0]);
	unsigned long old_pfn[sizeof(written) / sizeof(written[0])];

	for (unsigned long i = 0; i < k; i++)
		fill_at(mm, addr, written[i] * PG, PG, 40);
	for (unsigned long i = 0; i < 3; i++) {
		check_zero(mm, addr + read_only[i] * PG, PG);
		cr_assert_eq(pfn_at(mm, addr + read_only[i] * PG), uhmm_zero_pfn(machine));
	}
	for (unsigned long i = 0; i < k; i++) {
		old_pfn[i] = pfn_at(mm, addr + written[i] * PG);
		cr_assert_eq(folio_order(page_folio(pfn_to_page(old_pfn[i]))), 0);
	}
	cr_assert_eq(rss_bytes(mm), k * PG);
	cr_assert_eq(anon_huge(mm), 0);
	unsigned long free0 = uhmm_nr_free_pages(machine);

	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_COLLAPSE), 0);

	unsigned long head = assert_pmd_thp(mm, addr);
	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.anon_huge_pages, HPS);
	cr_assert_eq(s.rss, HPS);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)NR);
	/* Old pages freed: the THP costs 512 minus the k pages given back (and maybe the PTE table). */
	long used = (long)free0 - (long)uhmm_nr_free_pages(machine);
	cr_assert(used == (long)(NR - k) || used == (long)(NR - k - 1),
		  "free pages went down by %ld, want %lu (or %lu)", used, NR - k, NR - k - 1);
	for (unsigned long i = 0; i < k; i++) {
		cr_assert(old_pfn[i] < head || old_pfn[i] >= head + NR);
		cr_assert_eq(page_ref_count(pfn_to_page(old_pfn[i])), 0, "old page %#lx not freed",
			     old_pfn[i]);
	}

	/* Every byte kept; holes and zero-page reads read zero. */
	uint8_t *buf = malloc(HPS);
	cr_assert(buf);
	cr_assert_eq(cpu_read(mm, addr, buf, HPS), 0);
	for (unsigned long p = 0; p < NR; p++) {
		bool w = false;
		for (unsigned long i = 0; i < k; i++)
			w |= written[i] == p;
		for (unsigned long j = 0; j < PG; j++) {
			uint8_t want = w ? pattern_byte(40, p * PG + j) : 0;
			if (buf[p * PG + j] != want)
				cr_assert_fail("page %lu byte %lu is %#x, want %#x", p, j,
					       buf[p * PG + j], want);
		}
	}
	free(buf);
	/* The collapsed THP is writable in place. */
	fill_at(mm, addr, 400 * PG, 64, 41);
	cr_assert_eq(pfn_at(mm, addr + 400 * PG), head + 400);
	cr_assert_eq(anon_huge(mm), HPS);
	mmput(mm);
}

Test(thp, collapse_readonly_and_huge_zero)
{
	/* A range of only zero-page reads (split huge zero PMD) with one page written. */
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	check_zero(mm, addr, HPS);
	/* Split the huge zero PMD into zero-page PTEs (a write would replace it with a THP). */
	cr_assert_eq(mm_madvise(mm, addr + HPS - PG, PG, MADV_DONTNEED), 0);
	fill_at(mm, addr, 9 * PG + 1, 10, 42);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_COLLAPSE), 0);
	assert_pmd_thp(mm, addr);
	check_zero(mm, addr, 9 * PG + 1);
	check_at(mm, addr, 9 * PG + 1, 10, 42);
	check_zero(mm, addr + 9 * PG + 11, HPS - 9 * PG - 11);
	mmput(mm);
}

Test(thp, collapse_nohugepage_einval)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, HPS);
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_NOHUGEPAGE), 0);
	fill_at(mm, addr, 0, 3 * PG, 43);
	unsigned long pfn = pfn_at(mm, addr);
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_COLLAPSE), -EINVAL);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(pfn_at(mm, addr), pfn);
	cr_assert_eq(rss_bytes(mm), 3 * PG);
	check_at(mm, addr, 0, 3 * PG, 43);
	mmput(mm);
}

Test(thp, collapse_already_pmd_mapped)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, HPS, 44);
	unsigned long head = assert_pmd_thp(mm, addr);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_COLLAPSE), 0);
	cr_assert_eq(assert_pmd_thp(mm, addr), head);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	check_at(mm, addr, 0, HPS, 44);
	mmput(mm);
}

Test(thp, collapse_two_pmds)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, 2 * HPS);
	fill_at(mm, addr, 0, PG, 45);
	fill_at(mm, addr, HPS + 17 * PG, 3 * PG, 45);
	cr_assert_eq(mm_madvise(mm, addr, 2 * HPS, MADV_COLLAPSE), 0);
	assert_pmd_thp(mm, addr);
	assert_pmd_thp(mm, addr + HPS);
	cr_assert_eq(anon_huge(mm), 2 * HPS);
	check_at(mm, addr, 0, PG, 45);
	check_at(mm, addr, HPS + 17 * PG, 3 * PG, 45);
	check_zero(mm, addr + PG, HPS + 16 * PG);
	mmput(mm);
}

/* ---- write after mprotect RO -> RW ---- */

Test(thp, write_after_mprotect_ro_rw_reuses_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, HPS, 50);
	unsigned long head = assert_pmd_thp(mm, addr);

	cr_assert_eq(mm_mprotect(mm, addr, HPS, PROT_READ), 0);
	cr_assert_eq(anon_huge(mm), HPS, "mprotect of the whole PMD keeps it");
	uint8_t b = 0xee;
	cr_assert_eq(cpu_write(mm, addr + HPS / 2, &b, 1), -EFAULT);
	cr_assert_eq(mm_mprotect(mm, addr, HPS, PROT_READ | PROT_WRITE), 0);

	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(cpu_write(mm, addr + HPS / 2, &b, 1), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0, "an exclusive THP is reused, not copied");
	cr_assert_eq(assert_pmd_thp(mm, addr), head);
	cr_assert_eq(anon_huge(mm), HPS);
	check_at(mm, addr, 0, HPS / 2, 50);
	check_at(mm, addr, HPS / 2 + 1, HPS / 2 - 1, 50);
	uint8_t got = 0;
	cr_assert_eq(cpu_read(mm, addr + HPS / 2, &got, 1), 0);
	cr_assert_eq(got, 0xee);
	mmput(mm);
}

/* ---- more edges ---- */

Test(thp, collapse_allocation_failure_changes_nothing)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, HPS);
	fill_at(mm, addr, 0, 4 * PG, 60);
	unsigned long pfn0 = pfn_at(mm, addr), pfn3 = pfn_at(mm, addr + 3 * PG);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	struct fault_attr a = fail_order9(-1);
	uhmm_fail_page_alloc(machine, &a);
	/* Linux: SCAN_ALLOC_HUGE_PAGE_FAIL is -ENOMEM. */
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_COLLAPSE), -ENOMEM);
	uhmm_fail_page_alloc(machine, NULL);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), 4 * PG);
	cr_assert_eq(pfn_at(mm, addr), pfn0);
	cr_assert_eq(pfn_at(mm, addr + 3 * PG), pfn3);
	check_at(mm, addr, 0, 4 * PG, 60);
	assert_audit_clean();
	/* And it works once memory is there. */
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_COLLAPSE), 0);
	assert_pmd_thp(mm, addr);
	check_at(mm, addr, 0, 4 * PG, 60);
	mmput(mm);
}

Test(thp, collapse_range_without_whole_pmd_is_noop)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, HPS);
	fill_at(mm, addr, 0, 2 * PG, 61);
	unsigned long pfn0 = pfn_at(mm, addr);
	/* No aligned 2 MiB inside [addr, addr + 1 MiB): nothing to do, 0 (Linux). */
	cr_assert_eq(mm_madvise(mm, addr, HPS / 2, MADV_COLLAPSE), 0);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(pfn_at(mm, addr), pfn0);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	check_at(mm, addr, 0, 2 * PG, 61);
	mmput(mm);
}

Test(thp, collapse_ignores_never_mode)
{
	uhmm_machine_set_thp(machine, THP_NEVER);
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_plain(mm, HPS);
	fill_at(mm, addr, 5 * PG, 3 * PG, 62);
	/* MADV_COLLAPSE is independent of transparent_hugepage/enabled. */
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_COLLAPSE), 0);
	assert_pmd_thp(mm, addr);
	check_zero(mm, addr, 5 * PG);
	check_at(mm, addr, 5 * PG, 3 * PG, 62);
	mmput(mm);
}

Test(thp, prot_none_whole_thp_keeps_pmd)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	fill_at(mm, addr, 0, HPS, 63);
	unsigned long head = assert_pmd_thp(mm, addr);
	cr_assert_eq(mm_mprotect(mm, addr, HPS, PROT_NONE), 0);
	uint8_t b;
	cr_assert_eq(cpu_read(mm, addr + 100, &b, 1), -EFAULT);
	cr_assert_eq(cpu_write(mm, addr + 100, &b, 1), -EFAULT);
	cr_assert_eq(anon_huge(mm), HPS);
	cr_assert_eq(rss_bytes(mm), HPS);
	cr_assert_eq(mm_mprotect(mm, addr, HPS, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(assert_pmd_thp(mm, addr), head);
	check_at(mm, addr, 0, HPS, 63);
	mmput(mm);
}

Test(thp, huge_zero_write_fault_oom_keeps_zero_ptes)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	check_zero(mm, addr, PG);
	cr_assert(is_huge_zero_folio(folio_at(mm, addr)));
	unsigned long free0 = uhmm_nr_free_pages(machine);
	struct fault_attr a = { .probability = 100, .interval = 1, .times = -1, .min_order = 0 };
	uhmm_fail_page_alloc(machine, &a);
	uint8_t b = 0x42;
	cr_assert_eq(cpu_write(mm, addr + 10 * PG, &b, 1), -ENOMEM);
	uhmm_fail_page_alloc(machine, NULL);
	cr_assert_eq(rss_bytes(mm), 0);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_leq(uhmm_nr_free_pages(machine), free0);
	check_zero(mm, addr, HPS);
	assert_audit_clean();
	/* Retry succeeds and only that page is real. */
	cr_assert_eq(cpu_write(mm, addr + 10 * PG, &b, 1), 0);
	cr_assert_eq(rss_bytes(mm), PG);
	cr_assert_eq(folio_order(folio_at(mm, addr + 10 * PG)), 0);
	uint8_t got = 0;
	cr_assert_eq(cpu_read(mm, addr + 10 * PG, &got, 1), 0);
	cr_assert_eq(got, 0x42);
	mmput(mm);
}

Test(thp, dontneed_huge_zero_pmd)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);
	check_zero(mm, addr, PG);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(mm_madvise(mm, addr, HPS, MADV_DONTNEED), 0);
	cr_assert_eq(pagemap(mm, addr), 0);
	cr_assert_eq(pagemap(mm, addr + HPS - PG), 0);
	cr_assert_geq(uhmm_nr_free_pages(machine), free0); /* the zero folio is not freed per mm */
	cr_assert_leq(uhmm_nr_free_pages(machine), free0 + 1);
	/* A write now gets a real THP. */
	fill_at(mm, addr, 0, 8, 64);
	assert_pmd_thp(mm, addr);
	mmput(mm);
}

Test(thp, read_spanning_thp_and_4k)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, 2 * HPS);
	cr_assert_eq(mm_madvise(mm, addr + HPS, HPS, MADV_NOHUGEPAGE), 0);
	fill_at(mm, addr, HPS - 3 * PG - 5, 6 * PG + 10, 65);
	assert_pmd_thp(mm, addr);
	cr_assert_eq(folio_order(folio_at(mm, addr + HPS)), 0);
	cr_assert_eq(rss_bytes(mm), HPS + 4 * PG); /* pages 0..3 of the second PMD */
	check_at(mm, addr, HPS - 3 * PG - 5, 6 * PG + 10, 65);
	check_zero(mm, addr, HPS - 3 * PG - 5);
	mmput(mm);
}

/*
 * MADV_COLLAPSE of a VMA too small to hold an aligned PMD anywhere (a 2 MiB
 * region shrunk by mremap): -EINVAL, as thp_vma_allowable_order() refuses
 * it in Linux; uhmm used to answer 0 (found by stress/shadow_model).
 */
Test(thp, collapse_vma_smaller_than_pmd_is_einval)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPS);

	fill_at(mm, addr, 0, 2 * PG, 63);
	cr_assert_eq(mm_mremap(mm, addr, HPS, HPS - PG, MREMAP_MAYMOVE, 0), (long)addr);
	cr_assert_eq(mm_madvise(mm, addr, HPS - PG, MADV_COLLAPSE), -EINVAL);
	cr_assert_eq(anon_huge(mm), 0);
	check_at(mm, addr, 0, 2 * PG, 63);
	mmput(mm);
}
