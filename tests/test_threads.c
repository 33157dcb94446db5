/* SPDX-License-Identifier: MIT */
/*
 * tests/test_threads.c - concurrency: many threads on one mm, and several
 * mms on one machine.
 *
 * Each worker thread keeps its own results (no Criterion assertion runs off
 * the main thread) and the main thread checks them after joining.  Every
 * test has fixed iteration counts; the random seed is printed and can be
 * set with UHMM_TEST_SEED=<number> to replay a run's choices (thread
 * interleavings themselves do not replay).  The tests must also be clean
 * under ThreadSanitizer: workers share nothing but the uhmm objects and
 * atomics.
 */
#include "helpers.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

TestSuite(threads, .init = machine_setup, .fini = machine_teardown);

/* ------------------------------------------------------------------ */
/* Shared scaffolding                                                  */
/* ------------------------------------------------------------------ */

static uint64_t test_seed(const char *name)
{
	const char *env = getenv("UHMM_TEST_SEED");
	uint64_t seed;

	if (env && *env)
		seed = strtoull(env, NULL, 0);
	else
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	fprintf(stderr, "threads/%s: seed %#" PRIx64 " (UHMM_TEST_SEED=%#" PRIx64 " replays)\n",
		name, seed, seed);
	return seed;
}

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static unsigned long rnd_below(uint64_t *s, unsigned long n)
{
	return n ? rnd(s) % n : 0;
}

static uint64_t seed_for(uint64_t seed, unsigned int idx)
{
	uint64_t s = seed ^ (0x9e3779b97f4a7c15ULL * (idx + 1));

	return s ? s : 1;
}

/* The first failure of a worker, reported by the main thread after join. */
struct worker_result {
	int failures;
	char msg[512];
};

static void fail(struct worker_result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failures++)
		return;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "worker failure: %s\n", r->msg);
}

static void start_threads(pthread_t *t, int n, void *(*fn)(void *), void *args, size_t size)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * size), 0);
}

static void join_threads(pthread_t *t, int n)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
}

