/* SPDX-License-Identifier: MIT */
/*
 * tests/test_fault.c - the CPU's faults on anonymous memory: the shared zero
 * page on read, allocation on write, zero-page replacement, exact data across
 * page boundaries, memset and atomics, SIGSEGV as -EFAULT, x86's readable
 * write-only mappings, mprotect round trips, and out of memory (real and
 * injected) with recovery.  Linux's x86-64 semantics throughout.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

#define PG PAGE_SIZE

/* ---- local helpers ---- */

static uint64_t read_u64(struct mm_struct *mm, unsigned long addr)
{
	uint64_t v = 0xdeadbeefdeadbeefULL;
	cr_assert_eq(cpu_read(mm, addr, &v, sizeof(v)), 0);
	return v;
}

static void write_u64(struct mm_struct *mm, unsigned long addr, uint64_t v)
{
	cr_assert_eq(cpu_write(mm, addr, &v, sizeof(v)), 0);
}

static struct fault_attr fail_nth(unsigned long n, long times)
{
	struct fault_attr a = {
		.probability = 100, .interval = n, .times = times, .min_order = 0, .seed = 1,
	};
	return a;
}

TestSuite(fault, .init = machine_setup, .fini = machine_teardown);

/* ---- zero page on read ---- */

Test(fault, read_untouched_maps_zero_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long zero = uhmm_zero_pfn(machine);

	for (int i = 0; i < 4; i++)
		cr_assert_eq(pagemap(mm, addr + i * PG), 0, "untouched page %d is in pagemap", i);

	uint8_t buf[4 * PG];
	memset(buf, 0xa5, sizeof(buf));
	cr_assert_eq(cpu_read(mm, addr, buf, sizeof(buf)), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0, "byte %zu is %#x", i, buf[i]);

	for (int i = 0; i < 4; i++) {
		uint64_t e = pagemap(mm, addr + i * PG);
		cr_assert(e & PM_PRESENT, "page %d not present after read", i);
		cr_assert_eq(e & PM_PFRAME_MASK, zero, "page %d maps pfn %#llx, not the zero pfn %#lx",
			     i, (unsigned long long)(e & PM_PFRAME_MASK), zero);
		cr_assert_eq(e & PM_MMAP_EXCLUSIVE, 0, "the shared zero page is not exclusive");
	}
	cr_assert(uhmm_kpageflags(zero) & (1ULL << KPF_ZERO_PAGE));
	cr_assert_eq(uhmm_kpageflags(zero) & (1ULL << KPF_ANON), 0);

	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.rss, 0);
	cr_assert_eq(s.anonymous, 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);

	/* Reading again maps nothing new and allocates nothing. */
	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(cpu_read(mm, addr + 100, buf, 3 * PG), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	cr_assert_eq(pfn_at(mm, addr + 2 * PG), zero);
	mmput(mm);
}

/* ---- first write ---- */

Test(fault, first_write_allocates_one_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long zero = uhmm_zero_pfn(machine);

	/* Warm the page tables with a read elsewhere, so the write below only allocates its page. */
	check_zero(mm, addr + 3 * PG, 1);
	unsigned long free0 = uhmm_nr_free_pages(machine);

	uint8_t v = 0x5c;
	cr_assert_eq(cpu_write(mm, addr + PG + 100, &v, 1), 0);

	cr_assert_eq(uhmm_nr_free_pages(machine), free0 - 1, "a 4 KiB write fault takes one page");
	uint64_t e = pagemap(mm, addr + PG);
	cr_assert(e & PM_PRESENT);
	cr_assert(e & PM_MMAP_EXCLUSIVE, "a fresh anon page is mapped once");
	cr_assert_eq(e & PM_FILE, 0);
	cr_assert_eq(e & PM_SWAP, 0);
	unsigned long pfn = (unsigned long)(e & PM_PFRAME_MASK);
	cr_assert_neq(pfn, zero);
	cr_assert(pfn_valid(pfn));

	struct folio *folio = page_folio(pfn_to_page(pfn));
	cr_assert_eq(folio_order(folio), 0);
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(folio_mapcount(folio), 1);
	cr_assert_eq(page_mapcount(pfn_to_page(pfn)), 1);
	cr_assert(folio_test_anon(folio));
	cr_assert_eq(uhmm_kpagecount(pfn), 1);
	uint64_t kf = uhmm_kpageflags(pfn);
	cr_assert(kf & (1ULL << KPF_ANON), "kpageflags %#llx lacks KPF_ANON", (unsigned long long)kf);
	cr_assert(kf & (1ULL << KPF_MMAP), "kpageflags %#llx lacks KPF_MMAP", (unsigned long long)kf);
	cr_assert_eq(kf & ((1ULL << KPF_ZERO_PAGE) | (1ULL << KPF_THP) | (1ULL << KPF_NOPAGE)), 0);

	struct mm_smaps s = smaps(mm);
	cr_assert_eq(s.rss, PG);
	cr_assert_eq(s.anonymous, PG);
	cr_assert_eq(s.anon_huge_pages, 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 1);

	/* The new page is zero but for the byte written. */
	uint8_t buf[PG];
	cr_assert_eq(cpu_read(mm, addr + PG, buf, PG), 0);
	for (size_t i = 0; i < PG; i++)
		cr_assert_eq(buf[i], i == 100 ? 0x5c : 0, "byte %zu is %#x", i, buf[i]);

	/* The other pages are untouched or zero-mapped, and read zero. */
	cr_assert_eq(pagemap(mm, addr), 0);
	cr_assert_eq(pagemap(mm, addr + 2 * PG), 0);
	cr_assert_eq(pfn_at(mm, addr + 3 * PG), zero);
	check_zero(mm, addr, PG);
	check_zero(mm, addr + 2 * PG, 2 * PG);
	cr_assert_eq(rss_bytes(mm), PG);

	/* A second write to the same page reuses it. */
	cr_assert_eq(cpu_write(mm, addr + PG + 4095, &v, 1), 0);
	cr_assert_eq(pfn_at(mm, addr + PG), pfn);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 - 1);
	mmput(mm);
}

