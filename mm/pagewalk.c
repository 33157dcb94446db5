// SPDX-License-Identifier: MIT
/*
 * mm/pagewalk.c - walk_page_range(): visit the PMDs and PTEs of a range
 * with callbacks, as Linux's mm/pagewalk.c does for its users (pagemap,
 * smaps, ptdump, reclaim).
 */
#include "internal.h"

/**
 * walk_page_range() - call @ops for every PMD and PTE of [@start, @end).
 * @mm: the mm; mmap_lock held (for reading at least).
 * @start: page-aligned start.
 * @end: page-aligned end.
 * @ops: the callbacks; any may be NULL.
 * @private: passed in walk->private.
 *
 * For each PMD-sized step: @ops->pte_hole when nothing is mapped there (no
 * table, or an empty PMD); else @ops->pmd_entry without any lock held,
 * which may handle a leaf or swap PMD itself and return WALK_SKIP_PTES;
 * else, when the PMD points to a PTE table, @ops->pte_entry for each PTE
 * with the table's ptl held.  A non-zero return (other than
 * WALK_SKIP_PTES from pmd_entry) stops the walk.
 *
 * Return: 0, or the first non-zero callback result.
 */
int walk_page_range(struct mm_struct *mm, unsigned long start, unsigned long end,
		    const struct mm_walk_ops *ops, void *private)
{
	struct mm_walk walk = { .mm = mm, .private = private };
	int err = 0;

	for (unsigned long addr = start; addr < end && !err;) {
		unsigned long next = ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE;
		pmd_t *pmd = pmd_off(mm, addr);
		pthread_mutex_t *ptl;
		pte_t *pte;

		if (next > end || next < addr)
			next = end;
		if (!pmd || pmd_none(pmdp_get(pmd))) {
			if (!pmd) {
				next = ALIGN_DOWN(addr, PUD_SIZE) + PUD_SIZE;
				if (next > end || next < addr)
					next = end;
			}
			if (ops->pte_hole)
				err = ops->pte_hole(addr, next, &walk);
			addr = next;
			continue;
		}
		if (ops->pmd_entry) {
			err = ops->pmd_entry(pmd, addr, next, &walk);
			if (err == WALK_SKIP_PTES) {
				err = 0;
				addr = next;
				continue;
			}
			if (err)
				break;
		}
		if (ops->pte_entry) {
			pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
			if (!pte) {
				if (ops->pmd_entry &&
				    (pmd_leaf(pmdp_get(pmd)) || is_swap_pmd(pmdp_get(pmd))))
					continue; /* became a leaf: let pmd_entry see it */
				addr = next;
				continue;
			}
			for (; addr < next && !err; addr += PAGE_SIZE, pte++)
				err = ops->pte_entry(pte, addr, addr + PAGE_SIZE, &walk);
			spin_unlock(ptl);
		}
		addr = next;
	}
	return err;
}
