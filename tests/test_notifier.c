/* SPDX-License-Identifier: MIT */
/*
 * tests/test_notifier.c - interval notifiers: the sequence protocol
 * (read_begin / read_retry, deferred inserts and removes, sleeping), the
 * events every mapping operation fires, and a mirror thread that follows
 * the retry protocol while other threads change the mappings.
 *
 * Worker threads never assert: they record, the main thread checks after
 * joining.  Where a test shows that a call sleeps, the sleeper records a
 * flag the main thread sets just before it ends the invalidation; a sleeper
 * that returns early sees the flag clear.  The pauses only give a wrong
 * implementation the chance to fail; a right one passes at any speed.
 */
#include "helpers.h"
#include "internal.h"
#include "uhmm/hugetlb.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

TestSuite(notifier, .init = machine_setup, .fini = machine_teardown);

/* ------------------------------------------------------------------ */
/* A recording interval                                                */
/* ------------------------------------------------------------------ */

#define MAX_EVENTS 256

struct event {
	unsigned long start, end;
	enum mmu_notifier_event event;
	unsigned long cur_seq;
	unsigned int flags;
	void *owner;
};

struct rec {
	struct mmu_interval_notifier sub;
	pthread_mutex_t lock; /* the "driver lock" */
	int n;
	struct event ev[MAX_EVENTS];
	/* Optional: block inside invalidate() until the gate opens. */
	atomic_int gate_closed;
	atomic_int in_invalidate;
	/* Return false from invalidate() of a non-blockable range. */
	bool refuse_nonblock;
};

static bool rec_invalidate(struct mmu_interval_notifier *sub, const struct mmu_notifier_range *range,
			   unsigned long cur_seq)
{
	struct rec *r = container_of(sub, struct rec, sub);

	if (r->refuse_nonblock && !mmu_notifier_range_blockable(range))
		return false;
	atomic_store(&r->in_invalidate, 1);
	while (atomic_load(&r->gate_closed))
		usleep(100);
	pthread_mutex_lock(&r->lock);
	mmu_interval_set_seq(sub, cur_seq);
	if (r->n < MAX_EVENTS)
		r->ev[r->n] = (struct event){ range->start, range->end, range->event, cur_seq,
					      range->flags, range->owner };
	r->n++;
	pthread_mutex_unlock(&r->lock);
	return true;
}

static const struct mmu_interval_notifier_ops rec_ops = { .invalidate = rec_invalidate };

static struct rec *rec_new(void)
{
	struct rec *r = calloc(1, sizeof(*r));

	cr_assert_not_null(r);
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

static struct rec *rec_insert(struct mm_struct *mm, unsigned long start, unsigned long len)
{
	struct rec *r = rec_new();

	cr_assert_eq(mmu_interval_notifier_insert(&r->sub, mm, start, len, &rec_ops), 0);
	return r;
}

static int rec_count(struct rec *r)
{
	int n;

	pthread_mutex_lock(&r->lock);
	n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static inline void rec_reset(struct rec *r)
{
	pthread_mutex_lock(&r->lock);
	r->n = 0;
	pthread_mutex_unlock(&r->lock);
}

static void rec_remove(struct rec *r)
{
	mmu_interval_notifier_remove(&r->sub);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Assert event @i of @r is (@event, [@start, @end)). */
static void expect_event(struct rec *r, int i, enum mmu_notifier_event event, unsigned long start,
			 unsigned long end)
{
	cr_assert_gt(r->n, i, "only %d events, wanted #%d", r->n, i);
	cr_assert_eq(r->ev[i].event, event, "event #%d is %d, wanted %d", i, r->ev[i].event, event);
	cr_assert_eq(r->ev[i].start, start, "event #%d start %#lx, wanted %#lx", i, r->ev[i].start,
		     start);
	cr_assert_eq(r->ev[i].end, end, "event #%d end %#lx, wanted %#lx", i, r->ev[i].end, end);
	cr_assert(r->ev[i].cur_seq & 1, "cur_seq %lu is even", r->ev[i].cur_seq);
	cr_assert(r->ev[i].flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
}

static void range_start(struct mmu_notifier_range *range, struct mm_struct *mm,
			enum mmu_notifier_event event, unsigned long start, unsigned long end)
{
	mmu_notifier_range_init(range, event, 0, mm, start, end);
	cr_assert_eq(mmu_notifier_invalidate_range_start(range), 0);
}

/* ------------------------------------------------------------------ */
/* Registration                                                        */
/* ------------------------------------------------------------------ */

Test(notifier, insert_errors_and_bounds)
{
	struct mm_struct *mm = new_mm();
	struct rec *r = rec_new();
	struct rec *all;
	struct mmu_notifier_range range;

	cr_assert_null(mm->notifier_subscriptions);
	cr_assert_eq(mmu_interval_notifier_insert(&r->sub, mm, 0x1000, 0, &rec_ops), -EOVERFLOW);
	cr_assert_eq(mmu_interval_notifier_insert(&r->sub, mm, 0x2000, ~0UL - 0xfff, &rec_ops),
		     -EOVERFLOW);
	cr_assert_eq(atomic_load(&mm->mm_count), 1, "a failed insert took a reference");
	cr_assert_eq(mmu_interval_notifier_insert(&r->sub, mm, 0x10000, 0x3000, &rec_ops), 0);
	cr_assert_not_null(mm->notifier_subscriptions);
	cr_assert_eq(r->sub.start, 0x10000);
	cr_assert_eq(r->sub.last, 0x12fff);
	cr_assert_eq(r->sub.mm, mm);
	cr_assert_eq(atomic_load(&mm->mm_count), 2, "the interval holds mmgrab");

	all = rec_new();
	mmap_write_lock(mm);
	cr_assert_eq(mmu_interval_notifier_insert_locked(&all->sub, mm, 0, ~0UL, &rec_ops), 0);
	mmap_write_unlock(mm);
	cr_assert_eq(all->sub.last, ~0UL - 1);

	/* Bounds: [start, end) against [start, last]. */
	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0x13000, 0x20000);
	mmu_notifier_invalidate_range_end(&range);
	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0x0, 0x10000);
	mmu_notifier_invalidate_range_end(&range);
	cr_assert_eq(rec_count(r), 0, "ranges just outside the interval hit it");
	cr_assert_eq(rec_count(all), 2);
	range_start(&range, mm, MMU_NOTIFY_UNMAP, 0x12000, 0x13000);
	mmu_notifier_invalidate_range_end(&range);
	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0xf000, 0x11000);
	mmu_notifier_invalidate_range_end(&range);
	cr_assert_eq(rec_count(r), 2);
	expect_event(r, 0, MMU_NOTIFY_UNMAP, 0x12000, 0x13000);
	expect_event(r, 1, MMU_NOTIFY_CLEAR, 0xf000, 0x11000);

	rec_remove(r);
	rec_remove(all);
	cr_assert_eq(atomic_load(&mm->mm_count), 1);
	mmput(mm);
}

Test(notifier, no_interval_costs_nothing)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct mmu_notifier_range range;

