// SPDX-License-Identifier: MIT
/*
 * mm/fault_inject.c - the failure-injection rule shared by the page
 * allocator and device-memory allocators (uhmm/fault_inject.h).
 */
#include "uhmm/fault_inject.h"

#include <stddef.h>

/* Seed of the draw when the rule gives 0. */
#define FAULT_RNG_DEFAULT_SEED 0x9e3779b97f4a7c15ULL

/* One step of xorshift64. */
static uint64_t fault_rng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

/**
 * fault_injector_init() - an injector with no rule set.
 * @fi: the injector to initialise.
 */
void fault_injector_init(struct fault_injector *fi)
{
	pthread_mutex_init(&fi->lock, NULL);
	fi->enabled = false;
	fi->attr = (struct fault_attr){ 0 };
	fi->calls = 0;
	atomic_init(&fi->count, 0);
	fi->rng = FAULT_RNG_DEFAULT_SEED;
}

/**
 * fault_injector_destroy() - release what fault_injector_init() made.
 * @fi: an injector no other thread uses any more.
 */
void fault_injector_destroy(struct fault_injector *fi)
{
	pthread_mutex_destroy(&fi->lock);
}

/**
 * fault_injector_set() - set or clear the rule.
 * @fi: the injector.
 * @attr: the rule (copied), or NULL to stop injecting.
 *
 * Takes @fi->lock.
 */
void fault_injector_set(struct fault_injector *fi, const struct fault_attr *attr)
{
	pthread_mutex_lock(&fi->lock);
	if (attr) {
		fi->attr = *attr;
		if (fi->attr.probability > 100)
			fi->attr.probability = 100;
		fi->calls = 0;
		fi->rng = attr->seed ? attr->seed : FAULT_RNG_DEFAULT_SEED;
		atomic_store(&fi->count, 0);
	}
	__atomic_store_n(&fi->enabled, attr != NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&fi->lock);
}

/**
 * should_fail() - does the rule choose this call?
 * @fi: the injector.
 * @order: the allocation's order.
 *
 * Counts the call as eligible when a rule is set and @order is at least
 * its min_order, then applies interval, times and probability in that
 * order, as Linux does.  Takes @fi->lock only while a rule is set.
 *
 * Return: true when the caller must fail the allocation.
 */
bool should_fail(struct fault_injector *fi, unsigned int order)
{
	struct fault_attr *attr = &fi->attr;
	bool fail = false;

	if (!__atomic_load_n(&fi->enabled, __ATOMIC_ACQUIRE))
		return false;

	pthread_mutex_lock(&fi->lock);
	if (!fi->enabled || order < attr->min_order)
		goto out;
	fi->calls++;
	if (attr->interval > 1 && fi->calls % attr->interval)
		goto out;
	if (attr->times == 0 || attr->probability == 0)
		goto out;
	if (attr->probability < 100 && fault_rng_next(&fi->rng) % 100 >= attr->probability)
		goto out;
	if (attr->times > 0)
		attr->times--;
	atomic_fetch_add(&fi->count, 1);
	fail = true;
out:
	pthread_mutex_unlock(&fi->lock);
	return fail;
}

/**
 * fault_injector_count() - failures injected since the rule was set.
 * @fi: the injector.  Lock-free.
 * Return: the count.
 */
unsigned long fault_injector_count(struct fault_injector *fi)
{
	return atomic_load(&fi->count);
}

/**
 * fault_injector_calls() - eligible calls since the rule was set.
 * @fi: the injector.  Takes @fi->lock.
 * Return: the count (kept after the rule is cleared).
 */
unsigned long fault_injector_calls(struct fault_injector *fi)
{
	unsigned long calls;

	pthread_mutex_lock(&fi->lock);
	calls = fi->calls;
	pthread_mutex_unlock(&fi->lock);
	return calls;
}
