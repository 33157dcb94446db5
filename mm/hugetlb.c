// SPDX-License-Identifier: MIT
/*
 * mm/hugetlb.c - hugetlb: the pool of 2 MiB huge pages (Linux's default
 * hstate), reservations, MAP_HUGETLB faults, unmapping, fork and
 * copy-on-write of private huge pages.
 *
 * The pool
 * --------
 * Pool pages are order-9 folios taken from the buddy allocator with
 * PG_hugetlb on their head (Linux's hugetlb page type).  A free pool folio
 * sits on hstate->free_list with refcount 0, still compound; a folio in
 * use has one reference per mapping, GUP reference or pin, and goes back
 * to the free list when the last one is dropped (__folio_free() calls
 * free_huge_folio()).  Surplus folios (the pool was shrunk while they were
 * in use) go back to the buddy allocator instead.
 *
 * Reservations
 * ------------
 * As in Linux, mmap reserves the huge pages of a mapping (resv_huge_pages)
 * so that later faults cannot fail; MAP_NORESERVE does not, and a fault
 * that then finds no unreserved free page raises SIGBUS.  A private
 * mapping's reservation map hangs off the VMA that created it (the owner,
 * vm_private_data) and records, per huge page, whether its reservation was
 * consumed by a fault.  Split and mremap share it (refcounted); fork's
 * child gets none.  Unmapping gives back the reservations no fault used.
 *
 * Mappings
 * --------
 * A hugetlb page is mapped whole by a PMD leaf (x86-64's 2 MiB huge PTE)
 * without a deposited PTE table: hugetlb PMDs are never split.  Mapcounts
 * are Linux's for hugetlb: _entire_mapcount and _large_mapcount, one per
 * mapping.  PG_anon_exclusive is set or cleared on every page of a
 * hugetlb folio at once (Linux keeps it on the head and PageAnonExclusive()
 * looks there; uhmm's per-page checks then read the same answer).  Hugetlb pages are not
 * counted in the RSS counters (Linux counts them in hugetlb_usage only).
 *
 * Shared mappings (MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB) map an
 * internal hugetlbfs file ("anon_hugepage", S_HUGETLB): its page cache
 * holds the huge folios at the index of their first page (Linux's since
 * 6.7), and its reservation map is per inode (i_private): mmap reserves
 * every page of the file once, a fault that adds a page to the cache
 * consumes that page's reservation, and the last close of the file gives
 * back what no fault used.  fork shares these pages (copying the PMDs).
 *
 * uhmm differs from Linux on purpose in: private MAP_HUGETLB mappings have
 * no hugetlbfs file behind them (vm_file NULL; their folios are anonymous
 * as in Linux); no
 * hugetlbfs mount (no hole punch, no truncate of the file); and hugetlb
 * VMAs never merge with their neighbours.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "uhmm/gup.h"

#ifndef LIST_HEAD
#define LIST_HEAD(name) struct list_head name = LIST_HEAD_INIT(name)
#endif

#define HUGETLB_ORDER HUGETLB_PAGE_ORDER
#define HUGETLB_NR (1UL << HUGETLB_ORDER)

/* ------------------------------------------------------------------ */
/* Reservation maps                                                    */
/* ------------------------------------------------------------------ */

/**
 * struct resv_map - the reservation map of a private hugetlb mapping.
 * @refs: VMAs that point to it (the owner and its splits / moves).
 * @base: the huge-page index (vm_pgoff / 512) of the first page.
 * @nr: huge pages the mapping had at mmap time.
 * @consumed: per huge page, 1 when a fault used its reservation.
 *
 * @consumed is protected by hstate->lock.
 */
struct resv_map {
	atomic_int refs;
	unsigned long base;
	unsigned long nr;
	uint8_t consumed[];
};

/*
 * A child's VMA from which the owner unmapped a page it could not copy
 * (Linux's HPAGE_RESV_UNMAPPED): a later fault there raises SIGBUS.
 */
static struct resv_map resv_unmapped_marker;

static struct resv_map *vma_resv_map(const struct vm_area_struct *vma)
{
	struct resv_map *resv =
		__atomic_load_n((struct resv_map *const *)&vma->vm_private_data, __ATOMIC_ACQUIRE);

	return resv == &resv_unmapped_marker ? NULL : resv;
}

static bool vma_resv_unmapped(const struct vm_area_struct *vma)
{
	return __atomic_load_n(&vma->vm_private_data, __ATOMIC_ACQUIRE) == &resv_unmapped_marker;
}

/* The huge-page index of @addr in @vma (vma_hugecache_offset()). */
static unsigned long vma_hugecache_offset(const struct vm_area_struct *vma, unsigned long addr)
{
	return (vma->vm_pgoff >> HUGETLB_ORDER) + ((addr - vma->vm_start) >> HPAGE_SHIFT);
}

/* Is the reservation of huge page @idx still unused?  hstate->lock held. */
static bool resv_map_has_reservation(struct resv_map *resv, unsigned long idx)
{
	if (idx < resv->base || idx - resv->base >= resv->nr)
		return false;
	return !resv->consumed[idx - resv->base];
}

static void resv_map_set_consumed(struct resv_map *resv, unsigned long idx, bool consumed)
{
	if (idx >= resv->base && idx - resv->base < resv->nr)
		resv->consumed[idx - resv->base] = consumed;
}

/* Per page of a hugetlbfs file (the inode's reservation map). */
enum { HRESV_NONE, HRESV_RESERVED, HRESV_PAGE };

/**
 * struct hugetlbfs_resv - the reservation map of a hugetlbfs inode.
 * @nr: huge pages in the file.
 * @state: per huge page: no reservation, reserved (not faulted yet), or a
 *         page is (or was) in the cache.  Protected by hstate->lock.
 */
struct hugetlbfs_resv {
	unsigned long nr;
	uint8_t state[];
};

static struct hugetlbfs_resv *vma_inode_resv(const struct vm_area_struct *vma)
{
	return vma->vm_file ? vma->vm_file->f_inode->i_private : NULL;
}

static void resv_map_put(struct resv_map *resv)
{
	if (resv && atomic_fetch_sub(&resv->refs, 1) == 1)
		free(resv);
}

/* ------------------------------------------------------------------ */
/* The pool                                                            */
/* ------------------------------------------------------------------ */

static struct hstate *machine_hstate(struct uhmm_machine *machine)
{
	return &machine->hstate;
}