	fill_pattern(mm, addr, 4 * PAGE_SIZE, 1);
	cr_assert_eq(mm_munmap(mm, addr, PAGE_SIZE), 0);
	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0, ~0UL);
	mmu_notifier_invalidate_range_end(&range);
	cr_assert_null(mm->notifier_subscriptions, "the hot path allocated notifier state");
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* The sequence protocol                                               */
/* ------------------------------------------------------------------ */

Test(notifier, read_retry_across_invalidation)
{
	struct mm_struct *mm = new_mm();
	struct rec *r = rec_insert(mm, 0x100000, 0x100000);
	struct rec *other = rec_insert(mm, 0x400000, 0x1000);
	struct mmu_notifier_range range;
	unsigned long seq, seq2, oseq;

	seq = mmu_interval_read_begin(&r->sub);
	oseq = mmu_interval_read_begin(&other->sub);
	cr_assert_not(mmu_interval_read_retry(&r->sub, seq));
	cr_assert_not(mmu_interval_check_retry(&r->sub, seq));

	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0x180000, 0x181000);
	cr_assert_eq(rec_count(r), 1);
	cr_assert_eq(rec_count(other), 0);
	cr_assert(r->ev[0].cur_seq & 1);
	cr_assert_eq(r->sub.invalidate_seq, r->ev[0].cur_seq);
	cr_assert(mmu_interval_read_retry(&r->sub, seq), "invalidated but no retry");
	cr_assert(mmu_interval_check_retry(&r->sub, seq));
	cr_assert_not(mmu_interval_read_retry(&other->sub, oseq),
		      "an interval outside the range must not retry");
	mmu_notifier_invalidate_range_end(&range);

	seq2 = mmu_interval_read_begin(&r->sub);
	cr_assert_neq(seq2, seq);
	cr_assert_eq(seq2, r->ev[0].cur_seq);
	cr_assert_not(mmu_interval_read_retry(&r->sub, seq2));
	cr_assert_eq(mmu_interval_read_begin(&other->sub), oseq);

	/* A second invalidation gets a new odd cur_seq. */
	range_start(&range, mm, MMU_NOTIFY_UNMAP, 0x100000, 0x200000);
	mmu_notifier_invalidate_range_end(&range);
	cr_assert_eq(rec_count(r), 2);
	cr_assert_gt(r->ev[1].cur_seq, r->ev[0].cur_seq);
	cr_assert(r->ev[1].cur_seq & 1);
	cr_assert(mmu_interval_read_retry(&r->sub, seq2));

	rec_remove(r);
	rec_remove(other);
	mmput(mm);
}

Test(notifier, nested_invalidations_share_cur_seq)
{
	struct mm_struct *mm = new_mm();
	struct rec *a = rec_insert(mm, 0x100000, 0x1000);
	struct rec *b = rec_insert(mm, 0x200000, 0x1000);
	struct mmu_notifier_range r1, r2;
	unsigned long seq;

	range_start(&r1, mm, MMU_NOTIFY_CLEAR, 0x100000, 0x101000);
	range_start(&r2, mm, MMU_NOTIFY_CLEAR, 0x200000, 0x201000);
	cr_assert_eq(a->ev[0].cur_seq, b->ev[0].cur_seq, "one odd seq while invalidating");
	mmu_notifier_invalidate_range_end(&r1);
	/* Still invalidating: b's read_begin would sleep; seq stays odd. */
	cr_assert_eq(b->sub.invalidate_seq, b->ev[0].cur_seq);
	mmu_notifier_invalidate_range_end(&r2);
	seq = mmu_interval_read_begin(&a->sub);
	cr_assert_eq(seq, a->ev[0].cur_seq);
	rec_remove(a);
	rec_remove(b);
	mmput(mm);
}

struct sleeper {
	struct rec *r;
	atomic_int *ended; /* set by the main thread just before it ends */
	atomic_int started;
	atomic_int done;
	int ended_seen;
	unsigned long seq;
};

static void *read_begin_thread(void *arg)
{
	struct sleeper *s = arg;

	atomic_store(&s->started, 1);
	s->seq = mmu_interval_read_begin(&s->r->sub);
	s->ended_seen = atomic_load(s->ended);
	atomic_store(&s->done, 1);
	return NULL;
}

static void *remove_thread(void *arg)
{
	struct sleeper *s = arg;

	atomic_store(&s->started, 1);
	mmu_interval_notifier_remove(&s->r->sub);
	s->ended_seen = atomic_load(s->ended);
	atomic_store(&s->done, 1);
	return NULL;
}

static void wait_started(struct sleeper *s)
{
	while (!atomic_load(&s->started))
		usleep(100);
	usleep(20000); /* lets a wrong implementation return early */
}

Test(notifier, read_begin_sleeps_during_invalidation)
{
	struct mm_struct *mm = new_mm();
	struct rec *r = rec_insert(mm, 0x100000, 0x1000);
	struct mmu_notifier_range range;
	atomic_int ended = 0;
	struct sleeper s = { .r = r, .ended = &ended };
	pthread_t t;

	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0x100000, 0x101000);
	cr_assert_eq(pthread_create(&t, NULL, read_begin_thread, &s), 0);
	wait_started(&s);
	cr_assert_not(atomic_load(&s.done), "read_begin returned during the invalidation");
	atomic_store(&ended, 1);
	mmu_notifier_invalidate_range_end(&range);
	pthread_join(t, NULL);
	cr_assert(s.ended_seen, "read_begin returned before the invalidation ended");
	cr_assert_eq(s.seq, r->ev[0].cur_seq);
	cr_assert_not(mmu_interval_read_retry(&r->sub, s.seq));

	/* An invalidation that misses the interval does not block it. */
	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0x200000, 0x201000);
	cr_assert_eq(mmu_interval_read_begin(&r->sub), s.seq);
	mmu_notifier_invalidate_range_end(&range);

	rec_remove(r);
	mmput(mm);
}