/* Compare @len bytes of @mm at @addr with @want; report the first difference. */
static bool compare_mm(struct worker_result *r, struct mm_struct *mm, unsigned long addr,
		       const uint8_t *want, size_t len, uint8_t *scratch, const char *what)
{
	int ret = cpu_read(mm, addr, scratch, len);

	if (ret) {
		fail(r, "%s: cpu_read(%#lx, %zu) = %d", what, addr, len, ret);
		return false;
	}
	if (memcmp(scratch, want, len)) {
		size_t i = 0;

		while (scratch[i] == want[i])
			i++;
		fail(r, "%s: byte at %#lx is %#x, shadow says %#x", what, addr + i, scratch[i],
		     want[i]);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Owners and churners on one mm                                       */
/* ------------------------------------------------------------------ */

#define NR_OWNERS 4
#define NR_CHURNERS 2
#define OWNER_SIZE (2 * HPAGE_PMD_SIZE)
#define OWNER_OPS 8000
#define CHURN_ITERS 300
#define MAX_IO (3 * PAGE_SIZE)
#define COUNTER_SLOTS 8 /* u64 counters on the shared page */

struct shared_mm {
	struct mm_struct *mm;
	unsigned long counter_page; /* every thread adds to it */
	pthread_barrier_t start;
	uint64_t seed;
	unsigned long owner_base[NR_OWNERS]; /* for the churners' EEXIST probes */
};

struct owner {
	struct shared_mm *sh;
	unsigned int idx;
	unsigned long addr;
	uint8_t *shadow;
	unsigned long adds[COUNTER_SLOTS];
	struct worker_result res;
};

struct churner {
	struct shared_mm *sh;
	unsigned int idx;
	unsigned long adds[COUNTER_SLOTS];
	unsigned long mapped, unmapped;
	struct worker_result res;
};

static void counter_add(struct worker_result *r, struct shared_mm *sh, unsigned long *adds,
			uint64_t *s)
{
	unsigned int slot = (unsigned int)rnd_below(s, COUNTER_SLOTS);
	int ret = cpu_atomic_fetch_add_u64(sh->mm, sh->counter_page + slot * 8, 1, NULL);

	if (ret)
		fail(r, "cpu_atomic_fetch_add_u64(slot %u) = %d", slot, ret);
	else
		adds[slot]++;
}

/* A random [off, off + len) inside a region of @size bytes, len in 1..@max. */
static void pick_range(uint64_t *s, unsigned long size, unsigned long max, unsigned long *off,
		       unsigned long *len)
{
	*len = 1 + rnd_below(s, max);
	*off = rnd_below(s, size - *len + 1);
}

static void *owner_fn(void *arg)
{
	struct owner *o = arg;
	struct shared_mm *sh = o->sh;
	struct mm_struct *mm = sh->mm;
	uint64_t s = seed_for(sh->seed, o->idx);
	uint8_t *buf = malloc(MAX_IO), *rbuf = malloc(OWNER_SIZE);
	unsigned long off, len;
	int ret;

	if (!buf || !rbuf) {
		fail(&o->res, "malloc");
		goto out;
	}
	pthread_barrier_wait(&sh->start);
	for (int op = 0; op < OWNER_OPS && !o->res.failures; op++) {
		unsigned int kind = (unsigned int)rnd_below(&s, 100);

		if (kind < 35) { /* write random bytes */
			pick_range(&s, OWNER_SIZE, MAX_IO, &off, &len);
			for (unsigned long i = 0; i < len; i++)
				buf[i] = (uint8_t)rnd(&s);
			ret = cpu_write(mm, o->addr + off, buf, len);
			if (ret)
				fail(&o->res, "cpu_write(%#lx, %lu) = %d", o->addr + off, len, ret);
			else
				memcpy(o->shadow + off, buf, len);
		} else if (kind < 65) { /* read and check */
			pick_range(&s, OWNER_SIZE, MAX_IO, &off, &len);
			compare_mm(&o->res, mm, o->addr + off, o->shadow + off, len, rbuf, "read");
		} else if (kind < 70) { /* memset */
			int c = (int)rnd_below(&s, 256);

			pick_range(&s, OWNER_SIZE, 2 * PAGE_SIZE, &off, &len);
			ret = cpu_memset(mm, o->addr + off, c, len);
			if (ret)
				fail(&o->res, "cpu_memset = %d", ret);
			else
				memset(o->shadow + off, c, len);
		} else if (kind < 76) { /* atomic add on our own bytes */
			uint64_t val = rnd(&s), old, want;

			off = rnd_below(&s, OWNER_SIZE / 8) * 8;
			memcpy(&want, o->shadow + off, 8);
			ret = cpu_atomic_fetch_add_u64(mm, o->addr + off, val, &old);
			if (ret) {
				fail(&o->res, "cpu_atomic_fetch_add_u64 = %d", ret);
			} else if (old != want) {
				fail(&o->res, "atomic at %#lx: old %#" PRIx64 ", shadow %#" PRIx64,
				     o->addr + off, old, want);
			} else {
				want += val;
				memcpy(o->shadow + off, &want, 8);
			}
		} else if (kind < 82) { /* MADV_DONTNEED a page-aligned piece: zeros */
			unsigned long pages = OWNER_SIZE / PAGE_SIZE;
			unsigned long first = rnd_below(&s, pages);
			unsigned long n = 1 + rnd_below(&s, rnd_below(&s, 4) ? 16 : pages - first);

			if (first + n > pages)
				n = pages - first;
			ret = mm_madvise(mm, o->addr + first * PAGE_SIZE, n * PAGE_SIZE,
					 MADV_DONTNEED);
			if (ret)
				fail(&o->res, "MADV_DONTNEED = %d", ret);
			else
				memset(o->shadow + first * PAGE_SIZE, 0, n * PAGE_SIZE);
		} else if (kind < 85) { /* mprotect a piece read-only, poke it, restore */
			unsigned long first = rnd_below(&s, OWNER_SIZE / PAGE_SIZE - 4);
			unsigned long a = o->addr + first * PAGE_SIZE;
			uint8_t b = 0xee;

			ret = mm_mprotect(mm, a, 4 * PAGE_SIZE, PROT_READ);
			if (ret) {
				fail(&o->res, "mprotect(READ) = %d", ret);
				continue;
			}
			ret = cpu_write(mm, a + PAGE_SIZE + 5, &b, 1);
			if (ret != -EFAULT)
				fail(&o->res, "write to a read-only page = %d, want -EFAULT", ret);
			ret = cpu_atomic_fetch_add_u64(mm, a + 2 * PAGE_SIZE, 1, NULL);
			if (ret != -EFAULT)
				fail(&o->res, "atomic on a read-only page = %d, want -EFAULT", ret);
			compare_mm(&o->res, mm, a, o->shadow + first * PAGE_SIZE, 4 * PAGE_SIZE,
				   rbuf, "read-only piece");
			ret = mm_mprotect(mm, a, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE);
			if (ret)
				fail(&o->res, "mprotect(RW) = %d", ret);
		} else if (kind < 87) { /* flip THP advice on the whole region */
			int advice = rnd_below(&s, 2) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE;

			ret = mm_madvise(mm, o->addr, OWNER_SIZE, advice);
			if (ret)
				fail(&o->res, "madvise(%d) = %d", advice, ret);
		} else if (kind < 95) { /* the shared counter */
			counter_add(&o->res, sh, o->adds, &s);
		} else { /* one byte */
			off = rnd_below(&s, OWNER_SIZE);
			compare_mm(&o->res, mm, o->addr + off, o->shadow + off, 1, rbuf, "byte");
		}
	}
out:
	free(buf);
	free(rbuf);
	return NULL;
}

static void *churner_fn(void *arg)
{
	struct churner *c = arg;
	struct shared_mm *sh = c->sh;
	struct mm_struct *mm = sh->mm;
	uint64_t s = seed_for(sh->seed, 100 + c->idx);
	uint8_t *buf = malloc(PAGE_SIZE);
	long ret;

	if (!buf) {
		fail(&c->res, "malloc");
		return NULL;
	}
	pthread_barrier_wait(&sh->start);
	for (int it = 0; it < CHURN_ITERS && !c->res.failures; it++) {
		bool huge = rnd_below(&s, 3) == 0;
		unsigned long len = huge ? HPAGE_PMD_SIZE * (1 + rnd_below(&s, 2))
					 : PAGE_SIZE * (1 + rnd_below(&s, 64));
		unsigned long pages = len / PAGE_SIZE, addr, p;
		uint8_t tag = (uint8_t)(1 + rnd_below(&s, 255)), b;

		/* Mapping over an owner's region must fail and change nothing. */
		if (rnd_below(&s, 4) == 0) {
			unsigned long victim = sh->owner_base[rnd_below(&s, NR_OWNERS)];

			ret = mm_mmap(mm, victim + PAGE_SIZE, PAGE_SIZE, PROT_READ,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, NULL, 0);
			if (ret != -EEXIST)
				fail(&c->res, "MAP_FIXED_NOREPLACE over an owner = %ld", ret);
		}

		ret = mm_mmap(mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL,
			      0);
		if (ret < 0) {
			fail(&c->res, "mm_mmap(%lu) = %ld", len, ret);
			break;
		}
		addr = (unsigned long)ret;
		c->mapped++;
		if (huge && (ret = mm_madvise(mm, addr, len, MADV_HUGEPAGE)))
			fail(&c->res, "MADV_HUGEPAGE = %ld", ret);

		/* Touch a few pages with a tag and check them. */
		for (p = 0; p < pages; p += 1 + rnd_below(&s, 97)) {
			memset(buf, tag ^ (uint8_t)p, 64);
			if ((ret = cpu_write(mm, addr + p * PAGE_SIZE, buf, 64)))
				fail(&c->res, "scratch write = %ld", ret);
		}
		for (p = 0; p < pages; p += 1 + rnd_below(&s, 97)) {
			if ((ret = cpu_read(mm, addr + p * PAGE_SIZE + 32, &b, 1)))
				fail(&c->res, "scratch read = %ld", ret);
		}
		counter_add(&c->res, sh, c->adds, &s);

		/* DONTNEED a piece: it reads back as zeros. */
		p = rnd_below(&s, pages);
		if ((ret = mm_madvise(mm, addr + p * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED)))
			fail(&c->res, "scratch DONTNEED = %ld", ret);
		b = 0xa5;
		if ((ret = cpu_read(mm, addr + p * PAGE_SIZE + 7, &b, 1)) || b)
			fail(&c->res, "after DONTNEED: read %ld, byte %#x", ret, b);

		/* mprotect a piece read-only: writes fault, reads still work. */
		if (pages > 2) {
			p = 1 + rnd_below(&s, pages - 2);
			if ((ret = mm_mprotect(mm, addr + p * PAGE_SIZE, PAGE_SIZE, PROT_READ)))
				fail(&c->res, "scratch mprotect = %ld", ret);
			if ((ret = cpu_write(mm, addr + p * PAGE_SIZE, &tag, 1)) != -EFAULT)
				fail(&c->res, "write to read-only scratch = %ld", ret);
			if ((ret = cpu_read(mm, addr + p * PAGE_SIZE, &b, 1)))
				fail(&c->res, "read of read-only scratch = %ld", ret);
		}
		if (huge && rnd_below(&s, 2) && (ret = mm_madvise(mm, addr, len, MADV_NOHUGEPAGE)))
			fail(&c->res, "MADV_NOHUGEPAGE = %ld", ret);

		/* Unmap, sometimes in two pieces. */
		if (pages > 1 && rnd_below(&s, 2)) {
			p = 1 + rnd_below(&s, pages - 1);
			if ((ret = mm_munmap(mm, addr + p * PAGE_SIZE, (pages - p) * PAGE_SIZE)))
				fail(&c->res, "partial munmap = %ld", ret);
			len = p * PAGE_SIZE;
		}
		if ((ret = mm_munmap(mm, addr, len)))
			fail(&c->res, "munmap = %ld", ret);
		c->unmapped++;
		/*
		 * (No read-after-munmap check here: the other churner may
		 * already have been given the same addresses.)
		 */
	}
	free(buf);
	return NULL;
}

/*
 * The observer reads the introspection interfaces while everything else
 * runs: pagemap, kpageflags, kpagecount, smaps_rollup, the RSS counters and
 * mm_dump.  It only checks what must hold at any instant.
 */
struct observer {
	struct shared_mm *sh;
	unsigned long owner_addr[NR_OWNERS];
	atomic_bool *stop;
	unsigned long rounds;
	struct worker_result res;
};

static void *observer_fn(void *arg)
{
	struct observer *ob = arg;
	struct mm_struct *mm = ob->sh->mm;
	unsigned long npages = OWNER_SIZE / PAGE_SIZE;
	uint64_t *pm = malloc(npages * sizeof(*pm));
	FILE *null = fopen("/dev/null", "w");

	if (!pm || !null) {
		fail(&ob->res, "malloc/fopen");
		goto out;
	}
	pthread_barrier_wait(&ob->sh->start);
	while (!atomic_load(ob->stop) && !ob->res.failures) {
		struct mm_smaps sm;
		long rss;

		for (int i = 0; i < NR_OWNERS; i++) {
			int ret = mm_pagemap_read(mm, ob->owner_addr[i], npages, pm);

			if (ret) {
				fail(&ob->res, "mm_pagemap_read = %d", ret);
				break;
			}
			for (unsigned long p = 0; p < npages; p += 37) {
				unsigned long pfn = (unsigned long)(pm[p] & PM_PFRAME_MASK);

				if (!(pm[p] & PM_PRESENT))
					continue;
				if (!pfn_valid(pfn)) {
					fail(&ob->res, "pagemap pfn %#lx not valid", pfn);
					break;
				}
				/* The page may be freed meanwhile: just read the flags. */
				(void)uhmm_kpageflags(pfn);
				(void)uhmm_kpagecount(pfn);
			}
		}
		if (mm_smaps_rollup(mm, &sm))
			fail(&ob->res, "mm_smaps_rollup failed");
		rss = mm_get_rss(mm, MM_ANONPAGES);
		if (rss < 0)
			fail(&ob->res, "MM_ANONPAGES %ld", rss);
		if (sm.anon_huge_pages > sm.anonymous || sm.anonymous > sm.rss)
			fail(&ob->res, "smaps: anon_huge %lu anonymous %lu rss %lu",
			     sm.anon_huge_pages, sm.anonymous, sm.rss);
		if (ob->rounds % 16 == 0)
			mm_dump(mm, null);
		ob->rounds++;
	}
out:
	if (null)
		fclose(null);
	free(pm);
	return NULL;
}

Test(threads, owners_and_churners_share_one_mm)
{
	struct shared_mm sh;
	struct owner owners[NR_OWNERS];
	struct churner churners[NR_CHURNERS];
	pthread_t ot[NR_OWNERS], ct[NR_CHURNERS], obt;
	struct observer ob;
	atomic_bool stop;
	uint64_t want[COUNTER_SLOTS] = {0}, got[COUNTER_SLOTS];
	uint8_t *rbuf = malloc(OWNER_SIZE);

	cr_assert(rbuf);
	memset(&sh, 0, sizeof(sh));
	memset(owners, 0, sizeof(owners));
	memset(churners, 0, sizeof(churners));
	sh.seed = test_seed("owners_and_churners_share_one_mm");
	sh.mm = new_mm();
	sh.counter_page = map_anon(sh.mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	cr_assert_eq(pthread_barrier_init(&sh.start, NULL, NR_OWNERS + NR_CHURNERS + 1), 0);

	for (unsigned int i = 0; i < NR_OWNERS; i++) {
		owners[i].sh = &sh;
		owners[i].idx = i;
		/* Half the owners start with THP-eligible regions. */
		owners[i].addr = i % 2 ? map_anon(sh.mm, 0, OWNER_SIZE, PROT_READ | PROT_WRITE, 0)
				       : map_thp(sh.mm, OWNER_SIZE);
		owners[i].shadow = calloc(1, OWNER_SIZE);
		cr_assert(owners[i].shadow);
		sh.owner_base[i] = owners[i].addr;
	}
	for (unsigned int i = 0; i < NR_CHURNERS; i++) {
		churners[i].sh = &sh;
		churners[i].idx = i;
	}

	start_threads(ot, NR_OWNERS, owner_fn, owners, sizeof(owners[0]));
	memset(&ob, 0, sizeof(ob));
	atomic_init(&stop, false);
	ob.sh = &sh;
	ob.stop = &stop;
	for (int i = 0; i < NR_OWNERS; i++)
		ob.owner_addr[i] = owners[i].addr;
	start_threads(ct, NR_CHURNERS, churner_fn, churners, sizeof(churners[0]));
	start_threads(&obt, 1, observer_fn, &ob, sizeof(ob));
	join_threads(ot, NR_OWNERS);
	join_threads(ct, NR_CHURNERS);
	atomic_store(&stop, true);
	join_threads(&obt, 1);
	cr_assert_eq(ob.res.failures, 0, "observer: %s", ob.res.msg);
	cr_assert_gt(ob.rounds, 0);
	pthread_barrier_destroy(&sh.start);

	for (int i = 0; i < NR_OWNERS; i++)
		cr_assert_eq(owners[i].res.failures, 0, "owner %d: %d failures, first: %s", i,
			     owners[i].res.failures, owners[i].res.msg);
	for (int i = 0; i < NR_CHURNERS; i++) {
		cr_assert_eq(churners[i].res.failures, 0, "churner %d: %d failures, first: %s", i,
			     churners[i].res.failures, churners[i].res.msg);
		cr_assert_eq(churners[i].mapped, CHURN_ITERS);
		cr_assert_eq(churners[i].unmapped, CHURN_ITERS);
	}

	/* The invariants hold with everything still mapped. */
	assert_audit_clean();

	/* Every byte of every owned region matches its shadow. */
	for (int i = 0; i < NR_OWNERS; i++) {
		cr_assert_eq(cpu_read(sh.mm, owners[i].addr, rbuf, OWNER_SIZE), 0);
		for (unsigned long b = 0; b < OWNER_SIZE; b++)
			if (rbuf[b] != owners[i].shadow[b])
				cr_assert_fail("owner %d: byte %#lx is %#x, shadow %#x", i, b,
					       rbuf[b], owners[i].shadow[b]);
	}

	/* Every add landed exactly once. */
	for (int i = 0; i < NR_OWNERS; i++)
		for (int k = 0; k < COUNTER_SLOTS; k++)
			want[k] += owners[i].adds[k];
	for (int i = 0; i < NR_CHURNERS; i++)
		for (int k = 0; k < COUNTER_SLOTS; k++)
			want[k] += churners[i].adds[k];
	cr_assert_eq(cpu_read(sh.mm, sh.counter_page, got, sizeof(got)), 0);
	for (int k = 0; k < COUNTER_SLOTS; k++)
		cr_assert_eq(got[k], want[k], "counter slot %d: %" PRIu64 ", want %" PRIu64, k,
			     got[k], want[k]);

	/* Only the owners' regions and the counter page are left mapped. */
	{
		unsigned long total = 0;

		for (size_t v = 0; v < sh.mm->mm_mt.nr; v++)
			total += sh.mm->mm_mt.vmas[v]->vm_end - sh.mm->mm_mt.vmas[v]->vm_start;
		cr_assert_eq(total, NR_OWNERS * OWNER_SIZE + PAGE_SIZE, "%lu bytes still mapped",
			     total);
	}
	mmput(sh.mm);
	for (int i = 0; i < NR_OWNERS; i++)
		free(owners[i].shadow);
	free(rbuf);
}

/* ------------------------------------------------------------------ */
/* Atomics hammering one counter from every thread                     */
/* ------------------------------------------------------------------ */

#define ATOMIC_THREADS 6
#define ATOMIC_ADDS 4000

struct adder {
	struct mm_struct *mm;
	unsigned long counter;
	pthread_barrier_t *start;
	unsigned int idx;
	uint64_t max_seen;
	struct worker_result res;
};

static void *adder_fn(void *arg)
{
	struct adder *a = arg;
	uint64_t old, prev = 0;

	pthread_barrier_wait(a->start);
	for (int i = 0; i < ATOMIC_ADDS; i++) {
		int ret = cpu_atomic_fetch_add_u64(a->mm, a->counter, 1, &old);

		if (ret) {
			fail(&a->res, "fetch_add = %d", ret);
			break;
		}
		/* The values one thread sees only grow. */
		if (i && old < prev)
			fail(&a->res, "fetch_add went back: %" PRIu64 " after %" PRIu64, old, prev);
		prev = old;
	}
	a->max_seen = prev;
	return NULL;
}

/*
 * Every thread adds to one u64 in a page nobody has touched, so the first
 * adds race in the fault path too; a second counter sits in a THP region.
 */
static void atomic_counter_case(bool thp)
{
	struct mm_struct *mm = new_mm();
	struct adder adders[ATOMIC_THREADS];
	pthread_t t[ATOMIC_THREADS];
	pthread_barrier_t start;
	unsigned long base = thp ? map_thp(mm, HPAGE_PMD_SIZE)
				 : map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long counter = base + (thp ? 300 * PAGE_SIZE : PAGE_SIZE) + 64;
	uint64_t got = 0;

	cr_assert_eq(pthread_barrier_init(&start, NULL, ATOMIC_THREADS), 0);
	memset(adders, 0, sizeof(adders));
	for (unsigned int i = 0; i < ATOMIC_THREADS; i++) {
		adders[i].mm = mm;
		adders[i].counter = counter;
		adders[i].start = &start;
		adders[i].idx = i;
	}
	start_threads(t, ATOMIC_THREADS, adder_fn, adders, sizeof(adders[0]));
	join_threads(t, ATOMIC_THREADS);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < ATOMIC_THREADS; i++)
		cr_assert_eq(adders[i].res.failures, 0, "adder %d: %s", i, adders[i].res.msg);

	cr_assert_eq(cpu_read(mm, counter, &got, 8), 0);
	cr_assert_eq(got, (uint64_t)ATOMIC_THREADS * ATOMIC_ADDS, "counter %" PRIu64 ", want %d",
		     got, ATOMIC_THREADS * ATOMIC_ADDS);
	/* Exactly one page (or one THP) was faulted in. */
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), thp ? (long)HPAGE_PMD_NR : 1);
	check_zero(mm, counter - 64, 64);
	check_zero(mm, counter + 8, PAGE_SIZE - 64 - 8);
	assert_audit_clean();
	mmput(mm);
}

