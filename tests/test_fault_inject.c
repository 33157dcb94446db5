/* SPDX-License-Identifier: MIT */
/*
 * tests/test_fault_inject.c - allocation failure at the N-th call, swept.
 *
 * Each scenario is a short deterministic sequence of calls that allocate on
 * many paths (first-touch faults, the zero pages and COW, THP faults with
 * their fallback, MADV_POPULATE_WRITE and MADV_COLLAPSE, THP splits by
 * mprotect and munmap, mremap, fork, shmem and file faults, the page cache,
 * hugetlb, GUP, hmm_range_fault, dmirror READ/WRITE/SNAPSHOT and both
 * migrations, migrate_to_ram, eviction on close).  For every scenario and
 * every target (any RAM allocation, RAM large folios only, the device
 * memory of the device the scenario uses), the scenario runs on a fresh
 * machine with the N-th eligible allocation failing, for N = 1, 2, ...
 * until a run injects nothing.  In every run:
 *
 *  - each call succeeds or fails with the errno Linux gives for it (a
 *    failure is only allowed when the injected one just happened);
 *  - right after a failure the audits are clean, the failed call left the
 *    bytes as they were (a CPU store may have written a prefix, as a real
 *    one would before the faulting page), and the same call with injection
 *    off succeeds;
 *  - at the end every byte reads back as the shadow model says, the audits
 *    are clean and, after teardown, every page of RAM and device memory is
 *    free.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <uhmm/dmirror.h>
#include <uhmm/gup.h>
#include <uhmm/hmm.h>
#include <uhmm/hugetlb.h>
#include <uhmm/memremap.h>

#include "helpers.h"

#define PG PAGE_SIZE
#define THP_SIZE HPAGE_PMD_SIZE
/* Small enough that creating the machine is cheap; the hugetlb pool gets 2 pages. */
#define FI_RAM_SIZE (64UL << 20)
/* A sweep that has not ended after this many runs is a bug (a rule that never stops firing). */
#define FI_MAX_N 4000

enum fi_target { TGT_RAM, TGT_RAM_LARGE, TGT_DEVMEM, NR_TARGETS };

static const char *const target_names[NR_TARGETS] = {"ram", "ram-large", "devmem"};

/* One run: what is injected, and what the run has seen. */
struct fi_run {
	const char *scenario;
	enum fi_target target;
	unsigned long n;
	int minor; /* the device the scenario uses, -1 for none */
	struct dmirror_module *mod;
	unsigned long failed_calls;
	unsigned long dry_calls; /* eligible calls the run made */
	char ctx[96];
};

static struct fi_run run;

#define CHECK(cond, fmt, ...) cr_assert(cond, "%s: " fmt, run.ctx, ##__VA_ARGS__)

/* ---- injection ---- */

static void inject_on(void)
{
	struct fault_attr a = {
		.probability = 100,
		.interval = run.n ? run.n : 1,
		.times = run.n ? 1 : 0, /* N = 0: the dry run, which counts calls */
		.min_order = run.target == TGT_RAM_LARGE ? HPAGE_PMD_ORDER : 0,
	};

	if (run.target == TGT_DEVMEM)
		cr_assert_eq(dmirror_fail_devmem_alloc(run.mod, (unsigned int)run.minor, &a), 0);
	else
		uhmm_fail_page_alloc(machine, &a);
}

static void inject_off(void)
{
	uhmm_fail_page_alloc(machine, NULL);
	if (run.mod)
		cr_assert_eq(dmirror_fail_devmem_alloc(run.mod, (unsigned int)run.minor, NULL), 0);
}

static unsigned long injected(void)
{
	if (run.target == TGT_DEVMEM)
		return dmirror_fail_devmem_alloc_count(run.mod, (unsigned int)run.minor);
	return uhmm_fail_page_alloc_count(machine);
}

/* Eligible calls so far: in the dry run, where each step ends. */
static unsigned long inject_calls(void)
{
	if (run.target == TGT_DEVMEM)
		return dmirror_fail_devmem_alloc_calls(run.mod, (unsigned int)run.minor);
	return uhmm_fail_page_alloc_calls(machine);
}

/* The dry run records the eligible-call count at the end of every step. */
#define MAX_MARKS 512
static unsigned long marks[MAX_MARKS];
static int nr_marks;

static void step_mark(void)
{
	if (run.n == 0 && nr_marks < MAX_MARKS)
		marks[nr_marks++] = inject_calls();
}

/* uhmm_audit() (unless @dmirror_only) and dmirror_audit(). */
static void __audits_clean(bool dmirror_only)
{
	int v = dmirror_only ? 0 : uhmm_audit(machine, stderr);

	CHECK(v == 0, "the audit found %d violations", v);
	if (run.mod) {
		v = dmirror_audit(run.mod, stderr);
		CHECK(v == 0, "the dmirror audit found %d violations", v);
	}
}

static void audits_clean(void)
{
	__audits_clean(false);
}

/*
 * A call failed with @ret.  It must be the injected failure (the only one
 * a run has), with an errno from the list that ends with 0; the audits
 * must be clean.  Injection is turned off so that the retry must succeed.
 */
static void call_failed(const char *what, long ret, ...)
{
	va_list ap;
	bool allowed = false;

	va_start(ap, ret);
	for (int e = va_arg(ap, int); e; e = va_arg(ap, int))
		if (ret == e)
			allowed = true;
	va_end(ap);
	CHECK(allowed, "%s failed with %ld, not an errno Linux gives there", what, ret);
	CHECK(run.failed_calls == 0,
	      "%s failed (%ld) after the injected failure: retrying with injection off failed",
	      what, ret);
	CHECK(injected() == 1, "%s failed (%ld) but nothing was injected", what, ret);
	if (getenv("UHMM_FI_VERBOSE"))
		fprintf(stderr, "%s: %s failed with %ld\n", run.ctx, what, ret);
	run.failed_calls++;
	inject_off();
	audits_clean();
}

/* ---- the shadow model ---- */

/* What a mapping must hold: @want per byte, and which pages are still mapped. */
struct region {
	struct mm_struct *mm;
	unsigned long addr;
	unsigned long len;
	uint8_t *want;
	bool *mapped;
};

#define MAX_REGIONS 8
static struct region regions[MAX_REGIONS];
static int nr_regions;

static struct region *region_new(struct mm_struct *mm, unsigned long addr, unsigned long len)
{
	struct region *r;

	cr_assert_lt(nr_regions, MAX_REGIONS);
	r = &regions[nr_regions++];
	r->mm = mm;
	r->addr = addr;
	r->len = len;
	r->want = calloc(len, 1);
	r->mapped = calloc(len / PG, sizeof(bool));
	cr_assert(r->want && r->mapped);
	for (unsigned long i = 0; i < len / PG; i++)
		r->mapped[i] = true;
	return r;
}

