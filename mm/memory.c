// SPDX-License-Identifier: MIT
/*
 * mm/memory.c - page faults and unmapping: handle_mm_fault() and its
 * anonymous, zero-page and write-protect paths; zap_page_range().
 *
 * Faults run with mmap_lock held for reading.  A new page is allocated and
 * filled before the page-table lock is taken; under the lock the entry is
 * checked again and, if another thread got there first, the page is freed
 * and the fault reports success so that the caller walks again.
 */
#include <string.h>

#include "internal.h"

int vm_fault_to_errno(vm_fault_t ret)
{
	if (ret & VM_FAULT_OOM)
		return -ENOMEM;
	if (ret & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV))
		return -EFAULT;
	return 0;
}

/* ---- unmapping ---- */

/* Clear one PTE (its table's ptl held), dropping rmap, RSS and its reference. */
static int zap_pte_entry(pte_t *pte, unsigned long addr, unsigned long next, struct mm_walk *walk)
{
	struct mm_struct *mm = walk->mm;
	pte_t entry = ptep_get(pte);
	struct page *page;
	struct folio *folio;

	(void)next;
	if (pte_none(entry))
		return 0;
	entry = ptep_get_and_clear(pte);
	if (!pte_present(entry)) {
		/* Swap, migration and device entries arrive with later subsystems. */
		uhmm_warn("zap: unexpected non-present PTE %#llx at %#lx",
			  (unsigned long long)pte_val(entry), addr);
		return 0;
	}
	if (pte_pfn(entry) == mm->machine->zero_pfn)
		return 0;
	page = pfn_to_page(pte_pfn(entry));
	folio = page_folio(page);
	if (pte_dirty(entry) && !folio_test_anon(folio))
		folio_set_dirty(folio);
	add_mm_counter(mm, MM_ANONPAGES, -1);
	folio_remove_rmap_ptes(folio, page, 1);
	folio_put(folio);
	return 0;
}

/* A PMD leaf inside the range goes whole; one that straddles its end is split first. */
static int zap_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next, struct mm_walk *walk)
{
	struct vm_area_struct *vma = walk->private;
	pmd_t val = pmdp_get(pmd);

	if (pmd_leaf(val)) {
		if (IS_ALIGNED(addr, PMD_SIZE) && next - addr == PMD_SIZE)
			return zap_huge_pmd(vma, pmd, addr) ? WALK_SKIP_PTES : 0;
		split_huge_pmd(vma, pmd, addr);
	} else if (is_swap_pmd(val)) {
		uhmm_warn("zap: unexpected PMD entry %#llx at %#lx", (unsigned long long)pmd_val(val),
			  addr);
		return WALK_SKIP_PTES;
	}
	return 0;
}

/**
 * zap_page_range() - unmap [@start, @end) inside @vma.
 * @vma: the VMA; mmap_lock held (for reading is enough: no table is freed).
 * @start: page-aligned start.
 * @end: page-aligned end.
 *
 * Clears every entry, dropping rmap, RSS and the folio references the
 * entries held; a PMD leaf only partly inside the range is split first.
 */
void zap_page_range(struct vm_area_struct *vma, unsigned long start, unsigned long end)
{
	static const struct mm_walk_ops ops = {
		.pmd_entry = zap_pmd_entry,
		.pte_entry = zap_pte_entry,
	};

	walk_page_range(vma->vm_mm, start, end, &ops, vma);
}

/* ---- faults ---- */

/* The entry a new private anonymous page gets after a write fault. */
static pte_t mk_anon_write_pte(struct vm_area_struct *vma, unsigned long pfn)
{
	pte_t entry = pfn_pte(pfn, vm_get_page_prot(vma->vm_flags));

	return pte_mkyoung(pte_mkdirty(pte_mkwrite(entry)));
}

/*
 * do_anonymous_page() - fault on an empty PTE of an anonymous VMA: the zero
 * page for a read, a new zeroed page for a write.
 */