Test(fault, write_replaces_zero_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long zero = uhmm_zero_pfn(machine);

	check_zero(mm, addr, 2 * PG);
	cr_assert_eq(pfn_at(mm, addr), zero);
	cr_assert_eq(pfn_at(mm, addr + PG), zero);
	unsigned long free0 = uhmm_nr_free_pages(machine);

	const char msg[] = "hello, zero page";
	cr_assert_eq(cpu_write(mm, addr + PG + 2000, msg, sizeof(msg)), 0);

	unsigned long pfn = pfn_at(mm, addr + PG);
	cr_assert_neq(pfn, zero, "the write left the zero page mapped");
	cr_assert(pagemap(mm, addr + PG) & PM_MMAP_EXCLUSIVE);
	cr_assert_eq(pfn_at(mm, addr), zero, "the neighbour's zero page must stay");
	cr_assert_eq(uhmm_nr_free_pages(machine), free0 - 1);
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(pfn))), 1);
	cr_assert_eq(folio_mapcount(page_folio(pfn_to_page(pfn))), 1);
	cr_assert_eq(rss_bytes(mm), PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 1);

	char buf[PG];
	cr_assert_eq(cpu_read(mm, addr + PG, buf, PG), 0);
	for (size_t i = 0; i < PG; i++) {
		char want = (i >= 2000 && i < 2000 + sizeof(msg)) ? msg[i - 2000] : 0;
		cr_assert_eq(buf[i], want, "byte %zu is %#x, want %#x", i, buf[i], want);
	}
	check_zero(mm, addr, PG);
	mmput(mm);
}

/* ---- exact data ---- */

Test(fault, data_across_page_boundaries)
{
	enum { NPAGES = 9 };
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, NPAGES * PG, PROT_READ | PROT_WRITE, 0);
	static uint8_t shadow[NPAGES * PG];
	static uint8_t buf[NPAGES * PG];
	memset(shadow, 0, sizeof(shadow));

	/* A write that starts 57 bytes before a boundary and covers three more pages. */
	size_t off = PG - 57, len = 3 * PG + 123;
	for (size_t i = 0; i < len; i++)
		shadow[off + i] = pattern_byte(7, off + i);
	cr_assert_eq(cpu_write(mm, addr + off, shadow + off, len), 0);
	cr_assert_eq(rss_bytes(mm), 5 * PG, "the write touched pages 0..4");

	/* Deterministic odd-sized writes and reads all over the range. */
	uint32_t rng = 12345;
	for (int round = 0; round < 300; round++) {
		rng = rng * 1103515245u + 12345u;
		size_t o = (rng >> 8) % (NPAGES * PG);
		rng = rng * 1103515245u + 12345u;
		size_t l = 1 + (rng >> 8) % (2 * PG + 17);
		if (o + l > NPAGES * PG)
			l = NPAGES * PG - o;
		if (round & 1) {
			for (size_t i = 0; i < l; i++)
				shadow[o + i] = (uint8_t)(round * 31 + i * 7 + (i >> 3));
			cr_assert_eq(cpu_write(mm, addr + o, shadow + o, l), 0);
		} else {
			memset(buf, 0xee, l);
			cr_assert_eq(cpu_read(mm, addr + o, buf, l), 0);
			cr_assert_arr_eq(buf, shadow + o, l, "round %d: read(%zu, %zu) differs", round,
					 o, l);
		}
	}
	cr_assert_eq(cpu_read(mm, addr, buf, sizeof(buf)), 0);
	cr_assert_arr_eq(buf, shadow, sizeof(buf));

	/* Every written page has its own frame. */
	for (int i = 0; i < NPAGES; i++)
		for (int j = i + 1; j < NPAGES; j++)
			if ((pagemap(mm, addr + i * PG) & PM_PRESENT) &&
			    (pagemap(mm, addr + j * PG) & PM_PRESENT) &&
			    pfn_at(mm, addr + i * PG) != uhmm_zero_pfn(machine))
				cr_assert_neq(pfn_at(mm, addr + i * PG), pfn_at(mm, addr + j * PG));
	mmput(mm);
}

