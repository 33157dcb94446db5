// SPDX-License-Identifier: MIT
/*
 * mm/memremap.c - device memory: request_free_mem_region(),
 * memremap_pages()/memunmap_pages() for MEMORY_DEVICE_PRIVATE and
 * MEMORY_DEVICE_COHERENT, and the life cycle of ZONE_DEVICE folios, after
 * kernel/resource.c and mm/memremap.c.
 *
 * request_free_mem_region() reserves a run of whole PFN-space sections
 * with no bytes, machine or owner.  memremap_pages() then attaches real
 * backing bytes (an anonymous MAP_NORESERVE arena: untouched device memory
 * costs nothing), the machine and the dev_pagemap as owner to that range,
 * so page_pgmap() is one section-table lookup (O(1)), page_address() gives
 * the bytes and page_machine() the machine.  Every struct page is set up as
 * a free device page: refcount 0, mapcount -1, page->pgmap set.
 *
 * A device page's life (Linux 6.15+): free with refcount 0, owned by the
 * driver; zone_device_folio_init() hands it out with refcount 1, locked;
 * mappings (device-private entries, or present PTEs of coherent pages) take
 * references as usual; the last folio_put() calls free_zone_device_folio(),
 * which clears the mapping and anon state and calls ops->folio_free(); the
 * refcount stays 0.  A freed large folio keeps its compound layout until
 * the driver re-initialises its pages (the driver's folio_free() needs the
 * order).
 *
 * Differences from Linux, on purpose: the pgmap's range must be exactly a
 * range request_free_mem_region() returned (Linux accepts any range that
 * is not in use); there is no percpu pgmap->ref: memunmap_pages() instead
 * checks that no page is in use and refuses, with a warning, if one is.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "pfn_space.h"
#include "uhmm/memremap.h"

/**
 * request_free_mem_region() - reserve @size bytes of physical address space.
 * @size: bytes, a non-zero multiple of PAGE_SIZE.
 * @name: kept in the resource, for messages.
 *
 * Takes the PFN-space mutex.  The range is whole 128 MiB sections, so a
 * later memremap_pages() of it never shares a section with other memory.
 *
 * Return: the resource (free it with release_mem_region()), or
 * ERR_PTR(-EINVAL) for a zero or unaligned size, ERR_PTR(-ERANGE) when no
 * free range is long enough, ERR_PTR(-ENOMEM).
 */
struct resource *request_free_mem_region(unsigned long size, const char *name)
{
	struct resource *res;
	unsigned long start_pfn;
	int ret;

	if (!size || !IS_ALIGNED(size, PAGE_SIZE))
		return ERR_PTR(-EINVAL);
	if ((size >> PAGE_SHIFT) > PFN_SPACE_MAX_PFN)
		return ERR_PTR(-ERANGE);
	res = calloc(1, sizeof(*res));
	if (!res)
		return ERR_PTR(-ENOMEM);
	ret = pfn_space_register(size >> PAGE_SHIFT, NULL, NULL, NULL, &start_pfn);
	if (ret) {
		free(res);
		return ERR_PTR(ret == -ENOMEM ? -ENOMEM : -ERANGE);
	}
	res->start = (uint64_t)start_pfn << PAGE_SHIFT;
	res->end = res->start + size - 1;
	res->name = name;
	return res;
}

/**
 * release_mem_region() - give back a range request_free_mem_region() returned.
 * @res: the resource; NULL and ERR_PTR values are ignored.
 *
 * Takes the PFN-space mutex.  A range that is still memremapped is a
 * driver bug: it is reported and kept (the resource too).
 */
void release_mem_region(struct resource *res)
{
	unsigned long pfn;

	if (IS_ERR_OR_NULL(res))
		return;
	pfn = (unsigned long)(res->start >> PAGE_SHIFT);
	if (pfn_space_owner(pfn)) {
		uhmm_warn("release_mem_region(%s): pfn %#lx is still memremapped; keeping it",
			  res->name ? res->name : "?", pfn);
		return;
	}
	pfn_space_unregister(pfn);
	free(res);
}

