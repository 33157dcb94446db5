/* SPDX-License-Identifier: MIT */
/*
 * tests/test_hugetlb.c - MAP_HUGETLB on the machine's pool of 2 MiB pages:
 * the pool and its counters (HugePages_Total/Free/Rsvd/Surp), resizing it
 * (nr_hugepages), reservations at mmap time, MAP_NORESERVE and SIGBUS,
 * faults mapping whole huge pages, munmap/exit giving pages and
 * reservations back, fork with private copy-on-write, the errno of
 * unaligned calls, and pagemap/kpageflags/smaps.  Linux x86-64 semantics
 * with the default 2 MiB hstate.  The host kernel has no huge pages
 * configured, so the expected errno come from Linux's code, not a probe.
 */
#include "helpers.h"
#include "internal.h" /* the pool's free list */

#include <stdlib.h>
#include <string.h>

#define HPS HPAGE_SIZE
#define NR HPAGE_PMD_NR
#define RW (PROT_READ | PROT_WRITE)
#define HUGE_PRIV (MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB)
#define KPF(b) (1ULL << (b))

TestSuite(hugetlb, .init = machine_setup, .fini = machine_teardown);

/* ---- helpers ---- */

static struct hugetlb_stats stats(void)
{
	struct hugetlb_stats s;
	cr_assert_eq(uhmm_hugetlb_stats(machine, &s), 0);
	return s;
}

/* Assert the pool counters: total, free, reserved, surplus. */
#define assert_pool(t, f, r, s)                                                                    \
	do {                                                                                       \
		struct hugetlb_stats _s = stats();                                                 \
		cr_assert(_s.total == (t) && _s.free == (f) && _s.rsvd == (r) && _s.surp == (s),   \
			  "pool total %lu free %lu rsvd %lu surp %lu, want %lu %lu %lu %lu",       \
			  _s.total, _s.free, _s.rsvd, _s.surp, (unsigned long)(t),                 \
			  (unsigned long)(f), (unsigned long)(r), (unsigned long)(s));             \
	} while (0)

static long map_huge(struct mm_struct *mm, unsigned long addr, unsigned long len, int flags)
{
	return mm_mmap(mm, addr, len, RW, flags, NULL, 0);
}

static unsigned long map_huge_ok(struct mm_struct *mm, unsigned long len, int flags)
{
	long ret = map_huge(mm, 0, len, flags);
	cr_assert(ret > 0, "mmap(MAP_HUGETLB, %#lx) = %ld", len, ret);
	cr_assert(IS_ALIGNED((unsigned long)ret, HPS), "hugetlb mapping at %#lx", ret);
	return (unsigned long)ret;
}

static void write_u64(struct mm_struct *mm, unsigned long addr, uint64_t v)
{
	cr_assert_eq(cpu_write(mm, addr, &v, sizeof(v)), 0, "write at %#lx", addr);
}

static uint64_t read_u64(struct mm_struct *mm, unsigned long addr)
{
	uint64_t v;
	cr_assert_eq(cpu_read(mm, addr, &v, sizeof(v)), 0, "read at %#lx", addr);
	return v;
}

/* Assert [addr, addr + 2M) is mapped whole by one hugetlb folio; return its head pfn. */
static unsigned long assert_huge_mapped(struct mm_struct *mm, unsigned long addr, int mapcount)
{
	uint64_t *pm = malloc(NR * sizeof(*pm));
	cr_assert(pm);
	cr_assert_eq(mm_pagemap_read(mm, addr, NR, pm), 0);
	unsigned long head = (unsigned long)(pm[0] & PM_PFRAME_MASK);
	cr_assert(IS_ALIGNED(head, NR), "head pfn %#lx", head);
	for (unsigned long i = 0; i < NR; i++) {
		cr_assert(pm[i] & PM_PRESENT, "page %lu not present", i);
		cr_assert_eq(pm[i] & PM_PFRAME_MASK, head + i, "page %lu pfn", i);
		cr_assert_eq(!!(pm[i] & PM_MMAP_EXCLUSIVE), mapcount == 1, "page %lu exclusive bit",
			     i);
		cr_assert_eq(pm[i] & PM_FILE, 0);
	}
	free(pm);
	struct folio *folio = page_folio(pfn_to_page(head));
	cr_assert(folio_test_hugetlb(folio));
	cr_assert_eq(folio_order(folio), 9);
	cr_assert(folio_test_anon(folio));
	cr_assert_eq(folio_entire_mapcount(folio), mapcount);
	cr_assert_eq(folio_mapcount(folio), mapcount);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 100)), mapcount);
	cr_assert_eq(uhmm_kpagecount(head + 300), mapcount);
	return head;
}

/* ---- the pool ---- */

Test(hugetlb, default_pool)
{
	struct hugetlb_stats s = stats();
	cr_assert_eq(s.total, UHMM_DEFAULT_NR_HUGEPAGES);
	cr_assert_eq(s.free, 8);
	cr_assert_eq(s.rsvd, 0);
	cr_assert_eq(s.surp, 0);
	cr_assert_eq(s.nr_hugepages, 8);
	cr_assert_eq(s.hugepagesize, 2UL << 20);
	/* Pool pages are not free pages. */
	cr_assert_eq(uhmm_nr_free_pages(machine) + 1 + 8 * NR, uhmm_totalram_pages(machine));

	/* A free pool page: a compound hugetlb page, refcount 0, not buddy, not mapped. */
	struct folio *f = list_first_entry(&machine->hstate.free_list, struct folio, lru);
	unsigned long pfn = folio_pfn(f);
	cr_assert(folio_test_hugetlb(f));
	cr_assert_eq(folio_ref_count(f), 0);
	cr_assert_eq(uhmm_kpageflags(pfn), KPF(KPF_HUGE) | KPF(KPF_COMPOUND_HEAD));
	cr_assert_eq(uhmm_kpageflags(pfn + 511), KPF(KPF_HUGE) | KPF(KPF_COMPOUND_TAIL));
	cr_assert_eq(uhmm_kpagecount(pfn), 0);
	cr_assert_eq(uhmm_kpageflags(pfn + 3) & KPF(KPF_THP), 0);
}

