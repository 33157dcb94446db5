/* SPDX-License-Identifier: MIT */
/*
 * tests/test_introspect.c - /proc/pid/pagemap, /proc/kpageflags,
 * /proc/kpagecount, /proc/pid/smaps_rollup, the RSS counters and mm_dump().
 *
 * The expected values are Linux's (fs/proc/task_mmu.c, fs/proc/page.c):
 *  - pagemap: a hole or an untouched page reads 0 (PM_SOFT_DIRTY aside); a
 *    present page has PM_PRESENT and its PFN; PM_MMAP_EXCLUSIVE when the page
 *    is mapped once; the shared zero page is not a "normal" page
 *    (vm_normal_page() is NULL), so it has neither PM_MMAP_EXCLUSIVE nor
 *    PM_FILE; a PROT_NONE entry is still present; each 4 KiB entry of a
 *    PMD-mapped THP has PFN = PMD PFN + index.
 *  - kpageflags: folio-level flags are reported on every page of a folio;
 *    KPF_COMPOUND_HEAD / TAIL and KPF_THP on an anonymous large folio;
 *    KPF_ZERO_PAGE on the zero page (and KPF_ZERO_PAGE | KPF_THP on the huge
 *    zero folio); KPF_BUDDY on the first page of each free buddy block only;
 *    KPF_NOPAGE alone for a PFN that no memory backs.
 *  - smaps: the zero pages are not counted (they are not normal pages);
 *    PMD-mapped THPs count in AnonHugePages; pages written are dirty.
 */
#include "helpers.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

TestSuite(introspect, .init = machine_setup, .fini = machine_teardown);

#define KPF(bit) (1ULL << (bit))
#define PM_FLAG_BITS (PM_PRESENT | PM_SWAP | PM_FILE | PM_MMAP_EXCLUSIVE)

static unsigned long pm_pfn(uint64_t e)
{
	return (unsigned long)(e & PM_PFRAME_MASK);
}

static void write_byte(struct mm_struct *mm, unsigned long addr, uint8_t v)
{
	cr_assert_eq(cpu_write(mm, addr, &v, 1), 0, "cpu_write(%#lx)", addr);
}

static uint8_t read_byte(struct mm_struct *mm, unsigned long addr)
{
	uint8_t v = 0xa5;

	cr_assert_eq(cpu_read(mm, addr, &v, 1), 0, "cpu_read(%#lx)", addr);
	return v;
}

/* The pagemap entry of a page that should be an exclusive anonymous page. */
static unsigned long expect_anon_entry(struct mm_struct *mm, unsigned long addr)
{
	uint64_t e = pagemap(mm, addr);
	unsigned long pfn = pm_pfn(e);

	cr_assert(e & PM_PRESENT, "%#lx: pagemap %#llx lacks PM_PRESENT", addr,
		  (unsigned long long)e);
	cr_assert(e & PM_MMAP_EXCLUSIVE, "%#lx: pagemap %#llx lacks PM_MMAP_EXCLUSIVE", addr,
		  (unsigned long long)e);
	cr_assert(!(e & (PM_SWAP | PM_FILE)), "%#lx: pagemap %#llx has PM_SWAP/PM_FILE", addr,
		  (unsigned long long)e);
	cr_assert(pfn_valid(pfn), "%#lx: pfn %#lx not valid", addr, pfn);
	cr_assert(!is_zero_pfn(pfn), "%#lx: pfn %#lx is the zero page", addr, pfn);
	return pfn;
}

/* ------------------------------------------------------------------ */
/* pagemap                                                             */
/* ------------------------------------------------------------------ */

Test(introspect, pagemap_none)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint64_t e;

	/* Inside a VMA but never touched: nothing but, perhaps, soft-dirty. */
	e = pagemap(mm, addr + 3 * PAGE_SIZE);
	cr_assert_eq(e & ~PM_SOFT_DIRTY, 0, "untouched page: pagemap %#llx", (unsigned long long)e);
	/* Outside every VMA: exactly 0 (pagemap_pte_hole with no vma). */
	e = pagemap(mm, addr + 16 * PAGE_SIZE);
	cr_assert_eq(e, 0, "hole: pagemap %#llx", (unsigned long long)e);
	e = pagemap(mm, 0x1000);
	cr_assert_eq(e, 0, "low hole: pagemap %#llx", (unsigned long long)e);

	/* Reading pagemap faults nothing in. */
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);

	/* An unaligned start is -EINVAL (pagemap_read wants 8-byte entries at page offsets). */
	cr_assert_eq(mm_pagemap_read(mm, addr + 1, 1, &e), -EINVAL);
	mmput(mm);
}

