/* SPDX-License-Identifier: MIT */
/*
 * tests/test_fork.c - mm_fork(): copy-on-write after fork with Linux's
 * semantics, checked with exact data, PFNs (pagemap), refcounts and
 * mapcounts, PageAnonExclusive, RSS and free page counts.
 *
 *  - 4 KiB pages: shared read-only after fork (refcount 2, mapcount 2, not
 *    anon-exclusive); the first writer copies, the last one reuses in place;
 *  - THP: the PMD stays a PMD on both sides; a write splits the writer's PMD
 *    and copies one 4 KiB page (Linux >= 5.8); a THP mapped once again is
 *    reused in place;
 *  - the zero page and the huge zero page: copied as they are where the VMA
 *    has an anon_vma, not copied at all where it has none (copy_page_range()
 *    skips such VMAs; the child faults them in again);
 *  - exit of either side frees exactly what it alone held;
 *  - MADV_DONTFORK / MADV_DOFORK, MADV_WIPEONFORK / MADV_KEEPONFORK;
 *  - several generations and siblings, with rmap_walk_anon();
 *  - mprotect'ed, PROT_NONE and partially unmapped THP ranges;
 *  - a fork loop racing a writer; allocation failure at every step of fork.
 *
 * Every test calls the audit after fork and after COW faults; the fixture's
 * teardown audits again and checks that every page is free.
 */
#include "helpers.h"
#include "internal.h"
#include "uhmm/gup.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PG PAGE_SIZE
#define HPS HPAGE_PMD_SIZE
#define NR HPAGE_PMD_NR
#define RW (PROT_READ | PROT_WRITE)

TestSuite(fork, .init = machine_setup, .fini = machine_teardown);

/* ------------------------------------------------------------------ */
/* Local helpers                                                       */
/* ------------------------------------------------------------------ */

/* mm_fork() that asserts success and checks the new mm's user count. */
static struct mm_struct *fork_mm(struct mm_struct *mm)
{
	struct mm_struct *child = mm_fork(mm);

	cr_assert(!IS_ERR_OR_NULL(child), "mm_fork() = %ld", PTR_ERR(child));
	cr_assert_eq(atomic_load(&child->mm_users), 1);
	cr_assert_neq(child, mm);
	return child;
}

static unsigned long nr_free(void)
{
	return uhmm_nr_free_pages(machine);
}

/* Page-table pages of @mm, the PGD included. */
static unsigned long table_pages(struct mm_struct *mm)
{
	return smaps(mm).page_tables / PG + 1;
}

static long anon_rss(struct mm_struct *mm)
{
	return mm_get_rss(mm, MM_ANONPAGES);
}

/*
 * The entry that maps @addr: 1 if it allows writes, 0 if present but
 * read-only (a write takes a fault), -1 if none.  *@leaf tells whether it
 * is a PMD leaf.
 */
static int entry_state(struct mm_struct *mm, unsigned long addr, bool *leaf)
{
	pmd_t *pmd;
	pmd_t val;
	int ret = -1;

	*leaf = false;
	pthread_rwlock_rdlock(&mm->mmap_lock);
	pmd = pmd_off(mm, addr);
	if (!pmd)
		goto out;
	val = pmdp_get(pmd);
	if (pmd_leaf(val)) {
		*leaf = true;
		ret = pmd_write(val);
	} else if (!pmd_none(val) && !is_swap_pmd(val)) {
		pthread_mutex_t *ptl;
		pte_t *pte = pte_offset_map_lock(mm, pmd, addr, &ptl);

		if (pte) {
			pte_t e = ptep_get(pte);

			if (pte_present(e))
				ret = pte_write(e);
			spin_unlock(ptl);
		}
	}
out:
	pthread_rwlock_unlock(&mm->mmap_lock);
	return ret;
}

static int writable(struct mm_struct *mm, unsigned long addr)
{
	bool leaf;

	return entry_state(mm, addr, &leaf);
}

static bool pmd_mapped(struct mm_struct *mm, unsigned long addr)
{
	bool leaf;

	entry_state(mm, addr, &leaf);
	return leaf;
}

static struct page *page_at(struct mm_struct *mm, unsigned long addr)
{
	return pfn_to_page(pfn_at(mm, addr));
}

/* The PFNs of @n pages from @addr (0 where nothing is mapped). */
static unsigned long *pfns(struct mm_struct *mm, unsigned long addr, unsigned long n)
{
	uint64_t *pm = calloc(n, sizeof(*pm));
	unsigned long *out = calloc(n, sizeof(*out));

	cr_assert(pm && out);
	cr_assert_eq(mm_pagemap_read(mm, addr, n, pm), 0);
	for (unsigned long i = 0; i < n; i++)
		out[i] = (pm[i] & PM_PRESENT) ? (unsigned long)(pm[i] & PM_PFRAME_MASK) : 0;
	free(pm);
	return out;
}

/* A private order-0 anon page: refcount 1, mapcount 1, exclusive, writable. */
static void assert_private_page(struct mm_struct *mm, unsigned long addr)
{
	struct page *page = page_at(mm, addr);
	struct folio *folio = page_folio(page);

	cr_assert_eq(folio_order(folio), 0, "order %u at %#lx", folio_order(folio), addr);
	cr_assert(folio_test_anon(folio));
	cr_assert_eq(folio_ref_count(folio), 1, "refcount %d at %#lx", folio_ref_count(folio),
		     addr);
	cr_assert_eq(folio_mapcount(folio), 1);
	cr_assert(PageAnonExclusive(page), "page at %#lx is not anon-exclusive", addr);
	cr_assert_eq(writable(mm, addr), 1, "entry at %#lx is not writable", addr);
	cr_assert(pagemap(mm, addr) & PM_MMAP_EXCLUSIVE);
}

/* An order-0 anon page that @n mms share copy-on-write. */
static void assert_shared_page(struct mm_struct *mm, unsigned long addr, int n)
{
	struct page *page = page_at(mm, addr);
	struct folio *folio = page_folio(page);

	cr_assert_eq(folio_order(folio), 0);
	cr_assert_eq(folio_ref_count(folio), n, "refcount %d at %#lx, want %d",
		     folio_ref_count(folio), addr, n);
	cr_assert_eq(folio_mapcount(folio), n, "mapcount %d at %#lx, want %d",
		     folio_mapcount(folio), addr, n);
	cr_assert_eq(page_mapcount(page), n);
	cr_assert_eq(uhmm_kpagecount(page_to_pfn(page)), n);
	cr_assert_not(PageAnonExclusive(page), "shared page at %#lx is anon-exclusive", addr);
	cr_assert_eq(writable(mm, addr), 0, "shared page at %#lx is mapped writable", addr);
	cr_assert_eq(pagemap(mm, addr) & PM_MMAP_EXCLUSIVE, 0);
}

static int write_byte(struct mm_struct *mm, unsigned long addr, uint8_t b)
{
	return cpu_write(mm, addr, &b, 1);
}

static int read_byte(struct mm_struct *mm, unsigned long addr, uint8_t *b)
{
	return cpu_read(mm, addr, b, 1);
}

/* ---- rmap ---- */

struct rmap_hit {
	struct mm_struct *mm;
	unsigned long addr;
	struct vm_area_struct *vma;
};

struct rmap_log {
	int n;
	struct rmap_hit hits[32];
};

static bool rmap_collect_one(struct folio *folio, struct vm_area_struct *vma, unsigned long addr,
			     void *arg)
{
	struct rmap_log *log = arg;

	(void)folio;
	if (log->n < (int)(sizeof(log->hits) / sizeof(log->hits[0])))
		log->hits[log->n] = (struct rmap_hit){ vma->vm_mm, addr, vma };
	log->n++;
	return true;
}

static struct rmap_log rmap_collect(struct folio *folio)
{
	struct rmap_log log = { 0 };

	folio_lock(folio);
	rmap_walk_anon(folio, rmap_collect_one, &log);
	folio_unlock(folio);
	cr_assert_leq(log.n, 32);
	return log;
}

/* Does @mm map a page of @folio at @addr? */
static bool maps_folio(struct mm_struct *mm, unsigned long addr, struct folio *folio)
{
	uint64_t e = pagemap(mm, addr);
	unsigned long pfn = (unsigned long)(e & PM_PFRAME_MASK);

	return (e & PM_PRESENT) && pfn >= folio_pfn(folio) &&
	       pfn < folio_pfn(folio) + folio_nr_pages(folio);
}

/*
 * Walk @folio's rmap and check that each of the @n (mm, addr) pairs that
 * map it is visited exactly once.  A visited pair outside that set must be
 * a VMA that may map the folio but does not (Linux's rmap_walk visits every
 * VMA linked to the folio's anon_vma; rmap_one then finds nothing there).
 * Return: the number of such extra candidates.
 */
static int assert_rmap(struct folio *folio, struct mm_struct **mms, const unsigned long *addrs,
		       int n)
{
	struct rmap_log log = rmap_collect(folio);
	int extra = 0;

	for (int i = 0; i < n; i++) {
		int seen = 0;

		for (int h = 0; h < log.n; h++)
			if (log.hits[h].mm == mms[i] && log.hits[h].addr == addrs[i])
				seen++;
		cr_assert_eq(seen, 1, "rmap of folio %#lx visits (mm %d, %#lx) %d times",
			     folio_pfn(folio), i, addrs[i], seen);
		cr_assert(maps_folio(mms[i], addrs[i], folio));
	}
	for (int h = 0; h < log.n; h++) {
		bool expected = false;

		for (int i = 0; i < n; i++)
			expected |= log.hits[h].mm == mms[i] && log.hits[h].addr == addrs[i];
		if (expected)
			continue;
		cr_assert_not(maps_folio(log.hits[h].mm, log.hits[h].addr, folio),
			      "rmap visits a mapping of folio %#lx at %#lx the test did not expect",
			      folio_pfn(folio), log.hits[h].addr);
		extra++;
	}

	/* folio_rmap_query(): exactly the entries that map it, one record each. */
	enum { MAXQ = 4 * HPAGE_PMD_NR };
	struct folio_mapping_info *q = calloc(MAXQ, sizeof(*q));
	cr_assert(q);
	int nq = folio_rmap_query(folio, q, MAXQ);
	cr_assert_eq(nq, folio_mapcount(folio), "folio_rmap_query finds %d entries, mapcount %d",
		     nq, folio_mapcount(folio));
	cr_assert_leq(nq, MAXQ);
	for (int r = 0; r < nq; r++) {
		bool ok = false;

		for (int i = 0; i < n; i++)
			ok |= q[r].mm == mms[i] && q[r].address >= addrs[i] &&
			      q[r].address < addrs[i] + folio_size(folio);
		cr_assert(ok, "folio_rmap_query: unexpected mapping at %#lx", q[r].address);
		cr_assert(q[r].pfn >= folio_pfn(folio) &&
			  q[r].pfn < folio_pfn(folio) + folio_nr_pages(folio));
		cr_assert_eq(q[r].pmd_mapped, pmd_mapped(q[r].mm, q[r].address));
	}
	for (int i = 0; i < n; i++) {
		int found = 0;

		for (int r = 0; r < nq; r++)
			found += q[r].mm == mms[i] && q[r].address >= addrs[i] &&
				 q[r].address < addrs[i] + folio_size(folio);
		cr_assert_geq(found, 1, "folio_rmap_query misses mm %d", i);
	}
	free(q);
	return extra;
}

/* ------------------------------------------------------------------ */
/* Basics                                                              */
/* ------------------------------------------------------------------ */

Test(fork, empty_mm)
{
	struct mm_struct *mm = new_mm();
	unsigned long free0 = nr_free();
	struct mm_struct *child = fork_mm(mm);

	cr_assert_eq(nr_vmas(child), 0);
	cr_assert_eq(free0 - nr_free(), 1, "an empty child costs its PGD only");
	assert_audit_clean();
	mmput(child);
	cr_assert_eq(nr_free(), free0);
	mmput(mm);
}

Test(fork, vmas_copied_without_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 16 * PG, RW, 0);
	unsigned long b = map_anon(mm, 0, 8 * PG, PROT_READ, 0);
	unsigned long c = map_anon(mm, 0, 4 * PG, PROT_NONE, 0);
	unsigned long free0 = nr_free();
	struct mm_struct *child = fork_mm(mm);

	cr_assert_eq(nr_vmas(child), nr_vmas(mm));
	cr_assert_eq(nr_vmas(child), 3);
	for (size_t i = 0; i < nr_vmas(mm); i++) {
		cr_assert_eq(child->mm_mt.vmas[i]->vm_start, mm->mm_mt.vmas[i]->vm_start);
		cr_assert_eq(child->mm_mt.vmas[i]->vm_end, mm->mm_mt.vmas[i]->vm_end);
		cr_assert_eq(child->mm_mt.vmas[i]->vm_flags, mm->mm_mt.vmas[i]->vm_flags);
		cr_assert_eq(child->mm_mt.vmas[i]->vm_mm, child);
	}
	cr_assert_eq(free0 - nr_free(), 1, "no VMA has pages: nothing but the PGD is copied");
	assert_audit_clean();
	/* The child's address space behaves like the parent's. */
	check_zero(child, a, 16 * PG);
	check_zero(child, b, 8 * PG);
	cr_assert_eq(write_byte(child, b, 1), -EFAULT);
	cr_assert_eq(read_byte(child, c, &(uint8_t){ 0 }), -EFAULT);
	fill_pattern(child, a, 16 * PG, 7);
	check_pattern(child, a, 16 * PG, 7);
	check_zero(mm, a, 16 * PG);
	/* A new mapping in the child is not the parent's. */
	unsigned long d = map_anon(child, 0, 4 * PG, RW, 0);
	fill_pattern(child, d, 4 * PG, 8);
	cr_assert_eq(nr_vmas(child), 4);
	cr_assert_eq(nr_vmas(mm), 3);
	cr_assert_eq(read_byte(mm, d, &(uint8_t){ 0 }), -EFAULT);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* 4 KiB pages                                                         */
