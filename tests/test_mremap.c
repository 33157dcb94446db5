/* SPDX-License-Identifier: MIT */
/*
 * tests/test_mremap.c - mremap(2): every flag combination with the data
 * checked byte for byte after the move, shrink and grow in place, grow by
 * moving, MREMAP_FIXED over a mapping and across several VMAs,
 * MREMAP_DONTUNMAP, PMD-mapped THPs and whole PTE tables moved as one entry
 * or split, the zero pages, merges after a move, every errno with "nothing
 * changed" checks, allocation failure in the middle of a move, and a reader
 * racing with moves.
 *
 * Expected behaviour is Linux 6.18 x86-64's, checked with probe programs
 * calling the real mremap(2) on such a kernel (the probe results are quoted
 * where a rule is surprising).
 */
#include "helpers.h"
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define PG PAGE_SIZE
#define HPS HPAGE_PMD_SIZE
#define NR HPAGE_PMD_NR
#define RW (PROT_READ | PROT_WRITE)
/* A 1 GiB-aligned area far below mmap_base, for fixed layouts. */
#define AREA 0x7f0000000000UL

TestSuite(mremap, .init = machine_setup, .fini = machine_teardown);

/* ---- local helpers ---- */

/* mm_mremap() that asserts success and returns the address. */
static unsigned long remap(struct mm_struct *mm, unsigned long addr, unsigned long old_len,
			   unsigned long new_len, int flags, unsigned long new_addr)
{
	long ret = mm_mremap(mm, addr, old_len, new_len, flags, new_addr);

	cr_assert(ret > 0, "mm_mremap(%#lx, %#lx, %#lx, %d, %#lx) = %ld", addr, old_len, new_len,
		  flags, new_addr, ret);
	return (unsigned long)ret;
}

/* A private anonymous RW mapping at exactly @addr. */
static unsigned long map_at(struct mm_struct *mm, unsigned long addr, unsigned long len)
{
	unsigned long got = map_anon(mm, addr, len, RW, MAP_FIXED);

	cr_assert_eq(got, addr);
	return got;
}

/* map_at() with MADV_HUGEPAGE. */
static unsigned long map_thp_at(struct mm_struct *mm, unsigned long addr, unsigned long len)
{
	map_at(mm, addr, len);
	cr_assert_eq(mm_madvise(mm, addr, len, MADV_HUGEPAGE), 0);
	return addr;
}

/* The PFNs (pagemap entries without flags) of @npages pages from @addr. */
static unsigned long *pfns(struct mm_struct *mm, unsigned long addr, unsigned long npages)
{
	uint64_t *pm = malloc(npages * sizeof(*pm));
	unsigned long *out = malloc(npages * sizeof(*out));

	cr_assert(pm && out);
	cr_assert_eq(mm_pagemap_read(mm, addr, npages, pm), 0);
	for (unsigned long i = 0; i < npages; i++) {
		cr_assert(pm[i] & PM_PRESENT, "page %#lx not present", addr + i * PG);
		out[i] = (unsigned long)(pm[i] & PM_PFRAME_MASK);
	}
	free(pm);
	return out;
}

/* Assert @npages pages from @addr map exactly @want (as pfns() gave them). */
static void assert_pfns(struct mm_struct *mm, unsigned long addr, const unsigned long *want,
			unsigned long npages)
{
	unsigned long *got = pfns(mm, addr, npages);

	for (unsigned long i = 0; i < npages; i++)
		cr_assert_eq(got[i], want[i], "page %lu at %#lx: pfn %#lx, want %#lx (a copy?)", i,
			     addr + i * PG, got[i], want[i]);
	free(got);
}

/* Assert nothing maps [addr, addr + npages pages) (pagemap reads 0). */
static void assert_unmapped_ptes(struct mm_struct *mm, unsigned long addr, unsigned long npages)
{
	for (unsigned long i = 0; i < npages; i++)
		cr_assert_eq(pagemap(mm, addr + i * PG), 0, "page %#lx still mapped", addr + i * PG);
}

/* Assert no VMA covers any of [addr, addr + len). */
static void assert_no_vma(struct mm_struct *mm, unsigned long addr, unsigned long len)
{
	struct vm_area_struct *vma = find_vma(mm, addr);

	cr_assert(!vma || vma->vm_start >= addr + len, "a VMA %#lx-%#lx covers %#lx-%#lx",
		  vma ? vma->vm_start : 0, vma ? vma->vm_end : 0, addr, addr + len);
}

/* The VMA containing @addr, asserted to exist. */
static struct vm_area_struct *vma_at(struct mm_struct *mm, unsigned long addr)
{
	struct vm_area_struct *vma = vma_lookup(mm, addr);

	cr_assert(vma, "no VMA at %#lx", addr);
	return vma;
}

/* Is [addr, addr + 2M) one PMD-mapped order-9 anonymous THP (head at @addr)? */
static bool is_pmd_thp(struct mm_struct *mm, unsigned long addr)
{
	pmd_t *pmd = pmd_off(mm, addr);
	uint64_t e = pagemap(mm, addr);
	struct folio *folio;

	if (!pmd || !pmd_leaf(pmdp_get(pmd)) || !(e & PM_PRESENT))
		return false;
	folio = page_folio(pfn_to_page((unsigned long)(e & PM_PFRAME_MASK)));
	return folio_order(folio) == HPAGE_PMD_ORDER && folio_entire_mapcount(folio) == 1 &&
	       folio_pfn(folio) == (unsigned long)(e & PM_PFRAME_MASK) && !is_huge_zero_folio(folio);
}

/* Free pages plus the pages @mm uses as page tables: constant when only tables move. */
static unsigned long free_and_tables(struct mm_struct *mm)
{
	return uhmm_nr_free_pages(machine) + smaps(mm).page_tables / PG;
}

/* Fill [addr, addr + len) by writes, then check that a PMD THP maps it. */
static unsigned long make_thp(struct mm_struct *mm, unsigned long addr, uint32_t seed)
{
	fill_pattern(mm, addr, HPS, seed);
	cr_assert(is_pmd_thp(mm, addr), "no PMD THP at %#lx", addr);
	return pfn_at(mm, addr);
}

/*
 * What a failed call must leave alone: the VMA count, smaps_rollup, and the
 * pagemap of a range (the bytes are checked by the caller's pattern).
 */
struct snap {
	size_t nr_vmas;
	struct mm_smaps smaps;
	unsigned long free_pages;
	unsigned long addr, npages;
	uint64_t *pm;
};

static void snap_take(struct snap *s, struct mm_struct *mm, unsigned long addr,
		      unsigned long npages)
{
	s->nr_vmas = nr_vmas(mm);
	s->smaps = smaps(mm);
	s->free_pages = uhmm_nr_free_pages(machine);
	s->addr = addr;
	s->npages = npages;
	s->pm = malloc(npages * sizeof(*s->pm));
	cr_assert(s->pm);
	cr_assert_eq(mm_pagemap_read(mm, addr, npages, s->pm), 0);
}

