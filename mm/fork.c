// SPDX-License-Identifier: MIT
/*
 * mm/fork.c - mm_fork(): dup_mmap() and copy_page_range().
 *
 * The child gets a copy of every VMA (but VM_DONTCOPY ones; VM_WIPEONFORK
 * ones come up empty) linked into the anon_vma tree and, for a file or
 * shmem VMA, onto the file's i_mmap with a reference on the file; and a
 * copy of every page-table entry of VMAs that have anonymous pages.  Shared
 * VMAs have none, so the child faults their page-cache pages in again (it
 * sees the same pages); private file VMAs that have COWed pages are copied
 * whole: page-cache pages stay mapped read-only on both sides.  Private anonymous
 * pages and THPs become shared copy-on-write: both sides' entries are
 * write-protected, the pages lose PG_anon_exclusive, refcount and mapcount
 * grow by the child's mapping.  A PMD stays a PMD.  Anonymous pages that
 * may be pinned for DMA (and are exclusive) are copied at once instead, so
 * the pin keeps seeing the parent's page (page_needs_cow_for_dma()).
 * Zero-page and huge-zero entries are copied as they are.
 *
 * Both mms' mmap_locks are held for writing throughout, so no fault or CPU
 * access runs on either while the tables are copied.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "uhmm/gup.h"

/*
 * copy_present_page() - the child gets its own copy of @page (an exclusive
 * anonymous page that may be pinned).  Both ptls held.
 * Return: 0 or -ENOMEM.
 */
static int copy_present_page(struct vm_area_struct *dst_vma, pte_t *dst_pte, unsigned long addr,
			     struct page *page)
{
	struct mm_struct *dst_mm = dst_vma->vm_mm;
	struct folio *new = folio_alloc(dst_mm->machine, GFP_HIGHUSER_MOVABLE, 0);

	if (!new)
		return -ENOMEM;
	memcpy(folio_address(new), page_address(page), PAGE_SIZE);
	folio_add_new_anon_rmap(new, dst_vma, addr, false);
	add_mm_counter(dst_mm, MM_ANONPAGES, 1);
	set_pte(dst_pte, pte_mkyoung(pte_mkdirty(pte_mkwrite(pfn_pte(folio_pfn(new),
					vm_get_page_prot(dst_vma->vm_flags))))));
	return 0;
}

/*
 * copy_nonpresent_pte() - a migration entry is copied (downgraded to
 * readable in both when it was writable or readable-exclusive, in a COW
 * mapping) and counted in the child's RSS; a device-private entry is a
 * mapping: the child takes a reference and an anon mapcount, the page is no
 * longer exclusive, and a writable entry becomes readable in both.  Both
 * ptls held.
 */
static void copy_nonpresent_pte(struct vm_area_struct *dst_vma, struct vm_area_struct *src_vma,
				pte_t *dst_pte, pte_t *src_pte, pte_t pte, unsigned long addr)
{
	swp_entry_t e = pte_to_swp_entry(pte);
	bool cow = is_cow_mapping(src_vma->vm_flags);
	struct page *page;
	struct folio *folio;

	if (!is_migration_entry(e) && !is_device_private_entry(e)) {
		uhmm_warn("fork: unexpected non-present PTE %#llx at %#lx",
			  (unsigned long long)pte_val(pte), addr);
		return;
	}
	page = pfn_to_page(swp_offset_pfn(e));
	folio = page_folio(page);
	if (is_migration_entry(e)) {
		if (!is_readable_migration_entry(e) && cow) {
			pte_t r = swp_entry_to_pte(make_readable_migration_entry(swp_offset_pfn(e)));

			if (pte_swp_soft_dirty(pte))
				r = pte_swp_mksoft_dirty(r);
			pte = r;
			set_pte(src_pte, pte);
		}
	} else {
		folio_get(folio);
		folio_add_anon_rmap_ptes(folio, page, 1);
		ClearPageAnonExclusive(page);
		if (is_writable_device_private_entry(e) && cow) {
			pte_t r = swp_entry_to_pte(make_readable_device_private_entry(
				swp_offset_pfn(e)));

			if (pte_swp_soft_dirty(pte))
				r = pte_swp_mksoft_dirty(r);
			pte = r;
			set_pte(src_pte, pte);
		}
	}
	add_mm_counter(dst_vma->vm_mm, mm_counter(folio), 1);
	set_pte(dst_pte, pte);
}