static void hugetlb_lock(struct hstate *h)
{
	pthread_mutex_lock(&h->lock);
}
static void hugetlb_unlock(struct hstate *h)
{
	pthread_mutex_unlock(&h->lock);
}

static unsigned long persistent_huge_pages(const struct hstate *h)
{
	return h->nr_huge_pages - h->surplus_huge_pages;
}

/* A new pool folio from the buddy allocator, refcount 0.  NULL when none. */
static struct folio *alloc_fresh_hugetlb_folio(struct uhmm_machine *machine)
{
	struct folio *folio = folio_alloc(machine, __GFP_COMP | __GFP_NOWARN, HUGETLB_ORDER);

	if (!folio)
		return NULL;
	set_page_flag(folio_head(folio), PG_hugetlb);
	folio_ref_unfreeze(folio, 0);
	return folio;
}

/* Give a free pool folio (refcount 0, off every list) back to the buddy allocator. */
static void update_and_free_hugetlb_folio(struct folio *folio)
{
	clear_page_flag(folio_head(folio), PG_hugetlb);
	__folio_free(folio);
}

static void enqueue_hugetlb_folio(struct hstate *h, struct folio *folio)
{
	list_add(&folio->lru, &h->free_list);
	h->free_huge_pages++;
}

/* Take a free folio off the list; hstate->lock held.  It gets one reference. */
static struct folio *dequeue_hugetlb_folio(struct hstate *h)
{
	struct folio *folio;

	if (list_empty(&h->free_list))
		return NULL;
	folio = list_first_entry(&h->free_list, struct folio, lru);
	list_del_init(&folio->lru);
	h->free_huge_pages--;
	folio_ref_unfreeze(folio, 1);
	return folio;
}

/*
 * Take a free folio out of the pool altogether (to free it); hstate->lock
 * held.  @surplus: it is one of the surplus pages.
 */
static struct folio *remove_pool_hugetlb_folio(struct hstate *h, bool surplus)
{
	struct folio *folio;

	if (list_empty(&h->free_list))
		return NULL;
	folio = list_first_entry(&h->free_list, struct folio, lru);
	list_del_init(&folio->lru);
	h->free_huge_pages--;
	h->nr_huge_pages--;
	if (surplus)
		h->surplus_huge_pages--;
	return folio;
}

static void free_folio_list(struct list_head *list)
{
	struct folio *folio, *next;

	list_for_each_entry_safe(folio, next, list, lru) {
		list_del_init(&folio->lru);
		update_and_free_hugetlb_folio(folio);
	}
}

/* Clear what a folio in use carried, before it goes back to the free list. */
static void hugetlb_folio_reset(struct folio *folio)
{
	const unsigned long keep = (1UL << PG_head) | (1UL << PG_hugetlb);
	struct page *head = folio_head(folio);

	if (folio_mapped(folio) || folio_entire_mapcount(folio) || atomic_load(&folio->_pincount))
		uhmm_warn("free_huge_folio: pfn %#lx is still mapped or pinned", folio_pfn(folio));
	__atomic_store_n(&folio->mapping, NULL, __ATOMIC_RELAXED);
	folio->index = 0;
	folio->private = 0;
	for (unsigned long i = 1; i < HUGETLB_NR; i++)
		ClearPageAnonExclusive(folio_page(folio, i));
	__atomic_store_n(&head->flags, __atomic_load_n(&head->flags, __ATOMIC_ACQUIRE) & keep,
			 __ATOMIC_RELEASE);
}

/*
 * __free_huge_folio() - put a hugetlb folio whose refcount is 0 back in the
 * pool; with @restore_idx / @resv set, also give the private mapping its
 * reservation for that page back (Linux's restore_reserve), unless the
 * pool has surplus pages, which must shrink first.
 */
static void __free_huge_folio(struct folio *folio, struct resv_map *resv, unsigned long restore_idx,
			      struct hugetlbfs_resv *shared)
{
	struct hstate *h = machine_hstate(page_machine(folio_head(folio)));

	hugetlb_folio_reset(folio);
	hugetlb_lock(h);
	if (h->surplus_huge_pages) {
		h->nr_huge_pages--;
		h->surplus_huge_pages--;
		hugetlb_unlock(h);
		update_and_free_hugetlb_folio(folio);
		return;
	}
	enqueue_hugetlb_folio(h, folio);
	if (resv) {
		resv_map_set_consumed(resv, restore_idx, false);
		h->resv_huge_pages++;
	} else if (shared && restore_idx < shared->nr) {
		shared->state[restore_idx] = HRESV_RESERVED;
		h->resv_huge_pages++;
	}
	hugetlb_unlock(h);
}

/**
 * free_huge_folio() - the last reference of a hugetlb folio was dropped.
 * @folio: a hugetlb folio with refcount 0, unmapped and unpinned.
 *
 * Called by __folio_free(), possibly under a page-table lock.  Takes
 * hstate->lock (and the zone lock for a surplus folio).
 */
void free_huge_folio(struct folio *folio)
{
	__free_huge_folio(folio, NULL, 0, NULL);
}

/*
 * Put a hugetlb folio on which the caller holds the only reference back in
 * the pool, restoring the reservation of @idx in @resv.  Return: false (and
 * nothing done) when another reference appeared.
 */
static bool put_huge_folio_restore(struct folio *folio, struct resv_map *resv, unsigned long idx)
{
	if (!folio_ref_freeze(folio, 1))
		return false;
	__free_huge_folio(folio, resv, idx, NULL);
	return true;
}

/*
 * alloc_surplus_hugetlb_folio() - one more free pool page beyond
 * nr_hugepages, while the surplus stays within nr_overcommit_hugepages.
 * hstate->lock held (the buddy allocator's zone lock nests inside).
 * Return: true when a page was added.
 */
static bool alloc_surplus_hugetlb_folio(struct hstate *h)
{
	struct folio *folio;

	if (h->surplus_huge_pages >= h->nr_overcommit_huge_pages)
		return false;
	folio = alloc_fresh_hugetlb_folio(container_of(h, struct uhmm_machine, hstate));
	if (!folio)
		return false;
	h->nr_huge_pages++;
	h->surplus_huge_pages++;
	enqueue_hugetlb_folio(h, folio);
	return true;
}