Test(notifier, remove_waits_for_running_invalidation)
{
	struct mm_struct *mm = new_mm();
	struct rec *r = rec_insert(mm, 0x100000, 0x1000);
	struct mmu_notifier_range range;
	atomic_int ended = 0;
	struct sleeper s = { .r = r, .ended = &ended };
	pthread_t t;

	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0x100000, 0x101000);
	cr_assert_eq(pthread_create(&t, NULL, remove_thread, &s), 0);
	wait_started(&s);
	cr_assert_not(atomic_load(&s.done), "remove returned during the invalidation");
	cr_assert(r->sub.in_tree, "unlinked while the list is walked");
	atomic_store(&ended, 1);
	mmu_notifier_invalidate_range_end(&range);
	pthread_join(t, NULL);
	cr_assert(s.ended_seen, "remove returned before the invalidation ended");
	cr_assert_not(r->sub.in_tree);
	cr_assert_eq(rec_count(r), 1);

	/* Gone: later invalidations do not call it. */
	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0x100000, 0x101000);
	mmu_notifier_invalidate_range_end(&range);
	cr_assert_eq(rec_count(r), 1);
	pthread_mutex_destroy(&r->lock);
	free(r);
	mmput(mm);
}

struct inv_thread {
	struct mm_struct *mm;
	unsigned long start, end;
	atomic_int *ended;
};

static void *invalidate_thread(void *arg)
{
	struct inv_thread *it = arg;
	struct mmu_notifier_range range;

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, it->mm, it->start, it->end);
	mmu_notifier_invalidate_range_start(&range);
	atomic_store(it->ended, 1);
	mmu_notifier_invalidate_range_end(&range);
	return NULL;
}

Test(notifier, remove_waits_for_invalidate_callback)
{
	struct mm_struct *mm = new_mm();
	struct rec *r = rec_insert(mm, 0x100000, 0x1000);
	atomic_int ended = 0;
	struct inv_thread it = { mm, 0x100000, 0x101000, &ended };
	struct sleeper s = { .r = r, .ended = &ended };
	pthread_t inv, rem;

	atomic_store(&r->gate_closed, 1);
	cr_assert_eq(pthread_create(&inv, NULL, invalidate_thread, &it), 0);
	while (!atomic_load(&r->in_invalidate))
		usleep(100);
	/* invalidate() is running (blocked on the gate): remove must wait. */
	cr_assert_eq(pthread_create(&rem, NULL, remove_thread, &s), 0);
	wait_started(&s);
	cr_assert_not(atomic_load(&s.done));
	atomic_store(&r->gate_closed, 0);
	pthread_join(inv, NULL);
	pthread_join(rem, NULL);
	cr_assert(s.ended_seen, "remove returned while invalidate() ran");
	cr_assert_eq(r->n, 1);
	pthread_mutex_destroy(&r->lock);
	free(r);
	mmput(mm);
}

Test(notifier, insert_during_invalidation_is_deferred)
{
	struct mm_struct *mm = new_mm();
	struct rec *a = rec_insert(mm, 0x100000, 0x100000);
	struct rec *b = rec_new(), *c = rec_new();
	struct mmu_notifier_range range, r2;
	atomic_int ended = 0;
	struct sleeper s = { .r = b, .ended = &ended };
	pthread_t t;

	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0x100000, 0x200000);
	cr_assert_eq(mmu_interval_notifier_insert(&b->sub, mm, 0x180000, 0x1000, &rec_ops), 0);
	cr_assert_not(b->sub.in_tree, "linked while the list is walked");
	cr_assert_eq(b->sub.deferred, 1);
	cr_assert_eq(b->sub.invalidate_seq, a->ev[0].cur_seq,
		     "a deferred interval must look invalidated");
	/* A nested invalidation while b is deferred does not call it. */
	range_start(&r2, mm, MMU_NOTIFY_CLEAR, 0x180000, 0x181000);
	mmu_notifier_invalidate_range_end(&r2);
	cr_assert_eq(rec_count(b), 0);
	cr_assert_eq(rec_count(a), 2);

	/* Its read_begin sleeps until the invalidation ends. */
	cr_assert_eq(pthread_create(&t, NULL, read_begin_thread, &s), 0);
	wait_started(&s);
	cr_assert_not(atomic_load(&s.done));

	/* Inserted and removed within the invalidation: never linked, no wait. */
	cr_assert_eq(mmu_interval_notifier_insert(&c->sub, mm, 0x190000, 0x1000, &rec_ops), 0);
	rec_remove(c);

	atomic_store(&ended, 1);
	mmu_notifier_invalidate_range_end(&range);
	pthread_join(t, NULL);
	cr_assert(s.ended_seen);
	cr_assert(b->sub.in_tree, "the deferred insert was not applied");
	cr_assert_eq(b->sub.deferred, 0);
	cr_assert_not(mmu_interval_read_retry(&b->sub, s.seq));

	range_start(&range, mm, MMU_NOTIFY_UNMAP, 0x180000, 0x181000);
	mmu_notifier_invalidate_range_end(&range);
	cr_assert_eq(rec_count(b), 1);
	expect_event(b, 0, MMU_NOTIFY_UNMAP, 0x180000, 0x181000);
	cr_assert(mmu_interval_read_retry(&b->sub, s.seq));

	rec_remove(a);
	rec_remove(b);
	mmput(mm);
}

Test(notifier, insert_during_missing_invalidation_waits_for_it)
{
	struct mm_struct *mm = new_mm();
	struct rec *a = rec_insert(mm, 0x100000, 0x1000);
	struct rec *b = rec_new();
	struct mmu_notifier_range range;
	atomic_int ended = 0;
	struct sleeper s = { .r = b, .ended = &ended };
	pthread_t t;

	/* Active but hitting nothing: seq is even, the insert links at once. */
	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0x300000, 0x301000);
	cr_assert_eq(mmu_interval_notifier_insert(&b->sub, mm, 0x300000, 0x1000, &rec_ops), 0);
	cr_assert(b->sub.in_tree);
	cr_assert(b->sub.invalidate_seq & 1, "its pages may be changing: it must look invalidated");
	cr_assert_eq(pthread_create(&t, NULL, read_begin_thread, &s), 0);
	wait_started(&s);
	cr_assert_not(atomic_load(&s.done));
	atomic_store(&ended, 1);
	mmu_notifier_invalidate_range_end(&range);
	pthread_join(t, NULL);
	cr_assert(s.ended_seen);
	cr_assert_eq(rec_count(b), 0, "it was not there when the invalidation started");
	rec_remove(a);
	rec_remove(b);
	mmput(mm);
}

