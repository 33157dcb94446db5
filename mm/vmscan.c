// SPDX-License-Identifier: MIT
/*
 * mm/vmscan.c - reclaim.  For now: lazily freed (MADV_FREE) anonymous
 * folios, which reclaim discards while they stay clean.  Swap-backed
 * reclaim arrives with swap.
 */
#include <stdlib.h>

#include "internal.h"

/**
 * folio_mark_lazyfree() - MADV_FREE: an anonymous folio becomes discardable.
 * @folio: an anonymous folio mapped only by the caller's mm.
 *
 * Clears PG_swapbacked (lazyfree = anonymous and not swap-backed), as Linux
 * does when it moves the folio to the lazyfree LRU.
 */
void folio_mark_lazyfree(struct folio *folio)
{
	if (folio_test_anon(folio) && folio_test_swapbacked(folio) && !folio_test_swapcache(folio))
		folio_clear_swapbacked(folio);
}

/* Is the folio behind this entry lazyfree and still clean? Else make it swap-backed again. */
static bool lazyfree_discardable(struct folio *folio, bool entry_dirty)
{
	if (!folio_test_lazyfree(folio))
		return false;
	if (entry_dirty || folio_test_dirty(folio)) {
		/* Written after MADV_FREE: it holds data again (try_to_unmap_one). */
		folio_set_swapbacked(folio);
		return false;
	}
	return true;
}

/* Discard the clean lazyfree pages of one mm; mmap_lock held for reading. */
static unsigned long drop_lazyfree_mm(struct mm_struct *mm)
{
	unsigned long dropped = 0;

	for (size_t v = 0; v < mm->mm_mt.nr; v++) {
		struct vm_area_struct *vma = mm->mm_mt.vmas[v];

		if (!vma_is_anonymous(vma))
			continue;
		for (unsigned long addr = vma->vm_start; addr < vma->vm_end;) {
			unsigned long next = ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE;
			pmd_t *pmd = pmd_off(mm, addr);
			pthread_mutex_t *ptl;
			pmd_t val;
			pte_t *pte;

			if (next > vma->vm_end)
				next = vma->vm_end;
			if (!pmd) {
				next = ALIGN_DOWN(addr, PUD_SIZE) + PUD_SIZE;
				addr = next > vma->vm_end ? vma->vm_end : next;
				continue;
			}
			val = pmdp_get(pmd);
			if (pmd_leaf(val)) {
				struct folio *zero = mm->machine->huge_zero_folio;
				struct folio *folio = page_folio(pfn_to_page(pmd_pfn(val)));

				if ((!zero || folio != zero) && next - addr == PMD_SIZE &&
				    lazyfree_discardable(folio, pmd_dirty(val))) {
					zap_huge_pmd(vma, pmd, addr);
					dropped += HPAGE_PMD_NR;
				}
				addr = next;
				continue;
			}
			pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
			if (!pte) {
				addr = next;
				continue;
			}
			for (; addr < next; addr += PAGE_SIZE, pte++) {
				pte_t entry = ptep_get(pte);
				struct page *page;
				struct folio *folio;

				if (!pte_present(entry) || pte_pfn(entry) == mm->machine->zero_pfn)
					continue;
				page = pfn_to_page(pte_pfn(entry));
				folio = page_folio(page);
				if (!lazyfree_discardable(folio, pte_dirty(entry)))
					continue;
				ptep_get_and_clear(pte);
				add_mm_counter(mm, MM_ANONPAGES, -1);
				folio_remove_rmap_ptes(folio, page, 1);
				folio_put(folio);
				dropped++;
			}
			spin_unlock(ptl);
		}
	}
	return dropped;
}

unsigned long uhmm_drop_lazyfree(struct uhmm_machine *machine)
{
	struct mm_struct **mms;
	struct mm_struct *mm;
	unsigned long dropped = 0;
	int nr = 0;

	/* Pin every live mm under mms_lock, then work on each without it. */
	pthread_mutex_lock(&machine->mms_lock);
	mms = calloc((size_t)machine->nr_mms + 1, sizeof(*mms));
	if (mms)
		list_for_each_entry(mm, &machine->mms, mmlist)
			if (mmget_not_zero(mm))
				mms[nr++] = mm;
	pthread_mutex_unlock(&machine->mms_lock);
	if (!mms)
		return 0;
	for (int i = 0; i < nr; i++) {
		pthread_rwlock_rdlock(&mms[i]->mmap_lock);
		dropped += drop_lazyfree_mm(mms[i]);
		pthread_rwlock_unlock(&mms[i]->mmap_lock);
		mmput(mms[i]);
	}
	free(mms);
	return dropped;
}