static void snap_check(struct snap *s, struct mm_struct *mm, const char *what)
{
	struct mm_smaps now = smaps(mm);
	uint64_t *pm = malloc(s->npages * sizeof(*pm));

	cr_assert(pm);
	cr_assert_eq(nr_vmas(mm), s->nr_vmas, "%s: VMA count changed", what);
	cr_assert_eq(memcmp(&now, &s->smaps, sizeof(now)), 0, "%s: smaps changed", what);
	cr_assert_eq(uhmm_nr_free_pages(machine), s->free_pages, "%s: free pages changed", what);
	cr_assert_eq(mm_pagemap_read(mm, s->addr, s->npages, pm), 0);
	for (unsigned long i = 0; i < s->npages; i++)
		cr_assert_eq(pm[i], s->pm[i], "%s: pagemap of %#lx changed", what, s->addr + i * PG);
	free(pm);
}

static void snap_free(struct snap *s)
{
	free(s->pm);
}

/* Assert mm_mremap() fails with @err and changes nothing in @mm. */
#define assert_mremap_fails(mm, err, addr, olen, nlen, flags, naddr, sn)                     \
	do {                                                                               \
		long r_ = mm_mremap(mm, addr, olen, nlen, flags, naddr);                   \
		cr_assert_eq(r_, (long)(err), "mm_mremap(%s, %s, %s, %s, %s) = %ld, want %d", \
			     #addr, #olen, #nlen, #flags, #naddr, r_, (int)(err));         \
		snap_check(sn, mm, #addr ", " #olen ", " #nlen ", " #flags ", " #naddr);   \
	} while (0)

/* ---- argument errors (checked before any VMA is looked at) ---- */

Test(mremap, errno_flags)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long dst = AREA + 100 * PG;
	struct snap s;

	fill_pattern(mm, a, 4 * PG, 1);
	snap_take(&s, mm, a, 4);
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, 8, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, -1, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, MREMAP_MAYMOVE | 0x10, 0, &s);
	/* MREMAP_FIXED and MREMAP_DONTUNMAP need MREMAP_MAYMOVE. */
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, MREMAP_FIXED, dst, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, MREMAP_DONTUNMAP, dst, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, MREMAP_DONTUNMAP | MREMAP_FIXED, dst, &s);
	/* MREMAP_DONTUNMAP does not resize. */
	assert_mremap_fails(mm, -EINVAL, a, PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, dst, &s);
	assert_mremap_fails(mm, -EINVAL, a, 2 * PG, PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, dst, &s);
	assert_mremap_fails(mm, -EINVAL, a, 2 * PG, PG,
			    MREMAP_MAYMOVE | MREMAP_DONTUNMAP | MREMAP_FIXED, dst, &s);
	check_pattern(mm, a, 4 * PG, 1);
	snap_free(&s);
	mmput(mm);
}

Test(mremap, errno_addresses_and_lengths)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	struct snap s;

	fill_pattern(mm, a, 4 * PG, 2);
	snap_take(&s, mm, a, 4);
	assert_mremap_fails(mm, -EINVAL, a + 1, PG, PG, MREMAP_MAYMOVE, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a + PG / 2, PG, 2 * PG, 0, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, 0, MREMAP_MAYMOVE, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a, 0, 0, 0, 0, &s);
	/* PAGE_ALIGN() overflows to 0: a zero new_len ... */
	assert_mremap_fails(mm, -EINVAL, a, PG, -1UL, MREMAP_MAYMOVE, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, -PG + 1, 0, 0, &s);
	/* ... and a zero old_len, which only shared mappings may use. */
	assert_mremap_fails(mm, -EINVAL, a, -1UL, PG, MREMAP_MAYMOVE, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a, 0, PG, 0, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a, 0, PG, MREMAP_MAYMOVE, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a, 0, PG, MREMAP_MAYMOVE | MREMAP_FIXED, AREA + HPS, &s);
	/* new_len past TASK_SIZE is -EINVAL; TASK_SIZE itself finds no room. */
	assert_mremap_fails(mm, -EINVAL, a, PG, 1UL << 47, MREMAP_MAYMOVE, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a, -PG, -PG, 0, 0, &s);
	assert_mremap_fails(mm, -ENOMEM, a, PG, TASK_SIZE, MREMAP_MAYMOVE, 0, &s);
	assert_mremap_fails(mm, -ENOMEM, a, PG, TASK_SIZE, 0, 0, &s);
	check_pattern(mm, a, 4 * PG, 2);
	snap_free(&s);
	mmput(mm);
}

Test(mremap, errno_new_addr)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA + 4 * PG, 4 * PG);
	int fx = MREMAP_MAYMOVE | MREMAP_FIXED, du = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
	struct snap s;

	fill_pattern(mm, a, 4 * PG, 3);
	snap_take(&s, mm, AREA, 12);
	/* Unaligned destination, fixed or hinted. */
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, fx, AREA + HPS + 5, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, du, AREA + HPS + 5, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, du | MREMAP_FIXED, AREA + HPS + 5, &s);
	/* Overlapping ranges (the old range counts with old_len). */
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, fx, a, &s);
	assert_mremap_fails(mm, -EINVAL, a, 2 * PG, 2 * PG, fx, a + PG, &s);
	assert_mremap_fails(mm, -EINVAL, a, 2 * PG, 2 * PG, fx, a - PG, &s);
	assert_mremap_fails(mm, -EINVAL, a, 2 * PG, PG, fx, a + PG, &s);
	assert_mremap_fails(mm, -EINVAL, a + PG, PG, 4 * PG, fx, a - 2 * PG, &s);
	assert_mremap_fails(mm, -EINVAL, a, 4 * PG, 4 * PG, du, a + 2 * PG, &s);
	/* The destination must end inside the address space. */
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, fx, TASK_SIZE, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, 2 * PG, fx, TASK_SIZE - PG, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, du, TASK_SIZE, &s);
	assert_mremap_fails(mm, -EINVAL, a, PG, PG, fx, -PG, &s);
	check_pattern(mm, a, 4 * PG, 3);
	/* Without FIXED or DONTUNMAP, new_addr is ignored, however odd. */
	cr_assert_eq(mm_mremap(mm, a, PG, PG, MREMAP_MAYMOVE, a + PG / 2), (long)a);
	cr_assert_eq(mm_mremap(mm, a, 2 * PG, 2 * PG, 0, -PG), (long)a);
	snap_check(&s, mm, "ignored new_addr");
	snap_free(&s);
	mmput(mm);
}

/* ---- errors that need the VMA ---- */

Test(mremap, efault_no_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long hole = AREA + 8 * PG, dst = AREA + HPS;
	struct snap s;

	map_at(mm, dst, 4 * PG);
	fill_pattern(mm, a, 4 * PG, 4);
	fill_pattern(mm, dst, 4 * PG, 5);
	snap_take(&s, mm, AREA, NR + 8);
	assert_mremap_fails(mm, -EFAULT, hole, PG, PG, 0, 0, &s);
	assert_mremap_fails(mm, -EFAULT, hole, PG, 2 * PG, MREMAP_MAYMOVE, 0, &s);
	assert_mremap_fails(mm, -EFAULT, hole, PG, PG / 2, 0, 0, &s);
	assert_mremap_fails(mm, -EFAULT, hole, PG, PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0, &s);
	/* The destination of a failing fixed move is left alone. */
	assert_mremap_fails(mm, -EFAULT, hole, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst, &s);
	assert_mremap_fails(mm, -EFAULT, hole, PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst, &s);
	/* A fixed move-only may span VMAs, but not start in a gap. */
	assert_mremap_fails(mm, -EFAULT, a - PG, 3 * PG, 3 * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
			    dst, &s);
	check_pattern(mm, a, 4 * PG, 4);
	check_pattern(mm, dst, 4 * PG, 5);
	snap_free(&s);
	mmput(mm);
}