/* ------------------------------------------------------------------ */

#define N4K 16

Test(fork, small_pages_shared_readonly)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, N4K * PG, RW, 0);

	fill_pattern(mm, a, N4K * PG, 1);
	unsigned long *p0 = pfns(mm, a, N4K);
	for (int i = 0; i < N4K; i++)
		assert_private_page(mm, a + i * PG);
	unsigned long free0 = nr_free();

	struct mm_struct *child = fork_mm(mm);
	assert_audit_clean();

	unsigned long *pc = pfns(child, a, N4K);
	unsigned long *pp = pfns(mm, a, N4K);
	for (int i = 0; i < N4K; i++) {
		cr_assert_eq(pc[i], p0[i], "page %d: child pfn %#lx, parent had %#lx", i, pc[i],
			     p0[i]);
		cr_assert_eq(pp[i], p0[i]);
		assert_shared_page(mm, a + i * PG, 2);
		assert_shared_page(child, a + i * PG, 2);
	}
	check_pattern(child, a, N4K * PG, 1);
	check_pattern(mm, a, N4K * PG, 1);
	/* Reads take no COW fault: still shared. */
	assert_shared_page(child, a, 2);

	cr_assert_eq(anon_rss(mm), N4K);
	cr_assert_eq(anon_rss(child), N4K);
	struct mm_smaps s = smaps(child);
	cr_assert_eq(s.rss, N4K * PG);
	cr_assert_eq(s.anonymous, N4K * PG);
	cr_assert_eq(s.anon_huge_pages, 0);
	cr_assert_eq(rss_bytes(mm), N4K * PG);
	/* Fork allocated the child's page tables and nothing else. */
	cr_assert_eq(free0 - nr_free(), table_pages(child), "fork took %lu pages, child tables %lu",
		     free0 - nr_free(), table_pages(child));
	free(p0);
	free(pc);
	free(pp);
	mmput(child);
	cr_assert_eq(nr_free(), free0);
	assert_audit_clean();
	/* The parent is alone again: its write reuses every page in place. */
	p0 = pfns(mm, a, N4K);
	fill_pattern(mm, a, N4K * PG, 2);
	for (int i = 0; i < N4K; i++) {
		cr_assert_eq(pfn_at(mm, a + i * PG), p0[i]);
		assert_private_page(mm, a + i * PG);
	}
	cr_assert_eq(nr_free(), free0);
	check_pattern(mm, a, N4K * PG, 2);
	free(p0);
	mmput(mm);
}

Test(fork, child_writes_first_then_parent_reuses)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, N4K * PG, RW, 0);

	fill_pattern(mm, a, N4K * PG, 1);
	unsigned long *p0 = pfns(mm, a, N4K);
	struct mm_struct *child = fork_mm(mm);
	assert_audit_clean();
	unsigned long free1 = nr_free();

	/* The child writes 50 bytes in page 3: COW copies the page. */
	fill_at(child, a, 3 * PG + 100, 50, 2);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), 1, "one COW copy");
	cr_assert_neq(pfn_at(child, a + 3 * PG), p0[3]);
	assert_private_page(child, a + 3 * PG);
	check_at(child, a, 0, 3 * PG + 100, 1);
	check_at(child, a, 3 * PG + 100, 50, 2);
	check_at(child, a, 3 * PG + 150, N4K * PG - 3 * PG - 150, 1);
	/* The parent still maps the old page, read-only, now its only user. */
	check_pattern(mm, a, N4K * PG, 1);
	struct page *old = pfn_to_page(p0[3]);
	cr_assert_eq(pfn_at(mm, a + 3 * PG), p0[3]);
	cr_assert_eq(folio_ref_count(page_folio(old)), 1);
	cr_assert_eq(folio_mapcount(page_folio(old)), 1);
	cr_assert_not(PageAnonExclusive(old));
	cr_assert_eq(writable(mm, a + 3 * PG), 0);
	cr_assert(pagemap(mm, a + 3 * PG) & PM_MMAP_EXCLUSIVE);
	cr_assert_eq(anon_rss(child), N4K);
	cr_assert_eq(anon_rss(mm), N4K);
	/* Other pages are untouched. */
	assert_shared_page(mm, a + 4 * PG, 2);

	/* The parent's write reuses its page in place. */
	unsigned long free2 = nr_free();
	fill_at(mm, a, 3 * PG + 8, 16, 3);
	assert_audit_clean();
	cr_assert_eq(pfn_at(mm, a + 3 * PG), p0[3]);
	assert_private_page(mm, a + 3 * PG);
	cr_assert_eq(nr_free(), free2, "reuse allocates nothing");
	check_at(mm, a, 3 * PG, 8, 1);
	check_at(mm, a, 3 * PG + 8, 16, 3);
	check_at(mm, a, 3 * PG + 24, PG - 24, 1);
	/* ... and the child does not see it. */
	check_at(child, a, 3 * PG, 100, 1);
	check_at(child, a, 3 * PG + 100, 50, 2);
	free(p0);
	mmput(child);
	mmput(mm);
}

Test(fork, parent_writes_first_then_child_reuses)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, N4K * PG, RW, 0);

	fill_pattern(mm, a, N4K * PG, 1);
	unsigned long *p0 = pfns(mm, a, N4K);
	struct mm_struct *child = fork_mm(mm);
	unsigned long free1 = nr_free();

	fill_at(mm, a, 5 * PG, PG, 4);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), 1);
	cr_assert_neq(pfn_at(mm, a + 5 * PG), p0[5]);
	assert_private_page(mm, a + 5 * PG);
	cr_assert_eq(pfn_at(child, a + 5 * PG), p0[5]);
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(p0[5]))), 1);
	cr_assert_eq(writable(child, a + 5 * PG), 0);
	check_at(child, a, 0, N4K * PG, 1);
	check_at(mm, a, 5 * PG, PG, 4);

	unsigned long free2 = nr_free();
	fill_at(child, a, 5 * PG + PG / 2, 1, 5);
	assert_audit_clean();
	cr_assert_eq(pfn_at(child, a + 5 * PG), p0[5], "the child's write reuses the old page");
	assert_private_page(child, a + 5 * PG);
	cr_assert_eq(nr_free(), free2);
	check_at(child, a, 5 * PG, PG / 2, 1);
	check_at(child, a, 5 * PG + PG / 2, 1, 5);
	check_at(child, a, 5 * PG + PG / 2 + 1, PG / 2 - 1, 1);
	check_at(mm, a, 5 * PG, PG, 4);
	free(p0);
	mmput(mm);
	mmput(child);
}

Test(fork, both_sides_write_everything)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, N4K * PG, RW, 0);

	fill_pattern(mm, a, N4K * PG, 1);
	unsigned long *p0 = pfns(mm, a, N4K);
	struct mm_struct *child = fork_mm(mm);
	unsigned long free1 = nr_free();

	/* Child first on even pages, parent first on odd pages. */
	for (int i = 0; i < N4K; i++) {
		struct mm_struct *first = (i & 1) ? mm : child;

		fill_at(first, a, (unsigned long)i * PG, PG, first == mm ? 10 : 20);
	}
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), N4K, "one copy per page");
	for (int i = 0; i < N4K; i++) {
		struct mm_struct *second = (i & 1) ? child : mm;

		fill_at(second, a, (unsigned long)i * PG, PG, second == mm ? 10 : 20);
	}
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), N4K, "the second writer reuses");
	check_pattern(mm, a, N4K * PG, 10);
	check_pattern(child, a, N4K * PG, 20);
	unsigned long *pp = pfns(mm, a, N4K), *pc = pfns(child, a, N4K);
	for (int i = 0; i < N4K; i++) {
		/* The second writer kept the original page. */
		cr_assert_eq((i & 1) ? pc[i] : pp[i], p0[i], "page %d", i);
		cr_assert_neq(pp[i], pc[i]);
		assert_private_page(mm, a + (unsigned long)i * PG);
		assert_private_page(child, a + (unsigned long)i * PG);
	}
	cr_assert_eq(anon_rss(mm), N4K);
	cr_assert_eq(anon_rss(child), N4K);
	free(p0);
	free(pp);
	free(pc);
	mmput(child);
	mmput(mm);
}

Test(fork, atomics_break_cow)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * PG, RW, 0);
	uint64_t v = 100, old = 0;

	cr_assert_eq(cpu_write(mm, a + 8, &v, 8), 0);
	unsigned long p0 = pfn_at(mm, a);
	struct mm_struct *child = fork_mm(mm);

	cr_assert_eq(cpu_atomic_fetch_add_u64(child, a + 8, 5, &old), 0);
	cr_assert_eq(old, 100);
	cr_assert_neq(pfn_at(child, a), p0);
	cr_assert_eq(cpu_atomic_xchg_u64(mm, a + 8, 7, &old), 0);
	cr_assert_eq(old, 100);
	cr_assert_eq(pfn_at(mm, a), p0, "the parent is the last user: reuse");
	/* A failed cmpxchg still needs write access (x86): no effect on data. */
	struct mm_struct *child2 = fork_mm(mm);
	cr_assert_eq(cpu_atomic_cmpxchg_u64(child2, a + 8, 1, 2, &old), 0);
	cr_assert_eq(old, 7);
	cr_assert_neq(pfn_at(child2, a), p0, "cmpxchg takes a write fault and copies");
	assert_audit_clean();
	cr_assert_eq(cpu_read(child, a + 8, &v, 8), 0);
	cr_assert_eq(v, 105);
	cr_assert_eq(cpu_read(mm, a + 8, &v, 8), 0);
	cr_assert_eq(v, 7);
	cr_assert_eq(cpu_read(child2, a + 8, &v, 8), 0);
	cr_assert_eq(v, 7);
	mmput(child2);
	mmput(child);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* Exit frees what each side alone held                                */
/* ------------------------------------------------------------------ */

Test(fork, child_exit_frees_its_own)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 32 * PG, RW, 0);
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, a, 32 * PG, 1);
	fill_pattern(mm, t, HPS, 2);
	unsigned long free0 = nr_free();
	struct mm_struct *child = fork_mm(mm);
	unsigned long tables = table_pages(child);

	cr_assert_eq(free0 - nr_free(), tables);
	/* 4 COW copies of small pages and one out of the THP (splitting the child's PMD). */
	for (int i = 0; i < 4; i++)
		fill_at(child, a, (unsigned long)i * 7 * PG, 64, 3);
	fill_at(child, t, 300 * PG, 64, 3);
	assert_audit_clean();
	cr_assert_eq(free0 - nr_free(), tables + 5);
	cr_assert_eq(table_pages(child), tables, "the split used the deposited table");

	mmput(child);
	cr_assert_eq(nr_free(), free0, "the child's exit frees its tables and its 5 copies");
	assert_audit_clean();
	/* The parent's pages are its own again. */
	cr_assert_eq(folio_ref_count(folio_at(mm, a)), 1);
	struct folio *thp = folio_at(mm, t);
	cr_assert_eq(folio_ref_count(thp), 1);
	cr_assert_eq(folio_entire_mapcount(thp), 1);
	cr_assert_eq(folio_mapcount(thp), 1);
	check_pattern(mm, a, 32 * PG, 1);
	check_pattern(mm, t, HPS, 2);
	mmput(mm);
}

Test(fork, parent_exit_frees_its_own)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 32 * PG, RW, 0);
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, a, 32 * PG, 1);
	fill_pattern(mm, t, HPS, 2);
	unsigned long *p0 = pfns(mm, a, 32);
	unsigned long thp = pfn_at(mm, t);
	struct mm_struct *child = fork_mm(mm);

	/* The parent copies 3 pages; the child keeps the originals. */
	fill_at(mm, a, 0, PG, 5);
	fill_at(mm, a, 10 * PG, PG, 5);
	fill_at(mm, a, 31 * PG, PG, 5);
	assert_audit_clean();
	unsigned long free1 = nr_free();
	unsigned long parent_tables = table_pages(mm);

	mmput(mm);
	cr_assert_eq(nr_free() - free1, parent_tables + 3,
		     "the parent's exit frees its tables and its 3 copies (%lu freed)",
		     nr_free() - free1);
	assert_audit_clean();
	/* The folios still point to the parent's anon_vma: rmap finds the child alone. */
	unsigned long a5 = a + 5 * PG;
	cr_assert_eq(assert_rmap(folio_at(child, a5), &child, &a5, 1), 0);
	cr_assert_eq(assert_rmap(folio_at(child, t), &child, &t, 1), 0);
	check_pattern(child, a, 32 * PG, 1);
	check_pattern(child, t, HPS, 2);
	/* The child is the last user of everything: writes reuse in place. */
	unsigned long free2 = nr_free();
	fill_pattern(child, a, 32 * PG, 6);
	for (int i = 0; i < 32; i++) {
		cr_assert_eq(pfn_at(child, a + (unsigned long)i * PG), p0[i]);
		assert_private_page(child, a + (unsigned long)i * PG);
	}
	fill_at(child, t, 77 * PG, 10, 7);
	cr_assert_eq(pfn_at(child, t), thp);
	cr_assert(pmd_mapped(child, t));
	cr_assert_eq(writable(child, t), 1);
	cr_assert(PageAnonExclusive(pfn_to_page(thp)));
	cr_assert_eq(nr_free(), free2);
	assert_audit_clean();
	check_pattern(child, a, 32 * PG, 6);
	check_at(child, t, 0, 77 * PG, 2);
	check_at(child, t, 77 * PG, 10, 7);
	free(p0);
	mmput(child);
}

