/* SPDX-License-Identifier: MIT */
/*
 * mm/hmm.c - hmm_range_fault(): snapshot the CPU page table of a range into
 * hmm_pfns[] for a device, faulting in what the caller asks for, after
 * Linux's mm/hmm.c.
 *
 * The walk reads entries without page-table locks (ptep_get()/pmdp_get()
 * are atomic loads), as Linux's does under RCU: with mmap_lock held for
 * reading no page table is freed, and what an entry says may change the
 * moment after it is read anyway; the interval notifier's sequence tells
 * the caller whether it did.  Faults go through handle_mm_fault() with
 * FAULT_FLAG_REMOTE, the same path as the CPU's, and then the walk starts
 * again from the first address not yet stored (hmm_vma_walk.last).
 */
#include <errno.h>

#include "internal.h"
#include "uhmm/hmm.h"
#include "uhmm/memremap.h"

/* What a page needs: nothing, a read fault, or a write fault. */
#define HMM_NEED_FAULT 1
#define HMM_NEED_WRITE_FAULT 2
#define HMM_NEED_ALL_BITS (HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT)

/* The walk restarts from ->last (Linux returns -EBUSY internally too). */
#define HMM_WALK_AGAIN (-EBUSY)

struct hmm_vma_walk {
	struct hmm_range *range;
	struct mm_struct *mm;
	unsigned long last;
};

static unsigned long *hmm_pfn_at(struct hmm_range *range, unsigned long addr)
{
	return &range->hmm_pfns[(addr - range->start) >> PAGE_SHIFT];
}

/* Store @cpu_flags (pfn and flags, or 0 / ERROR) in [@addr, @end), keeping sticky bits. */
static int hmm_pfns_fill(struct hmm_range *range, unsigned long addr, unsigned long end,
			 unsigned long cpu_flags)
{
	unsigned long *hmm_pfns = hmm_pfn_at(range, addr);

	for (; addr < end; addr += PAGE_SIZE, hmm_pfns++) {
		*hmm_pfns &= HMM_PFN_INOUT_FLAGS;
		*hmm_pfns |= cpu_flags;
	}
	return 0;
}

static unsigned long hmm_pfn_flags_order(unsigned long order)
{
	return order << HMM_PFN_ORDER_SHIFT;
}

/*
 * hmm_pte_need_fault() - what the request @pfn_req_flags of one page needs
 * given what the CPU gives it (@cpu_flags: VALID, WRITE).
 */
static unsigned int hmm_pte_need_fault(const struct hmm_vma_walk *hmm_vma_walk,
				       unsigned long pfn_req_flags, unsigned long cpu_flags)
{
	struct hmm_range *range = hmm_vma_walk->range;

	pfn_req_flags &= range->pfn_flags_mask;
	pfn_req_flags |= range->default_flags;
	if (!(pfn_req_flags & HMM_PFN_REQ_FAULT))
		return 0;
	if ((pfn_req_flags & HMM_PFN_REQ_WRITE) && !(cpu_flags & HMM_PFN_WRITE))
		return HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT;
	if (!(cpu_flags & HMM_PFN_VALID))
		return HMM_NEED_FAULT;
	return 0;
}

/* The union of what the @npages requests from @hmm_pfns need. */
static unsigned int hmm_range_need_fault(const struct hmm_vma_walk *hmm_vma_walk,
					 const unsigned long *hmm_pfns, unsigned long npages,
					 unsigned long cpu_flags)
{
	struct hmm_range *range = hmm_vma_walk->range;
	unsigned int required_fault = 0;

	/* Nothing can ask for a fault: skip the loop. */
	if (!((range->default_flags | range->pfn_flags_mask) & HMM_PFN_REQ_FAULT))
		return 0;
	for (unsigned long i = 0; i < npages; ++i) {
		required_fault |= hmm_pte_need_fault(hmm_vma_walk, hmm_pfns[i], cpu_flags);
		if (required_fault == HMM_NEED_ALL_BITS)
			return required_fault;
	}
	return required_fault;
}

/*
 * hmm_vma_fault() - fault in every page of [@addr, @end) of @vma as the CPU
 * would, then have the walk start again at @addr.
 * Return: HMM_WALK_AGAIN, -EPERM (a write in a VMA without VM_WRITE), or
 * -EFAULT (a fault failed).
 */
static int hmm_vma_fault(struct hmm_vma_walk *hmm_vma_walk, struct vm_area_struct *vma,
			 unsigned long addr, unsigned long end, unsigned int required_fault)
{
	unsigned int fault_flags = FAULT_FLAG_REMOTE;

	hmm_vma_walk->last = addr;
	if (required_fault & HMM_NEED_WRITE_FAULT) {
		if (!(vma->vm_flags & VM_WRITE))
			return -EPERM;
		fault_flags |= FAULT_FLAG_WRITE;
	}
	for (; addr < end; addr += PAGE_SIZE)
		if (handle_mm_fault(vma, addr, fault_flags) & VM_FAULT_ERROR)
			return -EFAULT;
	return HMM_WALK_AGAIN;
}