Test(hugetlb, config_sizes)
{
	struct uhmm_machine_config cfg = {.ram_size = 64UL << 20};
	struct uhmm_machine *m = uhmm_machine_create(&cfg);
	struct hugetlb_stats s;
	cr_assert(!IS_ERR_OR_NULL(m));
	cr_assert_eq(uhmm_hugetlb_stats(m, &s), 0);
	cr_assert_eq(s.total, 2, "64 MiB: at most 1/16 of RAM by default"); /* 32 / 16 */
	cr_assert_eq(uhmm_machine_destroy(m), 0);

	cfg.ram_size = 4UL << 20;
	m = uhmm_machine_create(&cfg);
	cr_assert(!IS_ERR_OR_NULL(m));
	cr_assert_eq(uhmm_hugetlb_stats(m, &s), 0);
	cr_assert_eq(s.total, 0);
	cr_assert_eq(uhmm_nr_free_pages(m), 1023);
	cr_assert_eq(uhmm_machine_destroy(m), 0);

	cfg.ram_size = 32UL << 20;
	cfg.nr_hugepages = 100; /* more than RAM holds: as many as it can */
	m = uhmm_machine_create(&cfg);
	cr_assert(!IS_ERR_OR_NULL(m));
	cr_assert_eq(uhmm_hugetlb_stats(m, &s), 0);
	cr_assert_eq(s.total, 15, "16 blocks, one split for the zero page");
	cr_assert_eq(uhmm_nr_free_pages(m), 511);
	cr_assert_eq(uhmm_machine_destroy(m), 0);

	cfg.ram_size = 0;
	cfg.nr_hugepages = UHMM_NO_HUGEPAGES;
	m = uhmm_machine_create(&cfg);
	cr_assert(!IS_ERR_OR_NULL(m));
	cr_assert_eq(uhmm_hugetlb_stats(m, &s), 0);
	cr_assert_eq(s.total, 0);
	cr_assert_eq(uhmm_machine_destroy(m), 0);
	cr_assert_eq(uhmm_hugetlb_stats(NULL, &s), -EINVAL);
}

Test(hugetlb, resize_pool)
{
	unsigned long free0 = uhmm_nr_free_pages(machine);

	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 20), 20);
	assert_pool(20, 20, 0, 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 - 12 * NR);
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 3), 3);
	assert_pool(3, 3, 0, 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 + 5 * NR);
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 0), 0);
	assert_pool(0, 0, 0, 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 + 8 * NR);
	/* More than RAM: every free 2 MiB block, no more. */
	unsigned long blocks = uhmm_nr_free_blocks(machine, 9);
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 100000), (long)blocks);
	cr_assert_eq(uhmm_nr_free_blocks(machine, 9), 0);
	assert_audit_clean();
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 8), 8);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
}

Test(hugetlb, shrink_in_use_makes_surplus)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 2 * HPS, HUGE_PRIV);
	write_u64(mm, a, 1);
	assert_pool(8, 7, 1, 0);
	unsigned long free0 = uhmm_nr_free_pages(machine);

	/* One page in use and one reserved stay; the in-use one is surplus too. */
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 0), 0);
	assert_pool(2, 1, 1, 2);
	cr_assert_eq(stats().nr_hugepages, 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 + 6 * NR);
	assert_audit_clean();
	/* The reserved page still faults in. */
	write_u64(mm, a + HPS, 2);
	assert_pool(2, 0, 0, 2);
	/* Released surplus pages go back to the buddy allocator. */
	cr_assert_eq(mm_munmap(mm, a, HPS), 0);
	assert_pool(1, 0, 0, 1);
	mmput(mm);
	assert_pool(0, 0, 0, 0);
	cr_assert_eq(uhmm_nr_free_pages(machine) + 1, uhmm_totalram_pages(machine));
	/* Growing takes surplus back before allocating. */
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 8), 8);
}

/* ---- mmap ---- */