Test(notifier, audit_checks_notifier_state)
{
	struct mm_struct *mm = new_mm();
	struct rec *a = rec_insert(mm, 0x100000, 0x1000);
	struct rec *b = rec_new();
	struct mmu_notifier_range range;
	unsigned long saved;

	/* Mid-invalidation, with a queued insert: consistent. */
	range_start(&range, mm, MMU_NOTIFY_CLEAR, 0x100000, 0x101000);
	cr_assert_eq(mmu_interval_notifier_insert(&b->sub, mm, 0x200000, 0x1000, &rec_ops), 0);
	cr_assert_eq(uhmm_audit(machine, NULL), 0);
	mmu_notifier_invalidate_range_end(&range);
	cr_assert_eq(uhmm_audit(machine, NULL), 0);

	/* An interval whose sequence is even (never handed out) is caught. */
	saved = a->sub.invalidate_seq;
	a->sub.invalidate_seq = saved + 1;
	cr_assert_eq(uhmm_audit(machine, NULL), 1);
	a->sub.invalidate_seq = saved;
	/* So is an interval of another mm on the list. */
	a->sub.mm = NULL;
	cr_assert_eq(uhmm_audit(machine, NULL), 1);
	a->sub.mm = mm;
	cr_assert_eq(uhmm_audit(machine, NULL), 0);
	rec_remove(a);
	rec_remove(b);
	mmput(mm);
}

Test(notifier, nonblocking_start_can_fail)
{
	struct mm_struct *mm = new_mm();
	struct rec *r = rec_insert(mm, 0x100000, 0x1000);
	struct mmu_notifier_range range;
	unsigned long seq = mmu_interval_read_begin(&r->sub);

	r->refuse_nonblock = true;
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, 0x100000, 0x101000);
	cr_assert_eq(mmu_notifier_invalidate_range_start_nonblock(&range), -EAGAIN);
	cr_assert_eq(rec_count(r), 0);
	/* Already ended: read_begin does not sleep, the seq is even again. */
	cr_assert_eq(mmu_interval_read_begin(&r->sub), seq);
	r->refuse_nonblock = false;
	cr_assert_eq(mmu_notifier_invalidate_range_start_nonblock(&range), 0);
	cr_assert_eq(rec_count(r), 1);
	cr_assert_not(r->ev[0].flags & MMU_NOTIFIER_RANGE_BLOCKABLE);
	mmu_notifier_invalidate_range_end(&range);
	rec_remove(r);
	mmput(mm);
}

Test(notifier, release_at_last_mmput)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	struct rec *r;

	fill_pattern(mm, addr, 4 * PAGE_SIZE, 3);
	r = rec_insert(mm, addr, 4 * PAGE_SIZE);
	mmget(mm);
	mmput(mm);
	cr_assert_eq(rec_count(r), 0, "not the last mmput");
	mmput(mm);
	cr_assert_eq(rec_count(r), 1);
	cr_assert_eq(r->ev[0].event, MMU_NOTIFY_RELEASE);
	cr_assert_eq(r->ev[0].start, 0);
	cr_assert_eq(r->ev[0].end, ~0UL);
	/* The interval's mmgrab keeps the struct: removing after exit is fine. */
	cr_assert_eq(atomic_load(&mm->mm_count), 1);
	cr_assert_not(mmget_not_zero(mm));
	rec_remove(r);
}

/* ------------------------------------------------------------------ */
/* The events of every operation                                       */
/* ------------------------------------------------------------------ */

#define PG PAGE_SIZE

/* Assert @r saw exactly the @n events in @want, in order. */
static void expect_events(struct rec *r, int n, const struct event *want)
{
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->n && i < MAX_EVENTS; i++)
		cr_log_info("  event %d: %d [%#lx, %#lx)", i, r->ev[i].event, r->ev[i].start,
			    r->ev[i].end);
	cr_assert_eq(r->n, n, "%d events, wanted %d", r->n, n);
	for (int i = 0; i < n; i++)
		expect_event(r, i, want[i].event, want[i].start, want[i].end);
	r->n = 0;
	pthread_mutex_unlock(&r->lock);
}

#define EXPECT(r, ...)                                                                   \
	do {                                                                             \
		const struct event want_[] = { __VA_ARGS__ };                            \
		expect_events((r), (int)(sizeof(want_) / sizeof(want_[0])), want_);      \
	} while (0)
#define EV(e, s, en) { .start = (s), .end = (en), .event = (e) }

Test(notifier, munmap_fires_unmap)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 16 * PG, PROT_READ | PROT_WRITE, 0);
	struct rec *all = rec_insert(mm, 0, ~0UL);
	struct rec *low = rec_insert(mm, a, 2 * PG);

	fill_pattern(mm, a, 16 * PG, 1);
	rec_reset(all);
	cr_assert_eq(mm_munmap(mm, a + 4 * PG, 4 * PG), 0);
	EXPECT(all, EV(MMU_NOTIFY_UNMAP, a + 4 * PG, a + 8 * PG));
	cr_assert_eq(rec_count(low), 0, "an interval outside the munmap was called");
	/* Nothing mapped there any more: no invalidation. */
	cr_assert_eq(mm_munmap(mm, a + 4 * PG, 4 * PG), 0);
	cr_assert_eq(rec_count(all), 0);
	/* Across a hole: one range, the requested one. */
	cr_assert_eq(mm_munmap(mm, a, 16 * PG), 0);
	EXPECT(all, EV(MMU_NOTIFY_UNMAP, a, a + 16 * PG));
	EXPECT(low, EV(MMU_NOTIFY_UNMAP, a, a + 16 * PG));
	rec_remove(all);
	rec_remove(low);
	mmput(mm);
}

Test(notifier, munmap_inside_thp_splits_then_unmaps)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp(mm, 2 * PMD_SIZE);
	struct rec *all = rec_insert(mm, 0, ~0UL);

	fill_pattern(mm, a, PMD_SIZE, 2);
	cr_assert_eq(anon_huge(mm), PMD_SIZE);
	rec_reset(all);
	cr_assert_eq(mm_munmap(mm, a + PG, PG), 0);
	EXPECT(all, EV(MMU_NOTIFY_CLEAR, a, a + PMD_SIZE), EV(MMU_NOTIFY_UNMAP, a + PG, a + 2 * PG));
	check_pattern(mm, a, PG, 2);
	rec_remove(all);
	mmput(mm);
}