Test(fork, dontneed_in_child_lets_parent_reuse)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PG, RW, 0);
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, a, 8 * PG, 1);
	fill_pattern(mm, t, HPS, 2);
	unsigned long p3 = pfn_at(mm, a + 3 * PG), thp = pfn_at(mm, t);
	struct mm_struct *child = fork_mm(mm);

	cr_assert_eq(mm_madvise(child, a, 8 * PG, MADV_DONTNEED), 0);
	cr_assert_eq(mm_madvise(child, t, HPS, MADV_DONTNEED), 0);
	assert_audit_clean();
	cr_assert_eq(anon_rss(child), 0);
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(p3))), 1);
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(thp))), 1);
	unsigned long free1 = nr_free();
	fill_at(mm, a, 3 * PG, 8, 3);
	fill_at(mm, t, 5, 8, 3);
	cr_assert_eq(nr_free(), free1, "both writes reuse");
	cr_assert_eq(pfn_at(mm, a + 3 * PG), p3);
	cr_assert_eq(pfn_at(mm, t), thp);
	cr_assert(pmd_mapped(mm, t));
	check_zero(child, a, 8 * PG);
	check_zero(child, t, 64 * PG);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* THP                                                                 */
/* ------------------------------------------------------------------ */

/* A PMD-mapped THP shared by @n mms: check counts and flags. */
static void assert_shared_thp(struct mm_struct *mm, unsigned long t, unsigned long head, int n)
{
	struct folio *folio = page_folio(pfn_to_page(head));

	cr_assert(pmd_mapped(mm, t));
	cr_assert_eq(writable(mm, t), 0, "a shared THP is mapped writable");
	cr_assert_eq(pfn_at(mm, t), head);
	cr_assert_eq(folio_pfn(folio), head);
	cr_assert_eq(folio_order(folio), HPAGE_PMD_ORDER);
	cr_assert_eq(folio_ref_count(folio), n, "THP refcount %d, want %d", folio_ref_count(folio),
		     n);
	cr_assert_eq(folio_entire_mapcount(folio), n);
	cr_assert_eq(folio_mapcount(folio), n);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 200)), n);
	cr_assert_eq(uhmm_kpagecount(head + 511), n);
	for (unsigned long i = 0; i < NR; i++)
		cr_assert_not(PageAnonExclusive(pfn_to_page(head + i)), "THP page %lu exclusive", i);
	cr_assert_eq(pagemap(mm, t + 9 * PG) & PM_MMAP_EXCLUSIVE, 0);
	cr_assert_eq(anon_huge(mm), HPS);
}

Test(fork, thp_stays_pmd_mapped)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	cr_assert(pmd_mapped(mm, t));
	cr_assert_eq(writable(mm, t), 1);
	unsigned long head = pfn_at(mm, t);
	unsigned long free0 = nr_free();
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	assert_shared_thp(mm, t, head, 2);
	assert_shared_thp(child, t, head, 2);
	unsigned long *pc = pfns(child, t, NR);
	for (unsigned long i = 0; i < NR; i++)
		cr_assert_eq(pc[i], head + i);
	free(pc);
	cr_assert_eq(anon_rss(child), NR);
	cr_assert_eq(anon_rss(mm), NR);
	cr_assert_eq(smaps(child).rss, HPS);
	cr_assert_eq(free0 - nr_free(), table_pages(child));
	/* PGD + PUD + PMD tables, and the PTE table deposited with the PMD. */
	cr_assert_eq(table_pages(child), 4);
	check_pattern(child, t, HPS, 1);
	assert_shared_thp(child, t, head, 2);
	mmput(child);
	mmput(mm);
}

Test(fork, thp_child_write_splits_child_copies_one_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	unsigned long head = pfn_at(mm, t);
	struct folio *thp = page_folio(pfn_to_page(head));
	struct mm_struct *child = fork_mm(mm);
	unsigned long free1 = nr_free();
	unsigned long tables = table_pages(child);
	uint64_t v = 0xfeedfacecafebeefULL;

	cr_assert_eq(cpu_write(child, t + 37 * PG + 5, &v, 8), 0);
	assert_audit_clean();

	/* The child's PMD was split; exactly one 4 KiB page was copied. */
	cr_assert_eq(free1 - nr_free(), 1, "%lu pages allocated", free1 - nr_free());
	cr_assert_eq(table_pages(child), tables);
	cr_assert_not(pmd_mapped(child, t));
	cr_assert_eq(anon_huge(child), 0);
	cr_assert_eq(smaps(child).rss, HPS);
	cr_assert_eq(anon_rss(child), NR);
	unsigned long *pc = pfns(child, t, NR);
	for (unsigned long i = 0; i < NR; i++) {
		if (i == 37)
			continue;
		cr_assert_eq(pc[i], head + i, "child page %lu: pfn %#lx, want %#lx", i, pc[i],
			     head + i);
		cr_assert_eq(writable(child, t + i * PG), i == 37);
	}
	cr_assert_neq(pc[37], head + 37);
	cr_assert(pc[37] < head || pc[37] >= head + NR);
	assert_private_page(child, t + 37 * PG);
	free(pc);
	/* The THP: 1 PMD (parent) + 511 PTEs (child). */
	cr_assert_eq(folio_ref_count(thp), 1 + 511);
	cr_assert_eq(folio_entire_mapcount(thp), 1);
	cr_assert_eq(folio_mapcount(thp), 1 + 511);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 37)), 1);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 36)), 2);
	cr_assert_eq(atomic_load(&thp->_nr_pages_mapped), 511);
	/* The parent is untouched: still PMD-mapped, read-only, same data. */
	cr_assert(pmd_mapped(mm, t));
	cr_assert_eq(writable(mm, t), 0);
	cr_assert_eq(pfn_at(mm, t + 37 * PG), head + 37);
	cr_assert_eq(anon_huge(mm), HPS);
	check_pattern(mm, t, HPS, 1);
	/* The child's data: the pattern with the 8 new bytes. */
	check_at(child, t, 0, 37 * PG + 5, 1);
	uint64_t got = 0;
	cr_assert_eq(cpu_read(child, t + 37 * PG + 5, &got, 8), 0);
	cr_assert_eq(got, v);
	check_at(child, t, 37 * PG + 13, HPS - 37 * PG - 13, 1);

	/* A second child write elsewhere: one more page, no more splits. */
	fill_at(child, t, 400 * PG, 3, 9);
	cr_assert_eq(free1 - nr_free(), 2);
	cr_assert_eq(folio_ref_count(thp), 1 + 510);
	assert_audit_clean();

	/* Child exits: the parent's write reuses the THP in place. */
	mmput(child);
	assert_audit_clean();
	cr_assert_eq(folio_ref_count(thp), 1);
	unsigned long free2 = nr_free();
	fill_at(mm, t, 1000, 24, 4);
	cr_assert_eq(nr_free(), free2);
	cr_assert_eq(pfn_at(mm, t), head);
	cr_assert(pmd_mapped(mm, t));
	cr_assert_eq(writable(mm, t), 1);
	cr_assert_eq(anon_huge(mm), HPS);
	/* A PMD mapping's exclusivity is the head page's flag (Linux). */
	cr_assert(PageAnonExclusive(pfn_to_page(head)));
	cr_assert(pagemap(mm, t) & PM_MMAP_EXCLUSIVE);
	check_at(mm, t, 0, 1000, 1);
	check_at(mm, t, 1000, 24, 4);
	check_at(mm, t, 1024, HPS - 1024, 1);
	assert_audit_clean();
	mmput(mm);
}

Test(fork, thp_parent_write_splits_parent_child_keeps_pmd)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	unsigned long head = pfn_at(mm, t);
	struct folio *thp = page_folio(pfn_to_page(head));
	struct mm_struct *child = fork_mm(mm);
	unsigned long free1 = nr_free();

	fill_at(mm, t, HPS - PG, PG, 2);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), 1);
	cr_assert_not(pmd_mapped(mm, t));
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_neq(pfn_at(mm, t + HPS - PG), head + NR - 1);
	cr_assert_eq(pfn_at(mm, t + HPS - 2 * PG), head + NR - 2);
	assert_private_page(mm, t + HPS - PG);
	/* The child keeps its PMD. */
	cr_assert(pmd_mapped(child, t));
	cr_assert_eq(anon_huge(child), HPS);
	cr_assert_eq(folio_entire_mapcount(thp), 1);
	cr_assert_eq(folio_ref_count(thp), 512);
	check_pattern(child, t, HPS, 1);
	check_at(mm, t, 0, HPS - PG, 1);
	check_at(mm, t, HPS - PG, PG, 2);

	/* The child writes the same page: its PMD splits and it copies too. */
	fill_at(child, t, HPS - PG, 16, 3);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), 2);
	cr_assert_not(pmd_mapped(child, t));
	cr_assert_eq(folio_entire_mapcount(thp), 0);
	cr_assert_eq(folio_ref_count(thp), 511 + 511);
	cr_assert_eq(page_mapcount(pfn_to_page(head + NR - 1)), 0);
	check_at(child, t, 0, HPS - PG, 1);
	check_at(child, t, HPS - PG, 16, 3);
	check_at(child, t, HPS - PG + 16, PG - 16, 1);
	/* Any other page of the THP is still shared: a write copies it. */
	unsigned long p = pfn_at(mm, t + 3 * PG);
	fill_at(mm, t, 3 * PG, 1, 4);
	cr_assert_neq(pfn_at(mm, t + 3 * PG), p);
	cr_assert_eq(pfn_at(child, t + 3 * PG), p);
	check_at(child, t, 3 * PG, 1, 1);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

Test(fork, thp_child_copies_all_then_parent_reuses)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	unsigned long head = pfn_at(mm, t);
	struct folio *thp = page_folio(pfn_to_page(head));
	struct mm_struct *child = fork_mm(mm);
	unsigned long free1 = nr_free();

	fill_pattern(child, t, HPS, 2);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), NR, "512 COW copies");
	cr_assert_eq(folio_ref_count(thp), 1);
	cr_assert_eq(folio_mapcount(thp), 1);
	cr_assert_eq(atomic_load(&thp->_nr_pages_mapped), 0);
	unsigned long *pc = pfns(child, t, NR);
	for (unsigned long i = 0; i < NR; i++)
		cr_assert(pc[i] < head || pc[i] >= head + NR);
	free(pc);
	/* The parent is the THP's only user: its write reuses it whole. */
	unsigned long free2 = nr_free();
	fill_at(mm, t, 12345, 100, 3);
	cr_assert_eq(nr_free(), free2);
	cr_assert_eq(pfn_at(mm, t), head);
	cr_assert(pmd_mapped(mm, t));
	cr_assert_eq(writable(mm, t), 1);
	check_at(mm, t, 0, 12345, 1);
	check_at(mm, t, 12345, 100, 3);
	check_at(mm, t, 12445, HPS - 12445, 1);
	check_pattern(child, t, HPS, 2);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* The zero page and the huge zero page                                */
/* ------------------------------------------------------------------ */

Test(fork, zero_page_ptes_copied_with_anon_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PG, RW, 0);
	unsigned long zero = uhmm_zero_pfn(machine);

	fill_at(mm, a, 0, 64, 1); /* page 0: anonymous, so the VMA has an anon_vma */
	check_zero(mm, a + PG, 7 * PG);
	for (int i = 1; i < 8; i++)
		cr_assert_eq(pfn_at(mm, a + (unsigned long)i * PG), zero);
	unsigned long p0 = pfn_at(mm, a);
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	for (int i = 1; i < 8; i++) {
		uint64_t e = pagemap(child, a + (unsigned long)i * PG);

		cr_assert(e & PM_PRESENT, "child page %d: zero-page PTE not copied", i);
		cr_assert_eq(e & PM_PFRAME_MASK, zero);
		cr_assert_eq(e & PM_MMAP_EXCLUSIVE, 0);
		cr_assert_eq(writable(child, a + (unsigned long)i * PG), 0);
	}
	cr_assert_eq(pfn_at(child, a), p0);
	cr_assert_eq(anon_rss(child), 1);
	cr_assert_eq(rss_bytes(child), PG, "the zero page is not in rss");
	/* A write on the child's zero page allocates on the child only. */
	unsigned long free1 = nr_free();
	fill_at(child, a, 2 * PG + 10, 10, 2);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), 1);
	assert_private_page(child, a + 2 * PG);
	cr_assert_eq(pfn_at(mm, a + 2 * PG), zero);
	check_zero(mm, a + 2 * PG, PG);
	check_zero(child, a + 2 * PG, 10);
	check_at(child, a, 2 * PG + 10, 10, 2);
	check_zero(child, a + 2 * PG + 20, PG - 20);
	cr_assert_eq(anon_rss(child), 2);
	cr_assert_eq(anon_rss(mm), 1);
	/* ... and the parent's on the parent only. */
	fill_at(mm, a, 3 * PG, 10, 3);
	cr_assert_eq(free1 - nr_free(), 2);
	cr_assert_eq(pfn_at(child, a + 3 * PG), zero);
	check_zero(child, a + 3 * PG, PG);
	check_at(mm, a, 3 * PG, 10, 3);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