Test(introspect, pagemap_zero_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long ro = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ, 0);
	uint64_t e;

	/* A read fault in a non-THP anonymous VMA maps the shared zero page. */
	cr_assert_eq(read_byte(mm, addr + 5 * PAGE_SIZE + 17), 0);
	e = pagemap(mm, addr + 5 * PAGE_SIZE);
	cr_assert(e & PM_PRESENT, "zero page: pagemap %#llx", (unsigned long long)e);
	cr_assert_eq(pm_pfn(e), uhmm_zero_pfn(machine), "zero page: pfn %#lx, zero pfn %#lx",
		     pm_pfn(e), uhmm_zero_pfn(machine));
	cr_assert(is_zero_pfn(pm_pfn(e)));
	/* Not a normal page: no PM_MMAP_EXCLUSIVE, no PM_FILE, no PM_SWAP. */
	cr_assert(!(e & (PM_MMAP_EXCLUSIVE | PM_FILE | PM_SWAP)), "zero page: pagemap %#llx",
		  (unsigned long long)e);

	/* The same in a read-only VMA. */
	cr_assert_eq(read_byte(mm, ro), 0);
	e = pagemap(mm, ro);
	cr_assert(e & PM_PRESENT);
	cr_assert_eq(pm_pfn(e), uhmm_zero_pfn(machine));

	/* A write over the zero page replaces it with a fresh exclusive page (COW). */
	write_byte(mm, addr + 5 * PAGE_SIZE + 17, 0x5a);
	expect_anon_entry(mm, addr + 5 * PAGE_SIZE);
	cr_assert_eq(read_byte(mm, addr + 5 * PAGE_SIZE + 17), 0x5a);
	cr_assert_eq(read_byte(mm, addr + 5 * PAGE_SIZE + 16), 0);
	mmput(mm);
}

Test(introspect, pagemap_anon_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long pfn, pfn2;
	uint8_t *bytes;

	write_byte(mm, addr + 2 * PAGE_SIZE + 100, 0x77);
	pfn = expect_anon_entry(mm, addr + 2 * PAGE_SIZE);
	/* The PFN is the page that holds the bytes. */
	bytes = page_address(pfn_to_page(pfn));
	cr_assert_eq(bytes[100], 0x77);
	cr_assert_eq(bytes[99], 0);
	cr_assert(!folio_test_large(page_folio(pfn_to_page(pfn))));

	/* A second page gets a different frame; neighbours stay empty. */
	write_byte(mm, addr + 3 * PAGE_SIZE, 1);
	pfn2 = expect_anon_entry(mm, addr + 3 * PAGE_SIZE);
	cr_assert_neq(pfn, pfn2);
	cr_assert_eq(pagemap(mm, addr + PAGE_SIZE) & PM_FLAG_BITS, 0);
	cr_assert_eq(pagemap(mm, addr + 4 * PAGE_SIZE) & PM_FLAG_BITS, 0);

	/* Reading the page again does not move it. */
	cr_assert_eq(read_byte(mm, addr + 2 * PAGE_SIZE + 100), 0x77);
	cr_assert_eq(pm_pfn(pagemap(mm, addr + 2 * PAGE_SIZE)), pfn);

	/* After MADV_DONTNEED the entry is gone again. */
	cr_assert_eq(mm_madvise(mm, addr + 2 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED), 0);
	cr_assert_eq(pagemap(mm, addr + 2 * PAGE_SIZE) & PM_FLAG_BITS, 0);
	cr_assert_eq(pm_pfn(pagemap(mm, addr + 2 * PAGE_SIZE)), 0);
	mmput(mm);
}

