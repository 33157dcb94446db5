/* SPDX-License-Identifier: MIT */
/*
 * tests/test_mmap.c - mm_mmap(), mm_munmap(), mm_mprotect() and the VMA tree:
 * placement (top-down below mmap_base, hints, MAP_FIXED, THP alignment),
 * splitting and merging of VMAs, and what the CPU may do afterwards.
 *
 * The expected layouts are Linux x86-64's (checked against Linux 6.18).
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

TestSuite(mmap, .init = machine_setup, .fini = machine_teardown);

#define P PAGE_SIZE
#define RW (PROT_READ | PROT_WRITE)
#define PRIV_ANON (MAP_PRIVATE | MAP_ANONYMOUS)
/* A fixed area far below mmap_base, 2 MiB aligned. */
#define FIX 0x100000000000UL

/* ---- helpers ---- */

/* Assert the VMAs of @mm are exactly @n ranges [r[2i], r[2i+1]). */
static void assert_vmas(struct mm_struct *mm, const unsigned long *r, size_t n, int line)
{
	cr_assert_eq(nr_vmas(mm), n, "line %d: %zu VMAs, want %zu", line, nr_vmas(mm), n);
	for (size_t i = 0; i < n; i++) {
		struct vm_area_struct *v = mm->mm_mt.vmas[i];
		cr_assert_eq(v->vm_start, r[2 * i], "line %d: VMA %zu starts at %#lx, want %#lx",
			     line, i, v->vm_start, r[2 * i]);
		cr_assert_eq(v->vm_end, r[2 * i + 1], "line %d: VMA %zu ends at %#lx, want %#lx",
			     line, i, v->vm_end, r[2 * i + 1]);
	}
}
#define ASSERT_VMAS(mm, ...)                                                                       \
	do {                                                                                       \
		const unsigned long r_[] = {__VA_ARGS__};                                          \
		assert_vmas(mm, r_, sizeof(r_) / sizeof(r_[0]) / 2, __LINE__);                     \
	} while (0)

static long mmap_anon(struct mm_struct *mm, unsigned long addr, unsigned long len, int prot,
		      int extra)
{
	return mm_mmap(mm, addr, len, prot, PRIV_ANON | extra, NULL, 0);
}

static long anon_pages(struct mm_struct *mm)
{
	return mm_get_rss(mm, MM_ANONPAGES);
}

static void assert_fault(struct mm_struct *mm, unsigned long addr, bool write)
{
	uint8_t b = 0x42;
	int ret = write ? cpu_write(mm, addr, &b, 1) : cpu_read(mm, addr, &b, 1);
	cr_assert_eq(ret, -EFAULT, "%s at %#lx returned %d, want -EFAULT", write ? "write" : "read",
		     addr, ret);
}

static void assert_rw_ok(struct mm_struct *mm, unsigned long addr)
{
	uint8_t b, c;
	cr_assert_eq(cpu_read(mm, addr, &b, 1), 0, "read at %#lx", addr);
	cr_assert_eq(cpu_write(mm, addr, &b, 1), 0, "write at %#lx", addr);
	cr_assert_eq(cpu_read(mm, addr, &c, 1), 0);
	cr_assert_eq(b, c);
}

/* ---- placement ---- */

Test(mmap, top_down_below_mmap_base)
{
	struct mm_struct *mm = new_mm();
	unsigned long base = mm->mmap_base;
	cr_assert(base > FIX && base <= TASK_SIZE && IS_ALIGNED(base, P), "mmap_base %#lx", base);
	cr_assert_eq(nr_vmas(mm), 0);

	unsigned long a = map_anon(mm, 0, 3 * P, RW, 0);
	cr_assert_eq(a, base - 3 * P, "first mapping at %#lx, want mmap_base - 3 pages (%#lx)", a,
		     base - 3 * P);
	unsigned long b = map_anon(mm, 0, 5 * P, RW, 0);
	cr_assert_eq(b, a - 5 * P);
	unsigned long c = map_anon(mm, 0, 2 * P, RW, 0);
	cr_assert_eq(c, b - 2 * P);
	/* A length that is not a page multiple takes whole pages. */
	unsigned long d = map_anon(mm, 0, 3 * P + 1, RW, 0);
	cr_assert_eq(d, c - 4 * P);

	fill_pattern(mm, a, 3 * P, 1);
	fill_pattern(mm, c, 2 * P, 3);
	fill_pattern(mm, d, 4 * P, 4);

	/* Free B: a new mapping of B's size goes exactly where B was. */
	cr_assert_eq(mm_munmap(mm, b, 5 * P), 0);
	unsigned long b2 = map_anon(mm, 0, 5 * P, RW, 0);
	cr_assert_eq(b2, b, "re-map of B's size at %#lx, want %#lx", b2, b);
	/* Again with smaller mappings: top-down inside the hole. */
	cr_assert_eq(mm_munmap(mm, b, 5 * P), 0);
	unsigned long e = map_anon(mm, 0, 4 * P, RW, 0);
	cr_assert_eq(e, b + P, "4 pages land at the top of the 5-page hole: %#lx, want %#lx", e,
		     b + P);
	unsigned long f = map_anon(mm, 0, P, RW, 0);
	cr_assert_eq(f, b, "1 page fills the hole: %#lx, want %#lx", f, b);
	/* The hole is full; the next mapping goes below everything. */
	unsigned long g = map_anon(mm, 0, 2 * P, RW, 0);
	cr_assert_eq(g, d - 2 * P);

	check_pattern(mm, a, 3 * P, 1);
	check_pattern(mm, c, 2 * P, 3);
	check_pattern(mm, d, 4 * P, 4);
	check_zero(mm, e, 4 * P);
	mmput(mm);
}

Test(mmap, hint_honoured_when_free)
{
	struct mm_struct *mm = new_mm();
	unsigned long base = mm->mmap_base;

	cr_assert_eq(mmap_anon(mm, FIX, 3 * P, RW, 0), (long)FIX);
	/* Adjacent below, free: honoured. */
	cr_assert_eq(mmap_anon(mm, FIX - 2 * P, 2 * P, RW, 0), (long)(FIX - 2 * P));
	/* Adjacent above, free: honoured. */
	cr_assert_eq(mmap_anon(mm, FIX + 3 * P, P, RW, 0), (long)(FIX + 3 * P));
	/* An unaligned hint is rounded down to its page, as x86 does (round_hint_to_min). */
	unsigned long h = FIX + 64 * P + 0x234;
	cr_assert_eq(mmap_anon(mm, h, 2 * P, RW, 0), (long)(FIX + 64 * P));
	/* A hint is taken as is for a 2 MiB length too: no THP alignment then. */
	cr_assert_eq(mmap_anon(mm, FIX + PMD_SIZE * 4 + P, PMD_SIZE, RW, 0),
		     (long)(FIX + PMD_SIZE * 4 + P));
	/* Nothing went near mmap_base. */
	for (size_t i = 0; i < nr_vmas(mm); i++)
		cr_assert(mm->mm_mt.vmas[i]->vm_end < base);
	mmput(mm);
}

