/* SPDX-License-Identifier: MIT */
/*
 * mm/mmu_notifier.c - interval notifiers and their sequence protocol, after
 * Linux's mm/mmu_notifier.c.
 *
 * Each mm that ever had an interval registered owns one struct
 * mmu_notifier_subscriptions (mm->notifier_subscriptions, NULL until then,
 * so the start/end hooks on every mapping change cost one load while no
 * driver mirrors the mm).  It holds:
 *
 *   invalidate_seq            even while no invalidation hits an interval;
 *                             odd (seq | 1) from the first start() that
 *                             hits one until the last active end(), which
 *                             makes it even again (seq + 1) and wakes the
 *                             sleepers of read_begin() and remove();
 *   active_invalidate_ranges  start()s without their end() yet;
 *   the interval list         walked without the lock by start(): while
 *                             seq is odd nobody links or unlinks an
 *                             interval, inserts and removes are queued on
 *   the deferred list         and applied by the end() that makes seq even.
 *
 * uhmm keeps the intervals on a plain list instead of Linux's interval tree
 * (drivers register few intervals); the protocol is the same.
 *
 * Locking: subscriptions->lock is a leaf: nothing is taken under it.  The
 * driver's invalidate() runs under whatever the caller of
 * mmu_notifier_invalidate_range_start() holds: mmap_lock (read or write),
 * or for reverse-map walks i_mmap_rwsem / the anon_vma lock / the folio
 * lock, never a page-table lock.  So a driver lock taken in invalidate()
 * nests inside those, and mmu_interval_read_begin() and
 * mmu_interval_notifier_remove(), which sleep until invalidations end,
 * must not be called with any of them held (nor with the driver lock).
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "uhmm/mmu_notifier.h"

/*
 * uhmm-internal bit of mmu_notifier_range.flags: start() counted this range
 * in active_invalidate_ranges, so end() must uncount it.  Linux relies on
 * mm_take_all_locks() in registration to keep mm_has_notifiers() stable
 * between start and end; uhmm registers under mmap_lock alone, so a reverse
 * map walk (no mmap_lock) could otherwise see the pointer appear between
 * its start and its end.
 */
#define MMU_NOTIFIER_RANGE_COUNTED (1u << 31)

/**
 * struct mmu_notifier_subscriptions - the notifier state of one mm.
 * @lock: protects everything below (a leaf lock).
 * @wq: read_begin() and remove() sleep on it until @invalidate_seq moves.
 * @invalidate_seq: see the file comment.
 * @active_invalidate_ranges: start()s not yet ended.
 * @head: the registered intervals (node_prev/node_next).
 * @deferred: inserts and removes queued while invalidating (deferred_next).
 */
struct mmu_notifier_subscriptions {
	pthread_mutex_t lock;
	pthread_cond_t wq;
	unsigned long invalidate_seq;
	unsigned long active_invalidate_ranges;
	struct mmu_interval_notifier *head;
	struct mmu_interval_notifier *deferred;
};

static struct mmu_notifier_subscriptions *mm_subscriptions(struct mm_struct *mm)
{
	return __atomic_load_n(&mm->notifier_subscriptions, __ATOMIC_ACQUIRE);
}

static bool mn_itree_is_invalidating(const struct mmu_notifier_subscriptions *subs)
{
	return subs->invalidate_seq & 1;
}

static void itree_link(struct mmu_notifier_subscriptions *subs, struct mmu_interval_notifier *sub)
{
	sub->node_prev = NULL;
	sub->node_next = subs->head;
	if (subs->head)
		subs->head->node_prev = sub;
	subs->head = sub;
	sub->in_tree = true;
}

static void itree_unlink(struct mmu_notifier_subscriptions *subs, struct mmu_interval_notifier *sub)
{
	if (sub->node_prev)
		sub->node_prev->node_next = sub->node_next;
	else
		subs->head = sub->node_next;
	if (sub->node_next)
		sub->node_next->node_prev = sub->node_prev;
	sub->node_prev = sub->node_next = NULL;
	sub->in_tree = false;
}