/* copy_pte_range() - the PTEs of [addr, end) under one PMD. */
static int copy_pte_range(struct vm_area_struct *dst_vma, struct vm_area_struct *src_vma,
			  pmd_t *dst_pmd, pmd_t *src_pmd, unsigned long addr, unsigned long end)
{
	struct mm_struct *dst_mm = dst_vma->vm_mm, *src_mm = src_vma->vm_mm;
	pthread_mutex_t *src_ptl, *dst_ptl;
	pte_t *src_pte, *dst_pte;
	int err = 0;

	if (pte_alloc(dst_mm, dst_pmd))
		return -ENOMEM;
	src_pte = pte_offset_map_lock(src_mm, src_pmd, addr, &src_ptl);
	if (!src_pte)
		return 0;
	dst_pte = pte_offset_map_lock(dst_mm, dst_pmd, addr, &dst_ptl);
	if (!dst_pte) {
		spin_unlock(src_ptl);
		return -ENOMEM;
	}
	for (; addr < end; addr += PAGE_SIZE, src_pte++, dst_pte++) {
		pte_t pte = ptep_get(src_pte);
		struct page *page;
		struct folio *folio;

		if (pte_none(pte))
			continue;
		if (!pte_present(pte)) {
			copy_nonpresent_pte(dst_vma, src_vma, dst_pte, src_pte, pte, addr);
			continue;
		}
		page = vm_normal_page(src_mm, pte);
		if (!page) {
			set_pte(dst_pte, pte); /* the zero page */
			continue;
		}
		folio = page_folio(page);
		if (folio_test_anon(folio) && PageAnonExclusive(page) &&
		    folio_maybe_dma_pinned(folio)) {
			err = copy_present_page(dst_vma, dst_pte, addr, page);
			if (err)
				break;
			continue;
		}
		folio_get(folio);
		if (folio_test_anon(folio)) {
			folio_add_anon_rmap_ptes(folio, page, 1);
			ClearPageAnonExclusive(page);
		} else {
			/* A page-cache page of a private file mapping: shared, read-only. */
			folio_add_file_rmap_ptes(folio, page, 1);
		}
		add_mm_counter(dst_mm, mm_counter(folio), 1);
		if (is_cow_mapping(src_vma->vm_flags) && pte_write(pte)) {
			pte = pte_wrprotect(pte);
			set_pte(src_pte, pte);
		}
		set_pte(dst_pte, pte_mkold(pte));
	}
	spin_unlock(dst_ptl);
	spin_unlock(src_ptl);
	return err;
}

/*
 * copy_huge_pmd() - share a PMD leaf with the child.
 * Return: 0, -ENOMEM, or -EAGAIN when the THP may be pinned: the caller
 * splits the PMD and copies PTEs (which copies the pinned pages).
 */