Test(threads, atomic_counter_4k)
{
	atomic_counter_case(false);
}
Test(threads, atomic_counter_thp)
{
	atomic_counter_case(true);
}

/* ------------------------------------------------------------------ */
/* Racing first touches of the same pages                              */
/* ------------------------------------------------------------------ */

#define RACE_THREADS 4
#define RACE_ROUNDS 8
#define RACE_LEN (2 * HPAGE_PMD_SIZE)

struct racer {
	struct mm_struct *mm;
	unsigned long addr;
	pthread_barrier_t *round;
	unsigned int idx;
	struct worker_result res;
};

/*
 * Every round, all threads write their own bytes (offset % RACE_THREADS ==
 * idx, one per 64-byte stride) into the same freshly emptied pages.  If two
 * faults both installed a page for one address, or a zap raced a fault,
 * someone's byte is lost.
 */
static void *racer_fn(void *arg)
{
	struct racer *r = arg;

	for (int round = 0; round < RACE_ROUNDS; round++) {
		uint8_t v = (uint8_t)(round * 16 + r->idx + 1);

		pthread_barrier_wait(r->round); /* main emptied the region */
		for (unsigned long off = r->idx * 8; off < RACE_LEN; off += 64 * 7) {
			int ret = cpu_write(r->mm, r->addr + off, &v, 1);

			if (ret) {
				fail(&r->res, "cpu_write = %d", ret);
				break;
			}
		}
		pthread_barrier_wait(r->round); /* main checks */
	}
	return NULL;
}

