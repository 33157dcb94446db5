// SPDX-License-Identifier: MIT
/*
 * mm/mprotect.c - mprotect(2): change VMA protections, split and merge
 * VMAs, and rewrite the protection bits of every entry in the range.
 */
#include "internal.h"

#ifndef PROT_SEM
#define PROT_SEM 0x8
#endif
/* arch_validate_prot() on x86-64; PROT_GROWSDOWN/UP are handled apart. */
#define PROT_VALID_MASK (PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)

/*
 * can_change_pte_writable() - may a private PTE become writable without a
 * fault?  Only an exclusive anonymous page (not the zero page).
 */
static bool can_change_pte_writable(struct mm_struct *mm, pte_t pte)
{
	if (!pte_present(pte) || pte_pfn(pte) == mm->machine->zero_pfn || pte_special(pte))
		return false;
	return PageAnonExclusive(pfn_to_page(pte_pfn(pte)));
}

struct change_prot {
	struct vm_area_struct *vma;
	uint64_t prot;
	bool try_writable; /* vma_wants_manual_pte_write_upgrade(): private writable */
};

/*
 * A writable migration or device-private entry (PTE or PMD value @val)
 * loses write, as Linux's change_pte_range() does on any protection change
 * ("a protection check is difficult, so just be safe and disable write"):
 * a migration entry of an anonymous page becomes readable-exclusive.
 * Return: the new value (unchanged for anything else).
 */
static uint64_t swp_entry_wrprotect(uint64_t val)
{
	swp_entry_t e = pte_to_swp_entry(__pte(val));
	unsigned long pfn = swp_offset_pfn(e);
	swp_entry_t n;

	if (is_writable_migration_entry(e))
		n = folio_test_anon(page_folio(pfn_to_page(pfn)))
			    ? make_readable_exclusive_migration_entry(pfn)
			    : make_readable_migration_entry(pfn);
	else if (is_writable_device_private_entry(e))
		n = make_readable_device_private_entry(pfn);
	else
		return val;
	return pte_val(swp_entry_to_pte(n)) | (val & _PAGE_SWP_SOFT_DIRTY);
}

/* New protection for one present PTE (its table's ptl held). */
static int change_pte_entry(pte_t *pte, unsigned long addr, unsigned long next,
			    struct mm_walk *walk)
{
	struct change_prot *cp = walk->private;
	pte_t entry = ptep_get(pte);

	(void)addr;
	(void)next;
	if (is_swap_pte(entry)) {
		uint64_t val = swp_entry_wrprotect(pte_val(entry));

		if (val != pte_val(entry))
			set_pte(pte, __pte(val));
		return 0;
	}
	if (!pte_present(entry))
		return 0;
	entry = pte_modify(entry, cp->prot);
	if (cp->try_writable && !pte_write(entry) && can_change_pte_writable(walk->mm, entry))
		entry = pte_mkwrite(entry);
	set_pte(pte, entry);
	return 0;
}

/*
 * change_huge_pmd() - new protection for a PMD leaf wholly inside the range;
 * one that is not (the VMA split should have split it) is split.
 */
static int change_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next,
			    struct mm_walk *walk)
{
	struct change_prot *cp = walk->private;
	struct mm_struct *mm = walk->mm;
	pthread_mutex_t *ptl;
	pmd_t val = pmdp_get(pmd);

	if (!pmd_leaf(val) && !is_swap_pmd(val))
		return 0;
	if (next - addr != PMD_SIZE) {
		split_huge_pmd(cp->vma, pmd, addr);
		return 0;
	}
	ptl = pmd_lock(mm, pmd);
	val = pmdp_get(pmd);
	if (is_swap_pmd(val)) {
		set_pmd(pmd, __pmd(swp_entry_wrprotect(pmd_val(val))));
	} else if (pmd_leaf(val)) {
		bool is_zero = is_huge_zero_pfn(mm->machine, pmd_pfn(val));

		val = pmd_modify(val, cp->prot);
		if (cp->try_writable && !pmd_write(val) && !is_zero &&
		    PageAnonExclusive(pfn_to_page(pmd_pfn(val))))
			val = pmd_mkwrite(val);
		set_pmd(pmd, val);
	}
	spin_unlock(ptl);
	return WALK_SKIP_PTES;
}

/*
 * change_protection() - apply @vma's (new) vm_flags to every entry of
 * [start, end).  mmap_lock held for writing.
 */