Test(mremap, efault_range_leaves_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long b = map_anon(mm, AREA + 4 * PG, 4 * PG, PROT_READ, MAP_FIXED);
	unsigned long dst = AREA + HPS;
	int fx = MREMAP_MAYMOVE | MREMAP_FIXED;
	struct snap s;

	cr_assert_eq(b, AREA + 4 * PG);
	map_at(mm, dst, 8 * PG);
	fill_pattern(mm, a, 4 * PG, 6);
	fill_pattern(mm, dst, 8 * PG, 7);
	cr_assert_eq(nr_vmas(mm), 3);
	snap_take(&s, mm, AREA, NR + 8);
	/* Growing (in place or by moving) needs the old range inside one VMA. */
	assert_mremap_fails(mm, -EFAULT, a, 5 * PG, 6 * PG, 0, 0, &s);
	assert_mremap_fails(mm, -EFAULT, a, 5 * PG, 6 * PG, MREMAP_MAYMOVE, 0, &s);
	assert_mremap_fails(mm, -EFAULT, a + 2 * PG, 4 * PG, 5 * PG, fx, dst, &s);
	/* A fixed shrink keeps new_len, which must stay inside the VMA. */
	assert_mremap_fails(mm, -EFAULT, a + 2 * PG, 4 * PG, 3 * PG, fx, dst, &s);
	/* DONTUNMAP without FIXED is not a move-only: one VMA. */
	assert_mremap_fails(mm, -EFAULT, a + 2 * PG, 4 * PG, 4 * PG,
			    MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0, &s);
	check_pattern(mm, a, 4 * PG, 6);
	check_pattern(mm, dst, 8 * PG, 7);
	snap_free(&s);
	mmput(mm);
}

Test(mremap, enomem_cannot_grow_in_place)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	struct snap s;

	map_anon(mm, AREA + 5 * PG, PG, PROT_READ, MAP_FIXED);
	fill_pattern(mm, a, 4 * PG, 8);
	snap_take(&s, mm, AREA, 8);
	/* The next VMA is in the way. */
	assert_mremap_fails(mm, -ENOMEM, a, 4 * PG, 6 * PG, 0, 0, &s);
	/* Only a range that ends at its VMA's end grows in place. */
	assert_mremap_fails(mm, -ENOMEM, a, PG, 2 * PG, 0, 0, &s);
	assert_mremap_fails(mm, -ENOMEM, a + 2 * PG, PG, 2 * PG, 0, 0, &s);
	check_pattern(mm, a, 4 * PG, 8);
	snap_free(&s);

	/* Not past TASK_SIZE either. */
	unsigned long top = map_at(mm, TASK_SIZE - PG, PG);
	fill_pattern(mm, top, PG, 9);
	snap_take(&s, mm, top, 1);
	assert_mremap_fails(mm, -ENOMEM, top, PG, 2 * PG, 0, 0, &s);
	snap_free(&s);
	unsigned long moved = remap(mm, top, PG, 2 * PG, MREMAP_MAYMOVE, 0);
	cr_assert_neq(moved, top);
	check_pattern(mm, moved, PG, 9);
	check_zero(mm, moved + PG, PG);
	mmput(mm);
}

Test(mremap, einval_shrink_unmaps_past_task_size)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	struct snap s;

	fill_pattern(mm, a, 4 * PG, 10);
	snap_take(&s, mm, a, 4);
	/* The unmapped tail is checked like munmap(2) checks its range. */
	assert_mremap_fails(mm, -EINVAL, a, -2 * PG, PG, 0, 0, &s);
	assert_mremap_fails(mm, -EINVAL, a, TASK_SIZE - a + PG, PG, 0, 0, &s);
	check_pattern(mm, a, 4 * PG, 10);
	snap_free(&s);
	/* Up to TASK_SIZE exactly is fine, and unmaps everything above. */
	map_at(mm, AREA + HPS, PG);
	cr_assert_eq(mm_mremap(mm, a, TASK_SIZE - a, PG, 0, 0), (long)a);
	cr_assert_eq(nr_vmas(mm), 1);
	check_pattern(mm, a, PG, 10);
	cr_assert_eq(rss_bytes(mm), PG);
	mmput(mm);
}

/* ---- resizing in place ---- */

Test(mremap, same_size_is_a_noop)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	struct snap s;

	fill_pattern(mm, a, 4 * PG, 11);
	snap_take(&s, mm, AREA, 16);
	/* Linux 6.18 checks nothing past the VMA lookup here, even the length. */
	cr_assert_eq(mm_mremap(mm, a, 4 * PG, 4 * PG, 0, 0), (long)a);
	cr_assert_eq(mm_mremap(mm, a + PG, 100 * PG, 100 * PG, MREMAP_MAYMOVE, 0), (long)(a + PG));
	cr_assert_eq(mm_mremap(mm, a, 3 * PG + 1, 4 * PG, 0, 0), (long)a);
	snap_check(&s, mm, "no-op");
	check_pattern(mm, a, 4 * PG, 11);
	snap_free(&s);
	mmput(mm);
}

Test(mremap, shrink_in_place)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 8 * PG);
	unsigned long *before;
	unsigned long free0;

	fill_pattern(mm, a, 8 * PG, 12);
	before = pfns(mm, a, 8);
	free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(mm_mremap(mm, a, 8 * PG, 3 * PG - 100, 0, 0), (long)a);
	cr_assert_eq(vma_at(mm, a)->vm_end, a + 3 * PG);
	cr_assert_eq(nr_vmas(mm), 1);
	check_pattern(mm, a, 3 * PG, 12);
	assert_pfns(mm, a, before, 3);
	assert_unmapped_ptes(mm, a + 3 * PG, 5);
	uint8_t b;
	cr_assert_eq(cpu_read(mm, a + 3 * PG, &b, 1), -EFAULT);
	cr_assert_eq(rss_bytes(mm), 3 * PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 3);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 + 5);
	cr_assert_eq(page_ref_count(pfn_to_page(before[5])), 0);
	/* MREMAP_MAYMOVE changes nothing for a shrink. */
	cr_assert_eq(mm_mremap(mm, a, 3 * PG, 2 * PG, MREMAP_MAYMOVE, 0), (long)a);
	check_pattern(mm, a, 2 * PG, 12);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	free(before);
	mmput(mm);
}

Test(mremap, shrink_across_vmas)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 2 * PG);
	unsigned long b = map_anon(mm, AREA + 2 * PG, 2 * PG, PROT_READ, MAP_FIXED);

	fill_pattern(mm, a, 2 * PG, 13);
	/* The old range may cross VMAs when shrinking: its tail is unmapped. */
	cr_assert_eq(mm_mremap(mm, a, 4 * PG, 3 * PG, 0, 0), (long)a);
	cr_assert_eq(nr_vmas(mm), 2);
	cr_assert_eq(vma_at(mm, b)->vm_end, b + PG);
	assert_no_vma(mm, b + PG, PG);
	check_pattern(mm, a, 2 * PG, 13);
	/* Even past the end of the last VMA. */
	cr_assert_eq(mm_mremap(mm, a, 100 * PG, PG, 0, 0), (long)a);
	cr_assert_eq(nr_vmas(mm), 1);
	check_pattern(mm, a, PG, 13);
	mmput(mm);
}