Test(introspect, pagemap_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, 2 * HPAGE_PMD_SIZE);
	uint64_t *e = calloc(HPAGE_PMD_NR, sizeof(*e));
	unsigned long pfn0;
	uint8_t *bytes;

	cr_assert(e);
	write_byte(mm, addr + 7 * PAGE_SIZE + 3, 0x42);

	/* All 512 entries of the PMD in one call. */
	cr_assert_eq(mm_pagemap_read(mm, addr, HPAGE_PMD_NR, e), 0);
	pfn0 = pm_pfn(e[0]);
	cr_assert(pfn_valid(pfn0));
	cr_assert(IS_ALIGNED(pfn0, HPAGE_PMD_NR), "THP pfn %#lx not 2 MiB aligned", pfn0);
	for (unsigned long i = 0; i < HPAGE_PMD_NR; i++) {
		cr_assert((e[i] & (PM_PRESENT | PM_MMAP_EXCLUSIVE)) ==
				  (PM_PRESENT | PM_MMAP_EXCLUSIVE),
			  "entry %lu: %#llx", i, (unsigned long long)e[i]);
		cr_assert(!(e[i] & (PM_SWAP | PM_FILE)), "entry %lu: %#llx", i,
			  (unsigned long long)e[i]);
		cr_assert_eq(pm_pfn(e[i]), pfn0 + i, "entry %lu: pfn %#lx, want %#lx", i,
			     pm_pfn(e[i]), pfn0 + i);
	}
	cr_assert(folio_test_large(page_folio(pfn_to_page(pfn0))));
	cr_assert_eq(folio_order(page_folio(pfn_to_page(pfn0))), HPAGE_PMD_ORDER);
	bytes = page_address(pfn_to_page(pfn0 + 7));
	cr_assert_eq(bytes[3], 0x42);

	/* A single-entry read in the middle agrees with the bulk read. */
	cr_assert_eq(pagemap(mm, addr + 300 * PAGE_SIZE), e[300]);

	/* The second PMD was never touched. */
	cr_assert_eq(pagemap(mm, addr + HPAGE_PMD_SIZE) & PM_FLAG_BITS, 0);
	free(e);
	mmput(mm);
}

Test(introspect, pagemap_multi_page_read)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint64_t e[20], one;

	/* VMA [0, 8) pages, hole [8, 12), VMA [12, 16), then past the end. */
	cr_assert_eq(mm_munmap(mm, addr + 8 * PAGE_SIZE, 4 * PAGE_SIZE), 0);
	/* Anonymous pages 0, 3, 7 and 12 hold 0x40 + their index. */
	write_byte(mm, addr, 0x40);
	cr_assert_eq(read_byte(mm, addr + PAGE_SIZE), 0); /* page 1: zero page */
	write_byte(mm, addr + 3 * PAGE_SIZE, 0x43);
	write_byte(mm, addr + 7 * PAGE_SIZE, 0x47);
	write_byte(mm, addr + 12 * PAGE_SIZE, 0x4c);
	cr_assert_eq(read_byte(mm, addr + 15 * PAGE_SIZE), 0); /* page 15: zero page */

	memset(e, 0xff, sizeof(e));
	cr_assert_eq(mm_pagemap_read(mm, addr, 20, e), 0);
	for (unsigned long i = 0; i < 20; i++) {
		bool anon = i == 0 || i == 3 || i == 7 || i == 12;
		bool zero = i == 1 || i == 15;

		if (anon) {
			cr_assert_eq(e[i] & PM_FLAG_BITS, PM_PRESENT | PM_MMAP_EXCLUSIVE,
				     "page %lu: %#llx", i, (unsigned long long)e[i]);
			cr_assert(pfn_valid(pm_pfn(e[i])) && !is_zero_pfn(pm_pfn(e[i])));
			cr_assert_eq(((uint8_t *)page_address(pfn_to_page(pm_pfn(e[i]))))[0],
				     0x40 + i, "page %lu: wrong frame", i);
		} else if (zero) {
			cr_assert_eq(e[i] & PM_FLAG_BITS, PM_PRESENT, "page %lu: %#llx", i,
				     (unsigned long long)e[i]);
			cr_assert_eq(pm_pfn(e[i]), uhmm_zero_pfn(machine));
		} else if (i >= 8 && i < 12) {
			cr_assert_eq(e[i], 0, "hole page %lu: %#llx", i, (unsigned long long)e[i]);
		} else if (i >= 16) {
			cr_assert_eq(e[i], 0, "page %lu past the VMA: %#llx", i,
				     (unsigned long long)e[i]);
		} else {
			cr_assert_eq(e[i] & ~PM_SOFT_DIRTY, 0, "untouched page %lu: %#llx", i,
				     (unsigned long long)e[i]);
		}
		/* One page at a time gives the same answer. */
		cr_assert_eq(mm_pagemap_read(mm, addr + i * PAGE_SIZE, 1, &one), 0);
		cr_assert_eq(one, e[i], "page %lu: %#llx alone, %#llx in bulk", i,
			     (unsigned long long)one, (unsigned long long)e[i]);
	}
	/* The PFNs of distinct pages are distinct. */
	cr_assert_neq(pm_pfn(e[0]), pm_pfn(e[3]));
	cr_assert_neq(pm_pfn(e[3]), pm_pfn(e[7]));
	cr_assert_neq(pm_pfn(e[7]), pm_pfn(e[12]));

	/* A read that starts in a hole and ends in a VMA. */
	cr_assert_eq(mm_pagemap_read(mm, addr + 10 * PAGE_SIZE, 3, e), 0);
	cr_assert_eq(e[0], 0);
	cr_assert_eq(e[1], 0);
	cr_assert_eq(e[2] & PM_FLAG_BITS, PM_PRESENT | PM_MMAP_EXCLUSIVE);

	/* A zero-length read is fine. */
	cr_assert_eq(mm_pagemap_read(mm, addr, 0, e), 0);
	mmput(mm);
}

