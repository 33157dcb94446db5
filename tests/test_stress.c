/* SPDX-License-Identifier: MIT */
/*
 * tests/test_stress.c - a randomized concurrency stress test checked
 * against a shadow model.
 *
 * N worker threads (UHMM_STRESS_THREADS, default 2 x online CPUs) each run
 * UHMM_STRESS_OPS random operations (default STRESS_DEFAULT_OPS) on two mms
 * of one machine with the dmirror module loaded.  Every thread owns its own
 * VMAs ("regions"), so what each byte must hold is known: a shadow byte
 * array per region records it, and every read (CPU, device, a forked child)
 * is compared with it.  The operations: cpu_write/cpu_read, 64-bit atomic
 * add, munmap+mmap of a whole region, mprotect RO/RW, MADV_DONTNEED, THP
 * regions (MADV_HUGEPAGE), dmirror MIGRATE_TO_DEV/MIGRATE_TO_SYS of random
 * sub-ranges, dmirror READ/WRITE/SNAPSHOT, and now and then mm_fork() with
 * the child checked against the shadow and written to (copy-on-write must
 * leave the parent alone).
 *
 * A global "gate" rwlock is held for reading around every operation; a
 * fork and the periodic uhmm_audit()/dmirror_audit() (both need a
 * quiescent machine) take it for writing, so no operation is mid-flight and
 * every shadow is stable then.
 *
 * The seed (UHMM_STRESS_SEED, default from the clock) is printed first;
 * the choices of every thread replay from it (the interleaving does not).
 * On a mismatch the worker prints the seed, thread, operation index,
 * address and its last STRESS_LOG operations, and the test fails after
 * the join (no assertion runs off the main thread).
 */
#include "helpers.h"

#include <uhmm/dmirror.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Operations per thread by default: about 5 s plain, 15 s under ASan and
 * 30 s under TSan with 4 threads on 2 cores.
 */
#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define STRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#elif __has_feature(address_sanitizer)
#define STRESS_ASAN 1
#endif
#endif
#if defined(STRESS_TSAN)
#define STRESS_DEFAULT_OPS 12000
#elif defined(STRESS_ASAN)
#define STRESS_DEFAULT_OPS 25000
#else
#define STRESS_DEFAULT_OPS 50000
#endif
#define STRESS_REGIONS 3	  /* regions per thread */
#define STRESS_MAX_SMALL_PAGES 16 /* a small region has 1..16 pages */
#define STRESS_AUDIT_EVERY 1500	  /* operations (all threads) between audits */
#define STRESS_FORK_ONE_IN 400	  /* a fork every ~this many operations */
#define STRESS_LOG 20
#define STRESS_NR_MM 2
#define STRESS_NR_DEV 3 /* minors 0, 1 (private) and 2 (coherent) */

TestSuite(stress, .init = machine_setup, .fini = machine_teardown);

enum stress_op {
	OP_CPU_WRITE,
	OP_CPU_READ,
	OP_ATOMIC_ADD,
	OP_REMAP,
	OP_MPROTECT,
	OP_DONTNEED,
	OP_TO_DEV,
	OP_TO_SYS,
	OP_DEV_READ,
	OP_DEV_WRITE,
	OP_SNAPSHOT,
	OP_FORK,
	OP_AUDIT,
	NR_OPS,
};

static const char *const op_names[NR_OPS] = {
	"cpu_write", "cpu_read",  "atomic_add", "remap",    "mprotect", "dontneed", "to_dev",
	"to_sys",    "dev_read",  "dev_write",	"snapshot", "fork",	"audit",
};

struct region {
	unsigned long addr, len;
	bool ro, thp;
	uint8_t *shadow;
};

struct log_entry {
	unsigned long idx;
	enum stress_op op;
	unsigned long addr, len;
	long ret;
};

struct worker {
	unsigned int id;
	pthread_t thread;
	uint64_t rng;
	struct mm_struct *mm;
	struct dmirror *dm;
	unsigned int dev;
	struct region reg[STRESS_REGIONS];
	struct log_entry log[STRESS_LOG];
	unsigned long idx; /* the operation being run */
	uint8_t *buf;
	unsigned long counts[NR_OPS];
	unsigned long to_dev_enoent, dev_write_efault;
};