Test(hugetlb, mmap_rounds_and_reserves)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 3 * HPS - 4096, HUGE_PRIV);
	struct vm_area_struct *vma = find_vma(mm, a);

	cr_assert_eq(vma->vm_start, a);
	cr_assert_eq(vma->vm_end, a + 3 * HPS, "length rounded up to 2 MiB");
	cr_assert(vma->vm_flags & VM_HUGETLB);
	cr_assert(is_vm_hugetlb_page(vma));
	cr_assert_eq(huge_page_order_vma(vma), 9);
	cr_assert_eq(vma->vm_flags & VM_ACCOUNT, 0);
	assert_pool(8, 8, 3, 0);
	cr_assert_eq(pagemap(mm, a), 0);

	/* MAP_HUGE_2MB names the one pool; a hint is rounded up to 2 MiB. */
	long b = map_huge(mm, 0x10000000UL + 4096, HPS, HUGE_PRIV | MAP_HUGE_2MB);
	cr_assert_eq(b, 0x10000000L + (long)HPS);
	assert_pool(8, 8, 4, 0);
	assert_audit_clean();
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, mmap_errors_change_nothing)
{
	struct mm_struct *mm = new_mm();
	const unsigned long FIX = 0x40000000UL;

	cr_assert_eq(map_huge(mm, 0, HPS, HUGE_PRIV | MAP_HUGE_1GB), -EINVAL, "no 1 GiB pool");
	cr_assert_eq(map_huge(mm, 0, HPS, HUGE_PRIV | (16 << MAP_HUGE_SHIFT)), -EINVAL);
	cr_assert_eq(map_huge(mm, FIX + 4096, HPS, HUGE_PRIV | MAP_FIXED), -EINVAL);
	cr_assert_eq(map_huge(mm, FIX + 64 * 4096, HPS, HUGE_PRIV | MAP_FIXED), -EINVAL,
		     "MAP_FIXED must be 2 MiB aligned");
	cr_assert_eq(map_huge(mm, FIX + 64 * 4096, HPS, HUGE_PRIV | MAP_FIXED_NOREPLACE), -EINVAL);
	cr_assert_eq(map_huge(mm, 0, 0, HUGE_PRIV), -EINVAL);
	cr_assert_eq(map_huge(mm, 0, HPS, MAP_ANONYMOUS | MAP_HUGETLB), -EINVAL, "no type");
	/* Not enough free huge pages for the reservation: -ENOMEM. */
	cr_assert_eq(map_huge(mm, 0, 9 * HPS, HUGE_PRIV), -ENOMEM);
	cr_assert_eq(nr_vmas(mm), 0);
	assert_pool(8, 8, 0, 0);

	/* A failing MAP_FIXED leaves what was there. */
	cr_assert_eq(map_anon(mm, FIX, HPS, RW, MAP_FIXED), FIX);
	fill_pattern(mm, FIX, 4096, 7);
	unsigned long a = map_huge_ok(mm, 5 * HPS, HUGE_PRIV);
	assert_pool(8, 8, 5, 0);
	cr_assert_eq(map_huge(mm, FIX, 4 * HPS, HUGE_PRIV | MAP_FIXED), -ENOMEM);
	check_pattern(mm, FIX, 4096, 7);
	cr_assert_eq(nr_vmas(mm), 2);
	assert_pool(8, 8, 5, 0);
	/* Three fit. */
	cr_assert_eq(map_huge(mm, FIX, 3 * HPS, HUGE_PRIV | MAP_FIXED), (long)FIX);
	assert_pool(8, 8, 8, 0);
	check_zero(mm, FIX, 4096);
	assert_pool(8, 7, 7, 0);
	cr_assert_eq(mm_munmap(mm, a, 5 * HPS), 0);
	assert_pool(8, 7, 2, 0);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

/* ---- faults ---- */

Test(hugetlb, fault_maps_whole_zeroed_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 2 * HPS, HUGE_PRIV);

	/* A read fault allocates a zeroed page too: hugetlb has no zero page. */
	check_zero(mm, a + 12345, 100);
	assert_pool(8, 7, 1, 0);
	unsigned long head = assert_huge_mapped(mm, a, 1);
	struct folio *folio = page_folio(pfn_to_page(head));
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert(PageAnonExclusive(folio_head(folio)));
	check_zero(mm, a, HPS);

	/* The write reuses the exclusive page in place. */
	fill_pattern(mm, a, HPS, 3);
	cr_assert_eq(pfn_at(mm, a + HPS - 1), head + 511);
	check_pattern(mm, a, HPS, 3);
	assert_pool(8, 7, 1, 0);

	uint64_t kh = uhmm_kpageflags(head), kt = uhmm_kpageflags(head + 17);
	cr_assert(kh & KPF(KPF_HUGE) && kh & KPF(KPF_COMPOUND_HEAD) && kh & KPF(KPF_ANON) &&
			  kh & KPF(KPF_MMAP),
		  "head kpageflags %#llx", (unsigned long long)kh);
	cr_assert(kt & KPF(KPF_HUGE) && kt & KPF(KPF_COMPOUND_TAIL), "tail %#llx",
		  (unsigned long long)kt);
	cr_assert_eq((kh | kt) & KPF(KPF_THP), 0, "hugetlb is not THP");

	/* Not in Rss or AnonHugePages: Private_Hugetlb. */
	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.rss, 0);
	cr_assert_eq(s.anon_huge_pages, 0);
	cr_assert_eq(s.anonymous, 0);
	cr_assert_eq(s.private_hugetlb, HPS);
	cr_assert_eq(s.shared_hugetlb, 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);

	/* The second page on a write. */
	write_u64(mm, a + HPS + 8, 0x1234);
	assert_pool(8, 6, 0, 0);
	cr_assert_eq(smaps(mm).private_hugetlb, 2 * HPS);
	assert_huge_mapped(mm, a + HPS, 1);
	assert_audit_clean();

	/* rmap finds the mapping. */
	struct folio_mapping_info info[2];
	cr_assert_eq(folio_rmap_query(folio, info, 2), 1);
	cr_assert_eq(info[0].mm, mm);
	cr_assert_eq(info[0].address, a);
	cr_assert(info[0].pmd_mapped);

	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, noreserve_sigbus)
{
	struct mm_struct *mm = new_mm();
	unsigned long r = map_huge_ok(mm, 6 * HPS, HUGE_PRIV);
	/* MAP_NORESERVE maps more than the pool has and reserves nothing. */
	unsigned long n = map_huge_ok(mm, 4 * HPS, HUGE_PRIV | MAP_NORESERVE);
	assert_pool(8, 8, 6, 0);
	cr_assert(find_vma(mm, n)->vm_flags & VM_NORESERVE);

	write_u64(mm, n, 1);
	write_u64(mm, n + HPS, 2);
	assert_pool(8, 6, 6, 0);
	/* The other six are promised to the first mapping: SIGBUS. */
	uint64_t v = 3;
	cr_assert_eq(cpu_write(mm, n + 2 * HPS, &v, sizeof(v)), -EFAULT);
	cr_assert_eq(cpu_read(mm, n + 3 * HPS, &v, sizeof(v)), -EFAULT);
	cr_assert_eq(pagemap(mm, n + 2 * HPS), 0);
	assert_pool(8, 6, 6, 0);
	/* The reserved mapping still gets every page. */
	for (int i = 0; i < 6; i++)
		write_u64(mm, r + (unsigned long)i * HPS, 10 + (uint64_t)i);
	assert_pool(8, 0, 0, 0);
	assert_audit_clean();

	/* Freeing pages lets the NORESERVE fault succeed. */
	cr_assert_eq(mm_munmap(mm, r, 2 * HPS), 0);
	assert_pool(8, 2, 0, 0);
	write_u64(mm, n + 2 * HPS, 3);
	cr_assert_eq(read_u64(mm, n + 2 * HPS), 3);
	cr_assert_eq(read_u64(mm, n), 1);
	assert_pool(8, 1, 0, 0);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, populate_and_protection)
{
	struct mm_struct *mm = new_mm();
	long a = mm_mmap(mm, 0, 2 * HPS, PROT_READ, HUGE_PRIV | MAP_POPULATE, NULL, 0);
	cr_assert_gt(a, 0);
	assert_pool(8, 6, 0, 0);
	assert_huge_mapped(mm, (unsigned long)a, 1);
	uint64_t v = 1;
	cr_assert_eq(cpu_write(mm, (unsigned long)a, &v, sizeof(v)), -EFAULT, "read-only: SIGSEGV");
	check_zero(mm, (unsigned long)a, 64);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

/* ---- munmap ---- */

Test(hugetlb, munmap_alignment)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 4 * HPS, HUGE_PRIV);
	fill_pattern(mm, a, 4 * HPS, 5);
	assert_pool(8, 4, 0, 0);

	/* A split of a hugetlb VMA off a 2 MiB boundary: -EINVAL, nothing changed. */
	cr_assert_eq(mm_munmap(mm, a + 4096, HPS), -EINVAL);
	cr_assert_eq(mm_munmap(mm, a, 4096), -EINVAL);
	cr_assert_eq(mm_munmap(mm, a + HPS, HPS + 4096), -EINVAL);
	cr_assert_eq(nr_vmas(mm), 1);
	check_pattern(mm, a, 4 * HPS, 5);
	assert_pool(8, 4, 0, 0);

	/* Aligned: the second page goes back to the pool. */
	cr_assert_eq(mm_munmap(mm, a + HPS, HPS), 0);
	cr_assert_eq(nr_vmas(mm), 2);
	assert_pool(8, 5, 0, 0);
	cr_assert_eq(pagemap(mm, a + HPS), 0);
	check_at(mm, a, 0, HPS, 5);
	check_at(mm, a, 2 * HPS, 2 * HPS, 5);
	/* The length is not rounded up: a split off a 2 MiB boundary again. */
	cr_assert_eq(mm_munmap(mm, a + 3 * HPS, HPS - 4096), -EINVAL);
	assert_pool(8, 5, 0, 0);
	/* Past the VMA's end no split is needed. */
	cr_assert_eq(mm_munmap(mm, a + 3 * HPS, 2 * HPS), 0);
	assert_pool(8, 6, 0, 0);
	assert_audit_clean();
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, munmap_gives_back_unused_reservations)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 4 * HPS, HUGE_PRIV);
	write_u64(mm, a + HPS, 1);
	assert_pool(8, 7, 3, 0);
	cr_assert_eq(mm_munmap(mm, a, 2 * HPS), 0);
	assert_pool(8, 8, 2, 0);
	assert_audit_clean();
	cr_assert_eq(mm_munmap(mm, a + 2 * HPS, 2 * HPS), 0);
	assert_pool(8, 8, 0, 0);
	cr_assert_eq(nr_vmas(mm), 0);
	mmput(mm);
}