Test(introspect, pagemap_prot_none_still_present)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long thp = map_thp(mm, HPAGE_PMD_SIZE);
	unsigned long pfn, thp_pfn;
	uint64_t e;
	uint8_t v;

	write_byte(mm, addr + PAGE_SIZE, 0x11);
	pfn = expect_anon_entry(mm, addr + PAGE_SIZE);
	write_byte(mm, thp, 0x22);
	thp_pfn = expect_anon_entry(mm, thp);

	cr_assert_eq(mm_mprotect(mm, addr, 8 * PAGE_SIZE, PROT_NONE), 0);
	cr_assert_eq(mm_mprotect(mm, thp, HPAGE_PMD_SIZE, PROT_NONE), 0);

	/* The CPU may not touch them ... */
	cr_assert_eq(cpu_read(mm, addr + PAGE_SIZE, &v, 1), -EFAULT);
	cr_assert_eq(cpu_read(mm, thp, &v, 1), -EFAULT);
	/* ... but the entries still map the same pages (x86 _PAGE_PROTNONE). */
	e = pagemap(mm, addr + PAGE_SIZE);
	cr_assert_eq(e & PM_FLAG_BITS, PM_PRESENT | PM_MMAP_EXCLUSIVE, "pagemap %#llx",
		     (unsigned long long)e);
	cr_assert_eq(pm_pfn(e), pfn);
	e = pagemap(mm, thp + 9 * PAGE_SIZE);
	cr_assert_eq(e & PM_FLAG_BITS, PM_PRESENT | PM_MMAP_EXCLUSIVE, "THP pagemap %#llx",
		     (unsigned long long)e);
	cr_assert_eq(pm_pfn(e), thp_pfn + 9);
	/* An untouched PROT_NONE page is still not present. */
	cr_assert_eq(pagemap(mm, addr + 2 * PAGE_SIZE) & PM_FLAG_BITS, 0);

	/* The pages are still counted. */
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 1 + (long)HPAGE_PMD_NR);

	cr_assert_eq(mm_mprotect(mm, addr, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(mm_mprotect(mm, thp, HPAGE_PMD_SIZE, PROT_READ), 0);
	cr_assert_eq(read_byte(mm, addr + PAGE_SIZE), 0x11);
	cr_assert_eq(read_byte(mm, thp), 0x22);
	cr_assert_eq(pm_pfn(pagemap(mm, addr + PAGE_SIZE)), pfn);
	cr_assert_eq(pm_pfn(pagemap(mm, thp)), thp_pfn);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* kpageflags / kpagecount                                             */
/* ------------------------------------------------------------------ */

Test(introspect, kpageflags_anon_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	const uint64_t want =
		KPF(KPF_ANON) | KPF(KPF_MMAP) | KPF(KPF_UPTODATE) | KPF(KPF_SWAPBACKED);
	const uint64_t never = KPF(KPF_NOPAGE) | KPF(KPF_BUDDY) | KPF(KPF_ZERO_PAGE) |
			       KPF(KPF_COMPOUND_HEAD) | KPF(KPF_COMPOUND_TAIL) | KPF(KPF_THP) |
			       KPF(KPF_PGTABLE) | KPF(KPF_LOCKED) | KPF(KPF_SWAPCACHE);
	struct mm_smaps sm;
	unsigned long pfn;
	uint64_t f;

	write_byte(mm, addr, 9);
	pfn = expect_anon_entry(mm, addr);
	f = uhmm_kpageflags(pfn);
	cr_assert_eq(f & want, want, "anon page flags %#llx lack %#llx", (unsigned long long)f,
		     (unsigned long long)(want & ~f));
	cr_assert_eq(f & never, 0, "anon page flags %#llx have %#llx", (unsigned long long)f,
		     (unsigned long long)(f & never));
	cr_assert_eq(uhmm_kpagecount(pfn), 1);

	/*
	 * Written: dirty.  Linux keeps a fresh anonymous page's dirtiness in the
	 * PTE (pte_mkdirty in do_anonymous_page), not in PG_dirty, so
	 * KPF_DIRTY may or may not be set; smaps (pte_dirty || folio dirty)
	 * must see it either way.
	 */
	memset(&sm, 0, sizeof(sm));
	cr_assert_eq(mm_smaps_rollup(mm, &sm), 0);
	cr_assert_eq(sm.private_dirty, PAGE_SIZE);
	cr_assert_eq(sm.private_clean, 0);

	/* After munmap the page is free: no longer mapped or anonymous. */
	cr_assert_eq(mm_munmap(mm, addr, 4 * PAGE_SIZE), 0);
	f = uhmm_kpageflags(pfn);
	cr_assert_eq(f & (KPF(KPF_MMAP) | KPF(KPF_ANON) | KPF(KPF_NOPAGE)), 0,
		     "freed page flags %#llx", (unsigned long long)f);
	cr_assert_eq(uhmm_kpagecount(pfn), 0);
	mmput(mm);
}

Test(introspect, kpageflags_thp_head_and_tail)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, HPAGE_PMD_SIZE);
	const uint64_t folio_flags = KPF(KPF_ANON) | KPF(KPF_MMAP) | KPF(KPF_UPTODATE) |
				     KPF(KPF_SWAPBACKED) | KPF(KPF_THP);
	unsigned long pfn;
	uint64_t f;

	write_byte(mm, addr + 5, 5);
	pfn = expect_anon_entry(mm, addr);

	f = uhmm_kpageflags(pfn);
	cr_assert_eq(f & (folio_flags | KPF(KPF_COMPOUND_HEAD)),
		     folio_flags | KPF(KPF_COMPOUND_HEAD), "THP head flags %#llx",
		     (unsigned long long)f);
	cr_assert_eq(f & (KPF(KPF_COMPOUND_TAIL) | KPF(KPF_BUDDY) | KPF(KPF_ZERO_PAGE) |
			  KPF(KPF_NOPAGE)),
		     0, "THP head flags %#llx", (unsigned long long)f);
	cr_assert_eq(uhmm_kpagecount(pfn), 1);

	for (unsigned long i = 1; i < HPAGE_PMD_NR; i += 85) {
		f = uhmm_kpageflags(pfn + i);
		cr_assert_eq(f & (folio_flags | KPF(KPF_COMPOUND_TAIL)),
			     folio_flags | KPF(KPF_COMPOUND_TAIL), "THP tail %lu flags %#llx", i,
			     (unsigned long long)f);
		cr_assert_eq(f & (KPF(KPF_COMPOUND_HEAD) | KPF(KPF_BUDDY) | KPF(KPF_NOPAGE)), 0,
			     "THP tail %lu flags %#llx", i, (unsigned long long)f);
		/* PMD-mapped once: every page's mapcount is the entire mapcount, 1. */
		cr_assert_eq(uhmm_kpagecount(pfn + i), 1, "tail %lu", i);
	}
	f = uhmm_kpageflags(pfn + HPAGE_PMD_NR - 1);
	cr_assert(f & KPF(KPF_COMPOUND_TAIL));

	/*
	 * Unmapping the first 4 KiB splits the PMD; the folio stays large and
	 * PTE-mapped (mm_munmap's contract, as in Linux until deferred split).
	 */
	cr_assert_eq(mm_munmap(mm, addr, PAGE_SIZE), 0);
	cr_assert_eq(uhmm_kpagecount(pfn), 0);
	for (unsigned long i = 1; i < HPAGE_PMD_NR; i += 85) {
		uint64_t e = pagemap(mm, addr + i * PAGE_SIZE);

		cr_assert_eq(e & PM_FLAG_BITS, PM_PRESENT | PM_MMAP_EXCLUSIVE, "page %lu %#llx", i,
			     (unsigned long long)e);
		cr_assert_eq(pm_pfn(e), pfn + i);
		cr_assert_eq(uhmm_kpagecount(pfn + i), 1, "PTE-mapped tail %lu", i);
		f = uhmm_kpageflags(pfn + i);
		cr_assert(f & KPF(KPF_COMPOUND_TAIL), "PTE-mapped tail %lu flags %#llx", i,
			  (unsigned long long)f);
		cr_assert(f & KPF(KPF_MMAP));
	}
	cr_assert_eq(read_byte(mm, addr + PAGE_SIZE), 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)HPAGE_PMD_NR - 1);
	mmput(mm);
}