Test(mremap, shrink_splits_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp_at(mm, AREA, HPS);
	unsigned long head = make_thp(mm, a, 14);
	struct folio *folio = page_folio(pfn_to_page(head));
	unsigned long keep = HPS / 2 + 3 * PG;

	cr_assert_eq(mm_mremap(mm, a, HPS, keep, 0, 0), (long)a);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), keep);
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER, "the folio stays large");
	cr_assert_eq(folio_mapcount(folio), (int)(keep / PG));
	cr_assert_eq(folio_ref_count(folio), (int)(keep / PG));
	cr_assert_eq(pfn_at(mm, a + keep - PG), head + keep / PG - 1);
	check_pattern(mm, a, keep, 14);
	assert_audit_clean();
	mmput(mm);
}

Test(mremap, grow_in_place)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long *before;

	fill_pattern(mm, a, 4 * PG, 15);
	before = pfns(mm, a, 4);
	cr_assert_eq(mm_mremap(mm, a, 4 * PG, 8 * PG - 5, 0, 0), (long)a);
	cr_assert_eq(nr_vmas(mm), 1);
	cr_assert_eq(vma_at(mm, a)->vm_end, a + 8 * PG);
	check_pattern(mm, a, 4 * PG, 15);
	assert_pfns(mm, a, before, 4);
	check_zero(mm, a + 4 * PG, 4 * PG);
	fill_at(mm, a, 4 * PG, 4 * PG, 15);
	check_pattern(mm, a, 8 * PG, 15);
	cr_assert_eq(rss_bytes(mm), 8 * PG);
	/* Up to the next VMA exactly. */
	map_anon(mm, AREA + 10 * PG, PG, PROT_READ, MAP_FIXED);
	cr_assert_eq(mm_mremap(mm, a, 8 * PG, 10 * PG, 0, 0), (long)a);
	cr_assert_eq(vma_at(mm, a)->vm_end, a + 10 * PG);
	check_pattern(mm, a, 8 * PG, 15);
	free(before);
	mmput(mm);
}

Test(mremap, grow_in_place_merges_with_next)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 2 * PG);
	unsigned long b = map_at(mm, AREA + 4 * PG, 2 * PG);

	/* Probe: a faulted, b not -> one VMA; both faulted -> two. */
	fill_pattern(mm, a, 2 * PG, 16);
	cr_assert_eq(nr_vmas(mm), 2);
	cr_assert_eq(mm_mremap(mm, a, 2 * PG, 4 * PG, 0, 0), (long)a);
	cr_assert_eq(nr_vmas(mm), 1);
	cr_assert_eq(vma_at(mm, a)->vm_end, b + 2 * PG);
	check_pattern(mm, a, 2 * PG, 16);
	check_zero(mm, a + 2 * PG, 4 * PG);
	assert_audit_clean();

	unsigned long c = map_at(mm, AREA + HPS, 2 * PG);
	unsigned long d = map_at(mm, AREA + HPS + 4 * PG, 2 * PG);
	fill_pattern(mm, c, 2 * PG, 17);
	fill_pattern(mm, d, 2 * PG, 18);
	cr_assert_eq(mm_mremap(mm, c, 2 * PG, 4 * PG, 0, 0), (long)c);
	cr_assert_eq(nr_vmas(mm), 3, "two anon_vmas do not merge");
	cr_assert_eq(vma_at(mm, c)->vm_end, d);
	check_pattern(mm, c, 2 * PG, 17);
	check_pattern(mm, d, 2 * PG, 18);
	mmput(mm);
}

/* ---- moving ---- */

Test(mremap, grow_moves_when_blocked)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 8 * PG);
	unsigned long *before;
	unsigned long n, free0;

	map_anon(mm, AREA + 8 * PG, PG, PROT_READ, MAP_FIXED);
	fill_pattern(mm, a, 8 * PG, 19);
	before = pfns(mm, a, 8);
	free0 = free_and_tables(mm);
	n = remap(mm, a, 8 * PG, 16 * PG, MREMAP_MAYMOVE, 0);
	cr_assert_neq(n, a);
	assert_no_vma(mm, a, 8 * PG);
	assert_unmapped_ptes(mm, a, 8);
	check_pattern(mm, n, 8 * PG, 19);
	assert_pfns(mm, n, before, 8);
	check_zero(mm, n + 8 * PG, 8 * PG);
	cr_assert_eq(vma_at(mm, n)->vm_end, n + 16 * PG);
	cr_assert_eq(vma_at(mm, n)->vm_pgoff, a >> PAGE_SHIFT, "anon folios keep their index");
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 8);
	/* Reading the new tail only maps zero pages; no page was copied. */
	cr_assert_eq(free_and_tables(mm), free0);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(page_ref_count(pfn_to_page(before[i])), 1);
		cr_assert_eq(page_mapcount(pfn_to_page(before[i])), 1);
	}
	assert_audit_clean();
	free(before);
	mmput(mm);
}

Test(mremap, grow_middle_of_vma_moves_that_part)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long n;

	fill_pattern(mm, a, 4 * PG, 20);
	n = remap(mm, a + PG, PG, 3 * PG, MREMAP_MAYMOVE, 0);
	cr_assert_eq(nr_vmas(mm), 3);
	assert_no_vma(mm, a + PG, PG);
	check_at(mm, a, 0, PG, 20);
	check_at(mm, a, 2 * PG, 2 * PG, 20);
	check_at(mm, n - PG, PG, PG, 20);
	check_zero(mm, n + PG, 2 * PG);
	assert_audit_clean();
	mmput(mm);
}

Test(mremap, grow_move_of_thp_stays_pmd_mapped)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp_at(mm, AREA, HPS);
	unsigned long head = make_thp(mm, a, 21);
	unsigned long n;

	map_at(mm, AREA + HPS, PG);
	/* A length of a multiple of 2 MiB is placed 2 MiB aligned: the PMD moves whole. */
	n = remap(mm, a, HPS, 2 * HPS, MREMAP_MAYMOVE, 0);
	cr_assert(IS_ALIGNED(n, HPS), "moved to %#lx", n);
	cr_assert(is_pmd_thp(mm, n));
	cr_assert_eq(pfn_at(mm, n), head);
	cr_assert_eq(anon_huge(mm), HPS);
	check_pattern(mm, n, HPS, 21);
	check_zero(mm, n + HPS, PG);
	assert_audit_clean();
	mmput(mm);
}