Test(mmap, hint_ignored_when_taken)
{
	struct mm_struct *mm = new_mm();
	unsigned long base = mm->mmap_base;

	cr_assert_eq(mmap_anon(mm, FIX, 4 * P, RW, 0), (long)FIX);
	fill_pattern(mm, FIX, 4 * P, 7);

	/* Exactly taken: the search falls back to top-down below mmap_base. */
	long a = mmap_anon(mm, FIX, 4 * P, RW, 0);
	cr_assert_eq(a, (long)(base - 4 * P), "taken hint gave %#lx, want %#lx", a, base - 4 * P);
	/* Partly taken (runs into the mapping): also ignored. */
	long b = mmap_anon(mm, FIX - P, 2 * P, RW, 0);
	cr_assert_eq(b, (long)(base - 6 * P));
	/* Starts inside the mapping: ignored. */
	long c = mmap_anon(mm, FIX + 3 * P, 2 * P, RW, 0);
	cr_assert_eq(c, (long)(base - 8 * P));
	/* A hint that does not fit below TASK_SIZE is ignored, not an error. */
	long d = mmap_anon(mm, TASK_SIZE - P, 2 * P, RW, 0);
	cr_assert_eq(d, (long)(base - 10 * P));

	/* The mapping at the hint was not touched. */
	check_pattern(mm, FIX, 4 * P, 7);
	check_zero(mm, (unsigned long)a, 4 * P);
	mmput(mm);
}

Test(mmap, thp_sized_lengths_are_2mib_aligned)
{
	struct mm_struct *mm = new_mm();
	unsigned long base = mm->mmap_base;

	/* Move the top below mmap_base off 2 MiB alignment first. */
	unsigned long s = map_anon(mm, 0, 3 * P, RW, 0);
	cr_assert_eq(s, base - 3 * P);

	unsigned long a = map_anon(mm, 0, PMD_SIZE, RW, 0);
	cr_assert(IS_ALIGNED(a, PMD_SIZE), "2 MiB mapping at %#lx", a);
	/* The highest aligned place that fits (Linux's thp_get_unmapped_area). */
	cr_assert_eq(a, ALIGN_DOWN(s - PMD_SIZE, PMD_SIZE));
	/* Alignment left a gap [a + 2 MiB, s) of less than 2 MiB. */
	unsigned long gap = s - (a + PMD_SIZE);
	cr_assert_lt(gap, PMD_SIZE);

	unsigned long b = map_anon(mm, 0, 4 * PMD_SIZE, RW, 0);
	cr_assert(IS_ALIGNED(b, PMD_SIZE), "8 MiB mapping at %#lx", b);
	cr_assert_eq(b, a - 4 * PMD_SIZE);

	/* Not a multiple of 2 MiB: plain top-down placement, no rounding. */
	unsigned long c = map_anon(mm, 0, PMD_SIZE + P, RW, 0);
	cr_assert_eq(c, b - PMD_SIZE - P);
	/* A small mapping takes the highest gap that fits: the alignment gap if it can. */
	unsigned long d = map_anon(mm, 0, 3 * P, RW, 0);
	unsigned long low = c;
	if (gap >= 3 * P) {
		cr_assert_eq(d, s - 3 * P, "3 pages at %#lx, want the top of the gap %#lx", d,
			     s - 3 * P);
	} else {
		cr_assert_eq(d, c - 3 * P);
		low = d;
	}

	unsigned long e = map_anon(mm, 0, 2 * PMD_SIZE, RW, 0);
	cr_assert(IS_ALIGNED(e, PMD_SIZE), "4 MiB mapping at %#lx", e);
	cr_assert_eq(e, ALIGN_DOWN(low - 2 * PMD_SIZE, PMD_SIZE));
	mmput(mm);
}

/* Linux only THP-aligns when there is no hint: a taken hint gives a plain
 * top-down placement even for a 2 MiB multiple. */
Test(mmap, taken_hint_disables_thp_alignment)
{
	struct mm_struct *mm = new_mm();
	unsigned long base = mm->mmap_base;
	cr_assert_eq(mmap_anon(mm, FIX, PMD_SIZE, RW, MAP_FIXED), (long)FIX);
	unsigned long s = map_anon(mm, 0, 3 * P, RW, 0);
	cr_assert_eq(s, base - 3 * P);
	long t = mmap_anon(mm, FIX, PMD_SIZE, RW, 0);
	cr_assert_eq(t, (long)(s - PMD_SIZE), "taken 2 MiB hint placed at %#lx, want %#lx", t,
		     s - PMD_SIZE);
	mmput(mm);
}

/* ---- MAP_FIXED and MAP_FIXED_NOREPLACE ---- */

Test(mmap, map_fixed_replaces)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * P, RW, 0);
	fill_pattern(mm, a, 2 * P, 1);
	fill_pattern(mm, a + 2 * P, 4 * P, 2);
	fill_pattern(mm, a + 6 * P, 2 * P, 3);
	cr_assert_eq(anon_pages(mm), 8);
	cr_assert_eq(rss_bytes(mm), 8 * P);
	for (int i = 0; i < 8; i++)
		cr_assert(pagemap(mm, a + i * P) & PM_PRESENT);
	unsigned long free_before = uhmm_nr_free_pages(machine);

	long r = mmap_anon(mm, a + 2 * P, 4 * P, RW, MAP_FIXED);
	cr_assert_eq(r, (long)(a + 2 * P));

	/* The old pages are gone: RSS, pagemap, the allocator all say so. */
	cr_assert_eq(anon_pages(mm), 4);
	cr_assert_eq(rss_bytes(mm), 4 * P);
	for (int i = 2; i < 6; i++)
		cr_assert_eq(pagemap(mm, a + i * P), 0ULL, "page %d still mapped", i);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before + 4);

	check_zero(mm, a + 2 * P, 4 * P);
	check_pattern(mm, a, 2 * P, 1);
	check_pattern(mm, a + 6 * P, 2 * P, 3);
	/* Reading the new part maps the zero page: still no RSS. */
	cr_assert_eq(anon_pages(mm), 4);

	/* MAP_FIXED with another protection: three VMAs, the middle read-only. */
	r = mmap_anon(mm, a + 3 * P, 2 * P, PROT_READ, MAP_FIXED);
	cr_assert_eq(r, (long)(a + 3 * P));
	ASSERT_VMAS(mm, a, a + 3 * P, a + 3 * P, a + 5 * P, a + 5 * P, a + 8 * P);
	assert_fault(mm, a + 3 * P, true);
	check_zero(mm, a + 3 * P, 2 * P);
	assert_rw_ok(mm, a + 2 * P);
	assert_rw_ok(mm, a + 5 * P);
	mmput(mm);
}

