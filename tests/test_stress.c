/* SPDX-License-Identifier: MIT */
/*
 * tests/test_stress.c - a randomized concurrency stress test checked
 * against a shadow model, plain (stress/shadow_model) and with
 * allocation-failure injection (stress/fault_injection).
 *
 * N worker threads (UHMM_STRESS_THREADS, default 2 x online CPUs) each run
 * UHMM_STRESS_OPS random operations on two mms of one machine with the
 * dmirror module loaded; each mm has a mirror open on minors 0, 1
 * (device-private) and 2 (device-coherent), and a thread uses all three.
 * Every thread owns its own VMAs ("regions"), so what each byte must hold
 * is known: a shadow byte array per region records it, and every read
 * (CPU, device, a forked child) is compared with it.
 *
 * The model also tracks, per page, where the page is (struct page_model:
 * no page of its own, system RAM, or on device minor X) and, per minor,
 * whether that mirror's device page table surely maps the page, surely
 * does not, or may.  From it the test knows what MIGRATE_TO_DEV (0 or
 * -ENOENT), MIGRATE_TO_SYS (cpages), READ, WRITE (-EPERM / -EFAULT) and
 * SNAPSHOT (the byte of each page) must return, and after an operation
 * that moves pages it checks where they went with two snapshots (through
 * minors 0 and 1, which together tell every location apart).
 *
 * The operations: cpu_write/cpu_read, 64-bit atomic add, munmap+mmap of a
 * whole region, mremap (shrink, grow, move with MREMAP_FIXED), mprotect
 * RO/RW, madvise (DONTNEED, FREE, POPULATE_READ/WRITE, HUGEPAGE/NOHUGEPAGE,
 * COLLAPSE, COLD, PAGEOUT), dmirror MIGRATE_TO_DEV / MIGRATE_TO_SYS of
 * random sub-ranges (4 KiB and THP), READ / WRITE / SNAPSHOT / RELEASE,
 * and mm_fork() with the child checked, written to and exited.
 *
 * A global "gate" rwlock is held for reading around every operation; a
 * fork, a RELEASE (it evicts every thread's pages of a device) and the
 * periodic uhmm_audit()/dmirror_audit() (both need a quiescent machine)
 * take it for writing, so no operation is mid-flight and every model is
 * stable then.
 *
 * Fault injection: the second test runs the same mix with failures
 * injected into system-RAM allocations (all orders, then large folios
 * only) and into the devices' memory, in turns.  An operation may then
 * fail, but only with the errno Linux gives for it, and nothing is lost:
 * where a failure leaves a choice (which pages moved, which were written
 * before the failure) the test finds out which and checks that every byte
 * is either what it was or what was written.
 *
 * The seed (UHMM_STRESS_SEED, default STRESS_DEFAULT_SEED; "random" takes
 * one from the clock) is printed first;
 * the choices of every thread replay from it (the interleaving does not).
 * On a mismatch the worker prints the seed, thread, operation index and
 * address, and writes its last STRESS_LOG_MAX operations (all of them
 * since the last audit, and more) to a log file (UHMM_STRESS_LOG, default
 * stress-<seed>.log, stress-fi-<seed>.log under fault injection, in the
 * current directory; see log_write() for the line format).  The test fails after the join
 * (no assertion runs off the main thread).
 */
#include "helpers.h"

#include <uhmm/dmirror.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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
/* Operations per thread by default (4 threads on 2 cores). */
#if defined(STRESS_TSAN)
#define STRESS_DEFAULT_OPS 2500
#define STRESS_DEFAULT_FI_OPS 1500
#elif defined(STRESS_ASAN)
#define STRESS_DEFAULT_OPS 8000
#define STRESS_DEFAULT_FI_OPS 5000
#else
#define STRESS_DEFAULT_OPS 20000
#define STRESS_DEFAULT_FI_OPS 12000
#endif
#define STRESS_REGIONS 3	  /* regions per thread */
#define STRESS_MAX_SMALL_PAGES 16 /* a new small region has 1..16 pages */
#define STRESS_MAX_GROW_PAGES 16  /* mremap grows by at most this */
#define STRESS_MAX_PAGES (HPAGE_PMD_NR + 2 * STRESS_MAX_GROW_PAGES)
#define STRESS_AUDIT_EVERY 1500	  /* operations (all threads) between audits */
#define STRESS_DEFAULT_SEED 0x5eed5eedULL
#define STRESS_FORK_ONE_IN 400	  /* a fork every ~this many operations */
#define STRESS_RELEASE_ONE_IN 1500 /* a RELEASE every ~this many operations */
#define STRESS_LOG_MAX 8192	  /* operations kept per thread (> STRESS_AUDIT_EVERY) */
#define STRESS_NR_MM 2
#define STRESS_NR_DEV 3 /* minors 0, 1 (private) and 2 (coherent) */
#define STRESS_COHERENT 2
#define STRESS_RETRIES 10000 /* reads retried while injection makes them fail */

TestSuite(stress, .init = machine_setup, .fini = machine_teardown);

enum stress_op {
	OP_CPU_WRITE,
	OP_CPU_READ,
	OP_ATOMIC_ADD,
	OP_REMAP,
	OP_MREMAP,
	OP_MPROTECT,
	OP_MADVISE,
	OP_TO_DEV,
	OP_TO_SYS,
	OP_DEV_READ,
	OP_DEV_WRITE,
	OP_SNAPSHOT,
	OP_RELEASE,
	OP_FORK,
	OP_AUDIT,
	NR_OPS,
};

static const char *const op_names[NR_OPS] = {
	"cpu_write", "cpu_read", "atomic_add", "remap",	  "mremap",  "mprotect", "madvise", "to_dev",
	"to_sys",    "dev_read", "dev_write",  "snapshot", "release", "fork",	  "audit",
};

/* Where a page is: LOC_DEV + minor for device memory. */
enum { LOC_EMPTY, LOC_SYS, LOC_DEV };
#define NR_LOCS (LOC_DEV + STRESS_NR_DEV)
#define LOCBIT(l) (1u << (l))
static const char *const loc_names[NR_LOCS] = {"empty", "sys", "dev0", "dev1", "dev2"};

/*
 * struct page_model - what the test knows of one page.
 * @loc: LOC_EMPTY (no page of its own: nothing, or the zero page),
 *       LOC_SYS (an anonymous page of system RAM), LOC_DEV + minor.
 * @dpt_yes: bit m: mirror m's device page table surely maps the page.
 * @dpt_no: bit m: it surely does not.  Neither bit: it may.
 * @yes_since: for each mirror, the invalidation log's count when the
 *             operation that set its @dpt_yes bit began (see inval_log).
 */
struct page_model {
	uint8_t loc, dpt_yes, dpt_no;
	uint32_t yes_since[STRESS_NR_DEV];
};

struct region {
	unsigned long addr, len;
	bool ro;
	bool thp;   /* 2 MiB aligned and may hold PMD mappings */
	bool large; /* may hold large folios (it was a THP region) */
	uint8_t *shadow;
	struct page_model *pm;
};

/*
 * struct log_entry - one operation as the log file writes it.
 * @arg: the operation's argument (madvise advice, mremap kind, the new
 *       length, mprotect's prot), @minor: the device (-1: none),
 * @data: seed of the bytes written (see fill_bytes()).
 */
struct log_entry {
	unsigned long idx;
	enum stress_op op;
	int minor;
	unsigned long addr, len, arg;
	uint64_t data;
	long ret;
};

/*
 * The invalidation log: an interval notifier per mm over the whole address
 * space records every invalidation.  The model cannot foresee them all:
 * Linux, and uhmm with it, notifies over a large folio's whole span in
 * every VMA that shares the folio's anon_vma and overlaps its pgoff range,
 * mapped there or not (try_to_migrate_one() starts the notifier before
 * page_vma_mapped_walk()).  A VMA moved by mremap keeps its pgoff, and a
 * new VMA at the old place can take the same anon_vma from a neighbour
 * (find_mergeable_anon_vma()), so a split in one region, or a RELEASE's
 * eviction, can drop the device mappings of another region, another
 * thread's too.  MIGRATE_TO_DEV's -ENOENT where the model has every page
 * mapped is accepted only when the log shows such an invalidation over a
 * page of the range since the model recorded the page as mapped.
 */
#define INVAL_LOG_SIZE 8192
struct inval_log {
	struct mmu_interval_notifier sub;
	pthread_mutex_t lock;
	uint32_t n; /* records ever made; ring[n % INVAL_LOG_SIZE] is the next */
	struct {
		unsigned long start, end;
		int event;
	} ring[INVAL_LOG_SIZE];
};

struct worker {
	unsigned int id;
	pthread_t thread;
	uint64_t rng;
	struct mm_struct *mm;
	unsigned int mm_idx;
	struct dmirror *dm[STRESS_NR_DEV];
	struct region reg[STRESS_REGIONS];
	struct log_entry *log;
	unsigned long nlog; /* entries logged (the last STRESS_LOG_MAX are kept) */
	unsigned long idx;  /* the operation being run */
	uint32_t op_seq;    /* the invalidation log's count when it began */
	uint8_t *buf, *buf2;
	uint8_t *snap[2];
	unsigned long counts[NR_OPS];
	unsigned long to_dev_enoent, to_dev_enoent_known, to_dev_enoent_inval;
	unsigned long dev_write_efault, op_failed;
};