/* ---- fork ---- */

Test(hugetlb, fork_private_cow)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 3 * HPS, HUGE_PRIV);
	fill_pattern(mm, a, 2 * HPS, 1);
	assert_pool(8, 6, 1, 0);
	unsigned long h0 = pfn_at(mm, a), h1 = pfn_at(mm, a + HPS);

	struct mm_struct *child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	assert_pool(8, 6, 1, 0); /* the child reserves nothing */
	cr_assert_eq(assert_huge_mapped(child, a, 2), h0);
	cr_assert_eq(assert_huge_mapped(mm, a + HPS, 2), h1);
	struct folio *f0 = page_folio(pfn_to_page(h0));
	cr_assert_eq(folio_ref_count(f0), 2);
	cr_assert_not(PageAnonExclusive(folio_head(f0)));
	cr_assert_eq(smaps(mm).shared_hugetlb, 2 * HPS);
	cr_assert_eq(smaps(child).shared_hugetlb, 2 * HPS);
	check_pattern(child, a, 2 * HPS, 1);
	struct folio_mapping_info info[3];
	cr_assert_eq(folio_rmap_query(f0, info, 3), 2);
	assert_audit_clean();

	/* The child writes: it gets a copy of the whole 2 MiB page. */
	write_u64(child, a + 4096, 0xc0ffee);
	assert_pool(8, 5, 1, 0);
	cr_assert_neq(pfn_at(child, a), h0);
	assert_huge_mapped(child, a, 1);
	assert_huge_mapped(mm, a, 1);
	cr_assert_eq(folio_ref_count(f0), 1);
	cr_assert_eq(read_u64(child, a + 4096), 0xc0ffee);
	check_at(child, a, 0, 4096, 1);
	check_at(child, a, 4096 + 8, HPS - 4096 - 8, 1);
	check_pattern(mm, a, 2 * HPS, 1);

	/* The parent writes the page the child still shares: it copies too. */
	write_u64(mm, a + HPS, 0xbeef);
	assert_pool(8, 4, 1, 0);
	cr_assert_neq(pfn_at(mm, a + HPS), h1);
	cr_assert_eq(pfn_at(child, a + HPS), h1);
	check_at(child, a, HPS, HPS, 1);
	cr_assert_eq(read_u64(mm, a + HPS), 0xbeef);
	/* The parent's first page is its own again: reused in place. */
	write_u64(mm, a, 0xaaaa);
	cr_assert_eq(pfn_at(mm, a), h0);
	assert_pool(8, 4, 1, 0);
	/* The reserved third page: the parent uses its reservation, the child the pool. */
	write_u64(mm, a + 2 * HPS, 1);
	assert_pool(8, 3, 0, 0);
	write_u64(child, a + 2 * HPS, 2);
	assert_pool(8, 2, 0, 0);
	cr_assert_eq(read_u64(mm, a + 2 * HPS), 1);
	assert_audit_clean();

	mmput(child);
	assert_pool(8, 5, 0, 0);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, fork_cow_with_empty_pool)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 2 * HPS, HUGE_PRIV);
	fill_pattern(mm, a, 2 * HPS, 9);
	struct mm_struct *child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	/* Use up the pool. */
	unsigned long other = map_huge_ok(mm, 6 * HPS, HUGE_PRIV | MAP_POPULATE);
	(void)other;
	assert_pool(8, 0, 0, 0);

	/* The child cannot copy: SIGBUS. */
	uint64_t v = 1;
	cr_assert_eq(cpu_write(child, a, &v, sizeof(v)), -EFAULT);
	check_pattern(child, a, 2 * HPS, 9);
	/* The owner cannot copy either: it takes the page from the child instead. */
	write_u64(mm, a + HPS, 0x77);
	cr_assert_eq(read_u64(mm, a + HPS), 0x77);
	assert_huge_mapped(mm, a + HPS, 1);
	cr_assert_eq(pagemap(child, a + HPS), 0);
	/* The child's mapping is gone: SIGBUS on any fault in that VMA. */
	cr_assert_eq(cpu_read(child, a + HPS, &v, sizeof(v)), -EFAULT);
	check_pattern(child, a, HPS, 9);
	assert_pool(8, 0, 0, 0);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, exit_returns_pages_and_reservations)
{
	struct mm_struct *mm = new_mm();
	map_huge_ok(mm, 3 * HPS, HUGE_PRIV);
	unsigned long b = map_huge_ok(mm, 3 * HPS, HUGE_PRIV);
	write_u64(mm, b, 1);
	write_u64(mm, b + 2 * HPS, 1);
	unsigned long c = map_huge_ok(mm, 2 * HPS, HUGE_PRIV | MAP_NORESERVE);
	write_u64(mm, c + HPS, 1);
	assert_pool(8, 5, 4, 0);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

/* ---- mprotect, madvise, mremap ---- */

Test(hugetlb, mprotect_alignment)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 4 * HPS, HUGE_PRIV);
	fill_pattern(mm, a, 4 * HPS, 11);
	unsigned long pfn1 = pfn_at(mm, a + HPS);

	/* A split off a 2 MiB boundary: -EINVAL, nothing changed. */
	cr_assert_eq(mm_mprotect(mm, a + 4096, HPS, PROT_READ), -EINVAL);
	cr_assert_eq(mm_mprotect(mm, a, 4096, PROT_READ), -EINVAL);
	cr_assert_eq(nr_vmas(mm), 1);
	write_u64(mm, a, 1);

	cr_assert_eq(mm_mprotect(mm, a + HPS, HPS, PROT_READ), 0);
	cr_assert_eq(nr_vmas(mm), 3);
	uint64_t v = 2;
	cr_assert_eq(cpu_write(mm, a + HPS + 64, &v, sizeof(v)), -EFAULT);
	check_at(mm, a, HPS, HPS, 11);
	write_u64(mm, a + 2 * HPS, 3);
	assert_audit_clean();
	/* Writable again: the exclusive page is reused, not copied. */
	cr_assert_eq(mm_mprotect(mm, a + HPS, HPS, RW), 0);
	write_u64(mm, a + HPS + 64, 4);
	cr_assert_eq(pfn_at(mm, a + HPS), pfn1);
	cr_assert_eq(nr_vmas(mm), 3, "hugetlb VMAs have a close hook: they do not merge");
	assert_pool(8, 4, 0, 0);
	/* The whole range at once needs no split. */
	cr_assert_eq(mm_mprotect(mm, a, 4 * HPS, PROT_NONE), 0);
	cr_assert_eq(cpu_read(mm, a, &v, sizeof(v)), -EFAULT);
	assert_audit_clean();
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, madvise_dontneed)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 3 * HPS, HUGE_PRIV);
	fill_pattern(mm, a, 3 * HPS, 12);
	assert_pool(8, 5, 0, 0);

	cr_assert_eq(mm_madvise(mm, a + 4096, HPS, MADV_DONTNEED), -EINVAL);
	cr_assert_eq(mm_madvise(mm, a, HPS, MADV_FREE), -EINVAL);
	/* The end is rounded down: only whole huge pages are dropped. */
	cr_assert_eq(mm_madvise(mm, a, HPS + 4096, MADV_DONTNEED), 0);
	cr_assert_eq(pagemap(mm, a), 0);
	check_at(mm, a, HPS, 2 * HPS, 12);
	/* The owner gets the page's reservation back. */
	assert_pool(8, 6, 1, 0);
	cr_assert_eq(mm_madvise(mm, a + 2 * HPS, 4096, MADV_DONTNEED), 0);
	check_at(mm, a, 2 * HPS, HPS, 12);
	assert_audit_clean();
	/* It reads zeros again, from the reserved page. */
	check_zero(mm, a, HPS);
	assert_pool(8, 5, 0, 0);
	cr_assert_eq(mm_madvise(mm, a, 3 * HPS, MADV_POPULATE_WRITE), 0);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, mremap_moves_huge_pages)
{
	struct mm_struct *mm = new_mm();
	const unsigned long T = 0x50000000UL;
	unsigned long a = map_huge_ok(mm, 3 * HPS, HUGE_PRIV);
	fill_pattern(mm, a, 2 * HPS, 13);
	unsigned long p0 = pfn_at(mm, a), p1 = pfn_at(mm, a + HPS);
	assert_pool(8, 6, 1, 0);

	cr_assert_eq(mm_mremap(mm, a + 4096, HPS, HPS, MREMAP_MAYMOVE | MREMAP_FIXED, T), -EINVAL);
	cr_assert_eq(mm_mremap(mm, a, 3 * HPS, 4 * HPS, MREMAP_MAYMOVE, 0), -EINVAL,
		     "hugetlb mappings do not grow");
	cr_assert_eq(mm_mremap(mm, a, 3 * HPS, 3 * HPS, MREMAP_MAYMOVE | MREMAP_FIXED, T + 4096),
		     -EINVAL);
	cr_assert_eq(mm_mremap(mm, a, 3 * HPS, 3 * HPS, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0),
		     -EINVAL);
	check_pattern(mm, a, 2 * HPS, 13);

	/* Lengths are rounded up to 2 MiB: this moves all three pages. */
	cr_assert_eq(mm_mremap(mm, a, 2 * HPS + 1, 2 * HPS + 1, MREMAP_MAYMOVE | MREMAP_FIXED, T),
		     (long)T);
	cr_assert_eq(nr_vmas(mm), 1);
	cr_assert_eq(find_vma(mm, T)->vm_end, T + 3 * HPS);
	cr_assert_eq(pagemap(mm, a), 0);
	cr_assert_eq(pfn_at(mm, T), p0);
	cr_assert_eq(pfn_at(mm, T + HPS + 4096), p1 + 1);
	check_pattern(mm, T, 2 * HPS, 13);
	assert_pool(8, 6, 1, 0);
	assert_audit_clean();
	/* The reservation moved with it. */
	write_u64(mm, T + 2 * HPS, 5);
	assert_pool(8, 5, 0, 0);

	/* A move without MREMAP_FIXED lands 2 MiB aligned. */
	long b = mm_mremap(mm, T, 3 * HPS, 3 * HPS, MREMAP_MAYMOVE, 0);
	cr_assert(b > 0 && IS_ALIGNED((unsigned long)b, HPS), "moved to %#lx", b);
	cr_assert_eq(pfn_at(mm, (unsigned long)b), p0);
	/* Shrinking frees the tail pages. */
	cr_assert_eq(mm_mremap(mm, (unsigned long)b, 3 * HPS, HPS - 4096, 0, 0), b);
	assert_pool(8, 7, 0, 0);
	check_pattern(mm, (unsigned long)b, HPS, 13);
	assert_audit_clean();
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, mremap_part_keeps_reservations)
{
	struct mm_struct *mm = new_mm();
	const unsigned long T = 0x50000000UL;
	unsigned long a = map_huge_ok(mm, 4 * HPS, HUGE_PRIV);
	write_u64(mm, a + HPS, 1);
	assert_pool(8, 7, 3, 0);
	/* Move the middle two pages (one faulted, one reserved) away. */
	cr_assert_eq(mm_mremap(mm, a + HPS, 2 * HPS, 2 * HPS, MREMAP_MAYMOVE | MREMAP_FIXED, T),
		     (long)T);
	cr_assert_eq(nr_vmas(mm), 3);
	assert_pool(8, 7, 3, 0);
	assert_audit_clean();
	cr_assert_eq(read_u64(mm, T), 1);
	write_u64(mm, T + HPS, 2);
	write_u64(mm, a, 3);
	write_u64(mm, a + 3 * HPS, 4);
	assert_pool(8, 4, 0, 0);
	cr_assert_eq(mm_munmap(mm, T, 2 * HPS), 0);
	assert_pool(8, 6, 0, 0);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

/* ---- GUP ---- */

Test(hugetlb, gup_pin)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 2 * HPS, HUGE_PRIV);
	struct page *pages[4];

	/* Pinning faults the page in. */
	cr_assert_eq(pin_user_pages_fast(mm, a + HPS + 5 * 4096, 3, FOLL_WRITE, pages), 3);
	unsigned long head = assert_huge_mapped(mm, a + HPS, 1);
	struct folio *folio = page_folio(pfn_to_page(head));
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pages[i], pfn_to_page(head + 5 + (unsigned long)i), "subpage %d", i);
	cr_assert_eq(atomic_load(&folio->_pincount), 3);
	cr_assert_eq(folio_ref_count(folio), 4);
	cr_assert(folio_maybe_dma_pinned(folio));
	assert_audit_clean();

	/* Unmapped but pinned: the folio stays out of the pool until unpinned. */
	cr_assert_eq(mm_munmap(mm, a + HPS, HPS), 0);
	assert_pool(8, 7, 1, 0);
	cr_assert_eq(folio_ref_count(folio), 3);
	assert_audit_clean();
	unpin_user_pages(pages, 3);
	assert_pool(8, 8, 1, 0);

	/* get_user_pages on a read fault; a plain reference. */
	mmap_read_lock(mm);
	cr_assert_eq(get_user_pages_remote(mm, a, 1, 0, pages, NULL), 1);
	mmap_read_unlock(mm);
	cr_assert_eq(page_to_pfn(pages[0]), pfn_at(mm, a));
	cr_assert_eq(folio_ref_count(page_folio(pages[0])), 2);
	put_page(pages[0]);
	/* FOLL_SPLIT_PMD never splits a hugetlb PMD. */
	mmap_read_lock(mm);
	cr_assert_eq(get_user_pages_remote(mm, a, 1, FOLL_SPLIT_PMD, pages, NULL), -EOPNOTSUPP);
	mmap_read_unlock(mm);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, fork_copies_pinned_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, HPS, HUGE_PRIV);
	struct page *page;
	fill_pattern(mm, a, HPS, 14);
	cr_assert_eq(pin_user_pages_fast(mm, a, 1, FOLL_WRITE, &page), 1);
	struct mm_struct *child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	/* The pinned exclusive page stays the parent's; the child gets a copy. */
	cr_assert_neq(pfn_at(child, a), pfn_at(mm, a));
	cr_assert_eq(pfn_at(mm, a), page_to_pfn(page));
	assert_huge_mapped(child, a, 1);
	check_pattern(child, a, HPS, 14);
	assert_pool(8, 6, 0, 0);
	assert_audit_clean();
	unpin_user_page(page);
	mmput(child);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, lazyfree_reclaim_and_dump_leave_hugetlb_alone)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, HPS, HUGE_PRIV);
	fill_pattern(mm, a, HPS, 15);
	cr_assert_eq(uhmm_drop_lazyfree(machine), 0);
	check_pattern(mm, a, HPS, 15);
	char *buf = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&buf, &size);
	cr_assert(out);
	mm_dump(mm, out);
	fclose(out);
	cr_assert(strstr(buf, "hugetlb pfn"), "dump: %s", buf);
	free(buf);
	mmput(mm);
}

