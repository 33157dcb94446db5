/* SPDX-License-Identifier: MIT */
/*
 * uhmm/mmu_notifier.h - interval notifiers: a driver that mirrors part of
 * an address space is told, before the CPU page tables change, which range
 * is about to change and why, after include/linux/mmu_notifier.h.
 *
 * Sequence protocol (Linux's): each mm has an invalidate_seq that is even
 * while no invalidation touching a registered interval runs.  Starting one
 * makes it odd, and that odd value is the cur_seq handed to every
 * overlapping interval's invalidate(), which must call
 * mmu_interval_set_seq(sub, cur_seq) under the driver's lock and tear down
 * its device mappings of the range before it returns.  When the last
 * active invalidation ends the mm's seq becomes even again and sleepers in
 * mmu_interval_read_begin() wake.
 *
 * The driver side:
 *
 *	again:
 *		range.notifier_seq = mmu_interval_read_begin(&sub);
 *		mmap_read_lock(mm);
 *		ret = hmm_range_fault(&range);
 *		mmap_read_unlock(mm);
 *		if (ret == -EBUSY)
 *			goto again;
 *		lock(driver);
 *		if (mmu_interval_read_retry(&sub, range.notifier_seq)) {
 *			unlock(driver);
 *			goto again;
 *		}
 *		program the device page table;
 *		unlock(driver);
 *
 * Every core operation that changes a mapping brackets it with
 * mmu_notifier_invalidate_range_start()/_end(): munmap, mprotect, mremap,
 * madvise (DONTNEED, FREE, REMOVE, COLLAPSE), fork's write-protect, COW,
 * THP split, migration, reclaim and exit (MMU_NOTIFY_RELEASE).
 */
#ifndef UHMM_MMU_NOTIFIER_H
#define UHMM_MMU_NOTIFIER_H

#include "uhmm/mm_types.h"

/**
 * enum mmu_notifier_event - why a range is invalidated.
 * @MMU_NOTIFY_UNMAP: the range is unmapped (munmap, mremap's source).
 * @MMU_NOTIFY_CLEAR: pages are dropped but the VMA stays (MADV_DONTNEED,
 *                    COW replacing a page, zap of a file range, reclaim).
 * @MMU_NOTIFY_PROTECTION_VMA: the VMA's protection changes (mprotect).
 * @MMU_NOTIFY_PROTECTION_PAGE: some pages lose write (fork's write-protect).
 * @MMU_NOTIFY_SOFT_DIRTY: soft-dirty tracking was reset.
 * @MMU_NOTIFY_RELEASE: the mm is being torn down (exit).
 * @MMU_NOTIFY_MIGRATE: pages are migrating; @owner is the initiator's
 *                      pgmap_owner so it can skip its own events.
 * @MMU_NOTIFY_EXCLUSIVE: a device takes exclusive access; @owner is set.
 */
enum mmu_notifier_event {
	MMU_NOTIFY_UNMAP = 0,
	MMU_NOTIFY_CLEAR,
	MMU_NOTIFY_PROTECTION_VMA,
	MMU_NOTIFY_PROTECTION_PAGE,
	MMU_NOTIFY_SOFT_DIRTY,
	MMU_NOTIFY_RELEASE,
	MMU_NOTIFY_MIGRATE,
	MMU_NOTIFY_EXCLUSIVE,
};

#define MMU_NOTIFIER_RANGE_BLOCKABLE (1 << 0)

/**
 * struct mmu_notifier_range - what is being invalidated.
 * @mm: the address space.
 * @start: first byte.
 * @end: one past the last byte.
 * @flags: MMU_NOTIFIER_RANGE_BLOCKABLE when invalidate() may sleep.
 * @event: why.
 * @owner: for MMU_NOTIFY_MIGRATE/EXCLUSIVE: the initiator's owner cookie.
 */
struct mmu_notifier_range {
	struct mm_struct *mm;
	unsigned long start;
	unsigned long end;
	unsigned int flags;
	enum mmu_notifier_event event;
	void *owner;
};

struct mmu_interval_notifier;

/**
 * struct mmu_interval_notifier_ops - a driver's interval callbacks.
 * @invalidate: [range->start, range->end) overlapping the interval is about
 *              to change.  Must call mmu_interval_set_seq(sub, cur_seq)
 *              under the driver lock used with mmu_interval_read_retry()
 *              and drop the device's mappings of the range.  May return
 *              false only when !mmu_notifier_range_blockable(range) and it
 *              would have to sleep; the core then fails the operation that
 *              could not block (uhmm's core always passes BLOCKABLE).
 */
struct mmu_interval_notifier_ops {
	bool (*invalidate)(struct mmu_interval_notifier *interval_sub,
			   const struct mmu_notifier_range *range, unsigned long cur_seq);
};

/**
 * struct mmu_interval_notifier - one registered interval.
 * Embed it in the driver's object; the fields are uhmm's.
 * @start: first byte covered.
 * @last: last byte covered (inclusive).
 * @ops: the driver's callbacks.
 * @mm: the address space (mmgrab()bed while registered).
 * @invalidate_seq: the sequence the interval last saw (read atomically).
 * @node_prev: internal: the per-mm interval list links.
 * @node_next: internal.
 * @deferred: internal: an insert or remove waiting for invalidations.
 * @in_tree: internal: on the per-mm list (Linux: !RB_EMPTY_NODE()).
 * @deferred_next: internal: the link of the per-mm deferred list.
 */