/*
 * hugetlb_acct_memory() - reserve @delta more pages (delta > 0) or give
 * back -@delta reservations; returning reservations also frees surplus
 * pages (return_unused_surplus_pages()); reserving more than the free
 * pages allocates surplus pages within the overcommit limit.  hstate->lock
 * held; @freed
 * collects folios to free after unlocking.  Return: 0 or -ENOMEM.
 */
static int hugetlb_acct_memory(struct hstate *h, long delta, struct list_head *freed)
{
	if (delta > 0) {
		unsigned long added = 0;

		/* gather_surplus_pages(): overcommit makes up what the pool lacks. */
		while (h->free_huge_pages - h->resv_huge_pages < (unsigned long)delta) {
			if (!alloc_surplus_hugetlb_folio(h)) {
				/* Give back the surplus pages taken for nothing. */
				while (added--) {
					struct folio *folio = remove_pool_hugetlb_folio(h, true);

					if (folio)
						list_add(&folio->lru, freed);
				}
				return -ENOMEM;
			}
			added++;
		}
		h->resv_huge_pages += (unsigned long)delta;
		return 0;
	}
	if (delta < 0) {
		unsigned long unused = (unsigned long)-delta, nr;

		if (unused > h->resv_huge_pages) {
			uhmm_warn("hugetlb: giving back %lu reservations, only %lu held", unused,
				  h->resv_huge_pages);
			unused = h->resv_huge_pages;
		}
		h->resv_huge_pages -= unused;
		nr = unused < h->surplus_huge_pages ? unused : h->surplus_huge_pages;
		while (nr--) {
			struct folio *folio = remove_pool_hugetlb_folio(h, true);

			if (!folio)
				break;
			list_add(&folio->lru, freed);
		}
	}
	return 0;
}

long uhmm_hugetlb_set_nr_hugepages(struct uhmm_machine *machine, unsigned long count)
{
	struct hstate *h;
	unsigned long min_count;
	LIST_HEAD(freed);
	long ret;

	if (IS_ERR_OR_NULL(machine))
		return -EINVAL; /* uhmm only: no machine, no pool */
	h = machine_hstate(machine);
	hugetlb_lock(h);
	/* Surplus pages in use become persistent again first. */
	while (h->surplus_huge_pages && count > persistent_huge_pages(h))
		h->surplus_huge_pages--;
	while (count > persistent_huge_pages(h)) {
		struct folio *folio;

		hugetlb_unlock(h);
		folio = alloc_fresh_hugetlb_folio(machine);
		hugetlb_lock(h);
		if (!folio)
			break;
		h->nr_huge_pages++;
		enqueue_hugetlb_folio(h, folio);
	}
	/* Shrink: free pages that no one uses or has reserved... */
	min_count = h->resv_huge_pages + h->nr_huge_pages - h->free_huge_pages;
	if (min_count < count)
		min_count = count;
	while (min_count < persistent_huge_pages(h)) {
		struct folio *folio = remove_pool_hugetlb_folio(h, false);

		if (!folio)
			break;
		list_add(&folio->lru, &freed);
	}
	/* ...and the rest, in use, become surplus (adjust_pool_surplus()). */
	while (count < persistent_huge_pages(h) && h->surplus_huge_pages < h->nr_huge_pages)
		h->surplus_huge_pages++;
	ret = (long)persistent_huge_pages(h);
	hugetlb_unlock(h);
	free_folio_list(&freed);
	return ret;
}

/**
 * hstate_vma() - the hstate of @vma's huge pages.
 * @vma: a hugetlb VMA.  Lock-free.
 * Return: its machine's hstate (uhmm has one, of 2 MiB pages).
 */
struct hstate *hstate_vma(struct vm_area_struct *vma)
{
	return machine_hstate(vma->vm_mm->machine);
}

/**
 * huge_page_order() - the order of an hstate's pages.
 * @h: the hstate.  Return: 9 (2 MiB).
 */
unsigned int huge_page_order(const struct hstate *h)
{
	(void)h;
	return HUGETLB_ORDER;
}

/**
 * huge_page_size() - the bytes of one of an hstate's pages.
 * @h: the hstate.  Return: 2 MiB.
 */
unsigned long huge_page_size(const struct hstate *h)
{
	(void)h;
	return HPAGE_SIZE;
}

void uhmm_hugetlb_set_nr_overcommit_hugepages(struct uhmm_machine *machine, unsigned long count)
{
	struct hstate *h;

	if (IS_ERR_OR_NULL(machine))
		return; /* uhmm only: no machine, no pool */
	h = machine_hstate(machine);
	hugetlb_lock(h);
	h->nr_overcommit_huge_pages = count;
	hugetlb_unlock(h);
}

int uhmm_hugetlb_stats(struct uhmm_machine *machine, struct hugetlb_stats *out)
{
	struct hstate *h;

	if (!machine || !out)
		return -EINVAL;
	h = machine_hstate(machine);
	hugetlb_lock(h);
	out->total = h->nr_huge_pages;
	out->free = h->free_huge_pages;
	out->rsvd = h->resv_huge_pages;
	out->surp = h->surplus_huge_pages;
	out->nr_hugepages = persistent_huge_pages(h);
	out->nr_overcommit_hugepages = h->nr_overcommit_huge_pages;
	out->hugepagesize = HPAGE_SIZE;
	hugetlb_unlock(h);
	return 0;
}

/**
 * hugetlb_pool_init() - set up @machine's hstate and fill its pool.
 * @machine: a machine being created (no other thread sees it).
 * @nr_hugepages: the config value: 0 for the default (8 pages, at most
 *                1/16 of RAM), UHMM_NO_HUGEPAGES for none.
 */
void hugetlb_pool_init(struct uhmm_machine *machine, unsigned long nr_hugepages)
{
	struct hstate *h = machine_hstate(machine);

	pthread_mutex_init(&h->lock, NULL);
	INIT_LIST_HEAD(&h->free_list);
	if (nr_hugepages == UHMM_NO_HUGEPAGES)
		return;
	if (!nr_hugepages) {
		unsigned long cap = (machine->nr_pages / HUGETLB_NR) / 16;

		nr_hugepages = cap < UHMM_DEFAULT_NR_HUGEPAGES ? cap : UHMM_DEFAULT_NR_HUGEPAGES;
	}
	uhmm_hugetlb_set_nr_hugepages(machine, nr_hugepages);
}