/* ---- shared hugetlb ---- */

#define HUGE_SHARED (MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB)

Test(hugetlb, shared_mapping_is_a_hugetlbfs_file)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 2 * HPS - 4096, HUGE_SHARED);
	struct vm_area_struct *vma = find_vma(mm, a);

	cr_assert_eq(vma->vm_end - vma->vm_start, 2 * HPS);
	cr_assert(vma->vm_file);
	cr_assert(vma->vm_file->f_inode->i_flags & S_HUGETLB);
	cr_assert(vma->vm_flags & (VM_SHARED | VM_MAYSHARE));
	cr_assert_eq(uhmm_file_size(vma->vm_file), (loff_t)(2 * HPS));
	assert_pool(8, 8, 2, 0);

	fill_pattern(mm, a, HPS, 21);
	assert_pool(8, 7, 1, 0);
	cr_assert_eq(uhmm_file_nrpages(vma->vm_file), NR);
	uint64_t pm = pagemap(mm, a + 4096);
	cr_assert(pm & PM_PRESENT && pm & PM_FILE && pm & PM_MMAP_EXCLUSIVE, "pagemap %#llx",
		  (unsigned long long)pm);
	unsigned long head = pfn_at(mm, a);
	struct folio *folio = page_folio(pfn_to_page(head));
	cr_assert(folio_test_hugetlb(folio));
	cr_assert_not(folio_test_anon(folio));
	cr_assert_eq(folio->mapping, vma->vm_file->f_mapping);
	cr_assert_eq(folio->index, 0);
	cr_assert_eq(folio_ref_count(folio), 2, "the page cache and the mapping");
	cr_assert_eq(folio_mapcount(folio), 1);
	cr_assert_eq(uhmm_file_folio(vma->vm_file, 0), folio);
	uint64_t k = uhmm_kpageflags(head + 1);
	cr_assert(k & KPF(KPF_HUGE) && k & KPF(KPF_COMPOUND_TAIL) && k & KPF(KPF_MMAP));
	cr_assert_eq(k & KPF(KPF_ANON), 0);
	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.private_hugetlb, HPS);
	cr_assert_eq(s.shared_hugetlb, 0);
	cr_assert_eq(s.rss, 0);
	assert_audit_clean();

	/* Unmapping keeps the page in the file while another mapping holds it... */
	struct mm_struct *child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	cr_assert_eq(mm_munmap(mm, a, 2 * HPS), 0);
	assert_pool(8, 7, 1, 0);
	check_pattern(child, a, HPS, 21);
	mmput(mm);
	/* ...and the last close of the file frees it and its reservations. */
	mmput(child);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, shared_across_fork)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 3 * HPS, HUGE_SHARED);
	fill_pattern(mm, a, HPS, 22);
	unsigned long p0 = pfn_at(mm, a);

	struct mm_struct *child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	assert_pool(8, 7, 2, 0); /* fork reserves nothing more */
	cr_assert_eq(pfn_at(child, a), p0, "fork copies the shared PMDs");
	cr_assert_eq(folio_mapcount(page_folio(pfn_to_page(p0))), 2);
	cr_assert_eq(smaps(child).shared_hugetlb, HPS);

	/* Writes on either side are seen by the other: no copy. */
	write_u64(child, a + 64, 0x1111);
	cr_assert_eq(read_u64(mm, a + 64), 0x1111);
	write_u64(mm, a + 128, 0x2222);
	cr_assert_eq(read_u64(child, a + 128), 0x2222);
	cr_assert_eq(pfn_at(child, a), p0);
	/* A page first touched by the child is the parent's too. */
	write_u64(child, a + HPS, 0x3333);
	cr_assert_eq(read_u64(mm, a + HPS), 0x3333);
	cr_assert_eq(pfn_at(mm, a + HPS), pfn_at(child, a + HPS));
	assert_pool(8, 6, 1, 0);

	struct folio_mapping_info info[4];
	cr_assert_eq(folio_rmap_query(page_folio(pfn_to_page(p0)), info, 4), 2);
	cr_assert(info[0].pmd_mapped && info[1].pmd_mapped);
	cr_assert(info[0].mm != info[1].mm);
	assert_audit_clean();

	mmput(child);
	cr_assert_eq(read_u64(mm, a + 64), 0x1111);
	assert_pool(8, 6, 1, 0);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, shared_reservation_and_noreserve)
{
	struct mm_struct *mm = new_mm();
	cr_assert_eq(map_huge(mm, 0, 9 * HPS, HUGE_SHARED), -ENOMEM);
	cr_assert_eq(nr_vmas(mm), 0);
	assert_pool(8, 8, 0, 0);
	unsigned long a = map_huge_ok(mm, 7 * HPS, HUGE_SHARED);
	unsigned long n = map_huge_ok(mm, 2 * HPS, HUGE_SHARED | MAP_NORESERVE);
	assert_pool(8, 8, 7, 0);
	write_u64(mm, n, 1);
	uint64_t v = 0;
	cr_assert_eq(cpu_read(mm, n + HPS, &v, sizeof(v)), -EFAULT, "SIGBUS: all reserved");
	cr_assert_eq(mm_madvise(mm, a, 7 * HPS, MADV_POPULATE_WRITE), 0);
	assert_pool(8, 0, 0, 0);
	assert_audit_clean();
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, shared_mremap_and_dontneed)
{
	struct mm_struct *mm = new_mm();
	const unsigned long T = 0x60000000UL;
	unsigned long a = map_huge_ok(mm, 2 * HPS, HUGE_SHARED);
	fill_pattern(mm, a, 2 * HPS, 23);
	unsigned long p1 = pfn_at(mm, a + HPS);

	cr_assert_eq(mm_mremap(mm, a, 2 * HPS, 2 * HPS, MREMAP_MAYMOVE | MREMAP_FIXED, T), (long)T);
	cr_assert_eq(pfn_at(mm, T + HPS), p1);
	check_pattern(mm, T, 2 * HPS, 23);
	assert_audit_clean();
	/* MADV_DONTNEED drops the mapping, not the file's page. */
	cr_assert_eq(mm_madvise(mm, T, HPS, MADV_DONTNEED), 0);
	cr_assert_eq(pagemap(mm, T), 0);
	assert_pool(8, 6, 0, 0);
	check_pattern(mm, T, 2 * HPS, 23);
	/* mprotect to read-only and back. */
	cr_assert_eq(mm_mprotect(mm, T, 2 * HPS, PROT_READ), 0);
	uint64_t v = 1;
	cr_assert_eq(cpu_write(mm, T, &v, sizeof(v)), -EFAULT);
	cr_assert_eq(mm_mprotect(mm, T, 2 * HPS, RW), 0);
	write_u64(mm, T, 9);
	cr_assert_eq(read_u64(mm, T), 9);
	assert_audit_clean();
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

/* ---- odds and ends ---- */

Test(hugetlb, never_thp_never_split)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, HPS, HUGE_PRIV);
	write_u64(mm, a, 1);
	struct vm_area_struct *vma = find_vma(mm, a);
	cr_assert_eq(huge_page_order(hstate_vma(vma)), 9);
	cr_assert_eq(huge_page_size(hstate_vma(vma)), HPS);
	cr_assert_eq(huge_page_size_vma(vma), HPS);
	cr_assert_eq(mm_madvise(mm, a, HPS, MADV_COLLAPSE), -EINVAL);
	cr_assert_eq(mm_madvise(mm, a, HPS, MADV_WIPEONFORK), -EINVAL);
	cr_assert_eq(mm_madvise(mm, a, HPS, MADV_HUGEPAGE), 0);
	write_u64(mm, a + 8, 2);
	assert_huge_mapped(mm, a, 1);
	/* The folio refuses to split, even unmapped and owned. */
	struct folio *folio = folio_at(mm, a);
	folio_get(folio);
	cr_assert_eq(mm_munmap(mm, a, HPS), 0);
	folio_lock(folio);
	cr_assert_eq(split_folio_to_order(folio, 0), -EINVAL);
	folio_unlock(folio);
	cr_assert(folio_test_hugetlb(folio));
	assert_pool(8, 7, 0, 0);
	/* (No audit here: it would call our bare reference a leak.) */
	folio_put(folio);
	assert_pool(8, 8, 0, 0);
	mmput(mm);
}