/* A child's copy of @r after fork. */
static struct region *region_clone(const struct region *r, struct mm_struct *mm)
{
	struct region *c = region_new(mm, r->addr, r->len);

	memcpy(c->want, r->want, r->len);
	memcpy(c->mapped, r->mapped, r->len / PG * sizeof(bool));
	return c;
}

static void regions_free(void)
{
	for (int i = 0; i < nr_regions; i++) {
		free(regions[i].want);
		free(regions[i].mapped);
	}
	nr_regions = 0;
}

/* Fast deterministic bytes (a 2 MiB fill per run must stay cheap). */
static void gen_bytes(uint8_t *buf, size_t len, uint32_t seed)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL * (seed + 1);

	for (size_t i = 0; i < len; i += 8) {
		/* never a 0 byte: a page lost to a fresh zeroed one shows */
		uint64_t word;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		word = x | 0x0101010101010101ULL;
		memcpy(buf + i, &word, len - i < 8 ? len - i : 8);
	}
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	cr_assert(p);
	return p;
}

/* Compare @len bytes read at @r + @off with the shadow. */
static void expect_bytes(const struct region *r, unsigned long off, const uint8_t *got, size_t len,
			 const char *what)
{
	if (!memcmp(got, r->want + off, len))
		return;
	for (size_t i = 0; i < len; i++)
		if (got[i] != r->want[off + i])
			CHECK(false, "%s: byte at %#lx (+%#lx) is %#x, want %#x", what,
			      r->addr + off + i, off + i, got[i], r->want[off + i]);
}

/* ---- calls: each retries after the injected failure ---- */

static struct mm_struct *s_mm_alloc(void)
{
	for (;;) {
		struct mm_struct *mm = mm_alloc(machine);

		if (!IS_ERR_OR_NULL(mm)) {
			step_mark();
			return mm;
		}
		call_failed("mm_alloc", PTR_ERR(mm), -ENOMEM, 0);
	}
}

static unsigned long s_mmap(struct mm_struct *mm, unsigned long len, int flags, struct file *file)
{
	for (;;) {
		long ret = mm_mmap(mm, 0, len, PROT_READ | PROT_WRITE, flags, file, 0);

		if (ret > 0) {
			step_mark();
			return (unsigned long)ret;
		}
		/* Linux's mmap() ignores what MAP_POPULATE could not fault in. */
		call_failed("mm_mmap", ret, (flags & MAP_POPULATE) ? 0 : -ENOMEM, 0);
	}
}