Test(introspect, kpageflags_zero_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long small = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long thp = map_thp(mm, HPAGE_PMD_SIZE);
	unsigned long zpfn = uhmm_zero_pfn(machine);
	uint64_t f, e;
	unsigned long hz;

	f = uhmm_kpageflags(zpfn);
	cr_assert(f & KPF(KPF_ZERO_PAGE), "zero page flags %#llx", (unsigned long long)f);
	cr_assert_eq(f & (KPF(KPF_ANON) | KPF(KPF_BUDDY) | KPF(KPF_NOPAGE) | KPF(KPF_THP)), 0,
		     "zero page flags %#llx", (unsigned long long)f);

	/* Mapping it does not make it anonymous. */
	cr_assert_eq(read_byte(mm, small), 0);
	cr_assert_eq(pm_pfn(pagemap(mm, small)), zpfn);
	f = uhmm_kpageflags(zpfn);
	cr_assert(f & KPF(KPF_ZERO_PAGE));
	cr_assert_eq(f & KPF(KPF_ANON), 0);

	/* A read fault in a MADV_HUGEPAGE VMA maps the huge zero folio (use_zero_page). */
	cr_assert_eq(read_byte(mm, thp + 4 * PAGE_SIZE), 0);
	e = pagemap(mm, thp + 4 * PAGE_SIZE);
	cr_assert(e & PM_PRESENT, "huge zero pagemap %#llx", (unsigned long long)e);
	cr_assert_eq(e & PM_MMAP_EXCLUSIVE, 0, "huge zero pagemap %#llx", (unsigned long long)e);
	/* Linux's pagemap_pmd_range() reports PM_FILE for the huge zero folio. */
	cr_assert(e & PM_FILE, "huge zero pagemap %#llx lacks PM_FILE", (unsigned long long)e);
	hz = pm_pfn(e) - 4;
	cr_assert_neq(pm_pfn(e), zpfn);
	cr_assert(pfn_valid(hz));
	cr_assert(is_huge_zero_folio(page_folio(pfn_to_page(hz))),
		  "pfn %#lx is not the huge zero folio", hz);
	cr_assert_eq(pm_pfn(pagemap(mm, thp)), hz);
	cr_assert_eq(pm_pfn(pagemap(mm, thp + HPAGE_PMD_SIZE - PAGE_SIZE)), hz + HPAGE_PMD_NR - 1);
	f = uhmm_kpageflags(hz);
	cr_assert_eq(f & (KPF(KPF_ZERO_PAGE) | KPF(KPF_THP)), KPF(KPF_ZERO_PAGE) | KPF(KPF_THP),
		     "huge zero folio flags %#llx", (unsigned long long)f);
	cr_assert_eq(f & (KPF(KPF_ANON) | KPF(KPF_BUDDY)), 0);

	/* Neither zero page counts in RSS. */
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	mmput(mm);
}