/**
 * hugetlb_pool_destroy() - free every pool page of @machine.
 * @machine: a machine being destroyed (no mm left).
 * Return: 0; -EBUSY, changing nothing, while a huge page is in use or reserved.
 */
int hugetlb_pool_destroy(struct uhmm_machine *machine)
{
	struct hstate *h = machine_hstate(machine);
	LIST_HEAD(freed);

	hugetlb_lock(h);
	if (h->free_huge_pages != h->nr_huge_pages || h->resv_huge_pages) {
		hugetlb_unlock(h);
		return -EBUSY;
	}
	for (struct folio *folio; (folio = remove_pool_hugetlb_folio(h, false));)
		list_add(&folio->lru, &freed);
	h->surplus_huge_pages = 0;
	hugetlb_unlock(h);
	free_folio_list(&freed);
	pthread_mutex_destroy(&h->lock);
	return 0;
}

/*
 * alloc_hugetlb_folio() - a zeroed-later pool folio for @addr in @vma,
 * using the reservation of that page when there is one (and not
 * @avoid_reserve), else an unreserved free page.
 * Return: the folio with one reference, or NULL (no page: SIGBUS).
 */
static struct folio *alloc_hugetlb_folio(struct vm_area_struct *vma, unsigned long addr,
					 bool avoid_reserve)
{
	struct hstate *h = machine_hstate(vma->vm_mm->machine);
	struct resv_map *resv = vma_resv_map(vma);
	struct hugetlbfs_resv *shared = vma_inode_resv(vma);
	unsigned long idx = vma_hugecache_offset(vma, addr);
	struct folio *folio;
	bool reserved;

	hugetlb_lock(h);
	if (vma->vm_flags & VM_MAYSHARE)
		/* The inode's reservation, even for a MAP_NORESERVE VMA (vma_has_reserves()). */
		reserved = shared && idx < shared->nr && shared->state[idx] == HRESV_RESERVED;
	else
		reserved = !avoid_reserve && !(vma->vm_flags & VM_NORESERVE) && resv &&
			   resv_map_has_reservation(resv, idx);
	if (!reserved && h->free_huge_pages <= h->resv_huge_pages &&
	    !alloc_surplus_hugetlb_folio(h)) {
		hugetlb_unlock(h);
		return NULL;
	}
	folio = dequeue_hugetlb_folio(h);
	if (folio) {
		if (reserved)
			h->resv_huge_pages--;
		if ((vma->vm_flags & VM_MAYSHARE) && shared && idx < shared->nr)
			shared->state[idx] = HRESV_PAGE;
		else if (reserved)
			resv_map_set_consumed(resv, idx, true);
	}
	hugetlb_unlock(h);
	return folio;
}

/* ------------------------------------------------------------------ */
/* VMAs                                                                */
/* ------------------------------------------------------------------ */

static const struct vm_operations_struct hugetlb_vm_ops = {
	.name = "hugetlb", /* faults go to hugetlb_fault(), never to ->fault */
};

/*
 * A shared mapping: a new hugetlbfs file of the mapping's size, every page
 * of it reserved (hugetlb_reserve_pages() on the inode), vm_pgoff 0.
 */
static int hugetlb_mmap_prepare_shared(struct vm_area_struct *vma)
{
	struct hstate *h = machine_hstate(vma->vm_mm->machine);
	unsigned long nr = (vma->vm_end - vma->vm_start) >> HPAGE_SHIFT;
	struct hugetlbfs_resv *shared = calloc(1, sizeof(*shared) + nr);
	struct file *file;
	LIST_HEAD(freed);
	int err = 0;

	if (!shared)
		return -ENOMEM;
	shared->nr = nr;
	if (!(vma->vm_flags & VM_NORESERVE)) {
		hugetlb_lock(h);
		err = hugetlb_acct_memory(h, (long)nr, &freed);
		if (!err)
			memset(shared->state, HRESV_RESERVED, nr);
		hugetlb_unlock(h);
		free_folio_list(&freed);
		if (err) {
			free(shared);
			return err;
		}
	}
	file = hugetlb_file_setup(vma->vm_mm->machine, (loff_t)(vma->vm_end - vma->vm_start));
	if (IS_ERR(file)) {
		hugetlb_lock(h);
		if (!(vma->vm_flags & VM_NORESERVE))
			hugetlb_acct_memory(h, -(long)nr, &freed);
		hugetlb_unlock(h);
		free_folio_list(&freed);
		free(shared);
		return (int)PTR_ERR(file);
	}
	file->f_inode->i_private = shared;
	vma->vm_file = file;
	vma->vm_ops = &hugetlb_vm_ops;
	vma->vm_pgoff = 0;
	vma->vm_private_data = NULL;
	return 0;
}

void hugetlbfs_evict_inode(struct inode *inode)
{
	struct hstate *h = machine_hstate(inode->i_data.machine);
	struct hugetlbfs_resv *shared = inode->i_private;
	unsigned long unused = 0;
	LIST_HEAD(freed);

	if (!shared)
		return;
	hugetlb_lock(h);
	for (unsigned long idx = 0; idx < shared->nr; idx++)
		unused += shared->state[idx] == HRESV_RESERVED;
	hugetlb_acct_memory(h, -(long)unused, &freed);
	hugetlb_unlock(h);
	free_folio_list(&freed);
	inode->i_private = NULL;
	free(shared);
}

unsigned long hugetlb_inode_resv_pages(struct inode *inode)
{
	struct hstate *h = machine_hstate(inode->i_data.machine);
	struct hugetlbfs_resv *shared = inode->i_private;
	unsigned long n = 0;

	if (!shared)
		return 0;
	hugetlb_lock(h);
	for (unsigned long idx = 0; idx < shared->nr; idx++)
		n += shared->state[idx] == HRESV_RESERVED;
	hugetlb_unlock(h);
	return n;
}

int hugetlb_mmap_prepare(struct vm_area_struct *vma)
{
	struct hstate *h = machine_hstate(vma->vm_mm->machine);
	unsigned long nr = (vma->vm_end - vma->vm_start) >> HPAGE_SHIFT;
	struct resv_map *resv;
	LIST_HEAD(freed);
	int err;

	if (vma->vm_flags & VM_MAYSHARE)
		return hugetlb_mmap_prepare_shared(vma);
	vma->vm_private_data = NULL;
	if (vma->vm_flags & VM_NORESERVE)
		return 0;
	resv = calloc(1, sizeof(*resv) + nr);
	if (!resv)
		return -ENOMEM;
	atomic_init(&resv->refs, 1);
	resv->base = vma->vm_pgoff >> HUGETLB_ORDER;
	resv->nr = nr;
	hugetlb_lock(h);
	err = hugetlb_acct_memory(h, (long)nr, &freed);
	hugetlb_unlock(h);
	free_folio_list(&freed);
	if (err) {
		free(resv);
		return err;
	}
	vma->vm_private_data = resv;
	return 0;
}