/* [@addr, @end) has no entry (or, @vma NULL, no VMA). */
static int hmm_vma_walk_hole(struct hmm_vma_walk *hmm_vma_walk, struct vm_area_struct *vma,
			     unsigned long addr, unsigned long end)
{
	struct hmm_range *range = hmm_vma_walk->range;
	unsigned int required_fault;

	required_fault = hmm_range_need_fault(hmm_vma_walk, hmm_pfn_at(range, addr),
					      (end - addr) >> PAGE_SHIFT, 0);
	if (!vma) {
		if (required_fault)
			return -EFAULT;
		return hmm_pfns_fill(range, addr, end, HMM_PFN_ERROR);
	}
	if (required_fault)
		return hmm_vma_fault(hmm_vma_walk, vma, addr, end, required_fault);
	return hmm_pfns_fill(range, addr, end, 0);
}

/* One PTE (read without the ptl) at @addr; @end: the end of this PMD's part of the walk. */
static int hmm_vma_handle_pte(struct hmm_vma_walk *hmm_vma_walk, struct vm_area_struct *vma,
			      unsigned long addr, unsigned long end, pmd_t *pmdp, pte_t *ptep,
			      unsigned long *hmm_pfn)
{
	struct hmm_range *range = hmm_vma_walk->range;
	struct mm_struct *mm = hmm_vma_walk->mm;
	unsigned long pfn_req_flags = *hmm_pfn;
	unsigned long cpu_flags, new_pfn_flags;
	unsigned int required_fault;
	pte_t pte = ptep_get(ptep);

	if (pte_none(pte)) {
		required_fault = hmm_pte_need_fault(hmm_vma_walk, pfn_req_flags, 0);
		if (required_fault)
			goto fault;
		*hmm_pfn &= HMM_PFN_INOUT_FLAGS;
		return 0;
	}

	if (!pte_present(pte)) {
		swp_entry_t entry = pte_to_swp_entry(pte);

		/* The caller's own device-private pages: report them, no fault. */
		if (is_device_private_entry(entry)) {
			struct page *page = pfn_to_page(swp_offset_pfn(entry));
			struct dev_pagemap *pgmap = page_pgmap(page);

			if (pgmap && pgmap->owner == range->dev_private_owner) {
				cpu_flags = HMM_PFN_VALID;
				if (is_writable_device_private_entry(entry))
					cpu_flags |= HMM_PFN_WRITE;
				new_pfn_flags = swp_offset_pfn(entry) | cpu_flags;
				goto out;
			}
		}
		required_fault = hmm_pte_need_fault(hmm_vma_walk, pfn_req_flags, 0);
		if (!required_fault) {
			new_pfn_flags = 0;
			goto out;
		}
		/* Swapped out, someone else's device page, device-exclusive: fault. */
		if (!non_swap_entry(entry) || is_device_private_entry(entry) ||
		    is_device_exclusive_entry(entry))
			goto fault;
		if (is_migration_entry(entry)) {
			/* Sleep until the migration ends, then walk again. */
			hmm_vma_walk->last = addr;
			migration_entry_wait(mm, pmdp, addr);
			return HMM_WALK_AGAIN;
		}
		return -EFAULT; /* anything else (poison, markers) */
	}

	cpu_flags = HMM_PFN_VALID | (pte_write(pte) ? HMM_PFN_WRITE : 0);
	required_fault = hmm_pte_need_fault(hmm_vma_walk, pfn_req_flags, cpu_flags);
	if (required_fault)
		goto fault;
	/*
	 * A special mapping without a normal struct page cannot be handed to
	 * a device; the zero page can, as a read-only page.
	 */
	if (!vm_normal_page(mm, pte) && pte_pfn(pte) != mm->machine->zero_pfn) {
		if (hmm_pte_need_fault(hmm_vma_walk, pfn_req_flags, 0))
			return -EFAULT;
		new_pfn_flags = HMM_PFN_ERROR;
		goto out;
	}
	new_pfn_flags = pte_pfn(pte) | cpu_flags;
out:
	*hmm_pfn = (*hmm_pfn & HMM_PFN_INOUT_FLAGS) | new_pfn_flags;
	return 0;
fault:
	return hmm_vma_fault(hmm_vma_walk, vma, addr, end, required_fault);
}

