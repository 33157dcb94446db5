/* SPDX-License-Identifier: MIT */
/*
 * uhmm/memremap.h - device memory: struct dev_pagemap and
 * memremap_pages(), after include/linux/memremap.h.
 *
 * A driver reserves physical address space with request_free_mem_region()
 * and hands it to memremap_pages() with a dev_pagemap.  uhmm then gives the
 * range struct pages in the process-wide PFN space (pfn_to_page() works on
 * them) and real backing bytes (page_address() returns them, so a driver
 * copies with memcpy like a DMA engine would).
 *
 *   MEMORY_DEVICE_PRIVATE: the CPU cannot map the pages.  Anonymous memory
 *     migrated there is mapped through device-private swap entries; a CPU
 *     access faults and the fault path calls ops->migrate_to_ram().
 *   MEMORY_DEVICE_COHERENT: the CPU maps the pages with present PTEs and
 *     reads and writes them in place.
 *
 * Page life cycle, as in Linux 6.15+: a free device page has refcount 0.
 * The driver takes one with zone_device_folio_init() (refcount 1, locked,
 * large when @order > 0).  When the last reference goes the core calls
 * pgmap->ops->folio_free() and the page is the driver's again, refcount 0.
 */
#ifndef UHMM_MEMREMAP_H
#define UHMM_MEMREMAP_H

#include "uhmm/machine.h"
#include "uhmm/mm.h"

/** enum memory_type - what kind of device memory a dev_pagemap describes. */
enum memory_type {
	/* 0 is reserved to catch uninitialized type fields */
	MEMORY_DEVICE_PRIVATE = 1,
	MEMORY_DEVICE_COHERENT,
	MEMORY_DEVICE_FS_DAX,
	MEMORY_DEVICE_GENERIC,
	MEMORY_DEVICE_PCI_P2PDMA,
};

/** struct range - an inclusive range of physical addresses. */
struct range {
	uint64_t start;
	uint64_t end;
};

static inline uint64_t range_len(const struct range *range) { return range->end - range->start + 1; }

/**
 * struct resource - a reserved range of physical address space.
 * @start: first byte (PFN << PAGE_SHIFT).
 * @end: last byte, inclusive.
 * @name: the name the driver gave.
 */
struct resource {
	uint64_t start;
	uint64_t end;
	const char *name;
};

static inline uint64_t resource_size(const struct resource *res) { return res->end - res->start + 1; }

struct dev_pagemap;

/**
 * struct dev_pagemap_ops - what the core asks of the driver.
 * @folio_free: the last reference to @folio went; the driver takes the
 *              page(s) back.  Called without locks the driver could need.
 * @migrate_to_ram: device-private only: a CPU (or GUP, or hmm_range_fault
 *              with a fault request) touched vmf->page through a
 *              device-private entry.  vmf->page is locked and referenced by
 *              the caller; migrate it (and, for vmf->pte == NULL, its whole
 *              folio) back to system RAM.  Return 0 or VM_FAULT_*.
 * @folio_split: device-private only, optional: @head is being split; called
 *              once per new folio @tail, and once with @tail NULL at the end.
 * @memory_failure: optional; uhmm never calls it (no poison yet).
 */
struct dev_pagemap_ops {
	void (*folio_free)(struct folio *folio);
	vm_fault_t (*migrate_to_ram)(struct vm_fault *vmf);
	void (*folio_split)(struct folio *head, struct folio *tail);
	int (*memory_failure)(struct dev_pagemap *pgmap, unsigned long pfn, unsigned long nr_pages,
			      int mf_flags);
};

/**
 * struct dev_pagemap - a range of device memory.
 * @type: MEMORY_DEVICE_PRIVATE or MEMORY_DEVICE_COHERENT (the others are
 *        refused with -EINVAL).
 * @ops: the driver's callbacks; folio_free is required, and
 *       migrate_to_ram for MEMORY_DEVICE_PRIVATE.
 * @owner: opaque; matched against migrate_vma.pgmap_owner and
 *         hmm_range.dev_private_owner.  Required for both types.
 * @range: the physical range (from request_free_mem_region()).
 * @nr_range: must be 1.
 * @flags: unused, 0.
 * @machine: set by memremap_pages(): the machine the memory belongs to.
 * @bytes: set by memremap_pages(): the backing bytes of @range.
 * @priv: internal to uhmm.
 */