static void deferred_add(struct mmu_notifier_subscriptions *subs, struct mmu_interval_notifier *sub)
{
	sub->deferred_next = subs->deferred;
	subs->deferred = sub;
	sub->deferred = 1;
}

static void deferred_del(struct mmu_notifier_subscriptions *subs, struct mmu_interval_notifier *sub)
{
	struct mmu_interval_notifier **pp = &subs->deferred;

	while (*pp && *pp != sub)
		pp = &(*pp)->deferred_next;
	if (*pp)
		*pp = sub->deferred_next;
	sub->deferred_next = NULL;
	sub->deferred = 0;
}

static bool overlaps(const struct mmu_interval_notifier *sub, const struct mmu_notifier_range *range)
{
	return sub->start < range->end && sub->last >= range->start;
}

static struct mmu_interval_notifier *itree_next(struct mmu_interval_notifier *sub,
						const struct mmu_notifier_range *range)
{
	for (; sub; sub = sub->node_next)
		if (overlaps(sub, range))
			return sub;
	return NULL;
}

/*
 * The first registration: allocate the subscriptions and publish them.
 * mmap_lock held for writing, so two inserts cannot both allocate.
 */
static int mmu_notifier_subscriptions_get(struct mm_struct *mm)
{
	struct mmu_notifier_subscriptions *subs;

	if (mm->notifier_subscriptions)
		return 0;
	subs = calloc(1, sizeof(*subs));
	if (!subs)
		return -ENOMEM;
	pthread_mutex_init(&subs->lock, NULL);
	pthread_cond_init(&subs->wq, NULL);
	/* Even: idle.  A new interval's seq is seq - 1, which never matches. */
	subs->invalidate_seq = 2;
	__atomic_store_n(&mm->notifier_subscriptions, subs, __ATOMIC_RELEASE);
	return 0;
}

/**
 * mmu_notifier_subscriptions_destroy() - free @mm's notifier state; from the
 * last mmdrop(), when no interval can be registered any more (each holds an
 * mm_count reference).
 */
void mmu_notifier_subscriptions_destroy(struct mm_struct *mm)
{
	struct mmu_notifier_subscriptions *subs = mm->notifier_subscriptions;

	if (!subs)
		return;
	if (subs->head || subs->deferred || subs->active_invalidate_ranges)
		uhmm_warn("mmu_notifier: mm freed with intervals or invalidations left");
	pthread_mutex_destroy(&subs->lock);
	pthread_cond_destroy(&subs->wq);
	free(subs);
	mm->notifier_subscriptions = NULL;
}

static int __mmu_interval_notifier_insert(struct mmu_interval_notifier *sub, struct mm_struct *mm,
					  unsigned long start, unsigned long length,
					  const struct mmu_interval_notifier_ops *ops)
{
	struct mmu_notifier_subscriptions *subs = mm_subscriptions(mm);

	sub->mm = mm;
	sub->ops = ops;
	sub->start = start;
	sub->last = start + (length - 1);
	sub->node_prev = sub->node_next = sub->deferred_next = NULL;
	sub->in_tree = false;
	sub->deferred = 0;
	mmgrab(mm);

	pthread_mutex_lock(&subs->lock);
	if (subs->active_invalidate_ranges) {
		if (mn_itree_is_invalidating(subs)) {
			/* Someone walks the list: link it when the walk ends. */
			deferred_add(subs, sub);
		} else {
			/*
			 * Invalidations run but hit no interval: link it now and
			 * make seq odd, so that read_begin() on it waits for them
			 * to end (their pages may be changing).
			 */
			subs->invalidate_seq |= 1;
			itree_link(subs, sub);
		}
		__atomic_store_n(&sub->invalidate_seq, subs->invalidate_seq, __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&sub->invalidate_seq, subs->invalidate_seq - 1, __ATOMIC_RELAXED);
		itree_link(subs, sub);
	}
	pthread_mutex_unlock(&subs->lock);
	return 0;
}