static void racing_first_touch(bool thp)
{
	struct mm_struct *mm = new_mm();
	struct racer racers[RACE_THREADS];
	pthread_t t[RACE_THREADS];
	pthread_barrier_t round;
	unsigned long addr =
		thp ? map_thp(mm, RACE_LEN) : map_anon(mm, 0, RACE_LEN, PROT_READ | PROT_WRITE, 0);
	uint8_t *buf = malloc(RACE_LEN);

	cr_assert(buf);
	cr_assert_eq(pthread_barrier_init(&round, NULL, RACE_THREADS + 1), 0);
	memset(racers, 0, sizeof(racers));
	for (unsigned int i = 0; i < RACE_THREADS; i++) {
		racers[i].mm = mm;
		racers[i].addr = addr;
		racers[i].round = &round;
		racers[i].idx = i;
	}
	start_threads(t, RACE_THREADS, racer_fn, racers, sizeof(racers[0]));
	for (int rd = 0; rd < RACE_ROUNDS; rd++) {
		cr_assert_eq(mm_madvise(mm, addr, RACE_LEN, MADV_DONTNEED), 0);
		cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
		pthread_barrier_wait(&round);
		pthread_barrier_wait(&round);
		cr_assert_eq(cpu_read(mm, addr, buf, RACE_LEN), 0);
		for (unsigned long off = 0; off < RACE_LEN; off++) {
			unsigned long k = off % (64 * 7);
			uint8_t want = 0;

			if (k % 8 == 0 && k / 8 < RACE_THREADS)
				want = (uint8_t)(rd * 16 + k / 8 + 1);
			if (buf[off] != want) {
				/* Let the threads finish before failing. */
				for (int rest = rd + 1; rest < RACE_ROUNDS; rest++) {
					pthread_barrier_wait(&round);
					pthread_barrier_wait(&round);
				}
				join_threads(t, RACE_THREADS);
				cr_assert_fail("round %d: byte %#lx is %#x, want %#x", rd, off,
					       buf[off], want);
			}
		}
		if (thp) {
			/* Racing faults on an empty PMD still end with one THP per PMD. */
			struct mm_smaps sm;

			cr_assert_eq(mm_smaps_rollup(mm, &sm), 0);
			cr_assert_eq(sm.anon_huge_pages, RACE_LEN, "round %d: anon_huge_pages %lu",
				     rd, sm.anon_huge_pages);
		}
		cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)(RACE_LEN / PAGE_SIZE));
	}
	join_threads(t, RACE_THREADS);
	pthread_barrier_destroy(&round);
	for (int i = 0; i < RACE_THREADS; i++)
		cr_assert_eq(racers[i].res.failures, 0, "racer %d: %s", i, racers[i].res.msg);
	assert_audit_clean();
	free(buf);
	mmput(mm);
}