Test(notifier, mprotect_fires_protection_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PG, PROT_READ | PROT_WRITE, 0);
	struct rec *all = rec_insert(mm, 0, ~0UL);

	fill_pattern(mm, a, 8 * PG, 3);
	rec_reset(all);
	cr_assert_eq(mm_mprotect(mm, a + 2 * PG, 3 * PG, PROT_READ), 0);
	EXPECT(all, EV(MMU_NOTIFY_PROTECTION_VMA, a + 2 * PG, a + 5 * PG));
	/* Same protection again: nothing changes, nothing is said. */
	cr_assert_eq(mm_mprotect(mm, a + 2 * PG, 3 * PG, PROT_READ), 0);
	cr_assert_eq(rec_count(all), 0);
	/* Two VMAs: one range each. */
	cr_assert_eq(mm_mprotect(mm, a, 8 * PG, PROT_NONE), 0);
	EXPECT(all, EV(MMU_NOTIFY_PROTECTION_VMA, a, a + 2 * PG),
	       EV(MMU_NOTIFY_PROTECTION_VMA, a + 2 * PG, a + 5 * PG),
	       EV(MMU_NOTIFY_PROTECTION_VMA, a + 5 * PG, a + 8 * PG));
	/* Errors change nothing and say nothing. */
	cr_assert_eq(mm_mprotect(mm, a + 8 * PG, PG, PROT_READ), -ENOMEM);
	cr_assert_eq(rec_count(all), 0);
	rec_remove(all);
	mmput(mm);
}

Test(notifier, mremap_source_is_unmapped)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PG, PROT_READ | PROT_WRITE, 0);
	struct rec *all = rec_insert(mm, 0, ~0UL);
	unsigned long t;
	long b;

	fill_pattern(mm, a, 8 * PG, 4);
	rec_reset(all);
	/* Shrink: the tail is unmapped. */
	cr_assert_eq(mm_mremap(mm, a, 8 * PG, 6 * PG, 0, 0), (long)a);
	EXPECT(all, EV(MMU_NOTIFY_UNMAP, a + 6 * PG, a + 8 * PG));
	/* Move: the source's entries move (UNMAP), then the source goes (UNMAP). */
	b = mm_mremap(mm, a, 6 * PG, 6 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
	cr_assert_gt(b, 0);
	EXPECT(all, EV(MMU_NOTIFY_UNMAP, a, a + 6 * PG));
	check_pattern(mm, (unsigned long)b, 6 * PG, 4);
	check_zero(mm, a, PG);
	rec_reset(all);
	cr_assert_eq(mm_munmap(mm, a, 6 * PG), 0);
	/* Onto an existing mapping: the destination goes first, then the source moves. */
	t = map_anon(mm, 0, 6 * PG, PROT_READ, 0);
	rec_reset(all);
	cr_assert_eq(mm_mremap(mm, (unsigned long)b, 6 * PG, 6 * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
			       t),
		     (long)t);
	EXPECT(all, EV(MMU_NOTIFY_UNMAP, t, t + 6 * PG),
	       EV(MMU_NOTIFY_UNMAP, (unsigned long)b, (unsigned long)b + 6 * PG),
	       EV(MMU_NOTIFY_UNMAP, (unsigned long)b, (unsigned long)b + 6 * PG));
	check_pattern(mm, t, 6 * PG, 4);
	/* Growing in place moves nothing. */
	cr_assert_eq(mm_mremap(mm, t, 6 * PG, 7 * PG, 0, 0), (long)t);
	cr_assert_eq(rec_count(all), 0);
	rec_remove(all);
	mmput(mm);
}

Test(notifier, madvise_fires_clear)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PG, PROT_READ | PROT_WRITE, 0);
	struct rec *all = rec_insert(mm, 0, ~0UL);

	fill_pattern(mm, a, 8 * PG, 5);
	rec_reset(all);
	cr_assert_eq(mm_madvise(mm, a + PG, 2 * PG, MADV_DONTNEED), 0);
	EXPECT(all, EV(MMU_NOTIFY_CLEAR, a + PG, a + 3 * PG));
	cr_assert_eq(mm_madvise(mm, a + 4 * PG, 3 * PG, MADV_FREE), 0);
	EXPECT(all, EV(MMU_NOTIFY_CLEAR, a + 4 * PG, a + 7 * PG));
	/* Reclaim drops the clean lazyfree pages: CLEAR over what it drops. */
	cr_assert_eq(uhmm_drop_lazyfree(machine), 3);
	EXPECT(all, EV(MMU_NOTIFY_CLEAR, a + 4 * PG, a + 7 * PG));
	cr_assert_eq(uhmm_drop_lazyfree(machine), 0);
	cr_assert_eq(rec_count(all), 0, "nothing to drop, nothing to say");
	/* Advice that changes no mapping says nothing; errors neither. */
	cr_assert_eq(mm_madvise(mm, a, 8 * PG, MADV_WILLNEED), 0);
	cr_assert_eq(mm_madvise(mm, a, 8 * PG, 12345), -EINVAL);
	cr_assert_eq(rec_count(all), 0);
	rec_remove(all);
	mmput(mm);
}

Test(notifier, madvise_collapse_fires_clear)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_plain(mm, PMD_SIZE);
	struct rec *all = rec_insert(mm, 0, ~0UL);

	fill_pattern(mm, a, PMD_SIZE, 6);
	rec_reset(all);
	cr_assert_eq(mm_madvise(mm, a, PMD_SIZE, MADV_COLLAPSE), 0);
	cr_assert_eq(anon_huge(mm), PMD_SIZE);
	EXPECT(all, EV(MMU_NOTIFY_CLEAR, a, a + PMD_SIZE));
	check_pattern(mm, a, PMD_SIZE, 6);
	rec_remove(all);
	mmput(mm);
}