static int insert_check(struct mmu_interval_notifier *interval_sub, struct mm_struct *mm,
			unsigned long start, unsigned long length,
			const struct mmu_interval_notifier_ops *ops)
{
	/* uhmm only: Linux oopses on a NULL interval or mm. */
	if (!interval_sub || !mm)
		return -EINVAL;
	/*
	 * uhmm differs from Linux on purpose: Linux does not check @ops and
	 * oopses at the first invalidation; uhmm refuses an interval without
	 * an invalidate() callback with -EINVAL, before anything changes.
	 */
	if (!ops || !ops->invalidate)
		return -EINVAL;
	/* Linux: length 0 or start + length - 1 wrapping is -EOVERFLOW. */
	if (length == 0 || start + (length - 1) < start)
		return -EOVERFLOW;
	return 0;
}

/**
 * mmu_interval_notifier_insert() - see uhmm/mmu_notifier.h.  Takes mmap_lock
 * for writing the first time @mm gets an interval.
 * Return: 0, -EINVAL (@ops or ops->invalidate NULL), -EOVERFLOW or -ENOMEM.
 */
int mmu_interval_notifier_insert(struct mmu_interval_notifier *interval_sub, struct mm_struct *mm,
				 unsigned long start, unsigned long length,
				 const struct mmu_interval_notifier_ops *ops)
{
	int ret = insert_check(interval_sub, mm, start, length, ops);

	if (ret)
		return ret;
	if (!mm_subscriptions(mm)) {
		mmap_write_lock(mm);
		ret = mmu_notifier_subscriptions_get(mm);
		mmap_write_unlock(mm);
		if (ret)
			return ret;
	}
	return __mmu_interval_notifier_insert(interval_sub, mm, start, length, ops);
}

/**
 * mmu_interval_notifier_insert_locked() - mmu_interval_notifier_insert()
 * with mmap_lock already held for writing.
 * Return: 0, -EINVAL (@ops or ops->invalidate NULL), -EOVERFLOW or -ENOMEM.
 */
int mmu_interval_notifier_insert_locked(struct mmu_interval_notifier *interval_sub,
					struct mm_struct *mm, unsigned long start,
					unsigned long length,
					const struct mmu_interval_notifier_ops *ops)
{
	int ret = insert_check(interval_sub, mm, start, length, ops);

	if (ret)
		return ret;
	ret = mmu_notifier_subscriptions_get(mm);
	if (ret)
		return ret;
	return __mmu_interval_notifier_insert(interval_sub, mm, start, length, ops);
}

/**
 * mmu_interval_notifier_remove() - unregister @interval_sub.  If an
 * invalidation is running, the unlink is deferred to its end and this waits
 * for it, so invalidate() is never called after the return.  Sleeps: no
 * mmap_lock, no driver lock held.  Drops the insert's mm_count reference.
 */
void mmu_interval_notifier_remove(struct mmu_interval_notifier *interval_sub)
{
	struct mm_struct *mm = interval_sub ? interval_sub->mm : NULL;
	struct mmu_notifier_subscriptions *subs;
	unsigned long seq = 0;

	/*
	 * uhmm only: an interval that was never inserted (zeroed), or was
	 * removed already (->mm is cleared below), is left alone; Linux would
	 * oops or drop the mm reference twice.
	 */
	if (!mm)
		return;
	subs = mm_subscriptions(mm);
	pthread_mutex_lock(&subs->lock);
	if (mn_itree_is_invalidating(subs)) {
		if (!interval_sub->in_tree) {
			/* Inserted during this invalidation, never linked. */
			deferred_del(subs, interval_sub);
		} else {
			deferred_add(subs, interval_sub);
			seq = subs->invalidate_seq;
		}
	} else {
		itree_unlink(subs, interval_sub);
	}
	if (seq)
		while (subs->invalidate_seq == seq)
			pthread_cond_wait(&subs->wq, &subs->lock);
	pthread_mutex_unlock(&subs->lock);
	interval_sub->mm = NULL; /* no invalidation reaches it any more */
	mmdrop(mm);
}

/**
 * mmu_interval_read_begin() - see uhmm/mmu_notifier.h.  Sleeps (on a
 * condition variable) while an invalidation of the interval runs; call it
 * without mmap_lock and without the driver lock.
 * Return: the sequence for mmu_interval_read_retry().
 */
