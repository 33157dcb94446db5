// SPDX-License-Identifier: MIT
/*
 * mm/folio.c - folios: the compound metadata of large folios, the last
 * folio_put() that frees a folio, the folio lock, and splitting a large
 * folio nobody maps.
 *
 * A large folio of order n is 2^n pages: the head has PG_head, page[1]
 * carries the order in the low byte of its flags (folio->_flags_1) and the
 * folio-wide mapcounts in its other words, page[2] the deferred-split list
 * head (order >= 2 only), and every tail's first word is compound_head, the
 * head's address with bit 0 set.  Tail pages keep one flag of their own,
 * PG_anon_exclusive, so a tail's flags are never cleared wholesale while the
 * folio lives.
 *
 * The folio lock is PG_locked of the head.  Waiters sleep on a condition
 * variable in a process-global table of FOLIO_WAIT_TABLE_SIZE buckets
 * hashed by folio address (Linux's folio_wait_table).  A bucket counts its
 * sleepers; the unlocker clears the bit and then reads the count, the
 * sleeper raises the count and then tries the bit, all sequentially
 * consistent, so at least one of them sees the other and no wake-up is lost
 * while an unlock with nobody waiting costs no mutex.
 */
#include <pthread.h>

#include "internal.h"
#include "pfn_space.h"
#include "page_alloc.h"

#define FOLIO_WAIT_TABLE_BITS 8
#define FOLIO_WAIT_TABLE_SIZE (1U << FOLIO_WAIT_TABLE_BITS)

struct folio_wait_bucket {
	pthread_mutex_t lock;
	pthread_cond_t wait;
	atomic_int waiters; /* threads between registering and leaving */
};

static struct folio_wait_bucket folio_wait_table[FOLIO_WAIT_TABLE_SIZE];
static pthread_once_t folio_wait_once = PTHREAD_ONCE_INIT;

static void folio_wait_table_init(void)
{
	unsigned int i;

	for (i = 0; i < FOLIO_WAIT_TABLE_SIZE; i++) {
		pthread_mutex_init(&folio_wait_table[i].lock, NULL);
		pthread_cond_init(&folio_wait_table[i].wait, NULL);
		atomic_init(&folio_wait_table[i].waiters, 0);
	}
}

static struct folio_wait_bucket *folio_waitqueue(const struct folio *folio)
{
	uint64_t key = (uint64_t)(uintptr_t)folio / sizeof(struct page);

	pthread_once(&folio_wait_once, folio_wait_table_init);
	return &folio_wait_table[(key * 0x9e3779b97f4a7c15ULL) >> (64 - FOLIO_WAIT_TABLE_BITS)];
}

/* Set PG_locked; sequentially consistent (see the comment at the top). */
static bool folio_test_and_set_locked(struct folio *folio)
{
	unsigned long old =
		__atomic_fetch_or(&folio_head(folio)->flags, 1UL << PG_locked, __ATOMIC_SEQ_CST);

	return old & (1UL << PG_locked);
}

/**
 * folio_trylock() - take the folio lock if nobody holds it.
 * @folio: the folio (its head page carries the lock).
 *
 * Never sleeps.
 *
 * Return: true if the caller now holds the lock.
 */
bool folio_trylock(struct folio *folio)
{
	return !folio_test_and_set_locked(folio);
}

/**
 * folio_lock() - take the folio lock, sleeping while another thread has it.
 * @folio: the folio.
 *
 * Lock order: mmap_lock, then folio lock, then page-table lock; never call
 * it holding a page-table lock or the zone lock.  Not recursive.
 */
void folio_lock(struct folio *folio)
{
	struct folio_wait_bucket *b;

	if (folio_trylock(folio))
		return;
	b = folio_waitqueue(folio);
	pthread_mutex_lock(&b->lock);
	atomic_fetch_add(&b->waiters, 1);
	while (folio_test_and_set_locked(folio))
		pthread_cond_wait(&b->wait, &b->lock);
	atomic_fetch_sub(&b->waiters, 1);
	pthread_mutex_unlock(&b->lock);
}

/**
 * folio_wait_locked_unlock() - sleep until @folio is unlocked, dropping
 * @ptl once registered as a waiter (Linux's migration_entry_wait_on_locked()).
 * @folio: a folio seen locked through an entry read under @ptl; no
 *         reference is needed (struct pages are never freed) and none is
 *         taken, so the folio's owner sees no extra reference.
 * @ptl: the page-table lock held by the caller, or NULL.
 *
 * Registering before dropping @ptl means an unlock that follows the drop
 * cannot be missed.  Sleeps on the folio's wait bucket; never spins.
 */