Test(threads, racing_first_touch_4k)
{
	racing_first_touch(false);
}
Test(threads, racing_first_touch_thp)
{
	racing_first_touch(true);
}

/*
 * The same race on hugetlb pages (private, then shared): the fault mutex
 * lets one fault take a pool page for a huge page, the others find it.
 * MADV_DONTNEED gives the private mapping's reservations back each round.
 */
static void racing_first_touch_hugetlb(int type)
{
	struct mm_struct *mm = new_mm();
	struct racer racers[RACE_THREADS];
	pthread_t t[RACE_THREADS];
	pthread_barrier_t round;
	long ret = mm_mmap(mm, 0, RACE_LEN, PROT_READ | PROT_WRITE,
			   type | MAP_ANONYMOUS | MAP_HUGETLB, NULL, 0);
	unsigned long addr = (unsigned long)ret;
	uint8_t *buf = malloc(RACE_LEN);
	struct hugetlb_stats hs;

	cr_assert_gt(ret, 0);
	cr_assert(buf);
	cr_assert_eq(pthread_barrier_init(&round, NULL, RACE_THREADS + 1), 0);
	memset(racers, 0, sizeof(racers));
	for (unsigned int i = 0; i < RACE_THREADS; i++) {
		racers[i].mm = mm;
		racers[i].addr = addr;
		racers[i].round = &round;
		racers[i].idx = i;
	}
	start_threads(t, RACE_THREADS, racer_fn, racers, sizeof(racers[0]));
	for (int rd = 0; rd < RACE_ROUNDS; rd++) {
		if (type == MAP_PRIVATE) {
			cr_assert_eq(mm_madvise(mm, addr, RACE_LEN, MADV_DONTNEED), 0);
			cr_assert_eq(uhmm_hugetlb_stats(machine, &hs), 0);
			cr_assert(hs.free == hs.total && hs.rsvd == RACE_LEN / HPAGE_PMD_SIZE,
				  "round %d: free %lu rsvd %lu", rd, hs.free, hs.rsvd);
		}
		pthread_barrier_wait(&round);
		pthread_barrier_wait(&round);
		cr_assert_eq(cpu_read(mm, addr, buf, RACE_LEN), 0);
		for (unsigned long off = 0; off < RACE_LEN; off++) {
			unsigned long k = off % (64 * 7);
			uint8_t want = 0;

			if (k % 8 == 0 && k / 8 < RACE_THREADS)
				want = (uint8_t)(rd * 16 + k / 8 + 1);
			if (buf[off] != want) {
				for (int rest = rd + 1; rest < RACE_ROUNDS; rest++) {
					pthread_barrier_wait(&round);
					pthread_barrier_wait(&round);
				}
				join_threads(t, RACE_THREADS);
				cr_assert_fail("round %d: byte %#lx is %#x, want %#x", rd, off,
					       buf[off], want);
			}
		}
		/* One pool page per huge page, however many faults raced for it. */
		cr_assert_eq(uhmm_hugetlb_stats(machine, &hs), 0);
		cr_assert(hs.total - hs.free == RACE_LEN / HPAGE_PMD_SIZE && hs.rsvd == 0,
			  "round %d: %lu in use, rsvd %lu", rd, hs.total - hs.free, hs.rsvd);
	}
	join_threads(t, RACE_THREADS);
	pthread_barrier_destroy(&round);
	for (int i = 0; i < RACE_THREADS; i++)
		cr_assert_eq(racers[i].res.failures, 0, "racer %d: %s", i, racers[i].res.msg);
	assert_audit_clean();
	free(buf);
	mmput(mm);
}

