/* SPDX-License-Identifier: MIT */
/*
 * uhmm/hugetlb.h - hugetlb: a per-machine pool of 2 MiB huge pages behind
 * mmap(MAP_HUGETLB), as Linux's default hstate of 2 MiB
 * (/proc/sys/vm/nr_hugepages, the HugePages_* lines of /proc/meminfo).
 *
 * The pool is filled at machine creation with
 * uhmm_machine_config.nr_hugepages order-9 folios taken from the buddy
 * allocator (see UHMM_DEFAULT_NR_HUGEPAGES for the default) and resized at
 * run time with uhmm_hugetlb_set_nr_hugepages().  Pool pages are not free
 * pages: uhmm_nr_free_pages() does not count them, as MemFree does not.
 *
 * MAP_HUGETLB mappings (MAP_PRIVATE or MAP_SHARED, with MAP_ANONYMOUS) are
 * VM_HUGETLB VMAs whose pages are pool folios mapped whole by huge PMD
 * entries.  They reserve their pages at mmap time unless MAP_NORESERVE;
 * a fault that finds no page raises SIGBUS (-EFAULT from the CPU calls).
 */
#ifndef UHMM_HUGETLB_H
#define UHMM_HUGETLB_H

#include "uhmm/mm.h"

#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_MASK
#define MAP_HUGE_MASK 0x3f
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30 << MAP_HUGE_SHIFT)
#endif

/* The one hstate: 2 MiB pages (HPAGE_SHIFT on x86-64). */
#define HPAGE_SHIFT PMD_SHIFT
#define HPAGE_SIZE (1UL << HPAGE_SHIFT)
#define HPAGE_MASK (~(HPAGE_SIZE - 1))
#define HUGETLB_PAGE_ORDER (HPAGE_SHIFT - PAGE_SHIFT)

/**
 * UHMM_DEFAULT_NR_HUGEPAGES - the pool a machine gets when its config says
 * nr_hugepages 0: 8 huge pages (16 MiB), but never more than 1/16 of RAM
 * (so a 4 MiB or 64 MiB test machine keeps its RAM for 4 KiB pages: 0 and
 * 2 pages).  Set nr_hugepages to UHMM_NO_HUGEPAGES for an empty pool.
 */
#define UHMM_DEFAULT_NR_HUGEPAGES 8UL
#define UHMM_NO_HUGEPAGES (~0UL)

/**
 * struct hugetlb_stats - the HugePages_* lines of /proc/meminfo.
 * @total: HugePages_Total: pages in the pool, surplus included.
 * @free: HugePages_Free: pool pages no one uses.
 * @rsvd: HugePages_Rsvd: free pages promised to mappings (reservations).
 * @surp: HugePages_Surp: pages above the persistent pool size (pages in
 *        use when the pool was shrunk below its use; freed to the buddy
 *        allocator when released).
 * @nr_hugepages: /proc/sys/vm/nr_hugepages: @total - @surp.
 * @hugepagesize: Hugepagesize in bytes (2 MiB).
 * @nr_overcommit_hugepages: /proc/sys/vm/nr_overcommit_hugepages.
 */
struct hugetlb_stats {
	unsigned long total;
	unsigned long free;
	unsigned long rsvd;
	unsigned long surp;
	unsigned long nr_hugepages;
	unsigned long hugepagesize;
	unsigned long nr_overcommit_hugepages;
};

/**
 * uhmm_hugetlb_stats() - read @machine's pool counters into @out.
 * Takes the hugetlb lock.  Return: 0, or -EINVAL for a NULL argument.
 */
int uhmm_hugetlb_stats(struct uhmm_machine *machine, struct hugetlb_stats *out);

/**
 * uhmm_hugetlb_set_nr_hugepages() - write /proc/sys/vm/nr_hugepages.
 * @machine: the machine.
 * @count: the persistent pool size wanted.
 *
 * Growing takes back surplus pages first, then allocates order-9 folios
 * from the buddy allocator until @count is reached or the allocator has
 * no 2 MiB block left.  Shrinking frees unreserved free pages; pages in
 * use (or reserved) cannot go, and pages in use beyond @count become
 * surplus, freed when released (set_max_huge_pages()).  Takes the hugetlb
 * lock and the zone lock.
 *
 * Return: the persistent pool size reached (which may be below or above
 * @count), as a read of nr_hugepages after the write shows; -EINVAL for a
 * NULL @machine (uhmm only).
 */
long uhmm_hugetlb_set_nr_hugepages(struct uhmm_machine *machine, unsigned long count);

/**
 * uhmm_hugetlb_set_nr_overcommit_hugepages() - write
 * /proc/sys/vm/nr_overcommit_hugepages: how many surplus pages (beyond
 * nr_hugepages) mmap reservations and unreserved faults may take from the
 * buddy allocator when the pool has no free page; released surplus pages
 * go back to it.  0 (the default) turns overcommit off.  Takes the
 * hugetlb lock.
 */
void uhmm_hugetlb_set_nr_overcommit_hugepages(struct uhmm_machine *machine, unsigned long count);

/* ---- for other subsystems (hmm_range_fault, GUP, introspection) ---- */

/** is_vm_hugetlb_page() - @vma is a MAP_HUGETLB mapping (VM_HUGETLB). */
static inline bool is_vm_hugetlb_page(const struct vm_area_struct *vma)
{
	return vma->vm_flags & VM_HUGETLB;
}

/** huge_page_order() - the order of @vma's huge pages (9), for a hugetlb VMA. */
static inline unsigned int huge_page_order_vma(const struct vm_area_struct *vma)
{
	(void)vma;
	return HUGETLB_PAGE_ORDER;
}

/** huge_page_size_vma() - the bytes of one of @vma's huge pages (2 MiB). */
static inline unsigned long huge_page_size_vma(const struct vm_area_struct *vma)
{
	(void)vma;
	return HPAGE_SIZE;
}

struct hstate;
/** hstate_vma() - the hstate (pool) of a hugetlb VMA: its machine's 2 MiB one. */
struct hstate *hstate_vma(struct vm_area_struct *vma);
/** huge_page_order() - the order of @h's pages (9). */
unsigned int huge_page_order(const struct hstate *h);
/** huge_page_size() - the bytes of one of @h's pages (2 MiB). */
unsigned long huge_page_size(const struct hstate *h);

/** folio_test_hugetlb() - @folio is a hugetlb pool folio (Linux's page type). */
static inline bool folio_test_hugetlb(const struct folio *folio)
{
	return folio_test_large(folio) && test_page_flag(folio_head(folio), PG_hugetlb);
}

#endif /* UHMM_HUGETLB_H */