Test(introspect, kpageflags_buddy)
{
	unsigned long start = machine->start_pfn, end = start + machine->nr_pages;
	unsigned long heads = 0, want = 0;
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 64 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long pfn;

	/* Fragment the free lists a little. */
	for (unsigned long i = 0; i < 64; i += 3)
		write_byte(mm, addr + i * PAGE_SIZE, 1);
	pfn = expect_anon_entry(mm, addr);
	cr_assert_eq(uhmm_kpageflags(pfn) & KPF(KPF_BUDDY), 0, "mapped page has KPF_BUDDY");

	/* KPF_BUDDY marks exactly the first page of each free block. */
	for (unsigned long p = start; p < end; p++)
		if (uhmm_kpageflags(p) & KPF(KPF_BUDDY))
			heads++;
	for (unsigned int order = 0; order <= MAX_PAGE_ORDER; order++)
		want += uhmm_nr_free_blocks(machine, order);
	cr_assert_eq(heads, want, "%lu pages have KPF_BUDDY, %lu free blocks", heads, want);
	cr_assert_gt(heads, 0);

	/* A free block head is not mapped, not anonymous, and its count is 0. */
	for (unsigned long p = start; p < end; p++) {
		uint64_t f = uhmm_kpageflags(p);

		if (!(f & KPF(KPF_BUDDY)))
			continue;
		cr_assert_eq(
			f & (KPF(KPF_MMAP) | KPF(KPF_ANON) | KPF(KPF_NOPAGE) | KPF(KPF_ZERO_PAGE)),
			0, "free head %#lx flags %#llx", p, (unsigned long long)f);
		cr_assert_eq(uhmm_kpagecount(p), 0);
		break;
	}
	mmput(mm);
}

Test(introspect, kpageflags_invalid_pfn)
{
	unsigned long end = machine->start_pfn + machine->nr_pages;
	unsigned long bad[] = {end, end + 12345, 1UL << 40, ~0UL >> PAGE_SHIFT};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert(!pfn_valid(bad[i]), "pfn %#lx valid", bad[i]);
		cr_assert_eq(uhmm_kpageflags(bad[i]), KPF(KPF_NOPAGE), "pfn %#lx: %#llx", bad[i],
			     (unsigned long long)uhmm_kpageflags(bad[i]));
		cr_assert_eq(uhmm_kpagecount(bad[i]), 0, "pfn %#lx", bad[i]);
	}
	/* The last real page is not KPF_NOPAGE. */
	cr_assert_eq(uhmm_kpageflags(end - 1) & KPF(KPF_NOPAGE), 0);
}