static struct {
	uint64_t seed;
	bool inject;
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
	struct inval_log inval[STRESS_NR_MM];
	/* fault injection: the rule in force (see fi_next_phase()) and the totals */
	unsigned int fi_phase;
	unsigned long fi_ram, fi_large, fi_dev;
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

/* The bytes an operation writes: @len bytes from @seed (a scenario replays them). */
static void fill_bytes(uint8_t *buf, unsigned long len, uint64_t seed)
{
	uint64_t x = seed;

	for (unsigned long i = 0; i < len; i += 8) {
		uint64_t v = splitmix64(x++);

		memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
	}
}

static unsigned long st_min(unsigned long a, unsigned long b)
{
	return a < b ? a : b;
}

static unsigned long rnd_below(struct worker *w, unsigned long n)
{
	return n ? (unsigned long)(rnd(w) % n) : 0;
}

static bool is_private_minor(unsigned int m)
{
	return m < STRESS_COHERENT;
}

static bool loc_is_private_dev(uint8_t loc)
{
	return loc >= LOC_DEV && is_private_minor(loc - LOC_DEV);
}

static unsigned long region_pages(const struct region *r)
{
	return r->len >> PAGE_SHIFT;
}

/* Start a log entry for the operation being run; its result comes with log_ret(). */
static struct log_entry *log_op(struct worker *w, enum stress_op op, int minor, unsigned long addr,
				unsigned long len, unsigned long arg, uint64_t data)
{
	struct log_entry *e = &w->log[w->nlog % STRESS_LOG_MAX];

	w->nlog++;
	e->idx = w->idx;
	e->op = op;
	e->minor = minor;
	e->addr = addr;
	e->len = len;
	e->arg = arg;
	e->data = data;
	e->ret = 0;
	return e;
}

static void log_ret(struct worker *w, long ret)
{
	if (w->nlog)
		w->log[(w->nlog - 1) % STRESS_LOG_MAX].ret = ret;
}

/*
 * Write @w's last STRESS_LOG_MAX operations (every one since the last
 * audit, and the audits, fork and release among them) to the log file,
 * one per line, as "key=value" words a scenario runner can read:
 *
 *   # comment lines (seed, thread, regions)
 *   op=<name> thread=<id> idx=<n> minor=<m|-1> addr=<hex> len=<hex>
 *   arg=<hex> data=<hex> ret=<errno or value>
 *
 * arg: madvise advice, mprotect prot, mremap new length (data: its
 * MREMAP_FIXED destination, 0 for none), fork: the fork itself 0, the
 * child's read 1 and write 2; data: the seed of the bytes written
 * (fill_bytes()), atomic_add: the value added.  ret: the operation's
 * return value.  Return: the path, or NULL.
 */
static const char *log_write(struct worker *w, char *path, size_t size)
{
	const char *env = getenv("UHMM_STRESS_LOG");
	unsigned long first = w->nlog > STRESS_LOG_MAX ? w->nlog - STRESS_LOG_MAX : 0;
	FILE *f;

	if (env && *env)
		snprintf(path, size, "%s", env);
	else
		snprintf(path, size, "stress-%s%#" PRIx64 ".log", st.inject ? "fi-" : "", st.seed);
	f = fopen(path, "w");
	if (!f)
		return NULL;
	fprintf(f, "# uhmm stress log: seed %#" PRIx64 " threads %u ops %lu inject %d\n", st.seed,
		st.nthreads, st.nops, st.inject);
	fprintf(f, "# thread %u mm %u, operations %lu..%lu%s\n", w->id,
		w->mm_idx, first < w->nlog ? w->log[first % STRESS_LOG_MAX].idx : 0, w->idx,
		first ? ", oldest dropped" : "");
	for (int r = 0; r < STRESS_REGIONS; r++)
		fprintf(f, "# region %d: addr=%#lx len=%#lx %s%s\n", r, w->reg[r].addr,
			w->reg[r].len, w->reg[r].ro ? "ro" : "rw", w->reg[r].thp ? " thp" : "");
	for (unsigned long i = first; i < w->nlog; i++) {
		const struct log_entry *e = &w->log[i % STRESS_LOG_MAX];

		fprintf(f,
			"op=%s thread=%u idx=%lu minor=%d addr=%#lx len=%#lx arg=%#lx data=%#" PRIx64
			" ret=%ld\n",
			op_names[e->op], w->id, e->idx, e->minor, e->addr, e->len, e->arg, e->data,
			e->ret);
	}
	fclose(f);
	return path;
}

static void __attribute__((format(printf, 2, 3))) fail(struct worker *w, const char *fmt, ...)
{
	char path[256];
	const char *written;
	va_list ap;

	pthread_mutex_lock(&st.print_lock);
	fprintf(stderr, "stress: FAILURE seed %#" PRIx64 " (UHMM_STRESS_SEED=%#" PRIx64
			" UHMM_STRESS_THREADS=%u UHMM_STRESS_OPS=%lu%s) thread %u op %lu: ",
		st.seed, st.seed, st.nthreads, st.nops, st.inject ? ", fault injection" : "", w->id,
		w->idx);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	for (int r = 0; r < STRESS_REGIONS; r++)
		fprintf(stderr, "  region %d: [%#lx, %#lx) %s%s\n", r, w->reg[r].addr,
			w->reg[r].addr + w->reg[r].len, w->reg[r].ro ? "ro" : "rw",
			w->reg[r].thp ? " thp" : "");
	if (!atomic_exchange(&st.failed, true)) {
		written = log_write(w, path, sizeof(path));
		fprintf(stderr, "stress: thread %u's last %lu operations are in %s\n", w->id,
			st_min(w->nlog, STRESS_LOG_MAX),
			written ? written : "(the log file could not be written)");
	}
	pthread_mutex_unlock(&st.print_lock);
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

/*
 * cpu_read() that retries while injected allocation failures make it
 * fail with -ENOMEM (a device-private page it touches needs a RAM page).
 */
static int cpu_read_retry(struct worker *w, struct mm_struct *mm, unsigned long addr, void *buf,
			  unsigned long len)
{
	int ret;

	for (int i = 0; i < STRESS_RETRIES; i++) {
		ret = cpu_read(mm, addr, buf, len);
		if (ret != -ENOMEM || !st.inject)
			break;
	}
	(void)w;
	return ret;
}

/*
 * After a write that failed part way (an injected failure), each byte of
 * [off, off + len) must hold what it held or what was written (@wrote);
 * the shadow takes what is there.
 */
static bool settle_partial_write(struct worker *w, const char *what, struct region *r,
				 unsigned long off, const uint8_t *wrote, unsigned long len)
{
	int ret = cpu_read_retry(w, w->mm, r->addr + off, w->buf2, len);

	if (ret) {
		fail(w, "%s: cpu_read after the failure = %d", what, ret);
		return false;
	}
	for (unsigned long i = 0; i < len; i++) {
		if (w->buf2[i] != wrote[i] && w->buf2[i] != r->shadow[off + i]) {
			fail(w, "%s: byte at %#lx is %#x: neither what it held (%#x) nor what was "
				"written (%#x)",
			     what, r->addr + off + i, w->buf2[i], r->shadow[off + i], wrote[i]);
			return false;
		}
	}
	memcpy(r->shadow + off, w->buf2, len);
	return true;
}

static bool inval_log_record(struct mmu_interval_notifier *sub,
			     const struct mmu_notifier_range *range, unsigned long cur_seq)
{
	struct inval_log *log = container_of(sub, struct inval_log, sub);

	mmu_interval_set_seq(sub, cur_seq);
	pthread_mutex_lock(&log->lock);
	log->ring[log->n % INVAL_LOG_SIZE].start = range->start;
	log->ring[log->n % INVAL_LOG_SIZE].end = range->end;
	log->ring[log->n % INVAL_LOG_SIZE].event = (int)range->event;
	log->n++;
	pthread_mutex_unlock(&log->lock);
	return true;
}

static const struct mmu_interval_notifier_ops inval_log_ops = { .invalidate = inval_log_record };

static uint32_t inval_log_count(unsigned int mm_idx)
{
	struct inval_log *log = &st.inval[mm_idx];
	uint32_t n;

	pthread_mutex_lock(&log->lock);
	n = log->n;
	pthread_mutex_unlock(&log->lock);
	return n;
}

/*
 * Did an invalidation other than a migration (a mirror's own migration
 * leaves its mappings alone, and migrations land exactly on their range,
 * which the model accounts for) reach a page of [pg, pg + n) of @r since
 * the model recorded it as mapped by mirror @m?  Not when the log no
 * longer reaches back that far.
 */
static bool inval_log_explains(struct worker *w, const struct region *r, unsigned long pg,
			       unsigned long n, unsigned int m)
{
	struct inval_log *log = &st.inval[w->mm_idx];
	bool found = false;

	pthread_mutex_lock(&log->lock);
	for (unsigned long i = pg; i < pg + n && !found; i++) {
		unsigned long addr = r->addr + (i << PAGE_SHIFT);
		uint32_t since = r->pm[i].yes_since[m];

		if (log->n - since > INVAL_LOG_SIZE)
			continue;
		for (uint32_t k = since; k != log->n && !found; k++)
			found = log->ring[k % INVAL_LOG_SIZE].event != MMU_NOTIFY_MIGRATE &&
				log->ring[k % INVAL_LOG_SIZE].start <= addr &&
				log->ring[k % INVAL_LOG_SIZE].end > addr;
	}
	pthread_mutex_unlock(&log->lock);
	return found;
}

/* Mirror @m surely maps page @i of @r now (since the operation @w runs began). */
static void dpt_mark_yes(const struct worker *w, struct region *r, unsigned long i, unsigned int m)
{
	r->pm[i].dpt_yes |= (uint8_t)(1u << m);
	r->pm[i].dpt_no &= (uint8_t)~(1u << m);
	r->pm[i].yes_since[m] = w->op_seq;
}

/* Forget what any mirror maps in pages [pg, pg + n) of @r except (keep) minor @keep. */
static void dpt_maybe(struct region *r, unsigned long pg, unsigned long n, int keep)
{
	for (unsigned long i = pg; i < pg + n; i++) {
		uint8_t k = keep >= 0 ? (uint8_t)(1u << keep) : 0;

		r->pm[i].dpt_yes &= k;
		r->pm[i].dpt_no &= k;
	}
}

/*
 * An operation on part of a large folio may split it (or split the PMD
 * mapping it): Linux then invalidates the whole folio's (the whole 2 MiB)
 * range with MMU_NOTIFY_CLEAR, and every mirror, the caller's too, drops
 * those pages.  So in a region that may hold large folios, any operation
 * that may split leaves every mirror's entries of the region unknown.
 */
static void split_may_invalidate(struct region *r)
{
	if (r->large)
		dpt_maybe(r, 0, r->len >> PAGE_SHIFT, -1);
}

static void dpt_none(struct region *r, unsigned long pg, unsigned long n)
{
	for (unsigned long i = pg; i < pg + n; i++) {
		r->pm[i].dpt_yes = 0;
		r->pm[i].dpt_no = (1u << STRESS_NR_DEV) - 1;
	}
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
	r->large = thp;
	free(r->shadow);
	free(r->pm);
	r->shadow = calloc(1, len);
	r->pm = calloc(len >> PAGE_SHIFT, sizeof(*r->pm));
	if (!r->shadow || !r->pm) {
		fail(w, "out of host memory");
		return false;
	}
	dpt_none(r, 0, region_pages(r));
	return true;
}

/* A random byte range [*off, *off + *len) of @r, at most @max bytes. */
static void pick_bytes(struct worker *w, struct region *r, unsigned long max, unsigned long *off,
		       unsigned long *len)
{
	*off = rnd_below(w, r->len);
	*len = 1 + rnd_below(w, st_min(max, r->len - *off));
}

/* A random page range of @r (page index *pg, *npages): sometimes all of it. */
static void pick_pages(struct worker *w, struct region *r, unsigned long *pg, unsigned long *npages)
{
	unsigned long n = region_pages(r);

	if (rnd_below(w, 4) == 0) {
		*pg = 0;
		*npages = n;
		return;
	}
	*pg = rnd_below(w, n);
	*npages = 1 + rnd_below(w, st_min(32, n - *pg));
}

/* ------------------------------------------------------------------ */
/* Snapshots: what a page's HMM_DMIRROR_PROT_* byte says               */
/* ------------------------------------------------------------------ */

/*
 * The permission bits of a snapshot byte of @r must make sense: an entry
 * is readable or writable (not both bits), never writable in a read-only
 * region, PMD-sized only where a PMD can map (THP regions), never PUD.
 */
static bool snap_perm_ok(const struct region *r, uint8_t b)
{
	uint8_t perm = b & (HMM_DMIRROR_PROT_READ | HMM_DMIRROR_PROT_WRITE);

	if (b == HMM_DMIRROR_PROT_NONE)
		return true;
	if (b == HMM_DMIRROR_PROT_ERROR || (b & HMM_DMIRROR_PROT_PUD))
		return false;
	if (perm != HMM_DMIRROR_PROT_READ && perm != HMM_DMIRROR_PROT_WRITE)
		return false;
	if (r->ro && perm == HMM_DMIRROR_PROT_WRITE)
		return false;
	if ((b & HMM_DMIRROR_PROT_PMD) && !r->thp)
		return false;
	return true;
}

/*
 * The locations a page may be in, seen through minor @s's SNAPSHOT as @b.
 * hmm_range_fault() without HMM_PFN_REQ_FAULT reports another device's
 * device-private page as nothing (an invalid entry), as Linux does.
 */
static unsigned int snap_locs(uint8_t b, unsigned int s)
{
	unsigned int type = b & 0xF0;

	if (b == HMM_DMIRROR_PROT_NONE) {
		unsigned int set = LOCBIT(LOC_EMPTY);

		for (unsigned int p = 0; p < STRESS_NR_DEV; p++)
			if (is_private_minor(p) && p != s)
				set |= LOCBIT(LOC_DEV + p);
		return set;
	}
	switch (type) {
	case HMM_DMIRROR_PROT_ZERO:
		return LOCBIT(LOC_EMPTY);
	case 0:
		/*
		 * test_hmm's dmirror_mkentry() knows only the small zero
		 * page (is_zero_pfn()): the huge zero page mapped by a PMD
		 * reads as a plain read-only PMD, as in Linux.
		 */
		if ((b & HMM_DMIRROR_PROT_PMD) && !(b & HMM_DMIRROR_PROT_WRITE))
			return LOCBIT(LOC_SYS) | LOCBIT(LOC_EMPTY);
		return LOCBIT(LOC_SYS);
	case HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL:
		return is_private_minor(s) ? LOCBIT(LOC_DEV + s) : 0;
	case HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL:
		return is_private_minor(s) ? 0 : LOCBIT(LOC_DEV + s);
	case HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE:
		return s != STRESS_COHERENT ? LOCBIT(LOC_DEV + STRESS_COHERENT) : 0;
	default:
		return 0;
	}
}

/* Is @addr of @w's mm mapped to the huge zero folio?  (Read through pagemap.) */
static bool huge_zero_at(struct worker *w, unsigned long addr)
{
	uint64_t e = 0;

	if (mm_pagemap_read(w->mm, addr & PAGE_MASK, 1, &e) || !(e & PM_PRESENT))
		return false;
	return is_huge_zero_folio(page_folio(pfn_to_page((unsigned long)(e & PM_PFRAME_MASK))));
}

/* Does the shadow say page @pg of @r holds only zeroes? */
static bool page_all_zero(const struct region *r, unsigned long pg)
{
	const uint8_t *b = r->shadow + (pg << PAGE_SHIFT);

	for (unsigned long i = 0; i < PAGE_SIZE; i++)
		if (b[i])
			return false;
	return true;
}

/*
 * May page @pg of @r, which the model has in RAM, hold the zero page now?
 * Splitting a large anonymous folio (a partial MADV_FREE, a migration of
 * part of it) maps the shared zero page over each page that holds only
 * zeroes, as Linux 6.12+ does, and any earlier operation may have split it.
 */
static bool may_be_split_zero_page(const struct region *r, unsigned long pg)
{
	return r->pm[pg].loc == LOC_SYS && r->large && page_all_zero(r, pg);
}

/*
 * Find out where pages [pg, pg + n) of @r are, from snapshots through
 * minors 0 and 1 (between them they tell every location apart), check each
 * is in its @allowed set of locations (LOCBIT()s; NULL: any), and record
 * it.  Return: false (and fail()) on a snapshot error or a page elsewhere.
 */
static bool observe(struct worker *w, struct region *r, unsigned long pg, unsigned long n,
		    const unsigned int *allowed, const char *what)
{
	struct hmm_dmirror_cmd cmd;

	for (unsigned int s = 0; s < 2; s++) {
		int ret = dmirror_cmd(w->dm[s], HMM_DMIRROR_SNAPSHOT, r->addr + (pg << PAGE_SHIFT),
				 w->snap[s], n, &cmd);

		if (ret || cmd.cpages != n) {
			fail(w, "%s: SNAPSHOT(minor %u, %#lx, %lu pages) = %d, cpages %" PRIu64,
			     what, s, r->addr + (pg << PAGE_SHIFT), n, ret, cmd.cpages);
			return false;
		}
	}
	for (unsigned long i = 0; i < n; i++) {
		uint8_t b0 = w->snap[0][i], b1 = w->snap[1][i];
		unsigned int set = snap_locs(b0, 0) & snap_locs(b1, 1);
		struct page_model *p = &r->pm[pg + i];
		unsigned int loc;

		/*
		 * Only a read-only PMD leaves a choice (empty or sys): the huge
		 * zero page and a THP (MADV_COLLAPSE of an all-empty read-only
		 * range makes one) look the same to test_hmm.  The page's own
		 * PFN tells them apart.
		 */
		if (set & (set - 1))
			set = huge_zero_at(w, r->addr + ((pg + i) << PAGE_SHIFT)) ? LOCBIT(LOC_EMPTY)
										  : LOCBIT(LOC_SYS);
		if (!snap_perm_ok(r, b0) || !snap_perm_ok(r, b1) || !set || (set & (set - 1))) {
			fail(w, "%s: page %#lx: snapshots %#x (minor 0) and %#x (minor 1) do not "
				"make sense (model: %s)",
			     what, r->addr + ((pg + i) << PAGE_SHIFT), b0, b1, loc_names[p->loc]);
			return false;
		}
		loc = (unsigned int)__builtin_ctz(set);
		if (allowed && loc == LOC_EMPTY && may_be_split_zero_page(r, pg + i))
			goto moved;
		if (allowed && !(allowed[i] & set)) {
			fail(w, "%s: page %#lx is in %s (snapshots %#x, %#x), the model says it was "
				"in %s and may now be in %#x (bits: empty sys dev0 dev1 dev2)",
			     what, r->addr + ((pg + i) << PAGE_SHIFT), loc_names[loc], b0, b1,
			     loc_names[p->loc], allowed[i]);
			return false;
		}
moved:
		if (p->loc != loc) {
			/* It moved: no mirror maps the old page; the new may be mapped. */
			dpt_maybe(r, pg + i, 1, -1);
			p->loc = (uint8_t)loc;
		}
	}
	return true;
}

/* The pages of @r (all of them in a THP region) one access at [pg, pg + n) may move. */
static void access_span(const struct region *r, unsigned long pg, unsigned long n,
			unsigned long *first, unsigned long *count)
{
	if (r->thp) {
		/* A PMD fault or a PMD-mapped device folio moves 2 MiB at once. */
		*first = 0;
		*count = region_pages(r);
	} else {
		*first = pg;
		*count = n;
	}
}

/*
 * Where a page at @old may be after a CPU (or populate) access: a read
 * brings a device-private page back to RAM; a write does too, fills a
 * page that had none, and may copy a device-coherent page whose PTE is
 * write-protected (after a fork) into RAM.  @touched: the access covers
 * the page (else it is only beside it, in the same PMD).
 */
static unsigned int after_cpu_access(uint8_t old, bool write, bool touched)
{
	unsigned int set = LOCBIT(old);

	if (loc_is_private_dev(old))
		set = touched ? LOCBIT(LOC_SYS) : set | LOCBIT(LOC_SYS);
	else if (write && old == LOC_EMPTY)
		set = touched ? LOCBIT(LOC_SYS) : set | LOCBIT(LOC_SYS);
	else if (write && old >= LOC_DEV && touched)
		set |= LOCBIT(LOC_SYS);
	return set;
}

/*
 * After a CPU or populate access to pages [pg, pg + n) of @r, which
 * returned @ret: observe the pages it may have moved, unless the model
 * already knows (no device page nearby, no THP fault possible).
 */
static bool settle_access(struct worker *w, struct region *r, unsigned long pg, unsigned long n,
			  bool write, int ret, const char *what)
{
	unsigned long first, count;
	unsigned int allowed[STRESS_MAX_PAGES];
	bool need = st.inject && ret;

	access_span(r, pg, n, &first, &count);
	split_may_invalidate(r);
	for (unsigned long i = first; i < first + count; i++) {
		bool touched = i >= pg && i < pg + n;
		uint8_t old = r->pm[i].loc;

		allowed[i - first] = after_cpu_access(old, write, touched);
		if (ret && touched) /* a failed access may have stopped anywhere */
			allowed[i - first] |= LOCBIT(old);
		if (old >= LOC_DEV || (write && old == LOC_EMPTY && (r->thp || ret)))
			need = true;
	}
	if (ret && !st.inject)
		return true; /* nothing was accessed (-EFAULT: checked first) */
	if (!need) {
		/* Exactly known: only empty pages filled by a write (small region). */
		if (write && !ret)
			for (unsigned long i = pg; i < pg + n; i++)
				if (r->pm[i].loc == LOC_EMPTY) {
					r->pm[i].loc = LOC_SYS;
					dpt_maybe(r, i, 1, -1);
				}
		return true;
	}
	if (write)
		dpt_maybe(r, pg, n, -1); /* a copy-on-write invalidates */
	return observe(w, r, first, count, allowed, what);
}

/*
 * observe() after a device READ or WRITE of pages [pg, pg + n) of @r,
 * which may now be in @allowed.  In a THP region the fault may fill, or
 * bring back from the device, the whole PMD, so the region's other pages
 * may move as a CPU access beside them would.
 */
static bool observe_device_access(struct worker *w, struct region *r, unsigned long pg,
				  unsigned long n, const unsigned int *allowed, bool write,
				  const char *what)
{
	unsigned int all[STRESS_MAX_PAGES];

	if (!r->thp)
		return observe(w, r, pg, n, allowed, what);
	for (unsigned long i = 0; i < region_pages(r); i++)
		all[i] = i >= pg && i < pg + n ? allowed[i - pg]
					       : after_cpu_access(r->pm[i].loc, write, false);
	return observe(w, r, 0, region_pages(r), all, what);
}

/* ------------------------------------------------------------------ */
/* Fork, audit, release: with the gate held for writing                */
/* ------------------------------------------------------------------ */

/* After a fork of @mm (or its failure): the child may have moved the parent's pages. */
static bool settle_fork(struct mm_struct *mm, bool forked)
{
	for (unsigned int t = 0; t < st.nthreads; t++) {
		struct worker *o = &st.w[t];

		if (o->mm != mm)
			continue;
		for (int i = 0; i < STRESS_REGIONS; i++) {
			struct region *r = &o->reg[i];
			unsigned int allowed[STRESS_MAX_PAGES];
			unsigned long n;

			if (!r->pm)
				continue;
			n = region_pages(r);
			for (unsigned long p = 0; p < n; p++) {
				uint8_t old = r->pm[p].loc;

				/*
				 * The child's access to a device-private page
				 * migrates the folio, and with it the
				 * parent's mapping (the rmap walk unmaps both).
				 */
				allowed[p] = LOCBIT(old) | (loc_is_private_dev(old) ? LOCBIT(LOC_SYS) : 0);
				/*
				 * Linux's copy_page_range() invalidates every
				 * COW VMA that has an anon_vma: the mirrors
				 * drop those pages; a VMA with only zero
				 * pages has none and keeps its entries.
				 */
				if (forked && old != LOC_EMPTY)
					dpt_none(r, p, 1);
				else
					dpt_maybe(r, p, 1, -1);
			}
			/* Observed through this thread's own mirrors (same mm). */
			if (!observe(o, r, 0, n, allowed, "after a fork"))
				return false;
		}
	}
	return true;
}

/* mm_fork() the mm of @w with every other operation held off, and check the child. */
static bool do_fork(struct worker *w)
{
	struct mm_struct *child = mm_fork(w->mm);
	bool ok = true;

	log_op(w, OP_FORK, -1, 0, 0, 0, 0);
	if (IS_ERR_OR_NULL(child)) {
		log_ret(w, PTR_ERR(child));
		/* Linux: dup_mmap() fails with -ENOMEM when it cannot allocate; the parent is intact. */
		if (st.inject && PTR_ERR(child) == -ENOMEM) {
			w->op_failed++;
			return settle_fork(w->mm, false);
		}
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
			uint64_t data = rnd(w);
			int ret;

			if (!r->shadow)
				continue;
			pick_bytes(w, r, 4 * PAGE_SIZE, &off, &len);
			ret = cpu_read_retry(w, child, r->addr + off, w->buf, len);
			log_op(w, OP_FORK, -1, r->addr + off, len, 1, 0);
			log_ret(w, ret);
			if (ret) {
				fail(w, "child cpu_read(%#lx, %#lx) = %d", r->addr + off, len, ret);
				ok = false;
				break;
			}
			ok = check_bytes(w, "child after fork", r, off, w->buf, len);
			if (!ok || r->ro)
				continue;
			/* The child writes: the parent must still read the shadow. */
			fill_bytes(w->buf, len, data);
			ret = cpu_write(child, r->addr + off, w->buf, len);
			log_op(w, OP_FORK, -1, r->addr + off, len, 2, data);
			log_ret(w, ret);
			if (ret && !(st.inject && ret == -ENOMEM)) {
				fail(w, "child cpu_write(%#lx, %#lx) = %d", r->addr + off, len,
				     ret);
				ok = false;
				break;
			}
			ret = cpu_read_retry(w, w->mm, r->addr + off, w->buf, len);
			if (ret) {
				fail(w, "parent cpu_read after child write = %d", ret);
				ok = false;
				break;
			}
			ok = check_bytes(w, "parent after the child wrote", r, off, w->buf, len);
		}
	}
	/* The child exits while the parent goes on: its mmput() unmaps everything. */
	mmput(child);
	return ok && settle_fork(w->mm, true);
}

/*
 * HMM_DMIRROR_RELEASE on minor @m: every chunk of the device is evicted
 * (every thread's pages on it go back to system RAM) and freed.
 */
static bool do_release(struct worker *w, unsigned int m)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	log_op(w, OP_RELEASE, (int)m, 0, 0, 0, 0);
	/* test_hmm checks addr and npages of every command, RELEASE's too. */
	ret = dmirror_cmd(w->dm[m], HMM_DMIRROR_RELEASE, w->reg[0].addr, NULL, 1, &cmd);
	log_ret(w, ret);
	if (ret) {
		/* Eviction allocates with __GFP_NOFAIL: it cannot fail, injected or not. */
		fail(w, "dmirror RELEASE(minor %u) = %d", m, ret);
		return false;
	}
	for (unsigned int t = 0; t < st.nthreads; t++) {
		struct worker *o = &st.w[t];

		for (int i = 0; i < STRESS_REGIONS; i++) {
			struct region *r = &o->reg[i];
			unsigned int allowed[STRESS_MAX_PAGES];
			unsigned long n;

			if (!r->pm)
				continue;
			n = region_pages(r);
			for (unsigned long p = 0; p < n; p++) {
				uint8_t old = r->pm[p].loc;

				allowed[p] = old == LOC_DEV + m ? LOCBIT(LOC_SYS) : LOCBIT(old);
				if (old == LOC_DEV + m)
					dpt_none(r, p, 1); /* the chunk's pfns are forgotten, then unmapped */
			}
			if (!observe(o, r, 0, n, allowed, "after RELEASE"))
				return false;
		}
	}
	return true;
}

