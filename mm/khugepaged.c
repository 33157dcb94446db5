// SPDX-License-Identifier: MIT
/*
 * mm/khugepaged.c - collapsing 4 KiB mappings into a PMD-mapped THP:
 * MADV_COLLAPSE (madvise_collapse()).  There is no background khugepaged
 * thread; collapse happens when a user asks for it.
 */
#include <string.h>

#include "internal.h"
#include "uhmm/memremap.h"

/* Why one PMD range could not be collapsed (a subset of Linux's scan_result). */
enum scan_result {
	SCAN_SUCCEED,
	SCAN_PMD_MAPPED,
	SCAN_PMD_NULL,
	SCAN_PMD_NONE,
	SCAN_PTE_NON_PRESENT,
	SCAN_PAGE_LOCK,
	SCAN_PAGE_COUNT,
	SCAN_PAGE_ANON,
	SCAN_PAGE_NULL,
	SCAN_ALLOC_HUGE_PAGE_FAIL,
};

/* madvise_collapse_errno() - the errno MADV_COLLAPSE returns for a failure. */
static int madvise_collapse_errno(enum scan_result result)
{
	switch (result) {
	case SCAN_ALLOC_HUGE_PAGE_FAIL:
		return -ENOMEM;
	case SCAN_PAGE_LOCK:
	case SCAN_PAGE_COUNT:
		return -EAGAIN;
	default:
		return -EINVAL;
	}
}

/*
 * madvise_collapse_may_continue() - does MADV_COLLAPSE go on to the next
 * PMD range after @result?  Linux keeps a short list of results that only
 * skip the range (no PMD table, a non-present PTE, a page it cannot take,
 * a locked or extra-referenced page); anything else (an empty PMD, a page
 * that is not anonymous, no THP to allocate) ends the call there, leaving
 * later ranges as they were.  Checked against the host (6.18): a range
 * whose PMD is empty stops the collapse before a populated range behind it.
 */
static bool madvise_collapse_may_continue(enum scan_result result)
{
	switch (result) {
	case SCAN_PMD_NULL:
	case SCAN_PTE_NON_PRESENT:
	case SCAN_PAGE_NULL:
	case SCAN_PAGE_COUNT:
	case SCAN_PAGE_LOCK:
		return true;
	default:
		return false;
	}
}

/*
 * scan_pmd() - can the PTE table under @pmd be collapsed?  Every PTE must
 * be none, the zero page or an anonymous page that nothing but its
 * mappings references, and at least one must be writable.
 * mmap_lock held for writing, so the table is stable.
 */
static enum scan_result scan_pmd(struct mm_struct *mm, pmd_t *pmd)
{
	pte_t *ptes;
	bool writable = false;
	pmd_t val = pmdp_get(pmd);

	if (pmd_leaf(val))
		return SCAN_PMD_MAPPED;
	if (pmd_none(val))
		return SCAN_PMD_NONE;
	if (is_swap_pmd(val))
		return SCAN_PMD_NULL; /* Linux: !pmd_present() */
	ptes = (pte_t *)pt_entry_table(mm, pmd_val(val));
	for (int i = 0; i < PTRS_PER_PTE; i++) {
		pte_t pte = ptep_get(&ptes[i]);
		struct folio *folio;

		if (pte_none(pte))
			continue;
		if (!pte_present(pte))
			return SCAN_PTE_NON_PRESENT;
		if (pte_pfn(pte) == mm->machine->zero_pfn)
			continue;
		if (pte_write(pte))
			writable = true;
		folio = page_folio(pfn_to_page(pte_pfn(pte)));
		/* Device-coherent memory is the driver's: never collapsed into RAM. */
		if (page_pgmap(folio_head(folio)))
			return SCAN_PAGE_NULL;
		if (!folio_test_anon(folio))
			return SCAN_PAGE_ANON;
		if (folio_test_locked(folio))
			return SCAN_PAGE_LOCK;
		/* Pins and other references would see a stale page after the copy. */
		if (folio_ref_count(folio) != folio_mapcount(folio))
			return SCAN_PAGE_COUNT;
	}
	/*
	 * MADV_COLLAPSE does not need a writable PTE: Linux 6.18 collapses
	 * read-only pages (after mprotect, or write-protected by fork) and
	 * ranges of zero pages too (found by the differential suite; uhmm
	 * returned -EINVAL for SCAN_PAGE_RO).
	 */
	(void)writable;
	return SCAN_SUCCEED;
}

/*
 * collapse_pmd() - copy the 512 pages under @pmd into a new THP and map it
 * with the PMD; the old PTE table becomes the deposited one.
 * mmap_lock held for writing.
 */
static enum scan_result collapse_pmd(struct vm_area_struct *vma, pmd_t *pmd, unsigned long haddr)
{
	struct mm_struct *mm = vma->vm_mm;
	struct mmu_notifier_range range;
	struct folio *folio;
	pmd_t entry;
	pthread_mutex_t *pmd_ptl, *pte_ptl;
	pte_t *ptes;
	long old_anon = 0;
	char *dst;
	pmd_t val;