/* A PMD leaf over [@addr, @end): every page gets the same flags and order 9. */
static int hmm_vma_handle_pmd(struct hmm_vma_walk *hmm_vma_walk, struct vm_area_struct *vma,
			      unsigned long addr, unsigned long end, pmd_t pmd)
{
	struct hmm_range *range = hmm_vma_walk->range;
	unsigned long *hmm_pfns = hmm_pfn_at(range, addr);
	unsigned long npages = (end - addr) >> PAGE_SHIFT;
	unsigned long cpu_flags, pfn;
	unsigned int required_fault;

	cpu_flags = HMM_PFN_VALID | (pmd_write(pmd) ? HMM_PFN_WRITE : 0) |
		    hmm_pfn_flags_order(PMD_SHIFT - PAGE_SHIFT);
	required_fault = hmm_range_need_fault(hmm_vma_walk, hmm_pfns, npages, cpu_flags);
	if (required_fault)
		return hmm_vma_fault(hmm_vma_walk, vma, addr, end, required_fault);
	pfn = pmd_pfn(pmd) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
	for (unsigned long i = 0; addr < end; addr += PAGE_SIZE, i++, pfn++) {
		hmm_pfns[i] &= HMM_PFN_INOUT_FLAGS;
		hmm_pfns[i] |= pfn | cpu_flags;
	}
	return 0;
}

/* A non-present PMD (migration or device-private THP entry) over [@addr, @end). */
static int hmm_vma_handle_absent_pmd(struct hmm_vma_walk *hmm_vma_walk,
				     struct vm_area_struct *vma, unsigned long addr,
				     unsigned long end, pmd_t *pmdp, pmd_t pmd)
{
	struct hmm_range *range = hmm_vma_walk->range;
	unsigned long *hmm_pfns = hmm_pfn_at(range, addr);
	unsigned long npages = (end - addr) >> PAGE_SHIFT;
	swp_entry_t entry = pmd_to_swp_entry(pmd);
	unsigned int required_fault;

	if (is_device_private_entry(entry)) {
		struct dev_pagemap *pgmap = page_pgmap(pfn_to_page(swp_offset_pfn(entry)));

		if (pgmap && pgmap->owner == range->dev_private_owner) {
			unsigned long cpu_flags = HMM_PFN_VALID |
						  hmm_pfn_flags_order(PMD_SHIFT - PAGE_SHIFT);
			unsigned long pfn = swp_offset_pfn(entry) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);

			if (is_writable_device_private_entry(entry))
				cpu_flags |= HMM_PFN_WRITE;
			for (unsigned long i = 0; addr < end; addr += PAGE_SIZE, i++, pfn++) {
				hmm_pfns[i] &= HMM_PFN_INOUT_FLAGS;
				hmm_pfns[i] |= pfn | cpu_flags;
			}
			return 0;
		}
	}
	required_fault = hmm_range_need_fault(hmm_vma_walk, hmm_pfns, npages, 0);
	if (!required_fault)
		return hmm_pfns_fill(range, addr, end, 0);
	if (is_migration_entry(entry)) {
		hmm_vma_walk->last = addr;
		pmd_migration_entry_wait(hmm_vma_walk->mm, pmdp);
		return HMM_WALK_AGAIN;
	}
	if (is_device_private_entry(entry))
		return hmm_vma_fault(hmm_vma_walk, vma, addr, end, required_fault);
	return -EFAULT;
}

/* [@addr, @end) inside one PMD of @vma. */
static int hmm_vma_walk_pmd(struct hmm_vma_walk *hmm_vma_walk, struct vm_area_struct *vma,
			    unsigned long addr, unsigned long end)
{
	struct mm_struct *mm = hmm_vma_walk->mm;
	pmd_t *pmdp = pmd_off(mm, addr);
	unsigned long *hmm_pfns;
	pte_t *table;
	pmd_t pmd;
	int r;

	if (!pmdp)
		return hmm_vma_walk_hole(hmm_vma_walk, vma, addr, end);
	pmd = pmdp_get(pmdp);
	if (pmd_none(pmd))
		return hmm_vma_walk_hole(hmm_vma_walk, vma, addr, end);
	if (is_swap_pmd(pmd))
		return hmm_vma_handle_absent_pmd(hmm_vma_walk, vma, addr, end, pmdp, pmd);
	if (pmd_leaf(pmd))
		return hmm_vma_handle_pmd(hmm_vma_walk, vma, addr, end, pmd);
	/* A PTE table: it stays while we hold mmap_lock (a split only fills one in). */
	table = (pte_t *)pt_entry_table(mm, pmd_val(pmd));
	hmm_pfns = hmm_pfn_at(hmm_vma_walk->range, addr);
	for (; addr < end; addr += PAGE_SIZE, hmm_pfns++) {
		r = hmm_vma_handle_pte(hmm_vma_walk, vma, addr, end, pmdp, table + pte_index(addr),
				       hmm_pfns);
		if (r)
			return r;
	}
	return 0;
}

