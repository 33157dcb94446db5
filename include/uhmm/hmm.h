/* SPDX-License-Identifier: MIT */
/*
 * uhmm/hmm.h - hmm_range_fault(): snapshot (and fault in) the CPU page
 * table of a range for a device, after include/linux/hmm.h.
 */
#ifndef UHMM_HMM_H
#define UHMM_HMM_H

#include "uhmm/machine.h"
#include "uhmm/mmu_notifier.h"

/*
 * HMM_PFN_* - the bits of one hmm_pfns[] entry (64-bit, Linux's positions).
 * Output: VALID (the pfn is valid and the CPU can read it), WRITE (and write
 * it), ERROR (it can never be made valid: no VMA, PROT_NONE, VM_IO/PFNMAP,
 * a special page), and the map order in bits 53..57.  Input: REQ_FAULT and
 * REQ_WRITE (aliases of VALID and WRITE) ask for a fault.  DMA_MAPPED,
 * P2PDMA and P2PDMA_BUS are sticky: kept from input to output.
 */
#define HMM_PFN_VALID (1UL << 63)
#define HMM_PFN_WRITE (1UL << 62)
#define HMM_PFN_ERROR (1UL << 61)
#define HMM_PFN_DMA_MAPPED (1UL << 60)
#define HMM_PFN_P2PDMA (1UL << 59)
#define HMM_PFN_P2PDMA_BUS (1UL << 58)
#define HMM_PFN_ORDER_SHIFT 53
#define HMM_PFN_INOUT_FLAGS (HMM_PFN_DMA_MAPPED | HMM_PFN_P2PDMA | HMM_PFN_P2PDMA_BUS)
#define HMM_PFN_FLAGS (~((1UL << HMM_PFN_ORDER_SHIFT) - 1))
#define HMM_PFN_REQ_FAULT HMM_PFN_VALID
#define HMM_PFN_REQ_WRITE HMM_PFN_WRITE

/** HMM_RANGE_DEFAULT_TIMEOUT - the retry budget drivers use, in ms. */
#define HMM_RANGE_DEFAULT_TIMEOUT 1000

/**
 * struct hmm_range - a request to hmm_range_fault().
 * @notifier: the interval notifier covering the range.
 * @notifier_seq: mmu_interval_read_begin()'s result.
 * @start: first address (page aligned, included).
 * @end: last address (page aligned, excluded).
 * @hmm_pfns: one entry per page: input request flags, output pfn | flags.
 * @default_flags: request flags applied to every page.
 * @pfn_flags_mask: which bits of each hmm_pfns[] input are honoured.
 * @dev_private_owner: device-private pages of a pgmap with this owner are
 *                     reported as they are instead of being faulted.
 */
struct hmm_range {
	struct mmu_interval_notifier *notifier;
	unsigned long notifier_seq;
	unsigned long start;
	unsigned long end;
	unsigned long *hmm_pfns;
	unsigned long default_flags;
	unsigned long pfn_flags_mask;
	void *dev_private_owner;
};

/**
 * hmm_range_fault() - fill @range->hmm_pfns, faulting where requested.
 * @range: the request; range->notifier_seq from mmu_interval_read_begin().
 *
 * The caller holds mmap_lock for reading.
 *
 * Return: 0; -EINVAL (misaligned or empty range; uhmm only: a NULL @range,
 * notifier or hmm_pfns, or a notifier that is not inserted), -EBUSY (the range was
 * invalidated: restart with a new notifier_seq), -EFAULT (a requested page
 * cannot be made valid: no VMA, no VM_READ, VM_IO/PFNMAP, or the fault
 * failed, out of memory included, as Linux's), -EPERM (write requested in
 * a read-only VMA).  On an error the entries below the failing page hold
 * output, the others their input.
 */
int hmm_range_fault(struct hmm_range *range);

/** hmm_pfn_to_page() - the page of a VALID hmm_pfns[] entry. */
static inline struct page *hmm_pfn_to_page(unsigned long hmm_pfn)
{
	return pfn_to_page(hmm_pfn & ~HMM_PFN_FLAGS);
}
/** hmm_pfn_to_phys() - its physical address. */
static inline uint64_t hmm_pfn_to_phys(unsigned long hmm_pfn)
{
	return (uint64_t)(hmm_pfn & ~HMM_PFN_FLAGS) << PAGE_SHIFT;
}
/**
 * hmm_pfn_to_map_order() - order of the CPU mapping the entry is part of
 * (0 for a PTE, 9 for a PMD); the mapping may extend past the range.
 */
static inline unsigned int hmm_pfn_to_map_order(unsigned long hmm_pfn)
{
	return (hmm_pfn >> HMM_PFN_ORDER_SHIFT) & 0x1F;
}

#endif /* UHMM_HMM_H */