static struct {
	uint64_t seed;
	unsigned int nthreads;
	unsigned long nops;
	struct mm_struct *mm[STRESS_NR_MM];
	struct dmirror_module *mod;
	struct dmirror *dm[STRESS_NR_MM][STRESS_NR_DEV];
	struct worker *w;
	pthread_rwlock_t gate;
	atomic_bool failed;
	atomic_ulong total_ops;
	atomic_ulong audits, forks;
	pthread_mutex_t print_lock;
} st;

static uint64_t rnd(struct worker *w)
{
	/* xorshift64* */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545f4914f6cdd1dULL;
}

/* splitmix64: spreads a seed over all 64 bits (xorshift wants that). */
static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static unsigned long st_min(unsigned long a, unsigned long b)
{
	return a < b ? a : b;
}

static unsigned long rnd_below(struct worker *w, unsigned long n)
{
	return n ? (unsigned long)(rnd(w) % n) : 0;
}

static void log_op(struct worker *w, enum stress_op op, unsigned long addr, unsigned long len,
		   long ret)
{
	struct log_entry *e = &w->log[w->idx % STRESS_LOG];

	e->idx = w->idx;
	e->op = op;
	e->addr = addr;
	e->len = len;
	e->ret = ret;
}

static void __attribute__((format(printf, 2, 3))) fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&st.print_lock);
	fprintf(stderr, "stress: FAILURE seed %#" PRIx64 " (UHMM_STRESS_SEED=%#" PRIx64
			" UHMM_STRESS_THREADS=%u UHMM_STRESS_OPS=%lu) thread %u op %lu: ",
		st.seed, st.seed, st.nthreads, st.nops, w->id, w->idx);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nstress: thread %u's last operations (oldest first):\n", w->id);
	for (unsigned long i = w->idx >= STRESS_LOG ? w->idx - STRESS_LOG + 1 : 0; i <= w->idx;
	     i++) {
		struct log_entry *e = &w->log[i % STRESS_LOG];

		if (e->idx != i)
			continue;
		fprintf(stderr, "  #%lu %-10s addr %#lx len %#lx ret %ld\n", e->idx,
			op_names[e->op], e->addr, e->len, e->ret);
	}
	for (int r = 0; r < STRESS_REGIONS; r++)
		fprintf(stderr, "  region %d: [%#lx, %#lx) %s%s\n", r, w->reg[r].addr,
			w->reg[r].addr + w->reg[r].len, w->reg[r].ro ? "ro" : "rw",
			w->reg[r].thp ? " thp" : "");
	pthread_mutex_unlock(&st.print_lock);
	atomic_store(&st.failed, true);
}

/* Compare @len bytes at @got with the shadow of @r from @off; false (and fail()) on a mismatch. */
static bool check_bytes(struct worker *w, const char *what, struct region *r, unsigned long off,
			const uint8_t *got, unsigned long len)
{
	for (unsigned long i = 0; i < len; i++) {
		if (got[i] != r->shadow[off + i]) {
			fail(w, "%s: byte at %#lx (region %#lx +%#lx) is %#x, the shadow says %#x",
			     what, r->addr + off + i, r->addr, off + i, got[i],
			     r->shadow[off + i]);
			return false;
		}
	}
	return true;
}

/* Map @r afresh (plain or THP), all zero and RW; false (and fail()) if it cannot. */
static bool region_map(struct worker *w, struct region *r)
{
	bool thp = rnd_below(w, 4) == 0;
	unsigned long len = thp ? HPAGE_PMD_SIZE : (1 + rnd_below(w, STRESS_MAX_SMALL_PAGES)) * PAGE_SIZE;
	long addr = mm_mmap(w->mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    NULL, 0);

	if (addr <= 0) {
		fail(w, "mm_mmap(%#lx) = %ld", len, addr);
		return false;
	}
	if (thp) {
		int ret = mm_madvise(w->mm, (unsigned long)addr, len, MADV_HUGEPAGE);

		if (ret) {
			fail(w, "MADV_HUGEPAGE(%#lx) = %d", (unsigned long)addr, ret);
			return false;
		}
	}
	r->addr = (unsigned long)addr;
	r->len = len;
	r->ro = false;
	r->thp = thp;
	free(r->shadow);
	r->shadow = calloc(1, len);
	if (!r->shadow) {
		fail(w, "out of host memory");
		return false;
	}
	return true;
}