/* A private anonymous region of @len; @thp: 2 MiB aligned with MADV_HUGEPAGE. */
static struct region *s_anon(struct mm_struct *mm, unsigned long len, bool thp)
{
	unsigned long addr = s_mmap(mm, len, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	if (thp) {
		CHECK(IS_ALIGNED(addr, THP_SIZE), "a THP-sized mapping at %#lx", addr);
		for (int ret; (ret = mm_madvise(mm, addr, len, MADV_HUGEPAGE));)
			call_failed("MADV_HUGEPAGE", ret, -ENOMEM, 0);
	}
	return region_new(mm, addr, len);
}

/*
 * A CPU access whose fault cannot allocate fails with -ENOMEM
 * (VM_FAULT_OOM); a scenario sets this to -EFAULT where Linux raises SIGBUS
 * instead (a hugetlb fault that finds no huge page), else it is 0.
 */
static int cpu_sigbus_errno;

/*
 * cpu_write() of @len generated bytes at @r + @off.  A failed store may
 * have written a prefix (the pages before the one whose fault failed), never
 * anything after it.
 */
static void s_write(struct region *r, unsigned long off, size_t len, uint32_t seed)
{
	uint8_t *buf = xmalloc(len), *got = xmalloc(len);
	int ret;

	gen_bytes(buf, len, seed);
	while ((ret = cpu_write(r->mm, r->addr + off, buf, len))) {
		call_failed("cpu_write", ret, -ENOMEM, cpu_sigbus_errno, 0);
		CHECK(cpu_read(r->mm, r->addr + off, got, len) == 0, "read after a failed write");
		size_t k = 0;

		while (k < len && got[k] == buf[k])
			k++;
		expect_bytes(r, off + k, got + k, len - k, "after a failed cpu_write");
	}
	memcpy(r->want + off, buf, len);
	free(buf);
	free(got);
	step_mark();
}

/* cpu_read() of @r + @off, checked against the shadow. */
static void s_read(struct region *r, unsigned long off, size_t len)
{
	uint8_t *got = xmalloc(len);
	int ret;

	while ((ret = cpu_read(r->mm, r->addr + off, got, len)))
		call_failed("cpu_read", ret, -ENOMEM, cpu_sigbus_errno, 0);
	expect_bytes(r, off, got, len, "cpu_read");
	free(got);
	step_mark();
}

/* An atomic add on the u64 at @r + @off. */
static void s_atomic_add(struct region *r, unsigned long off, uint64_t val)
{
	uint64_t old, want;
	int ret;

	memcpy(&want, r->want + off, 8);
	while ((ret = cpu_atomic_fetch_add_u64(r->mm, r->addr + off, val, &old)))
		call_failed("cpu_atomic_fetch_add_u64", ret, -ENOMEM, 0);
	CHECK(old == want, "atomic add saw %#llx, want %#llx", (unsigned long long)old,
	      (unsigned long long)want);
	want += val;
	memcpy(r->want + off, &want, 8);
	step_mark();
}

static void s_madvise(struct region *r, unsigned long off, unsigned long len, int advice)
{
	int ret;

	/*
	 * MADV_POPULATE_WRITE and MADV_COLLAPSE fail with -ENOMEM when they
	 * cannot allocate; MADV_DONTNEED cannot fail for want of memory (a
	 * PMD split uses the table deposited with the THP).
	 */
	while ((ret = mm_madvise(r->mm, r->addr + off, len, advice)))
		call_failed(advice == MADV_COLLAPSE ? "MADV_COLLAPSE" : "madvise", ret,
			    advice == MADV_DONTNEED ? 0 : -ENOMEM, 0);
	if (advice == MADV_COLLAPSE)
		CHECK(folio_test_pmd_mappable(folio_at(r->mm, r->addr + off)),
		      "MADV_COLLAPSE succeeded but %#lx is not in a THP", r->addr + off);
	if (advice == MADV_POPULATE_WRITE)
		/* Success means every page is there (write-faulted in). */
		for (unsigned long a = 0; a < len; a += PG)
			CHECK(pagemap(r->mm, r->addr + off + a) & PM_PRESENT,
			      "MADV_POPULATE_WRITE succeeded but %#lx is not present",
			      r->addr + off + a);
	step_mark();
}

static void s_mprotect(struct region *r, unsigned long off, unsigned long len, int prot)
{
	int ret;

	/* No page allocation can fail it: PMD splits use the deposited table. */
	while ((ret = mm_mprotect(r->mm, r->addr + off, len, prot)))
		call_failed("mprotect", ret, 0);
	step_mark();
}

static void s_munmap(struct region *r, unsigned long off, unsigned long len)
{
	int ret;

	/* No page allocation can fail it: PMD splits use the deposited table. */
	while ((ret = mm_munmap(r->mm, r->addr + off, len))) {
		call_failed("munmap", ret, 0);
		/* Linux: a failed munmap unmapped nothing. */
		s_read(r, off, len);
	}
	for (unsigned long i = off / PG; i < (off + len) / PG; i++)
		r->mapped[i] = false;
	step_mark();
}

/* mremap(MREMAP_MAYMOVE | @flags) of all of @r to @new_len (@new_addr with MREMAP_FIXED). */
static void s_mremap(struct region *r, unsigned long new_len, int flags, unsigned long new_addr)
{
	long ret;

	while ((ret = mm_mremap(r->mm, r->addr, r->len, new_len, MREMAP_MAYMOVE | flags,
				new_addr)) < 0) {
		call_failed("mremap", ret, -ENOMEM, 0);
		/* The source is as it was. */
		s_read(r, 0, r->len);
	}
	CHECK(!(flags & MREMAP_FIXED) || (unsigned long)ret == new_addr, "mremap to %#lx",
	      new_addr);
	r->addr = (unsigned long)ret;
	if (new_len > r->len) {
		r->want = realloc(r->want, new_len);
		r->mapped = realloc(r->mapped, new_len / PG * sizeof(bool));
		cr_assert(r->want && r->mapped);
		memset(r->want + r->len, 0, new_len - r->len);
		for (unsigned long i = r->len / PG; i < new_len / PG; i++)
			r->mapped[i] = true;
	}
	r->len = new_len;
	step_mark();
}

static struct mm_struct *s_fork(struct mm_struct *mm)
{
	for (;;) {
		struct mm_struct *child = mm_fork(mm);

		if (!IS_ERR_OR_NULL(child)) {
			step_mark();
			return child;
		}
		call_failed("mm_fork", PTR_ERR(child), -ENOMEM, 0);
		/* The parent is untouched. */
		for (int i = 0; i < nr_regions; i++)
			if (regions[i].mm == mm)
				for (unsigned long p = 0; p < regions[i].len / PG; p++)
					if (regions[i].mapped[p])
						s_read(&regions[i], p * PG, PG);
	}
}

/* ---- the check at the end of every run ---- */

static void check_regions(void)
{
	for (int i = 0; i < nr_regions; i++)
		for (unsigned long p = 0; p < regions[i].len / PG; p++)
			if (regions[i].mapped[p])
				s_read(&regions[i], p * PG, PG);
}

/* ---- scenarios: CPU faults ---- */

/* 4 KiB first-touch faults, the zero page, COW of the zero page, atomics, memset. */
static void scen_anon_4k(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *r = s_anon(mm, 8 * PG, false);

	s_read(r, 0, 16);		 /* the zero page */
	s_write(r, PG - 100, 2 * PG, 1); /* pages 0..2: COW of the zero page, two new pages */
	s_write(r, 0, 64, 2);
	s_atomic_add(r, 5 * PG + 8, 7); /* a new page by an atomic */
	s_read(r, 6 * PG, PG);		/* the zero page again */
	s_atomic_add(r, 6 * PG, 3);	/* COW of it by an atomic */
	s_write(r, 7 * PG, PG, 3);
	/* MAP_POPULATE: population that fails leaves holes, mmap() succeeds. */
	struct region *pop = region_new(
		mm, s_mmap(mm, 4 * PG, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, NULL), 4 * PG);
	s_write(pop, 2 * PG, 8, 35);
	check_regions();
	mmput(mm);
}

/* THP faults with their fallback; the huge zero folio and its COW. */
static void scen_anon_thp(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *r = s_anon(mm, 2 * THP_SIZE, true);

	s_write(r, 100, 1000, 4);	     /* a THP (or 4 KiB pages) */
	s_read(r, THP_SIZE + 5 * PG, 64);    /* the huge zero folio */
	s_write(r, THP_SIZE + 7 * PG, 8, 5); /* its COW */
	s_write(r, THP_SIZE - 8, 16, 6);     /* across both PMDs */
	check_regions();
	mmput(mm);
}

/* MADV_POPULATE_WRITE on 4 KiB pages, then MADV_COLLAPSE of the PMD. */
static void scen_populate_collapse(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *r = s_anon(mm, THP_SIZE, false);

	s_write(r, 3 * PG, 100, 7);
	s_madvise(r, 0, 8 * PG, MADV_POPULATE_WRITE);
	s_write(r, 5 * PG, PG, 8);
	s_madvise(r, 0, THP_SIZE, MADV_COLLAPSE);
	s_write(r, THP_SIZE - PG, 64, 9);
	check_regions();
	mmput(mm);
}

/* mprotect and munmap of parts of a PMD-mapped THP: PMD splits. */
static void scen_thp_split(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *r = s_anon(mm, 2 * THP_SIZE, true);

	s_write(r, 0, THP_SIZE, 10);
	s_write(r, THP_SIZE, 2 * PG, 11);
	s_mprotect(r, 3 * PG, PG, PROT_READ); /* splits the first PMD */
	s_munmap(r, 10 * PG, 2 * PG);	      /* a hole in the split THP */
	s_munmap(r, THP_SIZE + 100 * PG, PG); /* splits the second one */
	s_write(r, 20 * PG, 8, 12);
	s_mprotect(r, 3 * PG, PG, PROT_READ | PROT_WRITE);
	s_write(r, 3 * PG, 8, 13);

	/* MADV_DONTNEED of part of a THP and mremap shrinking one: PMD splits. */
	struct region *h = s_anon(mm, THP_SIZE, true);
	struct region *h2 = s_anon(mm, THP_SIZE, true);

	s_write(h, 0, 4 * PG, 14);
	s_write(h2, 0, 4 * PG, 15);
	s_madvise(h, PG, PG, MADV_DONTNEED);
	memset(h->want + PG, 0, PG);
	s_mremap(h2, THP_SIZE / 2, 0, 0);
	check_regions();
	mmput(mm);
}

/* mremap moving 4 KiB page tables and a whole PMD; growing in place or not. */
static void scen_mremap(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *small = s_anon(mm, 4 * PG, false);
	struct region *huge = s_anon(mm, THP_SIZE, true);
	struct region *dest = s_anon(mm, 2 * THP_SIZE, false);

	s_write(small, 0, 3 * PG, 14);
	s_write(huge, 0, THP_SIZE, 15);
	s_mremap(small, 8 * PG, 0, 0); /* grow, moving if it must */
	s_write(small, 6 * PG, 16, 16);
	/* Both over the destination: the PMD moves whole, the PTEs into a new table. */
	s_munmap(dest, 0, 2 * THP_SIZE);
	s_mremap(huge, THP_SIZE, MREMAP_FIXED, dest->addr);
	s_mremap(small, 8 * PG, MREMAP_FIXED, dest->addr + THP_SIZE + 3 * PG);
	s_write(huge, 5 * PG, 8, 17);
	check_regions();
	mmput(mm);
}

/* fork, then COW of 4 KiB pages and of a THP in the parent and in the child. */
static void scen_fork_cow(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *small = s_anon(mm, 4 * PG, false);
	struct region *huge = s_anon(mm, THP_SIZE, true);

	s_write(small, 0, 3 * PG, 18);
	s_write(huge, 0, THP_SIZE, 19);
	struct mm_struct *child = s_fork(mm);
	struct region *csmall = region_clone(small, child);
	struct region *chuge = region_clone(huge, child);

	s_write(csmall, PG + 5, 10, 20); /* COW in the child */
	s_write(small, 2 * PG, 10, 21);	 /* COW in the parent */
	s_write(chuge, 7 * PG, 10, 22);	 /* THP COW in the child */
	s_write(huge, 9 * PG, 10, 23);	 /* the parent reuses or copies */
	s_write(small, 3 * PG, 10, 24);	 /* the zero page in the parent */
	check_regions();
	mmput(child);
	mmput(mm);
}

/* ---- scenarios: files ---- */

static struct file *s_memfd(void)
{
	for (;;) {
		struct file *f = uhmm_memfd_create(machine, "fault_inject");

		if (!IS_ERR_OR_NULL(f)) {
			step_mark();
			return f;
		}
		call_failed("memfd_create", PTR_ERR(f), -ENOMEM, 0);
	}
}

/*
 * pwrite @len generated bytes at @pos: a short write is what Linux gives
 * when it runs out of memory after some bytes, -ENOMEM before any; the rest
 * is written by calling again.  @shared (may be NULL) maps the file at 0.
 */
static void s_pwrite(struct file *f, uint8_t *file_want, struct region *shared, loff_t pos,
		     size_t len, uint32_t seed)
{
	uint8_t *buf = xmalloc(len), *got = xmalloc(len);
	size_t done = 0;

	gen_bytes(buf, len, seed);
	while (done < len) {
		ssize_t ret = uhmm_pwrite(f, buf + done, len - done, pos + (loff_t)done);

		if (ret > 0) {
			if ((size_t)ret < len - done)
				CHECK(injected() == 1, "a short pwrite (%zd) with nothing injected",
				      ret);
			done += (size_t)ret;
			continue;
		}
		call_failed("pwrite", ret, -ENOMEM, 0);
		/* Nothing of the failed part was written. */
		CHECK(uhmm_pread(f, got, len - done, pos + (loff_t)done) == (ssize_t)(len - done),
		      "pread after a failed pwrite");
		for (size_t i = 0; i < len - done; i++)
			CHECK(got[i] == file_want[pos + done + i], "byte %zu of the file changed",
			      (size_t)pos + done + i);
	}
	memcpy(file_want + pos, buf, len);
	if (shared)
		memcpy(shared->want + pos, buf, len);
	free(buf);
	free(got);
	step_mark();
}

/* shmem (MAP_SHARED | MAP_ANONYMOUS), a memfd mapped shared and private, the page cache. */
static void scen_files(void)
{
	struct mm_struct *mm = s_mm_alloc();
	unsigned long flen = 4 * PG;
	uint8_t *file_want = calloc(flen, 1);
	struct file *f = s_memfd();
	long ret;

	cr_assert(file_want);
	while ((ret = uhmm_ftruncate(f, (loff_t)flen)))
		call_failed("ftruncate", ret, -ENOMEM, 0);
	step_mark();
	struct region *shm =
		region_new(mm, s_mmap(mm, 4 * PG, MAP_SHARED | MAP_ANONYMOUS, NULL), 4 * PG);
	s_write(shm, PG - 4, 8, 25); /* two shmem pages */
	s_read(shm, 3 * PG, 8);	     /* a hole of shmem reads zeros */

	s_pwrite(f, file_want, NULL, 100, 2 * PG, 26); /* three page-cache pages */
	struct region *fs = region_new(mm, s_mmap(mm, flen, MAP_SHARED, f), flen);
	memcpy(fs->want, file_want, flen);
	struct region *fp = region_new(mm, s_mmap(mm, flen, MAP_PRIVATE, f), flen);
	memcpy(fp->want, file_want, flen);

	s_read(fs, 0, flen);		/* file faults */
	s_write(fs, 3 * PG + 1, 8, 27); /* a write fault on a hole of the file */
	memcpy(file_want + 3 * PG + 1, fs->want + 3 * PG + 1, 8);
	memcpy(fp->want + 3 * PG + 1, fs->want + 3 * PG + 1, 8); /* fp has not copied it yet */
	s_read(fp, PG, 8);				  /* a private read maps the page cache */
	s_write(fp, PG + 8, 8, 28);			  /* COW into an anonymous page */
	s_pwrite(f, file_want, fs, 2 * PG, 8, 29);	  /* seen by the shared mapping... */
	memcpy(fp->want + 2 * PG, file_want + 2 * PG, 8); /* ...and by the private one's page */
	check_regions();
	uint8_t *got = xmalloc(flen);
	CHECK(uhmm_pread(f, got, flen, 0) == (ssize_t)flen, "pread");
	CHECK(memcmp(got, file_want, flen) == 0, "the file's bytes");
	free(got);
	free(file_want);
	mmput(mm);
	fput(f);
}

/* A private hugetlb mapping: faults from the pool, fork and COW. */
static void scen_hugetlb(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *h = region_new(
		mm, s_mmap(mm, THP_SIZE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, NULL),
		THP_SIZE);

	s_write(h, 5 * PG, 100, 30);
	struct mm_struct *child = s_fork(mm);
	struct region *ch = region_clone(h, child);

	s_write(ch, 9 * PG, 100, 31); /* COW from the pool */
	s_read(h, 0, THP_SIZE);
	check_regions();
	mmput(child);
	mmput(mm);
}

/*
 * Surplus hugetlb pages (nr_overcommit_hugepages) come from the buddy
 * allocator: a private mapping's reservation at mmap() (-ENOMEM when it
 * cannot be had) and a MAP_NORESERVE fault (SIGBUS, as Linux's
 * hugetlb_no_page() gives for a failed alloc_hugetlb_folio()).
 */
static void scen_hugetlb_surplus(void)
{
	struct hugetlb_stats hs;

	cr_assert_eq(uhmm_hugetlb_stats(machine, &hs), 0);
	uhmm_hugetlb_set_nr_overcommit_hugepages(machine, 4);
	struct mm_struct *mm = s_mm_alloc();
	unsigned long len = (hs.total + 1) * THP_SIZE;
	struct region *h = region_new(
		mm, s_mmap(mm, len, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, NULL), len);

	for (unsigned long i = 0; i <= hs.total; i++)
		s_write(h, i * THP_SIZE + 64, 64, 60 + (uint32_t)i);
	struct region *nores =
		region_new(mm,
			   s_mmap(mm, THP_SIZE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE, NULL),
			   THP_SIZE);

	cpu_sigbus_errno = -EFAULT;
	s_write(nores, 100, 8, 65);
	cpu_sigbus_errno = 0;
	check_regions();
	mmput(mm);
	uhmm_hugetlb_set_nr_overcommit_hugepages(machine, 0);
}

/* ---- scenarios: GUP and hmm_range_fault ---- */

static void scen_gup(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *r = s_anon(mm, 8 * PG, false);
	struct region *huge = s_anon(mm, THP_SIZE, true);
	struct page *pages[8];

	s_write(r, PG, 2 * PG, 32);
	s_read(r, 4 * PG, 8);
	/* pin 8 pages for writing: faults the holes in, breaks COW of the zero page. */
	for (unsigned long done = 0; done < 8;) {
		int ret = pin_user_pages_fast(mm, r->addr + done * PG, (int)(8 - done),
					      FOLL_WRITE | FOLL_LONGTERM, pages);

		if (ret > 0) {
			if (done + (unsigned long)ret < 8)
				CHECK(injected() == 1, "a short pin (%d) with nothing injected",
				      ret);
			unpin_user_pages(pages, (unsigned long)ret);
			done += (unsigned long)ret;
			continue;
		}
		call_failed("pin_user_pages_fast", ret, -ENOMEM, 0);
	}
	step_mark();
	/* get_user_pages_remote of a THP hole: the fault allocates the THP. */
	for (;;) {
		long ret =
			get_user_pages_remote(mm, huge->addr + 3 * PG, 1, FOLL_WRITE, pages, NULL);

		if (ret == 1) {
			put_page(pages[0]);
			break;
		}
		call_failed("get_user_pages_remote", ret, -ENOMEM, 0);
	}
	step_mark();
	s_write(huge, 3 * PG, 8, 33);

	/* fork copies pages that may be pinned at once: a 4 KiB page and a THP. */
	struct page *pinned[2];

	cr_assert_eq(
		pin_user_pages_fast(mm, r->addr + PG, 1, FOLL_WRITE | FOLL_LONGTERM, &pinned[0]),
		1);
	cr_assert_eq(pin_user_pages_fast(mm, huge->addr, 1, FOLL_WRITE | FOLL_LONGTERM, &pinned[1]),
		     1);
	struct mm_struct *child = s_fork(mm);
	struct region *c = region_clone(r, child);
	struct region *chuge = region_clone(huge, child);

	s_write(c, PG + 16, 8, 36);
	s_write(chuge, 16, 8, 37);
	s_write(r, PG + 24, 8, 38);
	s_write(huge, 24, 8, 39);
	/* The pinned pages are still the parent's. */
	CHECK(memcmp(page_address(pinned[0]) + 16, r->want + PG + 16, 16) == 0, "pinned page");
	CHECK(memcmp(page_address(pinned[1]) + 16, huge->want + 16, 16) == 0, "pinned THP");
	unpin_user_pages(pinned, 2);
	check_regions();
	mmput(child);
	mmput(mm);
}

struct fi_notifier {
	struct mmu_interval_notifier sub;
	pthread_mutex_t lock;
};

static bool fi_invalidate(struct mmu_interval_notifier *sub, const struct mmu_notifier_range *range,
			  unsigned long cur_seq)
{
	struct fi_notifier *n = container_of(sub, struct fi_notifier, sub);

	(void)range;
	pthread_mutex_lock(&n->lock);
	mmu_interval_set_seq(sub, cur_seq);
	pthread_mutex_unlock(&n->lock);
	return true;
}

static const struct mmu_interval_notifier_ops fi_notifier_ops = {.invalidate = fi_invalidate};

/* hmm_range_fault(HMM_PFN_REQ_FAULT [| WRITE]) with the retry protocol; -errno on failure. */
static int hmm_fault(struct fi_notifier *n, unsigned long start, unsigned long npages, bool write,
		     unsigned long *pfns)
{
	struct hmm_range range = {
		.notifier = &n->sub,
		.start = start,
		.end = start + npages * PG,
		.hmm_pfns = pfns,
		.default_flags = HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
	};

	for (int tries = 0; tries < 100; tries++) {
		int ret;

		range.notifier_seq = mmu_interval_read_begin(&n->sub);
		mmap_read_lock(n->sub.mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(n->sub.mm);
		if (ret == -EBUSY)
			continue;
		if (ret)
			return ret;
		pthread_mutex_lock(&n->lock);
		ret = mmu_interval_read_retry(&n->sub, range.notifier_seq);
		pthread_mutex_unlock(&n->lock);
		if (!ret)
			return 0;
	}
	return -EBUSY;
}

static void s_hmm_fault(struct fi_notifier *n, struct region *r, unsigned long off,
			unsigned long npages, bool write)
{
	unsigned long pfns[16];
	int ret;

	cr_assert_leq(npages, 16);
	while ((ret = hmm_fault(n, r->addr + off, npages, write, pfns)))
		/* Linux's hmm_vma_fault(): VM_FAULT_ERROR, OOM included, is -EFAULT. */
		call_failed("hmm_range_fault", ret, -EFAULT, 0);
	for (unsigned long i = 0; i < npages; i++) {
		CHECK(pfns[i] & HMM_PFN_VALID, "hmm_pfns[%lu] = %#lx", i, pfns[i]);
		CHECK(!write || (pfns[i] & HMM_PFN_WRITE), "hmm_pfns[%lu] = %#lx", i, pfns[i]);
		/* The device sees what the CPU sees. */
		expect_bytes(r, off + i * PG, page_address(hmm_pfn_to_page(pfns[i])), PG,
			     "through hmm_range_fault");
	}
	step_mark();
}

static void scen_hmm(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *r = s_anon(mm, 16 * PG, false);
	struct region *huge = s_anon(mm, THP_SIZE, true);
	struct fi_notifier n = {.lock = PTHREAD_MUTEX_INITIALIZER};
	int ret;

	s_write(r, 2 * PG, 3 * PG, 34);
	while ((ret = mmu_interval_notifier_insert(&n.sub, mm, r->addr, 16 * PG, &fi_notifier_ops)))
		call_failed("mmu_interval_notifier_insert", ret, -ENOMEM, 0);
	step_mark();
	s_hmm_fault(&n, r, 0, 8, false); /* the zero page for the holes */
	s_hmm_fault(&n, r, 0, 10, true); /* COW of those, new pages after */
	mmu_interval_notifier_remove(&n.sub);
	while ((ret = mmu_interval_notifier_insert(&n.sub, mm, huge->addr, THP_SIZE,
						   &fi_notifier_ops)))
		call_failed("mmu_interval_notifier_insert", ret, -ENOMEM, 0);
	step_mark();
	s_hmm_fault(&n, huge, 4 * PG, 4, true); /* a THP fault from hmm */
	mmu_interval_notifier_remove(&n.sub);
	check_regions();
	mmput(mm);
}

/* get_user_pages_remote() of one page; its bytes are what the shadow says. */
static void s_gup_one(struct region *r, unsigned long off, bool write)
{
	struct page *page;
	long ret;

	while ((ret = get_user_pages_remote(r->mm, r->addr + off, 1, write ? FOLL_WRITE : 0, &page,
					    NULL)) != 1)
		call_failed("get_user_pages_remote", ret, -ENOMEM, 0);
	expect_bytes(r, off & PAGE_MASK, page_address(page), PG, "through GUP");
	put_page(page);
	step_mark();
}

/* ---- scenarios: dmirror ---- */

static struct dmirror *s_open(struct mm_struct *mm)
{
	for (;;) {
		struct dmirror *d = dmirror_open(run.mod, (unsigned int)run.minor, mm);

		if (!IS_ERR_OR_NULL(d)) {
			step_mark();
			return d;
		}
		call_failed("dmirror_open", PTR_ERR(d), -ENOMEM, 0);
	}
}

/* Pages of [@off, @off + @npages pages) of @r that are device memory now. */
static unsigned long pages_on_device(struct region *r, unsigned long off, unsigned long npages)
{
	uint64_t *pm = xmalloc(npages * sizeof(*pm));
	unsigned long nr = 0;

	cr_assert_eq(mm_pagemap_read(r->mm, r->addr + off, npages, pm), 0);
	for (unsigned long i = 0; i < npages; i++) {
		if (pm[i] & PM_SWAP) /* uhmm has no swap yet: a device-private entry */
			nr++;
		else if ((pm[i] & PM_PRESENT) &&
			 is_zone_device_page(pfn_to_page((unsigned long)(pm[i] & PM_PFRAME_MASK))))
			nr++;
	}
	free(pm);
	return nr;
}

/* HMM_DMIRROR_READ: the device reads what the shadow says. */
static void s_dread(struct dmirror *d, struct region *r, unsigned long off, unsigned long npages)
{
	uint8_t *buf = xmalloc(npages * PG);
	struct hmm_dmirror_cmd cmd;
	int ret;

	while ((ret = dmirror_cmd(d, HMM_DMIRROR_READ, r->addr + off, buf, npages, &cmd)))
		call_failed("HMM_DMIRROR_READ", ret, -EFAULT, 0);
	CHECK(cmd.cpages == npages, "READ cpages %llu", (unsigned long long)cmd.cpages);
	expect_bytes(r, off, buf, npages * PG, "HMM_DMIRROR_READ");
	free(buf);
	step_mark();
}

/* HMM_DMIRROR_WRITE: a failure may have written the pages before the failing one. */
static void s_dwrite(struct dmirror *d, struct region *r, unsigned long off, unsigned long npages,
		     uint32_t seed)
{
	uint8_t *buf = xmalloc(npages * PG);
	struct hmm_dmirror_cmd cmd;
	int ret;

	gen_bytes(buf, npages * PG, seed);
	while ((ret = dmirror_cmd(d, HMM_DMIRROR_WRITE, r->addr + off, buf, npages, &cmd)))
		call_failed("HMM_DMIRROR_WRITE", ret, -EFAULT, 0);
	CHECK(cmd.cpages == npages, "WRITE cpages %llu", (unsigned long long)cmd.cpages);
	memcpy(r->want + off, buf, npages * PG);
	free(buf);
	step_mark();
}

static void s_snapshot(struct dmirror *d, struct region *r, unsigned long off, unsigned long npages)
{
	uint8_t *perm = xmalloc(npages);
	struct hmm_dmirror_cmd cmd;
	int ret;

	while ((ret = dmirror_cmd(d, HMM_DMIRROR_SNAPSHOT, r->addr + off, perm, npages, &cmd)))
		call_failed("HMM_DMIRROR_SNAPSHOT", ret, -EFAULT, -ENOMEM, 0);
	CHECK(cmd.cpages == npages, "SNAPSHOT cpages %llu", (unsigned long long)cmd.cpages);
	for (unsigned long i = 0; i < npages; i++)
		CHECK(perm[i] != HMM_DMIRROR_PROT_ERROR, "SNAPSHOT page %lu is an error", i);
	free(perm);
	step_mark();
}

/*
 * HMM_DMIRROR_MIGRATE_TO_DEV: a page whose destination could not be
 * allocated stays in system memory.  test_hmm then reads the range back
 * through the device page table: -ENOENT if the device has no entry for
 * such a page, else 0 with every byte (the device still maps the system
 * page).  Either way the retry must move everything.
 */
static void s_to_dev(struct dmirror *d, struct region *r, unsigned long off, unsigned long npages)
{
	uint8_t *buf = xmalloc(npages * PG);
	struct hmm_dmirror_cmd cmd;
	int ret;

	for (;;) {
		ret = dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, r->addr + off, buf, npages, &cmd);
		if (ret) {
			call_failed("HMM_DMIRROR_MIGRATE_TO_DEV", ret, -ENOENT, 0);
			continue;
		}
		CHECK(cmd.cpages == npages, "MIGRATE_TO_DEV cpages %llu",
		      (unsigned long long)cmd.cpages);
		expect_bytes(r, off, buf, npages * PG, "MIGRATE_TO_DEV");
		if (pages_on_device(r, off, npages) == npages)
			break;
		call_failed("HMM_DMIRROR_MIGRATE_TO_DEV (pages left in system memory)", -ENOMEM,
			    -ENOMEM, 0);
	}
	free(buf);
	step_mark();
}

/*
 * HMM_DMIRROR_MIGRATE_TO_SYS: as test_hmm, 0 and cpages = the pages that
 * moved; a page whose system page could not be allocated stays on the
 * device and is not counted.
 */
static void s_to_sys(struct dmirror *d, struct region *r, unsigned long off, unsigned long npages)
{
	for (;;) {
		unsigned long want = pages_on_device(r, off, npages);
		struct hmm_dmirror_cmd cmd;
		int ret = dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_SYS, r->addr + off, NULL, npages, &cmd);

		CHECK(ret == 0, "MIGRATE_TO_SYS returned %d, test_hmm returns 0 and fewer cpages",
		      ret);
		CHECK(cmd.cpages + pages_on_device(r, off, npages) == want,
		      "MIGRATE_TO_SYS cpages %llu, %lu of %lu pages moved",
		      (unsigned long long)cmd.cpages, want - pages_on_device(r, off, npages), want);
		if (cmd.cpages == want)
			break;
		call_failed("HMM_DMIRROR_MIGRATE_TO_SYS (fewer cpages)", -ENOMEM, -ENOMEM, 0);
	}
	CHECK(pages_on_device(r, off, npages) == 0, "MIGRATE_TO_SYS left pages on the device");
	step_mark();
}