Test(fork, zero_page_only_vma_not_copied)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PG, RW, 0);
	unsigned long zero = uhmm_zero_pfn(machine);

	check_zero(mm, a, 8 * PG);
	cr_assert_eq(pfn_at(mm, a + 5 * PG), zero);
	unsigned long free0 = nr_free();
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	cr_assert_eq(free0 - nr_free(), 1, "no anon_vma: no table is copied, only the PGD");
	for (int i = 0; i < 8; i++)
		cr_assert_eq(pagemap(child, a + (unsigned long)i * PG), 0,
			     "child page %d: a VMA without anon_vma was copied", i);
	cr_assert_eq(nr_vmas(child), 1);
	/* Reading faults the zero page in again. */
	check_zero(child, a + 5 * PG, PG);
	cr_assert_eq(pfn_at(child, a + 5 * PG), zero);
	cr_assert_eq(pagemap(child, a + 4 * PG), 0);
	/* Writes allocate on the writing side only. */
	unsigned long free1 = nr_free();
	fill_at(child, a, 6 * PG, 10, 1);
	cr_assert_eq(free1 - nr_free(), 1);
	cr_assert_eq(pfn_at(mm, a + 6 * PG), zero);
	fill_at(mm, a, 6 * PG, 10, 2);
	cr_assert_eq(free1 - nr_free(), 2);
	check_at(child, a, 6 * PG, 10, 1);
	check_at(mm, a, 6 * PG, 10, 2);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

Test(fork, huge_zero_only_vma_not_copied)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	check_zero(mm, t, HPS);
	cr_assert(pmd_mapped(mm, t));
	unsigned long hz = pfn_at(mm, t);
	cr_assert(is_huge_zero_folio(page_folio(pfn_to_page(hz))));
	cr_assert_eq(rss_bytes(mm), 0);
	struct mm_struct *child = fork_mm(mm);

	/*
	 * The read fault prepared the VMA's anon_vma (vmf_anon_prepare() comes
	 * first in Linux), so fork copies the huge zero PMD.
	 */
	assert_audit_clean();
	cr_assert(pmd_mapped(child, t));
	cr_assert_eq(pfn_at(child, t), hz);
	check_zero(child, t + 100 * PG, PG);
	assert_audit_clean();
	/* A write in the child replaces its huge zero PMD with a THP of its own (Linux 6.13+). */
	unsigned long free1 = nr_free();
	fill_at(child, t, 9 * PG, 100, 3);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), HPAGE_PMD_NR);
	cr_assert(pmd_mapped(child, t));
	cr_assert_eq(anon_huge(child), HPS);
	cr_assert(pmd_mapped(mm, t));
	cr_assert_eq(pfn_at(mm, t + 9 * PG), hz + 9);
	check_zero(mm, t, HPS);
	check_at(child, t, 9 * PG, 100, 3);
	mmput(child);
	mmput(mm);
}

Test(fork, huge_zero_only_vma_child_write_gets_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	check_zero(mm, t, PG);
	unsigned long hz = pfn_at(mm, t);
	struct mm_struct *child = fork_mm(mm);

	/* The child's PMD is empty: a write there gets a THP of its own. */
	fill_at(child, t, 5 * PG, 8, 1);
	assert_audit_clean();
	cr_assert(pmd_mapped(child, t));
	cr_assert_eq(anon_huge(child), HPS);
	cr_assert_eq(writable(child, t), 1);
	cr_assert(pmd_mapped(mm, t));
	cr_assert_eq(pfn_at(mm, t), hz);
	cr_assert_eq(rss_bytes(mm), 0);
	check_zero(mm, t, HPS);
	mmput(child);
	mmput(mm);
}

Test(fork, huge_zero_pmd_copied_with_anon_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, 2 * HPS);

	fill_pattern(mm, t, HPS, 1);   /* first 2 MiB: a THP (and an anon_vma) */
	check_zero(mm, t + HPS, HPS);  /* second 2 MiB: the huge zero PMD */
	cr_assert(pmd_mapped(mm, t + HPS));
	unsigned long hz = pfn_at(mm, t + HPS);
	unsigned long head = pfn_at(mm, t);
	cr_assert(is_huge_zero_folio(page_folio(pfn_to_page(hz))));
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	cr_assert(pmd_mapped(child, t + HPS), "the huge zero PMD is copied as a PMD");
	cr_assert_eq(pfn_at(child, t + HPS), hz);
	cr_assert_eq(pfn_at(child, t + HPS + 7 * PG), hz + 7);
	cr_assert_eq(writable(child, t + HPS), 0);
	assert_shared_thp(child, t, head, 2);
	cr_assert_eq(anon_huge(child), HPS, "the huge zero PMD is not AnonHugePages");
	cr_assert_eq(rss_bytes(child), HPS);
	/* The child's write replaces its huge zero PMD with a new THP (Linux 6.13+). */
	unsigned long free1 = nr_free();
	fill_at(child, t, HPS + 3 * PG, 32, 2);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), HPAGE_PMD_NR);
	cr_assert(pmd_mapped(child, t + HPS));
	check_zero(child, t + HPS, 3 * PG);
	check_at(child, t, HPS + 3 * PG, 32, 2);
	check_zero(child, t + HPS + 3 * PG + 32, HPS - 3 * PG - 32);
	/* The parent keeps its huge zero PMD and zeros. */
	cr_assert(pmd_mapped(mm, t + HPS));
	cr_assert_eq(pfn_at(mm, t + HPS), hz);
	check_zero(mm, t + HPS, HPS);
	/* The parent's write in turn. */
	fill_at(mm, t, HPS + 100 * PG, 8, 3);
	cr_assert_eq(free1 - nr_free(), 2 * HPAGE_PMD_NR);
	cr_assert(pmd_mapped(mm, t + HPS));
	check_zero(child, t + HPS + 100 * PG, PG);
	check_at(mm, t, HPS + 100 * PG, 8, 3);
	check_pattern(mm, t, HPS, 1);
	check_pattern(child, t, HPS, 1);
	assert_audit_clean();
	/* The parent exits first. */
	mmput(mm);
	assert_audit_clean();
	check_pattern(child, t, HPS, 1);
	mmput(child);
}

Test(fork, huge_zero_pmd_outlives_parent)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, 2 * HPS);

	fill_at(mm, t, 0, 8, 1);
	check_zero(mm, t + HPS, HPS);
	unsigned long hz = pfn_at(mm, t + HPS);
	struct mm_struct *child = fork_mm(mm);

	mmput(mm);
	assert_audit_clean();
	/* The child's reference keeps the huge zero folio alive. */
	cr_assert_eq(pfn_at(child, t + HPS), hz);
	cr_assert(is_huge_zero_folio(page_folio(pfn_to_page(hz))));
	check_zero(child, t + HPS, HPS);
	check_at(child, t, 0, 8, 1);
	mmput(child);
}

/* ------------------------------------------------------------------ */
/* MADV_DONTFORK / MADV_WIPEONFORK                                     */
/* ------------------------------------------------------------------ */

Test(fork, dontfork_vma_absent_in_child)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PG, RW, 0);

	fill_pattern(mm, a, 8 * PG, 1);
	cr_assert_eq(mm_madvise(mm, a + 2 * PG, 3 * PG, MADV_DONTFORK), 0);
	cr_assert_eq(nr_vmas(mm), 3);
	unsigned long p3 = pfn_at(mm, a + 3 * PG);
	struct mm_struct *child = fork_mm(mm);
	uint8_t buf[2 * PG];

	assert_audit_clean();
	cr_assert_eq(nr_vmas(child), 2);
	for (int i = 2; i < 5; i++) {
		cr_assert_eq(read_byte(child, a + (unsigned long)i * PG, buf), -EFAULT);
		cr_assert_eq(write_byte(child, a + (unsigned long)i * PG, 1), -EFAULT);
		cr_assert_eq(pagemap(child, a + (unsigned long)i * PG), 0);
	}
	/* An access that crosses into the hole faults as a whole. */
	cr_assert_eq(cpu_read(child, a + PG, buf, 2 * PG), -EFAULT);
	check_at(child, a, 0, 2 * PG, 1);
	check_at(child, a, 5 * PG, 3 * PG, 1);
	assert_shared_page(child, a + PG, 2);
	/* The parent's DONTFORK pages were never shared. */
	assert_private_page(mm, a + 3 * PG);
	cr_assert_eq(pfn_at(mm, a + 3 * PG), p3);
	cr_assert_eq(anon_rss(child), 5);
	/* The child can map something new in the hole. */
	long r = mm_mmap(child, a + 2 * PG, 3 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 NULL, 0);
	cr_assert_eq(r, (long)(a + 2 * PG));
	check_zero(child, a + 2 * PG, 3 * PG);
	check_pattern(mm, a, 8 * PG, 1);
	mmput(child);

	/* MADV_DOFORK undoes it. */
	cr_assert_eq(mm_madvise(mm, a + 2 * PG, 3 * PG, MADV_DOFORK), 0);
	cr_assert_eq(nr_vmas(mm), 1);
	child = fork_mm(mm);
	assert_audit_clean();
	cr_assert_eq(nr_vmas(child), 1);
	check_pattern(child, a, 8 * PG, 1);
	assert_shared_page(child, a + 3 * PG, 2);
	cr_assert_eq(pfn_at(child, a + 3 * PG), p3);
	mmput(child);
	mmput(mm);
}

Test(fork, dontfork_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	cr_assert_eq(mm_madvise(mm, t, HPS, MADV_DONTFORK), 0);
	unsigned long free0 = nr_free();
	struct mm_struct *child = fork_mm(mm);

	cr_assert_eq(free0 - nr_free(), 1);
	cr_assert_eq(nr_vmas(child), 0);
	cr_assert_eq(read_byte(child, t, &(uint8_t){ 0 }), -EFAULT);
	struct folio *thp = folio_at(mm, t);
	cr_assert_eq(folio_ref_count(thp), 1);
	cr_assert_eq(writable(mm, t), 1, "a DONTFORK THP is not write-protected");
	cr_assert(PageAnonExclusive(folio_head(thp)));
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

Test(fork, wipeonfork_child_sees_zeros)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PG, RW, 0);

	fill_pattern(mm, a, 8 * PG, 1);
	cr_assert_eq(mm_madvise(mm, a + 4 * PG, 4 * PG, MADV_WIPEONFORK), 0);
	unsigned long *p0 = pfns(mm, a, 8);
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	cr_assert_eq(nr_vmas(child), 2);
	for (int i = 4; i < 8; i++)
		cr_assert_eq(pagemap(child, a + (unsigned long)i * PG), 0);
	check_at(child, a, 0, 4 * PG, 1);
	check_zero(child, a + 4 * PG, 4 * PG);
	cr_assert_eq(anon_rss(child), 4);
	for (int i = 4; i < 8; i++) {
		cr_assert_eq(pfn_at(mm, a + (unsigned long)i * PG), p0[i]);
		assert_private_page(mm, a + (unsigned long)i * PG);
	}
	assert_shared_page(mm, a, 2);
	/* The child's writes there allocate for the child only. */
	unsigned long free1 = nr_free();
	fill_at(child, a, 5 * PG, PG, 2);
	cr_assert_eq(free1 - nr_free(), 1);
	assert_private_page(child, a + 5 * PG);
	check_pattern(mm, a, 8 * PG, 1);
	assert_audit_clean();

	/* VM_WIPEONFORK is inherited: the grandchild gets zeros too. */
	struct mm_struct *grandchild = fork_mm(child);
	check_zero(grandchild, a + 4 * PG, 4 * PG);
	check_at(grandchild, a, 0, 4 * PG, 1);
	assert_shared_page(grandchild, a, 3);
	assert_audit_clean();
	mmput(grandchild);
	mmput(child);

	/* MADV_KEEPONFORK undoes it. */
	cr_assert_eq(mm_madvise(mm, a + 4 * PG, 4 * PG, MADV_KEEPONFORK), 0);
	cr_assert_eq(nr_vmas(mm), 1);
	child = fork_mm(mm);
	check_pattern(child, a, 8 * PG, 1);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(pfn_at(child, a + (unsigned long)i * PG), p0[i]);
	assert_audit_clean();
	free(p0);
	mmput(child);
	mmput(mm);
}