	if (anon_vma_prepare(vma))
		return SCAN_ALLOC_HUGE_PAGE_FAIL;
	folio = folio_alloc(mm->machine, GFP_TRANSHUGE, HPAGE_PMD_ORDER);
	if (!folio)
		return SCAN_ALLOC_HUGE_PAGE_FAIL;
	dst = folio_address(folio);

	/* collapse_huge_page(): MMU_NOTIFY_CLEAR over the PMD range. */
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, haddr, haddr + HPAGE_PMD_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	pmd_ptl = pmd_lock(mm, pmd);
	val = pmdp_get(pmd);
	pte_ptl = pte_lockptr(mm, val);
	pthread_mutex_lock(pte_ptl);
	ptes = (pte_t *)pt_entry_table(mm, pmd_val(val));
	for (int i = 0; i < PTRS_PER_PTE; i++) {
		pte_t pte = ptep_get_and_clear(&ptes[i]);
		struct page *page;
		struct folio *old;

		if (pte_none(pte) || pte_pfn(pte) == mm->machine->zero_pfn) {
			memset(dst + (size_t)i * PAGE_SIZE, 0, PAGE_SIZE);
			continue;
		}
		page = pfn_to_page(pte_pfn(pte));
		old = page_folio(page);
		memcpy(dst + (size_t)i * PAGE_SIZE, page_address(page), PAGE_SIZE);
		folio_remove_rmap_ptes(old, page, 1);
		folio_put(old);
		old_anon++;
	}
	pthread_mutex_unlock(pte_ptl);
	/* The emptied PTE table is deposited with the new leaf. */
	pgtable_trans_huge_deposit(mm, pmd, (uint64_t *)ptes);
	folio_add_new_anon_rmap(folio, vma, haddr, true);
	add_mm_counter(mm, MM_ANONPAGES, (long)HPAGE_PMD_NR - old_anon);
	entry = maybe_pmd_mkwrite(pmd_mkyoung(pmd_mkdirty(pfn_pmd(folio_pfn(folio),
						vm_get_page_prot(vma->vm_flags)))), vma);
	set_pmd(pmd, entry);
	spin_unlock(pmd_ptl);
	mmu_notifier_invalidate_range_end(&range);
	return SCAN_SUCCEED;
}

/**
 * madvise_collapse() - MADV_COLLAPSE over [@start, @end) of @vma.
 * @vma: the VMA; mmap_lock held for writing.
 * @start: start of the advised range inside @vma.
 * @end: end of the advised range inside @vma.
 *
 * Collapses each PMD-aligned 2 MiB range wholly inside [@start, @end) in
 * address order; ranges already PMD-mapped count as done.  A failure that
 * madvise_collapse_may_continue() does not list ends the walk there.
 *
 * Return: 0 when every range is PMD-mapped afterwards; otherwise the errno
 * of the last failure: -EINVAL (THP forbidden in the VMA, an empty PMD, a
 * swap or device entry), -EAGAIN (a page is locked or referenced beyond
 * its mappings), -ENOMEM (no THP could be allocated).
 */
int madvise_collapse(struct vm_area_struct *vma, unsigned long start, unsigned long end)
{
	struct mm_struct *mm = vma->vm_mm;
	unsigned long hstart = ALIGN(start, PMD_SIZE);
	unsigned long hend = ALIGN_DOWN(end, PMD_SIZE);
	enum scan_result last_fail = SCAN_SUCCEED;
	unsigned long thps = 0;

	if (!vma_is_anonymous(vma) || (vma->vm_flags & (VM_NOHUGEPAGE | VM_HUGETLB)))
		return -EINVAL;
	/*
	 * Linux's checks before any work, found by the differential suite
	 * (uhmm returned 0 in all three cases):
	 *  - thp_vma_allowable_order() outside a fault forbids THP in a VMA
	 *    that never faulted (no anon_vma yet), and in one that cannot hold
	 *    its last PMD-aligned 2 MiB range (too small);
	 *  - a range inside one PMD (hend below hstart) fails: Linux compares
	 *    the count of THPs made with (hend - hstart) >> PMD_SHIFT, which
	 *    wraps, and reports its initial SCAN_FAIL as -EINVAL.
	 */
	if (!vma->anon_vma || vma->vm_end - vma->vm_start < PMD_SIZE ||
	    !thp_vma_allowable(vma, ALIGN_DOWN(vma->vm_end - PMD_SIZE, PMD_SIZE), false))
		return -EINVAL;
	if (hend < hstart)
		return -EINVAL;
	for (unsigned long addr = hstart; addr < hend; addr += PMD_SIZE) {
		pmd_t *pmd = pmd_off(mm, addr);
		enum scan_result result = pmd ? scan_pmd(mm, pmd) : SCAN_PMD_NULL;

		if (result == SCAN_SUCCEED)
			result = collapse_pmd(vma, pmd, addr);
		if (result == SCAN_SUCCEED || result == SCAN_PMD_MAPPED) {
			thps++;
			continue;
		}
		last_fail = result;
		if (!madvise_collapse_may_continue(result))
			break;
	}
	return thps == (hend - hstart) >> PMD_SHIFT ? 0 : madvise_collapse_errno(last_fail);
}