void hugetlb_vm_op_open(struct vm_area_struct *vma)
{
	struct resv_map *resv = vma_resv_map(vma);

	if (resv)
		atomic_fetch_add(&resv->refs, 1);
}

/*
 * Does another VMA of @vma's mm that shares @resv cover huge page @idx?
 * After mremap moved a range, the old and the new VMA briefly cover the
 * same pages; the reservation goes with the one that stays.
 */
static bool resv_idx_covered_elsewhere(struct vm_area_struct *vma, struct resv_map *resv,
				       unsigned long idx)
{
	struct mm_struct *mm = vma->vm_mm;

	for (size_t i = 0; i < mm->mm_mt.nr; i++) {
		struct vm_area_struct *v = mm->mm_mt.vmas[i];

		if (v != vma && is_vm_hugetlb_page(v) && vma_resv_map(v) == resv &&
		    idx >= vma_hugecache_offset(v, v->vm_start) &&
		    idx < vma_hugecache_offset(v, v->vm_end))
			return true;
	}
	return false;
}

void hugetlb_vm_op_close(struct vm_area_struct *vma)
{
	struct hstate *h = machine_hstate(vma->vm_mm->machine);
	struct resv_map *resv = vma_resv_map(vma);
	unsigned long start, end, unused = 0;
	LIST_HEAD(freed);

	if (!resv)
		return;
	start = vma_hugecache_offset(vma, vma->vm_start);
	end = vma_hugecache_offset(vma, vma->vm_end);
	hugetlb_lock(h);
	for (unsigned long idx = start; idx < end; idx++)
		if (resv_map_has_reservation(resv, idx) &&
		    !resv_idx_covered_elsewhere(vma, resv, idx)) {
			unused++;
			/* Given back: a later user of the map must not count it again. */
			resv_map_set_consumed(resv, idx, true);
		}
	hugetlb_acct_memory(h, -(long)unused, &freed);
	hugetlb_unlock(h);
	free_folio_list(&freed);
}

unsigned long hugetlb_vma_resv_pages(struct vm_area_struct *vma)
{
	struct hstate *h = machine_hstate(vma->vm_mm->machine);
	struct resv_map *resv = vma_resv_map(vma);
	unsigned long n = 0;

	if (!resv)
		return 0;
	hugetlb_lock(h);
	for (unsigned long idx = vma_hugecache_offset(vma, vma->vm_start);
	     idx < vma_hugecache_offset(vma, vma->vm_end); idx++)
		n += resv_map_has_reservation(resv, idx);
	hugetlb_unlock(h);
	return n;
}

void hugetlb_vm_op_free(struct vm_area_struct *vma)
{
	resv_map_put(vma_resv_map(vma));
	vma->vm_private_data = NULL;
}

void hugetlb_dup_vma_private(struct vm_area_struct *vma)
{
	hugetlb_vm_op_free(vma);
}

int hugetlb_vma_may_split(struct vm_area_struct *vma, unsigned long addr)
{
	(void)vma;
	return IS_ALIGNED(addr, HPAGE_SIZE) ? 0 : -EINVAL;
}

/* ------------------------------------------------------------------ */
/* rmap of hugetlb folios                                              */
/* ------------------------------------------------------------------ */

/* PG_anon_exclusive of a whole hugetlb folio (see the top of the file). */
static void hugetlb_set_anon_exclusive(struct folio *folio, bool exclusive)
{
	for (unsigned long i = 0; i < HUGETLB_NR; i++)
		if (exclusive)
			SetPageAnonExclusive(folio_page(folio, i));
		else
			ClearPageAnonExclusive(folio_page(folio, i));
}

/* hugetlb_add_new_anon_rmap(): a new private folio mapped once. */
static void hugetlb_add_new_anon_rmap(struct folio *folio, struct vm_area_struct *vma,
				      unsigned long haddr)
{
	struct anon_vma *anon_vma = __atomic_load_n(&vma->anon_vma, __ATOMIC_ACQUIRE);

	folio->index = linear_page_index(vma, haddr);
	__atomic_store_n(&folio->mapping, (void *)((unsigned long)anon_vma | PAGE_MAPPING_ANON),
			 __ATOMIC_RELEASE);
	folio_set_uptodate(folio);
	hugetlb_set_anon_exclusive(folio, true);
	atomic_store(&folio->_entire_mapcount, 0);
	atomic_store(&folio->_large_mapcount, 0);
}

/* hugetlb_add_anon_rmap() / hugetlb_add_file_rmap(): one more mapping. */
static void hugetlb_add_rmap(struct folio *folio)
{
	atomic_fetch_add(&folio->_entire_mapcount, 1);
	atomic_fetch_add(&folio->_large_mapcount, 1);
}

/* hugetlb_remove_rmap(): one mapping fewer. */
static void hugetlb_remove_rmap(struct folio *folio)
{
	if (atomic_fetch_sub(&folio->_entire_mapcount, 1) < 0)
		uhmm_warn("hugetlb: folio %#lx entire mapcount underflow", folio_pfn(folio));
	atomic_fetch_sub(&folio->_large_mapcount, 1);
}

/* ------------------------------------------------------------------ */
/* Faults                                                              */
/* ------------------------------------------------------------------ */

/*
 * The hugetlb fault mutexes (Linux's hugetlb_fault_mutex_table): faults on
 * one huge page of one mapping are serialised, so two of them never both
 * take a pool page for it.
 */
#define HUGETLB_FAULT_MUTEXES 64
static pthread_mutex_t hugetlb_fault_mutex_table[HUGETLB_FAULT_MUTEXES];
static pthread_once_t hugetlb_fault_mutex_once = PTHREAD_ONCE_INIT;

static void hugetlb_fault_mutex_init(void)
{
	for (int i = 0; i < HUGETLB_FAULT_MUTEXES; i++)
		pthread_mutex_init(&hugetlb_fault_mutex_table[i], NULL);
}