/* A random byte range [*off, *off + *len) of @r, at most @max bytes. */
static void pick_bytes(struct worker *w, struct region *r, unsigned long max, unsigned long *off,
		       unsigned long *len)
{
	*off = rnd_below(w, r->len);
	*len = 1 + rnd_below(w, st_min(max, r->len - *off));
}

/* A random page range of @r: sometimes all of it (whole-THP migrations). */
static void pick_pages(struct worker *w, struct region *r, unsigned long *off, unsigned long *npages)
{
	unsigned long n = r->len >> PAGE_SHIFT;

	if (rnd_below(w, 4) == 0) {
		*off = 0;
		*npages = n;
		return;
	}
	*off = rnd_below(w, n);
	*npages = 1 + rnd_below(w, st_min(32, n - *off));
	*off <<= PAGE_SHIFT;
}

static int dm_cmd(struct worker *w, unsigned long request, unsigned long addr, void *buf,
		  unsigned long npages, struct hmm_dmirror_cmd *cmd)
{
	int ret;

	memset(cmd, 0, sizeof(*cmd));
	cmd->addr = addr;
	cmd->ptr = (uint64_t)(uintptr_t)buf;
	cmd->npages = npages;
	do
		ret = dmirror_ioctl(w->dm, request, cmd);
	while (ret == -EINTR);
	return ret;
}

/* mm_fork() the mm of @w with every other operation held off, and check the child. */
static bool do_fork(struct worker *w)
{
	struct mm_struct *child = mm_fork(w->mm);
	bool ok = true;

	if (IS_ERR_OR_NULL(child)) {
		fail(w, "mm_fork = %ld", PTR_ERR(child));
		return false;
	}
	/* The gate is held for writing: every worker's shadow is stable. */
	for (unsigned int t = 0; t < st.nthreads && ok; t++) {
		struct worker *o = &st.w[t];

		if (o->mm != w->mm)
			continue;
		for (int i = 0; i < STRESS_REGIONS && ok; i++) {
			struct region *r = &o->reg[i];
			unsigned long off, len;
			int ret;

			if (!r->shadow)
				continue;
			pick_bytes(w, r, 4 * PAGE_SIZE, &off, &len);
			ret = cpu_read(child, r->addr + off, w->buf, len);
			log_op(w, OP_FORK, r->addr + off, len, ret);
			if (ret) {
				fail(w, "child cpu_read(%#lx, %#lx) = %d", r->addr + off, len, ret);
				ok = false;
				break;
			}
			ok = check_bytes(w, "child after fork", r, off, w->buf, len);
			if (!ok || r->ro)
				continue;
			/* The child writes: the parent must still read the shadow. */
			memset(w->buf, 0x5a ^ (int)t, len);
			ret = cpu_write(child, r->addr + off, w->buf, len);
			if (ret) {
				fail(w, "child cpu_write(%#lx, %#lx) = %d", r->addr + off, len,
				     ret);
				ok = false;
				break;
			}
			ret = cpu_read(w->mm, r->addr + off, w->buf, len);
			if (ret) {
				fail(w, "parent cpu_read after child write = %d", ret);
				ok = false;
				break;
			}
			ok = check_bytes(w, "parent after the child wrote", r, off, w->buf, len);
		}
	}
	mmput(child);
	return ok;
}

static bool do_audit(struct worker *w)
{
	int v = uhmm_audit(machine, stderr);
	int dv = dmirror_audit(st.mod, stderr);

	log_op(w, OP_AUDIT, 0, 0, v + dv);
	if (v || dv) {
		fail(w, "uhmm_audit found %d violations, dmirror_audit %d", v, dv);
		return false;
	}
	return true;
}

/*
 * dmirror WRITE to a writable region failed with -EFAULT.  As in Linux,
 * hmm_range_fault() reports the caller's own device-private pages as they
 * are, without a fault: one left read-only (mprotect RO made the entry
 * read-only, and mprotect RW does not make a swap-type entry writable
 * again) comes back without HMM_PFN_WRITE, and test_hmm's
 * dmirror_do_fault() fails with -EFAULT (a WARN_ON in Linux).  The pages
 * before the failing one may have been written: each page must hold either
 * what it held or what the device wrote (@w->buf); the shadow follows.
 */