Test(mmap, map_fixed_over_several_vmas_and_holes)
{
	struct mm_struct *mm = new_mm();
	/* [0,4) RW, hole [4,6), [6,10) RO, hole [10,12), [12,16) RW */
	cr_assert_eq(mmap_anon(mm, FIX, 4 * P, RW, MAP_FIXED), (long)FIX);
	cr_assert_eq(mmap_anon(mm, FIX + 6 * P, 4 * P, PROT_READ, MAP_FIXED), (long)(FIX + 6 * P));
	cr_assert_eq(mmap_anon(mm, FIX + 12 * P, 4 * P, RW, MAP_FIXED), (long)(FIX + 12 * P));
	fill_pattern(mm, FIX, 2 * P, 1);
	fill_pattern(mm, FIX + 2 * P, 2 * P, 2);
	fill_pattern(mm, FIX + 12 * P, 2 * P, 3);
	fill_pattern(mm, FIX + 14 * P, 2 * P, 4);
	cr_assert_eq(anon_pages(mm), 8);
	unsigned long free_before = uhmm_nr_free_pages(machine);

	/* Cover the tail of the first, all of the second, the head of the third. */
	cr_assert_eq(mmap_anon(mm, FIX + 2 * P, 12 * P, RW, MAP_FIXED), (long)(FIX + 2 * P));
	cr_assert_eq(anon_pages(mm), 4);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before + 4);
	for (unsigned long pg = 2; pg < 14; pg++)
		cr_assert_eq(pagemap(mm, FIX + pg * P), 0ULL, "page %lu still mapped", pg);
	check_zero(mm, FIX + 2 * P, 12 * P);
	check_pattern(mm, FIX, 2 * P, 1);
	check_pattern(mm, FIX + 14 * P, 2 * P, 4);
	/* Linux merges the new VMA with the one before it; the one after has
	 * another anon_vma (it was faulted separately), so it stays apart. */
	ASSERT_VMAS(mm, FIX, FIX + 14 * P, FIX + 14 * P, FIX + 16 * P);
	mmput(mm);
}

Test(mmap, map_fixed_noreplace)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * P, RW, 0);
	fill_pattern(mm, a, 4 * P, 5);
	unsigned long free_before = uhmm_nr_free_pages(machine);

	cr_assert_eq(mmap_anon(mm, a, 4 * P, RW, MAP_FIXED_NOREPLACE), -EEXIST);
	cr_assert_eq(mmap_anon(mm, a + P, P, RW, MAP_FIXED_NOREPLACE), -EEXIST);
	cr_assert_eq(mmap_anon(mm, a - P, 2 * P, RW, MAP_FIXED_NOREPLACE), -EEXIST);
	cr_assert_eq(mmap_anon(mm, a + 3 * P, 2 * P, RW, MAP_FIXED_NOREPLACE), -EEXIST);
	cr_assert_eq(mmap_anon(mm, a - P, 6 * P, PROT_READ, MAP_FIXED_NOREPLACE), -EEXIST);
	/* Nothing changed. */
	ASSERT_VMAS(mm, a, a + 4 * P);
	cr_assert_eq(anon_pages(mm), 4);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
	check_pattern(mm, a, 4 * P, 5);

	/* Free ranges are taken exactly, even right beside the mapping. */
	cr_assert_eq(mmap_anon(mm, a + 4 * P, 2 * P, RW, MAP_FIXED_NOREPLACE), (long)(a + 4 * P));
	cr_assert_eq(mmap_anon(mm, a - 2 * P, 2 * P, RW, MAP_FIXED_NOREPLACE), (long)(a - 2 * P));
	cr_assert_eq(mmap_anon(mm, FIX + P, P, RW, MAP_FIXED_NOREPLACE), (long)(FIX + P));
	check_pattern(mm, a, 4 * P, 5);
	mmput(mm);
}

Test(mmap, map_fixed_unaligned_is_einval)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * P, RW, 0);
	fill_pattern(mm, a, 4 * P, 6);
	cr_assert_eq(mmap_anon(mm, a + 1, P, RW, MAP_FIXED), -EINVAL);
	cr_assert_eq(mmap_anon(mm, a + P / 2, P, RW, MAP_FIXED), -EINVAL);
	cr_assert_eq(mmap_anon(mm, FIX + 8, P, RW, MAP_FIXED), -EINVAL);
	cr_assert_eq(mmap_anon(mm, FIX + 8, P, RW, MAP_FIXED_NOREPLACE), -EINVAL);
	ASSERT_VMAS(mm, a, a + 4 * P);
	check_pattern(mm, a, 4 * P, 6);
	mmput(mm);
}

Test(mmap, length_overflow_is_enomem)
{
	struct mm_struct *mm = new_mm();
	cr_assert_eq(mmap_anon(mm, 0, ~0UL, RW, 0), -ENOMEM);
	cr_assert_eq(mmap_anon(mm, 0, ~0UL - P + 2, RW, 0), -ENOMEM);
	cr_assert_eq(mmap_anon(mm, 0, ~0UL & PAGE_MASK, RW, 0), -ENOMEM);
	cr_assert_eq(mmap_anon(mm, 0, TASK_SIZE + P, RW, 0), -ENOMEM);
	cr_assert_eq(mmap_anon(mm, 0, 1UL << 48, RW, 0), -ENOMEM);
	cr_assert_eq(mmap_anon(mm, FIX, ~0UL, RW, MAP_FIXED), -ENOMEM);
	cr_assert_eq(nr_vmas(mm), 0);
	mmput(mm);
}

Test(mmap, map_fixed_beyond_task_size)
{
	struct mm_struct *mm = new_mm();
	cr_assert_eq(mmap_anon(mm, TASK_SIZE - P, 2 * P, RW, MAP_FIXED), -ENOMEM);
	cr_assert_eq(mmap_anon(mm, TASK_SIZE, P, RW, MAP_FIXED), -ENOMEM);
	cr_assert_eq(mmap_anon(mm, TASK_SIZE - PMD_SIZE, PMD_SIZE + P, RW, MAP_FIXED), -ENOMEM);
	cr_assert_eq(mmap_anon(mm, FIX, TASK_SIZE - FIX + P, RW, MAP_FIXED), -ENOMEM);
	cr_assert_eq(nr_vmas(mm), 0);

	/* The last page below TASK_SIZE is a legal fixed address. */
	cr_assert_eq(mmap_anon(mm, TASK_SIZE - P, P, RW, MAP_FIXED), (long)(TASK_SIZE - P));
	fill_pattern(mm, TASK_SIZE - P, P, 11);
	check_pattern(mm, TASK_SIZE - P, P, 11);
	cr_assert_eq(anon_pages(mm), 1);
	cr_assert_eq(mm_munmap(mm, TASK_SIZE - P, P), 0);
	cr_assert_eq(anon_pages(mm), 0);
	mmput(mm);
}

Test(mmap, map_populate_prefaults)
{
	struct mm_struct *mm = new_mm();
	unsigned long free_before = uhmm_nr_free_pages(machine);
	unsigned long a = map_anon(mm, 0, 16 * P, RW, MAP_POPULATE);

	/* Right after mmap, before any access. */
	cr_assert_eq(anon_pages(mm), 16);
	struct mm_smaps s;
	cr_assert_eq(mm_smaps_rollup(mm, &s), 0);
	cr_assert_eq(s.rss, 16 * P);
	cr_assert_eq(s.anonymous, 16 * P);
	cr_assert_eq(s.anon_huge_pages, 0UL);
	for (int i = 0; i < 16; i++) {
		uint64_t e = pagemap(mm, a + i * P);
		cr_assert(e & PM_PRESENT, "page %d not populated", i);
		cr_assert(!is_zero_pfn((unsigned long)(e & PM_PFRAME_MASK)),
			  "page %d of a writable mapping populated with the zero page", i);
	}
	cr_assert_leq(uhmm_nr_free_pages(machine), free_before - 16);
	check_zero(mm, a, 16 * P);

	/* Read-only: populated with the shared zero page, which RSS does not count. */
	unsigned long b = map_anon(mm, 0, 8 * P, PROT_READ, MAP_POPULATE);
	cr_assert_eq(anon_pages(mm), 16);
	for (int i = 0; i < 8; i++) {
		uint64_t e = pagemap(mm, b + i * P);
		cr_assert(e & PM_PRESENT, "read-only page %d not populated", i);
		cr_assert_eq((unsigned long)(e & PM_PFRAME_MASK), uhmm_zero_pfn(machine));
	}
	check_zero(mm, b, 8 * P);

	/* Without MAP_POPULATE nothing is there until touched. */
	unsigned long c = map_anon(mm, 0, 8 * P, RW, 0);
	cr_assert_eq(anon_pages(mm), 16);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(pagemap(mm, c + i * P), 0ULL);
	mmput(mm);
}