/*
 * hmm_vma_walk_test() - a VMA that cannot be mirrored (VM_IO, VM_PFNMAP,
 * or no VM_READ: HMM assumes no write without read) reads as ERROR, or
 * fails the call with -EFAULT when a fault is requested in it.
 * Return: 0 to walk the VMA, 1 when it was filled, -EFAULT.
 */
static int hmm_vma_walk_test(struct hmm_vma_walk *hmm_vma_walk, struct vm_area_struct *vma,
			     unsigned long start, unsigned long end)
{
	struct hmm_range *range = hmm_vma_walk->range;

	if (!(vma->vm_flags & (VM_IO | VM_PFNMAP)) && (vma->vm_flags & VM_READ))
		return 0;
	if (hmm_range_need_fault(hmm_vma_walk, hmm_pfn_at(range, start),
				 (end - start) >> PAGE_SHIFT, 0))
		return -EFAULT;
	hmm_pfns_fill(range, start, end, HMM_PFN_ERROR);
	return 1;
}

/* Walk [@start, @end) VMA by VMA, PMD by PMD. */
static int hmm_walk(struct hmm_vma_walk *hmm_vma_walk, unsigned long start, unsigned long end)
{
	struct mm_struct *mm = hmm_vma_walk->mm;
	unsigned long addr = start;
	int r;

	while (addr < end) {
		struct vm_area_struct *vma = find_vma(mm, addr);
		unsigned long vend;

		if (!vma || vma->vm_start > addr) {
			vend = vma && vma->vm_start < end ? vma->vm_start : end;
			r = hmm_vma_walk_hole(hmm_vma_walk, NULL, addr, vend);
			if (r)
				return r;
			addr = vend;
			continue;
		}
		vend = vma->vm_end < end ? vma->vm_end : end;
		r = hmm_vma_walk_test(hmm_vma_walk, vma, addr, vend);
		if (r < 0)
			return r;
		if (r > 0) {
			addr = vend;
			continue;
		}
		/*
		 * A hugetlb VMA maps with PMD leaves here, so its pages carry
		 * order 9, huge_page_order() of a 2 MiB hstate.
		 */
		while (addr < vend) {
			unsigned long next = (addr & PMD_MASK) + PMD_SIZE;

			if (next > vend || next < addr)
				next = vend;
			r = hmm_vma_walk_pmd(hmm_vma_walk, vma, addr, next);
			if (r)
				return r;
			addr = next;
		}
	}
	return 0;
}

/**
 * hmm_range_fault() - fill @range->hmm_pfns from the CPU page table,
 * faulting in the pages the request asks for.
 * @range: notifier, notifier_seq (from mmu_interval_read_begin()), start,
 *         end, hmm_pfns (input: per-page requests), default_flags,
 *         pfn_flags_mask, dev_private_owner.
 *
 * Each page's request is (hmm_pfns[i] & pfn_flags_mask) | default_flags.
 * Output: pfn | VALID [| WRITE] [| order], 0 (nothing there, or a swap,
 * migration or someone else's device-private entry that was not asked
 * for), or ERROR (no VMA, no VM_READ, VM_IO/VM_PFNMAP, a special page).
 * Sticky DMA_MAPPED/P2PDMA bits are kept.  The caller holds mmap_lock for
 * reading (the interval's mm).
 *
 * Return: 0; -EINVAL (unaligned or empty range), -EBUSY (the interval was
 * invalidated: take a new notifier_seq and try again), -EPERM (write
 * requested in a VMA without VM_WRITE), -EFAULT (a requested page cannot
 * be made valid).  On error the entries before the failing page hold
 * output, the rest their input.
 */
int hmm_range_fault(struct hmm_range *range)
{
	struct hmm_vma_walk hmm_vma_walk = {.range = range};
	int ret;

	/* uhmm only: Linux oopses on a missing range, notifier or output array. */
	if (!range || !range->notifier || !range->notifier->mm || !range->hmm_pfns)
		return -EINVAL;
	hmm_vma_walk.mm = range->notifier->mm;
	hmm_vma_walk.last = range->start;
	if (!IS_ALIGNED(range->start, PAGE_SIZE) || !IS_ALIGNED(range->end, PAGE_SIZE) ||
	    range->start >= range->end)
		return -EINVAL;
	do {
		/* The range was invalidated: the caller must start again. */
		if (mmu_interval_check_retry(range->notifier, range->notifier_seq))
			return -EBUSY;
		ret = hmm_walk(&hmm_vma_walk, hmm_vma_walk.last, range->end);
		/*
		 * HMM_WALK_AGAIN after a fault or a migration wait: entries
		 * below ->last hold output, the rest still their input.
		 */
	} while (ret == HMM_WALK_AGAIN);
	return ret;
}
