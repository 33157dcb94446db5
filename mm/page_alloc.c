// SPDX-License-Identifier: MIT
/*
 * mm/page_alloc.c - the machine: the process-global PFN space, system RAM
 * with real bytes, the buddy allocator, the shared zero page and
 * allocation-failure injection.
 *
 * The PFN space (internal API, declared in mm/pfn_space.h)
 * -------------------------------------------------------
 *
 *   int  pfn_space_register(nr_pages, bytes, machine, owner, &start_pfn);
 *   void pfn_space_unregister(start_pfn);
 *   bool pfn_space_lookup(pfn, &range);
 *
 * uhmm_vmemmap is one PROT_NONE reservation of PFN_SPACE_MAX_PFN struct
 * pages (4 GiB of address space, no memory), made once per process.  A
 * range is a run of whole sections (2^15 frames, 128 MiB of RAM, 2 MiB of
 * struct pages) taken first-fit from PFN 0x40000 under pfn_space_lock; the
 * part of the vmemmap that covers it is made read-write, and since the
 * reservation is anonymous memory the struct pages read as zero until
 * somebody writes them.  Every section of a range points at the same
 * description (bytes, start_pfn, nr_pages, machine, owner) in the section
 * table, so a lookup is one index and one comparison.  Device memory
 * (memremap_pages) registers its own byte arena with a NULL machine and its
 * dev_pagemap as owner.
 *
 * Section-table entries are written under pfn_space_lock and read without
 * it: nr_pages is published last with release semantics and read first with
 * acquire semantics, so a reader that sees a range sees all of it.
 *
 * The buddy allocator
 * -------------------
 *
 * Orders 0..MAX_PAGE_ORDER, one free list per order linked through
 * page->lru.  The head of a free block has PG_buddy set and its order in
 * page->private; no other page has PG_buddy.  The buddy of the block at
 * index i (relative to the machine's start_pfn, which is section aligned)
 * is at i ^ (1 << order).  machine->zone_lock protects the lists, nr_free[]
 * and, for free blocks, the PG_buddy bit, lru and private of their heads.
 * Struct pages are only written when a block is split or allocated, so RAM
 * that is never used never costs struct-page memory.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "page_alloc.h"
#include "pfn_space.h"

/* The largest machine: 64 GiB of RAM. */
#define UHMM_MAX_RAM_SIZE (64UL << 30)
#define MAX_ORDER_NR_PAGES (1UL << MAX_PAGE_ORDER)

/* ------------------------------------------------------------------ */
/* The PFN space                                                       */
/* ------------------------------------------------------------------ */

/*
 * struct pfn_section - one entry of the section table: a copy of the
 * description of the range that owns the section (nr_pages == 0: free).
 */
struct pfn_section {
	char *bytes;
	unsigned long start_pfn;
	unsigned long nr_pages;
	struct uhmm_machine *machine;
	void *owner;
};

struct page *uhmm_vmemmap;

static struct pfn_section pfn_sections[PFN_SPACE_NR_SECTIONS];
static pthread_mutex_t pfn_space_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pfn_space_once = PTHREAD_ONCE_INIT;