Test(hugetlb, machine_busy_while_a_huge_page_is_pinned)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, HPS, HUGE_PRIV);
	struct page *page;
	cr_assert_eq(pin_user_pages_fast(mm, a, 1, FOLL_WRITE, &page), 1);
	mmput(mm);
	assert_pool(8, 7, 0, 0);
	assert_audit_clean();
	cr_assert_eq(uhmm_machine_destroy(machine), -EBUSY);
	assert_pool(8, 7, 0, 0);
	/* The pool cannot shrink below the page in use: it becomes surplus. */
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 0), 0);
	assert_pool(1, 0, 0, 1);
	unpin_user_page(page);
	assert_pool(0, 0, 0, 0);
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 8), 8);
}

Test(hugetlb, shrink_keeps_reserved_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 3 * HPS, HUGE_PRIV);
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 1), 1);
	/* Reserved pages are not freed; they count as surplus above the new size. */
	assert_pool(3, 3, 3, 2);
	for (int i = 0; i < 3; i++)
		write_u64(mm, a + (unsigned long)i * HPS, (uint64_t)i);
	assert_pool(3, 0, 0, 2);
	assert_audit_clean();
	mmput(mm);
	assert_pool(1, 1, 0, 0);
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 8), 8);
}

/* ---- hmm_range_fault() over hugetlb ---- */

