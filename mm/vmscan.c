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

/*
 * Is the folio behind this entry lazyfree, still clean and referenced by
 * nothing but its mappings (no GUP reference or pin)?  A written one
 * becomes swap-backed again.
 */
static bool lazyfree_discardable(struct folio *folio, bool entry_dirty)
{
	if (!folio_test_lazyfree(folio) || folio_test_hugetlb(folio))
		return false; /* hugetlb folios are never swap-backed, nor lazyfree */
	if (folio_ref_count(folio) != folio_mapcount(folio))
		return false; /* someone holds it: try_to_unmap_one() backs off */
	if (entry_dirty || folio_test_dirty(folio)) {
		/* Written after MADV_FREE: it holds data again (try_to_unmap_one). */
		folio_set_swapbacked(folio);
		return false;
	}
	return true;
}

/*
 * @scan: the first pass only finds [lo, hi), the span of discardable
 * entries; the second, inside an MMU_NOTIFY_CLEAR invalidation of that
 * span, drops them (try_to_unmap_one() notifies before it clears; the
 * entries here are found under the ptl, where no notifier may run).
 */
struct drop_lazyfree {
	struct vm_area_struct *vma;
	unsigned long dropped;
	bool scan;
	unsigned long lo, hi;
};

static void drop_lazyfree_found(struct drop_lazyfree *d, unsigned long addr, unsigned long end)
{
	if (d->lo >= d->hi || addr < d->lo)
		d->lo = addr;
	if (end > d->hi)
		d->hi = end;
}

/* try_to_unmap_one() for a lazyfree page mapped by one PTE (ptl held). */
static int drop_lazyfree_pte_entry(pte_t *pte, unsigned long addr, unsigned long next,
				   struct mm_walk *walk)
{
	struct drop_lazyfree *d = walk->private;
	pte_t entry = ptep_get(pte);
	struct page *page = vm_normal_page(walk->mm, entry);
	struct folio *folio;

	(void)next;
	if (!page)
		return 0;
	folio = page_folio(page);
	if (!lazyfree_discardable(folio, pte_dirty(entry)))
		return 0;
	if (d->scan) {
		drop_lazyfree_found(d, addr, addr + PAGE_SIZE);
		return 0;
	}
	ptep_get_and_clear(pte);
	add_mm_counter(walk->mm, MM_ANONPAGES, -1);
	folio_remove_rmap_ptes(folio, page, 1);
	folio_put(folio);
	d->dropped++;
	return 0;
}

static int drop_lazyfree_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next,
				   struct mm_walk *walk)
{
	struct drop_lazyfree *d = walk->private;
	pmd_t val = pmdp_get(pmd);
	struct folio *folio;

	if (is_swap_pmd(val))
		return WALK_SKIP_PTES;
	if (!pmd_leaf(val))
		return 0;
	folio = page_folio(pfn_to_page(pmd_pfn(val)));
	if (!is_huge_zero_pfn(walk->mm->machine, pmd_pfn(val)) && next - addr == PMD_SIZE &&
	    lazyfree_discardable(folio, pmd_dirty(val))) {
		if (d->scan)
			drop_lazyfree_found(d, addr, next);
		else if (zap_huge_pmd(d->vma, pmd, addr))
			d->dropped += HPAGE_PMD_NR;
	}
	return WALK_SKIP_PTES;
}

/* Discard the clean lazyfree pages of one mm; mmap_lock held for reading. */
static unsigned long drop_lazyfree_mm(struct mm_struct *mm)
{
	static const struct mm_walk_ops ops = {
		.pmd_entry = drop_lazyfree_pmd_entry,
		.pte_entry = drop_lazyfree_pte_entry,
	};
	struct drop_lazyfree d = { 0 };
	struct mmu_notifier_range range;

	for (size_t v = 0; v < mm->mm_mt.nr; v++) {
		d.vma = mm->mm_mt.vmas[v];
		if (!vma_is_anonymous(d.vma))
			continue;
		d.scan = true;
		d.lo = d.hi = 0;
		walk_page_range(mm, d.vma->vm_start, d.vma->vm_end, &ops, &d);
		if (d.lo >= d.hi)
			continue;
		d.scan = false;
		mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, d.lo, d.hi);
		mmu_notifier_invalidate_range_start(&range);
		walk_page_range(mm, d.lo, d.hi, &ops, &d);
		mmu_notifier_invalidate_range_end(&range);
	}
	return d.dropped;
}

unsigned long uhmm_drop_lazyfree(struct uhmm_machine *machine)
{
	struct mm_struct **mms;
	struct mm_struct *mm;
	unsigned long dropped = 0;
	int nr = 0;

	if (IS_ERR_OR_NULL(machine))
		return 0;
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