Test(mremap, fixed_move_to_free_range)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 6 * PG);
	unsigned long dst = AREA + 3 * HPS + 7 * PG;
	unsigned long *before;
	struct mm_smaps s0;

	fill_pattern(mm, a, 6 * PG, 22);
	before = pfns(mm, a, 6);
	s0 = smaps(mm);
	cr_assert_eq(remap(mm, a, 6 * PG, 6 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	check_pattern(mm, dst, 6 * PG, 22);
	assert_pfns(mm, dst, before, 6);
	assert_no_vma(mm, a, 6 * PG);
	assert_unmapped_ptes(mm, a, 6);
	cr_assert_eq(nr_vmas(mm), 1);
	cr_assert_eq(smaps(mm).rss, s0.rss);
	cr_assert_eq(smaps(mm).anonymous, s0.anonymous);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(uhmm_kpagecount(before[i]), 1);
	/* The pages are still reachable through the rmap at their new place. */
	assert_audit_clean();
	/* And writable in place (still exclusive: no COW copy). */
	fill_at(mm, dst, PG, 10, 23);
	cr_assert_eq(pfn_at(mm, dst + PG), before[1]);
	free(before);
	mmput(mm);
}

Test(mremap, fixed_replaces_existing_mapping)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long b = map_at(mm, AREA + HPS, 8 * PG);
	unsigned long *before, *old_b;
	unsigned long free0;

	fill_pattern(mm, a, 4 * PG, 24);
	fill_pattern(mm, b, 8 * PG, 25);
	before = pfns(mm, a, 4);
	old_b = pfns(mm, b, 8);
	free0 = free_and_tables(mm);
	cr_assert_eq(remap(mm, a, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, b + 2 * PG),
		     b + 2 * PG);
	check_pattern(mm, b + 2 * PG, 4 * PG, 24);
	assert_pfns(mm, b + 2 * PG, before, 4);
	check_at(mm, b, 0, 2 * PG, 25);
	check_at(mm, b, 6 * PG, 2 * PG, 25);
	cr_assert_eq(nr_vmas(mm), 3);
	/* The four replaced pages were freed. */
	cr_assert_eq(free_and_tables(mm), free0 + 4);
	for (int i = 2; i < 6; i++)
		cr_assert_eq(page_ref_count(pfn_to_page(old_b[i])), 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 8);
	assert_audit_clean();
	free(before);
	free(old_b);
	mmput(mm);
}

Test(mremap, fixed_grow_and_fixed_shrink)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long c = map_at(mm, AREA + 8 * PG, 6 * PG);
	unsigned long dst = AREA + HPS, dst2 = AREA + 2 * HPS;
	unsigned long *pa, *pc;

	fill_pattern(mm, a, 4 * PG, 26);
	fill_pattern(mm, c, 6 * PG, 27);
	pa = pfns(mm, a, 4);
	pc = pfns(mm, c, 6);
	/* Grow while moving: the new VMA is new_len long, its tail empty. */
	cr_assert_eq(remap(mm, a, 4 * PG, 7 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	cr_assert_eq(vma_at(mm, dst)->vm_end, dst + 7 * PG);
	check_pattern(mm, dst, 4 * PG, 26);
	assert_pfns(mm, dst, pa, 4);
	check_zero(mm, dst + 4 * PG, 3 * PG);
	assert_no_vma(mm, a, 4 * PG);
	/* Shrink while moving: the tail is unmapped, the head moves. */
	cr_assert_eq(remap(mm, c, 6 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst2), dst2);
	cr_assert_eq(vma_at(mm, dst2)->vm_end, dst2 + 2 * PG);
	check_pattern(mm, dst2, 2 * PG, 27);
	assert_pfns(mm, dst2, pc, 2);
	assert_no_vma(mm, c, 6 * PG);
	cr_assert_eq(page_ref_count(pfn_to_page(pc[4])), 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 6);
	assert_audit_clean();
	free(pa);
	free(pc);
	mmput(mm);
}

Test(mremap, fixed_move_only_spans_several_vmas)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 2 * PG);
	unsigned long b = map_anon(mm, AREA + 3 * PG, 2 * PG, PROT_READ, MAP_FIXED);
	unsigned long dst = AREA + HPS;
	unsigned long keep1, keep2;
	unsigned long *pa;

	fill_pattern(mm, a, 2 * PG, 28);
	pa = pfns(mm, a, 2);
	/* Mappings at the destination, in the gap and past the end. */
	keep1 = map_anon(mm, dst + 2 * PG, PG, PROT_READ | PROT_EXEC, MAP_FIXED);
	keep2 = map_anon(mm, dst + 5 * PG, PG, PROT_READ | PROT_EXEC, MAP_FIXED);
	cr_assert_eq(nr_vmas(mm), 4);
	/*
	 * Linux 6.17+: MREMAP_FIXED without resize moves every VMA of the range,
	 * keeping the gaps; the destination's gaps are not unmapped.
	 */
	cr_assert_eq(remap(mm, a, 5 * PG, 5 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	assert_no_vma(mm, AREA, 5 * PG);
	cr_assert_eq(vma_at(mm, dst)->vm_end, dst + 2 * PG);
	cr_assert_eq(vma_at(mm, keep1)->vm_end, keep1 + PG);
	cr_assert_eq(vma_at(mm, dst + 3 * PG)->vm_start, dst + 3 * PG);
	cr_assert_eq(vma_at(mm, dst + 3 * PG)->vm_end, dst + 5 * PG);
	cr_assert_eq(vma_at(mm, dst + 3 * PG)->vm_flags & VM_ACCESS_FLAGS, VM_READ);
	cr_assert_eq(vma_at(mm, keep2)->vm_end, keep2 + PG);
	cr_assert_eq(nr_vmas(mm), 4);
	check_pattern(mm, dst, 2 * PG, 28);
	assert_pfns(mm, dst, pa, 2);
	(void)b;

	/* A range starting and ending inside VMAs moves just those parts. */
	unsigned long c = map_at(mm, AREA + 4 * HPS, 4 * PG);
	map_anon(mm, AREA + 4 * HPS + 4 * PG, 4 * PG, PROT_READ, MAP_FIXED);
	fill_pattern(mm, c, 4 * PG, 29);
	cr_assert_eq(remap(mm, c + 2 * PG, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
			   AREA + 5 * HPS), AREA + 5 * HPS);
	check_at(mm, c, 0, 2 * PG, 29);
	check_at(mm, AREA + 5 * HPS - 2 * PG, 2 * PG, 2 * PG, 29);
	cr_assert_eq(vma_at(mm, AREA + 5 * HPS + 2 * PG)->vm_end, AREA + 5 * HPS + 4 * PG);
	cr_assert_eq(vma_at(mm, c + 6 * PG)->vm_start, c + 6 * PG);
	assert_audit_clean();
	free(pa);
	mmput(mm);
}

Test(mremap, fixed_move_onto_own_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 16 * PG);

	fill_pattern(mm, a, 16 * PG, 30);
	/* The destination is in the same VMA: unmapping it splits the source VMA. */
	cr_assert_eq(remap(mm, a, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, a + 8 * PG),
		     a + 8 * PG);
	check_at(mm, a + 8 * PG, 0, 4 * PG, 30);
	check_at(mm, a, 4 * PG, 4 * PG, 30);
	check_at(mm, a, 12 * PG, 4 * PG, 30);
	assert_no_vma(mm, a, 4 * PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 12);
	assert_audit_clean();
	mmput(mm);
}

/* ---- MREMAP_DONTUNMAP ---- */