static bool dev_write_efault(struct worker *w, struct region *r, unsigned long off,
			     unsigned long npages)
{
	uint8_t *now = malloc(npages << PAGE_SHIFT);
	bool ok = true;
	int ret;

	if (!now) {
		fail(w, "out of host memory");
		return false;
	}
	ret = cpu_read(w->mm, r->addr + off, now, npages << PAGE_SHIFT);
	if (ret) {
		fail(w, "cpu_read after a failed dmirror WRITE = %d", ret);
		free(now);
		return false;
	}
	for (unsigned long p = 0; p < npages && ok; p++) {
		unsigned long o = p << PAGE_SHIFT;

		if (!memcmp(now + o, w->buf + o, PAGE_SIZE))
			memcpy(r->shadow + off + o, now + o, PAGE_SIZE);
		else
			ok = check_bytes(w, "after a dmirror WRITE that failed with -EFAULT", r,
					 off + o, now + o, PAGE_SIZE);
	}
	free(now);
	return ok;
}

/* One random operation on one of @w's regions; false if it found a mismatch. */
static bool one_op(struct worker *w)
{
	struct region *r = &w->reg[rnd_below(w, STRESS_REGIONS)];
	unsigned long pick = rnd_below(w, 100), off, len, addr;
	struct hmm_dmirror_cmd cmd;
	enum stress_op op;
	long ret;

	/* Weights, in percent. */
	if (pick < 20)
		op = OP_CPU_WRITE;
	else if (pick < 38)
		op = OP_CPU_READ;
	else if (pick < 44)
		op = OP_ATOMIC_ADD;
	else if (pick < 47)
		op = OP_REMAP;
	else if (pick < 53)
		op = OP_MPROTECT;
	else if (pick < 58)
		op = OP_DONTNEED;
	else if (pick < 70)
		op = OP_TO_DEV;
	else if (pick < 78)
		op = OP_TO_SYS;
	else if (pick < 86)
		op = OP_DEV_READ;
	else if (pick < 95)
		op = OP_DEV_WRITE;
	else
		op = OP_SNAPSHOT;
	w->counts[op]++;

	switch (op) {
	case OP_CPU_WRITE:
		pick_bytes(w, r, 3 * PAGE_SIZE, &off, &len);
		addr = r->addr + off;
		for (unsigned long i = 0; i < len; i++)
			w->buf[i] = (uint8_t)rnd(w);
		ret = cpu_write(w->mm, addr, w->buf, len);
		log_op(w, op, addr, len, ret);
		if (r->ro) {
			if (ret != -EFAULT) {
				fail(w, "cpu_write to a read-only region = %ld, want -EFAULT", ret);
				return false;
			}
			/* Nothing may have changed. */
			ret = cpu_read(w->mm, addr, w->buf, len);
			if (ret) {
				fail(w, "cpu_read after a failed write = %ld", ret);
				return false;
			}
			return check_bytes(w, "after a refused cpu_write", r, off, w->buf, len);
		}
		if (ret) {
			fail(w, "cpu_write(%#lx, %#lx) = %ld", addr, len, ret);
			return false;
		}
		memcpy(r->shadow + off, w->buf, len);
		return true;

	case OP_CPU_READ:
		pick_bytes(w, r, 6 * PAGE_SIZE, &off, &len);
		addr = r->addr + off;
		ret = cpu_read(w->mm, addr, w->buf, len);
		log_op(w, op, addr, len, ret);
		if (ret) {
			fail(w, "cpu_read(%#lx, %#lx) = %ld", addr, len, ret);
			return false;
		}
		return check_bytes(w, "cpu_read", r, off, w->buf, len);

	case OP_ATOMIC_ADD: {
		uint64_t val = rnd(w), old = 0, want;

		off = rnd_below(w, r->len / 8) * 8;
		addr = r->addr + off;
		ret = cpu_atomic_fetch_add_u64(w->mm, addr, val, &old);
		log_op(w, op, addr, 8, ret);
		if (r->ro) {
			if (ret != -EFAULT) {
				fail(w, "atomic add on a read-only region = %ld, want -EFAULT", ret);
				return false;
			}
			return true;
		}
		if (ret) {
			fail(w, "cpu_atomic_fetch_add_u64(%#lx) = %ld", addr, ret);
			return false;
		}
		memcpy(&want, r->shadow + off, 8);
		if (old != want) {
			fail(w, "atomic add at %#lx: old %#" PRIx64 ", the shadow says %#" PRIx64,
			     addr, old, want);
			return false;
		}
		want += val;
		memcpy(r->shadow + off, &want, 8);
		return true;
	}

	case OP_REMAP:
		ret = mm_munmap(w->mm, r->addr, r->len);
		log_op(w, op, r->addr, r->len, ret);
		if (ret) {
			fail(w, "mm_munmap(%#lx, %#lx) = %ld", r->addr, r->len, ret);
			return false;
		}
		return region_map(w, r);

	case OP_MPROTECT:
		ret = mm_mprotect(w->mm, r->addr, r->len,
				  r->ro ? PROT_READ | PROT_WRITE : PROT_READ);
		log_op(w, op, r->addr, r->len, ret);
		if (ret) {
			fail(w, "mm_mprotect(%#lx, %#lx) = %ld", r->addr, r->len, ret);
			return false;
		}
		r->ro = !r->ro;
		return true;

	case OP_DONTNEED:
		pick_pages(w, r, &off, &len);
		addr = r->addr + off;
		ret = mm_madvise(w->mm, addr, len << PAGE_SHIFT, MADV_DONTNEED);
		log_op(w, op, addr, len << PAGE_SHIFT, ret);
		if (ret) {
			fail(w, "MADV_DONTNEED(%#lx, %lu pages) = %ld", addr, len, ret);
			return false;
		}
		memset(r->shadow + off, 0, len << PAGE_SHIFT);
		return true;

	case OP_TO_DEV:
		pick_pages(w, r, &off, &len);
		addr = r->addr + off;
		ret = dm_cmd(w, HMM_DMIRROR_MIGRATE_TO_DEV, addr, w->buf, len, &cmd);
		log_op(w, op, addr, len << PAGE_SHIFT, ret);
		/*
		 * -ENOENT: some page was not migrated, as test_hmm reports it
		 * (a page already on this device whose mirror entry an
		 * invalidation dropped, a coherent page, a busy page).
		 */
		if (ret == -ENOENT) {
			w->to_dev_enoent++;
			return true;
		}
		if (ret) {
			fail(w, "MIGRATE_TO_DEV(%#lx, %lu pages) = %ld", addr, len, ret);
			return false;
		}
		return check_bytes(w, "MIGRATE_TO_DEV's read-back", r, off, w->buf,
				   len << PAGE_SHIFT);

	case OP_TO_SYS:
		pick_pages(w, r, &off, &len);
		addr = r->addr + off;
		ret = dm_cmd(w, HMM_DMIRROR_MIGRATE_TO_SYS, addr, w->buf, len, &cmd);
		log_op(w, op, addr, len << PAGE_SHIFT, ret);
		if (ret) {
			fail(w, "MIGRATE_TO_SYS(%#lx, %lu pages) = %ld", addr, len, ret);
			return false;
		}
		return true;

	case OP_DEV_READ:
		pick_pages(w, r, &off, &len);
		addr = r->addr + off;
		ret = dm_cmd(w, HMM_DMIRROR_READ, addr, w->buf, len, &cmd);
		log_op(w, op, addr, len << PAGE_SHIFT, ret);
		if (ret) {
			fail(w, "dmirror READ(%#lx, %lu pages) = %ld", addr, len, ret);
			return false;
		}
		return check_bytes(w, "dmirror READ", r, off, w->buf, len << PAGE_SHIFT);

	case OP_DEV_WRITE:
		pick_pages(w, r, &off, &len);
		addr = r->addr + off;
		for (unsigned long i = 0; i < (len << PAGE_SHIFT); i += 8) {
			uint64_t v = rnd(w);

			memcpy(w->buf + i, &v, 8);
		}
		ret = dm_cmd(w, HMM_DMIRROR_WRITE, addr, w->buf, len, &cmd);
		log_op(w, op, addr, len << PAGE_SHIFT, ret);
		if (r->ro) {
			/*
			 * -EPERM from hmm_range_fault(); but a page already
			 * on this device is reported as it is (read-only, no
			 * fault), and test_hmm's dmirror_do_fault() then
			 * fails with -EFAULT (a WARN_ON in Linux).  Either
			 * way nothing is written.
			 */
			if (ret != -EPERM && ret != -EFAULT) {
				fail(w, "dmirror WRITE to a read-only region = %ld, want -EPERM",
				     ret);
				return false;
			}
			return true;
		}
		if (ret == -EFAULT) {
			w->dev_write_efault++;
			return dev_write_efault(w, r, off, len);
		}
		if (ret) {
			fail(w, "dmirror WRITE(%#lx, %lu pages) = %ld", addr, len, ret);
			return false;
		}
		memcpy(r->shadow + off, w->buf, len << PAGE_SHIFT);
		return true;

	case OP_SNAPSHOT:
		pick_pages(w, r, &off, &len);
		addr = r->addr + off;
		ret = dm_cmd(w, HMM_DMIRROR_SNAPSHOT, addr, w->buf, len, &cmd);
		log_op(w, op, addr, len << PAGE_SHIFT, ret);
		if (ret) {
			fail(w, "dmirror SNAPSHOT(%#lx, %lu pages) = %ld", addr, len, ret);
			return false;
		}
		return true;

	default:
		return true;
	}
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;

	pthread_rwlock_rdlock(&st.gate);
	for (int i = 0; i < STRESS_REGIONS; i++)
		if (!region_map(w, &w->reg[i]))
			break;
	pthread_rwlock_unlock(&st.gate);

	for (w->idx = 0; w->idx < st.nops && !atomic_load(&st.failed); w->idx++) {
		unsigned long n = atomic_fetch_add(&st.total_ops, 1) + 1;
		bool ok;

		if (n % STRESS_AUDIT_EVERY == 0) {
			pthread_rwlock_wrlock(&st.gate);
			atomic_fetch_add(&st.audits, 1);
			w->counts[OP_AUDIT]++;
			ok = do_audit(w);
			pthread_rwlock_unlock(&st.gate);
		} else if (rnd_below(w, STRESS_FORK_ONE_IN) == 0) {
			pthread_rwlock_wrlock(&st.gate);
			atomic_fetch_add(&st.forks, 1);
			w->counts[OP_FORK]++;
			ok = do_fork(w);
			pthread_rwlock_unlock(&st.gate);
		} else {
			pthread_rwlock_rdlock(&st.gate);
			ok = one_op(w);
			pthread_rwlock_unlock(&st.gate);
		}
		if (!ok)
			break;
	}
	return NULL;
}

