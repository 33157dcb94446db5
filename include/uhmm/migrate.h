/* SPDX-License-Identifier: MIT */
/*
 * uhmm/migrate.h - migrate_vma_*() and migrate_device_*(): move anonymous
 * memory between system RAM and device memory, after
 * include/linux/migrate.h and mm/migrate_device.c.
 *
 * A driver migrates in three calls under mmap_lock (read):
 *   1. migrate_vma_setup() collects the range's pages, locks them, replaces
 *      their mappings with migration entries and fills src[];
 *   2. the driver allocates a locked destination for each src[] entry with
 *      MIGRATE_PFN_MIGRATE, copies (or clears, for an entry with no page),
 *      and fills dst[];
 *   3. migrate_vma_pages() commits; the driver may then update its own
 *      page tables for the entries still marked MIGRATE;
 *      migrate_vma_finalize() replaces the migration entries with the new
 *      (or, for entries that did not migrate, the old) pages and drops the
 *      locks and references.
 */
#ifndef UHMM_MIGRATE_H
#define UHMM_MIGRATE_H

#include "uhmm/machine.h"
#include "uhmm/mm_types.h"

/* MIGRATE_PFN_* - the bits of one src[]/dst[] entry: (pfn << SHIFT) | flags. */
#define MIGRATE_PFN_VALID (1UL << 0)
#define MIGRATE_PFN_MIGRATE (1UL << 1)
#define MIGRATE_PFN_WRITE (1UL << 3)
#define MIGRATE_PFN_COMPOUND (1UL << 4)
#define MIGRATE_PFN_SHIFT 6

/** migrate_pfn_to_page() - the page of an entry, NULL unless VALID. */
static inline struct page *migrate_pfn_to_page(unsigned long mpfn)
{
	if (!(mpfn & MIGRATE_PFN_VALID))
		return NULL;
	return pfn_to_page(mpfn >> MIGRATE_PFN_SHIFT);
}
/** migrate_pfn() - a VALID entry for @pfn. */
static inline unsigned long migrate_pfn(unsigned long pfn)
{
	return (pfn << MIGRATE_PFN_SHIFT) | MIGRATE_PFN_VALID;
}

/**
 * enum migrate_vma_direction - migrate_vma.flags: which pages to collect.
 * @MIGRATE_VMA_SELECT_SYSTEM: system RAM, the zero page and empty entries.
 * @MIGRATE_VMA_SELECT_DEVICE_PRIVATE: device-private pages of pgmap_owner.
 * @MIGRATE_VMA_SELECT_DEVICE_COHERENT: coherent pages of pgmap_owner.
 * @MIGRATE_VMA_SELECT_COMPOUND: collect a PMD-sized folio or hole as one
 *                               compound entry instead of splitting it.
 */
enum migrate_vma_direction {
	MIGRATE_VMA_SELECT_SYSTEM = 1 << 0,
	MIGRATE_VMA_SELECT_DEVICE_PRIVATE = 1 << 1,
	MIGRATE_VMA_SELECT_DEVICE_COHERENT = 1 << 2,
	MIGRATE_VMA_SELECT_COMPOUND = 1 << 3,
};

/**
 * struct migrate_vma - one migration of a range of a VMA.
 * @vma: in: the VMA.
 * @dst: in: caller-allocated, one entry per page; the driver fills it.
 * @src: in: caller-allocated, one entry per page; setup fills it.
 * @cpages: out: entries collected for migration (after setup: those that
 *          will migrate, empty ones included).
 * @npages: out: src[] entries filled.
 * @start: in: first address, page aligned.
 * @end: in: end address, page aligned; rewritten to start + npages pages.
 * @pgmap_owner: in: selects device pages of this owner and is passed as
 *               the MMU_NOTIFY_MIGRATE owner.
 * @flags: in: MIGRATE_VMA_SELECT_*.
 * @fault_page: in: from migrate_to_ram: the device-private page that
 *              faulted, already locked by the fault path (never re-locked
 *              or unlocked by the core).
 */
struct migrate_vma {
	struct vm_area_struct *vma;
	unsigned long *dst;
	unsigned long *src;
	unsigned long cpages;
	unsigned long npages;
	unsigned long start;
	unsigned long end;
	void *pgmap_owner;
	unsigned long flags;
	struct page *fault_page;
};

/**
 * migrate_vma_setup() - collect, lock and unmap the pages of a range.
 * @args: vma, start, end, src, dst, flags, pgmap_owner (and fault_page).
 *
 * Needs mmap_lock for reading.  start and end are rounded down to pages
 * (as Linux does; the page count is taken before rounding).  Return: 0
 * (possibly with cpages 0), or -EINVAL: no vma, a hugetlb or VM_SPECIAL
 * vma, an empty range or one outside the vma, src or dst NULL, a
 * fault_page that is not a locked device-private page.
 */
int migrate_vma_setup(struct migrate_vma *args);
/** migrate_vma_pages() - commit: move mappings and metadata to dst[]. */
void migrate_vma_pages(struct migrate_vma *migrate);
/** migrate_vma_finalize() - install dst (or restore src), unlock, put. */
void migrate_vma_finalize(struct migrate_vma *migrate);

/**
 * migrate_device_range() - collect device pages without a VMA (eviction).
 * @src_pfns: out: one entry per pfn: migrate_pfn(pfn) | MIGRATE for each
 *            in-use page that could be referenced and locked, else 0.
 * @start: first device pfn.
 * @npages: pfns.
 *
 * Unmaps every collected page from every mm through the reverse map
 * (migration entries).  A pfn that no machine or device has gets entry 0
 * (uhmm only: Linux trusts the driver's pfns).  Return: 0.
 */
int migrate_device_range(unsigned long *src_pfns, unsigned long start, unsigned long npages);
/** migrate_device_pfns() - the same for src_pfns[i] holding raw pfns on entry. */
int migrate_device_pfns(unsigned long *src_pfns, unsigned long npages);
/** migrate_device_pages() - migrate_vma_pages() without a VMA. */
void migrate_device_pages(unsigned long *src_pfns, unsigned long *dst_pfns, unsigned long npages);
/** migrate_device_finalize() - migrate_vma_finalize() without a VMA. */
void migrate_device_finalize(unsigned long *src_pfns, unsigned long *dst_pfns,
			     unsigned long npages);

#endif /* UHMM_MIGRATE_H */