struct mmu_interval_notifier {
	unsigned long start;
	unsigned long last;
	const struct mmu_interval_notifier_ops *ops;
	struct mm_struct *mm;
	unsigned long invalidate_seq;
	struct mmu_interval_notifier *node_prev;
	struct mmu_interval_notifier *node_next;
	int deferred;
	bool in_tree;
	struct mmu_interval_notifier *deferred_next;
};

/**
 * mmu_interval_notifier_insert() - register @interval_sub on
 * [@start, @start + @length) of @mm.
 * @interval_sub: zeroed or previously removed storage.
 * @mm: a live address space (mm_users > 0); mmap_lock not held.
 * @start: first byte.
 * @length: bytes; start + length must not wrap (0..ULONG_MAX is allowed as
 *          start 0, length ULONG_MAX).
 * @ops: callbacks.
 *
 * Return: 0, -EOVERFLOW when the range wraps or @length is 0, -EINVAL
 * when @ops or ops->invalidate is NULL (uhmm only: Linux oopses later),
 * -ENOMEM.
 */
int mmu_interval_notifier_insert(struct mmu_interval_notifier *interval_sub, struct mm_struct *mm,
				 unsigned long start, unsigned long length,
				 const struct mmu_interval_notifier_ops *ops);
/** mmu_interval_notifier_insert_locked() - the same, mmap_lock held for writing. */
int mmu_interval_notifier_insert_locked(struct mmu_interval_notifier *interval_sub,
					struct mm_struct *mm, unsigned long start,
					unsigned long length,
					const struct mmu_interval_notifier_ops *ops);
/**
 * mmu_interval_notifier_remove() - unregister; waits for any invalidation
 * that is running against the interval, so after it returns invalidate()
 * is never called again.  Must not be called from invalidate().
 * An interval that was never inserted (zeroed storage) or was removed
 * already is left alone (uhmm only: Linux would oops).
 */
void mmu_interval_notifier_remove(struct mmu_interval_notifier *interval_sub);

/**
 * mmu_interval_read_begin() - start a read-side critical section.
 * If an invalidation of the interval is in progress, sleeps until the
 * mm's invalidations end.  Return: the sequence to pass to
 * mmu_interval_read_retry() (and as hmm_range.notifier_seq).
 */
unsigned long mmu_interval_read_begin(struct mmu_interval_notifier *interval_sub);

/**
 * mmu_interval_read_retry() - under the driver lock: was the interval
 * invalidated since @seq was read?  True means retry.
 */
static inline bool mmu_interval_read_retry(struct mmu_interval_notifier *interval_sub,
					   unsigned long seq)
{
	return __atomic_load_n(&interval_sub->invalidate_seq, __ATOMIC_ACQUIRE) != seq;
}

/**
 * mmu_interval_check_retry() - lockless hint that a retry will be needed;
 * false does not mean the section is valid.
 */
static inline bool mmu_interval_check_retry(struct mmu_interval_notifier *interval_sub,
					    unsigned long seq)
{
	return __atomic_load_n(&interval_sub->invalidate_seq, __ATOMIC_RELAXED) != seq;
}

/** mmu_interval_set_seq() - from invalidate(), under the driver lock. */
static inline void mmu_interval_set_seq(struct mmu_interval_notifier *interval_sub,
					unsigned long cur_seq)
{
	__atomic_store_n(&interval_sub->invalidate_seq, cur_seq, __ATOMIC_RELEASE);
}

static inline bool mmu_notifier_range_blockable(const struct mmu_notifier_range *range)
{
	return range->flags & MMU_NOTIFIER_RANGE_BLOCKABLE;
}

/* ---- the core side ---- */

/** mmu_notifier_range_init() - fill @range (flags: MMU_NOTIFIER_RANGE_BLOCKABLE or 0). */
static inline void mmu_notifier_range_init(struct mmu_notifier_range *range,
					   enum mmu_notifier_event event, unsigned int flags,
					   struct mm_struct *mm, unsigned long start,
					   unsigned long end)
{
	range->mm = mm;
	range->start = start;
	range->end = end;
	range->flags = flags;
	range->event = event;
	range->owner = NULL;
}

/** mmu_notifier_range_init_owner() - mmu_notifier_range_init() with an owner. */
static inline void mmu_notifier_range_init_owner(struct mmu_notifier_range *range,
						 enum mmu_notifier_event event,
						 unsigned int flags, struct mm_struct *mm,
						 unsigned long start, unsigned long end,
						 void *owner)
{
	mmu_notifier_range_init(range, event, flags, mm, start, end);
	range->owner = owner;
}

/**
 * mmu_notifier_invalidate_range_start() - tell every overlapping interval
 * that [start, end) is about to change.  Called with mmap_lock held (read
 * or write) or, for rmap walks, with the folio lock; never with a
 * page-table lock.  Return: 0 (uhmm's core ranges are blockable).
 */
int mmu_notifier_invalidate_range_start(struct mmu_notifier_range *range);
/**
 * mmu_notifier_invalidate_range_start_nonblock() - the same for a caller
 * that must not sleep: @range is made non-blockable.  Return: 0, or -EAGAIN
 * when an invalidate() refused; the range is then already ended.
 */
int mmu_notifier_invalidate_range_start_nonblock(struct mmu_notifier_range *range);
/** mmu_notifier_invalidate_range_end() - the change is done. */
void mmu_notifier_invalidate_range_end(struct mmu_notifier_range *range);
/**
 * mmu_notifier_release() - exit: every interval of @mm gets an
 * MMU_NOTIFY_RELEASE invalidation of its whole range.  Called from the
 * last mmput() before the pages are unmapped.
 */
void mmu_notifier_release(struct mm_struct *mm);

#endif /* UHMM_MMU_NOTIFIER_H */