Test(fork, wipeonfork_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	unsigned long head = pfn_at(mm, t);
	cr_assert_eq(mm_madvise(mm, t, HPS, MADV_WIPEONFORK), 0);
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	cr_assert_eq(pagemap(child, t), 0);
	cr_assert_eq(anon_huge(child), 0);
	check_zero(child, t, HPS);
	cr_assert_eq(pfn_at(mm, t), head);
	cr_assert_eq(writable(mm, t), 1);
	cr_assert_eq(folio_ref_count(folio_at(mm, t)), 1);
	/* The child's first write gets a THP of its own (the VMA is still VM_HUGEPAGE). */
	mmput(child);
	child = fork_mm(mm);
	fill_at(child, t, 0, 8, 2);
	cr_assert(pmd_mapped(child, t));
	cr_assert_neq(pfn_at(child, t), head);
	check_pattern(mm, t, HPS, 1);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

Test(fork, madvise_fork_advice_errors)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * PG, RW, 0);

	cr_assert_eq(mm_madvise(mm, a + 1, PG, MADV_DONTFORK), -EINVAL);
	cr_assert_eq(mm_madvise(mm, a + 1, PG, MADV_WIPEONFORK), -EINVAL);
	/* A hole: -ENOMEM, the mapped part is still advised (Linux). */
	cr_assert_eq(mm_madvise(mm, a + 2 * PG, 4 * PG, MADV_DONTFORK), -ENOMEM);
	fill_pattern(mm, a, 4 * PG, 1);
	struct mm_struct *child = fork_mm(mm);
	check_at(child, a, 0, 2 * PG, 1);
	cr_assert_eq(read_byte(child, a + 2 * PG, &(uint8_t){ 0 }), -EFAULT);
	mmput(child);
	mmput(mm);
}

Test(fork, wipeonfork_part_of_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	unsigned long head = pfn_at(mm, t);
	/* Wipe the second half: the VMA and the PMD split, the folio stays large. */
	cr_assert_eq(mm_madvise(mm, t + HPS / 2, HPS / 2, MADV_WIPEONFORK), 0);
	cr_assert_not(pmd_mapped(mm, t));
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	check_at(child, t, 0, HPS / 2, 1);
	check_zero(child, t + HPS / 2, HPS / 2);
	cr_assert_eq(pfn_at(child, t + 3 * PG), head + 3);
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(head))), NR + NR / 2);
	cr_assert_eq(anon_rss(child), NR / 2);
	/* The parent's wiped half was never shared: it stays writable. */
	cr_assert_eq(writable(mm, t + HPS - PG), 1);
	cr_assert_eq(writable(mm, t), 0);
	fill_at(mm, t, HPS - PG, PG, 2);
	cr_assert_eq(pfn_at(mm, t + HPS - PG), head + NR - 1);
	check_zero(child, t + HPS - PG, PG);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* Several forks, and the reverse map                                  */
/* ------------------------------------------------------------------ */

Test(fork, three_generations)
{
	struct mm_struct *p = new_mm();
	unsigned long a = map_anon(p, 0, 4 * PG, RW, 0);
	unsigned long t = map_thp(p, HPS);

	fill_pattern(p, a, 4 * PG, 1);
	fill_pattern(p, t, HPS, 2);
	unsigned long *p0 = pfns(p, a, 4);
	unsigned long head = pfn_at(p, t);
	struct mm_struct *c = fork_mm(p);
	assert_audit_clean();
	struct mm_struct *g = fork_mm(c);
	assert_audit_clean();

	struct mm_struct *all[3] = { p, c, g };
	for (int m = 0; m < 3; m++) {
		check_pattern(all[m], a, 4 * PG, 1);
		check_pattern(all[m], t, HPS, 2);
		for (int i = 0; i < 4; i++) {
			cr_assert_eq(pfn_at(all[m], a + (unsigned long)i * PG), p0[i]);
			assert_shared_page(all[m], a + (unsigned long)i * PG, 3);
		}
		assert_shared_thp(all[m], t, head, 3);
	}

	/* rmap of a shared page and of the shared THP: exactly the three mappings. */
	unsigned long aa[3] = { a, a, a }, tt[3] = { t, t, t };
	struct folio *f0 = page_folio(pfn_to_page(p0[0]));
	struct folio *thp = page_folio(pfn_to_page(head));
	cr_assert_eq(assert_rmap(f0, all, aa, 3), 0);
	cr_assert_eq(rmap_collect(f0).n, 3);
	cr_assert_eq(assert_rmap(thp, all, tt, 3), 0);
	cr_assert_eq(rmap_collect(thp).n, 3);

	/* The grandchild writes page 0: its copy is its alone. */
	fill_at(g, a, 0, PG, 3);
	assert_audit_clean();
	struct folio *gf = folio_at(g, a);
	cr_assert_neq(gf, f0);
	assert_shared_page(p, a, 2);
	cr_assert_eq(assert_rmap(gf, &g, &a, 1), 0);
	cr_assert_eq(rmap_collect(gf).n, 1);
	/* The old page: p and c map it; g's VMA may still be visited as a candidate. */
	int extra = assert_rmap(f0, all, aa, 2);
	cr_assert_leq(extra, 1);

	/* The child writes page 1: g's VMA is linked to c's anon_vma, p's is not. */
	fill_at(c, a, PG, 8, 4);
	assert_audit_clean();
	struct folio *cf = folio_at(c, a + PG);
	unsigned long a1 = a + PG;
	cr_assert_leq(assert_rmap(cf, &c, &a1, 1), 1);
	struct rmap_log clog = rmap_collect(cf);
	for (int h = 0; h < clog.n; h++)
		cr_assert_neq(clog.hits[h].mm, p, "p's VMA is not linked to c's anon_vma");

	/* Writes in any of them stay there. */
	fill_at(p, a, 2 * PG, 8, 5);
	fill_at(g, t, 6 * PG, 8, 6);
	assert_audit_clean();
	check_at(p, a, 0, 2 * PG, 1);
	check_at(p, a, 2 * PG, 8, 5);
	check_at(c, a, 0, PG, 1);
	check_at(c, a, PG, 8, 4);
	check_at(c, a, PG + 8, 3 * PG - 8, 1);
	check_at(g, a, 0, PG, 3);
	check_at(g, a, PG, 3 * PG, 1);
	check_pattern(p, t, HPS, 2);
	check_pattern(c, t, HPS, 2);
	check_at(g, t, 6 * PG, 8, 6);
	check_at(g, t, 0, 6 * PG, 2);
	/* The THP: p and c map it by PMD, g by 511 PTEs. */
	cr_assert_eq(folio_entire_mapcount(thp), 2);
	cr_assert_eq(folio_ref_count(thp), 2 + 511);
	cr_assert(pmd_mapped(p, t));
	cr_assert(pmd_mapped(c, t));
	cr_assert_not(pmd_mapped(g, t));
	cr_assert_eq(assert_rmap(thp, all, tt, 3), 0);

	/* The middle generation exits first. */
	mmput(c);
	assert_audit_clean();
	cr_assert_eq(folio_entire_mapcount(thp), 1);
	check_at(g, a, PG, 8, 1);
	check_pattern(p, t, HPS, 2);
	struct mm_struct *pg[2] = { p, g };
	cr_assert_eq(assert_rmap(thp, pg, tt, 2), 0);
	mmput(g);
	assert_audit_clean();
	cr_assert_eq(folio_ref_count(thp), 1);
	free(p0);
	mmput(p);
}

Test(fork, two_children_of_one_parent)
{
	struct mm_struct *p = new_mm();
	unsigned long a = map_anon(p, 0, 4 * PG, RW, 0);

	fill_pattern(p, a, 4 * PG, 1);
	unsigned long pfn0 = pfn_at(p, a);
	struct mm_struct *c1 = fork_mm(p);
	struct mm_struct *c2 = fork_mm(p);
	struct mm_struct *all[3] = { p, c1, c2 };
	unsigned long aa[3] = { a, a, a };
	struct folio *f0 = page_folio(pfn_to_page(pfn0));

	assert_audit_clean();
	for (int m = 0; m < 3; m++)
		assert_shared_page(all[m], a, 3);
	cr_assert_eq(assert_rmap(f0, all, aa, 3), 0);
	cr_assert_eq(rmap_collect(f0).n, 3);

	unsigned long free1 = nr_free();
	fill_at(c1, a, 0, 16, 2);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), 1);
	assert_shared_page(p, a, 2);
	assert_private_page(c1, a);
	/* c2 and p still share: c2 copies. */
	fill_at(c2, a, 16, 16, 3);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), 2);
	cr_assert_neq(pfn_at(c2, a), pfn0);
	/* p is the last user: reuse. */
	fill_at(p, a, 32, 16, 4);
	cr_assert_eq(free1 - nr_free(), 2);
	cr_assert_eq(pfn_at(p, a), pfn0);
	assert_private_page(p, a);
	assert_audit_clean();
	/* The siblings' new pages are theirs alone. */
	struct folio *f1 = folio_at(c1, a), *f2 = folio_at(c2, a);
	cr_assert_eq(assert_rmap(f1, &c1, &a, 1), 0);
	cr_assert_eq(assert_rmap(f2, &c2, &a, 1), 0);
	cr_assert_eq(rmap_collect(f1).n, 1);
	cr_assert_eq(rmap_collect(f2).n, 1);

	check_at(p, a, 0, 32, 1);
	check_at(p, a, 32, 16, 4);
	check_at(p, a, 48, 4 * PG - 48, 1);
	check_at(c1, a, 0, 16, 2);
	check_at(c1, a, 16, 4 * PG - 16, 1);
	check_at(c2, a, 0, 16, 1);
	check_at(c2, a, 16, 16, 3);
	check_at(c2, a, 32, 4 * PG - 32, 1);
	for (int m = 0; m < 3; m++)
		assert_shared_page(all[m], a + 3 * PG, 3);
	mmput(p);
	assert_audit_clean();
	assert_shared_page(c1, a + 3 * PG, 2);
	mmput(c1);
	mmput(c2);
}

Test(fork, rmap_after_vma_split)
{
	struct mm_struct *p = new_mm();
	unsigned long a = map_anon(p, 0, 8 * PG, RW, 0);

	fill_pattern(p, a, 8 * PG, 1);
	/* Split the VMA in three, fork, and look up a page in the middle one. */
	cr_assert_eq(mm_mprotect(p, a + 3 * PG, 2 * PG, PROT_READ), 0);
	cr_assert_eq(nr_vmas(p), 3);
	struct mm_struct *c = fork_mm(p);
	struct mm_struct *all[2] = { p, c };
	unsigned long x[2] = { a + 4 * PG, a + 4 * PG }, y[2] = { a + 7 * PG, a + 7 * PG };

	assert_audit_clean();
	struct rmap_log log = rmap_collect(folio_at(p, a + 4 * PG));
	int extra = assert_rmap(folio_at(p, a + 4 * PG), all, x, 2);
	cr_assert_eq(log.n, 2 + extra);
	cr_assert_eq(extra, 0, "VMAs that do not cover the page are not visited");
	cr_assert_eq(assert_rmap(folio_at(p, a + 7 * PG), all, y, 2), 0);
	mmput(c);
	mmput(p);
}

/* ------------------------------------------------------------------ */
/* mprotect, PROT_NONE, partially unmapped THPs                        */
/* ------------------------------------------------------------------ */

Test(fork, readonly_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PG, RW, 0);

	fill_pattern(mm, a, 8 * PG, 1);
	unsigned long *p0 = pfns(mm, a, 8);
	cr_assert_eq(mm_mprotect(mm, a, 4 * PG, PROT_READ), 0);
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(pfn_at(child, a + (unsigned long)i * PG), p0[i]);
		assert_shared_page(child, a + (unsigned long)i * PG, 2);
	}
	check_pattern(child, a, 8 * PG, 1);
	cr_assert_eq(write_byte(child, a + PG, 0x55), -EFAULT);
	cr_assert_eq(write_byte(mm, a + PG, 0x55), -EFAULT);
	check_pattern(child, a, 8 * PG, 1);
	assert_shared_page(child, a + PG, 2);

	/* mprotect(RW) on a shared page does not make it writable. */
	cr_assert_eq(mm_mprotect(mm, a, 4 * PG, RW), 0);
	cr_assert_eq(writable(mm, a + PG), 0);
	unsigned long free1 = nr_free();
	fill_at(mm, a, PG, 8, 2);
	cr_assert_eq(free1 - nr_free(), 1);
	cr_assert_neq(pfn_at(mm, a + PG), p0[1]);
	check_at(child, a, PG, PG, 1);
	/* The child, now alone on page 1, reuses it once it may write. */
	cr_assert_eq(mm_mprotect(child, a, 4 * PG, RW), 0);
	cr_assert_eq(writable(child, a + 2 * PG), 0);
	fill_at(child, a, PG, 8, 3);
	cr_assert_eq(free1 - nr_free(), 1);
	cr_assert_eq(pfn_at(child, a + PG), p0[1]);
	assert_private_page(child, a + PG);
	fill_at(child, a, 2 * PG, 8, 3);
	cr_assert_eq(free1 - nr_free(), 2);
	cr_assert_neq(pfn_at(child, a + 2 * PG), p0[2]);
	check_at(mm, a, 2 * PG, PG, 1);
	check_at(mm, a, PG, 8, 2);
	assert_audit_clean();
	free(p0);
	mmput(child);
	mmput(mm);
}