Test(fault, single_byte_and_tail_accesses)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_READ | PROT_WRITE, 0);
	/* Last byte of page 0 and first byte of page 1 in one two-byte write. */
	uint8_t two[2] = { 0x11, 0x22 }, got[2] = { 0, 0 };
	cr_assert_eq(cpu_write(mm, addr + PG - 1, two, 2), 0);
	cr_assert_eq(cpu_read(mm, addr + PG - 1, got, 2), 0);
	cr_assert_eq(got[0], 0x11);
	cr_assert_eq(got[1], 0x22);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	/* Zero-length accesses succeed and change nothing. */
	cr_assert_eq(cpu_write(mm, addr + 5, two, 0), 0);
	cr_assert_eq(cpu_read(mm, addr + 5, got, 0), 0);
	check_zero(mm, addr, PG - 1);
	check_zero(mm, addr + PG + 1, PG - 1);
	/* Access that runs past the end of the mapping faults. */
	uint8_t big[PG + 1];
	cr_assert_eq(cpu_read(mm, addr + PG, big, PG + 1), -EFAULT);
	mmput(mm);
}

Test(fault, memset)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	static uint8_t shadow[4 * PG], buf[4 * PG];
	memset(shadow, 0, sizeof(shadow));

	cr_assert_eq(cpu_memset(mm, addr + 333, 0x7e, 2 * PG + 5), 0);
	memset(shadow + 333, 0x7e, 2 * PG + 5);
	cr_assert_eq(cpu_memset(mm, addr + 10, 0x1ff, 7), 0); /* converted to unsigned char */
	memset(shadow + 10, 0xff, 7);
	cr_assert_eq(cpu_read(mm, addr, buf, sizeof(buf)), 0);
	cr_assert_arr_eq(buf, shadow, sizeof(buf));
	cr_assert_eq(rss_bytes(mm), 3 * PG);
	cr_assert_eq(pagemap(mm, addr + 3 * PG) & PM_PRESENT, PM_PRESENT); /* read above */
	cr_assert_eq(pfn_at(mm, addr + 3 * PG), uhmm_zero_pfn(machine));

	/* Storing zeros is still a store: it replaces the zero page. */
	cr_assert_eq(cpu_memset(mm, addr + 3 * PG + 8, 0, 16), 0);
	cr_assert_neq(pfn_at(mm, addr + 3 * PG), uhmm_zero_pfn(machine));
	cr_assert_eq(rss_bytes(mm), 4 * PG);
	check_zero(mm, addr + 3 * PG, PG);
	mmput(mm);
}

/* ---- atomics ---- */