static unsigned long env_ulong(const char *name, unsigned long dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtoul(s, NULL, 0) : dflt;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(stress, shadow_model)
{
	pthread_rwlockattr_t attr;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	const char *seed_env = getenv("UHMM_STRESS_SEED");
	double t0, t1;

	memset(&st, 0, sizeof(st));
	st.seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 0)
					: (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	st.nthreads = (unsigned int)env_ulong("UHMM_STRESS_THREADS", 2 * (ncpu > 0 ? ncpu : 1));
	st.nops = env_ulong("UHMM_STRESS_OPS", STRESS_DEFAULT_OPS);
	cr_assert_gt(st.nthreads, 0);
	fprintf(stderr,
		"stress: seed %#" PRIx64 ", %u threads, %lu ops each (UHMM_STRESS_SEED=%#" PRIx64
		" replays the choices)\n",
		st.seed, st.nthreads, st.nops, st.seed);

	/* Writers first, so an audit or a fork is not starved by the workers. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	cr_assert_eq(pthread_rwlock_init(&st.gate, &attr), 0);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&st.print_lock, NULL);

	st.mod = dmirror_module_init(machine);
	cr_assert(!IS_ERR_OR_NULL(st.mod), "dmirror_module_init: %ld", PTR_ERR(st.mod));
	for (int m = 0; m < STRESS_NR_MM; m++) {
		st.mm[m] = new_mm();
		for (unsigned int d = 0; d < STRESS_NR_DEV; d++) {
			st.dm[m][d] = dmirror_open(st.mod, d, st.mm[m]);
			cr_assert(!IS_ERR_OR_NULL(st.dm[m][d]), "dmirror_open(%u): %ld", d,
				  PTR_ERR(st.dm[m][d]));
		}
	}

	st.w = calloc(st.nthreads, sizeof(*st.w));
	cr_assert_not_null(st.w);
	for (unsigned int t = 0; t < st.nthreads; t++) {
		struct worker *w = &st.w[t];

		w->id = t;
		w->rng = splitmix64(st.seed + t) | 1;
		w->mm = st.mm[t % STRESS_NR_MM];
		w->dev = t % STRESS_NR_DEV;
		w->dm = st.dm[t % STRESS_NR_MM][w->dev];
		w->buf = malloc(HPAGE_PMD_SIZE);
		cr_assert_not_null(w->buf);
	}

	t0 = now_s();
	for (unsigned int t = 0; t < st.nthreads; t++)
		cr_assert_eq(pthread_create(&st.w[t].thread, NULL, worker_fn, &st.w[t]), 0);
	for (unsigned int t = 0; t < st.nthreads; t++)
		pthread_join(st.w[t].thread, NULL);
	t1 = now_s();

	cr_assert_not(atomic_load(&st.failed), "a worker found a mismatch (see above), seed %#" PRIx64,
		      st.seed);

	unsigned long done = 0, counts[NR_OPS] = {0}, enoent = 0, efault = 0;

	for (unsigned int t = 0; t < st.nthreads; t++) {
		done += st.w[t].idx;
		enoent += st.w[t].to_dev_enoent;
		efault += st.w[t].dev_write_efault;
		for (int op = 0; op < NR_OPS; op++)
			counts[op] += st.w[t].counts[op];
	}
	cr_assert_eq(done, (unsigned long)st.nthreads * st.nops);
	fprintf(stderr, "stress: %lu ops in %.2f s = %.0f ops/s, seed %#" PRIx64 "\n", done,
		t1 - t0, (double)done / (t1 - t0), st.seed);
	fprintf(stderr, "stress:");
	for (int op = 0; op < NR_OPS; op++)
		fprintf(stderr, " %s %lu", op_names[op], counts[op]);
	fprintf(stderr, " (to_dev -ENOENT %lu, dev_write -EFAULT %lu)\n", enoent, efault);
	/* The mix must really have run every kind of operation. */
	if (st.nops >= 1000)
		for (int op = 0; op < NR_OPS; op++)
			cr_assert_gt(counts[op], 0, "no %s ran", op_names[op]);

	/* Every byte of every region, read by the CPU, against the shadow. */
	for (unsigned int t = 0; t < st.nthreads; t++) {
		struct worker *w = &st.w[t];

		for (int i = 0; i < STRESS_REGIONS; i++) {
			struct region *r = &w->reg[i];

			cr_assert_eq(cpu_read(w->mm, r->addr, w->buf, r->len), 0);
			for (unsigned long b = 0; b < r->len; b++)
				if (w->buf[b] != r->shadow[b])
					cr_assert_fail("final sweep: thread %u byte at %#lx is %#x, "
						       "the shadow says %#x (seed %#" PRIx64 ")",
						       t, r->addr + b, w->buf[b], r->shadow[b],
						       st.seed);
		}
	}

	/* Quiescent: the final audits, then close, unload and exit. */
	assert_audit_clean();
	cr_assert_eq(dmirror_audit(st.mod, stderr), 0);
	for (int m = 0; m < STRESS_NR_MM; m++)
		for (unsigned int d = 0; d < STRESS_NR_DEV; d++)
			dmirror_release(st.dm[m][d]);
	cr_assert_eq(dmirror_audit(st.mod, stderr), 0);
	cr_assert_eq(dmirror_module_exit(st.mod), 0);
	for (int m = 0; m < STRESS_NR_MM; m++)
		mmput(st.mm[m]);
	for (unsigned int t = 0; t < st.nthreads; t++) {
		free(st.w[t].buf);
		for (int i = 0; i < STRESS_REGIONS; i++)
			free(st.w[t].reg[i].shadow);
	}
	free(st.w);
	pthread_rwlock_destroy(&st.gate);
	pthread_mutex_destroy(&st.print_lock);
}