unsigned long mmu_interval_read_begin(struct mmu_interval_notifier *interval_sub)
{
	struct mmu_notifier_subscriptions *subs = mm_subscriptions(interval_sub->mm);
	unsigned long seq;

	pthread_mutex_lock(&subs->lock);
	seq = __atomic_load_n(&interval_sub->invalidate_seq, __ATOMIC_RELAXED);
	/*
	 * The interval's seq equals the mm's odd seq only while an
	 * invalidation that called (or will call) its invalidate() runs:
	 * wait until the last one ends.
	 */
	while (seq == subs->invalidate_seq)
		pthread_cond_wait(&subs->wq, &subs->lock);
	pthread_mutex_unlock(&subs->lock);
	return seq;
}

static void mn_itree_inv_end(struct mmu_notifier_subscriptions *subs)
{
	struct mmu_interval_notifier *sub, *next;

	pthread_mutex_lock(&subs->lock);
	if (--subs->active_invalidate_ranges || !mn_itree_is_invalidating(subs)) {
		pthread_mutex_unlock(&subs->lock);
		return;
	}
	/* The last one out: seq even again, then apply the queued changes. */
	subs->invalidate_seq++;
	for (sub = subs->deferred; sub; sub = next) {
		next = sub->deferred_next;
		if (sub->in_tree)
			itree_unlink(subs, sub);
		else
			itree_link(subs, sub);
		sub->deferred_next = NULL;
		sub->deferred = 0;
	}
	subs->deferred = NULL;
	pthread_cond_broadcast(&subs->wq);
	pthread_mutex_unlock(&subs->lock);
}

static int __invalidate_range_start(struct mmu_notifier_range *range)
{
	struct mmu_notifier_subscriptions *subs = mm_subscriptions(range->mm);
	struct mmu_interval_notifier *sub;
	unsigned long cur_seq = 0;

	if (!subs)
		return 0;
	pthread_mutex_lock(&subs->lock);
	subs->active_invalidate_ranges++;
	sub = itree_next(subs->head, range);
	if (sub) {
		subs->invalidate_seq |= 1;
		cur_seq = subs->invalidate_seq;
	}
	pthread_mutex_unlock(&subs->lock);
	range->flags |= MMU_NOTIFIER_RANGE_COUNTED;

	/* seq is odd until our end(): nobody links or unlinks meanwhile. */
	for (; sub; sub = itree_next(sub->node_next, range)) {
		if (sub->ops->invalidate(sub, range, cur_seq))
			continue;
		if (mmu_notifier_range_blockable(range)) {
			uhmm_warn("mmu_notifier: invalidate() failed a blockable range");
			continue;
		}
		range->flags &= ~MMU_NOTIFIER_RANGE_COUNTED;
		mn_itree_inv_end(subs);
		return -EAGAIN;
	}
	return 0;
}

/**
 * mmu_notifier_invalidate_range_start() - see uhmm/mmu_notifier.h.  Marks
 * @range blockable (as Linux does) and calls every overlapping interval's
 * invalidate().  mmap_lock or the rmap locks held, never a page-table lock.
 * Return: 0.
 */
int mmu_notifier_invalidate_range_start(struct mmu_notifier_range *range)
{
	range->flags |= MMU_NOTIFIER_RANGE_BLOCKABLE;
	return __invalidate_range_start(range);
}

/**
 * mmu_notifier_invalidate_range_start_nonblock() - the same for a caller
 * that cannot sleep (Linux's OOM reaper): @range is not blockable.
 * Return: 0, or -EAGAIN when an invalidate() would have had to sleep; the
 * range is then already ended and must not be passed to _end().
 */
int mmu_notifier_invalidate_range_start_nonblock(struct mmu_notifier_range *range)
{
	range->flags &= ~MMU_NOTIFIER_RANGE_BLOCKABLE;
	return __invalidate_range_start(range);
}

/**
 * mmu_notifier_invalidate_range_end() - end @range, started by
 * mmu_notifier_invalidate_range_start(); the last active end makes the
 * sequence even, applies deferred inserts/removes and wakes sleepers.
 */