Test(fault, atomics_values)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long a = addr + 2 * PG + 64;
	uint64_t old = 77;

	/* fetch_add on a never-touched page allocates it. */
	cr_assert_eq(pagemap(mm, a), 0);
	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, a, 5, &old), 0);
	cr_assert_eq(old, 0);
	cr_assert_neq(pfn_at(mm, a), uhmm_zero_pfn(machine));
	cr_assert_eq(rss_bytes(mm), PG);
	cr_assert_eq(read_u64(mm, a), 5);
	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, a, 0xfffffffffffffffeULL, &old), 0);
	cr_assert_eq(old, 5);
	cr_assert_eq(read_u64(mm, a), 3, "fetch_add wraps modulo 2^64");
	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, a, 10, NULL), 0);
	cr_assert_eq(read_u64(mm, a), 13);

	/* xchg */
	cr_assert_eq(cpu_atomic_xchg_u64(mm, a, 0x0123456789abcdefULL, &old), 0);
	cr_assert_eq(old, 13);
	cr_assert_eq(read_u64(mm, a), 0x0123456789abcdefULL);

	/* cmpxchg success */
	uint64_t prev = 0;
	cr_assert_eq(cpu_atomic_cmpxchg_u64(mm, a, 0x0123456789abcdefULL, 42, &prev), 0);
	cr_assert_eq(prev, 0x0123456789abcdefULL);
	cr_assert_eq(read_u64(mm, a), 42);
	/* cmpxchg failure: value unchanged, prev reports what is there */
	prev = 0;
	cr_assert_eq(cpu_atomic_cmpxchg_u64(mm, a, 41, 1000, &prev), 0);
	cr_assert_eq(prev, 42);
	cr_assert_eq(read_u64(mm, a), 42);

	/* Neighbouring words are untouched. */
	cr_assert_eq(read_u64(mm, a - 8), 0);
	cr_assert_eq(read_u64(mm, a + 8), 0);

	/* The last word of a page. */
	unsigned long last = addr + PG - 8;
	cr_assert_eq(cpu_atomic_xchg_u64(mm, last, 9, &old), 0);
	cr_assert_eq(old, 0);
	cr_assert_eq(read_u64(mm, last), 9);
	cr_assert_eq(read_u64(mm, addr + PG), 0);

	/* Misaligned atomics are rejected and change nothing. */
	write_u64(mm, a + 16, 0x1111);
	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, a + 4, 1, &old), -EINVAL);
	cr_assert_eq(cpu_atomic_xchg_u64(mm, a + 12, 1, &old), -EINVAL);
	cr_assert_eq(cpu_atomic_cmpxchg_u64(mm, a + 17, 0x1111, 2, &prev), -EINVAL);
	cr_assert_eq(read_u64(mm, a + 16), 0x1111);
	cr_assert_eq(read_u64(mm, a), 42);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	mmput(mm);
}

Test(fault, atomics_replace_zero_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 3 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long zero = uhmm_zero_pfn(machine);
	uint64_t old = 1, prev = 1;

	check_zero(mm, addr, 3 * PG);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pfn_at(mm, addr + i * PG), zero);

	/* A failing cmpxchg still takes a write fault (locked cmpxchg on x86). */
	cr_assert_eq(cpu_atomic_cmpxchg_u64(mm, addr + 8, 1, 2, &prev), 0);
	cr_assert_eq(prev, 0);
	cr_assert_neq(pfn_at(mm, addr), zero, "failed cmpxchg must still break the zero page");
	cr_assert_eq(read_u64(mm, addr + 8), 0);

	cr_assert_eq(cpu_atomic_xchg_u64(mm, addr + PG, 0xabc, &old), 0);
	cr_assert_eq(old, 0);
	cr_assert_neq(pfn_at(mm, addr + PG), zero);
	cr_assert_eq(read_u64(mm, addr + PG), 0xabc);

	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, addr + 2 * PG + 4088, 3, &old), 0);
	cr_assert_eq(old, 0);
	cr_assert_neq(pfn_at(mm, addr + 2 * PG), zero);
	cr_assert_eq(read_u64(mm, addr + 2 * PG + 4088), 3);

	cr_assert_eq(rss_bytes(mm), 3 * PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 3);
	/* Three distinct frames. */
	cr_assert_neq(pfn_at(mm, addr), pfn_at(mm, addr + PG));
	cr_assert_neq(pfn_at(mm, addr + PG), pfn_at(mm, addr + 2 * PG));
	mmput(mm);
}

Test(fault, failed_cmpxchg_on_untouched_page_allocates)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, PG, PROT_READ | PROT_WRITE, 0);
	uint64_t prev = 99;
	cr_assert_eq(cpu_atomic_cmpxchg_u64(mm, addr, 5, 6, &prev), 0);
	cr_assert_eq(prev, 0);
	cr_assert_eq(read_u64(mm, addr), 0);
	cr_assert_neq(pfn_at(mm, addr), uhmm_zero_pfn(machine));
	cr_assert_eq(rss_bytes(mm), PG);
	mmput(mm);
}

/* ---- SIGSEGV ---- */