Test(introspect, kpagecount_counts_mappings)
{
	struct mm_struct *a = new_mm(), *b = new_mm();
	unsigned long x = map_anon(a, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long y = map_anon(b, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long px, py;

	write_byte(a, x, 1);
	write_byte(b, y, 2);
	px = expect_anon_entry(a, x);
	py = expect_anon_entry(b, y);
	cr_assert_neq(px, py);
	cr_assert_eq(uhmm_kpagecount(px), 1);
	cr_assert_eq(uhmm_kpagecount(py), 1);
	cr_assert_eq(((uint8_t *)page_address(pfn_to_page(px)))[0], 1);
	cr_assert_eq(((uint8_t *)page_address(pfn_to_page(py)))[0], 2);
	mmput(a);
	cr_assert_eq(uhmm_kpagecount(px), 0);
	cr_assert_eq(uhmm_kpagecount(py), 1);
	mmput(b);
}

/* ------------------------------------------------------------------ */
/* smaps_rollup and RSS                                                */
/* ------------------------------------------------------------------ */

Test(introspect, smaps_rollup_mix)
{
	struct mm_struct *mm = new_mm();
	struct mm_smaps sm;
	unsigned long small, thp, written = 0;

	memset(&sm, 0xff, sizeof(sm));
	cr_assert_eq(mm_smaps_rollup(mm, &sm), 0);
	cr_assert_eq(sm.rss, 0);
	cr_assert_eq(sm.anonymous, 0);
	cr_assert_eq(sm.anon_huge_pages, 0);

	small = map_anon(mm, 0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	thp = map_thp(mm, 2 * HPAGE_PMD_SIZE);
	memset(&sm, 0xff, sizeof(sm));
	cr_assert_eq(mm_smaps_rollup(mm, &sm), 0);
	cr_assert_eq(sm.rss, 0, "nothing faulted yet: rss %lu", sm.rss);

	/* 10 written 4 KiB pages, 3 zero-page reads, 3 untouched. */
	for (unsigned long i = 0; i < 10; i++, written++)
		write_byte(mm, small + i * PAGE_SIZE, (uint8_t)(i + 1));
	for (unsigned long i = 10; i < 13; i++)
		cr_assert_eq(read_byte(mm, small + i * PAGE_SIZE), 0);
	/* One written THP; the other 2 MiB read: the huge zero folio. */
	write_byte(mm, thp + 1, 1);
	cr_assert_eq(read_byte(mm, thp + HPAGE_PMD_SIZE), 0);

	memset(&sm, 0xff, sizeof(sm));
	cr_assert_eq(mm_smaps_rollup(mm, &sm), 0);
	cr_assert_eq(sm.rss, written * PAGE_SIZE + HPAGE_PMD_SIZE, "rss %lu", sm.rss);
	cr_assert_eq(sm.anonymous, written * PAGE_SIZE + HPAGE_PMD_SIZE, "anonymous %lu",
		     sm.anonymous);
	cr_assert_eq(sm.anon_huge_pages, HPAGE_PMD_SIZE, "anon_huge_pages %lu", sm.anon_huge_pages);
	cr_assert_eq(sm.private_dirty, written * PAGE_SIZE + HPAGE_PMD_SIZE, "private_dirty %lu",
		     sm.private_dirty);
	cr_assert_eq(sm.private_clean, 0, "private_clean %lu", sm.private_clean);
	cr_assert_eq(sm.shared_clean, 0);
	cr_assert_eq(sm.shared_dirty, 0);
	cr_assert_eq(sm.swap, 0);
	cr_assert_eq(sm.lazy_free, 0);
	cr_assert_gt(sm.page_tables, 0);
	cr_assert_eq(sm.page_tables % PAGE_SIZE, 0, "page_tables %lu", sm.page_tables);

	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)(written + HPAGE_PMD_NR));
	cr_assert_eq(mm_get_rss(mm, MM_FILEPAGES), 0);
	cr_assert_eq(mm_get_rss(mm, MM_SWAPENTS), 0);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 0);

	/* Drop the small VMA: only the THP is left. */
	cr_assert_eq(mm_munmap(mm, small, 16 * PAGE_SIZE), 0);
	cr_assert_eq(mm_smaps_rollup(mm, &sm), 0);
	cr_assert_eq(sm.rss, HPAGE_PMD_SIZE);
	cr_assert_eq(sm.anon_huge_pages, HPAGE_PMD_SIZE);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)HPAGE_PMD_NR);

	/* MADV_DONTNEED on the THP: nothing resident. */
	cr_assert_eq(mm_madvise(mm, thp, 2 * HPAGE_PMD_SIZE, MADV_DONTNEED), 0);
	cr_assert_eq(mm_smaps_rollup(mm, &sm), 0);
	cr_assert_eq(sm.rss, 0);
	cr_assert_eq(sm.anonymous, 0);
	cr_assert_eq(sm.anon_huge_pages, 0);
	cr_assert_eq(sm.private_dirty, 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	mmput(mm);
}