static int copy_huge_pmd(struct vm_area_struct *dst_vma, struct vm_area_struct *src_vma,
			 pmd_t *dst_pmd, pmd_t *src_pmd)
{
	struct mm_struct *dst_mm = dst_vma->vm_mm, *src_mm = src_vma->vm_mm;
	uint64_t *pgtable = pt_alloc_table(dst_mm, PT_LEVEL_PTE);
	pthread_mutex_t *src_ptl, *dst_ptl;
	struct folio *folio;
	pmd_t pmd;
	int err = 0;

	if (!pgtable)
		return -ENOMEM;
	src_ptl = pmd_lock(src_mm, src_pmd);
	dst_ptl = pmd_lock(dst_mm, dst_pmd);
	pmd = pmdp_get(src_pmd);
	if (is_swap_pmd(pmd)) {
		/* As copy_nonpresent_pte(), for a PMD migration or device-private entry. */
		swp_entry_t e = pmd_to_swp_entry(pmd);
		unsigned long pfn = swp_offset_pfn(e);
		bool cow = is_cow_mapping(src_vma->vm_flags);

		folio = page_folio(pfn_to_page(pfn));
		if (is_migration_entry(e)) {
			if (!is_readable_migration_entry(e) && cow)
				pmd = __pmd(pmd_val(swp_entry_to_pmd(make_readable_migration_entry(pfn))) |
					    (pmd_val(pmd) & _PAGE_SWP_SOFT_DIRTY));
		} else if (is_device_private_entry(e)) {
			folio_get(folio);
			folio_add_anon_rmap_pmd(folio);
			for (unsigned long i = 0; i < folio_nr_pages(folio); i++)
				ClearPageAnonExclusive(folio_page(folio, i));
			if (is_writable_device_private_entry(e) && cow)
				pmd = __pmd(pmd_val(swp_entry_to_pmd(
						    make_readable_device_private_entry(pfn))) |
					    (pmd_val(pmd) & _PAGE_SWP_SOFT_DIRTY));
		} else {
			uhmm_warn("fork: unexpected PMD entry %#llx", (unsigned long long)pmd_val(pmd));
			goto out;
		}
		add_mm_counter(dst_mm, mm_counter(folio), HPAGE_PMD_NR);
		pgtable_trans_huge_deposit(dst_mm, dst_pmd, pgtable);
		pgtable = NULL;
		set_pmd(src_pmd, pmd);
		set_pmd(dst_pmd, pmd);
		goto out;
	}
	if (is_huge_zero_pfn(src_mm->machine, pmd_pfn(pmd))) {
		if (!mm_get_huge_zero_folio(dst_mm)) {
			err = -ENOMEM;
			goto out;
		}
		pgtable_trans_huge_deposit(dst_mm, dst_pmd, pgtable);
		pgtable = NULL;
		set_pmd(dst_pmd, pmd);
		goto out;
	}
	folio = page_folio(pfn_to_page(pmd_pfn(pmd)));
	if (PageAnonExclusive(folio_head(folio)) && folio_maybe_dma_pinned(folio)) {
		err = -EAGAIN;
		goto out;
	}
	folio_get(folio);
	folio_add_anon_rmap_pmd(folio);
	for (unsigned long i = 0; i < folio_nr_pages(folio); i++)
		ClearPageAnonExclusive(folio_page(folio, i));
	add_mm_counter(dst_mm, MM_ANONPAGES, HPAGE_PMD_NR);
	pgtable_trans_huge_deposit(dst_mm, dst_pmd, pgtable);
	pgtable = NULL;
	pmd = pmd_wrprotect(pmd);
	set_pmd(src_pmd, pmd);
	set_pmd(dst_pmd, pmd_mkold(pmd));
out:
	spin_unlock(dst_ptl);
	spin_unlock(src_ptl);
	if (pgtable)
		pt_free_table(dst_mm, pgtable);
	return err;
}

/*
 * __copy_page_range() - copy @src_vma's entries into @dst_vma.  Like Linux,
 * a VMA that never got an anonymous page is not copied: the child faults
 * its zero pages in again.
 */
static int __copy_page_range(struct vm_area_struct *dst_vma, struct vm_area_struct *src_vma)
{
	struct mm_struct *dst_mm = dst_vma->vm_mm, *src_mm = src_vma->vm_mm;
	unsigned long addr = src_vma->vm_start, end = src_vma->vm_end;
	int err = 0;

	if (is_vm_hugetlb_page(src_vma))
		return copy_hugetlb_page_range(dst_vma, src_vma);
	/* vma_needs_copy(): a driver's VM_MIXEDMAP pages cannot be faulted in again. */
	if (!src_vma->anon_vma && !(src_vma->vm_flags & VM_MIXEDMAP))
		return 0;
	while (addr < end && !err) {
		unsigned long next = ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE;
		pmd_t *src_pmd = pmd_off(src_mm, addr);
		pmd_t *dst_pmd;
		pmd_t val;

		if (next > end)
			next = end;
		if (!src_pmd) {
			next = ALIGN_DOWN(addr, PUD_SIZE) + PUD_SIZE;
			addr = next > end ? end : next;
			continue;
		}
		val = pmdp_get(src_pmd);
		if (pmd_none(val)) {
			addr = next;
			continue;
		}
		dst_pmd = pmd_off_alloc(dst_mm, addr);
		if (!dst_pmd)
			return -ENOMEM;
		if (pmd_leaf(val) || is_swap_pmd(val)) {
			err = copy_huge_pmd(dst_vma, src_vma, dst_pmd, src_pmd);
			if (err != -EAGAIN) {
				addr = next;
				continue;
			}
			split_huge_pmd(src_vma, src_pmd, addr);
			err = 0;
		}
		err = copy_pte_range(dst_vma, src_vma, dst_pmd, src_pmd, addr, next);
		addr = next;
	}
	return err;
}