static pthread_mutex_t *hugetlb_fault_mutex(const void *key, unsigned long idx)
{
	uint64_t h = ((uint64_t)(uintptr_t)key >> 4) * 0x9e3779b97f4a7c15ULL ^
		     idx * 0xc2b2ae3d27d4eb4fULL;

	pthread_once(&hugetlb_fault_mutex_once, hugetlb_fault_mutex_init);
	return &hugetlb_fault_mutex_table[(h >> 32) % HUGETLB_FAULT_MUTEXES];
}

/* The entry that maps @folio in @vma: writable (and dirty) when @writable. */
static pmd_t make_huge_pmd(struct vm_area_struct *vma, struct folio *folio, bool writable)
{
	pmd_t entry =
		pmd_mkyoung(pfn_pmd(folio_pfn(folio), vm_get_page_prot(vma->vm_flags) & ~_PAGE_RW));

	if (writable)
		entry = pmd_mkdirty(pmd_mkwrite(entry));
	return entry;
}

/* Zero a new huge page (clear_huge_page()). */
static void clear_huge_folio(struct folio *folio)
{
	memset(folio_address(folio), 0, HPAGE_SIZE);
}

/*
 * hugetlb_no_page() - a fault on an empty huge PMD of a private mapping:
 * a new zeroed page (hugetlb has no zero page), writable for a write.
 */
/*
 * hugetlb_no_page_shared() - a fault on an empty huge PMD of a shared
 * mapping: the file's page at that index, added zeroed to its page cache
 * when it has none yet.  Writable (and dirty) when the VMA is.
 */
static vm_fault_t hugetlb_no_page_shared(struct vm_area_struct *vma, pmd_t *pmd,
					 unsigned long haddr, unsigned int flags)
{
	struct address_space *mapping = vma->vm_file->f_mapping;
	unsigned long idx = vma_hugecache_offset(vma, haddr);
	struct mm_struct *mm = vma->vm_mm;
	struct folio *folio;
	pthread_mutex_t *ptl;
	bool writable = vma->vm_flags & VM_WRITE;

	(void)flags;
	if (idx >= (unsigned long)(i_size_read(mapping->host) >> HPAGE_SHIFT))
		return VM_FAULT_SIGBUS; /* past the end of the file */
	folio = filemap_get_folio(mapping, idx << HUGETLB_ORDER);
	if (!folio) {
		struct hstate *h = machine_hstate(mm->machine);
		struct hugetlbfs_resv *shared = vma_inode_resv(vma);
		bool reserved;

		hugetlb_lock(h);
		reserved = shared && idx < shared->nr && shared->state[idx] == HRESV_RESERVED;
		hugetlb_unlock(h);
		folio = alloc_hugetlb_folio(vma, haddr, false);
		if (!folio)
			return VM_FAULT_SIGBUS;
		clear_huge_folio(folio);
		folio_set_uptodate(folio);
		if (filemap_add_folio(mapping, folio, idx << HUGETLB_ORDER)) {
			/* No page-cache node (the fault mutex rules out -EEXIST). */
			if (folio_ref_freeze(folio, 1))
				__free_huge_folio(folio, NULL, idx, reserved ? shared : NULL);
			return VM_FAULT_OOM;
		}
	}
	ptl = pmd_lock(mm, pmd);
	if (!pmd_none(pmdp_get(pmd))) {
		spin_unlock(ptl);
		folio_put(folio);
		return 0;
	}
	hugetlb_add_rmap(folio); /* hugetlb_add_file_rmap() */
	if (writable)
		folio_set_dirty(folio);
	set_pmd(pmd, make_huge_pmd(vma, folio, writable));
	spin_unlock(ptl);
	return 0;
}

static vm_fault_t hugetlb_no_page(struct vm_area_struct *vma, pmd_t *pmd, unsigned long haddr,
				  unsigned int flags)
{
	struct mm_struct *mm = vma->vm_mm;
	struct folio *folio;
	pthread_mutex_t *ptl;
	bool reserved_before;

	if (vma->vm_flags & VM_MAYSHARE)
		return hugetlb_no_page_shared(vma, pmd, haddr, flags);

	if (vma_resv_unmapped(vma)) {
		/* The owner unmapped this child's pages when a COW found no page. */
		return VM_FAULT_SIGBUS;
	}
	if (anon_vma_prepare(vma))
		return VM_FAULT_OOM;
	{
		struct hstate *h = machine_hstate(mm->machine);
		struct resv_map *resv = vma_resv_map(vma);

		hugetlb_lock(h);
		reserved_before =
			resv && resv_map_has_reservation(resv, vma_hugecache_offset(vma, haddr));
		hugetlb_unlock(h);
	}
	folio = alloc_hugetlb_folio(vma, haddr, false);
	if (!folio)
		return VM_FAULT_SIGBUS;
	clear_huge_folio(folio);
	ptl = pmd_lock(mm, pmd);
	if (!pmd_none(pmdp_get(pmd))) {
		/* Cannot happen under the fault mutex; undo everything. */
		spin_unlock(ptl);
		if (!reserved_before || !put_huge_folio_restore(folio, vma_resv_map(vma),
								vma_hugecache_offset(vma, haddr)))
			folio_put(folio);
		return 0;
	}
	hugetlb_add_new_anon_rmap(folio, vma, haddr);
	set_pmd(pmd, make_huge_pmd(vma, folio, flags & FAULT_FLAG_WRITE));
	spin_unlock(ptl);
	return 0;
}

/* rmap_one of unmap_ref_private(): take @folio away from one child VMA. */
struct unmap_ref_arg {
	struct vm_area_struct *owner;
};

static bool unmap_ref_private_one(struct folio *folio, struct vm_area_struct *vma,
				  unsigned long addr, void *arg)
{
	struct unmap_ref_arg *u = arg;
	struct mmu_notifier_range range;
	pthread_mutex_t *ptl;
	pmd_t *pmd;

	if (vma == u->owner || vma_resv_map(vma) || !is_vm_hugetlb_page(vma))
		return true;
	__atomic_store_n(&vma->vm_private_data, (void *)&resv_unmapped_marker, __ATOMIC_RELEASE);
	pmd = pmd_off(vma->vm_mm, addr);
	if (!pmd)
		return true;
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, vma->vm_mm, addr, addr + HPAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ptl = pmd_lock(vma->vm_mm, pmd);
	if (pmd_leaf(pmdp_get(pmd)) && pmd_pfn(pmdp_get(pmd)) == folio_pfn(folio)) {
		pmdp_get_and_clear(pmd);
		hugetlb_remove_rmap(folio);
		folio_put(folio); /* the caller holds its own reference */
	}
	spin_unlock(ptl);
	mmu_notifier_invalidate_range_end(&range);
	return true;
}