Test(fault, efault_no_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 3 * PG, PROT_READ | PROT_WRITE, 0);
	cr_assert_eq(mm_munmap(mm, addr + PG, PG), 0);
	fill_at(mm, addr, 0, PG, 1);
	fill_at(mm, addr, 2 * PG, PG, 3);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	unsigned long rss0 = rss_bytes(mm);

	uint8_t buf[2 * PG];
	memset(buf, 0x3c, sizeof(buf));
	uint64_t v = 0;
	cr_assert_eq(cpu_read(mm, addr + PG, buf, 1), -EFAULT);
	cr_assert_eq(cpu_write(mm, addr + PG + 8, buf, 8), -EFAULT);
	cr_assert_eq(cpu_memset(mm, addr + PG, 1, PG), -EFAULT);
	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, addr + PG, 1, &v), -EFAULT);
	cr_assert_eq(cpu_atomic_xchg_u64(mm, addr + PG, 1, &v), -EFAULT);
	cr_assert_eq(cpu_atomic_cmpxchg_u64(mm, addr + PG, 0, 1, &v), -EFAULT);
	/* Accesses that start in a mapping and run into the hole copy nothing. */
	cr_assert_eq(cpu_write(mm, addr + PG - 16, buf, 32), -EFAULT);
	cr_assert_eq(cpu_memset(mm, addr, 0, 2 * PG), -EFAULT);
	cr_assert_eq(cpu_write(mm, addr + PG + 100, buf, 2 * PG), -EFAULT);
	/* Address 0 and beyond TASK_SIZE. */
	cr_assert_eq(cpu_read(mm, 0, buf, 8), -EFAULT);
	cr_assert_eq(cpu_write(mm, 4096, buf, 8), -EFAULT);
	cr_assert_eq(cpu_read(mm, TASK_SIZE - 8, buf, 16), -EFAULT);

	check_at(mm, addr, 0, PG, 1);
	check_at(mm, addr, 2 * PG, PG, 3);
	cr_assert_eq(pagemap(mm, addr + PG), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	cr_assert_eq(rss_bytes(mm), rss0);
	mmput(mm);
}

Test(fault, efault_prot_none)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_NONE, 0);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	uint8_t buf[16] = { 1, 2, 3 };
	uint64_t v = 0;

	cr_assert_eq(cpu_read(mm, addr, buf, 1), -EFAULT);
	cr_assert_eq(cpu_write(mm, addr + PG, buf, 16), -EFAULT);
	cr_assert_eq(cpu_memset(mm, addr, 7, 16), -EFAULT);
	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, addr, 1, &v), -EFAULT);
	cr_assert_eq(cpu_atomic_xchg_u64(mm, addr, 1, &v), -EFAULT);
	cr_assert_eq(cpu_atomic_cmpxchg_u64(mm, addr, 0, 1, &v), -EFAULT);
	cr_assert_eq(pagemap(mm, addr), 0);
	cr_assert_eq(pagemap(mm, addr + PG), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	cr_assert_eq(rss_bytes(mm), 0);

	/* Data written before PROT_NONE is kept, and readable again afterwards. */
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PG, PROT_READ | PROT_WRITE), 0);
	fill_at(mm, addr, 0, 2 * PG, 11);
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PG, PROT_NONE), 0);
	cr_assert_eq(cpu_read(mm, addr + 5, buf, 1), -EFAULT);
	cr_assert_eq(cpu_write(mm, addr + 5, buf, 1), -EFAULT);
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PG, PROT_READ), 0);
	check_at(mm, addr, 0, 2 * PG, 11);
	mmput(mm);
}

Test(fault, efault_write_to_readonly)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_READ, 0);
	uint8_t buf[64];
	uint64_t v = 0;
	memset(buf, 0x42, sizeof(buf));

	/* Reading is fine and maps the zero page. */
	check_zero(mm, addr, 2 * PG);
	cr_assert_eq(pfn_at(mm, addr), uhmm_zero_pfn(machine));
	unsigned long free0 = uhmm_nr_free_pages(machine);

	cr_assert_eq(cpu_write(mm, addr, buf, 1), -EFAULT);
	cr_assert_eq(cpu_write(mm, addr + PG - 10, buf, 20), -EFAULT);
	cr_assert_eq(cpu_memset(mm, addr + 8, 1, 8), -EFAULT);
	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, addr, 1, &v), -EFAULT);
	cr_assert_eq(cpu_atomic_xchg_u64(mm, addr, 1, &v), -EFAULT);
	/* Even a cmpxchg that would fail the compare needs write permission. */
	cr_assert_eq(cpu_atomic_cmpxchg_u64(mm, addr, 5, 1, &v), -EFAULT);
	cr_assert_eq(cpu_atomic_cmpxchg_u64(mm, addr, 0, 1, &v), -EFAULT);

	cr_assert_eq(pfn_at(mm, addr), uhmm_zero_pfn(machine));
	cr_assert_eq(pagemap(mm, addr + PG) & PM_PFRAME_MASK, uhmm_zero_pfn(machine));
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	cr_assert_eq(rss_bytes(mm), 0);
	check_zero(mm, addr, 2 * PG);
	mmput(mm);
}