Test(mremap, dontunmap_whole_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 8 * PG);
	unsigned long *before;
	unsigned long n, free0;

	fill_pattern(mm, a, 8 * PG, 31);
	before = pfns(mm, a, 8);
	free0 = free_and_tables(mm);
	n = remap(mm, a, 8 * PG, 8 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
	cr_assert_neq(n, a);
	cr_assert_eq(nr_vmas(mm), 2);
	check_pattern(mm, n, 8 * PG, 31);
	assert_pfns(mm, n, before, 8);
	/* The RSS moved, it was not duplicated. */
	cr_assert_eq(rss_bytes(mm), 8 * PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 8);
	cr_assert_eq(free_and_tables(mm), free0);
	/* The old VMA stays, empty and unlinked from the anon_vma. */
	struct vm_area_struct *old = vma_at(mm, a);
	cr_assert_eq(old->vm_start, a);
	cr_assert_eq(old->vm_end, a + 8 * PG);
	cr_assert_null(old->anon_vma);
	cr_assert(old->vm_flags & VM_ACCOUNT, "6.18 keeps VM_ACCOUNT on the old VMA");
	assert_unmapped_ptes(mm, a, 8);
	assert_audit_clean();
	/* Reads there fault in zero pages, writes new pages. */
	check_zero(mm, a, 8 * PG);
	cr_assert_eq(pfn_at(mm, a), uhmm_zero_pfn(machine));
	fill_pattern(mm, a + 3 * PG, PG, 32);
	cr_assert(vma_at(mm, a)->anon_vma);
	cr_assert_eq(rss_bytes(mm), 9 * PG);
	check_pattern(mm, n, 8 * PG, 31);
	assert_audit_clean();
	free(before);
	mmput(mm);
}

Test(mremap, dontunmap_part_of_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 8 * PG);
	unsigned long n;

	fill_pattern(mm, a, 8 * PG, 33);
	unsigned long pfn3 = pfn_at(mm, a + 3 * PG);
	n = remap(mm, a + 2 * PG, 3 * PG, 3 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
	/* The old VMA is not split; it keeps its anon_vma (pages remain). */
	cr_assert_eq(nr_vmas(mm), 2);
	cr_assert_eq(vma_at(mm, a)->vm_end, a + 8 * PG);
	cr_assert(vma_at(mm, a)->anon_vma);
	check_at(mm, n - 2 * PG, 2 * PG, 3 * PG, 33);
	cr_assert_eq(pfn_at(mm, n + PG), pfn3);
	cr_assert_eq(vma_at(mm, n)->vm_pgoff, (a >> PAGE_SHIFT) + 2);
	check_at(mm, a, 0, 2 * PG, 33);
	check_at(mm, a, 5 * PG, 3 * PG, 33);
	cr_assert_eq(rss_bytes(mm), 8 * PG);
	check_zero(mm, a + 2 * PG, 3 * PG);
	assert_audit_clean();
	mmput(mm);
}

Test(mremap, dontunmap_hint_and_fixed)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long hint = AREA + HPS + 4 * PG, busy = AREA + 2 * HPS;
	unsigned long n;

	fill_pattern(mm, a, 4 * PG, 34);
	/* A free hint is taken. */
	cr_assert_eq(remap(mm, a, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, hint), hint);
	check_pattern(mm, hint, 4 * PG, 34);
	check_zero(mm, a, 4 * PG);
	/* A busy hint is not. */
	map_at(mm, busy, 4 * PG);
	fill_pattern(mm, busy, 4 * PG, 35);
	n = remap(mm, hint, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, busy);
	cr_assert_neq(n, busy);
	check_pattern(mm, n, 4 * PG, 34);
	check_pattern(mm, busy, 4 * PG, 35);
	/* With MREMAP_FIXED the destination is replaced. */
	cr_assert_eq(remap(mm, n, 4 * PG, 4 * PG,
			   MREMAP_MAYMOVE | MREMAP_DONTUNMAP | MREMAP_FIXED, busy), busy);
	check_pattern(mm, busy, 4 * PG, 34);
	check_zero(mm, n, 4 * PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 4);
	assert_audit_clean();
	mmput(mm);
}

Test(mremap, dontunmap_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp_at(mm, AREA, HPS);
	unsigned long head = make_thp(mm, a, 36);
	unsigned long dst = AREA + 4 * HPS;

	cr_assert_eq(remap(mm, a, HPS, HPS, MREMAP_MAYMOVE | MREMAP_DONTUNMAP | MREMAP_FIXED, dst),
		     dst);
	cr_assert(is_pmd_thp(mm, dst));
	cr_assert_eq(pfn_at(mm, dst), head);
	cr_assert_eq(anon_huge(mm), HPS);
	cr_assert_eq(rss_bytes(mm), HPS);
	cr_assert_eq(pagemap(mm, a), 0);
	assert_audit_clean();
	/* The old range reads the huge zero page (it is still THP-eligible). */
	check_zero(mm, a, PG);
	cr_assert_eq(folio_at(mm, a), machine->huge_zero_folio);
	check_pattern(mm, dst, HPS, 36);
	mmput(mm);
}

/* ---- THPs, page tables and the zero pages ---- */

Test(mremap, thp_aligned_move_keeps_pmd)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp_at(mm, AREA + 10 * HPS, HPS);
	unsigned long head = make_thp(mm, a, 37);
	struct folio *folio = page_folio(pfn_to_page(head));
	unsigned long near = AREA + 20 * HPS;        /* same PMD table */
	unsigned long far = AREA + PUD_SIZE + 2 * HPS; /* another PMD table */
	uint64_t pm[NR];
	unsigned long tables0;

	cr_assert_eq(mm_pagemap_read(mm, a, NR, pm), 0);
	tables0 = smaps(mm).page_tables;
	cr_assert_eq(remap(mm, a, HPS, HPS, MREMAP_MAYMOVE | MREMAP_FIXED, near), near);
	cr_assert(is_pmd_thp(mm, near));
	cr_assert_eq(anon_huge(mm), HPS);
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(folio_mapcount(folio), 1);
	cr_assert_eq(smaps(mm).page_tables, tables0, "the deposited table moved, no new table");
	/* Identical pagemap but for soft-dirty (set on moved entries). */
	for (unsigned long i = 0; i < NR; i++)
		cr_assert_eq(pagemap(mm, near + i * PG) & ~PM_SOFT_DIRTY, pm[i] & ~PM_SOFT_DIRTY);
	check_pattern(mm, near, HPS, 37);
	assert_audit_clean();
	cr_assert_eq(remap(mm, near, HPS, HPS, MREMAP_MAYMOVE | MREMAP_FIXED, far), far);
	cr_assert(is_pmd_thp(mm, far));
	cr_assert_eq(pfn_at(mm, far), head);
	cr_assert_eq(anon_huge(mm), HPS);
	cr_assert_eq(vma_at(mm, far)->vm_pgoff, a >> PAGE_SHIFT);
	check_pattern(mm, far, HPS, 37);
	/* The audit checks the deposit followed the leaf to the other PMD table. */
	assert_audit_clean();
	/* Still a THP in every way: a write reuses it, MADV_DONTNEED frees it whole. */
	fill_at(mm, far, 5 * PG, 100, 38);
	cr_assert(is_pmd_thp(mm, far));
	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(mm_madvise(mm, far, HPS, MADV_DONTNEED), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 + NR + 1);
	mmput(mm);
}

