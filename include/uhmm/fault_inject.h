/* SPDX-License-Identifier: MIT */
/*
 * uhmm/fault_inject.h - failure injection after Linux's fault-inject.h:
 * a rule (struct fault_attr: probability, interval, times) and the state
 * that applies it (struct fault_injector).  The machine's page allocator
 * (fail_page_alloc, see uhmm/machine.h) and drivers' device-memory
 * allocators (dmirror_fail_devmem_alloc(), see uhmm/dmirror.h) each own one.
 */
#ifndef UHMM_FAULT_INJECT_H
#define UHMM_FAULT_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/**
 * struct fault_attr - when allocations fail, after Linux's fault_attr.
 * @probability: percent (0..100) of eligible calls that fail.
 * @interval: only every @interval-th eligible call may fail (0 or 1: each).
 * @times: failures left; -1 for no limit.  Decremented on each failure.
 * @min_order: only allocations of at least this order are eligible
 *             (e.g. HPAGE_PMD_ORDER to fail large folios only).
 * @seed: seed of the probability draw, so a run replays (0: a fixed seed).
 *
 * probability 100, interval N, times 1 fails exactly the N-th eligible call.
 */
struct fault_attr {
	unsigned int probability;
	unsigned long interval;
	long times;
	unsigned int min_order;
	uint64_t seed;
};

/**
 * struct fault_injector - a fault_attr being applied.
 * @lock: guards every field but @enabled's lock-free fast path and @count.
 * @enabled: a rule is set.
 * @attr: the rule; @attr.times counts down.
 * @calls: eligible calls since the rule was set.
 * @count: failures injected since the rule was set.
 * @rng: the xorshift64 state of the probability draw.
 */
struct fault_injector {
	pthread_mutex_t lock;
	bool enabled;
	struct fault_attr attr;
	unsigned long calls;
	atomic_ulong count;
	uint64_t rng;
};

/** fault_injector_init() - an injector with no rule set. */
void fault_injector_init(struct fault_injector *fi);
/** fault_injector_destroy() - release what fault_injector_init() made. */
void fault_injector_destroy(struct fault_injector *fi);
/**
 * fault_injector_set() - set or clear the rule.
 * @fi: the injector.
 * @attr: the rule (copied; a probability above 100 counts as 100), or NULL
 *        to stop injecting.
 *
 * Setting a rule restarts the eligible-call and failure counts and reseeds
 * the draw.  Clearing it keeps the failure count readable.  Takes @fi->lock.
 */
void fault_injector_set(struct fault_injector *fi, const struct fault_attr *attr);
/**
 * should_fail() - does the rule choose this call?  (Linux's should_fail().)
 * @fi: the injector.
 * @order: the allocation order; calls below @attr.min_order are not eligible.
 *
 * Takes @fi->lock only while a rule is set.  Return: true to fail the call.
 */
bool should_fail(struct fault_injector *fi, unsigned int order);
/** fault_injector_count() - failures injected since the rule was set (lock-free). */
unsigned long fault_injector_count(struct fault_injector *fi);
/**
 * fault_injector_calls() - eligible calls since the rule was set (a rule
 * with times 0 counts them without failing any: a dry run that tells how
 * many calls a sequence makes).  Takes @fi->lock.
 */
unsigned long fault_injector_calls(struct fault_injector *fi);

#endif /* UHMM_FAULT_INJECT_H */