/* Close: every device page goes back to system memory (test_hmm's eviction). */
static void s_close(struct dmirror *d)
{
	dmirror_release(d);
	step_mark();
}

/*
 * Migration of 4 KiB pages (some of them holes and zero pages) to the
 * device and back, device reads and writes, a CPU fault on a device page,
 * and eviction on close with pages still on the device.
 */
static void scen_migrate_4k(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *r = s_anon(mm, 8 * PG, false);
	struct dmirror *d = s_open(mm);
	struct fi_notifier n = {.lock = PTHREAD_MUTEX_INITIALIZER};
	int ret;

	s_write(r, 0, 2 * PG, 40);
	s_read(r, 3 * PG, 8); /* page 3: the zero page; 4, 5, 7 holes */
	s_write(r, 6 * PG, PG, 41);
	s_dread(d, r, 0, 4);
	s_to_dev(d, r, 0, 8);
	s_snapshot(d, r, 0, 8);
	s_dwrite(d, r, 2 * PG, 2, 42);		  /* straight into device pages */
	s_mprotect(r, 4 * PG, 2 * PG, PROT_READ); /* device entries lose write, get it back */
	s_mprotect(r, 4 * PG, 2 * PG, PROT_READ | PROT_WRITE);

	/* Device pages reached by others: hmm_range_fault of another owner, GUP. */
	while ((ret = mmu_interval_notifier_insert(&n.sub, mm, r->addr, 8 * PG, &fi_notifier_ops)))
		call_failed("mmu_interval_notifier_insert", ret, -ENOMEM, 0);
	s_hmm_fault(&n, r, 6 * PG, 1, false);
	mmu_interval_notifier_remove(&n.sub);
	s_gup_one(r, 7 * PG, true);

	/* mremap moves device entries into new page tables. */
	struct region *dst = s_anon(mm, 4 * THP_SIZE, false);

	s_munmap(dst, 0, 4 * THP_SIZE);
	s_mremap(r, 8 * PG, MREMAP_FIXED, dst->addr + 3 * THP_SIZE + 5 * PG);

	/* fork copies device entries; the child faults them in. */
	struct mm_struct *child = s_fork(mm);
	struct region *c = region_clone(r, child);

	s_read(c, 2 * PG, 16);
	s_write(c, 4 * PG, 8, 48);
	s_read(c, 5 * PG, PG);
	mmput(child);
	memset(c->mapped, 0, 8 * sizeof(bool)); /* gone with the child */

	s_read(r, PG, 16); /* private: migrate_to_ram of one page */
	s_write(r, 5 * PG, 8, 43);
	s_to_sys(d, r, 0, 8);
	s_to_dev(d, r, 2 * PG, 4);
	s_dwrite(d, r, 0, 2, 44);
	s_close(d); /* evicts pages 2..5 */
	check_regions();
	mmput(mm);
}