Test(introspect, smaps_split_thp_not_anon_huge)
{
	struct mm_struct *mm = new_mm();
	unsigned long thp = map_thp(mm, HPAGE_PMD_SIZE);
	struct mm_smaps sm;

	write_byte(mm, thp, 1);
	/* Split the PMD by zapping one 4 KiB page: the rest is PTE-mapped. */
	cr_assert_eq(mm_madvise(mm, thp + 4 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED), 0);
	memset(&sm, 0, sizeof(sm));
	cr_assert_eq(mm_smaps_rollup(mm, &sm), 0);
	cr_assert_eq(sm.rss, HPAGE_PMD_SIZE - PAGE_SIZE, "rss %lu", sm.rss);
	cr_assert_eq(sm.anonymous, HPAGE_PMD_SIZE - PAGE_SIZE);
	/* AnonHugePages counts PMD mappings only. */
	cr_assert_eq(sm.anon_huge_pages, 0, "anon_huge_pages %lu", sm.anon_huge_pages);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)HPAGE_PMD_NR - 1);
	cr_assert_eq(pagemap(mm, thp + 4 * PAGE_SIZE) & PM_FLAG_BITS, 0);
	cr_assert_eq(read_byte(mm, thp), 1);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* mm_dump                                                             */
/* ------------------------------------------------------------------ */

static char *dump_to_string(struct mm_struct *mm)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert(f);
	mm_dump(mm, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert(buf);
	return buf;
}

static bool contains_hex(const char *text, unsigned long value)
{
	char needle[32];

	snprintf(needle, sizeof(needle), "%lx", value);
	return strcasestr(text, needle) != NULL;
}

static bool contains_any(const char *text, const char *const *words)
{
	for (; *words; words++)
		if (strcasestr(text, *words))
			return true;
	return false;
}

Test(introspect, mm_dump_describes_vmas_and_entries)
{
	static const char *const pmd_words[] = {"pmd", "2m", "huge", "thp", NULL};
	static const char *const pte_words[] = {"pte", "4k", NULL};
	struct mm_struct *mm = new_mm();
	unsigned long small = map_anon(mm, 0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long thp = map_thp(mm, HPAGE_PMD_SIZE);
	unsigned long ro = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ, 0);
	char *text;

	text = dump_to_string(mm);
	cr_assert(contains_hex(text, small), "dump lacks %#lx:\n%s", small, text);
	cr_assert(contains_hex(text, thp), "dump lacks %#lx:\n%s", thp, text);
	cr_assert(contains_hex(text, ro), "dump lacks %#lx:\n%s", ro, text);
	free(text);

	write_byte(mm, small + 2 * PAGE_SIZE, 1);
	write_byte(mm, small + 3 * PAGE_SIZE, 1);
	write_byte(mm, thp, 1);
	cr_assert_eq(read_byte(mm, ro), 0);

	text = dump_to_string(mm);
	cr_assert_gt(strlen(text), 0);
	cr_assert(contains_hex(text, small), "dump lacks %#lx:\n%s", small, text);
	cr_assert(contains_hex(text, thp), "dump lacks %#lx:\n%s", thp, text);
	cr_assert(contains_hex(text, ro), "dump lacks %#lx:\n%s", ro, text);
	/* The first mapped 4 KiB page and the THP appear as entries. */
	cr_assert(contains_hex(text, small + 2 * PAGE_SIZE), "dump lacks the PTE run at %#lx:\n%s",
		  small + 2 * PAGE_SIZE, text);
	cr_assert(contains_any(text, pmd_words), "dump has no PMD marker:\n%s", text);
	cr_assert(contains_any(text, pte_words), "dump has no PTE marker:\n%s", text);
	free(text);

	/* An empty mm dumps without crashing. */
	mmput(mm);
	mm = new_mm();
	text = dump_to_string(mm);
	free(text);
	mmput(mm);
}