Test(mremap, thp_unaligned_move_maps_ptes)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp_at(mm, AREA, HPS);
	unsigned long head = make_thp(mm, a, 39);
	struct folio *folio = page_folio(pfn_to_page(head));
	unsigned long dst = AREA + 4 * HPS + 16 * PG;
	unsigned long want[NR];

	for (unsigned long i = 0; i < NR; i++)
		want[i] = head + i;
	cr_assert_eq(remap(mm, a, HPS, HPS, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), HPS);
	assert_pfns(mm, dst, want, NR);
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER);
	cr_assert_eq(folio_entire_mapcount(folio), 0);
	cr_assert_eq(folio_mapcount(folio), (int)NR);
	cr_assert_eq(folio_ref_count(folio), (int)NR);
	cr_assert(pagemap(mm, dst + 100 * PG) & PM_MMAP_EXCLUSIVE);
	check_pattern(mm, dst, HPS, 39);
	assert_no_vma(mm, a, HPS);
	assert_audit_clean();
	/* Moving it back to an aligned place keeps it PTE-mapped. */
	cr_assert_eq(remap(mm, dst, HPS, HPS, MREMAP_MAYMOVE | MREMAP_FIXED, a), a);
	assert_pfns(mm, a, want, NR);
	cr_assert_eq(anon_huge(mm), 0);
	check_pattern(mm, a, HPS, 39);
	assert_audit_clean();
	mmput(mm);
}

Test(mremap, thp_partly_moved)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp_at(mm, AREA, HPS);
	unsigned long head = make_thp(mm, a, 40);
	struct folio *folio = page_folio(pfn_to_page(head));
	unsigned long off = 256 * PG, len = 16 * PG, dst = AREA + 8 * HPS;
	unsigned long want[16];

	for (int i = 0; i < 16; i++)
		want[i] = head + off / PG + (unsigned long)i;
	cr_assert_eq(remap(mm, a + off, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	assert_pfns(mm, dst, want, 16);
	check_at(mm, dst - off, off, len, 40);
	check_at(mm, a, 0, off, 40);
	check_at(mm, a, off + len, HPS - off - len, 40);
	cr_assert_eq(nr_vmas(mm), 3);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(rss_bytes(mm), HPS);
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER);
	cr_assert_eq(folio_mapcount(folio), (int)NR);
	cr_assert_eq(folio_ref_count(folio), (int)NR);
	assert_audit_clean();
	/* A range that straddles the THP's end moves its last pages too. */
	unsigned long b = map_thp_at(mm, AREA + 2 * HPS, 2 * HPS);
	unsigned long head_b = make_thp(mm, b, 41);
	fill_at(mm, b, HPS, 4 * PG, 41);
	cr_assert_eq(remap(mm, b + HPS - 2 * PG, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
			   AREA + 12 * HPS), AREA + 12 * HPS);
	check_at(mm, AREA + 12 * HPS - (HPS - 2 * PG), HPS - 2 * PG, 4 * PG, 41);
	cr_assert_eq(pfn_at(mm, AREA + 12 * HPS), head_b + NR - 2);
	check_at(mm, b, 0, HPS - 2 * PG, 41);
	assert_audit_clean();
	mmput(mm);
}