static void pfn_space_reserve(void)
{
	void *map = mmap(NULL, PFN_SPACE_MAX_PFN * sizeof(struct page), PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (map != MAP_FAILED)
		__atomic_store_n(&uhmm_vmemmap, (struct page *)map, __ATOMIC_RELEASE);
}

static int pfn_space_init(void)
{
	pthread_once(&pfn_space_once, pfn_space_reserve);
	return __atomic_load_n(&uhmm_vmemmap, __ATOMIC_ACQUIRE) ? 0 : -ENOMEM;
}

/* The part of the vmemmap that holds the struct pages of a range. */
static void vmemmap_span(unsigned long start_pfn, unsigned long nr_pages, void **addr, size_t *len)
{
	*addr = pfn_to_page(start_pfn);
	*len = PAGE_ALIGN(nr_pages * sizeof(struct page));
}

/**
 * pfn_space_register() - give a new range of PFNs to memory.
 * @nr_pages: frames wanted (at least 1).
 * @bytes: the memory behind the first frame, or NULL.
 * @machine: the owning machine (system RAM) or NULL (device memory).
 * @owner: opaque pointer pfn_space_lookup() returns, or NULL.
 * @start_pfn: where the first PFN of the new range is stored.
 *
 * Takes pfn_space_lock.  The range's struct pages read as zero until written.
 *
 * Return: 0; -EINVAL for a zero or too large @nr_pages; -ENOSPC when no run
 * of free sections is long enough; -ENOMEM when the host refuses memory.
 */
int pfn_space_register(unsigned long nr_pages, char *bytes, struct uhmm_machine *machine,
		       void *owner, unsigned long *start_pfn)
{
	unsigned long first = PFN_SPACE_FIRST_PFN >> PFN_SECTION_SHIFT;
	unsigned long nr_sections, sec, run = 0, found = 0;
	void *addr;
	size_t len;
	int ret;

	if (!nr_pages || nr_pages > PFN_SPACE_MAX_PFN - PFN_SPACE_FIRST_PFN)
		return -EINVAL;
	ret = pfn_space_init();
	if (ret)
		return ret;
	nr_sections = (nr_pages + PAGES_PER_SECTION - 1) >> PFN_SECTION_SHIFT;

	pthread_mutex_lock(&pfn_space_lock);
	for (sec = first; sec < PFN_SPACE_NR_SECTIONS; sec++) {
		if (pfn_sections[sec].nr_pages) {
			run = 0;
			continue;
		}
		if (!run)
			found = sec;
		if (++run == nr_sections)
			break;
	}
	if (run < nr_sections) {
		pthread_mutex_unlock(&pfn_space_lock);
		return -ENOSPC;
	}

	*start_pfn = found << PFN_SECTION_SHIFT;
	vmemmap_span(*start_pfn, nr_pages, &addr, &len);
	if (mprotect(addr, len, PROT_READ | PROT_WRITE)) {
		pthread_mutex_unlock(&pfn_space_lock);
		return -ENOMEM;
	}
	for (sec = found; sec < found + nr_sections; sec++) {
		struct pfn_section *s = &pfn_sections[sec];

		__atomic_store_n(&s->bytes, bytes, __ATOMIC_RELAXED);
		__atomic_store_n(&s->start_pfn, *start_pfn, __ATOMIC_RELAXED);
		__atomic_store_n(&s->machine, machine, __ATOMIC_RELAXED);
		__atomic_store_n(&s->owner, owner, __ATOMIC_RELAXED);
		__atomic_store_n(&s->nr_pages, nr_pages, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&pfn_space_lock);
	return 0;
}

/**
 * pfn_space_unregister() - release the range that starts at @start_pfn.
 * @start_pfn: a value pfn_space_register() returned.
 *
 * Takes pfn_space_lock.  The range's struct pages are discarded and its
 * sections become free for reuse; nothing may touch its pages any more.
 */
void pfn_space_unregister(unsigned long start_pfn)
{
	unsigned long first = start_pfn >> PFN_SECTION_SHIFT;
	unsigned long nr_pages, sec;
	void *addr;
	size_t len;

	if (first >= PFN_SPACE_NR_SECTIONS)
		return;
	pthread_mutex_lock(&pfn_space_lock);
	nr_pages = pfn_sections[first].nr_pages;
	if (!nr_pages || pfn_sections[first].start_pfn != start_pfn) {
		pthread_mutex_unlock(&pfn_space_lock);
		uhmm_warn("pfn_space_unregister: no range starts at pfn %#lx", start_pfn);
		return;
	}
	for (sec = first; sec < first + ((nr_pages + PAGES_PER_SECTION - 1) >> PFN_SECTION_SHIFT);
	     sec++) {
		struct pfn_section *s = &pfn_sections[sec];

		__atomic_store_n(&s->nr_pages, 0UL, __ATOMIC_RELEASE);
		__atomic_store_n(&s->bytes, NULL, __ATOMIC_RELAXED);
		__atomic_store_n(&s->start_pfn, 0UL, __ATOMIC_RELAXED);
		__atomic_store_n(&s->machine, NULL, __ATOMIC_RELAXED);
		__atomic_store_n(&s->owner, NULL, __ATOMIC_RELAXED);
	}
	/* Drop the struct pages: the next user of these PFNs sees zeros. */
	vmemmap_span(start_pfn, nr_pages, &addr, &len);
	madvise(addr, len, MADV_DONTNEED);
	mprotect(addr, len, PROT_NONE);
	pthread_mutex_unlock(&pfn_space_lock);
}

/* The section of @pfn if @pfn is valid, with its range's start and size. */
static const struct pfn_section *pfn_section(unsigned long pfn, unsigned long *start,
					     unsigned long *nr)
{
	const struct pfn_section *s;

	if (pfn >= PFN_SPACE_MAX_PFN)
		return NULL;
	s = &pfn_sections[pfn >> PFN_SECTION_SHIFT];
	*nr = __atomic_load_n(&s->nr_pages, __ATOMIC_ACQUIRE);
	if (!*nr)
		return NULL;
	*start = __atomic_load_n(&s->start_pfn, __ATOMIC_RELAXED);
	if (pfn < *start || pfn - *start >= *nr)
		return NULL;
	return s;
}

/**
 * pfn_space_lookup() - find the registered range that contains @pfn.
 * @pfn: any value.
 * @range: filled in when @pfn is valid; may be NULL.
 *
 * Lock-free, O(1).
 *
 * Return: true if @pfn belongs to a registered range.
 */
bool pfn_space_lookup(unsigned long pfn, struct pfn_range *range)
{
	unsigned long start, nr;
	const struct pfn_section *s = pfn_section(pfn, &start, &nr);

	if (!s)
		return false;
	if (range) {
		range->start_pfn = start;
		range->nr_pages = nr;
		range->bytes = __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
		range->machine = __atomic_load_n(&s->machine, __ATOMIC_RELAXED);
		range->owner = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
	}
	return true;
}

/**
 * pfn_space_attach() - change the bytes, machine and owner of a range.
 * @start_pfn: a value pfn_space_register() returned.
 * @bytes: the memory behind the first frame, or NULL.
 * @machine: the machine, or NULL.
 * @owner: the owner, or NULL.
 *
 * Takes pfn_space_lock.  Readers see either the old or the new values of
 * each field (device memory is attached before any of its pages is used
 * and detached after the last use).
 *
 * Return: 0, or -EINVAL when no range starts at @start_pfn.
 */
int pfn_space_attach(unsigned long start_pfn, char *bytes, struct uhmm_machine *machine,
		     void *owner)
{
	unsigned long first = start_pfn >> PFN_SECTION_SHIFT, nr_pages, sec;

	if (first >= PFN_SPACE_NR_SECTIONS)
		return -EINVAL;
	pthread_mutex_lock(&pfn_space_lock);
	nr_pages = pfn_sections[first].nr_pages;
	if (!nr_pages || pfn_sections[first].start_pfn != start_pfn) {
		pthread_mutex_unlock(&pfn_space_lock);
		return -EINVAL;
	}
	for (sec = first; sec < first + ((nr_pages + PAGES_PER_SECTION - 1) >> PFN_SECTION_SHIFT);
	     sec++) {
		struct pfn_section *s = &pfn_sections[sec];

		__atomic_store_n(&s->bytes, bytes, __ATOMIC_RELEASE);
		__atomic_store_n(&s->machine, machine, __ATOMIC_RELEASE);
		__atomic_store_n(&s->owner, owner, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&pfn_space_lock);
	return 0;
}

/**
 * pfn_space_owner() - the owner of the range that contains @pfn.
 * @pfn: any value.
 *
 * Lock-free, O(1).
 *
 * Return: the owner (a dev_pagemap for device memory), or NULL.
 */
void *pfn_space_owner(unsigned long pfn)
{
	unsigned long start, nr;
	const struct pfn_section *s = pfn_section(pfn, &start, &nr);

	return s ? __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE) : NULL;
}

/**
 * pfn_valid() - does @pfn belong to memory that a machine or device registered?
 * @pfn: any value.
 *
 * Lock-free, O(1).
 *
 * Return: true if pfn_to_page(@pfn) is a struct page that may be read.
 */
bool pfn_valid(unsigned long pfn)
{
	unsigned long start, nr;

	return pfn_section(pfn, &start, &nr) != NULL;
}

/**
 * page_address() - the bytes of @page.
 * @page: a page of system RAM or device memory.
 *
 * Lock-free, O(1).
 *
 * Return: the address of the page's 4 KiB, or NULL if the page is not valid
 * or its memory has no CPU-visible bytes.
 */
void *page_address(const struct page *page)
{
	unsigned long pfn = page_to_pfn(page), start, nr;
	const struct pfn_section *s = pfn_section(pfn, &start, &nr);
	char *bytes;

	if (!s)
		return NULL;
	bytes = __atomic_load_n(&s->bytes, __ATOMIC_ACQUIRE);
	if (!bytes)
		return NULL;
	return bytes + ((pfn - start) << PAGE_SHIFT);
}

/**
 * page_machine() - the machine whose system RAM @page is.
 * @page: any struct page in the PFN space.
 *
 * Lock-free, O(1).
 *
 * Return: the machine, the machine a memremapped device page is attached to
 * (see memremap_pages()), or NULL for reserved-only and invalid pages.
 */
struct uhmm_machine *page_machine(const struct page *page)
{
	unsigned long start, nr;
	const struct pfn_section *s = pfn_section(page_to_pfn(page), &start, &nr);

	return s ? __atomic_load_n(&s->machine, __ATOMIC_ACQUIRE) : NULL;
}

/* ------------------------------------------------------------------ */
/* The buddy allocator                                                 */
/* ------------------------------------------------------------------ */

/* Make @page the head of a free block of @order.  zone_lock held. */
static void set_buddy(struct page *page, unsigned int order)
{
	page->private = order;
	__atomic_store_n(&page->flags, 1UL << PG_buddy, __ATOMIC_RELEASE);
}

/* Take @page off the free lists.  zone_lock held. */
static void del_buddy(struct uhmm_machine *machine, struct page *page, unsigned int order)
{
	list_del_init(&page->lru);
	clear_page_flag(page, PG_buddy);
	page->private = 0;
	machine->nr_free[order]--;
}

/* Is @page the head of a free block of exactly @order?  zone_lock held. */
static bool page_is_buddy(const struct page *page, unsigned int order)
{
	return test_page_flag(page, PG_buddy) && page->private == order;
}

/**
 * free_one_page() - put a block of 2^@order pages back on the free lists.
 * @machine: the machine that owns the block.
 * @page: the first page, aligned to @order inside the machine.
 * @order: 0..MAX_PAGE_ORDER.
 *
 * The caller has finished with every page (no references, mappings or
 * compound state; flags cleared).  Takes machine->zone_lock and merges the
 * block with its free buddies.
 */
void free_one_page(struct uhmm_machine *machine, struct page *page, unsigned int order)
{
	unsigned long idx = page_to_pfn(page) - machine->start_pfn;
	unsigned long nr = 1UL << order;

	pthread_mutex_lock(&machine->zone_lock);
	if (test_page_flag(page, PG_buddy)) {
		pthread_mutex_unlock(&machine->zone_lock);
		uhmm_warn("free_one_page: pfn %#lx freed twice", page_to_pfn(page));
		return;
	}
	while (order < MAX_PAGE_ORDER) {
		unsigned long buddy_idx = idx ^ (1UL << order);
		struct page *buddy;

		if (buddy_idx + (1UL << order) > machine->nr_pages)
			break;
		buddy = pfn_to_page(machine->start_pfn + buddy_idx);
		if (!page_is_buddy(buddy, order))
			break;
		del_buddy(machine, buddy, order);
		idx &= buddy_idx;
		order++;
	}
	page = pfn_to_page(machine->start_pfn + idx);
	set_buddy(page, order);
	list_add(&page->lru, &machine->free_area[order]);
	machine->nr_free[order]++;
	atomic_fetch_add(&machine->nr_free_pages, nr);
	pthread_mutex_unlock(&machine->zone_lock);
}

/*
 * Take a block of @order off the free lists, splitting a larger one and
 * freeing its upper halves.  Return: the first page, or NULL.
 */
static struct page *rmqueue(struct uhmm_machine *machine, unsigned int order)
{
	struct page *page = NULL;
	unsigned int o;

	pthread_mutex_lock(&machine->zone_lock);
	for (o = order; o <= MAX_PAGE_ORDER; o++) {
		if (!list_empty(&machine->free_area[o]))
			break;
	}
	if (o > MAX_PAGE_ORDER)
		goto out;
	page = list_first_entry(&machine->free_area[o], struct page, lru);
	del_buddy(machine, page, o);
	while (o > order) {
		struct page *upper;

		o--;
		upper = page + (1UL << o);
		set_buddy(upper, o);
		list_add(&upper->lru, &machine->free_area[o]);
		machine->nr_free[o]++;
	}
	atomic_fetch_sub(&machine->nr_free_pages, 1UL << order);
out:
	pthread_mutex_unlock(&machine->zone_lock);
	return page;
}

/* Give every page of a new block the state alloc_pages() promises. */
static void prep_new_page(struct page *page, unsigned int order, gfp_t gfp)
{
	unsigned long i, nr = 1UL << order;

	for (i = 0; i < nr; i++) {
		struct page *p = page + i;

		__atomic_store_n(&p->flags, 0UL, __ATOMIC_RELAXED);
		__atomic_store_n(&p->compound_head, 0UL, __ATOMIC_RELAXED); /* lru.next */
		__atomic_store_n(&p->lru.prev, NULL, __ATOMIC_RELAXED);
		__atomic_store_n(&p->mapping, NULL, __ATOMIC_RELAXED);
		p->index = 0;
		p->private = 0;
		atomic_store_explicit(&p->_mapcount, -1, memory_order_relaxed);
		atomic_store_explicit(&p->_refcount, 0, memory_order_relaxed);
	}
	if (gfp & __GFP_ZERO)
		memset(page_address(page), 0, PAGE_SIZE << order);
	if ((gfp & __GFP_COMP) && order)
		prep_compound_folio(page, order);
	atomic_store_explicit(&page->_refcount, 1, memory_order_release);
}

/* Does the fail_page_alloc rule choose this allocation? */
static bool should_fail_alloc_page(struct uhmm_machine *machine, gfp_t gfp, unsigned int order)
{
	if (gfp & __GFP_NOFAIL)
		return false;
	return should_fail(&machine->fail_page_alloc, order);
}

/**
 * alloc_pages() - allocate 2^@order contiguous pages of system RAM.
 * @machine: the machine.
 * @gfp: __GFP_ZERO zeroes the bytes; __GFP_COMP makes a large folio;
 *       __GFP_NOFAIL exempts the call from failure injection.
 * @order: 0..MAX_PAGE_ORDER.
 *
 * Takes the fail_page_alloc injector's lock, then machine->zone_lock;
 * neither is held on return.  Every page comes back with flags, mapping,
 * index and private clear, mapcount -1 and refcount 0, except the first page's refcount (1).
 *
 * Return: the first page, or NULL when @order is too large, no block is
 * free, or failure injection chose this call (nothing changes then).
 */
struct page *alloc_pages(struct uhmm_machine *machine, gfp_t gfp, unsigned int order)
{
	struct page *page;

	if (order > MAX_PAGE_ORDER)
		return NULL;
	if (should_fail_alloc_page(machine, gfp, order))
		return NULL;
	page = rmqueue(machine, order);
	if (page)
		prep_new_page(page, order, gfp);
	return page;
}

/**
 * folio_alloc() - allocate a folio of 2^@order pages with one reference.
 * @machine: the machine.
 * @gfp: as alloc_pages(); __GFP_COMP is added.
 * @order: 0..MAX_PAGE_ORDER.
 *
 * Takes the zone lock internally.
 *
 * Return: the folio (large when @order > 0), or NULL as alloc_pages().
 */
struct folio *folio_alloc(struct uhmm_machine *machine, gfp_t gfp, unsigned int order)
{
	return (struct folio *)(void *)alloc_pages(machine, gfp | __GFP_COMP, order);
}

/* Clear what users may have left in the pages of a non-compound block. */
static void clear_block(struct page *page, unsigned long nr)
{
	unsigned long i;

	for (i = 0; i < nr; i++) {
		__atomic_store_n(&page[i].flags, 0UL, __ATOMIC_RELAXED);
		__atomic_store_n(&page[i].compound_head, 0UL, __ATOMIC_RELAXED);
		__atomic_store_n(&page[i].mapping, NULL, __ATOMIC_RELAXED); /* kpageflags reads it lock-free */
	}
}

/**
 * __free_pages() - drop the reference alloc_pages() gave on a block.
 * @page: the first page of a block alloc_pages() returned without __GFP_COMP.
 * @order: the order it was allocated with.
 *
 * As in Linux, this is a put: the block goes back to the buddy allocator
 * (zone_lock taken inside) when the first page's refcount reaches 0.  If
 * someone else still holds a reference, every page but the first is freed
 * now and the first one goes when its last reference is put.
 */
void __free_pages(struct page *page, unsigned int order)
{
	struct uhmm_machine *machine = page_machine(page);
	int old;

	if (!machine || pfn_space_owner(page_to_pfn(page)) || order > MAX_PAGE_ORDER) {
		uhmm_warn("__free_pages: pfn %#lx order %u is not system RAM", page_to_pfn(page),
			  order);
		return;
	}
	if (test_page_flag(page, PG_head)) {
		uhmm_warn("__free_pages: pfn %#lx is a large folio, use folio_put()",
			  page_to_pfn(page));
		return;
	}
	old = atomic_load(&page->_refcount);
	do {
		if (old <= 0) {
			uhmm_warn("__free_pages: pfn %#lx has refcount %d", page_to_pfn(page), old);
			return;
		}
	} while (!atomic_compare_exchange_weak(&page->_refcount, &old, old - 1));

	if (old == 1) {
		clear_block(page, 1UL << order);
		free_one_page(machine, page, order);
		return;
	}
	/* Someone else holds the first page: free the rest in aligned pieces. */
	while (order--) {
		clear_block(page + (1UL << order), 1UL << order);
		free_one_page(machine, page + (1UL << order), order);
	}
}

/* Report one problem found by page_alloc_mark_free(). */
static __attribute__((format(printf, 3, 4))) void mark_bad(int *bad, FILE *report, const char *fmt,
							   ...)
{
	va_list ap;

	(*bad)++;
	if (!report)
		return;
	fputs("page_alloc: ", report);
	va_start(ap, fmt);
	vfprintf(report, fmt, ap);
	va_end(ap);
	fputc('\n', report);
}

/* Check one block on the free list of @order and mark its pages.  zone_lock held. */
static void mark_free_block(struct uhmm_machine *machine, struct page *page, unsigned int order,
			    uint8_t *state, FILE *report, int *bad)
{
	unsigned long pfn = page_to_pfn(page), nr = 1UL << order, idx, i;

	if (pfn < machine->start_pfn || pfn - machine->start_pfn + nr > machine->nr_pages) {
		mark_bad(bad, report, "order %u free block at pfn %#lx is outside [%#lx, %#lx)",
			 order, pfn, machine->start_pfn, machine->start_pfn + machine->nr_pages);
		return;
	}
	idx = pfn - machine->start_pfn;
	if (!test_page_flag(page, PG_buddy))
		mark_bad(bad, report, "order %u free block at pfn %#lx lacks PG_buddy (flags %#lx)",
			 order, pfn, page->flags);
	if (page->private != order)
		mark_bad(bad, report, "order %u free block at pfn %#lx records order %lu", order,
			 pfn, page->private);
	if (idx & (nr - 1))
		mark_bad(bad, report, "order %u free block at pfn %#lx is not aligned", order, pfn);
	for (i = 0; i < nr; i++) {
		if (state[idx + i] != AUDIT_UNSEEN) {
			mark_bad(bad, report,
				 "order %u free block at pfn %#lx: pfn %#lx is already %s", order,
				 pfn, pfn + i,
				 state[idx + i] == AUDIT_FREE ? "in another free block" : "in use");
			break;
		}
	}
	memset(state + idx, AUDIT_FREE, nr);
}

/**
 * page_alloc_mark_free() - check the free lists and mark every free page.
 * @machine: the machine.
 * @state: one byte per page of the machine, indexed by pfn - start_pfn.
 * @report: where each problem is written as one line, or NULL.
 *
 * Takes machine->zone_lock.  Checks that every block on the list of order o
 * has PG_buddy, private == o, is aligned to o, lies inside the machine and
 * overlaps no other free block (or a page @state already marks), and that
 * nr_free[] and nr_free_pages match the lists.  Sets @state to AUDIT_FREE
 * for every page of every free block.
 *
 * Return: the number of problems found.
 */
int page_alloc_mark_free(struct uhmm_machine *machine, uint8_t *state, FILE *report)
{
	unsigned long total = 0, nr_free_pages;
	unsigned int order;
	int bad = 0;

	pthread_mutex_lock(&machine->zone_lock);
	for (order = 0; order <= MAX_PAGE_ORDER; order++) {
		struct list_head *head = &machine->free_area[order], *pos;
		unsigned long blocks = 0;

		for (pos = head->next; pos != head; pos = pos->next) {
			if (pos->next->prev != pos) {
				mark_bad(&bad, report, "order %u list is corrupt after pfn %#lx",
					 order, page_to_pfn(list_entry(pos, struct page, lru)));
				break;
			}
			if (++blocks > machine->nr_pages) {
				mark_bad(&bad, report, "order %u list does not end", order);
				break;
			}
			mark_free_block(machine, list_entry(pos, struct page, lru), order, state,
					report, &bad);
			total += 1UL << order;
		}
		if (blocks != machine->nr_free[order])
			mark_bad(&bad, report, "nr_free[%u] is %lu but the list holds %lu blocks",
				 order, machine->nr_free[order], blocks);
	}
	nr_free_pages = atomic_load(&machine->nr_free_pages);
	if (total != nr_free_pages)
		mark_bad(&bad, report, "nr_free_pages is %lu but the lists hold %lu pages",
			 nr_free_pages, total);
	pthread_mutex_unlock(&machine->zone_lock);
	return bad;
}

/* ------------------------------------------------------------------ */
/* The machine                                                         */
/* ------------------------------------------------------------------ */

/* Put every max-order block of RAM on the free lists. */
static void buddy_init(struct uhmm_machine *machine)
{
	unsigned long off;

	for (off = 0; off < machine->nr_pages; off += MAX_ORDER_NR_PAGES) {
		struct page *page = pfn_to_page(machine->start_pfn + off);

		set_buddy(page, MAX_PAGE_ORDER);
		list_add_tail(&page->lru, &machine->free_area[MAX_PAGE_ORDER]);
		machine->nr_free[MAX_PAGE_ORDER]++;
	}
	atomic_store(&machine->nr_free_pages, machine->nr_pages);
}

/**
 * uhmm_machine_create() - build a machine with system RAM.
 * @config: the configuration, or NULL for the defaults (1 GiB, THP madvise,
 *          huge zero page on).
 *
 * Reserves the RAM (lazily backed), registers its PFN range, puts it all in
 * the buddy allocator and allocates the shared zero page.  Takes the global
 * PFN-space mutex.
 *
 * Return: the machine; ERR_PTR(-EINVAL) for a size that is not a nonzero
 * multiple of 2 MiB up to 64 GiB or an unknown THP mode; ERR_PTR(-ENOMEM)
 * when the host cannot reserve the memory; ERR_PTR(-ENOSPC) when the PFN
 * space is full.
 */
struct uhmm_machine *uhmm_machine_create(const struct uhmm_machine_config *config)
{
	static const struct uhmm_machine_config defaults = {0};
	struct uhmm_machine *machine;
	unsigned long size;
	struct page *zero;
	unsigned int order;
	int ret;

	if (!config)
		config = &defaults;
	size = config->ram_size ? config->ram_size : UHMM_DEFAULT_RAM_SIZE;
	if (!size || !IS_ALIGNED(size, PMD_SIZE) || size > UHMM_MAX_RAM_SIZE)
		return ERR_PTR(-EINVAL);
	if ((unsigned int)config->thp_enabled > THP_NEVER)
		return ERR_PTR(-EINVAL);

	machine = calloc(1, sizeof(*machine));
	if (!machine)
		return ERR_PTR(-ENOMEM);
	machine->nr_pages = size >> PAGE_SHIFT;
	machine->ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (machine->ram == MAP_FAILED) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = pfn_space_register(machine->nr_pages, machine->ram, machine, NULL,
				 &machine->start_pfn);
	if (ret)
		goto out_unmap;

	pthread_mutex_init(&machine->zone_lock, NULL);
	for (order = 0; order <= MAX_PAGE_ORDER; order++)
		INIT_LIST_HEAD(&machine->free_area[order]);
	fault_injector_init(&machine->fail_page_alloc);
	pthread_mutex_init(&machine->huge_zero_lock, NULL);
	pthread_mutex_init(&machine->mms_lock, NULL);
	INIT_LIST_HEAD(&machine->mms);
	pthread_mutex_init(&machine->inodes_lock, NULL);
	INIT_LIST_HEAD(&machine->inodes);
	pthread_mutex_init(&machine->pgmap_lock, NULL);
	INIT_LIST_HEAD(&machine->pgmaps);
	atomic_init(&machine->thp_enabled, config->thp_enabled);
	machine->huge_zero_enabled = !config->no_huge_zero_page;
	machine->huge_zero_folio = NULL;
	buddy_init(machine);

	/* The shared zero page: the one page nobody ever gets from the allocator. */
	zero = alloc_pages(machine, __GFP_ZERO | __GFP_NOFAIL, 0);
	__atomic_store_n(&zero->flags, (1UL << PG_reserved) | (1UL << PG_zero), __ATOMIC_RELEASE);
	__atomic_store_n(&machine->zero_pfn, page_to_pfn(zero), __ATOMIC_RELEASE);
	hugetlb_pool_init(machine, config->nr_hugepages);
	return machine;

out_unmap:
	munmap(machine->ram, size);
out_free:
	free(machine);
	return ERR_PTR(ret);
}

/**
 * uhmm_machine_destroy() - free a machine, its RAM and its PFN range.
 * @machine: a machine whose address spaces have all been mmput(); NULL is
 *           accepted and ignored.
 *
 * No other thread may use the machine.  An unused huge zero folio left by
 * huge_memory.c and the free pages of the hugetlb pool are freed with the
 * rest.
 *
 * Return: 0; -EBUSY, freeing nothing, while an mm or a file (an inode:
 * uhmm_memfd_create() until its last fput()) exists or any page other
 * than the zero pages and the free hugetlb pool is allocated (a hugetlb
 * page in use or reserved included).
 */
int uhmm_machine_destroy(struct uhmm_machine *machine)
{
	unsigned long expected_used = 1;
	bool busy;

	if (IS_ERR_OR_NULL(machine))
		return 0;

	pthread_mutex_lock(&machine->mms_lock);
	busy = machine->nr_mms > 0 || !list_empty(&machine->mms);
	pthread_mutex_unlock(&machine->mms_lock);
	if (busy)
		return -EBUSY;

	/* Memremapped device memory is attached to the machine. */
	pthread_mutex_lock(&machine->pgmap_lock);
	busy = machine->nr_pgmaps > 0;
	pthread_mutex_unlock(&machine->pgmap_lock);
	if (busy)
		return -EBUSY;

	/* A file keeps its page cache, and the machine, alive. */
	pthread_mutex_lock(&machine->inodes_lock);
	busy = machine->nr_inodes > 0 || !list_empty(&machine->inodes);
	pthread_mutex_unlock(&machine->inodes_lock);
	if (busy)
		return -EBUSY;

	pthread_mutex_lock(&machine->huge_zero_lock);
	if (machine->huge_zero_users > 0)
		busy = true;
	else if (machine->huge_zero_folio)
		expected_used += folio_nr_pages(machine->huge_zero_folio);
	pthread_mutex_unlock(&machine->huge_zero_lock);
	if (busy)
		return -EBUSY;

	/* The hugetlb pool's free pages go with the machine; pages in use keep it. */
	pthread_mutex_lock(&machine->hstate.lock);
	if (machine->hstate.free_huge_pages != machine->hstate.nr_huge_pages ||
	    machine->hstate.resv_huge_pages)
		busy = true;
	expected_used += machine->hstate.nr_huge_pages << HUGETLB_PAGE_ORDER;
	pthread_mutex_unlock(&machine->hstate.lock);
	if (busy)
		return -EBUSY;

	pthread_mutex_lock(&machine->zone_lock);
	busy = machine->nr_pages - atomic_load(&machine->nr_free_pages) != expected_used;
	pthread_mutex_unlock(&machine->zone_lock);
	if (busy)
		return -EBUSY;
	if (hugetlb_pool_destroy(machine))
		return -EBUSY;

	pfn_space_unregister(machine->start_pfn);
	munmap(machine->ram, machine->nr_pages << PAGE_SHIFT);
	pthread_mutex_destroy(&machine->zone_lock);
	fault_injector_destroy(&machine->fail_page_alloc);
	pthread_mutex_destroy(&machine->huge_zero_lock);
	pthread_mutex_destroy(&machine->mms_lock);
	pthread_mutex_destroy(&machine->inodes_lock);
	pthread_mutex_destroy(&machine->pgmap_lock);
	free(machine);
	return 0;
}

/**
 * uhmm_machine_set_thp() - change transparent_hugepage/enabled at run time.
 * @machine: the machine.
 * @mode: the new mode; faults that start afterwards see it.  A mode that is
 *        not an enum thp_mode is ignored, as Linux's enabled_store() refuses
 *        an unknown word (-EINVAL) and keeps the old mode.  Lock-free.
 */
void uhmm_machine_set_thp(struct uhmm_machine *machine, enum thp_mode mode)
{
	if (IS_ERR_OR_NULL(machine) || (unsigned int)mode > THP_NEVER)
		return;
	atomic_store(&machine->thp_enabled, mode);
}

/**
 * uhmm_totalram_pages() - pages of system RAM the machine was built with.
 * @machine: the machine.  Lock-free.
 * Return: the page count.
 */
unsigned long uhmm_totalram_pages(const struct uhmm_machine *machine)
{
	return machine->nr_pages;
}

/**
 * uhmm_nr_free_pages() - pages in the buddy allocator's free lists.
 * @machine: the machine.  Lock-free; a snapshot.
 * Return: the page count.
 */
unsigned long uhmm_nr_free_pages(struct uhmm_machine *machine)
{
	return atomic_load(&machine->nr_free_pages);
}

/**
 * uhmm_nr_free_blocks() - free blocks of @order (a /proc/buddyinfo column).
 * @machine: the machine.
 * @order: 0..MAX_PAGE_ORDER.
 *
 * Takes machine->zone_lock.
 *
 * Return: the block count (0 for an order out of range).
 */
unsigned long uhmm_nr_free_blocks(struct uhmm_machine *machine, unsigned int order)
{
	unsigned long nr;

	if (order > MAX_PAGE_ORDER)
		return 0;
	pthread_mutex_lock(&machine->zone_lock);
	nr = machine->nr_free[order];
	pthread_mutex_unlock(&machine->zone_lock);
	return nr;
}

/**
 * uhmm_nr_reserved_pages() - pages never handed out: the shared zero page.
 * @machine: the machine.  Lock-free.
 * Return: 1.
 */
unsigned long uhmm_nr_reserved_pages(const struct uhmm_machine *machine)
{
	(void)machine;
	return 1;
}

/**
 * uhmm_zero_pfn() - the PFN of the machine's shared zero page.
 * @machine: the machine.  Lock-free.
 * Return: the PFN.
 */
unsigned long uhmm_zero_pfn(const struct uhmm_machine *machine)
{
	return __atomic_load_n(&machine->zero_pfn, __ATOMIC_ACQUIRE);
}

/**
 * is_zero_pfn() - is @pfn some machine's shared zero page?
 * @pfn: any value.  Lock-free, O(1).
 * Return: true for a zero page.
 */
bool is_zero_pfn(unsigned long pfn)
{
	struct pfn_range range;

	if (!pfn_space_lookup(pfn, &range) || !range.machine)
		return false;
	return uhmm_zero_pfn(range.machine) == pfn;
}

/* ------------------------------------------------------------------ */
/* Allocation-failure injection                                        */
/* ------------------------------------------------------------------ */

/**
 * uhmm_fail_page_alloc() - set or clear allocation-failure injection.
 * @machine: the machine.
 * @attr: the rule (copied), or NULL to stop injecting.
 *
 * Setting a rule restarts the eligible-call and failure counts and reseeds
 * the PRNG from @attr->seed (0 picks a fixed seed).  Clearing it keeps the
 * failure count readable.  Takes the injector's lock.
 */
void uhmm_fail_page_alloc(struct uhmm_machine *machine, const struct fault_attr *attr)
{
	if (IS_ERR_OR_NULL(machine))
		return; /* uhmm only: no machine, nothing to inject into */
	fault_injector_set(&machine->fail_page_alloc, attr);
}

/**
 * uhmm_fail_page_alloc_count() - failures injected since the rule was set.
 * @machine: the machine.  Lock-free.
 * Return: the count.
 */
unsigned long uhmm_fail_page_alloc_count(struct uhmm_machine *machine)
{
	if (IS_ERR_OR_NULL(machine))
		return 0;
	return fault_injector_count(&machine->fail_page_alloc);
}

/**
 * uhmm_fail_page_alloc_calls() - allocations the rule has counted as
 * eligible since it was set (see fault_injector_calls()).
 * @machine: the machine.  Takes the injector's lock.
 * Return: the count.
 */
unsigned long uhmm_fail_page_alloc_calls(struct uhmm_machine *machine)
{
	return fault_injector_calls(&machine->fail_page_alloc);
}