/* ---- munmap ---- */

Test(mmap, munmap_middle_splits)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * P, RW, 0);
	fill_pattern(mm, a, 3 * P, 1);
	fill_pattern(mm, a + 3 * P, 2 * P, 2);
	fill_pattern(mm, a + 5 * P, 3 * P, 3);
	ASSERT_VMAS(mm, a, a + 8 * P);
	unsigned long free_before = uhmm_nr_free_pages(machine);

	cr_assert_eq(mm_munmap(mm, a + 3 * P, 2 * P), 0);
	ASSERT_VMAS(mm, a, a + 3 * P, a + 5 * P, a + 8 * P);
	cr_assert_eq(anon_pages(mm), 6);
	cr_assert_eq(rss_bytes(mm), 6 * P);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before + 2);

	/* Both sides keep their data; the hole faults. */
	check_pattern(mm, a, 3 * P, 1);
	check_pattern(mm, a + 5 * P, 3 * P, 3);
	assert_fault(mm, a + 3 * P, false);
	assert_fault(mm, a + 5 * P - 1, false);
	assert_fault(mm, a + 4 * P, true);
	cr_assert_eq(pagemap(mm, a + 3 * P), 0ULL);
	cr_assert_eq(pagemap(mm, a + 4 * P), 0ULL);
	cr_assert(pagemap(mm, a + 2 * P) & PM_PRESENT);
	cr_assert(pagemap(mm, a + 5 * P) & PM_PRESENT);
	/* A read across the hole copies nothing. */
	uint8_t buf[3 * 4096];
	memset(buf, 0xa5, sizeof(buf));
	cr_assert_eq(cpu_read(mm, a + 2 * P, buf, sizeof(buf)), -EFAULT);

	/* The two halves are separate VMAs: mprotect one, the other is unaffected. */
	cr_assert_eq(mm_mprotect(mm, a, 3 * P, PROT_READ), 0);
	assert_fault(mm, a, true);
	assert_rw_ok(mm, a + 5 * P);
	check_pattern(mm, a, 3 * P, 1);
	check_pattern(mm, a + 5 * P, 3 * P, 3);
	/* mprotect over the hole fails. */
	cr_assert_eq(mm_mprotect(mm, a + 3 * P, 2 * P, RW), -ENOMEM);
	mmput(mm);
}

Test(mmap, munmap_spanning_vmas_and_holes)
{
	struct mm_struct *mm = new_mm();
	/* [0,4) RW, hole [4,6), [6,10) RO, [10,14) RW, hole [14,16), [16,20) RW */
	cr_assert_eq(mmap_anon(mm, FIX, 4 * P, RW, MAP_FIXED), (long)FIX);
	cr_assert_eq(mmap_anon(mm, FIX + 6 * P, 8 * P, RW, MAP_FIXED), (long)(FIX + 6 * P));
	cr_assert_eq(mmap_anon(mm, FIX + 16 * P, 4 * P, RW, MAP_FIXED), (long)(FIX + 16 * P));
	fill_pattern(mm, FIX, 2 * P, 1);
	fill_pattern(mm, FIX + 2 * P, 2 * P, 2);
	fill_pattern(mm, FIX + 6 * P, 8 * P, 3);
	fill_pattern(mm, FIX + 16 * P, 2 * P, 4);
	fill_pattern(mm, FIX + 18 * P, 2 * P, 5);
	cr_assert_eq(mm_mprotect(mm, FIX + 6 * P, 4 * P, PROT_READ), 0);
	ASSERT_VMAS(mm, FIX, FIX + 4 * P, FIX + 6 * P, FIX + 10 * P, FIX + 10 * P, FIX + 14 * P,
		    FIX + 16 * P, FIX + 20 * P);
	cr_assert_eq(anon_pages(mm), 16);

	cr_assert_eq(mm_munmap(mm, FIX + 2 * P, 16 * P), 0);
	ASSERT_VMAS(mm, FIX, FIX + 2 * P, FIX + 18 * P, FIX + 20 * P);
	cr_assert_eq(anon_pages(mm), 4);
	cr_assert_eq(rss_bytes(mm), 4 * P);
	check_pattern(mm, FIX, 2 * P, 1);
	check_pattern(mm, FIX + 18 * P, 2 * P, 5);
	for (unsigned long pg = 2; pg < 18; pg++) {
		assert_fault(mm, FIX + pg * P, false);
		cr_assert_eq(pagemap(mm, FIX + pg * P), 0ULL);
	}
	mmput(mm);
}

Test(mmap, munmap_unmapped_range_is_ok)
{
	struct mm_struct *mm = new_mm();
	cr_assert_eq(mm_munmap(mm, FIX, 16 * P), 0);
	unsigned long a = map_anon(mm, 0, 4 * P, RW, 0);
	fill_pattern(mm, a, 4 * P, 8);
	cr_assert_eq(mm_munmap(mm, a + 4 * P, 16 * P), 0);
	cr_assert_eq(mm_munmap(mm, a - 16 * P, 16 * P), 0);
	cr_assert_eq(mm_munmap(mm, FIX, PMD_SIZE), 0);
	ASSERT_VMAS(mm, a, a + 4 * P);
	check_pattern(mm, a, 4 * P, 8);
	cr_assert_eq(anon_pages(mm), 4);
	mmput(mm);
}

Test(mmap, munmap_rounds_length_up)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * P, RW, 0);
	fill_pattern(mm, a, P, 1);
	fill_pattern(mm, a + P, 3 * P, 2);
	cr_assert_eq(mm_munmap(mm, a, 1), 0);
	ASSERT_VMAS(mm, a + P, a + 4 * P);
	assert_fault(mm, a + P - 1, false);
	check_pattern(mm, a + P, 3 * P, 2);
	cr_assert_eq(mm_munmap(mm, a + P, P + 1), 0);
	ASSERT_VMAS(mm, a + 3 * P, a + 4 * P);
	cr_assert_eq(anon_pages(mm), 1);
	mmput(mm);
}

Test(mmap, munmap_neighbour_keeps_data)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * P, RW, 0);
	unsigned long b = map_anon(mm, 0, 4 * P, RW, 0);
	unsigned long c = map_anon(mm, 0, 4 * P, RW, 0);
	cr_assert_eq(b, a - 4 * P);
	cr_assert_eq(c, b - 4 * P);
	fill_pattern(mm, a, 4 * P, 1);
	fill_pattern(mm, b, 4 * P, 2);
	fill_pattern(mm, c, 4 * P, 3);

	cr_assert_eq(mm_munmap(mm, b, 4 * P), 0);
	check_pattern(mm, a, 4 * P, 1);
	check_pattern(mm, c, 4 * P, 3);
	cr_assert_eq(mm_munmap(mm, a, 4 * P), 0);
	check_pattern(mm, c, 4 * P, 3);
	ASSERT_VMAS(mm, c, c + 4 * P);
	cr_assert_eq(anon_pages(mm), 4);
	mmput(mm);
}