static vm_fault_t do_anonymous_page(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
				    unsigned int flags)
{
	struct mm_struct *mm = vma->vm_mm;
	struct folio *folio;
	pthread_mutex_t *ptl;
	pte_t *pte;

	if (!(flags & FAULT_FLAG_WRITE)) {
		pte_t entry = pte_mkspecial(pfn_pte(mm->machine->zero_pfn,
						    vm_get_page_prot(vma->vm_flags) & ~_PAGE_RW));

		pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
		if (!pte)
			return VM_FAULT_RETRY;
		if (pte_none(ptep_get(pte)))
			set_pte(pte, entry);
		spin_unlock(ptl);
		return 0;
	}
	if (anon_vma_prepare(vma))
		return VM_FAULT_OOM;
	folio = folio_alloc(mm->machine, GFP_HIGHUSER_MOVABLE | __GFP_ZERO, 0);
	if (!folio)
		return VM_FAULT_OOM;
	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!pte) {
		folio_put(folio);
		return VM_FAULT_RETRY;
	}
	if (!pte_none(ptep_get(pte))) {
		spin_unlock(ptl);
		folio_put(folio);
		return 0;
	}
	folio_add_new_anon_rmap(folio, vma, addr, false);
	add_mm_counter(mm, MM_ANONPAGES, 1);
	set_pte(pte, mk_anon_write_pte(vma, folio_pfn(folio)));
	spin_unlock(ptl);
	return 0;
}

/*
 * wp_page_copy() - break COW on the PTE at @addr that held @orig when the
 * fault saw it: copy the old page (or zeroes for the zero page) into a new
 * exclusive page and map that writable.  Called without the ptl.
 */
static vm_fault_t wp_page_copy(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
			       pte_t orig)
{
	struct mm_struct *mm = vma->vm_mm;
	bool from_zero = pte_pfn(orig) == mm->machine->zero_pfn;
	struct page *old_page = from_zero ? NULL : pfn_to_page(pte_pfn(orig));
	struct folio *old_folio = NULL;
	struct folio *folio;
	pthread_mutex_t *ptl;
	pte_t *pte;

	if (anon_vma_prepare(vma))
		return VM_FAULT_OOM;
	if (old_page) {
		/* Keep the old page alive while copying outside the ptl. */
		old_folio = page_folio(old_page);
		if (!folio_try_get(old_folio))
			return VM_FAULT_RETRY;
	}
	folio = folio_alloc(mm->machine, GFP_HIGHUSER_MOVABLE | (from_zero ? __GFP_ZERO : 0), 0);
	if (!folio) {
		if (old_folio)
			folio_put(old_folio);
		return VM_FAULT_OOM;
	}
	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!pte || pte_val(ptep_get(pte)) != pte_val(orig)) {
		if (pte)
			spin_unlock(ptl);
		folio_put(folio);
		if (old_folio)
			folio_put(old_folio);
		return 0;
	}
	/* Copy under the ptl: no writer can change the old page meanwhile. */
	if (old_page)
		memcpy(folio_address(folio), page_address(old_page), PAGE_SIZE);
	folio_add_new_anon_rmap(folio, vma, addr, false);
	set_pte(pte, mk_anon_write_pte(vma, folio_pfn(folio)));
	if (old_page) {
		folio_remove_rmap_ptes(old_folio, old_page, 1);
		folio_put(old_folio); /* the mapping's reference */
	} else {
		add_mm_counter(mm, MM_ANONPAGES, 1);
	}
	spin_unlock(ptl);
	if (old_folio)
		folio_put(old_folio); /* ours */
	return 0;
}

/*
 * do_wp_page() - write fault on a present, read-only PTE of a writable VMA.
 * Called with the ptl held; drops it.  Reuses an exclusive anonymous page
 * in place, copies anything else.
 */
static vm_fault_t do_wp_page(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
			     pte_t *pte, pthread_mutex_t *ptl)
{
	pte_t orig = ptep_get(pte);
	struct page *page;
	struct folio *folio;
	bool reuse = false;

	if (pte_pfn(orig) == vma->vm_mm->machine->zero_pfn || pte_special(orig)) {
		spin_unlock(ptl);
		return wp_page_copy(vma, pmd, addr, orig);
	}
	page = pfn_to_page(pte_pfn(orig));
	folio = page_folio(page);
	if (folio_test_anon(folio)) {
		if (PageAnonExclusive(page)) {
			reuse = true;
		} else if (!folio_test_large(folio) && folio_ref_count(folio) == 1 &&
			   folio_trylock(folio)) {
			/* wp_can_reuse_anon_folio(): the only reference is this mapping. */
			if (folio_ref_count(folio) == 1 && folio_mapcount(folio) == 1) {
				SetPageAnonExclusive(page);
				reuse = true;
			}
			folio_unlock(folio);
		}
	}
	if (reuse) {
		set_pte(pte, pte_mkyoung(pte_mkdirty(pte_mkwrite(orig))));
		spin_unlock(ptl);
		return 0;
	}
	spin_unlock(ptl);
	return wp_page_copy(vma, pmd, addr, orig);
}