/*
 * unmap_ref_private() - the owner of a private mapping must copy @folio
 * but the pool is empty: unmap it from every child instead (they get
 * SIGBUS on their next fault there), as Linux guarantees the owner's pages.
 */
static void unmap_ref_private(struct vm_area_struct *vma, struct folio *folio)
{
	struct unmap_ref_arg u = {.owner = vma};

	folio_lock(folio);
	rmap_walk_anon(folio, unmap_ref_private_one, &u);
	folio_unlock(folio);
}

/*
 * hugetlb_wp() - a write fault on a read-only huge PMD of a private
 * mapping: reuse the page when this mapping is its only user, else copy
 * the whole 2 MiB into a new pool page.
 */
static vm_fault_t hugetlb_wp(struct vm_area_struct *vma, pmd_t *pmd, unsigned long haddr)
{
	struct mm_struct *mm = vma->vm_mm;
	bool owner = vma_resv_map(vma) != NULL, retried = false;
	struct mmu_notifier_range range;
	struct folio *old, *new;
	pthread_mutex_t *ptl;
	pmd_t orig;

retry:
	ptl = pmd_lock(mm, pmd);
	orig = pmdp_get(pmd);
	if (!pmd_leaf(orig) || pmd_write(orig)) {
		spin_unlock(ptl);
		return 0;
	}
	old = page_folio(pfn_to_page(pmd_pfn(orig)));
	if (folio_test_anon(old) && (PageAnonExclusive(folio_head(old)) ||
				     (folio_mapcount(old) == 1 && folio_ref_count(old) == 1))) {
		hugetlb_set_anon_exclusive(old, true);
		set_pmd(pmd, pmd_mkyoung(pmd_mkdirty(pmd_mkwrite(orig))));
		spin_unlock(ptl);
		return 0;
	}
	folio_get(old);
	spin_unlock(ptl);

	if (anon_vma_prepare(vma)) {
		folio_put(old);
		return VM_FAULT_OOM;
	}
	/* The owner's reservation for this page was used by its first fault. */
	new = alloc_hugetlb_folio(vma, haddr, owner);
	if (!new) {
		if (owner && !retried && folio_test_anon(old)) {
			unmap_ref_private(vma, old);
			folio_put(old);
			retried = true;
			goto retry;
		}
		folio_put(old);
		return VM_FAULT_SIGBUS;
	}
	memcpy(folio_address(new), folio_address(old), HPAGE_SIZE);
	/* The old page leaves this mapping: MMU_NOTIFY_CLEAR, as Linux's hugetlb_wp(). */
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, haddr, haddr + HPAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ptl = pmd_lock(mm, pmd);
	if (pmd_val(pmdp_get(pmd)) != pmd_val(orig)) {
		spin_unlock(ptl);
		mmu_notifier_invalidate_range_end(&range);
		folio_put(new);
		folio_put(old);
		return 0;
	}
	hugetlb_add_new_anon_rmap(new, vma, haddr);
	set_pmd(pmd, make_huge_pmd(vma, new, true));
	hugetlb_remove_rmap(old);
	folio_put(old); /* the mapping's reference */
	spin_unlock(ptl);
	mmu_notifier_invalidate_range_end(&range);
	folio_put(old); /* ours */
	return 0;
}