Test(fault, efault_write_spanning_into_readonly_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, PG, 5);
	cr_assert_eq(mm_mprotect(mm, addr + PG, PG, PROT_READ), 0);
	unsigned long free0 = uhmm_nr_free_pages(machine);

	uint8_t buf[256];
	memset(buf, 0xcc, sizeof(buf));
	cr_assert_eq(cpu_write(mm, addr + PG - 128, buf, 256), -EFAULT);
	cr_assert_eq(cpu_memset(mm, addr, 0, 2 * PG), -EFAULT);
	check_at(mm, addr, 0, PG, 5); /* nothing of the failed stores landed */
	check_zero(mm, addr + PG, PG);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	cr_assert_eq(rss_bytes(mm), PG);
	/* The writable part alone is writable. */
	cr_assert_eq(cpu_write(mm, addr + PG - 128, buf, 128), 0);
	mmput(mm);
}

Test(fault, write_only_mapping_is_readable)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_WRITE, 0);
	/* x86 cannot express write-only: a read succeeds. */
	check_zero(mm, addr + PG, PG);
	cr_assert_eq(pfn_at(mm, addr + PG), uhmm_zero_pfn(machine));
	fill_at(mm, addr, 0, PG + 100, 8);
	check_at(mm, addr, 0, PG + 100, 8);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	uint64_t old = 0;
	cr_assert_eq(cpu_atomic_xchg_u64(mm, addr + 2 * PG - 8, 4, &old), 0);
	cr_assert_eq(old, 0);
	cr_assert_eq(read_u64(mm, addr + 2 * PG - 8), 4);
	mmput(mm);
}

Test(fault, mprotect_ro_then_rw_keeps_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 2 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, 2 * PG, 21);
	unsigned long pfn0 = pfn_at(mm, addr), pfn1 = pfn_at(mm, addr + PG);

	cr_assert_eq(mm_mprotect(mm, addr, PG, PROT_READ), 0);
	uint8_t b = 0x99;
	cr_assert_eq(cpu_write(mm, addr + 17, &b, 1), -EFAULT);
	cr_assert_eq(cpu_write(mm, addr + PG + 17, &b, 1), 0); /* other VMA still writable */
	check_at(mm, addr, 0, PG, 21);
	cr_assert_eq(pfn_at(mm, addr), pfn0);

	cr_assert_eq(mm_mprotect(mm, addr, PG, PROT_READ | PROT_WRITE), 0);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	cr_assert_eq(cpu_write(mm, addr + 17, &b, 1), 0);
	cr_assert_eq(pfn_at(mm, addr), pfn0, "an exclusive anon page is reused, not copied");
	cr_assert_eq(pfn_at(mm, addr + PG), pfn1);
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	struct folio *folio = page_folio(pfn_to_page(pfn0));
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(folio_mapcount(folio), 1);
	cr_assert_eq(rss_bytes(mm), 2 * PG);

	uint8_t buf[PG];
	cr_assert_eq(cpu_read(mm, addr, buf, PG), 0);
	for (size_t i = 0; i < PG; i++)
		cr_assert_eq(buf[i], i == 17 ? 0x99 : pattern_byte(21, i));
	mmput(mm);
}

/* ---- injected allocation failures ---- */