void folio_wait_locked_unlock(struct folio *folio, pthread_mutex_t *ptl)
{
	struct folio_wait_bucket *b = folio_waitqueue(folio);

	pthread_mutex_lock(&b->lock);
	atomic_fetch_add(&b->waiters, 1);
	if (ptl)
		pthread_mutex_unlock(ptl);
	while (__atomic_load_n(&folio_head(folio)->flags, __ATOMIC_SEQ_CST) & (1UL << PG_locked))
		pthread_cond_wait(&b->wait, &b->lock);
	atomic_fetch_sub(&b->waiters, 1);
	pthread_mutex_unlock(&b->lock);
}

/**
 * folio_unlock() - release the folio lock and wake the threads waiting for it.
 * @folio: a folio the caller has locked.
 *
 * Takes the folio's wait-bucket mutex only when somebody sleeps there.
 */
void folio_unlock(struct folio *folio)
{
	struct page *head = folio_head(folio);
	struct folio_wait_bucket *b = folio_waitqueue(folio);
	unsigned long old;

	old = __atomic_fetch_and(&head->flags, ~(1UL << PG_locked), __ATOMIC_SEQ_CST);
	if (!(old & (1UL << PG_locked))) {
		uhmm_warn("folio_unlock: pfn %#lx is not locked", page_to_pfn(head));
		return;
	}
	if (!atomic_load(&b->waiters))
		return;
	pthread_mutex_lock(&b->lock);
	pthread_cond_broadcast(&b->wait);
	pthread_mutex_unlock(&b->lock);
}

/* Write @order into the low byte of page[1]'s flags, keeping its other bits. */
static void folio_set_order(struct folio *folio, unsigned int order)
{
	__atomic_fetch_and(&folio->_flags_1, ~FOLIO_ORDER_MASK, __ATOMIC_RELAXED);
	__atomic_fetch_or(&folio->_flags_1, (unsigned long)order, __ATOMIC_RELEASE);
}

/* The folio-wide fields of a large folio nobody maps or pins. */
static void folio_init_large(struct folio *folio, unsigned int order)
{
	folio_set_order(folio, order);
	atomic_store(&folio->_large_mapcount, -1);
	atomic_store(&folio->_entire_mapcount, -1);
	atomic_store(&folio->_nr_pages_mapped, 0);
	atomic_store(&folio->_pincount, 0);
	if (order >= 2)
		INIT_LIST_HEAD(&folio->_deferred_list);
}

/**
 * prep_compound_folio() - make the 2^@order pages at @page one large folio.
 * @page: the first page of a block the caller just allocated (nobody else
 *        can see it yet).
 * @order: 1..MAX_PAGE_ORDER.
 *
 * Sets PG_head, the order, compound_head of every tail (mapcount -1,
 * refcount 0), the large and entire mapcounts (-1), the number of mapped
 * pages and the pin count (0) and, from order 2, the deferred-split list.
 */
void prep_compound_folio(struct page *page, unsigned int order)
{
	struct folio *folio = (struct folio *)(void *)page;
	unsigned long i, nr = 1UL << order;

	if (!order || order > MAX_PAGE_ORDER) {
		uhmm_warn("prep_compound_folio: bad order %u", order);
		return;
	}
	for (i = 1; i < nr; i++) {
		struct page *p = page + i;

		atomic_store_explicit(&p->_mapcount, -1, memory_order_relaxed);
		atomic_store_explicit(&p->_refcount, 0, memory_order_relaxed);
		__atomic_store_n(&p->compound_head, (unsigned long)page | 1, __ATOMIC_RELEASE);
	}
	folio_init_large(folio, order);
	set_page_flag(page, PG_head);
}

/* Everything that must hold before a folio's pages can be freed. */
static bool folio_free_ok(struct folio *folio, unsigned long flags, unsigned int order)
{
	unsigned long pfn = folio_pfn(folio), i;
	const char *why = NULL;

	if (atomic_load(&folio->_refcount))
		why = "has references";
	else if (flags & (1UL << PG_locked))
		why = "is locked";
	else if (flags & (1UL << PG_buddy))
		why = "is already free";
	else if (flags & (1UL << PG_reserved))
		why = "is reserved";
	else if (folio_mapped(folio))
		why = "is mapped";
	else if (order && folio_entire_mapcount(folio))
		why = "is PMD-mapped";
	else if (order && atomic_load(&folio->_pincount))
		why = "is pinned";
	else if (order >= 2 && !list_empty(&folio->_deferred_list))
		why = "is on the deferred-split queue";
	for (i = 1; !why && i < (1UL << order); i++)
		if (atomic_load(&folio_page(folio, i)->_mapcount) != -1)
			why = "has a mapped page";
	if (why)
		uhmm_warn("freeing folio at pfn %#lx (order %u, flags %#lx): it %s; leaking it",
			  pfn, order, flags, why);
	return !why;
}