static void change_protection(struct vm_area_struct *vma, unsigned long start, unsigned long end)
{
	static const struct mm_walk_ops ops = {
		.pmd_entry = change_pmd_entry,
		.pte_entry = change_pte_entry,
	};
	struct change_prot cp = {
		.vma = vma,
		.prot = vm_get_page_prot(vma->vm_flags),
		.try_writable = (vma->vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE,
	};

	if (is_vm_hugetlb_page(vma)) {
		hugetlb_change_protection(vma, start, end);
		return;
	}
	walk_page_range(vma->vm_mm, start, end, &ops, &cp);
}

/**
 * vma_modify_flags() - give [@start, @end) of the VMA at @vma new vm_flags,
 * splitting it at the boundaries and merging afterwards.
 * @mm: the mm; mmap_lock held for writing.
 * @vma: the VMA containing [@start, @end).
 * @start: page-aligned start inside @vma.
 * @end: page-aligned end inside @vma.
 * @newflags: the flags.
 * @change_ptes: rewrite the protection of present entries (mprotect).
 *
 * Return: 0 or -ENOMEM (a split failed; the VMA may already be split).
 */
int vma_modify_flags(struct mm_struct *mm, struct vm_area_struct *vma, unsigned long start,
		     unsigned long end, unsigned long newflags, bool change_ptes)
{
	int err;

	if (newflags == vma->vm_flags)
		return 0;
	if (start > vma->vm_start) {
		err = split_vma(mm, vma, start);
		if (err)
			return err;
		vma = find_vma(mm, start);
	}
	if (end < vma->vm_end) {
		err = split_vma(mm, vma, end);
		if (err)
			return err;
	}
	vma->vm_flags = newflags;
	if (change_ptes) {
		struct mmu_notifier_range range;

		/*
		 * uhmm difference: Linux starts MMU_NOTIFY_PROTECTION_VMA lazily,
		 * per PUD range, at the first populated PMD; uhmm covers the
		 * VMA's whole changed range once, populated or not.
		 */
		mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_VMA, 0, mm, start, end);
		mmu_notifier_invalidate_range_start(&range);
		change_protection(vma, start, end);
		mmu_notifier_invalidate_range_end(&range);
	}
	vma_try_merge_around(mm, vma_index(mm, start));
	return 0;
}

int mm_mprotect(struct mm_struct *mm, unsigned long start, unsigned long len, int prot)
{
	unsigned long end, addr;
	int grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
	int err = 0;

	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP);
	if (grows == (PROT_GROWSDOWN | PROT_GROWSUP))
		return -EINVAL;
	if (offset_in_page(start))
		return -EINVAL;
	if (!len)
		return 0;
	len = PAGE_ALIGN(len);
	end = start + len;
	if (end <= start)
		return -ENOMEM;
	if (prot & ~PROT_VALID_MASK)
		return -EINVAL;

	pthread_rwlock_wrlock(&mm->mmap_lock);
	struct vm_area_struct *vma = find_vma(mm, start);

	/*
	 * As do_mprotect_pkey(): -ENOMEM when no VMA meets the range; with
	 * PROT_GROWSDOWN any VMA in it will do (it would extend the range
	 * down to its start) and, as no VMA here grows down, that is
	 * -EINVAL; otherwise a hole at @start is -ENOMEM and PROT_GROWSUP
	 * -EINVAL.  (uhmm used to say -ENOMEM for PROT_GROWSDOWN over a hole
	 * before a VMA: found by the differential suite.)
	 */
	if (!vma || vma->vm_start >= end) {
		err = -ENOMEM;
		goto out;
	}
	if (grows & PROT_GROWSDOWN) {
		err = -EINVAL;
		goto out;
	}
	if (vma->vm_start > start) {
		err = -ENOMEM;
		goto out;
	}
	if (grows) {
		err = -EINVAL; /* no VMA here grows up */
		goto out;
	}
	for (addr = start; addr < end;) {
		unsigned long newflags, tmp;

		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start > addr) {
			err = -ENOMEM; /* a hole: what came before stays changed, as in Linux */
			break;
		}
		newflags = (vma->vm_flags & ~VM_ACCESS_FLAGS) |
			   ((prot & PROT_READ) ? VM_READ : 0) | ((prot & PROT_WRITE) ? VM_WRITE : 0) |
			   ((prot & PROT_EXEC) ? VM_EXEC : 0);
		/* Each access bit needs its VM_MAY* bit. */
		if ((newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS) {
			err = -EACCES;
			break;
		}
		/* Making a private mapping writable charges it (VM_ACCOUNT), as Linux does. */
		if ((newflags & VM_WRITE) &&
		    !(vma->vm_flags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE)))
			newflags |= VM_ACCOUNT;
		/*
		 * Made read-only before its first fault (no anon_vma yet): the
		 * charge goes again, as Linux (since 6.12) does; so the VMA may
		 * merge with a neighbour that was never writable.  Found by the
		 * differential suite.
		 */
		else if (!(newflags & VM_WRITE) && (vma->vm_flags & VM_ACCOUNT) &&
			 vma_is_anonymous(vma) && !vma->anon_vma)
			newflags &= ~VM_ACCOUNT;
		tmp = vma->vm_end < end ? vma->vm_end : end;
		err = vma_modify_flags(mm, vma, addr, tmp, newflags, true);
		if (err)
			break;
		addr = tmp;
	}
out:
	pthread_rwlock_unlock(&mm->mmap_lock);
	return err;
}