struct dev_pagemap {
	enum memory_type type;
	const struct dev_pagemap_ops *ops;
	void *owner;
	struct range range;
	int nr_range;
	unsigned int flags;
	struct uhmm_machine *machine;
	void *bytes;
	void *priv;
};

/**
 * request_free_mem_region() - reserve @size bytes of unused physical
 * address space (whole 128 MiB PFN-space sections).
 * @size: bytes wanted, a multiple of PAGE_SIZE.
 * @name: kept for messages.
 *
 * Return: the resource, or ERR_PTR(-EINVAL) for a zero or unaligned size,
 * ERR_PTR(-ERANGE) when no free range is long enough, ERR_PTR(-ENOMEM).
 */
struct resource *request_free_mem_region(unsigned long size, const char *name);

/**
 * release_mem_region() - give back a range request_free_mem_region()
 * returned; the range must no longer be memremapped.
 */
void release_mem_region(struct resource *res);

/**
 * memremap_pages() - give @pgmap's range struct pages and backing bytes.
 * @pgmap: type, ops, owner, range and nr_range filled in.
 * @machine: the machine the device is attached to.
 *
 * Return: the backing bytes of the range (pgmap->bytes), or ERR_PTR:
 * -EINVAL for a bad type, missing ops/owner, nr_range != 1 or a range
 * that was not reserved; -ENOMEM.
 */
void *memremap_pages(struct dev_pagemap *pgmap, struct uhmm_machine *machine);

/**
 * memunmap_pages() - tear down what memremap_pages() built.
 * @pgmap: a mapped pgmap whose pages are all free (refcount 0).
 *
 * A page still referenced is a driver bug: uhmm warns and reports it,
 * and leaves the range mapped (so nothing is freed under a user).
 */
void memunmap_pages(struct dev_pagemap *pgmap);

/**
 * page_pgmap() - the dev_pagemap of a device page, NULL for system RAM.
 */
struct dev_pagemap *page_pgmap(const struct page *page);

/** is_zone_device_page() - @page is device memory of any type. */
static inline bool is_zone_device_page(const struct page *page) { return page_pgmap(page) != NULL; }
/** folio_is_zone_device() - @folio is device memory of any type. */
static inline bool folio_is_zone_device(const struct folio *folio)
{
	return is_zone_device_page(folio_head(folio));
}
/** is_device_private_page() - @page is MEMORY_DEVICE_PRIVATE memory. */
static inline bool is_device_private_page(const struct page *page)
{
	struct dev_pagemap *pgmap = page_pgmap(page);

	return pgmap && pgmap->type == MEMORY_DEVICE_PRIVATE;
}
static inline bool folio_is_device_private(const struct folio *folio)
{
	return is_device_private_page(folio_head(folio));
}
/** is_device_coherent_page() - @page is MEMORY_DEVICE_COHERENT memory. */
static inline bool is_device_coherent_page(const struct page *page)
{
	struct dev_pagemap *pgmap = page_pgmap(page);

	return pgmap && pgmap->type == MEMORY_DEVICE_COHERENT;
}
static inline bool folio_is_device_coherent(const struct folio *folio)
{
	return is_device_coherent_page(folio_head(folio));
}

/**
 * zone_device_folio_init() - hand a free device folio to its driver.
 * @folio: a free page of @pgmap (refcount 0), aligned to @order.
 * @pgmap: its dev_pagemap.
 * @order: 0, or HPAGE_PMD_ORDER for a large folio.
 *
 * Sets refcount 1, clears mapping and index, makes the folio large when
 * @order > 0, and locks it (as zone_device_page_init() does), so the
 * folio is ready to be a migration destination.
 */
void zone_device_folio_init(struct folio *folio, struct dev_pagemap *pgmap, unsigned int order);
/** zone_device_page_init() - zone_device_folio_init() of order 0. */
void zone_device_page_init(struct page *page);

/** folio_zone_device_data() - the driver's pointer stored in a device folio. */
void *folio_zone_device_data(const struct folio *folio);
/** folio_set_zone_device_data() - store a driver pointer in a device folio. */
void folio_set_zone_device_data(struct folio *folio, void *data);

#endif /* UHMM_MEMREMAP_H */