/* The same with a THP: PMD-order device folios, their fallback to 4 KiB. */
static void scen_migrate_thp(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct region *r = s_anon(mm, THP_SIZE, true);
	struct region *hole = s_anon(mm, THP_SIZE, true);
	struct dmirror *d = s_open(mm);

	s_write(r, 0, THP_SIZE, 45);
	s_to_dev(d, r, 0, HPAGE_PMD_NR);
	s_to_dev(d, hole, 64 * PG, 16); /* holes in an empty PMD */
	s_dread(d, r, 3 * PG, 2);
	s_dwrite(d, hole, 65 * PG, 1, 46);
	s_read(r, 7 * PG, 8); /* private: migrate_to_ram */
	s_write(hole, 70 * PG, 8, 47);
	s_to_sys(d, r, 0, HPAGE_PMD_NR);
	s_to_sys(d, hole, 0, HPAGE_PMD_NR);
	s_to_dev(d, r, 8 * PG, 8);
	s_close(d); /* evicts what is still there */
	check_regions();
	mmput(mm);
}

/* dmirror_mmap(): a VM_MIXEDMAP mapping of zeroed driver pages (vm_insert_page). */
static struct region *s_dmmap(struct dmirror *d, struct mm_struct *mm, unsigned long len, int flags)
{
	size_t vmas = nr_vmas(mm);