static bool do_audit(struct worker *w)
{
	int v = uhmm_audit(machine, stderr);
	int dv = dmirror_audit(st.mod, stderr);

	log_op(w, OP_AUDIT, -1, 0, 0, 0, 0);
	log_ret(w, v + dv);
	if (v || dv) {
		fail(w, "uhmm_audit found %d violations, dmirror_audit %d", v, dv);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Fault injection                                                     */
/* ------------------------------------------------------------------ */

static void fi_collect(void)
{
	unsigned long ram = uhmm_fail_page_alloc_count(machine);

	if ((st.fi_phase - 1) % 4 == 1)
		st.fi_large += ram;
	else
		st.fi_ram += ram;
	for (unsigned int d = 0; d < STRESS_NR_DEV; d++)
		st.fi_dev += dmirror_fail_devmem_alloc_count(st.mod, d);
}

/*
 * The next injection rule, in turns: system RAM of every order at a low
 * rate; large folios only (min_order HPAGE_PMD_ORDER) at a high one;
 * device memory; all of them.  Called with the gate held for writing.
 */
static void fi_next_phase(void)
{
	struct fault_attr ram = {.probability = 5, .times = -1, .seed = st.seed ^ st.fi_phase};
	struct fault_attr large = {
		.probability = 80, .times = -1, .min_order = HPAGE_PMD_ORDER, .seed = st.seed + st.fi_phase};
	struct fault_attr dev = {.probability = 20, .times = -1, .seed = st.seed * 3 + st.fi_phase};
	unsigned int kind;

	if (st.fi_phase)
		fi_collect();
	kind = st.fi_phase++ % 4;
	uhmm_fail_page_alloc(machine, kind == 0 || kind == 3 ? &ram : kind == 1 ? &large : NULL);
	for (unsigned int d = 0; d < STRESS_NR_DEV; d++)
		dmirror_fail_devmem_alloc(st.mod, d, kind >= 2 ? &dev : NULL);
}

static void fi_stop(void)
{
	fi_collect();
	uhmm_fail_page_alloc(machine, NULL);
	for (unsigned int d = 0; d < STRESS_NR_DEV; d++)
		dmirror_fail_devmem_alloc(st.mod, d, NULL);
}

/* ------------------------------------------------------------------ */
/* The operations                                                      */
/* ------------------------------------------------------------------ */

static bool op_cpu_write(struct worker *w, struct region *r)
{
	unsigned long off, len;
	uint64_t data = rnd(w);
	int ret;

	pick_bytes(w, r, 3 * PAGE_SIZE, &off, &len);
	fill_bytes(w->buf, len, data);
	log_op(w, OP_CPU_WRITE, -1, r->addr + off, len, 0, data);
	ret = cpu_write(w->mm, r->addr + off, w->buf, len);
	log_ret(w, ret);
	if (r->ro) {
		if (ret != -EFAULT) {
			fail(w, "cpu_write to a read-only region = %d, want -EFAULT", ret);
			return false;
		}
		/* Nothing may have changed (the VMA check comes before any byte). */
		ret = cpu_read_retry(w, w->mm, r->addr + off, w->buf, len);
		if (ret) {
			fail(w, "cpu_read after a failed write = %d", ret);
			return false;
		}
		return check_bytes(w, "after a refused cpu_write", r, off, w->buf, len) &&
		       settle_access(w, r, off >> PAGE_SHIFT,
				     ((off + len - 1) >> PAGE_SHIFT) - (off >> PAGE_SHIFT) + 1, false,
				     0, "cpu_read after a refused cpu_write");
	}
	if (ret == -ENOMEM && st.inject) {
		/* VM_FAULT_OOM: the stores before the failing page happened. */
		w->op_failed++;
		if (!settle_partial_write(w, "cpu_write that failed with -ENOMEM", r, off, w->buf,
					  len))
			return false;
	} else if (ret) {
		fail(w, "cpu_write(%#lx, %#lx) = %d", r->addr + off, len, ret);
		return false;
	} else {
		memcpy(r->shadow + off, w->buf, len);
	}
	return settle_access(w, r, off >> PAGE_SHIFT,
			     ((off + len - 1) >> PAGE_SHIFT) - (off >> PAGE_SHIFT) + 1, true, ret,
			     "cpu_write");
}

static bool op_cpu_read(struct worker *w, struct region *r)
{
	unsigned long off, len;
	int ret;

	pick_bytes(w, r, 6 * PAGE_SIZE, &off, &len);
	log_op(w, OP_CPU_READ, -1, r->addr + off, len, 0, 0);
	ret = cpu_read(w->mm, r->addr + off, w->buf, len);
	log_ret(w, ret);
	if (ret == -ENOMEM && st.inject) {
		w->op_failed++;
	} else if (ret) {
		fail(w, "cpu_read(%#lx, %#lx) = %d", r->addr + off, len, ret);
		return false;
	} else if (!check_bytes(w, "cpu_read", r, off, w->buf, len)) {
		return false;
	}
	return settle_access(w, r, off >> PAGE_SHIFT,
			     ((off + len - 1) >> PAGE_SHIFT) - (off >> PAGE_SHIFT) + 1, false, ret,
			     "cpu_read");
}

static bool op_atomic_add(struct worker *w, struct region *r)
{
	uint64_t val = rnd(w), old = 0, want;
	unsigned long off = rnd_below(w, r->len / 8) * 8;
	int ret;

	log_op(w, OP_ATOMIC_ADD, -1, r->addr + off, 8, 0, val);
	ret = cpu_atomic_fetch_add_u64(w->mm, r->addr + off, val, &old);
	log_ret(w, ret);
	if (r->ro) {
		if (ret != -EFAULT) {
			fail(w, "atomic add on a read-only region = %d, want -EFAULT", ret);
			return false;
		}
		return true;
	}
	memcpy(&want, r->shadow + off, 8);
	if (ret == -ENOMEM && st.inject) {
		w->op_failed++;
		/* Nothing was added. */
		if (cpu_read_retry(w, w->mm, r->addr + off, &old, 8) || old != want) {
			fail(w, "atomic add failed with -ENOMEM but %#lx now holds %#" PRIx64
				", the shadow says %#" PRIx64,
			     r->addr + off, old, want);
			return false;
		}
		return settle_access(w, r, off >> PAGE_SHIFT, 1, true, ret, "atomic add");
	}
	if (ret) {
		fail(w, "cpu_atomic_fetch_add_u64(%#lx) = %d", r->addr + off, ret);
		return false;
	}
	if (old != want) {
		fail(w, "atomic add at %#lx: old %#" PRIx64 ", the shadow says %#" PRIx64,
		     r->addr + off, old, want);
		return false;
	}
	want += val;
	memcpy(r->shadow + off, &want, 8);
	return settle_access(w, r, off >> PAGE_SHIFT, 1, true, 0, "atomic add");
}

static bool op_remap(struct worker *w, struct region *r)
{
	int ret;

	log_op(w, OP_REMAP, -1, r->addr, r->len, 0, 0);
	ret = mm_munmap(w->mm, r->addr, r->len);
	log_ret(w, ret);
	if (ret) {
		fail(w, "mm_munmap(%#lx, %#lx) = %d", r->addr, r->len, ret);
		return false;
	}
	return region_map(w, r);
}

/* Resize the per-page model and shadow of @r to @new_len, moved to @new_addr. */
static bool region_resize(struct worker *w, struct region *r, unsigned long new_addr,
			  unsigned long new_len)
{
	unsigned long old_pages = region_pages(r), new_pages = new_len >> PAGE_SHIFT;
	uint8_t *shadow = realloc(r->shadow, new_len);
	struct page_model *pm = realloc(r->pm, new_pages * sizeof(*pm));

	if (!shadow || !pm) {
		fail(w, "out of host memory");
		return false;
	}
	r->shadow = shadow;
	r->pm = pm;
	if (r->large) /* a shrink splits a PMD or a folio */
		dpt_maybe(r, 0, st_min(old_pages, new_pages), -1);
	if (new_len > r->len) {
		memset(r->shadow + r->len, 0, new_len - r->len);
		memset(r->pm + old_pages, 0, (new_pages - old_pages) * sizeof(*pm));
		dpt_none(r, old_pages, new_pages - old_pages);
	}
	if (new_addr != r->addr) {
		/* The old range was invalidated; nothing maps the new one yet. */
		dpt_none(r, 0, new_pages);
		/*
		 * A PMD can map only at a 2 MiB aligned address.  A region
		 * moved elsewhere gives VM_HUGEPAGE up: merged with another
		 * thread's VMA, a THP fault could fill both threads' pages.
		 */
		if (r->thp && !IS_ALIGNED(new_addr, HPAGE_PMD_SIZE)) {
			int ret = mm_madvise(w->mm, new_addr, new_len, MADV_NOHUGEPAGE);

			if (ret) {
				fail(w, "MADV_NOHUGEPAGE(%#lx) after mremap = %d", new_addr, ret);
				return false;
			}
			r->thp = false;
		}
	}
	r->addr = new_addr;
	r->len = new_len;
	return true;
}

/*
 * mremap() of a region: shrink it (in place), grow it (in place when the
 * space after it is free, else it moves: MREMAP_MAYMOVE), or move it onto
 * a range the thread mapped for it (MREMAP_MAYMOVE | MREMAP_FIXED, which
 * unmaps the destination first).  Pages move with their page-table entries
 * (device-private entries too): their bytes and locations go with them.
 */
static bool op_mremap(struct worker *w, struct region *r)
{
	unsigned long pages = region_pages(r), new_len, dest = 0;
	unsigned int kind = (unsigned int)rnd_below(w, 3);
	int flags = MREMAP_MAYMOVE;
	long ret;

	if (kind == 0 && pages > 1) {
		new_len = (1 + rnd_below(w, pages - 1)) << PAGE_SHIFT;
	} else if (kind == 1 || pages > HPAGE_PMD_NR + STRESS_MAX_GROW_PAGES) {
		if (pages >= STRESS_MAX_PAGES - STRESS_MAX_GROW_PAGES)
			new_len = r->len; /* big enough: just move it */
		else
			new_len = r->len + ((1 + rnd_below(w, STRESS_MAX_GROW_PAGES)) << PAGE_SHIFT);
		kind = 1;
	} else {
		long d;

		new_len = r->len;
		d = mm_mmap(w->mm, 0, new_len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, NULL, 0);
		if (d <= 0) {
			fail(w, "mm_mmap(%#lx) for mremap's destination = %ld", new_len, d);
			return false;
		}
		dest = (unsigned long)d;
		flags |= MREMAP_FIXED;
		kind = 2;
	}
	log_op(w, OP_MREMAP, -1, r->addr, r->len, new_len, dest);
	ret = mm_mremap(w->mm, r->addr, r->len, new_len, flags, dest);
	log_ret(w, ret);
	if (ret < 0 && st.inject && ret == -ENOMEM) {
		/* Out of page tables: Linux moves back what it moved; the old range is intact. */
		w->op_failed++;
		if (dest && mm_munmap(w->mm, dest, new_len)) {
			fail(w, "mm_munmap of mremap's unused destination failed");
			return false;
		}
		return true;
	}
	if (ret < 0 || (unsigned long)ret & ~PAGE_MASK) {
		fail(w, "mm_mremap(%#lx, %#lx -> %#lx, %#x, %#lx) = %ld", r->addr, r->len, new_len,
		     flags, dest, ret);
		return false;
	}
	if ((kind == 0 && (unsigned long)ret != r->addr) || (kind == 2 && (unsigned long)ret != dest)) {
		fail(w, "mm_mremap(%#lx, %#lx -> %#lx, %#x, %#lx) = %#lx, the wrong address",
		     r->addr, r->len, new_len, flags, dest, ret);
		return false;
	}
	return region_resize(w, r, (unsigned long)ret, new_len);
}

static bool op_mprotect(struct worker *w, struct region *r)
{
	int prot = r->ro ? PROT_READ | PROT_WRITE : PROT_READ;
	int ret;

	log_op(w, OP_MPROTECT, -1, r->addr, r->len, (unsigned long)prot, 0);
	/* Out of page tables (a PMD split) is -ENOMEM in Linux; try again then. */
	for (int i = 0; i < STRESS_RETRIES; i++) {
		ret = mm_mprotect(w->mm, r->addr, r->len, prot);
		if (ret != -ENOMEM || !st.inject)
			break;
		w->op_failed++;
	}
	log_ret(w, ret);
	if (ret) {
		fail(w, "mm_mprotect(%#lx, %#lx) = %d", r->addr, r->len, ret);
		return false;
	}
	r->ro = !r->ro;
	/* change_protection() invalidates from the first populated PMD on: every mapped page. */
	dpt_none(r, 0, region_pages(r));
	return true;
}

static bool op_madvise(struct worker *w, struct region *r)
{
	static const int small_advice[] = {
		MADV_DONTNEED, MADV_DONTNEED, MADV_DONTNEED, MADV_FREE, MADV_POPULATE_READ,
		MADV_POPULATE_WRITE, MADV_COLD, MADV_PAGEOUT,
	};
	static const int thp_advice[] = {MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_COLLAPSE};
	unsigned long pg, n, addr;
	int advice, ret, want = 0;
	bool has_dev = false;

	if (r->thp && rnd_below(w, 4) == 0) {
		advice = thp_advice[rnd_below(w, 3)];
		pg = 0;
		n = region_pages(r);
	} else {
		advice = small_advice[rnd_below(w, sizeof(small_advice) / sizeof(small_advice[0]))];
		pick_pages(w, r, &pg, &n);
	}
	addr = r->addr + (pg << PAGE_SHIFT);
	/* (Only COLLAPSE looks at it: the aligned 2 MiB it would collapse.) */
	for (unsigned long i = pg; i < pg + n; i++) {
		unsigned long a = r->addr + (i << PAGE_SHIFT);

		if (a >= ALIGN(addr, HPAGE_PMD_SIZE) &&
		    a < ALIGN_DOWN(addr + (n << PAGE_SHIFT), HPAGE_PMD_SIZE))
			has_dev |= r->pm[i].loc >= LOC_DEV;
	}
	if (advice == MADV_POPULATE_WRITE && r->ro)
		want = -EINVAL; /* GUP's check_vma_flags() refuses; MADV_POPULATE_* says -EINVAL */
	split_may_invalidate(r);
	log_op(w, OP_MADVISE, -1, addr, n << PAGE_SHIFT, (unsigned long)advice, 0);
	ret = mm_madvise(w->mm, addr, n << PAGE_SHIFT, advice);
	log_ret(w, ret);

	switch (advice) {
	case MADV_DONTNEED:
		if (ret) {
			fail(w, "MADV_DONTNEED(%#lx, %lu pages) = %d", addr, n, ret);
			return false;
		}
		memset(r->shadow + (pg << PAGE_SHIFT), 0, n << PAGE_SHIFT);
		for (unsigned long i = pg; i < pg + n; i++)
			r->pm[i].loc = LOC_EMPTY;
		dpt_none(r, pg, n); /* the zap invalidates the range */
		return true;
	case MADV_FREE:
		/*
		 * The pages become lazily freeable: reclaim may discard them
		 * while clean, but nothing in this test reclaims
		 * (uhmm_drop_lazyfree() is never called), so they keep their
		 * bytes, and a write makes them dirty again anyway.
		 */
		if (ret) {
			fail(w, "MADV_FREE(%#lx, %lu pages) = %d", addr, n, ret);
			return false;
		}
		dpt_maybe(r, pg, n, -1); /* madvise_free invalidates the range */
		return true;
	case MADV_POPULATE_READ:
	case MADV_POPULATE_WRITE:
		if (want) {
			if (ret != want) {
				fail(w, "MADV_POPULATE_WRITE of a read-only region = %d, want %d",
				     ret, want);
				return false;
			}
			return true;
		}
		if (ret == -ENOMEM && st.inject) {
			w->op_failed++; /* VM_FAULT_OOM: -ENOMEM, as Linux */
		} else if (ret) {
			fail(w, "MADV_POPULATE_%s(%#lx, %lu pages) = %d",
			     advice == MADV_POPULATE_WRITE ? "WRITE" : "READ", addr, n, ret);
			return false;
		}
		return settle_access(w, r, pg, n, advice == MADV_POPULATE_WRITE, ret,
				     "MADV_POPULATE");
	case MADV_COLLAPSE: {
		unsigned int allowed[STRESS_MAX_PAGES];

		/*
		 * 0, or: -EINVAL for what cannot be collapsed (a device page
		 * in the range: non-present, or a zone-device page), -EAGAIN
		 * (transient), -ENOMEM (no huge page).
		 */
		if (ret && ret != -EINVAL && ret != -EAGAIN && ret != -ENOMEM) {
			fail(w, "MADV_COLLAPSE(%#lx) = %d", addr, ret);
			return false;
		}
		if (!ret && has_dev) {
			fail(w, "MADV_COLLAPSE(%#lx) collapsed a range with device pages", addr);
			return false;
		}
		if (ret == -ENOMEM)
			w->op_failed++;
		for (unsigned long i = 0; i < n; i++) {
			uint8_t old = r->pm[i].loc;

			allowed[i] = LOCBIT(old) | (old == LOC_EMPTY ? LOCBIT(LOC_SYS) : 0);
		}
		dpt_maybe(r, 0, n, -1);
		return observe(w, r, 0, n, allowed, "MADV_COLLAPSE");
	}
	default: /* HUGEPAGE, NOHUGEPAGE, COLD, PAGEOUT */
		if (ret) {
			fail(w, "madvise(%#lx, %lu pages, %d) = %d", addr, n, advice, ret);
			return false;
		}
		return true;
	}
}

/* Is page @i of @r in mirror @m's device page table after the operation? -1: maybe. */
static int dpt_state(const struct region *r, unsigned long i, unsigned int m)
{
	if (r->pm[i].dpt_yes & (1u << m))
		return 1;
	if (r->pm[i].dpt_no & (1u << m))
		return 0;
	return -1;
}

static bool op_to_dev(struct worker *w, struct region *r, unsigned int m)
{
	unsigned int allowed[STRESS_MAX_PAGES];
	uint8_t before[STRESS_MAX_PAGES];
	unsigned long pg, n, addr;
	struct hmm_dmirror_cmd cmd;
	bool any_no = false, all_yes = true;
	int ret;

	pick_pages(w, r, &pg, &n);
	addr = r->addr + (pg << PAGE_SHIFT);
	for (unsigned long i = 0; i < n; i++) {
		uint8_t old = before[i] = r->pm[pg + i].loc;

		/*
		 * MIGRATE_VMA_SELECT_SYSTEM collects holes, the zero page and
		 * RAM pages; never device-private pages (another device's or
		 * its own) nor device-coherent ones.
		 */
		if (old == LOC_EMPTY || old == LOC_SYS)
			allowed[i] = LOCBIT(LOC_DEV + m) | (st.inject ? LOCBIT(old) : 0);
		else
			allowed[i] = LOCBIT(old);
	}
	log_op(w, OP_TO_DEV, (int)m, addr, n << PAGE_SHIFT, 0, 0);
	ret = dmirror_cmd(w->dm[m], HMM_DMIRROR_MIGRATE_TO_DEV, addr, w->buf, n, &cmd);
	log_ret(w, ret);
	if (ret && ret != -ENOENT) {
		fail(w, "MIGRATE_TO_DEV(minor %u, %#lx, %lu pages) = %d", m, addr, n, ret);
		return false;
	}
	/* Another device's mirrors saw the range invalidated (not this one's: its own migration). */
	for (unsigned int o = 0; o < STRESS_NR_DEV; o++)
		if (o != m)
			for (unsigned long i = pg; i < pg + n; i++) {
				r->pm[i].dpt_yes &= (uint8_t)~(1u << o);
				r->pm[i].dpt_no &= (uint8_t)~(1u << o);
			}
	if (!observe(w, r, pg, n, allowed, "MIGRATE_TO_DEV"))
		return false;
	split_may_invalidate(r);
	/*
	 * test_hmm returns 0 when its device page table maps every page of
	 * the range afterwards: the pages it migrated, and pages it did not
	 * migrate that it already mapped (its own pages, or any page it
	 * mapped through READ/WRITE: its own migration does not invalidate
	 * its mirror).  -ENOENT otherwise.
	 */
	for (unsigned long i = 0; i < n; i++) {
		struct page_model *p = &r->pm[pg + i];
		int in;

		if (p->loc == LOC_DEV + m && before[i] != p->loc) {
			dpt_mark_yes(w, r, pg + i, m);
			in = 1;
		} else {
			in = dpt_state(r, pg + i, m);
		}
		any_no |= in == 0;
		all_yes &= in == 1;
	}
	/*
	 * -ENOENT although the model has every page mapped by the device is
	 * accepted only when the invalidation log shows an invalidation the
	 * model could not foresee (see struct inval_log).
	 */
	if (all_yes && ret == -ENOENT && inval_log_explains(w, r, pg, n, m)) {
		w->to_dev_enoent_inval++;
		for (unsigned long i = pg; i < pg + n; i++)
			r->pm[i].dpt_yes &= (uint8_t)~(1u << m);
	} else if ((any_no && ret != -ENOENT) || (all_yes && ret)) {
		char pages[STRESS_MAX_PAGES * 4 + 1] = "", *c = pages;

		for (unsigned long i = 0; i < n && i < STRESS_MAX_PAGES; i++)
			c += sprintf(c, " %u%u%c", before[i], r->pm[pg + i].loc,
				     "n?y"[dpt_state(r, pg + i, m) + 1]);
		fail(w, "MIGRATE_TO_DEV(minor %u, %#lx, %lu pages) = %d (cpages %" PRIu64
			", the first page the device lacks), want %s; pages (location before, "
			"after, in the device's table):%s",
		     m, addr, n, ret, cmd.cpages,
		     any_no ? "-ENOENT (a page is not mapped by the device)" : "0", pages);
		return false;
	}
	if (ret == -ENOENT) {
		w->to_dev_enoent++;
		w->to_dev_enoent_known += any_no;
		return true;
	}
	if (cmd.cpages != n) {
		fail(w, "MIGRATE_TO_DEV(minor %u, %#lx, %lu pages): cpages %" PRIu64, m, addr, n,
		     cmd.cpages);
		return false;
	}
	for (unsigned long i = pg; i < pg + n; i++)
		dpt_mark_yes(w, r, i, m);
	return check_bytes(w, "MIGRATE_TO_DEV's read-back", r, pg << PAGE_SHIFT, w->buf,
			   n << PAGE_SHIFT);
}

static bool op_to_sys(struct worker *w, struct region *r, unsigned int m)
{
	unsigned int allowed[STRESS_MAX_PAGES];
	uint8_t before[STRESS_MAX_PAGES];
	unsigned long pg, n, addr, want = 0;
	struct hmm_dmirror_cmd cmd;
	bool ok;
	int ret;

	pick_pages(w, r, &pg, &n);
	addr = r->addr + (pg << PAGE_SHIFT);
	for (unsigned long i = 0; i < n; i++) {
		uint8_t old = before[i] = r->pm[pg + i].loc;

		/* Only this device's pages are selected (its pgmap owner). */
		if (old == LOC_DEV + m) {
			allowed[i] = LOCBIT(LOC_SYS) | (st.inject ? LOCBIT(old) : 0);
			want++;
		} else {
			allowed[i] = LOCBIT(old);
		}
	}
	log_op(w, OP_TO_SYS, (int)m, addr, n << PAGE_SHIFT, 0, 0);
	ret = dmirror_cmd(w->dm[m], HMM_DMIRROR_MIGRATE_TO_SYS, addr, w->buf, n, &cmd);
	log_ret(w, ret);
	/*
	 * As test_hmm: a page whose system page cannot be allocated (only
	 * with injection) stays on the device and is not counted; the
	 * command still returns 0.
	 */
	if (ret) {
		fail(w, "MIGRATE_TO_SYS(minor %u, %#lx, %lu pages) = %d", m, addr, n, ret);
		return false;
	}
	/* Other mirrors saw the range invalidated; this one skips its own migration. */
	dpt_maybe(r, pg, n, (int)m);
	split_may_invalidate(r);
	ok = observe(w, r, pg, n, allowed, "MIGRATE_TO_SYS");
	if (ok) {
		unsigned long moved = 0;

		/* Pages of other places may have changed too: a split's zero pages. */
		for (unsigned long i = 0; i < n; i++)
			moved += before[i] == LOC_DEV + m && r->pm[pg + i].loc != before[i];
		if (cmd.cpages != moved || (!st.inject && moved != want)) {
			fail(w, "MIGRATE_TO_SYS(minor %u, %#lx, %lu pages): cpages %" PRIu64
				", %lu pages were on the device, %lu moved",
			     m, addr, n, cmd.cpages, want, moved);
			return false;
		}
		if (moved != want)
			w->op_failed++;
	}
	/* The driver drops its mapping of each page it moves. */
	for (unsigned long i = 0; ok && i < n; i++)
		if (r->pm[pg + i].loc != before[i]) {
			r->pm[pg + i].dpt_no |= (uint8_t)(1u << m);
			r->pm[pg + i].dpt_yes &= (uint8_t)~(1u << m);
		}
	return ok;
}

/*
 * After a device READ or WRITE of pages [pg, pg + n) of @r through minor
 * @m that returned @ret: a success maps every page in the mirror; a failed
 * one may have mapped the chunks before the failing one.
 */
static void dpt_after_device_access(struct worker *w, struct region *r, unsigned long pg,
				    unsigned long n, unsigned int m, int ret)
{
	for (unsigned long i = pg; i < pg + n; i++) {
		if (!ret) {
			dpt_mark_yes(w, r, i, m);
			continue;
		}
		r->pm[i].dpt_yes &= (uint8_t)~(1u << m);
		r->pm[i].dpt_no &= (uint8_t)~(1u << m);
	}
}

static bool op_dev_read(struct worker *w, struct region *r, unsigned int m)
{
	unsigned int allowed[STRESS_MAX_PAGES];
	unsigned long pg, n, addr;
	struct hmm_dmirror_cmd cmd;
	bool moves = false;
	int ret;

	pick_pages(w, r, &pg, &n);
	addr = r->addr + (pg << PAGE_SHIFT);
	for (unsigned long i = 0; i < n; i++) {
		uint8_t old = r->pm[pg + i].loc;

		/*
		 * hmm_range_fault() faults another device's private page back
		 * to RAM.  And as in Linux, hmm_vma_fault() then faults every
		 * page from there to the end of the walk: this device's own
		 * private pages after it come back to RAM too.
		 */
		if (loc_is_private_dev(old) && old != LOC_DEV + m) {
			allowed[i] = LOCBIT(LOC_SYS) | (st.inject ? LOCBIT(old) : 0);
			moves = true;
		} else if (old == LOC_DEV + m && is_private_minor(m)) {
			allowed[i] = LOCBIT(LOC_SYS) | LOCBIT(old);
			moves = true;
		} else {
			allowed[i] = LOCBIT(old);
		}
	}
	split_may_invalidate(r);
	log_op(w, OP_DEV_READ, (int)m, addr, n << PAGE_SHIFT, 0, 0);
	ret = dmirror_cmd(w->dm[m], HMM_DMIRROR_READ, addr, w->buf, n, &cmd);
	log_ret(w, ret);
	if (ret == -EFAULT && st.inject) {
		/* hmm_range_fault(): a fault that fails (VM_FAULT_OOM too) is -EFAULT. */
		w->op_failed++;
	} else if (ret) {
		fail(w, "dmirror READ(minor %u, %#lx, %lu pages) = %d", m, addr, n, ret);
		return false;
	} else if (!check_bytes(w, "dmirror READ", r, pg << PAGE_SHIFT, w->buf, n << PAGE_SHIFT)) {
		return false;
	}
	if (moves || ret) {
		for (unsigned long i = 0; i < n; i++)
			if (allowed[i] & LOCBIT(LOC_SYS) && r->pm[pg + i].loc != LOC_SYS)
				dpt_maybe(r, pg + i, 1, -1);
		if (!observe_device_access(w, r, pg, n, allowed, false, "dmirror READ"))
			return false;
	}
	dpt_after_device_access(w, r, pg, n, m, ret);
	return true;
}

static bool op_dev_write(struct worker *w, struct region *r, unsigned int m)
{
	unsigned int allowed[STRESS_MAX_PAGES];
	unsigned long pg, n, addr;
	struct hmm_dmirror_cmd cmd;
	uint64_t data = rnd(w);
	bool own_private = false;
	int ret;

	pick_pages(w, r, &pg, &n);
	addr = r->addr + (pg << PAGE_SHIFT);
	fill_bytes(w->buf, n << PAGE_SHIFT, data);
	for (unsigned long i = 0; i < n; i++) {
		uint8_t old = r->pm[pg + i].loc;

		own_private |= is_private_minor(m) && old == LOC_DEV + m;
		if (old == LOC_DEV + m && is_private_minor(m))
			/*
			 * Written in place; but hmm_vma_fault() faults every
			 * page after one that needs a fault, this device's
			 * own too (to RAM), as in Linux.
			 */
			allowed[i] = LOCBIT(old) | LOCBIT(LOC_SYS);
		else if (old >= LOC_DEV && !is_private_minor(old - LOC_DEV))
			allowed[i] = LOCBIT(old) | LOCBIT(LOC_SYS); /* coherent: a COW may copy it */
		else
			allowed[i] = LOCBIT(LOC_SYS);
	}
	split_may_invalidate(r);
	log_op(w, OP_DEV_WRITE, (int)m, addr, n << PAGE_SHIFT, 0, data);
	ret = dmirror_cmd(w->dm[m], HMM_DMIRROR_WRITE, addr, w->buf, n, &cmd);
	log_ret(w, ret);
	if (r->ro) {
		/*
		 * -EPERM from hmm_range_fault(); but a page already on this
		 * device is reported as it is (read-only, no fault), and
		 * test_hmm's dmirror_do_fault() then fails with -EFAULT (a
		 * WARN_ON in Linux).  Either way nothing is written and
		 * nothing moves (the permission check comes before a fault).
		 */
		if (ret != -EPERM && !(ret == -EFAULT && own_private)) {
			fail(w, "dmirror WRITE(minor %u) to a read-only region = %d, want -EPERM%s",
			     m, ret, own_private ? " or -EFAULT" : "");
			return false;
		}
		return true;
	}
	if (ret == -EFAULT && (own_private || st.inject)) {
		/*
		 * As in Linux, hmm_range_fault() reports the caller's own
		 * device-private pages as they are, without a fault: one whose
		 * entry is read-only (migrated while its PTE was
		 * write-protected after a fork; or mprotect RO then RW, which
		 * does not make a swap-type entry writable again) comes back
		 * without HMM_PFN_WRITE, and dmirror_do_fault() fails with
		 * -EFAULT.  With injection, a fault that cannot allocate is
		 * -EFAULT too.  The pages before the failing one may have
		 * been written: each must hold what it held or what the
		 * device wrote.  The read back moves pages too.
		 */
		w->dev_write_efault++;
		if (st.inject && !own_private)
			w->op_failed++;
		for (unsigned long i = 0; i < n; i++)
			allowed[i] |= LOCBIT(r->pm[pg + i].loc) | LOCBIT(LOC_SYS);
		if (!settle_partial_write(w, "after a dmirror WRITE that failed with -EFAULT", r,
					  pg << PAGE_SHIFT, w->buf, n << PAGE_SHIFT))
			return false;
		for (unsigned long i = 0; i < n; i++)
			if (loc_is_private_dev(r->pm[pg + i].loc))
				allowed[i] = LOCBIT(LOC_SYS) |
					     (st.inject ? LOCBIT(r->pm[pg + i].loc) : 0);
		dpt_maybe(r, pg, n, -1);
	} else if (ret) {
		fail(w, "dmirror WRITE(minor %u, %#lx, %lu pages) = %d", m, addr, n, ret);
		return false;
	} else {
		memcpy(r->shadow + (pg << PAGE_SHIFT), w->buf, n << PAGE_SHIFT);
		dpt_maybe(r, pg, n, (int)m);
	}
	if (!observe_device_access(w, r, pg, n, allowed, true, "dmirror WRITE"))
		return false;
	dpt_after_device_access(w, r, pg, n, m, ret);
	return true;
}

/* SNAPSHOT through minor @m: each page's byte must say where the model has it. */
static bool op_snapshot(struct worker *w, struct region *r, unsigned int m)
{
	unsigned long pg, n, addr;
	struct hmm_dmirror_cmd cmd;
	int ret;

	pick_pages(w, r, &pg, &n);
	addr = r->addr + (pg << PAGE_SHIFT);
	log_op(w, OP_SNAPSHOT, (int)m, addr, n << PAGE_SHIFT, 0, 0);
	ret = dmirror_cmd(w->dm[m], HMM_DMIRROR_SNAPSHOT, addr, w->buf, n, &cmd);
	log_ret(w, ret);
	if (ret || cmd.cpages != n) {
		fail(w, "dmirror SNAPSHOT(minor %u, %#lx, %lu pages) = %d, cpages %" PRIu64, m,
		     addr, n, ret, cmd.cpages);
		return false;
	}
	for (unsigned long i = 0; i < n; i++) {
		uint8_t b = w->buf[i], loc = r->pm[pg + i].loc;

		if (snap_perm_ok(r, b) && (b & 0xF0) == HMM_DMIRROR_PROT_ZERO &&
		    may_be_split_zero_page(r, pg + i)) {
			r->pm[pg + i].loc = LOC_EMPTY;
			dpt_maybe(r, pg + i, 1, -1);
			continue;
		}
		if (!snap_perm_ok(r, b) || !(snap_locs(b, m) & LOCBIT(loc))) {
			fail(w, "dmirror SNAPSHOT(minor %u): page %#lx is %#x, the model has it in %s",
			     m, addr + (i << PAGE_SHIFT), b, loc_names[loc]);
			return false;
		}
	}
	return true;
}

/* One random operation on one of @w's regions; false if it found a mismatch. */
static bool one_op(struct worker *w)
{
	struct region *r = &w->reg[rnd_below(w, STRESS_REGIONS)];
	unsigned long pick = rnd_below(w, 100);
	unsigned int m = (unsigned int)rnd_below(w, STRESS_NR_DEV);
	enum stress_op op;

	/* Weights, in percent (they add up to 100). */
	static const struct {
		enum stress_op op;
		unsigned int percent;
	} mix[] = {
		{ OP_CPU_WRITE, 18 }, { OP_CPU_READ, 16 }, { OP_ATOMIC_ADD, 5 }, { OP_REMAP, 2 },
		{ OP_MREMAP, 3 },     { OP_MPROTECT, 5 },  { OP_MADVISE, 8 },    { OP_TO_DEV, 12 },
		{ OP_TO_SYS, 8 },     { OP_DEV_READ, 7 },  { OP_DEV_WRITE, 8 },  { OP_SNAPSHOT, 8 },
	};
	unsigned long below = 0;

	op = mix[0].op;
	for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) {
		below += mix[i].percent;
		if (pick < below) {
			op = mix[i].op;
			break;
		}
	}
	w->counts[op]++;

	switch (op) {
	case OP_CPU_WRITE:
		return op_cpu_write(w, r);
	case OP_CPU_READ:
		return op_cpu_read(w, r);
	case OP_ATOMIC_ADD:
		return op_atomic_add(w, r);
	case OP_REMAP:
		return op_remap(w, r);
	case OP_MREMAP:
		return op_mremap(w, r);
	case OP_MPROTECT:
		return op_mprotect(w, r);
	case OP_MADVISE:
		return op_madvise(w, r);
	case OP_TO_DEV:
		return op_to_dev(w, r, m);
	case OP_TO_SYS:
		return op_to_sys(w, r, m);
	case OP_DEV_READ:
		return op_dev_read(w, r, m);
	case OP_DEV_WRITE:
		return op_dev_write(w, r, m);
	case OP_SNAPSHOT:
		return op_snapshot(w, r, m);
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

		w->op_seq = inval_log_count(w->mm_idx);
		if (n % STRESS_AUDIT_EVERY == 0) {
			pthread_rwlock_wrlock(&st.gate);
			atomic_fetch_add(&st.audits, 1);
			w->counts[OP_AUDIT]++;
			ok = do_audit(w);
			if (st.inject)
				fi_next_phase();
			pthread_rwlock_unlock(&st.gate);
		} else if (rnd_below(w, STRESS_FORK_ONE_IN) == 0) {
			pthread_rwlock_wrlock(&st.gate);
			atomic_fetch_add(&st.forks, 1);
			w->counts[OP_FORK]++;
			ok = do_fork(w);
			pthread_rwlock_unlock(&st.gate);
		} else if (rnd_below(w, STRESS_RELEASE_ONE_IN) == 0) {
			unsigned int m = (unsigned int)rnd_below(w, STRESS_NR_DEV);

			pthread_rwlock_wrlock(&st.gate);
			w->counts[OP_RELEASE]++;
			ok = do_release(w, m);
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

/* The whole mix: @inject runs it under fault injection. */
static void stress_run(bool inject, unsigned long default_ops)
{
	pthread_rwlockattr_t attr;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	const char *seed_env = getenv("UHMM_STRESS_SEED");
	double t0, t1;

	memset(&st, 0, sizeof(st));
	st.inject = inject;
	/* A fixed default (the threads' interleaving still varies); "random": the clock. */
	if (seed_env && !strcmp(seed_env, "random"))
		st.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	else
		st.seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 0) : STRESS_DEFAULT_SEED;
	st.nthreads = (unsigned int)env_ulong("UHMM_STRESS_THREADS", 2 * (ncpu > 0 ? ncpu : 1));
	st.nops = env_ulong("UHMM_STRESS_OPS", default_ops);
	cr_assert_gt(st.nthreads, 0);
	fprintf(stderr,
		"stress%s: seed %#" PRIx64 ", %u threads, %lu ops each (UHMM_STRESS_SEED=%#" PRIx64
		" replays the choices)\n",
		inject ? " (fault injection)" : "", st.seed, st.nthreads, st.nops, st.seed);

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

	for (int m = 0; m < STRESS_NR_MM; m++) {
		pthread_mutex_init(&st.inval[m].lock, NULL);
		cr_assert_eq(mmu_interval_notifier_insert(&st.inval[m].sub, st.mm[m], 0,
							  1UL << 47, &inval_log_ops),
			     0);
	}
	st.w = calloc(st.nthreads, sizeof(*st.w));
	cr_assert_not_null(st.w);
	for (unsigned int t = 0; t < st.nthreads; t++) {
		struct worker *w = &st.w[t];

		w->id = t;
		w->rng = splitmix64(st.seed + t) | 1;
		w->mm_idx = t % STRESS_NR_MM;
		w->mm = st.mm[w->mm_idx];
		for (unsigned int d = 0; d < STRESS_NR_DEV; d++)
			w->dm[d] = st.dm[w->mm_idx][d];
		w->buf = malloc(STRESS_MAX_PAGES << PAGE_SHIFT);
		w->buf2 = malloc(STRESS_MAX_PAGES << PAGE_SHIFT);
		w->snap[0] = malloc(STRESS_MAX_PAGES);
		w->snap[1] = malloc(STRESS_MAX_PAGES);
		w->log = calloc(STRESS_LOG_MAX, sizeof(*w->log));
		cr_assert(w->buf && w->buf2 && w->snap[0] && w->snap[1] && w->log);
	}
	if (inject)
		fi_next_phase();

	t0 = now_s();
	for (unsigned int t = 0; t < st.nthreads; t++)
		cr_assert_eq(pthread_create(&st.w[t].thread, NULL, worker_fn, &st.w[t]), 0);
	for (unsigned int t = 0; t < st.nthreads; t++)
		pthread_join(st.w[t].thread, NULL);
	t1 = now_s();
	if (inject)
		fi_stop();

	cr_assert_not(atomic_load(&st.failed), "a worker found a mismatch (see above), seed %#" PRIx64,
		      st.seed);

	unsigned long done = 0, counts[NR_OPS] = {0}, enoent = 0, known = 0, efault = 0, failed = 0;
	unsigned long by_inval = 0;

	for (unsigned int t = 0; t < st.nthreads; t++) {
		done += st.w[t].idx;
		enoent += st.w[t].to_dev_enoent;
		known += st.w[t].to_dev_enoent_known;
		by_inval += st.w[t].to_dev_enoent_inval;
		efault += st.w[t].dev_write_efault;
		failed += st.w[t].op_failed;
		for (int op = 0; op < NR_OPS; op++)
			counts[op] += st.w[t].counts[op];
	}
	cr_assert_eq(done, (unsigned long)st.nthreads * st.nops);
	fprintf(stderr, "stress%s: %lu ops in %.2f s = %.0f ops/s, seed %#" PRIx64 "\n",
		inject ? " (fault injection)" : "", done, t1 - t0, (double)done / (t1 - t0), st.seed);
	fprintf(stderr, "stress:");
	for (int op = 0; op < NR_OPS; op++)
		fprintf(stderr, " %s %lu", op_names[op], counts[op]);
	fprintf(stderr,
		" (to_dev -ENOENT %lu: %lu where the model said so, %lu after an invalidation it "
		"could not foresee; dev_write -EFAULT %lu)\n",
		enoent, known, by_inval, efault);
	if (inject)
		fprintf(stderr,
			"stress: injected failures: system RAM %lu, large folios only %lu, device "
			"memory %lu; operations that failed with them %lu\n",
			st.fi_ram, st.fi_large, st.fi_dev, failed);
	/* The mix must really have run every kind of operation. */
	if (st.nops >= 1000)
		for (int op = 0; op < NR_OPS; op++)
			cr_assert_gt(counts[op], 0, "no %s ran", op_names[op]);
	if (inject && st.nops >= 1000)
		cr_assert(st.fi_ram && st.fi_dev && failed, "injection never made anything fail");

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
	for (int m = 0; m < STRESS_NR_MM; m++) {
		mmu_interval_notifier_remove(&st.inval[m].sub);
		pthread_mutex_destroy(&st.inval[m].lock);
		mmput(st.mm[m]);
	}
	for (unsigned int t = 0; t < st.nthreads; t++) {
		free(st.w[t].buf);
		free(st.w[t].buf2);
		free(st.w[t].snap[0]);
		free(st.w[t].snap[1]);
		free(st.w[t].log);
		for (int i = 0; i < STRESS_REGIONS; i++) {
			free(st.w[t].reg[i].shadow);
			free(st.w[t].reg[i].pm);
		}
	}
	free(st.w);
	pthread_rwlock_destroy(&st.gate);
	pthread_mutex_destroy(&st.print_lock);
	/* machine_teardown() then checks that every page of RAM is free. */
}

Test(stress, shadow_model)
{
	stress_run(false, STRESS_DEFAULT_OPS);
}

Test(stress, fault_injection)
{
	stress_run(true, STRESS_DEFAULT_FI_OPS);
}