Test(mmap, munmap_part_of_a_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp(mm, PMD_SIZE);
	cr_assert(IS_ALIGNED(a, PMD_SIZE));
	unsigned long q = PMD_SIZE / 4;
	fill_pattern(mm, a, q, 1);
	fill_pattern(mm, a + q, 2 * q, 2);
	fill_pattern(mm, a + 3 * q, q, 3);
	struct mm_smaps s;
	cr_assert_eq(mm_smaps_rollup(mm, &s), 0);
	cr_assert_eq(s.anon_huge_pages, PMD_SIZE, "MADV_HUGEPAGE region not PMD-mapped");
	cr_assert_eq(anon_pages(mm), 512);

	/* Unmapping the middle half splits the PMD; both quarters keep their bytes. */
	cr_assert_eq(mm_munmap(mm, a + q, 2 * q), 0);
	ASSERT_VMAS(mm, a, a + q, a + 3 * q, a + PMD_SIZE);
	cr_assert_eq(mm_smaps_rollup(mm, &s), 0);
	cr_assert_eq(s.anon_huge_pages, 0UL);
	cr_assert_eq(s.rss, 2 * q);
	cr_assert_eq(anon_pages(mm), 256);
	check_pattern(mm, a, q, 1);
	check_pattern(mm, a + 3 * q, q, 3);
	assert_fault(mm, a + q, false);
	assert_fault(mm, a + 3 * q - 1, true);
	cr_assert_eq(pagemap(mm, a + q), 0ULL);
	assert_audit_clean();
	mmput(mm);
}

Test(mmap, munmap_frees_page_tables)
{
	struct mm_struct *mm = new_mm();
	unsigned long pt0 = smaps(mm).page_tables;
	unsigned long free0 = uhmm_nr_free_pages(machine);

	cr_assert_eq(mmap_anon(mm, FIX, 4 * P, RW, MAP_FIXED), (long)FIX);
	cr_assert_eq(smaps(mm).page_tables, pt0, "mmap alone allocates no table");
	fill_pattern(mm, FIX, 4 * P, 1);
	/* A PUD, a PMD and a PTE table under the PGD. */
	cr_assert_eq(smaps(mm).page_tables, pt0 + 3 * P);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 - 4 - 3);

	/* Unmapping the only mapping frees its data and every table under the PGD. */
	cr_assert_eq(mm_munmap(mm, FIX, 4 * P), 0);
	cr_assert_eq(smaps(mm).page_tables, pt0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);

	/* A THP: PUD and PMD tables, plus the PTE table deposited with the leaf. */
	unsigned long t = map_thp(mm, PMD_SIZE);
	fill_pattern(mm, t, PMD_SIZE, 2);
	struct mm_smaps sm;
	cr_assert_eq(mm_smaps_rollup(mm, &sm), 0);
	cr_assert_eq(sm.anon_huge_pages, PMD_SIZE);
	cr_assert_eq(sm.page_tables, pt0 + 3 * P);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 - 512 - 3);
	cr_assert_eq(mm_munmap(mm, t, PMD_SIZE), 0);
	cr_assert_eq(smaps(mm).page_tables, pt0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);

	/* Tables shared with a neighbour stay while the neighbour needs them. */
	cr_assert_eq(mmap_anon(mm, FIX, 8 * P, RW, MAP_FIXED), (long)FIX);
	fill_pattern(mm, FIX, 4 * P, 3);
	fill_pattern(mm, FIX + 4 * P, 4 * P, 4);
	cr_assert_eq(smaps(mm).page_tables, pt0 + 3 * P);
	cr_assert_eq(mm_munmap(mm, FIX, 4 * P), 0);
	cr_assert_eq(smaps(mm).page_tables, pt0 + 3 * P);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 - 4 - 3);
	check_pattern(mm, FIX + 4 * P, 4 * P, 4);
	mmput(mm);
}

/* smaps_rollup's page_tables is VmPTE: Linux does not count the PGD in it. */
Test(mmap, vmpte_does_not_count_the_pgd)
{
	struct mm_struct *mm = new_mm();
	cr_assert_eq(smaps(mm).page_tables, 0UL, "an empty mm has VmPTE 0 on Linux");
	cr_assert_eq(mmap_anon(mm, FIX, P, RW, MAP_FIXED), (long)FIX);
	fill_pattern(mm, FIX, P, 1);
	cr_assert_eq(smaps(mm).page_tables, 3 * P, "PUD + PMD + PTE tables = 12 kB");
	mmput(mm);
}

Test(mmap, mprotect_part_of_a_thp_splits_it)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp(mm, PMD_SIZE);
	fill_pattern(mm, a, PMD_SIZE, 5);
	struct mm_smaps s;
	cr_assert_eq(mm_smaps_rollup(mm, &s), 0);
	cr_assert_eq(s.anon_huge_pages, PMD_SIZE);

	cr_assert_eq(mm_mprotect(mm, a + PMD_SIZE / 2, P, PROT_READ), 0);
	ASSERT_VMAS(mm, a, a + PMD_SIZE / 2, a + PMD_SIZE / 2, a + PMD_SIZE / 2 + P,
		    a + PMD_SIZE / 2 + P, a + PMD_SIZE);
	cr_assert_eq(mm_smaps_rollup(mm, &s), 0);
	cr_assert_eq(s.anon_huge_pages, 0UL, "the PMD must be split");
	cr_assert_eq(s.rss, PMD_SIZE);
	cr_assert_eq(anon_pages(mm), 512);
	assert_fault(mm, a + PMD_SIZE / 2, true);
	assert_rw_ok(mm, a + PMD_SIZE / 2 - 1);
	assert_rw_ok(mm, a + PMD_SIZE / 2 + P);
	check_pattern(mm, a, PMD_SIZE, 5);

	/* Back to RW: the VMAs merge again; the data is whole. */
	cr_assert_eq(mm_mprotect(mm, a + PMD_SIZE / 2, P, RW), 0);
	ASSERT_VMAS(mm, a, a + PMD_SIZE);
	fill_pattern(mm, a, PMD_SIZE, 6);
	check_pattern(mm, a, PMD_SIZE, 6);
	assert_audit_clean();
	mmput(mm);
}