void mmu_notifier_invalidate_range_end(struct mmu_notifier_range *range)
{
	if (!(range->flags & MMU_NOTIFIER_RANGE_COUNTED))
		return;
	range->flags &= ~MMU_NOTIFIER_RANGE_COUNTED;
	mn_itree_inv_end(mm_subscriptions(range->mm));
}

/**
 * mmu_notifier_release() - exit_mmap(): every interval gets one
 * MMU_NOTIFY_RELEASE invalidation covering the whole address space, before
 * the pages are unmapped.  uhmm difference: Linux calls ->release() of
 * classic mmu_notifiers here and interval notifiers then see the
 * MMU_NOTIFY_UNMAP ranges of unmap_vmas(); uhmm has only interval notifiers
 * and tells them once, with RELEASE, and does not notify exit's zap.
 */
void mmu_notifier_release(struct mm_struct *mm)
{
	struct mmu_notifier_range range;

	if (!mm_subscriptions(mm))
		return;
	mmu_notifier_range_init(&range, MMU_NOTIFY_RELEASE, 0, mm, 0, ~0UL);
	mmu_notifier_invalidate_range_start(&range);
	mmu_notifier_invalidate_range_end(&range);
}

/**
 * mmu_notifier_audit() - check @mm's notifier state (uhmm_audit()): the
 * sequence is odd only while invalidations run, queued changes exist only
 * then, the interval list is well linked, every interval belongs to @mm,
 * has start <= last and an odd sequence no newer than the mm's, and each
 * holds an mm_count reference.  Takes the subscriptions lock; @mm is live
 * (on the machine's list) and its mmap_lock is held for reading.
 * Return: the number of violations, each reported on @report.
 */
int mmu_notifier_audit(struct mm_struct *mm, FILE *report)
{
	struct mmu_notifier_subscriptions *subs = mm_subscriptions(mm);
	struct mmu_interval_notifier *sub, *prev = NULL;
	unsigned long nr = 0, seq;
	int violations = 0;

#define NOTIFIER_VIOLATION(...)                                                       \
	do {                                                                          \
		violations++;                                                         \
		if (report) {                                                         \
			fprintf(report, "uhmm audit: mm %p: notifier: ", (void *)mm); \
			fprintf(report, __VA_ARGS__);                                 \
			fputc('\n', report);                                          \
		}                                                                     \
	} while (0)

	if (!subs)
		return 0;
	pthread_mutex_lock(&subs->lock);
	seq = subs->invalidate_seq;
	if ((seq & 1) && !subs->active_invalidate_ranges)
		NOTIFIER_VIOLATION("sequence %lu odd with no invalidation running", seq);
	if (subs->deferred && !(seq & 1))
		NOTIFIER_VIOLATION("queued inserts/removes while not invalidating");
	for (sub = subs->head; sub; prev = sub, sub = sub->node_next, nr++) {
		if (sub->node_prev != prev)
			NOTIFIER_VIOLATION("interval %p: broken list link", (void *)sub);
		if (!sub->in_tree)
			NOTIFIER_VIOLATION("interval %p listed but not marked in_tree", (void *)sub);
		if (sub->mm != mm)
			NOTIFIER_VIOLATION("interval %p belongs to mm %p", (void *)sub, (void *)sub->mm);
		if (sub->start > sub->last)
			NOTIFIER_VIOLATION("interval %p: start %#lx > last %#lx", (void *)sub,
					   sub->start, sub->last);
		if (!(sub->invalidate_seq & 1) || sub->invalidate_seq > seq)
			NOTIFIER_VIOLATION("interval %p: sequence %lu (mm's %lu)", (void *)sub,
					   sub->invalidate_seq, seq);
	}
	for (sub = subs->deferred; sub; sub = sub->deferred_next) {
		if (!sub->deferred)
			NOTIFIER_VIOLATION("interval %p queued but not marked deferred", (void *)sub);
		if (!sub->in_tree)
			nr++; /* a queued insert holds its reference too */
	}
	if ((unsigned long)atomic_load(&mm->mm_count) < nr + 1)
		NOTIFIER_VIOLATION("mm_count %d for %lu intervals", atomic_load(&mm->mm_count), nr);
	pthread_mutex_unlock(&subs->lock);
#undef NOTIFIER_VIOLATION
	return violations;
}