static bool hmm_inval(struct mmu_interval_notifier *sub, const struct mmu_notifier_range *range,
		      unsigned long cur_seq)
{
	(void)range;
	mmu_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops hmm_ops = { .invalidate = hmm_inval };

static int hmm_fault(struct mmu_interval_notifier *sub, unsigned long start, unsigned long npages,
		     unsigned long *pfns, unsigned long flags)
{
	int ret;

	for (int i = 0; i < 10; i++) {
		struct hmm_range range = { .notifier = sub, .start = start,
					   .end = start + npages * PAGE_SIZE, .hmm_pfns = pfns,
					   .default_flags = flags };

		range.notifier_seq = mmu_interval_read_begin(sub);
		mmap_read_lock(sub->mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(sub->mm);
		if (ret != -EBUSY)
			break;
	}
	return ret;
}

Test(hugetlb, hmm_range_fault_reports_order_9)
{
	struct mm_struct *mm = new_mm();
	struct mmu_interval_notifier sub;
	unsigned long a = map_huge_ok(mm, 2 * HPS, HUGE_PRIV);
	unsigned long *pfns = calloc(2 * NR, sizeof(*pfns));
	cr_assert(pfns);
	cr_assert_eq(mmu_interval_notifier_insert(&sub, mm, a, 2 * HPS, &hmm_ops), 0);

	/* A write request faults both huge pages in, writable. */
	cr_assert_eq(hmm_fault(&sub, a, 2 * NR, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE), 0);
	assert_pool(8, 6, 0, 0);
	unsigned long h0 = pfn_at(mm, a), h1 = pfn_at(mm, a + HPS);
	for (unsigned long i = 0; i < 2 * NR; i++) {
		unsigned long want = (i < NR ? h0 + i : h1 + i - NR);
		cr_assert_eq(pfns[i] & ~HMM_PFN_FLAGS, want, "page %lu", i);
		cr_assert(pfns[i] & HMM_PFN_VALID && pfns[i] & HMM_PFN_WRITE, "page %lu", i);
		cr_assert_eq(hmm_pfn_to_map_order(pfns[i]), 9, "page %lu", i);
	}
	/* After fork the private pages are read-only until a write breaks COW. */
	struct mm_struct *child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	memset(pfns, 0, 2 * NR * sizeof(*pfns));
	cr_assert_eq(hmm_fault(&sub, a, NR, pfns, HMM_PFN_REQ_FAULT), 0);
	cr_assert(pfns[3] & HMM_PFN_VALID);
	cr_assert_eq(pfns[3] & HMM_PFN_WRITE, 0);
	cr_assert_eq(hmm_fault(&sub, a, NR, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE), 0);
	cr_assert(pfns[3] & HMM_PFN_WRITE);
	cr_assert_neq(pfns[3] & ~HMM_PFN_FLAGS, h0 + 3, "the write copied the page");
	cr_assert_eq(pfn_at(child, a), h0);
	assert_audit_clean();
	mmput(child);
	mmu_interval_notifier_remove(&sub);
	free(pfns);
	mmput(mm);
	assert_pool(8, 8, 0, 0);
}

Test(hugetlb, hmm_range_fault_noreserve_sigbus_is_efault)
{
	struct mm_struct *mm = new_mm();
	struct mmu_interval_notifier sub;
	unsigned long pin = map_huge_ok(mm, 8 * HPS, HUGE_PRIV | MAP_POPULATE);
	unsigned long a = map_huge_ok(mm, HPS, HUGE_PRIV | MAP_NORESERVE);
	unsigned long pfns[4] = { 0 };
	(void)pin;
	cr_assert_eq(mmu_interval_notifier_insert(&sub, mm, a, HPS, &hmm_ops), 0);
	cr_assert_eq(hmm_fault(&sub, a, 4, pfns, HMM_PFN_REQ_FAULT), -EFAULT);
	cr_assert_eq(hmm_fault(&sub, a, 4, pfns, 0), 0, "a snapshot needs no page");
	cr_assert_eq(pfns[0], 0);
	mmu_interval_notifier_remove(&sub);
	mmput(mm);
}

/* ---- overcommit ---- */

Test(hugetlb, overcommit_surplus_pages)
{
	struct mm_struct *mm = new_mm();
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 0), 0);
	cr_assert_eq(map_huge(mm, 0, HPS, HUGE_PRIV), -ENOMEM, "no pool, no overcommit");
	uhmm_hugetlb_set_nr_overcommit_hugepages(machine, 3);
	cr_assert_eq(stats().nr_overcommit_hugepages, 3);
	unsigned long free0 = uhmm_nr_free_pages(machine);

	/* The reservation allocates surplus pages from the buddy allocator. */
	unsigned long a = map_huge_ok(mm, 2 * HPS, HUGE_PRIV);
	assert_pool(2, 2, 2, 2);
	cr_assert_eq(stats().nr_hugepages, 0);
	cr_assert_lt(uhmm_nr_free_pages(machine), free0 - 2 * NR + 1);
	/* Two more would pass the limit: -ENOMEM, and the one taken goes back. */
	cr_assert_eq(map_huge(mm, 0, 2 * HPS, HUGE_PRIV), -ENOMEM);
	assert_pool(2, 2, 2, 2);
	assert_audit_clean();

	write_u64(mm, a, 1);
	assert_pool(2, 1, 1, 2);
	/* An unreserved fault takes the last surplus page the limit allows... */
	unsigned long n = map_huge_ok(mm, 2 * HPS, HUGE_PRIV | MAP_NORESERVE);
	write_u64(mm, n, 2);
	assert_pool(3, 1, 1, 3);
	/* ...and the next one gets SIGBUS. */
	uint64_t v = 3;
	cr_assert_eq(cpu_write(mm, n + HPS, &v, sizeof(v)), -EFAULT);
	assert_audit_clean();
	/* Released surplus pages return to the buddy allocator. */
	cr_assert_eq(mm_munmap(mm, n, 2 * HPS), 0);
	assert_pool(2, 1, 1, 2);
	mmput(mm);
	assert_pool(0, 0, 0, 0);
	cr_assert_eq(uhmm_nr_free_pages(machine) + 1, uhmm_totalram_pages(machine));
	uhmm_hugetlb_set_nr_overcommit_hugepages(machine, 0);
	cr_assert_eq(uhmm_hugetlb_set_nr_hugepages(machine, 8), 8);
}