Test(mmap, access_across_vma_boundaries)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 6 * P, RW, 0);
	fill_pattern(mm, a, 6 * P, 9);
	cr_assert_eq(mm_mprotect(mm, a + 2 * P, 2 * P, PROT_READ), 0);
	cr_assert_eq(nr_vmas(mm), 3);
	/* A read may span VMAs of different protections. */
	check_pattern(mm, a, 6 * P, 9);
	/* A write may span adjacent writable VMAs only; the read-only middle stops it whole. */
	cr_assert_eq(cpu_memset(mm, a + P, 0, 4 * P), -EFAULT);
	check_pattern(mm, a, 6 * P, 9);
	cr_assert_eq(mm_mprotect(mm, a + 2 * P, 2 * P, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
	cr_assert_eq(nr_vmas(mm), 3);
	cr_assert_eq(cpu_memset(mm, a + P, 0, 4 * P), 0);
	check_zero(mm, a + P, 4 * P);
	mmput(mm);
}

/* ---- merging ---- */

Test(mmap, adjacent_mappings_merge)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 3 * P, RW, 0);
	fill_pattern(mm, a, 3 * P, 1);
	unsigned long b = map_anon(mm, 0, 5 * P, RW, 0);
	cr_assert_eq(b, a - 5 * P);
	ASSERT_VMAS(mm, b, a + 3 * P);

	/* A different protection does not merge. */
	unsigned long c = map_anon(mm, 0, 2 * P, PROT_READ, 0);
	cr_assert_eq(c, b - 2 * P);
	ASSERT_VMAS(mm, c, b, b, a + 3 * P);
	/* Until it is given the same protection. */
	cr_assert_eq(mm_mprotect(mm, c, 2 * P, RW), 0);
	ASSERT_VMAS(mm, c, a + 3 * P);

	/* MAP_FIXED mappings beside each other merge as well. */
	cr_assert_eq(mmap_anon(mm, FIX, 4 * P, RW, MAP_FIXED), (long)FIX);
	cr_assert_eq(mmap_anon(mm, FIX + 4 * P, 4 * P, RW, MAP_FIXED), (long)(FIX + 4 * P));
	cr_assert_eq(mmap_anon(mm, FIX - 2 * P, 2 * P, RW, MAP_FIXED_NOREPLACE),
		     (long)(FIX - 2 * P));
	ASSERT_VMAS(mm, FIX - 2 * P, FIX + 8 * P, c, a + 3 * P);
	check_pattern(mm, a, 3 * P, 1);
	mmput(mm);
}

Test(mmap, map_fixed_in_the_middle_merges_back)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * P, RW, 0);
	fill_pattern(mm, a, 8 * P, 1);
	/* Replacing the middle with a compatible mapping leaves one VMA (vma_merge). */
	cr_assert_eq(mmap_anon(mm, a + 2 * P, 4 * P, RW, MAP_FIXED), (long)(a + 2 * P));
	ASSERT_VMAS(mm, a, a + 8 * P);
	mmput(mm);
}

Test(mmap, mprotect_middle_then_back_merges)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * P, RW, 0);
	fill_pattern(mm, a, 8 * P, 4);
	ASSERT_VMAS(mm, a, a + 8 * P);

	cr_assert_eq(mm_mprotect(mm, a + 2 * P, 3 * P, PROT_READ), 0);
	ASSERT_VMAS(mm, a, a + 2 * P, a + 2 * P, a + 5 * P, a + 5 * P, a + 8 * P);
	assert_fault(mm, a + 2 * P, true);
	assert_fault(mm, a + 5 * P - 1, true);
	assert_rw_ok(mm, a + 2 * P - 1);
	assert_rw_ok(mm, a + 5 * P);

	cr_assert_eq(mm_mprotect(mm, a + 2 * P, 3 * P, RW), 0);
	ASSERT_VMAS(mm, a, a + 8 * P);
	check_pattern(mm, a, 8 * P, 4);

	/* The edges: protect the head, then the tail, then everything back. */
	cr_assert_eq(mm_mprotect(mm, a, P, PROT_NONE), 0);
	cr_assert_eq(mm_mprotect(mm, a + 7 * P, P, PROT_READ), 0);
	ASSERT_VMAS(mm, a, a + P, a + P, a + 7 * P, a + 7 * P, a + 8 * P);
	cr_assert_eq(mm_mprotect(mm, a, 8 * P, RW), 0);
	ASSERT_VMAS(mm, a, a + 8 * P);
	check_pattern(mm, a, 8 * P, 4);
	mmput(mm);
}

/* mm_dump() prints one "VMA <start>-<end> ..." line per VMA (mm/ptdump.c). */
static size_t dump_vmas(struct mm_struct *mm, unsigned long *starts, unsigned long *ends,
			size_t max)
{
	FILE *f = tmpfile();
	cr_assert_not_null(f);
	mm_dump(mm, f);
	rewind(f);
	char line[512];
	size_t n = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		if (sscanf(line, " VMA %lx-%lx", &s, &e) == 2) {
			cr_assert_lt(n, max, "too many VMA lines");
			starts[n] = s;
			ends[n] = e;
			n++;
		}
	}
	fclose(f);
	return n;
}

Test(mmap, mm_dump_shows_merged_and_split_vmas)
{
	struct mm_struct *mm = new_mm();
	unsigned long st[8], en[8];
	unsigned long a = map_anon(mm, 0, 4 * P, RW, 0);
	unsigned long b = map_anon(mm, 0, 4 * P, RW, 0);
	cr_assert_eq(b, a - 4 * P);
	fill_pattern(mm, b, 8 * P, 1);
	cr_assert_eq(dump_vmas(mm, st, en, 8), 1UL, "two adjacent RW mappings: want one VMA line");
	cr_assert_eq(st[0], b);
	cr_assert_eq(en[0], a + 4 * P);

	cr_assert_eq(mm_mprotect(mm, b + 2 * P, 4 * P, PROT_READ), 0);
	cr_assert_eq(dump_vmas(mm, st, en, 8), 3UL);
	cr_assert_eq(st[0], b);
	cr_assert_eq(en[0], b + 2 * P);
	cr_assert_eq(st[1], b + 2 * P);
	cr_assert_eq(en[1], b + 6 * P);
	cr_assert_eq(st[2], b + 6 * P);
	cr_assert_eq(en[2], a + 4 * P);

	cr_assert_eq(mm_mprotect(mm, b + 2 * P, 4 * P, RW), 0);
	cr_assert_eq(dump_vmas(mm, st, en, 8), 1UL);
	cr_assert_eq(st[0], b);
	cr_assert_eq(en[0], a + 4 * P);

	cr_assert_eq(mm_munmap(mm, b + 3 * P, P), 0);
	cr_assert_eq(dump_vmas(mm, st, en, 8), 2UL);
	cr_assert_eq(en[0], b + 3 * P);
	cr_assert_eq(st[1], b + 4 * P);
	check_pattern(mm, b, 3 * P, 1);
	mmput(mm);
}

/* ---- mprotect and the CPU ---- */

Test(mmap, mprotect_controls_cpu_write)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * P, RW, 0);
	fill_pattern(mm, a, 4 * P, 12);

	cr_assert_eq(mm_mprotect(mm, a, 4 * P, PROT_READ), 0);
	for (int i = 0; i < 4; i++)
		assert_fault(mm, a + i * P + 17, true);
	uint64_t v = 1;
	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, a, 1, &v), -EFAULT);
	cr_assert_eq(cpu_memset(mm, a, 0, 4 * P), -EFAULT);
	check_pattern(mm, a, 4 * P, 12);
	cr_assert_eq(anon_pages(mm), 4);

	cr_assert_eq(mm_mprotect(mm, a, 4 * P, RW), 0);
	check_pattern(mm, a, 4 * P, 12);
	fill_pattern(mm, a, 4 * P, 13);
	check_pattern(mm, a, 4 * P, 13);
	cr_assert_eq(anon_pages(mm), 4);

	/* A never-written read-only mapping made writable: writes work and allocate. */
	unsigned long b = map_anon(mm, 0, 2 * P, PROT_READ, 0);
	check_zero(mm, b, 2 * P);
	assert_fault(mm, b, true);
	cr_assert_eq(mm_mprotect(mm, b, 2 * P, RW), 0);
	fill_pattern(mm, b, 2 * P, 14);
	check_pattern(mm, b, 2 * P, 14);
	cr_assert_eq(anon_pages(mm), 6);
	mmput(mm);
}