Test(notifier, madvise_remove_and_truncate_clear_each_mm)
{
	struct file *f = new_memfd();
	struct mm_struct *mm1 = new_mm(), *mm2 = new_mm();
	unsigned long a1, a2;
	struct rec *r1, *r2;

	cr_assert_eq(uhmm_ftruncate(f, 8 * PG), 0);
	a1 = map_file(mm1, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	a2 = map_file(mm2, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, f, 4 * PG);
	fill_pattern(mm1, a1, 8 * PG, 7);
	r1 = rec_insert(mm1, 0, ~0UL);
	r2 = rec_insert(mm2, 0, ~0UL);

	/* Hole punch of file pages 5..6 through mm1: both mms hear it. */
	cr_assert_eq(mm_madvise(mm1, a1 + 5 * PG, 2 * PG, MADV_REMOVE), 0);
	EXPECT(r1, EV(MMU_NOTIFY_CLEAR, a1 + 5 * PG, a1 + 7 * PG));
	EXPECT(r2, EV(MMU_NOTIFY_CLEAR, a2 + PG, a2 + 3 * PG));

	/* Truncate to 6 pages: pages 6..7 go, unmapped before and after. */
	cr_assert_eq(uhmm_ftruncate(f, 6 * PG), 0);
	EXPECT(r1, EV(MMU_NOTIFY_CLEAR, a1 + 6 * PG, a1 + 8 * PG),
	       EV(MMU_NOTIFY_CLEAR, a1 + 6 * PG, a1 + 8 * PG));
	EXPECT(r2, EV(MMU_NOTIFY_CLEAR, a2 + 2 * PG, a2 + 4 * PG),
	       EV(MMU_NOTIFY_CLEAR, a2 + 2 * PG, a2 + 4 * PG));
	rec_remove(r1);
	rec_remove(r2);
	mmput(mm1);
	mmput(mm2);
	fput(f);
}

Test(notifier, fork_write_protects_parent_cow_ranges)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	/* Read-only so it does not merge with @a; never touched, no anon_vma. */
	unsigned long untouched = map_anon(mm, 0, 4 * PG, PROT_READ, 0);
	struct file *f = new_memfd();
	unsigned long s;
	struct mm_struct *child;
	struct rec *all = rec_insert(mm, 0, ~0UL);
	uint8_t byte = 0x5a;

	cr_assert_eq(uhmm_ftruncate(f, 4 * PG), 0);
	s = map_file(mm, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	fill_pattern(mm, s, 4 * PG, 8);
	fill_pattern(mm, a, 4 * PG, 8);
	rec_reset(all);
	child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	/* Only the private VMA with pages: neither the shared nor the empty one. */
	EXPECT(all, EV(MMU_NOTIFY_PROTECTION_PAGE, a, a + 4 * PG));
	(void)untouched;

	/* COW in the parent replaces one page: CLEAR of that page. */
	cr_assert_eq(cpu_write(mm, a + PG + 8, &byte, 1), 0);
	EXPECT(all, EV(MMU_NOTIFY_CLEAR, a + PG, a + 2 * PG));
	/* The child's writes are not the parent's business. */
	cr_assert_eq(cpu_write(child, a + 2 * PG, &byte, 1), 0);
	/* The parent's last copy is reused in place, exclusive now: no event. */
	cr_assert_eq(cpu_write(mm, a + 2 * PG, &byte, 1), 0);
	cr_assert_eq(cpu_write(mm, a + PG, &byte, 1), 0);
	cr_assert_eq(rec_count(all), 0);
	mmput(child);
	rec_remove(all);
	mmput(mm);
	fput(f);
}

Test(notifier, zero_page_cow_fires_clear)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	struct rec *all = rec_insert(mm, 0, ~0UL);
	uint8_t byte = 1;

	check_zero(mm, a, 4 * PG); /* zero page mapped */
	cr_assert_eq(cpu_write(mm, a + 3 * PG, &byte, 1), 0);
	EXPECT(all, EV(MMU_NOTIFY_CLEAR, a + 3 * PG, a + 4 * PG));
	/* A first write to an empty PTE replaces nothing. */
	rec_remove(all);
	all = rec_insert(mm, 0, ~0UL);
	cr_assert_eq(mm_madvise(mm, a, PG, MADV_DONTNEED), 0);
	rec_reset(all);
	cr_assert_eq(cpu_write(mm, a, &byte, 1), 0);
	cr_assert_eq(rec_count(all), 0);
	rec_remove(all);
	mmput(mm);
}

Test(notifier, huge_zero_and_thp_cow_split_fire_clear)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_thp(mm, 2 * PMD_SIZE);
	struct mm_struct *child;
	struct rec *all = rec_insert(mm, 0, ~0UL);
	uint8_t byte = 2;

	/* Read: the huge zero page.  Write: one CLEAR of the PMD, which gets a new THP. */
	check_zero(mm, a, PG);
	cr_assert(pagemap(mm, a) & PM_PRESENT);
	rec_reset(all);
	cr_assert_eq(cpu_write(mm, a + 5 * PG, &byte, 1), 0);
	EXPECT(all, EV(MMU_NOTIFY_CLEAR, a, a + PMD_SIZE));

	/* A THP shared with a child: the parent's write splits, then copies one page. */
	fill_pattern(mm, a + PMD_SIZE, PMD_SIZE, 9);
	cr_assert_eq(anon_huge(mm), 2 * PMD_SIZE);
	child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	rec_reset(all);
	cr_assert_eq(cpu_write(mm, a + PMD_SIZE + 7 * PG, &byte, 1), 0);
	EXPECT(all, EV(MMU_NOTIFY_CLEAR, a + PMD_SIZE, a + 2 * PMD_SIZE),
	       EV(MMU_NOTIFY_CLEAR, a + PMD_SIZE + 7 * PG, a + PMD_SIZE + 8 * PG));
	check_pattern(child, a + PMD_SIZE, PMD_SIZE, 9);
	mmput(child);
	rec_remove(all);
	mmput(mm);
}