Test(threads, racing_first_touch_hugetlb_private)
{
	racing_first_touch_hugetlb(MAP_PRIVATE);
}
Test(threads, racing_first_touch_hugetlb_shared)
{
	racing_first_touch_hugetlb(MAP_SHARED);
}

/* ------------------------------------------------------------------ */
/* Readers against a thread that remaps the region under them          */
/* ------------------------------------------------------------------ */

#define REMAP_READERS 3
#define REMAP_ITERS 1000
#define REMAP_LEN (8 * PAGE_SIZE)

struct remap_shared {
	struct mm_struct *mm;
	unsigned long addr;
	atomic_bool done;
	pthread_barrier_t start;
	uint64_t seed;
};

struct remap_reader {
	struct remap_shared *sh;
	unsigned int idx;
	atomic_ulong ok; /* the main thread watches it */
	unsigned long efault;
	struct worker_result res;
};

static uint8_t remap_byte(unsigned long off)
{
	return (uint8_t)(0x40 + off / PAGE_SIZE);
}

static void *remap_reader_fn(void *arg)
{
	struct remap_reader *r = arg;
	uint64_t s = seed_for(r->sh->seed, r->idx);
	uint8_t buf[2 * PAGE_SIZE];

	pthread_barrier_wait(&r->sh->start);
	while (!atomic_load(&r->sh->done) && !r->res.failures) {
		unsigned long off, len;
		int ret;

		pick_range(&s, REMAP_LEN, sizeof(buf), &off, &len);
		ret = cpu_read(r->sh->mm, r->sh->addr + off, buf, len);
		if (ret == -EFAULT) {
			r->efault++;
			continue;
		}
		if (ret) {
			fail(&r->res, "cpu_read = %d", ret);
			break;
		}
		atomic_fetch_add(&r->ok, 1);
		/* Each byte is 0 (fresh mapping) or the pattern (filled). */
		for (unsigned long i = 0; i < len; i++)
			if (buf[i] && buf[i] != remap_byte(off + i)) {
				fail(&r->res, "byte at +%#lx is %#x, want 0 or %#x", off + i,
				     buf[i], remap_byte(off + i));
				break;
			}
	}
	return NULL;
}