/*
 * copy_page_range() - copy @src_vma's entries into @dst_vma.  A COW
 * mapping's parent entries lose write: MMU_NOTIFY_PROTECTION_PAGE over the
 * whole VMA, as Linux's copy_page_range() does.
 */
static int copy_page_range(struct vm_area_struct *dst_vma, struct vm_area_struct *src_vma)
{
	struct mmu_notifier_range range;
	int err;

	/* Only a COW mapping that is copied at all (vma_needs_copy()) is write-protected. */
	if (!is_cow_mapping(src_vma->vm_flags) ||
	    (!src_vma->anon_vma && !(src_vma->vm_flags & VM_MIXEDMAP)))
		return __copy_page_range(dst_vma, src_vma);
	mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_PAGE, 0, src_vma->vm_mm,
				src_vma->vm_start, src_vma->vm_end);
	mmu_notifier_invalidate_range_start(&range);
	err = __copy_page_range(dst_vma, src_vma);
	mmu_notifier_invalidate_range_end(&range);
	return err;
}

/**
 * mm_fork() - fork(2) for an address space: a new mm that is a
 * copy-on-write copy of @oldmm.
 * @oldmm: the parent; its mmap_lock is taken for writing.
 *
 * Return: the child mm (mm_users 1), or ERR_PTR(-ENOMEM); on failure the
 * parent keeps the write protection and cleared anon-exclusive bits
 * already applied, as Linux's does.
 */
struct mm_struct *mm_fork(struct mm_struct *oldmm)
{
	struct mm_struct *mm;
	int err = 0;

	if (!oldmm)
		return ERR_PTR(-EINVAL); /* uhmm only: a NULL mm would oops in Linux */
	mm = mm_alloc(oldmm->machine);

	if (IS_ERR(mm))
		return mm;
	pthread_rwlock_wrlock(&oldmm->mmap_lock);
	pthread_rwlock_wrlock(&mm->mmap_lock);
	mm->mmap_base = oldmm->mmap_base;
	mm->task_size = oldmm->task_size;
	for (size_t i = 0; i < oldmm->mm_mt.nr && !err; i++) {
		struct vm_area_struct *vma = oldmm->mm_mt.vmas[i];
		struct vm_area_struct *new;

		if (vma->vm_flags & VM_DONTCOPY)
			continue;
		err = vma_tree_reserve(mm);
		if (err)
			break;
		new = vm_area_dup(vma);
		if (!new) {
			err = -ENOMEM;
			break;
		}
		new->vm_mm = mm;
		if (is_vm_hugetlb_page(new))
			hugetlb_dup_vma_private(new); /* the child owns no reservation */
		if (!(vma->vm_flags & VM_WIPEONFORK) && anon_vma_fork(new, vma)) {
			vm_area_free(new);
			err = -ENOMEM;
			break;
		}
		vma_tree_insert_at(mm, mm->mm_mt.nr, new);
		/*
		 * Just after the parent's VMA on the file's i_mmap, before the
		 * entries are copied: a truncate walking i_mmap zaps the parent
		 * first, so an entry the copy takes from it is met in the child.
		 */
		vma_link_file(new, vma);
		if (!(vma->vm_flags & VM_WIPEONFORK))
			err = copy_page_range(new, vma);
	}
	pthread_rwlock_unlock(&mm->mmap_lock);
	pthread_rwlock_unlock(&oldmm->mmap_lock);
	if (err) {
		mmput(mm);
		return ERR_PTR(err);
	}
	return mm;
}