Test(mmap, prot_none_round_trip)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * P, RW, 0);
	fill_pattern(mm, a, 4 * P, 21);
	uint64_t pm[4];
	cr_assert_eq(mm_pagemap_read(mm, a, 4, pm), 0);

	cr_assert_eq(mm_mprotect(mm, a, 4 * P, PROT_NONE), 0);
	for (int i = 0; i < 4; i++) {
		assert_fault(mm, a + i * P, false);
		assert_fault(mm, a + i * P + P - 1, true);
	}
	/* The pages are still there (PROT_NONE entries are present to the OS). */
	cr_assert_eq(anon_pages(mm), 4);
	uint64_t pm2[4];
	cr_assert_eq(mm_pagemap_read(mm, a, 4, pm2), 0);
	for (int i = 0; i < 4; i++) {
		cr_assert(pm2[i] & PM_PRESENT, "PROT_NONE page %d not present in pagemap", i);
		cr_assert_eq(pm2[i] & PM_PFRAME_MASK, pm[i] & PM_PFRAME_MASK);
	}

	cr_assert_eq(mm_mprotect(mm, a, 4 * P, PROT_READ), 0);
	check_pattern(mm, a, 4 * P, 21);
	cr_assert_eq(mm_mprotect(mm, a, 4 * P, PROT_NONE), 0);
	cr_assert_eq(mm_mprotect(mm, a, 4 * P, RW), 0);
	check_pattern(mm, a, 4 * P, 21);
	assert_rw_ok(mm, a + 3 * P);
	mmput(mm);
}

Test(mmap, mprotect_over_a_hole)
{
	struct mm_struct *mm = new_mm();
	cr_assert_eq(mmap_anon(mm, FIX, 4 * P, RW, MAP_FIXED), (long)FIX);
	cr_assert_eq(mmap_anon(mm, FIX + 8 * P, 4 * P, RW, MAP_FIXED), (long)(FIX + 8 * P));
	fill_pattern(mm, FIX, 4 * P, 31);
	fill_pattern(mm, FIX + 8 * P, 4 * P, 32);

	/* Wholly in the hole: -ENOMEM, nothing changed. */
	cr_assert_eq(mm_mprotect(mm, FIX + 4 * P, 4 * P, PROT_READ), -ENOMEM);
	/* Starting in the hole: -ENOMEM before anything is changed. */
	cr_assert_eq(mm_mprotect(mm, FIX + 6 * P, 4 * P, PROT_READ), -ENOMEM);
	assert_rw_ok(mm, FIX + 8 * P);
	ASSERT_VMAS(mm, FIX, FIX + 4 * P, FIX + 8 * P, FIX + 12 * P);

	/* Starting mapped and running into the hole: as Linux, the part before the
	 * hole has been changed when -ENOMEM comes back. */
	cr_assert_eq(mm_mprotect(mm, FIX + 2 * P, 4 * P, PROT_READ), -ENOMEM);
	assert_rw_ok(mm, FIX + P);
	assert_fault(mm, FIX + 2 * P, true);
	assert_fault(mm, FIX + 4 * P - 1, true);
	ASSERT_VMAS(mm, FIX, FIX + 2 * P, FIX + 2 * P, FIX + 4 * P, FIX + 8 * P, FIX + 12 * P);

	/* Spanning both mappings: Linux changes the first and stops at the hole,
	 * so the second keeps its protection. */
	cr_assert_eq(mm_mprotect(mm, FIX, 12 * P, PROT_READ), -ENOMEM);
	assert_fault(mm, FIX, true);
	assert_rw_ok(mm, FIX + 8 * P);
	check_pattern(mm, FIX, 4 * P, 31);
	check_pattern(mm, FIX + 8 * P, 4 * P, 32);
	mmput(mm);
}

/* ---- teardown ---- */

Test(mmap, mmput_frees_every_page)
{
	unsigned long total = uhmm_totalram_pages(machine);
	/* The zero page and the hugetlb pool are never free. */
	unsigned long reserved = uhmm_nr_reserved_pages(machine) + hugetlb_pool_pages(machine);
	cr_assert_eq(uhmm_nr_free_pages(machine) + reserved, total);

	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 64 * P, RW, MAP_POPULATE);
	fill_pattern(mm, a, 64 * P, 1);
	unsigned long b = map_anon(mm, 0, 16 * P, PROT_READ, MAP_POPULATE);
	check_zero(mm, b, 16 * P);
	unsigned long t = map_thp(mm, 2 * PMD_SIZE);
	fill_pattern(mm, t, 2 * PMD_SIZE, 2);
	cr_assert_eq(mmap_anon(mm, FIX, 8 * P, RW, MAP_FIXED), (long)FIX);
	fill_pattern(mm, FIX, 8 * P, 3);
	cr_assert_eq(mm_mprotect(mm, FIX + 2 * P, 2 * P, PROT_NONE), 0);
	cr_assert_eq(mmap_anon(mm, 0x7000000000UL, P, RW, 0), 0x7000000000L);
	fill_pattern(mm, 0x7000000000UL, P, 4);
	/* Far apart, so that several page-table pages at every level exist. */
	cr_assert_eq(mmap_anon(mm, TASK_SIZE - P, P, RW, MAP_FIXED), (long)(TASK_SIZE - P));
	fill_pattern(mm, TASK_SIZE - P, P, 5);

	/* 64 + 1024 (THP) + 8 + 1 + 1; the zero-page mapping is not counted. */
	cr_assert_eq(anon_pages(mm), 1098);
	cr_assert_leq(uhmm_nr_free_pages(machine) + reserved, total - 1098);
	assert_audit_clean();

	mmput(mm);
	cr_assert_eq(uhmm_nr_free_pages(machine) + reserved, total, "%lu pages leaked",
		     total - reserved - uhmm_nr_free_pages(machine));
}

Test(mmap, two_mms_are_independent)
{
	struct mm_struct *mm1 = new_mm();
	struct mm_struct *mm2 = new_mm();
	cr_assert_eq(mmap_anon(mm1, FIX, 4 * P, RW, MAP_FIXED), (long)FIX);
	cr_assert_eq(mmap_anon(mm2, FIX, 4 * P, RW, MAP_FIXED), (long)FIX);
	fill_pattern(mm1, FIX, 4 * P, 1);
	fill_pattern(mm2, FIX, 4 * P, 2);
	cr_assert_eq(mm_munmap(mm1, FIX, 2 * P), 0);
	check_pattern(mm2, FIX, 4 * P, 2);
	assert_fault(mm1, FIX, false);
	cr_assert_eq(anon_pages(mm1), 2);
	cr_assert_eq(anon_pages(mm2), 4);
	mmput(mm1);
	check_pattern(mm2, FIX, 4 * P, 2);
	mmput(mm2);
}

/* ---- mmap of a device: mm_mmap_device() and vm_insert_page() ---- */

struct insert_ctx {
	int fail_after; /* return -ENOMEM after inserting this many pages (-1: never) */
	int inserted;
	unsigned long pfns[8];
};