Test(fork, readonly_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	unsigned long head = pfn_at(mm, t);
	cr_assert_eq(mm_mprotect(mm, t, HPS, PROT_READ), 0);
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	assert_shared_thp(child, t, head, 2);
	cr_assert_eq(write_byte(child, t, 1), -EFAULT);
	check_pattern(child, t, HPS, 1);
	cr_assert_eq(mm_mprotect(child, t, HPS, RW), 0);
	cr_assert_eq(writable(child, t), 0, "the shared THP stays write-protected");
	fill_at(child, t, 0, 8, 2);
	cr_assert_not(pmd_mapped(child, t));
	cr_assert(pmd_mapped(mm, t));
	check_pattern(mm, t, HPS, 1);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

Test(fork, prot_none_range)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PG, RW, 0);

	fill_pattern(mm, a, 8 * PG, 1);
	unsigned long *p0 = pfns(mm, a, 8);
	cr_assert_eq(mm_mprotect(mm, a + 2 * PG, 4 * PG, PROT_NONE), 0);
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	cr_assert_eq(nr_vmas(child), 3);
	for (int i = 2; i < 6; i++) {
		uint64_t e = pagemap(child, a + (unsigned long)i * PG);

		cr_assert(e & PM_PRESENT, "PROT_NONE pages are present in pagemap");
		cr_assert_eq(e & PM_PFRAME_MASK, p0[i]);
		cr_assert_eq(read_byte(child, a + (unsigned long)i * PG, &(uint8_t){ 0 }), -EFAULT);
		cr_assert_eq(write_byte(child, a + (unsigned long)i * PG, 1), -EFAULT);
		struct folio *f = page_folio(pfn_to_page(p0[i]));
		cr_assert_eq(folio_ref_count(f), 2);
		cr_assert_eq(folio_mapcount(f), 2);
		cr_assert_not(PageAnonExclusive(pfn_to_page(p0[i])));
	}
	cr_assert_eq(anon_rss(child), 8);
	check_at(child, a, 0, 2 * PG, 1);
	check_at(child, a, 6 * PG, 2 * PG, 1);
	/* The child opens it up: data is there, a write copies. */
	cr_assert_eq(mm_mprotect(child, a + 2 * PG, 4 * PG, RW), 0);
	check_pattern(child, a, 8 * PG, 1);
	cr_assert_eq(writable(child, a + 3 * PG), 0);
	fill_at(child, a, 3 * PG, PG, 2);
	cr_assert_neq(pfn_at(child, a + 3 * PG), p0[3]);
	assert_audit_clean();
	/* The parent's pages are intact. */
	cr_assert_eq(mm_mprotect(mm, a + 2 * PG, 4 * PG, PROT_READ), 0);
	check_pattern(mm, a, 8 * PG, 1);
	cr_assert_eq(pfn_at(mm, a + 3 * PG), p0[3]);
	assert_audit_clean();
	free(p0);
	mmput(child);
	mmput(mm);
}

Test(fork, partially_unmapped_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	unsigned long head = pfn_at(mm, t);
	struct folio *thp = page_folio(pfn_to_page(head));
	cr_assert_eq(mm_munmap(mm, t + HPS / 2, HPS / 2), 0);
	/* PTE-mapped large folio, half of it mapped. */
	cr_assert_not(pmd_mapped(mm, t));
	cr_assert_eq(folio_order(thp), HPAGE_PMD_ORDER);
	cr_assert_eq(folio_ref_count(thp), NR / 2);
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	cr_assert_eq(folio_ref_count(thp), NR);
	cr_assert_eq(folio_mapcount(thp), NR);
	cr_assert_eq(folio_entire_mapcount(thp), 0);
	cr_assert_eq(atomic_load(&thp->_nr_pages_mapped), NR / 2);
	unsigned long *pc = pfns(child, t, NR / 2);
	for (unsigned long i = 0; i < NR / 2; i++) {
		cr_assert_eq(pc[i], head + i);
		cr_assert_eq(page_mapcount(pfn_to_page(head + i)), 2);
		cr_assert_not(PageAnonExclusive(pfn_to_page(head + i)));
		cr_assert_eq(writable(child, t + i * PG), 0);
		cr_assert_eq(writable(mm, t + i * PG), 0);
	}
	free(pc);
	cr_assert_eq(anon_rss(child), NR / 2);
	cr_assert_eq(anon_huge(child), 0);
	cr_assert_eq(read_byte(child, t + HPS / 2, &(uint8_t){ 0 }), -EFAULT);
	check_pattern(child, t, HPS / 2, 1);

	/* A child write copies one page; so does a parent write on a shared page. */
	unsigned long free1 = nr_free();
	fill_at(child, t, 10 * PG, 100, 2);
	fill_at(mm, t, 20 * PG, 100, 3);
	assert_audit_clean();
	cr_assert_eq(free1 - nr_free(), 2);
	assert_private_page(child, t + 10 * PG);
	assert_private_page(mm, t + 20 * PG);
	cr_assert_eq(pfn_at(mm, t + 10 * PG), head + 10);
	cr_assert_eq(pfn_at(child, t + 20 * PG), head + 20);
	cr_assert_eq(folio_ref_count(thp), NR - 2);
	check_at(child, t, 0, 10 * PG, 1);
	check_at(child, t, 10 * PG, 100, 2);
	check_at(child, t, 10 * PG + 100, HPS / 2 - 10 * PG - 100, 1);
	check_at(mm, t, 0, 20 * PG, 1);
	check_at(mm, t, 20 * PG, 100, 3);
	check_at(mm, t, 20 * PG + 100, HPS / 2 - 20 * PG - 100, 1);

	/* The child exits: the parent's data stays right whatever it reuses. */
	mmput(child);
	assert_audit_clean();
	cr_assert_eq(folio_ref_count(thp), NR / 2 - 1);
	fill_at(mm, t, 30 * PG, 100, 4);
	check_at(mm, t, 30 * PG, 100, 4);
	check_at(mm, t, 0, 20 * PG, 1);
	assert_audit_clean();
	mmput(mm);
}

Test(fork, thp_split_by_mprotect)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	unsigned long head = pfn_at(mm, t);
	/* Two VMAs over one THP: the PMD splits, the folio stays large. */
	cr_assert_eq(mm_mprotect(mm, t + 100 * PG, 12 * PG, PROT_READ), 0);
	cr_assert_not(pmd_mapped(mm, t));
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	unsigned long *pc = pfns(child, t, NR);
	for (unsigned long i = 0; i < NR; i++)
		cr_assert_eq(pc[i], head + i);
	free(pc);
	cr_assert_eq(folio_ref_count(folio_at(mm, t)), 2 * NR);
	/*
	 * rmap: the folio spans three VMAs in each mm; each is visited once,
	 * with the address of the folio's first page (rmap_walk_anon()).
	 */
	struct rmap_log log = rmap_collect(folio_at(mm, t));
	cr_assert_eq(log.n, 6);
	for (int h = 0; h < log.n; h++) {
		int same = 0;

		cr_assert_eq(log.hits[h].addr, t);
		cr_assert(log.hits[h].mm == mm || log.hits[h].mm == child);
		for (int k = 0; k < log.n; k++)
			same += log.hits[k].vma == log.hits[h].vma;
		cr_assert_eq(same, 1);
	}
	cr_assert_eq(write_byte(child, t + 105 * PG, 1), -EFAULT);
	/* A write that crosses into the read-only VMA faults as a whole. */
	cr_assert_eq(cpu_memset(child, t + 99 * PG, 0x5a, 2 * PG), -EFAULT);
	check_at(child, t, 99 * PG, 2 * PG, 1);
	fill_at(child, t, 99 * PG, PG, 2);
	check_pattern(mm, t, HPS, 1);
	check_at(child, t, 0, 99 * PG, 1);
	check_at(child, t, 99 * PG, PG, 2);
	check_at(child, t, 100 * PG, HPS - 100 * PG, 1);
	assert_audit_clean();
	mmput(mm);
	assert_audit_clean();
	check_at(child, t, 100 * PG, HPS - 100 * PG, 1);
	mmput(child);
}

Test(fork, sparse_vma_across_page_table_levels)
{
	struct mm_struct *mm = new_mm();
	/* A 2 TiB reservation: pages in different PGD, PUD and PMD slots. */
	unsigned long len = 2UL << 40;
	long r = mm_mmap(mm, 0, len, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, NULL, 0);
	cr_assert_gt(r, 0, "mm_mmap = %ld", r);
	unsigned long a = (unsigned long)r;
	unsigned long offs[] = { 0, PG, PMD_SIZE + 5 * PG, PUD_SIZE - PG, PUD_SIZE,
				 (1UL << 39) + 3 * PUD_SIZE, len - PG };

	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		fill_at(mm, a, offs[i], PG, (uint32_t)i);
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	cr_assert_eq(table_pages(child), table_pages(mm));
	cr_assert_eq(anon_rss(child), (long)(sizeof(offs) / sizeof(offs[0])));
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		check_at(child, a, offs[i], PG, (uint32_t)i);
		assert_shared_page(child, a + offs[i], 2);
	}
	cr_assert_eq(pagemap(child, a + 2 * PG), 0);
	cr_assert_eq(pagemap(child, a + (1UL << 39)), 0);
	mmput(child);
	mmput(mm);
}

Test(fork, many_vmas)
{
	struct mm_struct *mm = new_mm();
	enum { NV = 200 };
	unsigned long base = map_anon(mm, 0, NV * PG, RW, 0);

	fill_pattern(mm, base, NV * PG, 1);
	/* Every other page read-only: NV VMAs that cannot merge. */
	for (int i = 1; i < NV; i += 2)
		cr_assert_eq(mm_mprotect(mm, base + (unsigned long)i * PG, PG, PROT_READ), 0);
	cr_assert_eq(nr_vmas(mm), NV);
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	cr_assert_eq(nr_vmas(child), NV);
	check_pattern(child, base, NV * PG, 1);
	for (int i = 0; i < NV; i++)
		assert_shared_page(child, base + (unsigned long)i * PG, 2);
	for (int i = 0; i < NV; i += 2)
		fill_at(child, base, (unsigned long)i * PG, 8, 2);
	for (int i = 1; i < NV; i += 2)
		cr_assert_eq(write_byte(child, base + (unsigned long)i * PG, 0), -EFAULT);
	check_pattern(mm, base, NV * PG, 1);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

Test(fork, child_splits_vma_rmap_follows)
{
	struct mm_struct *p = new_mm();
	unsigned long a = map_anon(p, 0, 8 * PG, RW, 0);

	fill_pattern(p, a, 8 * PG, 1);
	struct mm_struct *c = fork_mm(p);

	/* The child splits its copy of the VMA in three. */
	cr_assert_eq(mm_mprotect(c, a + 3 * PG, 2 * PG, PROT_READ), 0);
	cr_assert_eq(nr_vmas(c), 3);
	cr_assert_eq(nr_vmas(p), 1);
	struct mm_struct *all[2] = { p, c };
	for (unsigned long i = 0; i < 8; i++) {
		unsigned long x[2] = { a + i * PG, a + i * PG };
		struct folio *f = folio_at(p, a + i * PG);

		cr_assert_eq(assert_rmap(f, all, x, 2), 0, "page %lu", i);
		cr_assert_eq(rmap_collect(f).n, 2);
	}
	assert_audit_clean();
	/* Back to RW: the pieces merge, the pages stay shared and read-only. */
	cr_assert_eq(mm_mprotect(c, a + 3 * PG, 2 * PG, RW), 0);
	cr_assert_eq(nr_vmas(c), 1);
	assert_shared_page(c, a + 3 * PG, 2);
	fill_at(c, a, 3 * PG, 8, 2);
	assert_private_page(c, a + 3 * PG);
	check_at(p, a, 3 * PG, 8, 1);
	assert_audit_clean();
	mmput(c);
	mmput(p);
}

Test(fork, fork_of_child_with_split_thp)
{
	struct mm_struct *p = new_mm();
	unsigned long t = map_thp(p, HPS);

	fill_pattern(p, t, HPS, 1);
	unsigned long head = pfn_at(p, t);
	struct folio *thp = page_folio(pfn_to_page(head));
	struct mm_struct *c = fork_mm(p);

	fill_at(c, t, 7 * PG, 8, 2); /* c: PMD split, page 7 copied */
	unsigned long c7 = pfn_at(c, t + 7 * PG);
	struct mm_struct *g = fork_mm(c);

	assert_audit_clean();
	/* g maps the same 511 THP pages and shares c's copy of page 7. */
	unsigned long *pg = pfns(g, t, NR);
	for (unsigned long i = 0; i < NR; i++)
		cr_assert_eq(pg[i], i == 7 ? c7 : head + i);
	free(pg);
	cr_assert_eq(folio_ref_count(thp), 1 + 511 + 511);
	cr_assert_eq(folio_mapcount(thp), 1 + 511 + 511);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 8)), 3);
	cr_assert_eq(page_mapcount(pfn_to_page(head + 7)), 1);
	assert_shared_page(c, t + 7 * PG, 2);
	assert_shared_page(g, t + 7 * PG, 2);
	cr_assert_not(pmd_mapped(g, t));
	/* g copies c's page; then c, alone again, reuses it. */
	fill_at(g, t, 7 * PG, 8, 3);
	cr_assert_neq(pfn_at(g, t + 7 * PG), c7);
	fill_at(c, t, 7 * PG + 8, 8, 4);
	cr_assert_eq(pfn_at(c, t + 7 * PG), c7);
	assert_private_page(c, t + 7 * PG);
	assert_audit_clean();
	check_at(c, t, 7 * PG, 8, 2);
	check_at(c, t, 7 * PG + 8, 8, 4);
	check_at(g, t, 7 * PG, 8, 3);
	check_at(g, t, 7 * PG + 8, 8, 1);
	check_pattern(p, t, HPS, 1);
	/* rmap of the THP: p by PMD, c and g by PTEs; all at t. */
	struct mm_struct *all[3] = { p, c, g };
	unsigned long tt[3] = { t, t, t };
	cr_assert_eq(assert_rmap(thp, all, tt, 3), 0);
	mmput(c);
	mmput(g);
	assert_audit_clean();
	cr_assert_eq(folio_ref_count(thp), 1);
	fill_at(p, t, 0, 8, 5);
	cr_assert_eq(pfn_at(p, t), head);
	cr_assert(pmd_mapped(p, t));
	mmput(p);
}