	for (;;) {
		long ret = dmirror_mmap(d, 0, len, PROT_READ | PROT_WRITE, flags);

		if (ret > 0) {
			step_mark();
			return region_new(mm, (unsigned long)ret, len);
		}
		call_failed("dmirror_mmap", ret, -ENOMEM, 0);
		/* Linux unmaps the VMA when f_op->mmap fails. */
		CHECK(nr_vmas(mm) == vmas, "a failed dmirror_mmap left %zu VMAs, not %zu",
		      nr_vmas(mm), vmas);
	}
}

static void scen_dmirror_mmap(void)
{
	struct mm_struct *mm = s_mm_alloc();
	struct dmirror *d = s_open(mm);
	struct region *shared = s_dmmap(d, mm, 4 * PG, MAP_SHARED);

	s_write(shared, PG + 5, 10, 50);
	s_snapshot(d, shared, 0, 4);
	s_dread(d, shared, 0, 4);
	struct region *priv = s_dmmap(d, mm, 2 * PG, MAP_PRIVATE);

	s_write(priv, 8, 8, 51); /* COW of a driver page */
	s_read(priv, PG, 8);
	s_munmap(shared, 0, PG);
	s_close(d);
	check_regions();
	mmput(mm);
}

/* ---- the sweep ---- */