vm_fault_t hugetlb_fault(struct vm_area_struct *vma, unsigned long addr, unsigned int flags)
{
	struct mm_struct *mm = vma->vm_mm;
	unsigned long haddr = addr & HPAGE_MASK;
	pthread_mutex_t *mutex;
	pthread_mutex_t *ptl;
	vm_fault_t ret = 0;
	pmd_t *pmd, val;

	pmd = pmd_off_alloc(mm, haddr);
	if (!pmd)
		return VM_FAULT_OOM;
	mutex = hugetlb_fault_mutex(vma->vm_file ? (void *)vma->vm_file->f_mapping : (void *)mm,
				    vma_hugecache_offset(vma, haddr));
	pthread_mutex_lock(mutex);
	val = pmdp_get(pmd);
	if (pmd_none(val)) {
		ret = hugetlb_no_page(vma, pmd, haddr, flags);
	} else if (!pmd_leaf(val)) {
		uhmm_warn("hugetlb_fault: PMD %#llx at %#lx is not a huge entry",
			  (unsigned long long)pmd_val(val), addr);
		ret = VM_FAULT_SIGBUS;
	} else if ((flags & FAULT_FLAG_WRITE) && !pmd_write(val)) {
		if (vma->vm_flags & VM_SHARED) {
			ptl = pmd_lock(mm, pmd);
			if (pmd_val(pmdp_get(pmd)) == pmd_val(val))
				set_pmd(pmd, pmd_mkyoung(pmd_mkdirty(pmd_mkwrite(val))));
			spin_unlock(ptl);
		} else {
			ret = hugetlb_wp(vma, pmd, haddr);
		}
	} else {
		ptl = pmd_lock(mm, pmd);
		if (pmd_val(pmdp_get(pmd)) == pmd_val(val)) {
			val = pmd_mkyoung(val);
			if (flags & FAULT_FLAG_WRITE)
				val = pmd_mkdirty(val);
			set_pmd(pmd, val);
		}
		spin_unlock(ptl);
	}
	pthread_mutex_unlock(mutex);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Unmapping and fork                                                  */
/* ------------------------------------------------------------------ */

void unmap_hugepage_range(struct vm_area_struct *vma, unsigned long start, unsigned long end)
{
	struct mm_struct *mm = vma->vm_mm;
	struct resv_map *resv = vma_resv_map(vma);

	start = ALIGN_DOWN(start, HPAGE_SIZE);
	for (unsigned long addr = start; addr < end && addr >= start; addr += HPAGE_SIZE) {
		pmd_t *pmd = pmd_off(mm, addr);
		pthread_mutex_t *ptl;
		struct folio *folio;
		pmd_t old;

		if (!pmd)
			continue;
		ptl = pmd_lock(mm, pmd);
		old = pmdp_get(pmd);
		if (!pmd_leaf(old)) {
			if (!pmd_none(old))
				uhmm_warn("unmap_hugepage_range: PMD %#llx at %#lx is not a huge "
					  "entry",
					  (unsigned long long)pmd_val(old), addr);
			spin_unlock(ptl);
			continue;
		}
		pmdp_get_and_clear(pmd);
		folio = page_folio(pfn_to_page(pmd_pfn(old)));
		if (pmd_dirty(old))
			folio_set_dirty(folio);
		hugetlb_remove_rmap(folio);
		spin_unlock(ptl);
		/*
		 * The owner of a private mapping gets the reservation of a page
		 * it frees back, so that a later fault there cannot fail
		 * (Linux's restore_reserve in __unmap_hugepage_range()).
		 */
		if (!(resv && folio_test_anon(folio) &&
		      put_huge_folio_restore(folio, resv, vma_hugecache_offset(vma, addr))))
			folio_put(folio);
	}
}

int copy_hugetlb_page_range(struct vm_area_struct *dst_vma, struct vm_area_struct *src_vma)
{
	struct mm_struct *dst = dst_vma->vm_mm, *src = src_vma->vm_mm;
	bool cow = is_cow_mapping(src_vma->vm_flags);

	for (unsigned long addr = src_vma->vm_start; addr < src_vma->vm_end; addr += HPAGE_SIZE) {
		pmd_t *src_pmd = pmd_off(src, addr), *dst_pmd;
		pthread_mutex_t *src_ptl, *dst_ptl;
		struct folio *folio, *new = NULL;
		pmd_t val;

		if (!src_pmd || pmd_none(pmdp_get(src_pmd)))
			continue;
		dst_pmd = pmd_off_alloc(dst, addr);
		if (!dst_pmd)
			return -ENOMEM;
	again:
		src_ptl = pmd_lock(src, src_pmd);
		val = pmdp_get(src_pmd);
		if (!pmd_leaf(val)) {
			spin_unlock(src_ptl);
			continue;
		}
		folio = page_folio(pfn_to_page(pmd_pfn(val)));
		if (cow && folio_test_anon(folio) && PageAnonExclusive(folio_head(folio)) &&
		    folio_maybe_dma_pinned(folio)) {
			/* A page that may be pinned is copied for the child at once. */
			if (!new) {
				spin_unlock(src_ptl);
				if (anon_vma_prepare(dst_vma))
					return -ENOMEM;
				new = alloc_hugetlb_folio(dst_vma, addr, true);
				if (!new)
					return -ENOMEM;
				goto again;
			}
			memcpy(folio_address(new), folio_address(folio), HPAGE_SIZE);
			dst_ptl = pmd_lock(dst, dst_pmd);
			hugetlb_add_new_anon_rmap(new, dst_vma, addr);
			set_pmd(dst_pmd, make_huge_pmd(dst_vma, new, pmd_write(val)));
			spin_unlock(dst_ptl);
			spin_unlock(src_ptl);
			continue;
		}
		dst_ptl = pmd_lock(dst, dst_pmd);
		folio_get(folio);
		hugetlb_add_rmap(folio);
		if (cow) {
			if (folio_test_anon(folio))
				hugetlb_set_anon_exclusive(folio, false);
			val = pmd_wrprotect(val);
			set_pmd(src_pmd, val);
		}
		set_pmd(dst_pmd, pmd_mkold(val));
		spin_unlock(dst_ptl);
		spin_unlock(src_ptl);
		if (new)
			folio_put(new);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* mremap and mprotect                                                 */
/* ------------------------------------------------------------------ */

unsigned long move_hugetlb_page_tables(struct vm_area_struct *old_vma,
				       struct vm_area_struct *new_vma, unsigned long old_addr,
				       unsigned long new_addr, unsigned long len)
{
	struct mm_struct *mm = old_vma->vm_mm;
	unsigned long done;

	(void)new_vma;
	for (done = 0; done < len; done += HPAGE_SIZE) {
		pmd_t *old_pmd = pmd_off(mm, old_addr + done), *new_pmd;
		pthread_mutex_t *old_ptl, *new_ptl;

		if (!old_pmd || pmd_none(pmdp_get(old_pmd)))
			continue;
		new_pmd = pmd_off_alloc(mm, new_addr + done);
		if (!new_pmd)
			break;
		old_ptl = pmd_lockptr(mm, old_pmd);
		new_ptl = pmd_lockptr(mm, new_pmd);
		/* Two PMD tables' locks: in address order, as mremap.c takes them. */
		if (old_ptl == new_ptl) {
			pthread_mutex_lock(old_ptl);
		} else {
			pthread_mutex_lock(old_ptl < new_ptl ? old_ptl : new_ptl);
			pthread_mutex_lock(old_ptl < new_ptl ? new_ptl : old_ptl);
		}
		if (pmd_none(pmdp_get(new_pmd)))
			set_pmd(new_pmd, pmdp_get_and_clear(old_pmd));
		else
			uhmm_warn("move_hugetlb_page_tables: destination %#lx is mapped",
				  new_addr + done);
		pthread_mutex_unlock(old_ptl);
		if (old_ptl != new_ptl)
			pthread_mutex_unlock(new_ptl);
	}
	return done < len ? done : len;
}

void hugetlb_change_protection(struct vm_area_struct *vma, unsigned long start, unsigned long end)
{
	struct mm_struct *mm = vma->vm_mm;
	uint64_t prot = vm_get_page_prot(vma->vm_flags);

	for (unsigned long addr = ALIGN_DOWN(start, HPAGE_SIZE); addr < end; addr += HPAGE_SIZE) {
		pmd_t *pmd = pmd_off(mm, addr);
		pthread_mutex_t *ptl;

		if (!pmd)
			continue;
		ptl = pmd_lock(mm, pmd);
		if (pmd_leaf(pmdp_get(pmd))) {
			pmd_t val = pmd_modify(pmdp_get(pmd), prot);

			/*
			 * A private page stays read-only until a write fault
			 * (hugetlb_change_protection() makes no page writable
			 * that the protection change did not).
			 */
			if (!(vma->vm_flags & VM_SHARED))
				val = pmd_wrprotect(val);
			set_pmd(pmd, val);
		}
		spin_unlock(ptl);
	}
}