/* A driver's f_op->mmap: zeroed pages in the VMA (test_hmm's dmirror_fops_mmap). */
static int insert_zeroed_pages(struct vm_area_struct *vma, void *priv)
{
	struct insert_ctx *ctx = priv;

	cr_assert_eq(vma->vm_private_data, priv);
	for (unsigned long addr = vma->vm_start; addr < vma->vm_end; addr += P) {
		struct page *page;

		if (ctx->inserted == ctx->fail_after)
			return -ENOMEM;
		page = alloc_pages(machine, __GFP_ZERO, 0);
		cr_assert(page);
		cr_assert_eq(vm_insert_page(vma, addr, page), 0);
		cr_assert_eq(vm_insert_page(vma, addr, page), -EBUSY, "the PTE is taken");
		put_page(page);
		ctx->pfns[ctx->inserted++] = page_to_pfn(page);
	}
	return 0;
}

Test(mmap, device_mapping_maps_driver_pages)
{
	struct mm_struct *mm = new_mm(), *child;
	struct insert_ctx ctx = {.fail_after = -1};
	long addr = mm_mmap_device(mm, 0, 3 * P, RW, MAP_PRIVATE, insert_zeroed_pages, &ctx);
	struct vm_area_struct *vma;
	struct folio *folio;
	uint8_t byte = 7;

	cr_assert_gt(addr, 0, "mm_mmap_device: %ld", addr);
	cr_assert_eq(ctx.inserted, 3);
	vma = vma_lookup(mm, (unsigned long)addr);
	cr_assert(vma && vma->vm_start == (unsigned long)addr && vma->vm_end == (unsigned long)addr + 3 * P);
	cr_assert_eq(vma->vm_flags & (VM_MIXEDMAP | VM_READ | VM_WRITE | VM_SHARED),
		     VM_MIXEDMAP | VM_READ | VM_WRITE);
	cr_assert(!vma->vm_file);
	for (int i = 0; i < 3; i++) {
		folio = page_folio(pfn_to_page(ctx.pfns[i]));
		cr_assert_eq(pfn_at(mm, (unsigned long)addr + (unsigned long)i * P), ctx.pfns[i]);
		cr_assert_eq(folio_ref_count(folio), 1, "only the PTE holds the page");
		cr_assert_eq(folio_mapcount(folio), 1);
		cr_assert(!folio_test_anon(folio));
	}
	cr_assert_eq(mm_get_rss(mm, MM_FILEPAGES), 3);
	check_zero(mm, (unsigned long)addr, 3 * P);
	assert_audit_clean();

	/* fork copies the entries (vma_needs_copy() for VM_MIXEDMAP). */
	child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	cr_assert_eq(pfn_at(child, (unsigned long)addr), ctx.pfns[0]);
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(ctx.pfns[0]))), 2);
	assert_audit_clean();
	mmput(child);

	/* Private: a write copies the driver page into an anonymous one. */
	cr_assert_eq(cpu_write(mm, (unsigned long)addr + P, &byte, 1), 0);
	cr_assert(folio_test_anon(folio_at(mm, (unsigned long)addr + P)));
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(ctx.pfns[1]))), 0, "freed");
	cr_assert_eq(mm_get_rss(mm, MM_FILEPAGES), 2);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 1);
	assert_audit_clean();
	cr_assert_eq(mm_munmap(mm, (unsigned long)addr, 3 * P), 0);
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(ctx.pfns[0]))), 0);
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(ctx.pfns[2]))), 0);
	mmput(mm);
}

Test(mmap, device_mapping_errors)
{
	struct mm_struct *mm = new_mm();
	struct insert_ctx ctx = {.fail_after = 2};
	unsigned long anon = map_anon(mm, 0, P, RW, 0);
	struct page *page;

	fill_pattern(mm, anon, P, 1);
	long addr;
	uint8_t byte;

	/* The driver fails half way: the VMA and the pages it inserted go. */
	cr_assert_eq(mm_mmap_device(mm, FIX, 4 * P, RW, MAP_SHARED | MAP_FIXED, insert_zeroed_pages,
				    &ctx),
		     -ENOMEM);
	cr_assert_eq(ctx.inserted, 2);
	cr_assert_null(vma_lookup(mm, FIX));
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(ctx.pfns[0]))), 0);
	cr_assert_eq(mm_get_rss(mm, MM_FILEPAGES), 0);

	ctx = (struct insert_ctx){.fail_after = -1};
	cr_assert_eq(mm_mmap_device(mm, 0, 0, RW, MAP_SHARED, insert_zeroed_pages, &ctx), -EINVAL);
	cr_assert_eq(mm_mmap_device(mm, 0, P, RW, MAP_SHARED | MAP_ANONYMOUS, insert_zeroed_pages,
				    &ctx),
		     -EINVAL);
	cr_assert_eq(mm_mmap_device(mm, 0, P, RW, MAP_SHARED_VALIDATE, insert_zeroed_pages, &ctx),
		     -EINVAL);
	cr_assert_eq(mm_mmap_device(mm, FIX + 1, P, RW, MAP_SHARED | MAP_FIXED, insert_zeroed_pages,
				    &ctx),
		     -EINVAL);
	/* do_mmap(): a file whose f_op has no ->mmap is -ENODEV. */
	cr_assert_eq(mm_mmap_device(mm, 0, P, RW, MAP_SHARED, NULL, &ctx), -ENODEV);
	cr_assert_eq(mm_mmap_device(mm, anon, P, RW, MAP_SHARED | MAP_FIXED_NOREPLACE,
				    insert_zeroed_pages, &ctx),
		     -EEXIST);
	cr_assert_eq(ctx.inserted, 0);

	/* A shared device mapping is writable in place. */
	addr = mm_mmap_device(mm, 0, P, RW, MAP_SHARED, insert_zeroed_pages, &ctx);
	cr_assert_gt(addr, 0);
	byte = 9;
	cr_assert_eq(cpu_write(mm, (unsigned long)addr, &byte, 1), 0);
	cr_assert_eq(pfn_at(mm, (unsigned long)addr), ctx.pfns[0], "no copy");
	cr_assert_eq(((uint8_t *)page_address(pfn_to_page(ctx.pfns[0])))[0], 9);

	/* vm_insert_page() refuses what is not a driver page, or outside the VMA. */
	mmap_write_lock(mm);
	{
		struct vm_area_struct *vma = vma_lookup(mm, (unsigned long)addr);

		page = alloc_pages(machine, 0, 0);
		cr_assert(page);
		cr_assert_eq(vm_insert_page(vma, (unsigned long)addr + P, page), -EFAULT);
		cr_assert_eq(vm_insert_page(vma, (unsigned long)addr - P, page), -EFAULT);
		cr_assert_eq(vm_insert_page(vma, (unsigned long)addr, folio_head(folio_at(mm, anon))),
			     -EINVAL, "an anonymous page");
		__free_pages(page, 0);
		cr_assert_eq(vm_insert_page(vma, (unsigned long)addr, page), -EINVAL, "a free page");
		cr_assert_eq(vm_insert_page(vma, (unsigned long)addr, pfn_to_page(uhmm_zero_pfn(machine))),
			     -EINVAL, "the zero page");
	}
	mmap_write_unlock(mm);
	mmput(mm);
}