/**
 * __folio_free() - return a folio whose refcount reached 0 to the buddy allocator.
 * @folio: an unmapped, unlocked, unpinned folio with refcount 0, not on the
 *         deferred-split queue.
 *
 * Clears mapping, index, private, every page's flags (the tails'
 * PG_anon_exclusive too) and the compound state, then frees the 2^order
 * pages (zone_lock taken inside).  A page-table page (PG_table) is just
 * freed.  A folio that breaks the rules is reported and leaked, as Linux's
 * bad_page() does.
 */
void __folio_free(struct folio *folio)
{
	struct page *head = folio_head(folio);
	struct uhmm_machine *machine = page_machine(head);
	unsigned long flags = __atomic_load_n(&head->flags, __ATOMIC_ACQUIRE);
	unsigned int order;
	unsigned long i;

	if (!machine || pfn_space_owner(page_to_pfn(head))) {
		uhmm_warn("__folio_free: pfn %#lx is not system RAM", page_to_pfn(head));
		return;
	}
	if (PageTail(head)) {
		uhmm_warn("__folio_free: pfn %#lx is a tail page", page_to_pfn(head));
		return;
	}
	if (flags & (1UL << PG_table)) {
		/* A page table whose last reference went with folio_put(). */
		__atomic_store_n(&head->flags, 0UL, __ATOMIC_RELAXED);
		__atomic_store_n(&head->compound_head, 0UL, __ATOMIC_RELAXED);
		head->lru.prev = NULL;
		head->mapping = NULL;
		head->index = 0;
		head->private = 0;
		free_one_page(machine, head, 0);
		return;
	}
	if (folio_test_hugetlb(folio)) {
		free_huge_folio(folio); /* back to the hugetlb pool */
		return;
	}
	order = folio_order(folio);
	if (!folio_free_ok(folio, flags, order))
		return;

	for (i = 1; i < (1UL << order); i++) {
		struct page *p = folio_page(folio, i);

		__atomic_store_n(&p->flags, 0UL, __ATOMIC_RELAXED);
		__atomic_store_n(&p->compound_head, 0UL, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&folio->mapping, NULL, __ATOMIC_RELAXED);
	folio->index = 0;
	folio->private = 0;
	__atomic_store_n(&head->flags, 0UL, __ATOMIC_RELEASE);
	free_one_page(machine, head, order);
}

/**
 * folio_put_refs() - drop @refs references; the last one frees the folio.
 * @folio: a folio holding at least @refs references.
 * @refs: how many to drop (at least 1).
 *
 * Lock-free; the final put calls __folio_free(), which takes the zone lock.
 * Dropping more references than exist, or the last reference of a reserved
 * page (the shared zero page), is reported and changes nothing.
 */
void folio_put_refs(struct folio *folio, int refs)
{
	int old = atomic_load(&folio->_refcount);

	if (refs <= 0) {
		if (refs < 0)
			uhmm_warn("folio_put_refs: pfn %#lx: negative count %d", folio_pfn(folio),
				  refs);
		return;
	}
	do {
		if (old < refs) {
			uhmm_warn("folio_put: pfn %#lx has refcount %d, cannot drop %d",
				  folio_pfn(folio), old, refs);
			return;
		}
		if (old == refs && folio_test_reserved(folio)) {
			uhmm_warn("folio_put: last reference of reserved pfn %#lx",
				  folio_pfn(folio));
			return;
		}
	} while (!atomic_compare_exchange_weak(&folio->_refcount, &old, old - refs));

	if (old == refs) {
		if (pfn_space_owner(folio_pfn(folio)))
			free_zone_device_folio(folio);
		else
			__folio_free(folio);
	}
}

/**
 * folio_put() - drop one reference; the last one frees the folio.
 * @folio: a folio whose refcount is at least 1.
 *
 * Lock-free; see folio_put_refs().
 */
void folio_put(struct folio *folio)
{
	folio_put_refs(folio, 1);
}

/*
 * Turn the 2^@new_order pages at @page, pages of a frozen large folio, into
 * one folio: @flags (the old head's, without PG_head and PG_anon_exclusive)
 * on the new head, its own PG_anon_exclusive bit kept on every page,
 * @mapping and @index on the head, everything unmapped and frozen.
 */
static void split_one(struct page *page, bool old_head, unsigned int new_order, unsigned long flags,
		      void *mapping, unsigned long index)
{
	const unsigned long ae = 1UL << PG_anon_exclusive;
	unsigned long j, nr = 1UL << new_order;

	for (j = nr - 1; j >= 1; j--) {
		struct page *p = page + j;
		unsigned long own = __atomic_load_n(&p->flags, __ATOMIC_RELAXED) & ae;

		__atomic_store_n(&p->flags, own, __ATOMIC_RELAXED);
		atomic_store_explicit(&p->_mapcount, -1, memory_order_relaxed);
		atomic_store_explicit(&p->_refcount, 0, memory_order_relaxed);
		__atomic_store_n(&p->compound_head, (unsigned long)page | 1, __ATOMIC_RELEASE);
	}
	if (!old_head) {
		__atomic_store_n(&page->compound_head, 0UL, __ATOMIC_RELEASE);
		page->lru.prev = NULL;
		__atomic_store_n(&page->mapping, mapping, __ATOMIC_RELAXED);
		page->index = index;
		atomic_store(&page->_mapcount, -1);
		atomic_store(&page->_refcount, 0);
	}
	if (new_order)
		folio_init_large((struct folio *)(void *)page, new_order);
	flags |= __atomic_load_n(&page->flags, __ATOMIC_RELAXED) & ae;
	if (new_order)
		flags |= 1UL << PG_head;
	__atomic_store_n(&page->flags, flags, __ATOMIC_RELEASE);
}

/**
 * __split_unmapped_folio() - split a large folio into folios of @new_order.
 * @folio: a locked large folio that no page table maps, whose refcount the
 *         caller has frozen to 0 (folio_ref_freeze()), not on the
 *         deferred-split queue.
 * @new_order: the order of the resulting folios, below folio_order(@folio).
 *
 * Every resulting folio is left locked with its refcount frozen at 0.  The
 * head's flags, mapping and per-page PG_anon_exclusive bits are carried
 * over; each new folio's index is the old index plus the offset of its
 * first page; each page's private word is left alone (per-page data).  The
 * caller unfreezes and unlocks each one (walk them with folio_next()).
 *
 * Return: 0; -EINVAL for an order-0 folio or a @new_order not below the
 * folio's; -EBUSY, changing nothing, if the folio is mapped, its refcount
 * is not frozen or it is queued for deferred split.
 */
int __split_unmapped_folio(struct folio *folio, unsigned int new_order)
{
	struct page *head = folio_head(folio);
	unsigned long nr, step, flags, index, i;
	unsigned int order;
	void *mapping;

	if (!folio_test_large(folio) || folio_test_hugetlb(folio))
		return -EINVAL; /* hugetlb folios are never split */
	order = folio_order(folio);
	if (new_order >= order)
		return -EINVAL;
	if (folio_mapped(folio) || folio_entire_mapcount(folio))
		return -EBUSY;
	if (folio_ref_count(folio) != 0)
		return -EBUSY;
	if (order >= 2 && !list_empty(&folio->_deferred_list))
		return -EBUSY;

	nr = 1UL << order;
	step = 1UL << new_order;
	flags = __atomic_load_n(&head->flags, __ATOMIC_ACQUIRE) &
		~((1UL << PG_head) | (1UL << PG_anon_exclusive));
	mapping = __atomic_load_n(&folio->mapping, __ATOMIC_RELAXED);
	index = folio->index;

	/* Last piece first: the old head keeps describing the rest until the end. */
	for (i = nr; i > 0;) {
		i -= step;
		split_one(head + i, i == 0, new_order, flags, mapping, index + i);
	}
	return 0;
}

/**
 * split_folio_to_order() - split an unmapped large folio the caller owns.
 * @folio: a locked, unmapped large folio on which the caller holds the only
 *         reference.
 * @new_order: the order of the resulting folios, below the folio's.
 *
 * Freezes the refcount (the can_split_folio() check), splits with
 * __split_unmapped_folio() and gives every resulting folio one reference.
 * Lock-free apart from the folio lock the caller holds.
 *
 * Return: 0 with every resulting folio locked and holding one reference the
 * caller now owns (walk them with folio_next()); -EINVAL for an order-0 or
 * unlocked folio or a bad order; -EBUSY, changing nothing, if the folio is
 * mapped, another reference exists or it is queued for deferred split.
 */
int split_folio_to_order(struct folio *folio, unsigned int new_order)
{
	struct folio *f, *end;
	unsigned int order;
	int ret;

	if (!folio_test_large(folio))
		return -EINVAL;
	order = folio_order(folio);
	if (new_order >= order)
		return -EINVAL;
	if (!folio_test_locked(folio)) {
		uhmm_warn("split_folio_to_order: pfn %#lx is not locked", folio_pfn(folio));
		return -EINVAL;
	}
	if (folio_mapped(folio))
		return -EBUSY;
	if (!folio_ref_freeze(folio, 1))
		return -EBUSY;
	ret = __split_unmapped_folio(folio, new_order);
	if (ret) {
		folio_ref_unfreeze(folio, 1);
		return ret;
	}
	end = (struct folio *)(void *)(folio_head(folio) + (1UL << order));
	for (f = folio_next(folio); f != end; f = folio_next(f))
		folio_ref_unfreeze(f, 1);
	folio_ref_unfreeze(folio, 1);
	return 0;
}