struct scenario {
	const char *name;
	void (*fn)(void);
	int minor; /* -1: no device */
};

/* Runs of the whole suite, per target (printed by each test). */
static unsigned long run_once(const struct scenario *s, enum fi_target t, unsigned long n)
{
	struct uhmm_machine_config cfg = {.ram_size = FI_RAM_SIZE};
	unsigned long count;

	machine_setup_with(&cfg);
	run = (struct fi_run){.scenario = s->name, .target = t, .n = n, .minor = s->minor};
	snprintf(run.ctx, sizeof(run.ctx), "%s/%s/N=%lu", s->name, target_names[t], n);
	if (s->minor >= 0) {
		run.mod = dmirror_module_init(machine);
		cr_assert(!IS_ERR_OR_NULL(run.mod), "dmirror_module_init: %ld", PTR_ERR(run.mod));
	}
	inject_on();
	s->fn();
	run.dry_calls = inject_calls();
	count = injected();
	inject_off();
	CHECK(count <= 1, "times = 1 yet %lu failures were injected", count);
	CHECK(run.failed_calls <= count, "%lu calls failed, %lu injected", run.failed_calls, count);
	__audits_clean(true); /* machine_teardown() runs uhmm_audit() */
	if (run.mod) {
		/* Every mirror is closed: no device page may still be in use. */
		for (unsigned int minor = 0; minor < DMIRROR_NDEVICES; minor++) {
			struct dmirror_stats st;

			cr_assert_eq(dmirror_device_stats(run.mod, minor, &st), 0);
			CHECK(st.calloc == st.cfree, "device %u: %lu pages handed out, %lu freed",
			      minor, st.calloc, st.cfree);
		}
		CHECK(dmirror_module_exit(run.mod) == 0, "dmirror_module_exit");
		run.mod = NULL;
	}
	regions_free();
	machine_teardown();
	return count;
}