/* Set up the struct page of a free device page of @pgmap. */
static void device_page_init_free(struct page *page, struct dev_pagemap *pgmap)
{
	__atomic_store_n(&page->flags, 0UL, __ATOMIC_RELAXED);
	__atomic_store_n(&page->pgmap, pgmap, __ATOMIC_RELAXED);
	page->zone_device_data = NULL;
	page->mapping = NULL;
	page->index = 0;
	page->private = 0;
	atomic_store_explicit(&page->_mapcount, -1, memory_order_relaxed);
	atomic_store_explicit(&page->_refcount, 0, memory_order_relaxed);
}

/**
 * memremap_pages() - give @pgmap's range struct pages and backing bytes.
 * @pgmap: type, ops, owner, range and nr_range filled in.
 * @machine: the machine the device is attached to.
 *
 * Takes the PFN-space mutex and machine->pgmap_lock.  Afterwards every page
 * of the range is a free device page (refcount 0) of @pgmap, page_pgmap()
 * returns @pgmap, page_address() the page's bytes and page_machine()
 * @machine.  The machine cannot be destroyed until memunmap_pages().
 *
 * Return: the backing bytes (also in pgmap->bytes), or ERR_PTR(-EINVAL) for
 * a bad type, missing ops (folio_free; migrate_to_ram for device-private)
 * or owner, nr_range != 1, or a range that is not exactly one reserved and
 * not yet memremapped range; ERR_PTR(-ENOMEM).
 */
