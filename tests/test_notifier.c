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

#include <pthread.h>
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