Test(threads, readers_against_remap)
{
	struct remap_shared sh;
	struct remap_reader readers[REMAP_READERS];
	pthread_t t[REMAP_READERS];
	uint8_t pattern[REMAP_LEN];
	unsigned long ok = 0;

	memset(&sh, 0, sizeof(sh));
	memset(readers, 0, sizeof(readers));
	sh.seed = test_seed("readers_against_remap");
	sh.mm = new_mm();
	sh.addr = map_anon(sh.mm, 0, REMAP_LEN, PROT_READ | PROT_WRITE, 0);
	atomic_init(&sh.done, false);
	for (unsigned long i = 0; i < REMAP_LEN; i++)
		pattern[i] = remap_byte(i);
	cr_assert_eq(cpu_write(sh.mm, sh.addr, pattern, REMAP_LEN), 0);
	cr_assert_eq(pthread_barrier_init(&sh.start, NULL, REMAP_READERS + 1), 0);
	for (unsigned int i = 0; i < REMAP_READERS; i++) {
		readers[i].sh = &sh;
		readers[i].idx = i;
		atomic_init(&readers[i].ok, 0);
	}
	start_threads(t, REMAP_READERS, remap_reader_fn, readers, sizeof(readers[0]));
	pthread_barrier_wait(&sh.start);

	for (int it = 0; it < REMAP_ITERS; it++) {
		long ret;

		switch (it % 4) {
		case 0: /* replace the mapping in place */
			ret = mm_mmap(sh.mm, sh.addr, REMAP_LEN, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, NULL, 0);
			cr_assert_eq(ret, (long)sh.addr, "MAP_FIXED = %ld", ret);
			break;
		case 1: /* unmap, then map again */
			cr_assert_eq(mm_munmap(sh.mm, sh.addr, REMAP_LEN), 0);
			ret = mm_mmap(sh.mm, sh.addr, REMAP_LEN, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, NULL, 0);
			cr_assert_eq(ret, (long)sh.addr, "MAP_FIXED_NOREPLACE = %ld", ret);
			break;
		case 2: /* zap */
			cr_assert_eq(mm_madvise(sh.mm, sh.addr, REMAP_LEN, MADV_DONTNEED), 0);
			break;
		default: /* toggle protections: a PROT_NONE window faults */
			cr_assert_eq(mm_mprotect(sh.mm, sh.addr, REMAP_LEN, PROT_NONE), 0);
			cr_assert_eq(mm_mprotect(sh.mm, sh.addr, REMAP_LEN, PROT_READ | PROT_WRITE),
				     0);
			break;
		}
		cr_assert_eq(cpu_write(sh.mm, sh.addr, pattern, REMAP_LEN), 0);
	}
	/* Give each reader (up to a second) to see the mapping at least once. */
	for (int i = 0, waits = 0; i < REMAP_READERS && waits < 1000; i++)
		while (!atomic_load(&readers[i].ok) && waits++ < 1000)
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	atomic_store(&sh.done, true);
	join_threads(t, REMAP_READERS);
	pthread_barrier_destroy(&sh.start);
	for (int i = 0; i < REMAP_READERS; i++) {
		cr_assert_eq(readers[i].res.failures, 0, "reader %d: %s", i, readers[i].res.msg);
		ok += atomic_load(&readers[i].ok);
	}
	cr_assert_gt(ok, 0, "no read ever succeeded");
	fprintf(stderr, "threads/readers_against_remap: %lu reads saw the mapping\n", ok);
	{
		uint8_t back[REMAP_LEN];

		cr_assert_eq(cpu_read(sh.mm, sh.addr, back, REMAP_LEN), 0);
		cr_assert_eq(memcmp(back, pattern, REMAP_LEN), 0);
	}
	assert_audit_clean();
	mmput(sh.mm);
}

/* ------------------------------------------------------------------ */
/* Two mms on one machine                                              */
/* ------------------------------------------------------------------ */