/* ---- the audit sees hugetlb breakage ---- */

Test(hugetlb, audit_catches_bad_pool_state)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_huge_ok(mm, 2 * HPS, HUGE_PRIV);
	write_u64(mm, a, 1);
	cr_assert_eq(uhmm_audit(machine, NULL), 0);

	/* A reservation count the mappings do not hold. */
	pthread_mutex_lock(&machine->hstate.lock);
	machine->hstate.resv_huge_pages++;
	pthread_mutex_unlock(&machine->hstate.lock);
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	pthread_mutex_lock(&machine->hstate.lock);
	machine->hstate.resv_huge_pages--;
	pthread_mutex_unlock(&machine->hstate.lock);

	/* A pool page that went missing from the counters. */
	pthread_mutex_lock(&machine->hstate.lock);
	machine->hstate.nr_huge_pages++;
	pthread_mutex_unlock(&machine->hstate.lock);
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	pthread_mutex_lock(&machine->hstate.lock);
	machine->hstate.nr_huge_pages--;
	pthread_mutex_unlock(&machine->hstate.lock);

	/* A mapped hugetlb folio with a wrong mapcount. */
	struct folio *folio = folio_at(mm, a);
	atomic_fetch_add(&folio->_entire_mapcount, 1);
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	atomic_fetch_sub(&folio->_entire_mapcount, 1);

	/* A free pool folio with a reference. */
	struct folio *free_folio = list_first_entry(&machine->hstate.free_list, struct folio, lru);
	atomic_fetch_add(&free_folio->_refcount, 1);
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	atomic_fetch_sub(&free_folio->_refcount, 1);

	cr_assert_eq(uhmm_audit(machine, NULL), 0);
	mmput(mm);
}