void *memremap_pages(struct dev_pagemap *pgmap, struct uhmm_machine *machine)
{
	struct memremap_info *info;
	struct pfn_range r;
	unsigned long pfn, nr, i;
	void *bytes;

	if (!pgmap || IS_ERR_OR_NULL(machine))
		return ERR_PTR(-EINVAL);
	if (pgmap->type != MEMORY_DEVICE_PRIVATE && pgmap->type != MEMORY_DEVICE_COHERENT)
		return ERR_PTR(-EINVAL);
	if (!pgmap->ops || !pgmap->ops->folio_free || !pgmap->owner || pgmap->nr_range != 1)
		return ERR_PTR(-EINVAL);
	if (pgmap->type == MEMORY_DEVICE_PRIVATE && !pgmap->ops->migrate_to_ram)
		return ERR_PTR(-EINVAL);
	if (pgmap->range.end <= pgmap->range.start || !IS_ALIGNED(pgmap->range.start, PAGE_SIZE) ||
	    !IS_ALIGNED(pgmap->range.end + 1, PAGE_SIZE))
		return ERR_PTR(-EINVAL);
	pfn = (unsigned long)(pgmap->range.start >> PAGE_SHIFT);
	nr = (unsigned long)(range_len(&pgmap->range) >> PAGE_SHIFT);
	if (!pfn_space_lookup(pfn, &r) || r.start_pfn != pfn || r.nr_pages != nr || r.machine ||
	    r.owner || r.bytes)
		return ERR_PTR(-EINVAL);

	info = calloc(1, sizeof(*info));
	if (!info)
		return ERR_PTR(-ENOMEM);
	bytes = mmap(NULL, nr << PAGE_SHIFT, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (bytes == MAP_FAILED) {
		free(info);
		return ERR_PTR(-ENOMEM);
	}
	for (i = 0; i < nr; i++)
		device_page_init_free(pfn_to_page(pfn + i), pgmap);
	info->pgmap = pgmap;
	info->start_pfn = pfn;
	info->nr_pages = nr;
	pgmap->machine = machine;
	pgmap->bytes = bytes;
	pgmap->priv = info;
	if (pfn_space_attach(pfn, bytes, machine, pgmap)) {
		munmap(bytes, nr << PAGE_SHIFT);
		pgmap->machine = NULL;
		pgmap->bytes = NULL;
		pgmap->priv = NULL;
		free(info);
		return ERR_PTR(-EINVAL);
	}
	pthread_mutex_lock(&machine->pgmap_lock);
	list_add_tail(&info->list, &machine->pgmaps);
	machine->nr_pgmaps++;
	pthread_mutex_unlock(&machine->pgmap_lock);
	return bytes;
}

/**
 * memunmap_pages() - tear down what memremap_pages() built.
 * @pgmap: a memremapped pgmap whose pages are all free (refcount 0,
 *         unmapped).
 *
 * Takes machine->pgmap_lock and the PFN-space mutex.  A page still in use
 * is a driver bug: it is reported and the whole range stays mapped, so
 * nothing is freed under a user (Linux would wait forever on pgmap->ref).
 * The range stays reserved until release_mem_region().
 */
void memunmap_pages(struct dev_pagemap *pgmap)
{
	struct memremap_info *info;
	struct uhmm_machine *machine;
	unsigned long i, busy = 0;

	if (!pgmap || !pgmap->priv) {
		uhmm_warn("memunmap_pages: pgmap %p is not memremapped", (void *)pgmap);
		return;
	}
	info = pgmap->priv;
	machine = pgmap->machine;
	for (i = 0; i < info->nr_pages; i++) {
		struct page *page = pfn_to_page(info->start_pfn + i);

		if (page_ref_count(page) || atomic_load(&page->_mapcount) != -1)
			busy++;
	}
	if (busy) {
		uhmm_warn("memunmap_pages: %lu pages of pfn %#lx.. are still in use; not unmapping",
			  busy, info->start_pfn);
		return;
	}
	pthread_mutex_lock(&machine->pgmap_lock);
	list_del_init(&info->list);
	machine->nr_pgmaps--;
	pthread_mutex_unlock(&machine->pgmap_lock);
	pfn_space_attach(info->start_pfn, NULL, NULL, NULL);
	munmap(pgmap->bytes, info->nr_pages << PAGE_SHIFT);
	pgmap->bytes = NULL;
	pgmap->machine = NULL;
	pgmap->priv = NULL;
	free(info);
}

/**
 * page_pgmap() - the dev_pagemap of a device page.
 * @page: any struct page of the PFN space.
 *
 * Lock-free, O(1) (the owner of the page's PFN-space range).
 *
 * Return: the pgmap, or NULL for system RAM.
 */
struct dev_pagemap *page_pgmap(const struct page *page)
{
	return pfn_space_owner(page_to_pfn(page));
}

/**
 * zone_device_folio_init() - hand a free device folio to its driver.
 * @folio: a free page of @pgmap (refcount 0), aligned to @order.
 * @pgmap: its dev_pagemap.
 * @order: 0 or HPAGE_PMD_ORDER.
 *
 * The driver owns the free page, so no lock is needed.  Forgets any
 * compound layout left by an earlier, larger folio at this page (tails
 * that still point to it become free order-0 pages), then sets refcount 1,
 * clears mapping and index, makes the folio large for @order > 0, and locks
 * it, so it is ready to be a migration destination.  zone_device_data is
 * left alone (drivers keep free-list links there).  Bad arguments are
 * reported and change nothing.
 */
void zone_device_folio_init(struct folio *folio, struct dev_pagemap *pgmap, unsigned int order)
{
	struct page *page = (struct page *)(void *)folio;
	struct memremap_info *info = pgmap ? pgmap->priv : NULL;
	unsigned long pfn = page_to_pfn(page), nr = 1UL << order, old_nr = 1, i;

	if (!info || page_pgmap(page) != pgmap || (order && order != HPAGE_PMD_ORDER) ||
	    !IS_ALIGNED(pfn, nr) || pfn + nr > info->start_pfn + info->nr_pages) {
		uhmm_warn("zone_device_folio_init: bad pfn %#lx, pgmap %p or order %u", pfn,
			  (void *)pgmap, order);
		return;
	}
	for (i = 0; i < nr; i++)
		if (page_ref_count(page + i) || atomic_load(&page[i]._mapcount) != -1) {
			uhmm_warn("zone_device_folio_init: pfn %#lx is in use (refcount %d)",
				  pfn + i, page_ref_count(page + i));
			return;
		}
	if (!PageTail(page) && test_page_flag(page, PG_head))
		old_nr = folio_nr_pages(folio);
	for (i = nr; i < old_nr && pfn + i < info->start_pfn + info->nr_pages; i++)
		if (__atomic_load_n(&page[i].compound_head, __ATOMIC_ACQUIRE) ==
		    ((unsigned long)page | 1))
			device_page_init_free(page + i, pgmap);
	for (i = 0; i < nr; i++) {
		void *data = page[i].zone_device_data;

		device_page_init_free(page + i, pgmap);
		page[i].zone_device_data = data;
	}
	if (order)
		prep_compound_folio(page, order);
	folio_set_locked(folio);
	atomic_store_explicit(&folio->_refcount, 1, memory_order_release);
}

/**
 * zone_device_page_init() - zone_device_folio_init() of order 0.
 * @page: a free device page.
 */
void zone_device_page_init(struct page *page)
{
	zone_device_folio_init((struct folio *)(void *)page, page_pgmap(page), 0);
}

/**
 * folio_zone_device_data() - the driver's pointer stored in a device folio.
 * @folio: a device folio.  Return: the pointer (NULL when unset).
 */
void *folio_zone_device_data(const struct folio *folio)
{
	const struct page *head = folio_head(folio);

	if (!is_zone_device_page(head))
		uhmm_warn("folio_zone_device_data: pfn %#lx is not device memory",
			  page_to_pfn(head));
	return head->zone_device_data;
}

/**
 * folio_set_zone_device_data() - store a driver pointer in a device folio.
 * @folio: a device folio the driver owns.
 * @data: the pointer.
 */
void folio_set_zone_device_data(struct folio *folio, void *data)
{
	struct page *head = folio_head(folio);

	if (!is_zone_device_page(head)) {
		uhmm_warn("folio_set_zone_device_data: pfn %#lx is not device memory",
			  page_to_pfn(head));
		return;
	}
	head->zone_device_data = data;
}

/**
 * free_zone_device_folio() - the refcount of a device folio reached 0.
 * @folio: a device folio with refcount 0, unmapped, unlocked.
 *
 * Called from folio_put() without locks.  Clears the anon-exclusive bits,
 * the mapping, the index and the page flags (the compound layout stays, so
 * the driver sees the order), then hands the folio to ops->folio_free().
 * The refcount stays 0: the page is the driver's again.  A folio that is
 * still mapped, locked or pinned is reported and leaked, as bad_page() does.
 */
void free_zone_device_folio(struct folio *folio)
{
	struct page *head = folio_head(folio);
	struct dev_pagemap *pgmap = page_pgmap(head);
	unsigned long nr = folio_nr_pages(folio), i;
	const char *why = NULL;

	if (!pgmap) {
		uhmm_warn("free_zone_device_folio: pfn %#lx is not device memory",
			  page_to_pfn(head));
		return;
	}
	if (folio_ref_count(folio))
		why = "has references";
	else if (folio_test_locked(folio))
		why = "is locked";
	else if (folio_mapped(folio))
		why = "is mapped";
	else if (folio_test_large(folio) && (folio_entire_mapcount(folio) ||
					     atomic_load(&folio->_pincount)))
		why = "is PMD-mapped or pinned";
	else if (folio_order(folio) >= 2 && !list_empty(&folio->_deferred_list))
		why = "is on the deferred-split queue";
	for (i = 1; !why && i < nr; i++)
		if (atomic_load(&folio_page(folio, i)->_mapcount) != -1)
			why = "has a mapped page";
	if (why) {
		uhmm_warn("free_zone_device_folio: pfn %#lx %s; leaking it", page_to_pfn(head), why);
		return;
	}
	for (i = 0; i < nr; i++)
		ClearPageAnonExclusive(folio_page(folio, i));
	__atomic_store_n(&folio->mapping, NULL, __ATOMIC_RELEASE);
	folio->index = 0;
	folio->private = 0;
	__atomic_fetch_and(&head->flags, 1UL << PG_head, __ATOMIC_ACQ_REL);
	pgmap->ops->folio_free(folio);
}