Test(fork, child_unmaps_half_of_shared_thp)
{
	struct mm_struct *p = new_mm();
	unsigned long t = map_thp(p, HPS);

	fill_pattern(p, t, HPS, 1);
	unsigned long head = pfn_at(p, t);
	struct folio *thp = page_folio(pfn_to_page(head));
	struct mm_struct *c = fork_mm(p);

	cr_assert_eq(mm_munmap(c, t, HPS / 2), 0);
	assert_audit_clean();
	cr_assert_eq(folio_ref_count(thp), 1 + NR / 2);
	cr_assert_eq(folio_entire_mapcount(thp), 1);
	cr_assert(pmd_mapped(p, t));
	cr_assert_eq(anon_rss(c), NR / 2);
	/* The parent's write must still copy: the child maps half of it. */
	fill_at(p, t, HPS - 8, 8, 2);
	cr_assert_not(pmd_mapped(p, t));
	cr_assert_neq(pfn_at(p, t + HPS - PG), head + NR - 1);
	check_at(c, t, HPS / 2, HPS / 2, 1);
	/* ... and a write where the child no longer maps copies too (a large folio). */
	fill_at(p, t, 0, 8, 3);
	check_at(p, t, 0, 8, 3);
	check_at(p, t, 8, HPS - 16, 1);
	assert_audit_clean();
	mmput(c);
	assert_audit_clean();
	mmput(p);
}

/* Two threads of the parent write disjoint bytes of the same shared pages. */
#define COW_RACE_ITERS 400
#define COW_RACE_PAGES 8

struct cow_race {
	struct mm_struct *mm;
	unsigned long a, t;
	pthread_barrier_t start, done;
	uint64_t iter;
	atomic_int errors;
};

static unsigned long cow_race_addr(struct cow_race *r, int page, int side)
{
	unsigned long base = page < COW_RACE_PAGES ? r->a + (unsigned long)page * PG :
						     r->t + (unsigned long)(page - COW_RACE_PAGES) * 64 * PG;

	return base + (unsigned long)side * 2048 + 8 * (unsigned long)(page % 5);
}

static void *cow_race_thread(void *arg)
{
	struct cow_race *r = ((void **)arg)[0];
	int side = (int)(uintptr_t)((void **)arg)[1];

	for (int k = 0; k < COW_RACE_ITERS; k++) {
		pthread_barrier_wait(&r->start);
		uint64_t v = ((uint64_t)(side + 1) << 32) | (uint64_t)k;
		for (int pg = 0; pg < 2 * COW_RACE_PAGES; pg++)
			if (cpu_write(r->mm, cow_race_addr(r, pg, side), &v, 8))
				atomic_fetch_add(&r->errors, 1);
		pthread_barrier_wait(&r->done);
	}
	return NULL;
}

Test(fork, concurrent_cow_of_one_page, .timeout = 300)
{
	struct cow_race r = { 0 };
	pthread_t th[2];
	void *args[2][2];

	r.mm = new_mm();
	r.a = map_anon(r.mm, 0, COW_RACE_PAGES * PG, RW, 0);
	r.t = map_thp(r.mm, HPS);
	cpu_memset(r.mm, r.a, 0, COW_RACE_PAGES * PG);
	cpu_memset(r.mm, r.t, 0, HPS);
	pthread_barrier_init(&r.start, NULL, 3);
	pthread_barrier_init(&r.done, NULL, 3);
	for (int i = 0; i < 2; i++) {
		args[i][0] = &r;
		args[i][1] = (void *)(uintptr_t)i;
		cr_assert_eq(pthread_create(&th[i], NULL, cow_race_thread, args[i]), 0);
	}
	for (int k = 0; k < COW_RACE_ITERS; k++) {
		struct mm_struct *child = mm_fork(r.mm);

		cr_assert(!IS_ERR_OR_NULL(child));
		pthread_barrier_wait(&r.start);
		pthread_barrier_wait(&r.done);
		/* Both threads' stores landed in the parent; the child kept the old values. */
		for (int pg = 0; pg < 2 * COW_RACE_PAGES; pg++)
			for (int side = 0; side < 2; side++) {
				uint64_t got = 0, want = ((uint64_t)(side + 1) << 32) | (uint64_t)k;
				uint64_t old = k ? (((uint64_t)(side + 1) << 32) | (uint64_t)(k - 1)) : 0;

				cr_assert_eq(cpu_read(r.mm, cow_race_addr(&r, pg, side), &got, 8), 0);
				cr_assert_eq(got, want, "iter %d page %d side %d: parent has %#llx", k,
					     pg, side, (unsigned long long)got);
				cr_assert_eq(cpu_read(child, cow_race_addr(&r, pg, side), &got, 8), 0);
				cr_assert_eq(got, old, "iter %d page %d side %d: child has %#llx", k,
					     pg, side, (unsigned long long)got);
			}
		if (k % 8 == 0)
			assert_audit_clean();
		mmput(child);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&r.errors), 0);
	assert_audit_clean();
	pthread_barrier_destroy(&r.start);
	pthread_barrier_destroy(&r.done);
	mmput(r.mm);
}

Test(fork, prot_none_thp)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);

	fill_pattern(mm, t, HPS, 1);
	unsigned long head = pfn_at(mm, t);
	cr_assert_eq(mm_mprotect(mm, t, HPS, PROT_NONE), 0);
	cr_assert(pmd_mapped(mm, t));
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	cr_assert(pmd_mapped(child, t), "a PROT_NONE PMD is copied as a PMD");
	cr_assert_eq(pfn_at(child, t), head);
	cr_assert_eq(folio_ref_count(folio_at(mm, t)), 2);
	cr_assert_eq(read_byte(child, t, &(uint8_t){ 0 }), -EFAULT);
	cr_assert_eq(mm_mprotect(child, t, HPS, RW), 0);
	check_pattern(child, t, HPS, 1);
	fill_at(child, t, 50 * PG, 8, 2);
	cr_assert_not(pmd_mapped(child, t));
	cr_assert(pmd_mapped(mm, t));
	cr_assert_eq(mm_mprotect(mm, t, HPS, PROT_READ), 0);
	check_pattern(mm, t, HPS, 1);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

Test(fork, collapse_after_fork)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_plain(mm, HPS);

	fill_pattern(mm, a, HPS, 1);
	unsigned long *p0 = pfns(mm, a, NR);
	struct mm_struct *child = fork_mm(mm);

	/*
	 * Linux 6.18 collapses write-protected pages too (see the
	 * differential suite's madvise_collapse_read_only_pages); here the
	 * parent collapses after one COW: shared pages are copied into the THP.
	 */
	fill_at(mm, a, 3 * PG, 8, 2);
	cr_assert_eq(mm_madvise(mm, a, HPS, MADV_COLLAPSE), 0);
	assert_audit_clean();
	cr_assert(pmd_mapped(mm, a));
	cr_assert_eq(writable(mm, a), 1);
	cr_assert_eq(anon_huge(mm), HPS);
	check_at(mm, a, 0, 3 * PG, 1);
	check_at(mm, a, 3 * PG, 8, 2);
	check_at(mm, a, 3 * PG + 8, HPS - 3 * PG - 8, 1);
	/* The child keeps its pages, now its alone: writes reuse them. */
	for (unsigned long i = 0; i < NR; i += 37) {
		cr_assert_eq(pfn_at(child, a + i * PG), p0[i]);
		cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(p0[i]))), 1);
	}
	check_pattern(child, a, HPS, 1);
	fill_at(child, a, 100 * PG, 8, 3);
	cr_assert_eq(pfn_at(child, a + 100 * PG), p0[100]);
	assert_private_page(child, a + 100 * PG);
	assert_audit_clean();
	free(p0);
	mmput(child);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* Pinned pages                                                        */
/* ------------------------------------------------------------------ */

Test(fork, pinned_thp_is_copied_page_by_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long t = map_thp(mm, HPS);
	struct page *pinned;

	fill_pattern(mm, t, HPS, 1);
	unsigned long head = pfn_at(mm, t);
	struct folio *thp = page_folio(pfn_to_page(head));
	cr_assert_eq(pin_user_pages_fast(mm, t + 5 * PG, 1, FOLL_WRITE | FOLL_LONGTERM, &pinned), 1);
	cr_assert_eq(page_to_pfn(pinned), head + 5);
	cr_assert(folio_maybe_dma_pinned(thp));
	unsigned long free0 = nr_free();
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	/*
	 * Linux: copy_huge_pmd() cannot share a pinned exclusive THP, splits the
	 * parent's PMD and copy_pte_range() gives the child a copy of each page.
	 */
	cr_assert_not(pmd_mapped(mm, t));
	cr_assert_eq(free0 - nr_free(), NR + table_pages(child),
		     "the child got 512 copies (%lu pages taken)", free0 - nr_free());
	unsigned long *pc = pfns(child, t, NR);
	unsigned long *pp = pfns(mm, t, NR);
	for (unsigned long i = 0; i < NR; i++) {
		cr_assert_eq(pp[i], head + i);
		cr_assert(pc[i] < head || pc[i] >= head + NR);
		cr_assert_eq(writable(mm, t + i * PG), 1, "the parent keeps its pinned pages writable");
		cr_assert(PageAnonExclusive(pfn_to_page(head + i)));
	}
	assert_private_page(child, t + 5 * PG);
	free(pc);
	free(pp);
	cr_assert_eq(folio_ref_count(thp), NR + 1, "512 PTEs and one pin");
	check_pattern(child, t, HPS, 1);
	/* DMA into the pinned page reaches the parent only. */
	memset(page_address(pinned), 0x77, 16);
	uint8_t b = 0;
	cr_assert_eq(read_byte(mm, t + 5 * PG + 3, &b), 0);
	cr_assert_eq(b, 0x77);
	check_at(child, t, 5 * PG, PG, 1);
	unpin_user_page(pinned);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

Test(fork, pinned_page_copy_fails)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * PG, RW, 0);
	struct page *pinned;

	fill_pattern(mm, a, 4 * PG, 1);
	cr_assert_eq(pin_user_pages_fast(mm, a + 2 * PG, 1, FOLL_WRITE | FOLL_LONGTERM, &pinned), 1);
	unsigned long p2 = page_to_pfn(pinned);
	bool done = false;

	for (unsigned long n = 1; n < 16 && !done; n++) {
		unsigned long free0 = nr_free();
		struct fault_attr attr = { .probability = 100, .interval = n, .times = 1 };

		uhmm_fail_page_alloc(machine, &attr);
		struct mm_struct *child = mm_fork(mm);
		unsigned long injected = uhmm_fail_page_alloc_count(machine);
		uhmm_fail_page_alloc(machine, NULL);
		if (!injected) {
			cr_assert(!IS_ERR_OR_NULL(child));
			cr_assert_neq(pfn_at(child, a + 2 * PG), p2);
			check_pattern(child, a, 4 * PG, 1);
			assert_audit_clean();
			mmput(child);
			done = true;
			break;
		}
		cr_assert_eq(PTR_ERR(child), -ENOMEM, "allocation %lu: mm_fork = %ld", n,
			     PTR_ERR(child));
		assert_audit_clean();
		cr_assert_eq(nr_free(), free0, "allocation %lu failed: pages leaked", n);
		cr_assert_eq(pfn_at(mm, a + 2 * PG), p2);
		cr_assert_eq(writable(mm, a + 2 * PG), 1, "the pinned page stays writable");
		check_pattern(mm, a, 4 * PG, 1);
	}
	cr_assert(done);
	unpin_user_page(pinned);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* MADV_FREE across fork                                               */
/* ------------------------------------------------------------------ */