/* handle_pte_fault() - the PTE level of a fault; the PMD points to a PTE table. */
static vm_fault_t handle_pte_fault(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
				   unsigned int flags)
{
	struct mm_struct *mm = vma->vm_mm;
	pthread_mutex_t *ptl;
	pte_t *pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	pte_t entry;

	if (!pte)
		return VM_FAULT_RETRY;
	entry = ptep_get(pte);
	if (pte_none(entry)) {
		spin_unlock(ptl);
		if (!vma_is_anonymous(vma))
			return VM_FAULT_SIGBUS;
		return do_anonymous_page(vma, pmd, addr, flags);
	}
	if (!pte_present(entry)) {
		/* Swap, migration and device entries arrive with later subsystems. */
		spin_unlock(ptl);
		uhmm_warn("fault: unexpected non-present PTE %#llx at %#lx",
			  (unsigned long long)pte_val(entry), addr);
		return VM_FAULT_SIGBUS;
	}
	if ((flags & FAULT_FLAG_WRITE) && !pte_write(entry))
		return do_wp_page(vma, pmd, addr, pte, ptl);
	/* A spurious fault (PROT_NONE upgraded meanwhile, or a race): refresh A/D. */
	entry = pte_mkyoung(entry);
	if (flags & FAULT_FLAG_WRITE)
		entry = pte_mkdirty(entry);
	set_pte(pte, entry);
	spin_unlock(ptl);
	return 0;
}

/**
 * handle_mm_fault() - resolve a fault at @addr in @vma.
 * @vma: the VMA containing @addr; mmap_lock held for reading.
 * @addr: the faulting address.
 * @flags: FAULT_FLAG_WRITE for a write.
 *
 * Return: 0 when the entry now allows the access (or a racing thread
 * changed it: walk again), VM_FAULT_RETRY to walk again, VM_FAULT_SIGSEGV
 * when the VMA forbids the access, VM_FAULT_OOM when no memory is left.
 */
vm_fault_t handle_mm_fault(struct vm_area_struct *vma, unsigned long addr, unsigned int flags)
{
	struct mm_struct *mm = vma->vm_mm;
	pmd_t *pmd;
	pmd_t val;
	vm_fault_t ret;
	int err;

	if (flags & FAULT_FLAG_WRITE) {
		if (!(vma->vm_flags & VM_WRITE))
			return VM_FAULT_SIGSEGV;
	} else if (!(vma->vm_flags & VM_ACCESS_FLAGS)) {
		return VM_FAULT_SIGSEGV;
	}
	pmd = pmd_off_alloc(mm, addr);
	if (!pmd)
		return VM_FAULT_OOM;
retry:
	val = pmdp_get(pmd);
	if (pmd_none(val) && thp_vma_allowable(vma, addr & PMD_MASK, true)) {
		ret = do_huge_pmd_anonymous_page(vma, pmd, addr, flags);
		if (!(ret & VM_FAULT_FALLBACK))
			return ret;
	} else if (pmd_leaf(val)) {
		if ((flags & FAULT_FLAG_WRITE) && !pmd_write(val)) {
			ret = do_huge_pmd_wp_page(vma, pmd, addr);
			if (!(ret & VM_FAULT_FALLBACK))
				return ret;
		} else {
			pthread_mutex_t *ptl = pmd_lock(mm, pmd);

			if (pmd_val(pmdp_get(pmd)) == pmd_val(val)) {
				val = pmd_mkyoung(val);
				if (flags & FAULT_FLAG_WRITE)
					val = pmd_mkdirty(val);
				set_pmd(pmd, val);
			}
			spin_unlock(ptl);
			return 0;
		}
	} else if (is_swap_pmd(val)) {
		uhmm_warn("fault: unexpected PMD entry %#llx at %#lx",
			  (unsigned long long)pmd_val(val), addr);
		return VM_FAULT_SIGBUS;
	}
	err = pte_alloc(mm, pmd);
	if (err < 0)
		return VM_FAULT_OOM;
	if (err > 0)
		goto retry; /* a PMD leaf appeared meanwhile */
	ret = handle_pte_fault(vma, pmd, addr, flags);
	if (ret & VM_FAULT_RETRY)
		goto retry;
	return ret;
}