Test(mremap, whole_pte_table_moves)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA + 2 * HPS, HPS);
	unsigned long dst = AREA + 6 * HPS;
	unsigned long *before;
	pmd_t *pmd;
	uint64_t table;
	unsigned long tables0;

	cr_assert_eq(mm_madvise(mm, a, HPS, MADV_NOHUGEPAGE), 0);
	fill_pattern(mm, a, HPS, 42);
	before = pfns(mm, a, NR);
	pmd = pmd_off(mm, a);
	cr_assert(pmd);
	table = pmd_val(pmdp_get(pmd));
	cr_assert(!pmd_leaf(__pmd(table)));
	tables0 = smaps(mm).page_tables;
	cr_assert_eq(remap(mm, a, HPS, HPS, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	/* The PTE table itself moved: no new table, same entries. */
	cr_assert_eq(pmd_val(pmdp_get(pmd_off(mm, dst))), table);
	cr_assert(pmd_none(pmdp_get(pmd_off(mm, a))));
	cr_assert_eq(smaps(mm).page_tables, tables0);
	assert_pfns(mm, dst, before, NR);
	check_pattern(mm, dst, HPS, 42);
	assert_audit_clean();
	/* Unaligned, the PTEs move one by one into new tables. */
	cr_assert_eq(remap(mm, dst, HPS, HPS, MREMAP_MAYMOVE | MREMAP_FIXED, a + PG), a + PG);
	assert_pfns(mm, a + PG, before, NR);
	check_pattern(mm, a + PG, HPS, 42);
	assert_audit_clean();
	free(before);
	mmput(mm);
}

Test(mremap, zero_page_ptes_move)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long zero = uhmm_zero_pfn(machine);
	unsigned long dst = AREA + HPS + 3 * PG;

	check_zero(mm, a, 2 * PG);
	fill_pattern(mm, a + 3 * PG, PG, 43);
	cr_assert_eq(pfn_at(mm, a), zero);
	cr_assert_eq(pagemap(mm, a) & PM_SOFT_DIRTY, 0);
	cr_assert_eq(remap(mm, a, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	cr_assert_eq(pfn_at(mm, dst), zero);
	cr_assert_eq(pfn_at(mm, dst + PG), zero);
	cr_assert_eq(pagemap(mm, dst + 2 * PG), 0);
	cr_assert_eq(rss_bytes(mm), PG, "the zero page is not RSS");
	/* Moved entries are soft-dirty (move_soft_dirty_pte()). */
	cr_assert(pagemap(mm, dst) & PM_SOFT_DIRTY);
	check_zero(mm, dst, 3 * PG);
	check_pattern(mm, dst + 3 * PG, PG, 43);
	/* A write still breaks COW from the zero page. */
	fill_at(mm, dst, 0, 8, 44);
	cr_assert_neq(pfn_at(mm, dst), zero);
	assert_audit_clean();
	mmput(mm);
}

Test(mremap, huge_zero_pmd_moves)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp_at(mm, AREA, HPS);
	unsigned long hz, dst = AREA + 4 * HPS, dst2 = AREA + 8 * HPS + PG;

	check_zero(mm, a, PG);
	hz = pfn_at(mm, a);
	cr_assert_eq(hz, folio_pfn(machine->huge_zero_folio));
	cr_assert_eq(rss_bytes(mm), 0);
	/* Aligned: the huge zero PMD moves as it is. */
	cr_assert_eq(remap(mm, a, HPS, HPS, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	cr_assert_eq(pfn_at(mm, dst), hz);
	cr_assert_eq(pfn_at(mm, dst + HPS - PG), hz + NR - 1);
	cr_assert(pmd_leaf(pmdp_get(pmd_off(mm, dst))));
	cr_assert_eq(pagemap(mm, a), 0);
	assert_audit_clean();
	/* Unaligned: split into zero-page PTEs first, as Linux does. */
	cr_assert_eq(remap(mm, dst, HPS, HPS, MREMAP_MAYMOVE | MREMAP_FIXED, dst2), dst2);
	cr_assert_eq(pfn_at(mm, dst2), uhmm_zero_pfn(machine));
	cr_assert_eq(pfn_at(mm, dst2 + HPS - PG), uhmm_zero_pfn(machine));
	check_zero(mm, dst2, HPS);
	cr_assert_eq(rss_bytes(mm), 0);
	assert_audit_clean();
	mmput(mm);
}

/* ---- merging after a move ---- */

Test(mremap, moved_back_merges)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long away = AREA + HPS;

	fill_pattern(mm, a, 4 * PG, 45);
	cr_assert_eq(remap(mm, a + PG, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, away), away);
	cr_assert_eq(nr_vmas(mm), 3);
	/* Its pgoff does not continue a neighbour's over there: no merge. */
	map_at(mm, away + PG, PG);
	cr_assert_eq(nr_vmas(mm), 4);
	cr_assert_eq(mm_munmap(mm, away + PG, PG), 0);
	/* Back home it continues both neighbours (same anon_vma): one VMA again. */
	cr_assert_eq(remap(mm, away, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, a + PG), a + PG);
	cr_assert_eq(nr_vmas(mm), 1);
	cr_assert_eq(vma_at(mm, a)->vm_end, a + 4 * PG);
	check_pattern(mm, a, 4 * PG, 45);
	assert_audit_clean();
	mmput(mm);
}

Test(mremap, unfaulted_vma_takes_new_pgoff)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long b = map_at(mm, AREA + HPS, 2 * PG);
	unsigned long c = map_at(mm, AREA + 2 * HPS, 4 * PG);
	unsigned long d = map_at(mm, AREA + 3 * HPS, 2 * PG);

	/* Never written: the copy's pgoff is its new address, so it merges (probe). */
	cr_assert_eq(remap(mm, a, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, b + 2 * PG),
		     b + 2 * PG);
	cr_assert_eq(vma_at(mm, b)->vm_end, b + 4 * PG);
	cr_assert_eq(vma_at(mm, b)->vm_pgoff, b >> PAGE_SHIFT);
	/* Written: it keeps its pgoff and does not merge. */
	fill_pattern(mm, c, PG, 46);
	cr_assert_eq(remap(mm, c, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, d + 2 * PG),
		     d + 2 * PG);
	cr_assert_eq(vma_at(mm, d)->vm_end, d + 2 * PG);
	cr_assert_eq(vma_at(mm, d + 2 * PG)->vm_pgoff, c >> PAGE_SHIFT);
	check_pattern(mm, d + 2 * PG, PG, 46);
	/* A never-written VMA moved next to itself (probe: two VMAs result). */
	unsigned long e = map_at(mm, AREA + 4 * HPS, 4 * PG);
	check_zero(mm, e + 2 * PG, PG); /* a zero-page PTE, no anon_vma */
	cr_assert_eq(remap(mm, e + 2 * PG, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
			   e + 4 * PG), e + 4 * PG);
	cr_assert_eq(vma_at(mm, e)->vm_end, e + 2 * PG);
	cr_assert_eq(vma_at(mm, e + 4 * PG)->vm_end, e + 6 * PG);
	cr_assert_eq(pfn_at(mm, e + 4 * PG), uhmm_zero_pfn(machine));
	assert_no_vma(mm, e + 2 * PG, 2 * PG);
	unsigned long f = map_at(mm, AREA + 5 * HPS + 2 * PG, 4 * PG);
	cr_assert_eq(remap(mm, f, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, f - 2 * PG),
		     f - 2 * PG);
	cr_assert_eq(vma_at(mm, f - 2 * PG)->vm_end, f);
	cr_assert_eq(vma_at(mm, f + 2 * PG)->vm_start, f + 2 * PG);
	assert_no_vma(mm, f, 2 * PG);
	assert_audit_clean();
	mmput(mm);
}

Test(mremap, prot_none_moves)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA, 4 * PG);
	unsigned long dst = AREA + HPS + PG;
	uint8_t b;

	fill_pattern(mm, a, 4 * PG, 47);
	cr_assert_eq(mm_mprotect(mm, a, 4 * PG, PROT_NONE), 0);
	cr_assert_eq(remap(mm, a, 4 * PG, 8 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	cr_assert_eq(cpu_read(mm, dst, &b, 1), -EFAULT);
	cr_assert_eq(vma_at(mm, dst)->vm_flags & VM_ACCESS_FLAGS, 0);
	cr_assert_eq(mm_mprotect(mm, dst, 8 * PG, PROT_READ), 0);
	check_pattern(mm, dst, 4 * PG, 47);
	check_zero(mm, dst + 4 * PG, 4 * PG);
	assert_audit_clean();
	mmput(mm);
}

/* ---- failure in the middle of a move ---- */

Test(mremap, enomem_mid_move_restores_source)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_at(mm, AREA + HPS - 2 * PG, 4 * PG);
	unsigned long dst = AREA + 4 * HPS - PG; /* its 2nd and 3rd pages need another table */
	unsigned long b = map_at(mm, AREA + 4 * HPS - 4 * PG, 2 * PG); /* the first table exists */
	struct fault_attr fail = { .probability = 100, .interval = 1, .times = 1 };
	unsigned long *before;
	struct snap s;

	fill_pattern(mm, a, 4 * PG, 48);
	fill_pattern(mm, b, 2 * PG, 49);
	before = pfns(mm, a, 4);
	snap_take(&s, mm, a, 4);
	/*
	 * Step 1 moves one page into the existing table, step 2 needs a new PTE
	 * table and fails: the page comes back, the new VMA goes.
	 */
	uhmm_fail_page_alloc(machine, &fail);
	cr_assert_eq(mm_mremap(mm, a, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst), -ENOMEM);
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 1);
	uhmm_fail_page_alloc(machine, NULL);
	check_pattern(mm, a, 4 * PG, 48);
	assert_pfns(mm, a, before, 4);
	check_pattern(mm, b, 2 * PG, 49);
	assert_no_vma(mm, dst, 4 * PG);
	cr_assert_eq(nr_vmas(mm), s.nr_vmas);
	cr_assert_eq(smaps(mm).rss, s.smaps.rss);
	assert_audit_clean();
	/* Without the failure the same call works. */
	cr_assert_eq(remap(mm, a, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
	check_pattern(mm, dst, 4 * PG, 48);
	assert_pfns(mm, dst, before, 4);
	assert_audit_clean();
	snap_free(&s);
	free(before);
	mmput(mm);
}

/* ---- concurrency ---- */

struct race {
	struct mm_struct *mm;
	unsigned long x, y;
	atomic_int stop;
	int bad;
};

static void *race_reader(void *arg)
{
	struct race *r = arg;
	uint8_t buf[64];

	while (!atomic_load(&r->stop)) {
		for (int side = 0; side < 2; side++) {
			unsigned long base = side ? r->y : r->x;
			int err = cpu_read(r->mm, base + 3 * PG + 100, buf, sizeof(buf));

			if (err == -EFAULT)
				continue;
			for (size_t i = 0; i < sizeof(buf); i++)
				if (err || buf[i] != pattern_byte(50, 3 * PG + 100 + i))
					r->bad++;
		}
		sched_yield();
	}
	return NULL;
}

Test(mremap, readers_see_old_or_new_place)
{
	struct mm_struct *mm = new_mm();
	struct race r = { .mm = mm, .x = AREA, .y = AREA + 3 * HPS + 5 * PG };
	pthread_t t;

	map_at(mm, r.x, 8 * PG);
	fill_pattern(mm, r.x, 8 * PG, 50);
	cr_assert_eq(pthread_create(&t, NULL, race_reader, &r), 0);
	for (int i = 0; i < 200; i++) {
		unsigned long from = i % 2 ? r.y : r.x, to = i % 2 ? r.x : r.y;

		cr_assert_eq(remap(mm, from, 8 * PG, 8 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, to), to);
	}
	atomic_store(&r.stop, 1);
	pthread_join(t, NULL);
	cr_assert_eq(r.bad, 0);
	check_pattern(mm, r.x, 8 * PG, 50);
	assert_audit_clean();
	mmput(mm);
}