Test(notifier, hugetlb_operations_fire_events)
{
	struct mm_struct *mm = new_mm();
	long a = mm_mmap(mm, 0, 2 * HPAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, NULL, 0);
	struct mm_struct *child;
	struct rec *all;
	uint8_t byte = 3;

	cr_assert_gt(a, 0);
	fill_pattern(mm, (unsigned long)a, 2 * HPAGE_SIZE, 11);
	all = rec_insert(mm, 0, ~0UL);
	child = mm_fork(mm);
	cr_assert(!IS_ERR(child));
	EXPECT(all, EV(MMU_NOTIFY_PROTECTION_PAGE, (unsigned long)a, (unsigned long)a + 2 * HPAGE_SIZE));
	/* COW of a private huge page: CLEAR of the whole huge page. */
	cr_assert_eq(cpu_write(mm, (unsigned long)a + HPAGE_SIZE + 5, &byte, 1), 0);
	EXPECT(all, EV(MMU_NOTIFY_CLEAR, (unsigned long)a + HPAGE_SIZE,
		       (unsigned long)a + 2 * HPAGE_SIZE));
	mmput(child);
	cr_assert_eq(mm_mprotect(mm, (unsigned long)a, HPAGE_SIZE, PROT_READ), 0);
	EXPECT(all, EV(MMU_NOTIFY_PROTECTION_VMA, (unsigned long)a, (unsigned long)a + HPAGE_SIZE));
	cr_assert_eq(mm_munmap(mm, (unsigned long)a, 2 * HPAGE_SIZE), 0);
	EXPECT(all, EV(MMU_NOTIFY_UNMAP, (unsigned long)a, (unsigned long)a + 2 * HPAGE_SIZE));
	rec_remove(all);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* A mirror following the retry protocol under concurrent changes      */
/* ------------------------------------------------------------------ */

#define MIRROR_PAGES 64

/*
 * A device page table for [base, base + MIRROR_PAGES pages): pfn + 1, or 0.
 * invalidate() clears the range under the device lock, as a driver must.
 */
struct mirror {
	struct mmu_interval_notifier sub;
	pthread_mutex_t lock;
	unsigned long base;
	unsigned long pt[MIRROR_PAGES];
	unsigned long invalidations;
};

static bool mirror_invalidate(struct mmu_interval_notifier *sub,
			      const struct mmu_notifier_range *range, unsigned long cur_seq)
{
	struct mirror *m = container_of(sub, struct mirror, sub);

	pthread_mutex_lock(&m->lock);
	mmu_interval_set_seq(sub, cur_seq);
	for (int i = 0; i < MIRROR_PAGES; i++) {
		unsigned long addr = m->base + (unsigned long)i * PG;

		if (addr >= range->start && addr < range->end)
			m->pt[i] = 0;
	}
	m->invalidations++;
	pthread_mutex_unlock(&m->lock);
	return true;
}

static const struct mmu_interval_notifier_ops mirror_ops = { .invalidate = mirror_invalidate };

/*
 * What the CPU maps at @addr, read without mmap_lock.  Safe here only for
 * addresses the mirror holds valid: their tables cannot go before the
 * invalidation, which needs the mirror lock the caller holds.
 */
static unsigned long cpu_pfn_lockless(struct mm_struct *mm, unsigned long addr)
{
	pmd_t *pmd = pmd_off(mm, addr);
	pmd_t val;
	pte_t pte;

	if (!pmd)
		return 0;
	val = pmdp_get(pmd);
	if (pmd_leaf(val))
		return pmd_pfn(val) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
	if (pmd_none(val) || is_swap_pmd(val))
		return 0;
	pte = ptep_get((pte_t *)pt_entry_table(mm, pmd_val(val)) + pte_index(addr));
	return pte_present(pte) ? pte_pfn(pte) : 0;
}

struct mirror_ctx {
	struct mm_struct *mm;
	struct mirror *m;
	atomic_int stop;
	bool use_hmm; /* snapshot with hmm_range_fault() instead of pagemap */
	/* results, read after join */
	unsigned long programs, retries, stale;
};

/*
 * The invariant, under the mirror lock: every valid device entry is what
 * the CPU maps there now.
 */
static void mirror_check(struct mirror_ctx *c)
{
	struct mirror *m = c->m;

	for (int i = 0; i < MIRROR_PAGES; i++)
		if (m->pt[i] &&
		    cpu_pfn_lockless(c->mm, m->base + (unsigned long)i * PG) != m->pt[i] - 1)
			c->stale++;
}

/* One snapshot by the protocol; returns once it programmed the mirror. */
static void mirror_snapshot(struct mirror_ctx *c)
{
	struct mirror *m = c->m;
	uint64_t pm[MIRROR_PAGES];
	unsigned long seq;

	for (;;) {
		seq = mmu_interval_read_begin(&m->sub);
		if (c->use_hmm) {
			unsigned long pfns[MIRROR_PAGES] = { 0 };
			struct hmm_range range = {
				.notifier = &m->sub, .notifier_seq = seq, .start = m->base,
				.end = m->base + MIRROR_PAGES * PG, .hmm_pfns = pfns,
			};
			int ret;

			mmap_read_lock(c->mm);
			ret = hmm_range_fault(&range);
			mmap_read_unlock(c->mm);
			if (ret == -EBUSY) {
				c->retries++;
				continue;
			}
			if (ret)
				c->stale += 1000; /* cannot fail without a fault request */
			for (int i = 0; i < MIRROR_PAGES; i++)
				pm[i] = (pfns[i] & HMM_PFN_VALID) ?
						PM_PRESENT | (pfns[i] & ~HMM_PFN_FLAGS) : 0;
		} else if (mm_pagemap_read(c->mm, m->base, MIRROR_PAGES, pm)) {
			pm[0] = 0;
		}
		pthread_mutex_lock(&m->lock);
		if (mmu_interval_read_retry(&m->sub, seq)) {
			pthread_mutex_unlock(&m->lock);
			c->retries++;
			continue;
		}
		for (int i = 0; i < MIRROR_PAGES; i++)
			m->pt[i] = (pm[i] & PM_PRESENT) ? (pm[i] & PM_PFRAME_MASK) + 1 : 0;
		mirror_check(c);
		c->programs++;
		pthread_mutex_unlock(&m->lock);
		return;
	}
}

static void *mirror_thread(void *arg)
{
	struct mirror_ctx *c = arg;

	while (!atomic_load(&c->stop)) {
		mirror_snapshot(c);
		/* Between snapshots the device keeps using its entries. */
		for (int i = 0; i < 4; i++) {
			pthread_mutex_lock(&c->m->lock);
			mirror_check(c);
			pthread_mutex_unlock(&c->m->lock);
			sched_yield();
		}
	}
	return NULL;
}

struct changer {
	struct mm_struct *mm;
	unsigned long base;
	int kind; /* 0: munmap + mmap again, 1: mprotect, 2: MADV_DONTNEED */
	uint64_t seed;
	int errors;
};

static bool ok(int ret)
{
	return ret == 0 || ret == -ENOMEM;
}

static void *changer_thread(void *arg)
{
	struct changer *ch = arg;
	uint64_t x = ch->seed;

	for (int it = 0; it < 300; it++) {
		unsigned long first, n, addr;
		uint8_t byte = (uint8_t)it;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		first = x % MIRROR_PAGES;
		n = 1 + (x >> 8) % (MIRROR_PAGES - first);
		addr = ch->base + first * PG;
		switch (ch->kind) {
		case 0:
			if (mm_munmap(ch->mm, addr, n * PG))
				ch->errors++;
			/* Leave the hole for a moment: the mirror must not see pages there. */
			for (int y = 0; y < 5; y++)
				sched_yield();
			if (mm_mmap(ch->mm, addr, n * PG, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, NULL, 0) != (long)addr)
				ch->errors++;
			break;
		case 1:
			/* -ENOMEM: changer 0 has a hole there right now. */
			if (!ok(mm_mprotect(ch->mm, addr, n * PG, PROT_READ)) ||
			    !ok(mm_mprotect(ch->mm, addr, n * PG, PROT_READ | PROT_WRITE)))
				ch->errors++;
			break;
		default:
			if (!ok(mm_madvise(ch->mm, addr, n * PG, MADV_DONTNEED)))
				ch->errors++;
			break;
		}
		/* Touch pages so the mirror has something to follow; -EFAULT: a
		 * hole or changer 1's read-only window. */
		for (unsigned long i = 0; i < n; i += 3) {
			int ret = cpu_write(ch->mm, addr + i * PG, &byte, 1);

			if (ret && ret != -EFAULT)
				ch->errors++;
		}
	}
	return NULL;
}

static void mirror_run(bool use_hmm)
{
	struct mm_struct *mm = new_mm();
	unsigned long base = map_anon(mm, 0, MIRROR_PAGES * PG, PROT_READ | PROT_WRITE, 0);
	struct mirror *m = calloc(1, sizeof(*m));
	struct mirror_ctx ctx = { .mm = mm, .m = m, .use_hmm = use_hmm };
	struct changer ch[3];
	pthread_t mt, ct[3];
	uint64_t pm[MIRROR_PAGES];

	cr_assert_not_null(m);
	pthread_mutex_init(&m->lock, NULL);
	m->base = base;
	fill_pattern(mm, base, MIRROR_PAGES * PG, 10);
	cr_assert_eq(mmu_interval_notifier_insert(&m->sub, mm, base, MIRROR_PAGES * PG, &mirror_ops),
		     0);
	cr_assert_eq(pthread_create(&mt, NULL, mirror_thread, &ctx), 0);
	for (int i = 0; i < 3; i++) {
		ch[i] = (struct changer){ .mm = mm, .base = base, .kind = i,
					  .seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1) };
		cr_assert_eq(pthread_create(&ct[i], NULL, changer_thread, &ch[i]), 0);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(ct[i], NULL);
	atomic_store(&ctx.stop, 1);
	pthread_join(mt, NULL);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(ch[i].errors, 0, "changer %d failed %d operations", i, ch[i].errors);
	cr_assert_eq(ctx.stale, 0, "%lu device entries pointed at pages the CPU no longer maps",
		     ctx.stale);
	cr_assert_gt(m->invalidations, 0);

	/* Quiet now: one more snapshot equals the CPU's page table. */
	mirror_snapshot(&ctx);
	cr_assert_eq(mm_pagemap_read(mm, base, MIRROR_PAGES, pm), 0);
	for (int i = 0; i < MIRROR_PAGES; i++)
		cr_assert_eq(m->pt[i], (pm[i] & PM_PRESENT) ? (pm[i] & PM_PFRAME_MASK) + 1 : 0);
	cr_log_info("mirror: %lu programs, %lu retries, %lu invalidations", ctx.programs,
		    ctx.retries, m->invalidations);
	mmu_interval_notifier_remove(&m->sub);
	pthread_mutex_destroy(&m->lock);
	free(m);
	mmput(mm);
}

Test(notifier, mirror_follows_concurrent_changes)
{
	mirror_run(false);
}

Test(notifier, hmm_mirror_follows_concurrent_changes)
{
	mirror_run(true);
}

/* ------------------------------------------------------------------ */
/* Inserts and removes racing with invalidations                       */
/* ------------------------------------------------------------------ */

struct churn_sub {
	struct mmu_interval_notifier sub;
	atomic_int removed;     /* set once remove() returned */
	atomic_int *late_calls; /* invalidate() after remove() returned */
	atomic_int *calls;
};

static bool churn_invalidate(struct mmu_interval_notifier *sub,
			     const struct mmu_notifier_range *range, unsigned long cur_seq)
{
	struct churn_sub *c = container_of(sub, struct churn_sub, sub);

	(void)range;
	/* Give a remove() that does not wait the time to return. */
	for (int i = 0; i < 3; i++)
		sched_yield();
	if (atomic_load(&c->removed))
		atomic_fetch_add(c->late_calls, 1);
	mmu_interval_set_seq(sub, cur_seq);
	atomic_fetch_add(c->calls, 1);
	return true;
}

static const struct mmu_interval_notifier_ops churn_ops = { .invalidate = churn_invalidate };

struct churn_ctx {
	struct mm_struct *mm;
	unsigned long base;
	atomic_int late_calls, calls, errors;
	atomic_int stop;
	atomic_int ops; /* invalidating operations done */
};

static void *churn_registrar(void *arg)
{
	struct churn_ctx *ctx = arg;

	for (int it = 0; it < 400; it++) {
		struct churn_sub *c = calloc(1, sizeof(*c));
		unsigned long seq;

		c->late_calls = &ctx->late_calls;
		c->calls = &ctx->calls;
		if (mmu_interval_notifier_insert(&c->sub, ctx->mm, ctx->base + (unsigned long)(it % 8) * PG,
						 4 * PG, &churn_ops))
			atomic_fetch_add(&ctx->errors, 1);
		/* Let at least one invalidation run while it is registered. */
		for (int o = atomic_load(&ctx->ops); atomic_load(&ctx->ops) == o;)
			sched_yield();
		/* read_begin() returns an odd sequence the interval holds, after waiting. */
		seq = mmu_interval_read_begin(&c->sub);
		if (!(seq & 1))
			atomic_fetch_add(&ctx->errors, 1);
		mmu_interval_notifier_remove(&c->sub);
		atomic_store(&c->removed, 1);
		sched_yield();
		/* Freed storage would make a late call a use after free (ASan). */
		free(c);
	}
	return NULL;
}

static void *churn_invalidator(void *arg)
{
	struct churn_ctx *ctx = arg;
	int i = 0;

	while (!atomic_load(&ctx->stop)) {
		if (mm_madvise(ctx->mm, ctx->base + (unsigned long)(i % 8) * PG, 4 * PG, MADV_DONTNEED))
			atomic_fetch_add(&ctx->errors, 1);
		i++;
		atomic_fetch_add(&ctx->ops, 1);
		sched_yield();
	}
	return NULL;
}

Test(notifier, insert_and_remove_race_invalidations)
{
	struct mm_struct *mm = new_mm();
	struct churn_ctx ctx = { .mm = mm };
	pthread_t reg[2], inv[2];

	ctx.base = map_anon(mm, 0, 16 * PG, PROT_READ | PROT_WRITE, 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&inv[i], NULL, churn_invalidator, &ctx), 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&reg[i], NULL, churn_registrar, &ctx), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(reg[i], NULL);
	atomic_store(&ctx.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(inv[i], NULL);
	cr_assert_eq(atomic_load(&ctx.errors), 0);
	cr_assert_eq(atomic_load(&ctx.late_calls), 0, "invalidate() called after remove() returned");
	cr_assert_eq(atomic_load(&mm->mm_count), 1, "an interval's mm reference leaked");
	cr_assert_gt(atomic_load(&ctx.calls), 0);
	cr_log_info("churn: %d invalidate() calls", atomic_load(&ctx.calls));
	/* Idle again: the sequence is even and nothing is queued. */
	cr_assert_eq(uhmm_audit(machine, NULL), 0);
	mmput(mm);
}