#define MM_PAIR_THREADS 2 /* per mm */
#define MM_PAIR_LEN (4 * HPAGE_PMD_SIZE)
#define MM_PAIR_PASSES 3

struct mm_worker {
	struct mm_struct *mm;
	unsigned long addr; /* this thread's half of the mm's region */
	unsigned long len;
	uint32_t seed;
	pthread_barrier_t *start;
	struct worker_result res;
};

static uint8_t pair_byte(uint32_t seed, unsigned long off, int pass)
{
	uint32_t x = seed * 2654435761u ^ (uint32_t)(off * 40503u) ^ (uint32_t)pass * 0x9e37u;

	return (uint8_t)(x ^ (x >> 11) ^ (x >> 19));
}

static void *mm_worker_fn(void *arg)
{
	struct mm_worker *w = arg;
	uint8_t *buf = malloc(PAGE_SIZE), *rbuf = malloc(PAGE_SIZE);

	if (!buf || !rbuf) {
		fail(&w->res, "malloc");
		goto out;
	}
	pthread_barrier_wait(w->start);
	for (int pass = 0; pass < MM_PAIR_PASSES && !w->res.failures; pass++) {
		/* Fill page by page (each page a fault on the first pass), then check. */
		for (unsigned long off = 0; off < w->len; off += PAGE_SIZE) {
			for (unsigned long i = 0; i < PAGE_SIZE; i++)
				buf[i] = pair_byte(w->seed, off + i, pass);
			if (cpu_write(w->mm, w->addr + off, buf, PAGE_SIZE)) {
				fail(&w->res, "cpu_write at %#lx", w->addr + off);
				break;
			}
		}
		for (unsigned long off = 0; off < w->len && !w->res.failures; off += PAGE_SIZE) {
			for (unsigned long i = 0; i < PAGE_SIZE; i++)
				buf[i] = pair_byte(w->seed, off + i, pass);
			compare_mm(&w->res, w->mm, w->addr + off, buf, PAGE_SIZE, rbuf, "mm pair");
		}
		/* Drop everything but the last pass: the next pass faults again. */
		if (pass + 1 < MM_PAIR_PASSES && mm_madvise(w->mm, w->addr, w->len, MADV_DONTNEED))
			fail(&w->res, "MADV_DONTNEED");
	}
out:
	free(buf);
	free(rbuf);
	return NULL;
}

struct mm_putter {
	struct mm_struct *mm;
	pthread_barrier_t *start;
};

static void *mmput_fn(void *arg)
{
	struct mm_putter *p = arg;

	pthread_barrier_wait(p->start);
	mmput(p->mm);
	return NULL;
}

Test(threads, two_mms_fault_in_parallel)
{
	struct mm_struct *mms[2];
	unsigned long base[2];
	struct mm_worker w[2 * MM_PAIR_THREADS];
	struct mm_putter putters[2];
	pthread_t t[2 * MM_PAIR_THREADS];
	pthread_barrier_t start;
	uint64_t seed = test_seed("two_mms_fault_in_parallel");
	unsigned long free_before = uhmm_nr_free_pages(machine);

	memset(w, 0, sizeof(w));
	cr_assert_eq(pthread_barrier_init(&start, NULL, 2 * MM_PAIR_THREADS), 0);
	for (int m = 0; m < 2; m++) {
		mms[m] = new_mm();
		/* mm 0 uses THPs, mm 1 4 KiB pages; the same addresses in both is fine. */
		base[m] = m == 0 ? map_thp(mms[m], MM_PAIR_LEN)
				 : map_anon(mms[m], 0, MM_PAIR_LEN, PROT_READ | PROT_WRITE, 0);
		for (int k = 0; k < MM_PAIR_THREADS; k++) {
			struct mm_worker *x = &w[m * MM_PAIR_THREADS + k];

			x->mm = mms[m];
			x->len = MM_PAIR_LEN / MM_PAIR_THREADS;
			x->addr = base[m] + (unsigned long)k * x->len;
			x->seed = (uint32_t)seed_for(seed, (unsigned int)(m * 16 + k));
			x->start = &start;
		}
	}
	start_threads(t, 2 * MM_PAIR_THREADS, mm_worker_fn, w, sizeof(w[0]));
	join_threads(t, 2 * MM_PAIR_THREADS);
	for (int i = 0; i < 2 * MM_PAIR_THREADS; i++)
		cr_assert_eq(w[i].res.failures, 0, "mm worker %d: %s", i, w[i].res.msg);

	{
		struct mm_smaps sm;

		cr_assert_eq(mm_smaps_rollup(mms[0], &sm), 0);
		cr_assert_eq(sm.rss, MM_PAIR_LEN);
		cr_assert_eq(sm.anon_huge_pages, MM_PAIR_LEN, "THP mm: anon_huge_pages %lu",
			     sm.anon_huge_pages);
		cr_assert_eq(mm_smaps_rollup(mms[1], &sm), 0);
		cr_assert_eq(sm.rss, MM_PAIR_LEN);
		cr_assert_eq(sm.anon_huge_pages, 0);
	}
	assert_audit_clean();

	/* Tear both down at once. */
	pthread_barrier_destroy(&start);
	cr_assert_eq(pthread_barrier_init(&start, NULL, 2), 0);
	for (int m = 0; m < 2; m++) {
		putters[m].mm = mms[m];
		putters[m].start = &start;
	}
	start_threads(t, 2, mmput_fn, putters, sizeof(putters[0]));
	join_threads(t, 2);
	pthread_barrier_destroy(&start);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
}