Test(fork, madv_free_on_shared_pages_is_ignored)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * PG, RW, 0);

	fill_pattern(mm, a, 4 * PG, 1);
	struct mm_struct *child = fork_mm(mm);

	/* Linux's madvise_free_pte_range() skips pages mapped more than once. */
	cr_assert_eq(mm_madvise(child, a, 4 * PG, MADV_FREE), 0);
	cr_assert_eq(uhmm_drop_lazyfree(machine), 0);
	check_pattern(child, a, 4 * PG, 1);
	check_pattern(mm, a, 4 * PG, 1);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

Test(fork, lazyfree_page_shared_by_fork)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * PG, RW, 0);

	fill_pattern(mm, a, 4 * PG, 1);
	cr_assert_eq(mm_madvise(mm, a, 4 * PG, MADV_FREE), 0);
	struct mm_struct *child = fork_mm(mm);

	assert_audit_clean();
	/* The child writes page 0 (a COW copy, swap-backed); the parent writes page 1. */
	fill_at(child, a, 0, 8, 2);
	fill_at(mm, a, PG, 8, 3);
	/* Reclaim discards the clean lazyfree pages wherever they are mapped. */
	unsigned long dropped = uhmm_drop_lazyfree(machine);
	assert_audit_clean();
	/*
	 * p0 in the parent, p1 in the child, p2 and p3 in both: 4 pages, 6
	 * mappings (uhmm_drop_lazyfree() counts mappings).
	 */
	cr_assert_geq(dropped, 4, "dropped %lu", dropped);
	cr_assert_leq(dropped, 6, "dropped %lu", dropped);
	cr_assert_eq(anon_rss(mm), 1);
	cr_assert_eq(anon_rss(child), 1);
	check_zero(mm, a, PG);
	check_at(mm, a, PG, 8, 3);
	check_at(child, a, 0, 8, 2);
	check_zero(child, a + PG, PG);
	check_zero(mm, a + 2 * PG, 2 * PG);
	check_zero(child, a + 2 * PG, 2 * PG);
	mmput(child);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* Concurrency: forks racing a writer                                  */
/* ------------------------------------------------------------------ */

#define RACE_SMALL 32
#define RACE_SLOTS (RACE_SMALL + 32) /* 32 small pages, then 32 pages of a THP */
#define RACE_PASSES 200
#define RACE_MAX_PASSES 200000
#define RACE_FORKS 400

struct race {
	struct mm_struct *mm;
	unsigned long a, t;
	atomic_int errors;
	atomic_int forks_done;
	atomic_int forker_done;
	uint64_t last; /* the writer's last pass */
	char msg[256];
	pthread_mutex_t msg_lock;
};

static unsigned long race_slot(struct race *r, int s)
{
	if (s < RACE_SMALL)
		return r->a + (unsigned long)s * PG + 8 * (unsigned long)(s % 7);
	return r->t + (unsigned long)(s - RACE_SMALL) * 16 * PG + 64;
}

static void race_error(struct race *r, const char *what, int s, uint64_t got, uint64_t want)
{
	pthread_mutex_lock(&r->msg_lock);
	if (!atomic_load(&r->errors))
		snprintf(r->msg, sizeof(r->msg), "%s: slot %d is %#llx, want %#llx", what, s,
			 (unsigned long long)got, (unsigned long long)want);
	atomic_fetch_add(&r->errors, 1);
	pthread_mutex_unlock(&r->msg_lock);
}

/*
 * Pass v writes v to every slot in order, then reads them all back.  The
 * writer keeps going until the forker is done (at least RACE_PASSES passes,
 * at most RACE_MAX_PASSES), so every fork overlaps its stores.
 */
static void *race_writer(void *arg)
{
	struct race *r = arg;
	uint64_t v;

	for (v = 1; v <= RACE_MAX_PASSES; v++) {
		for (int s = 0; s < RACE_SLOTS; s++)
			if (cpu_write(r->mm, race_slot(r, s), &v, 8))
				race_error(r, "writer: cpu_write failed", s, 0, v);
		for (int s = 0; s < RACE_SLOTS; s++) {
			uint64_t got = 0;

			if (cpu_read(r->mm, race_slot(r, s), &got, 8) || got != v)
				race_error(r, "writer reads back", s, got, v);
		}
		if (v >= RACE_PASSES && atomic_load(&r->forker_done))
			break;
	}
	r->last = v > RACE_MAX_PASSES ? RACE_MAX_PASSES : v;
	return NULL;
}

/*
 * Fork, check the child's snapshot (slots in write order hold v..v-1: fork
 * is atomic with respect to each store), write the child's own values,
 * check them, exit.
 */
static void *race_forker(void *arg)
{
	struct race *r = arg;

	for (int k = 0; k < RACE_FORKS; k++) {
		struct mm_struct *child = mm_fork(r->mm);
		uint64_t first = 0, prev = 0;

		if (IS_ERR_OR_NULL(child)) {
			race_error(r, "mm_fork failed", -1, (uint64_t)PTR_ERR(child), 0);
			atomic_store(&r->forker_done, 1);
			return NULL;
		}
		for (int s = 0; s < RACE_SLOTS; s++) {
			uint64_t got = 0;

			if (cpu_read(child, race_slot(r, s), &got, 8))
				race_error(r, "child: cpu_read failed", s, 0, 0);
			if (s == 0)
				first = got;
			else if (got > prev || got + 1 < first)
				race_error(r, "child snapshot torn", s, got, prev);
			prev = got;
		}
		for (int s = 0; s < RACE_SLOTS; s++) {
			uint64_t mine = 0xc0de000000000000ULL | ((uint64_t)k << 16) | (uint64_t)s;

			if (cpu_write(child, race_slot(r, s), &mine, 8))
				race_error(r, "child: cpu_write failed", s, 0, mine);
		}
		for (int s = 0; s < RACE_SLOTS; s++) {
			uint64_t mine = 0xc0de000000000000ULL | ((uint64_t)k << 16) | (uint64_t)s;
			uint64_t got = 0;

			if (cpu_read(child, race_slot(r, s), &got, 8) || got != mine)
				race_error(r, "child reads back", s, got, mine);
		}
		mmput(child);
		atomic_fetch_add(&r->forks_done, 1);
	}
	atomic_store(&r->forker_done, 1);
	return NULL;
}

Test(fork, forks_race_a_writer, .timeout = 300)
{
	struct race r = { 0 };
	pthread_t w, f;

	pthread_mutex_init(&r.msg_lock, NULL);
	r.mm = new_mm();
	r.a = map_anon(r.mm, 0, RACE_SMALL * PG, RW, 0);
	r.t = map_thp(r.mm, HPS);
	cpu_memset(r.mm, r.a, 0, RACE_SMALL * PG);
	cpu_memset(r.mm, r.t, 0, HPS);
	cr_assert(pmd_mapped(r.mm, r.t));

	cr_assert_eq(pthread_create(&w, NULL, race_writer, &r), 0);
	cr_assert_eq(pthread_create(&f, NULL, race_forker, &r), 0);
	pthread_join(w, NULL);
	pthread_join(f, NULL);
	cr_assert_eq(atomic_load(&r.errors), 0, "%d errors; first: %s", atomic_load(&r.errors),
		     r.msg);
	cr_assert_eq(atomic_load(&r.forks_done), RACE_FORKS);
	assert_audit_clean();
	for (int s = 0; s < RACE_SLOTS; s++) {
		uint64_t got = 0;

		cr_assert_eq(cpu_read(r.mm, race_slot(&r, s), &got, 8), 0);
		cr_assert_eq(got, r.last);
	}
	cr_log_info("%d forks during %llu writer passes", RACE_FORKS, (unsigned long long)r.last);
	cr_assert_eq(anon_rss(r.mm), RACE_SMALL + NR);
	pthread_mutex_destroy(&r.msg_lock);
	mmput(r.mm);
}

/* ------------------------------------------------------------------ */
/* Allocation failure                                                  */
/* ------------------------------------------------------------------ */

struct fail_layout {
	unsigned long a;  /* 4 MiB plain: pages in two PTE tables, zero-page PTEs */
	unsigned long t;  /* 4 MiB THP VMA: a THP and a huge zero PMD */
	unsigned long far; /* a VMA in another PGD slot */
	unsigned long w;  /* a WIPEONFORK VMA */
	unsigned long z;  /* a zero-page-only VMA (not copied) */
};

static void fail_setup(struct mm_struct *mm, struct fail_layout *l)
{
	l->a = map_plain(mm, 2 * HPS);
	l->t = map_thp(mm, 2 * HPS);
	l->far = map_anon(mm, 1UL << 44, 4 * PG, RW, MAP_FIXED_NOREPLACE);
	l->w = map_anon(mm, 0, 4 * PG, RW, 0);
	l->z = map_anon(mm, 0, 4 * PG, RW, 0);
	fill_at(mm, l->a, 0, 3 * PG, 1);
	fill_at(mm, l->a, HPS + 7 * PG, PG, 1);
	check_zero(mm, l->a + 10 * PG, PG);
	fill_at(mm, l->t, 0, HPS, 2);
	check_zero(mm, l->t + HPS, PG);
	fill_at(mm, l->far, 0, 4 * PG, 3);
	cr_assert_eq(mm_madvise(mm, l->w, 4 * PG, MADV_WIPEONFORK), 0);
	fill_at(mm, l->w, 0, 4 * PG, 4);
	check_zero(mm, l->z, 4 * PG);
}

static void fail_check(struct mm_struct *mm, const struct fail_layout *l)
{
	check_at(mm, l->a, 0, 3 * PG, 1);
	check_at(mm, l->a, HPS + 7 * PG, PG, 1);
	check_zero(mm, l->a + 3 * PG, HPS + 4 * PG);
	check_at(mm, l->t, 0, HPS, 2);
	check_zero(mm, l->t + HPS, HPS);
	check_at(mm, l->far, 0, 4 * PG, 3);
	check_at(mm, l->w, 0, 4 * PG, 4);
	check_zero(mm, l->z, 4 * PG);
}

Test(fork, allocation_failure_at_every_step, .timeout = 300)
{
	struct mm_struct *mm = new_mm();
	struct mm_struct *ok = NULL;
	struct fail_layout l;

	fail_setup(mm, &l);
	unsigned long a_pfn = pfn_at(mm, l.a), thp = pfn_at(mm, l.t);
	unsigned long hz = pfn_at(mm, l.t + HPS);
	int failures = 0;
	unsigned long n;

	for (n = 1; n < 64; n++) {
		unsigned long free0 = nr_free();
		struct fault_attr attr = { .probability = 100, .interval = n, .times = 1 };

		uhmm_fail_page_alloc(machine, &attr);
		struct mm_struct *child = mm_fork(mm);
		unsigned long injected = uhmm_fail_page_alloc_count(machine);
		uhmm_fail_page_alloc(machine, NULL);

		if (!injected) {
			/* Fork needs fewer than n allocations: it succeeded. */
			cr_assert(!IS_ERR_OR_NULL(child), "mm_fork = %ld with no failure injected",
				  PTR_ERR(child));
			ok = child;
			break;
		}
		failures++;
		cr_assert_eq(PTR_ERR(child), -ENOMEM, "allocation %lu failed: mm_fork = %ld", n,
			     PTR_ERR(child));
		assert_audit_clean();
		cr_assert_eq(nr_free(), free0, "allocation %lu failed: %ld pages leaked", n,
			     (long)free0 - (long)nr_free());
		fail_check(mm, &l);
		/* Everything is the parent's alone again. */
		cr_assert_eq(folio_ref_count(folio_at(mm, l.a)), 1);
		cr_assert_eq(folio_ref_count(folio_at(mm, l.t)), 1);
		cr_assert(pmd_mapped(mm, l.t));
		cr_assert_eq(pfn_at(mm, l.t + HPS), hz);
		/* Writes reuse in place (the pages may have lost their exclusive mark). */
		fill_at(mm, l.a, 0, PG, 1);
		fill_at(mm, l.t, 0, PG, 2);
		cr_assert_eq(pfn_at(mm, l.a), a_pfn);
		cr_assert_eq(pfn_at(mm, l.t), thp);
		cr_assert(pmd_mapped(mm, l.t));
		cr_assert_eq(nr_free(), free0);
		assert_audit_clean();
	}
	cr_assert_lt(n, 64, "mm_fork kept failing");
	cr_assert_geq(failures, 8, "only %d allocations in fork?", failures);
	cr_log_info("mm_fork of this layout makes %d allocations; each failure was clean", failures);
	/* The child of the first fork that could allocate is a faithful copy. */
	assert_audit_clean();
	check_at(ok, l.a, 0, 3 * PG, 1);
	check_at(ok, l.a, HPS + 7 * PG, PG, 1);
	cr_assert_eq(pfn_at(ok, l.a + 10 * PG), uhmm_zero_pfn(machine));
	cr_assert_eq(pfn_at(ok, l.a), a_pfn);
	cr_assert_eq(pfn_at(ok, l.t), thp);
	cr_assert(pmd_mapped(ok, l.t));
	cr_assert_eq(pfn_at(ok, l.t + HPS), hz);
	check_at(ok, l.far, 0, 4 * PG, 3);
	check_zero(ok, l.w, 4 * PG);
	cr_assert_eq(pagemap(ok, l.z), 0);
	fail_check(mm, &l);
	mmput(ok);
	mmput(mm);
}