Test(fault, fail_nth_allocation_then_recover)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 8 * PG, PROT_READ | PROT_WRITE, 0);
	fill_at(mm, addr, 0, PG, 100); /* page tables exist from here on */
	check_zero(mm, addr + 5 * PG, 1);  /* page 5: zero page */

	struct fault_attr a = fail_nth(3, 1);
	uhmm_fail_page_alloc(machine, &a);
	fill_at(mm, addr, PG, PG, 101);
	fill_at(mm, addr, 2 * PG, PG, 102);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	uint8_t buf[PG];
	memset(buf, 0x77, sizeof(buf));
	cr_assert_eq(cpu_write(mm, addr + 3 * PG, buf, PG), -ENOMEM, "the third allocation fails");
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 1);
	cr_assert_eq(pagemap(mm, addr + 3 * PG), 0, "a failed fault installs nothing");
	cr_assert_eq(uhmm_nr_free_pages(machine), free0);
	cr_assert_eq(rss_bytes(mm), 3 * PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 3);
	check_zero(mm, addr + 3 * PG, PG);
	check_at(mm, addr, 0, PG, 100);
	check_at(mm, addr, PG, PG, 101);
	check_at(mm, addr, 2 * PG, PG, 102);

	/* times was 1: the same write now succeeds. */
	fill_at(mm, addr, 3 * PG, PG, 103);
	check_at(mm, addr, 3 * PG, PG, 103);
	cr_assert_eq(uhmm_fail_page_alloc_count(machine), 1);

	/* A write fault on the zero page that cannot allocate keeps the zero page. */
	a = fail_nth(1, 1);
	uhmm_fail_page_alloc(machine, &a);
	cr_assert_eq(cpu_write(mm, addr + 5 * PG + 9, buf, 1), -ENOMEM);
	cr_assert_eq(pfn_at(mm, addr + 5 * PG), uhmm_zero_pfn(machine));
	check_zero(mm, addr + 5 * PG, PG);
	/* An atomic that cannot allocate changes nothing either. */
	a = fail_nth(1, 1);
	uhmm_fail_page_alloc(machine, &a);
	uint64_t old = 5;
	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, addr + 6 * PG, 4, &old), -ENOMEM);
	cr_assert_eq(pagemap(mm, addr + 6 * PG), 0);
	cr_assert_eq(rss_bytes(mm), 4 * PG);
	cr_assert_eq(cpu_atomic_fetch_add_u64(mm, addr + 6 * PG, 4, &old), 0);
	cr_assert_eq(old, 0);
	cr_assert_eq(read_u64(mm, addr + 6 * PG), 4);
	cr_assert_eq(cpu_write(mm, addr + 5 * PG + 9, buf, 1), 0);
	cr_assert_neq(pfn_at(mm, addr + 5 * PG), uhmm_zero_pfn(machine));
	uhmm_fail_page_alloc(machine, NULL);

	for (int i = 0; i < 4; i++)
		check_at(mm, addr, i * PG, PG, 100 + i);
	cr_assert_eq(rss_bytes(mm), 6 * PG);
	mmput(mm);
}

Test(fault, fail_every_allocation_then_recover)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4UL << 20, PROT_READ | PROT_WRITE, 0);
	unsigned long free0 = uhmm_nr_free_pages(machine);
	struct fault_attr a = fail_nth(1, -1);
	uhmm_fail_page_alloc(machine, &a);
	uint8_t b = 1;
	cr_assert_eq(cpu_write(mm, addr + 123, &b, 1), -ENOMEM);
	cr_assert_eq(cpu_memset(mm, addr + (3UL << 20), 2, 10), -ENOMEM);
	cr_assert_geq(uhmm_fail_page_alloc_count(machine), 2);
	cr_assert_eq(rss_bytes(mm), 0);
	cr_assert_eq(pagemap(mm, addr), 0);
	uhmm_fail_page_alloc(machine, NULL);
	cr_assert_leq(free0 - uhmm_nr_free_pages(machine), 3, "only page tables may remain allocated");
	assert_audit_clean();

	cr_assert_eq(cpu_write(mm, addr + 123, &b, 1), 0);
	cr_assert_eq(cpu_memset(mm, addr + (3UL << 20), 2, 10), 0);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	mmput(mm);
}

/*
 * Fail the N-th allocation for each N while two faults that need fresh page
 * tables run; whatever fails, retrying succeeds and no byte is lost.
 */
Test(fault, fail_nth_sweep_keeps_data)
{
	for (unsigned long n = 1; n <= 8; n++) {
		struct mm_struct *mm = new_mm();
		unsigned long addr = map_anon(mm, 0, 4UL << 20, PROT_READ | PROT_WRITE, 0);
		struct fault_attr a = fail_nth(n, 1);
		uhmm_fail_page_alloc(machine, &a);
		int failures = 0;
		unsigned long offs[3] = { 0, 600 * PG, 3 * PG };
		for (int k = 0; k < 3; k++) {
			int ret;
			for (int tries = 0; (ret = cpu_write(mm, addr + offs[k], &n, sizeof(n))) != 0;
			     tries++) {
				cr_assert_eq(ret, -ENOMEM, "n=%lu: cpu_write = %d", n, ret);
				cr_assert_lt(tries, 1, "n=%lu: times=1 yet failed twice", n);
				failures++;
			}
		}
		cr_assert_leq(failures, 1);
		cr_assert_eq((unsigned long)failures, uhmm_fail_page_alloc_count(machine));
		if (n == 1)
			cr_assert_eq(failures, 1, "the very first allocation must be observable");
		for (int k = 0; k < 3; k++)
			cr_assert_eq(read_u64(mm, addr + offs[k]), n);
		cr_assert_eq(rss_bytes(mm), 3 * PG);
		uhmm_fail_page_alloc(machine, NULL);
		assert_audit_clean();
		mmput(mm);
	}
}