/*
 * Which N to run.  UHMM_FI_FULL=1: every N from 1 to the calls the dry run
 * counted.  By default the same for every step of at most 2 * FI_EDGE + 1
 * calls; in a longer step (a loop over 512 pages) its first and last
 * FI_EDGE calls and every FI_STRIDE-th in between.  Every chosen N must
 * inject exactly one failure (the sequence is deterministic), and N =
 * calls + 1, which ends the sweep, none.
 */
#define FI_EDGE 6
#define FI_STRIDE 50

static bool *plan_sweep(unsigned long total)
{
	bool *pick = calloc(total + 2, sizeof(bool));
	const char *full = getenv("UHMM_FI_FULL");
	unsigned long lo = 0;

	cr_assert(pick);
	for (int i = 0; i <= nr_marks; i++) {
		unsigned long hi = i < nr_marks ? marks[i] : total;

		for (unsigned long n = lo + 1; n <= hi; n++)
			pick[n] = (full && *full == '1') || n <= lo + FI_EDGE || n + FI_EDGE > hi ||
				  (n - lo - FI_EDGE) % FI_STRIDE == 0;
		if (hi > lo)
			lo = hi;
	}
	pick[total + 1] = true;
	return pick;
}

static unsigned long total_runs;

static void sweep(const struct scenario *s)
{
	unsigned long runs[NR_TARGETS] = {0}, calls[NR_TARGETS] = {0};
	unsigned long failed[NR_TARGETS] = {0};

	for (int t = 0; t < NR_TARGETS; t++) {
		if (t == TGT_DEVMEM && s->minor < 0)
			continue;
		/* The dry run: no failure, the calls of each step counted. */
		nr_marks = 0;
		cr_assert_eq(run_once(s, (enum fi_target)t, 0), 0);
		calls[t] = run.dry_calls;
		runs[t]++;
		bool *pick = plan_sweep(calls[t]);

		if (getenv("UHMM_FI_MARKS"))
			for (int i = 0; i < nr_marks; i++)
				fprintf(stderr, "%s/%s step %d ends at call %lu\n", s->name,
					target_names[t], i, marks[i]);

		for (unsigned long n = 1; n <= calls[t] + 1; n++) {
			if (!pick[n])
				continue;
			runs[t]++;
			unsigned long count = run_once(s, (enum fi_target)t, n);

			CHECK(count == (n <= calls[t]),
			      "%lu failures injected at N = %lu of %lu calls", count, n, calls[t]);
			failed[t] += run.failed_calls;
		}
		free(pick);
	}
	total_runs += runs[0] + runs[1] + runs[2];
	fprintf(stderr,
		"fault_inject %-22s runs/calls: ram %lu/%lu (%lu failed a call), "
		"ram-large %lu/%lu (%lu), devmem %lu/%lu (%lu)\n",
		s->name, runs[TGT_RAM], calls[TGT_RAM], failed[TGT_RAM], runs[TGT_RAM_LARGE],
		calls[TGT_RAM_LARGE], failed[TGT_RAM_LARGE], runs[TGT_DEVMEM], calls[TGT_DEVMEM],
		failed[TGT_DEVMEM]);
}

TestSuite(fault_inject);

#define SWEEP(sname, minor_)                                                                       \
	Test(fault_inject, sname)                                                                  \
	{                                                                                          \
		static const struct scenario s = {#sname, scen_##sname, minor_};                   \
		sweep(&s);                                                                         \
	}

SWEEP(anon_4k, -1)
SWEEP(anon_thp, -1)
SWEEP(populate_collapse, -1)
SWEEP(thp_split, -1)
SWEEP(mremap, -1)
SWEEP(fork_cow, -1)
SWEEP(files, -1)
SWEEP(hugetlb, -1)
SWEEP(hugetlb_surplus, -1)
SWEEP(gup, -1)
SWEEP(hmm, -1)

static void scen_migrate_4k_private(void)
{
	scen_migrate_4k();
}
static void scen_migrate_4k_coherent(void)
{
	scen_migrate_4k();
}
static void scen_migrate_thp_private(void)
{
	scen_migrate_thp();
}
static void scen_migrate_thp_coherent(void)
{
	scen_migrate_thp();
}

SWEEP(dmirror_mmap, 0)
SWEEP(migrate_4k_private, 0)
SWEEP(migrate_4k_coherent, 2)
SWEEP(migrate_thp_private, 0)
SWEEP(migrate_thp_coherent, 2)