/* ---- real out of memory on a small machine ---- */

static void small_machine_setup(void)
{
	struct uhmm_machine_config cfg = { .ram_size = 4UL << 20 };
	machine_setup_with(&cfg);
}

TestSuite(fault_small, .init = small_machine_setup, .fini = machine_teardown);

Test(fault_small, oom_then_munmap_recovers)
{
	cr_assert_eq(uhmm_totalram_pages(machine), 1024);
	struct mm_struct *mm = new_mm();
	unsigned long len = 8UL << 20;
	unsigned long addr = map_anon(mm, 0, len, PROT_READ | PROT_WRITE, 0);

	unsigned long n = 0;
	int ret = 0;
	for (; n < len / PG; n++) {
		uint64_t v = 0x1000000 + n;
		ret = cpu_write(mm, addr + n * PG + (n % 500) * 8, &v, sizeof(v));
		if (ret)
			break;
	}
	cr_assert_eq(ret, -ENOMEM, "write %lu returned %d", n, ret);
	cr_assert_gt(n, 950, "only %lu pages before OOM", n);
	cr_assert_lt(n, 1024);
	cr_assert_eq(uhmm_nr_free_pages(machine), 0, "OOM with %lu pages free",
		     uhmm_nr_free_pages(machine));
	cr_assert_eq(rss_bytes(mm), n * PG);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)n);
	cr_assert_eq(pagemap(mm, addr + n * PG), 0);
	/* Failing again changes nothing. */
	uint64_t v = 7;
	cr_assert_eq(cpu_write(mm, addr + n * PG, &v, sizeof(v)), -ENOMEM);
	assert_audit_clean();

	/* Everything written before is intact (reading present pages allocates nothing). */
	for (unsigned long i = 0; i < n; i++) {
		cr_assert_eq(read_u64(mm, addr + i * PG + (i % 500) * 8), 0x1000000 + i, "page %lu",
			     i);
		if (i % 500 != 0)
			cr_assert_eq(read_u64(mm, addr + i * PG), 0);
	}

	/* Unmapping the first MiB gives its 256 pages back and writes work again. */
	cr_assert_eq(mm_munmap(mm, addr, 1UL << 20), 0);
	cr_assert_geq(uhmm_nr_free_pages(machine), 256);
	cr_assert_eq(rss_bytes(mm), (n - 256) * PG);
	v = 0xfeed;
	cr_assert_eq(cpu_write(mm, addr + n * PG, &v, sizeof(v)), 0);
	cr_assert_eq(read_u64(mm, addr + n * PG), 0xfeed);
	for (unsigned long i = 256; i < n; i++)
		cr_assert_eq(read_u64(mm, addr + i * PG + (i % 500) * 8), 0x1000000 + i, "page %lu",
			     i);
	cr_assert_eq(rss_bytes(mm), (n - 255) * PG);
	mmput(mm);
	cr_assert_eq(uhmm_nr_free_pages(machine) + uhmm_nr_reserved_pages(machine), 1024);
}

Test(fault_small, oom_across_two_mms)
{
	struct mm_struct *a = new_mm(), *b = new_mm();
	unsigned long la = 8UL << 20;
	unsigned long xa = map_anon(a, 0, la, PROT_READ | PROT_WRITE, 0);
	unsigned long xb = map_anon(b, 0, la, PROT_READ | PROT_WRITE, 0);
	unsigned long n = 0;
	int ret = 0;
	for (; n < la / PG; n++) {
		uint64_t v = n;
		struct mm_struct *mm = (n & 1) ? b : a;
		unsigned long base = (n & 1) ? xb : xa;
		if ((ret = cpu_write(mm, base + (n / 2) * PG, &v, sizeof(v))) != 0)
			break;
	}
	cr_assert_eq(ret, -ENOMEM);
	cr_assert_gt(n, 900);
	/* Freeing one mm entirely lets the other continue. */
	mmput(a);
	uint64_t v = 5;
	cr_assert_eq(cpu_write(b, xb + (n / 2 + 1) * PG, &v, sizeof(v)), 0);
	for (unsigned long i = 1; i < n; i += 2)
		cr_assert_eq(read_u64(b, xb + (i / 2) * PG), i);
	mmput(b);
}
