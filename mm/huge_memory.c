// SPDX-License-Identifier: MIT
/*
 * mm/huge_memory.c - transparent huge pages: PMD-sized anonymous folios on
 * fault, the huge zero folio, write-protect faults on PMD leaves, PMD split
 * and zap.
 *
 * Every PMD leaf is installed together with a deposited PTE table (see
 * pgtable_trans_huge_deposit()), so splitting a PMD never allocates and
 * never fails, as in Linux.
 */
#include "internal.h"
#include "uhmm/gup.h"
#include "uhmm/memremap.h"

/**
 * thp_vma_allowable() - may a PMD-sized anonymous folio map @haddr in @vma?
 * @vma: the VMA; mmap_lock held.
 * @haddr: PMD-aligned address.
 * @enforce_sysfs: honour transparent_hugepage/enabled (MADV_COLLAPSE does not).
 *
 * Return: true when the 2 MiB range fits inside the VMA, VM_NOHUGEPAGE is
 * clear and (with @enforce_sysfs) the THP mode allows it.  As in Linux's
 * thp_vma_suitable_order(), an anonymous VMA's pgoff need not be aligned:
 * after an mremap() to an address that moved the pgoff off a 2 MiB
 * boundary, a fault at an aligned address still gets a THP (its index is
 * then not a multiple of 512).
 */
bool thp_vma_allowable(struct vm_area_struct *vma, unsigned long haddr, bool enforce_sysfs)
{
	enum thp_mode mode;

	if (!vma_is_anonymous(vma) || (vma->vm_flags & (VM_NOHUGEPAGE | VM_HUGETLB)))
		return false;
	if (haddr < vma->vm_start || haddr + PMD_SIZE > vma->vm_end || haddr + PMD_SIZE < haddr)
		return false;
	if (!enforce_sysfs)
		return true;
	mode = atomic_load(&vma->vm_mm->machine->thp_enabled);
	return mode == THP_ALWAYS || (mode == THP_MADVISE && (vma->vm_flags & VM_HUGEPAGE));
}

/* ---- the huge zero folio ---- */

struct folio *mm_get_huge_zero_folio(struct mm_struct *mm)
{
	struct uhmm_machine *machine = mm->machine;
	struct folio *folio;

	if (atomic_load(&mm->flags) & (1UL << MMF_HUGE_ZERO_PAGE))
		return __atomic_load_n(&machine->huge_zero_folio, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&machine->huge_zero_lock);
	folio = __atomic_load_n(&machine->huge_zero_folio, __ATOMIC_ACQUIRE);
	if (atomic_load(&mm->flags) & (1UL << MMF_HUGE_ZERO_PAGE))
		goto out;
	if (!folio) {
		folio = folio_alloc(machine, GFP_TRANSHUGE | __GFP_ZERO, HPAGE_PMD_ORDER);
		if (!folio)
			goto out;
		folio_set_zero(folio);
		__atomic_store_n(&machine->huge_zero_folio, folio, __ATOMIC_RELEASE);
	} else {
		folio_get(folio);
	}
	machine->huge_zero_users++;
	atomic_fetch_or(&mm->flags, 1UL << MMF_HUGE_ZERO_PAGE);
out:
	pthread_mutex_unlock(&machine->huge_zero_lock);
	return folio;
}

/*
 * mm_put_huge_zero_folio() - drop @mm's reference.  The last user frees the
 * folio at once: Linux leaves that to a shrinker, uhmm wants every page free
 * after the last mmput().
 */
void mm_put_huge_zero_folio(struct mm_struct *mm)
{
	struct uhmm_machine *machine = mm->machine;
	struct folio *folio;

	if (!(atomic_load(&mm->flags) & (1UL << MMF_HUGE_ZERO_PAGE)))
		return;
	pthread_mutex_lock(&machine->huge_zero_lock);
	atomic_fetch_and(&mm->flags, ~(1UL << MMF_HUGE_ZERO_PAGE));
	folio = machine->huge_zero_folio;
	if (--machine->huge_zero_users == 0) {
		__atomic_store_n(&machine->huge_zero_folio, NULL, __ATOMIC_RELEASE);
		folio_clear_zero(folio);
	}
	folio_put(folio);
	pthread_mutex_unlock(&machine->huge_zero_lock);
}

static bool is_huge_zero_pmd(struct mm_struct *mm, pmd_t pmd)
{
	return is_huge_zero_pfn(mm->machine, pmd_pfn(pmd));
}

/* ---- faults ---- */

/**
 * do_huge_pmd_anonymous_page() - fault on an empty PMD where a THP may go.
 * @vma: the VMA; mmap_lock held for reading.
 * @pmd: the empty PMD slot.
 * @addr: the faulting address.
 * @flags: FAULT_FLAG_WRITE for a write.
 *
 * A read maps the huge zero folio (when enabled); a write maps a new zeroed
 * PMD-sized folio.
 *
 * Return: 0 (mapped, or a racing fault filled the PMD), VM_FAULT_FALLBACK
 * when no large folio could be had (map 4 KiB pages instead), VM_FAULT_OOM
 * when not even the deposit table could be allocated.
 */
vm_fault_t do_huge_pmd_anonymous_page(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
				      unsigned int flags)
{
	struct mm_struct *mm = vma->vm_mm;
	unsigned long haddr = addr & PMD_MASK;
	uint64_t prot = vm_get_page_prot(vma->vm_flags);
	struct folio *folio;
	pthread_mutex_t *ptl;
	uint64_t *pgtable;
	pmd_t entry;

	/*
	 * vmf_anon_prepare() comes first, for the huge zero folio too, as in
	 * Linux: so a VMA that only ever read the huge zero folio has an
	 * anon_vma, and fork copies its PMD (vma_needs_copy()).  Found by
	 * the differential suite (uhmm's child came up without it).
	 */
	if (anon_vma_prepare(vma))
		return VM_FAULT_OOM;
	if (!(flags & FAULT_FLAG_WRITE) && mm->machine->huge_zero_enabled) {
		folio = mm_get_huge_zero_folio(mm);
		if (!folio)
			return VM_FAULT_FALLBACK;
		pgtable = pt_alloc_table(mm, PT_LEVEL_PTE);
		if (!pgtable)
			return VM_FAULT_OOM;
		entry = __pmd(pmd_val(pfn_pmd(folio_pfn(folio), prot & ~_PAGE_RW)) | _PAGE_SPECIAL);
		ptl = pmd_lock(mm, pmd);
		if (pmd_none(pmdp_get(pmd))) {
			pgtable_trans_huge_deposit(mm, pmd, pgtable);
			set_pmd(pmd, entry);
			pgtable = NULL;
		}
		spin_unlock(ptl);
		if (pgtable)
			pt_free_table(mm, pgtable);
		return 0;
	}
	folio = folio_alloc(mm->machine, GFP_TRANSHUGE | __GFP_ZERO, HPAGE_PMD_ORDER);
	if (!folio)
		return VM_FAULT_FALLBACK;
	pgtable = pt_alloc_table(mm, PT_LEVEL_PTE);
	if (!pgtable) {
		folio_put(folio);
		return VM_FAULT_OOM;
	}
	entry = pmd_mkyoung(pmd_mkdirty(maybe_pmd_mkwrite(pfn_pmd(folio_pfn(folio), prot), vma)));
	ptl = pmd_lock(mm, pmd);
	if (!pmd_none(pmdp_get(pmd))) {
		spin_unlock(ptl);
		folio_put(folio);
		pt_free_table(mm, pgtable);
		return 0;
	}
	folio_add_new_anon_rmap(folio, vma, haddr, true);
	add_mm_counter(mm, MM_ANONPAGES, HPAGE_PMD_NR);
	pgtable_trans_huge_deposit(mm, pmd, pgtable);
	set_pmd(pmd, entry);
	spin_unlock(ptl);
	return 0;
}

/*
 * do_huge_zero_wp_pmd() - a write to the huge zero folio: replace the PMD
 * with a new zeroed THP, as Linux (6.13+) does, instead of splitting.
 * Return: 0 when mapped (or the PMD changed meanwhile), VM_FAULT_FALLBACK
 * when no THP could be had.  Found by the differential suite (uhmm split
 * the PMD and allocated a 4 KiB page).
 */
static vm_fault_t do_huge_zero_wp_pmd(struct vm_area_struct *vma, pmd_t *pmd, unsigned long haddr)
{
	struct mm_struct *mm = vma->vm_mm;
	struct mmu_notifier_range range;
	struct folio *folio;
	pthread_mutex_t *ptl;
	pmd_t entry;

	if (anon_vma_prepare(vma))
		return VM_FAULT_FALLBACK;
	folio = folio_alloc(mm->machine, GFP_TRANSHUGE | __GFP_ZERO, HPAGE_PMD_ORDER);
	if (!folio)
		return VM_FAULT_FALLBACK;
	entry = pmd_mkyoung(pmd_mkdirty(pmd_mkwrite(
		pfn_pmd(folio_pfn(folio), vm_get_page_prot(vma->vm_flags)))));
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, haddr, haddr + HPAGE_PMD_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ptl = pmd_lock(mm, pmd);
	if (!pmd_leaf(pmdp_get(pmd)) || !is_huge_zero_pmd(mm, pmdp_get(pmd))) {
		spin_unlock(ptl);
		mmu_notifier_invalidate_range_end(&range);
		folio_put(folio);
		return 0; /* changed meanwhile: walk again */
	}
	/* The deposited PTE table stays for the new leaf. */
	folio_add_new_anon_rmap(folio, vma, haddr, true);
	add_mm_counter(mm, MM_ANONPAGES, HPAGE_PMD_NR);
	set_pmd(pmd, entry);
	spin_unlock(ptl);
	mmu_notifier_invalidate_range_end(&range);
	return 0;
}

/**
 * do_huge_pmd_wp_page() - write fault on a read-only PMD leaf.
 * @vma: the VMA (writable); mmap_lock held for reading.
 * @pmd: the PMD slot.
 * @addr: the faulting address.
 *
 * An exclusive THP is made writable in place.  The huge zero folio is
 * replaced by a new THP (do_huge_zero_wp_pmd()); when none can be had it,
 * and a THP that others may still map, are split into PTEs and the fault
 * falls back to the PTE level, as Linux does.
 *
 * Return: 0, or VM_FAULT_FALLBACK after splitting.
 */
vm_fault_t do_huge_pmd_wp_page(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr)
{
	struct mm_struct *mm = vma->vm_mm;
	pthread_mutex_t *ptl = pmd_lock(mm, pmd);
	pmd_t val = pmdp_get(pmd);
	struct folio *folio;
	bool reuse = false;

	if (!pmd_leaf(val) || pmd_write(val)) {
		spin_unlock(ptl);
		return 0; /* changed meanwhile: walk again */
	}
	if (is_huge_zero_pmd(mm, val)) {
		spin_unlock(ptl);
		if (!(do_huge_zero_wp_pmd(vma, pmd, addr & PMD_MASK) & VM_FAULT_FALLBACK))
			return 0;
		ptl = pmd_lock(mm, pmd);
	} else {
		folio = page_folio(pfn_to_page(pmd_pfn(val)));
		if (PageAnonExclusive(folio_head(folio))) {
			reuse = true;
		} else if (folio_ref_count(folio) == 1 && folio_mapcount(folio) == 1 &&
			   folio_trylock(folio)) {
			if (folio_ref_count(folio) == 1 && folio_mapcount(folio) == 1) {
				for (unsigned long i = 0; i < folio_nr_pages(folio); i++)
					SetPageAnonExclusive(folio_page(folio, i));
				reuse = true;
			}
			folio_unlock(folio);
		}
	}
	if (reuse) {
		set_pmd(pmd, pmd_mkyoung(pmd_mkdirty(pmd_mkwrite(val))));
		spin_unlock(ptl);
		return 0;
	}
	/* Split outside the ptl, inside the notifier range, as Linux's fallback does. */
	spin_unlock(ptl);
	split_huge_pmd(vma, pmd, addr);
	return VM_FAULT_FALLBACK;
}

/* ---- split and zap ---- */

void __split_huge_pmd_locked(struct vm_area_struct *vma, pmd_t *pmd, unsigned long haddr)
{
	struct mm_struct *mm = vma->vm_mm;
	pmd_t old = pmdp_get(pmd);
	uint64_t *pgtable = pgtable_trans_huge_withdraw(mm, pmd);
	pte_t *ptes = (pte_t *)pgtable;
	uint64_t keep;

	(void)haddr;
	if (!pgtable) {
		uhmm_warn("split_huge_pmd: no deposited table");
		return;
	}
	if (is_swap_pmd(old)) {
		/*
		 * A PMD migration entry becomes 512 migration PTEs of the same
		 * kind (they hold nothing); a device-private PMD becomes 512
		 * device-private PTEs, each with a reference and a mapcount of
		 * the still-large device folio (Linux's FYI revision).
		 */
		swp_entry_t e = pmd_to_swp_entry(old);
		unsigned long pfn = swp_offset_pfn(e);

		for (int i = 0; i < PTRS_PER_PTE; i++) {
			pte_t swp = swp_entry_to_pte(swp_entry(swp_type(e), pfn + (unsigned long)i));

			if (pmd_val(old) & _PAGE_SWP_SOFT_DIRTY)
				swp = pte_swp_mksoft_dirty(swp);
			set_pte(&ptes[i], swp);
		}
		if (is_device_private_entry(e)) {
			struct folio *folio = page_folio(pfn_to_page(pfn));

			folio_ref_add(folio, HPAGE_PMD_NR - 1);
			folio_convert_pmd_to_ptes_rmap(folio);
		}
		set_pmd(pmd, __pmd(((uint64_t)page_to_pfn(pt_table_page(mm, pgtable)) << PAGE_SHIFT) |
				   _PAGE_TABLE));
		return;
	}
	/* The PTEs inherit the PMD's protection, dirty and young bits. */
	keep = pmd_val(old) & ~(PTE_PFN_MASK | _PAGE_PSE);
	if (is_huge_zero_pmd(mm, old)) {
		uint64_t zero = ((uint64_t)mm->machine->zero_pfn << PAGE_SHIFT) | keep | _PAGE_SPECIAL;

		for (int i = 0; i < PTRS_PER_PTE; i++)
			set_pte(&ptes[i], __pte(zero & ~(uint64_t)_PAGE_RW));
	} else {
		struct folio *folio = page_folio(pfn_to_page(pmd_pfn(old)));

		for (int i = 0; i < PTRS_PER_PTE; i++)
			set_pte(&ptes[i], pfn_pte(pmd_pfn(old) + (unsigned long)i, keep));
		/* One reference and one mapcount per PTE instead of one for the PMD. */
		folio_ref_add(folio, HPAGE_PMD_NR - 1);
		folio_convert_pmd_to_ptes_rmap(folio);
	}
	set_pmd(pmd, __pmd(((uint64_t)page_to_pfn(pt_table_page(mm, pgtable)) << PAGE_SHIFT) |
			   _PAGE_TABLE));
}

void split_huge_pmd(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr)
{
	struct mmu_notifier_range range;
	pthread_mutex_t *ptl;

	/* __split_huge_pmd(): MMU_NOTIFY_CLEAR over the whole PMD range. */
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, vma->vm_mm, addr & PMD_MASK,
				(addr & PMD_MASK) + PMD_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ptl = pmd_lock(vma->vm_mm, pmd);
	if (pmd_leaf(pmdp_get(pmd)) || is_swap_pmd(pmdp_get(pmd)))
		__split_huge_pmd_locked(vma, pmd, addr & PMD_MASK);
	spin_unlock(ptl);
	mmu_notifier_invalidate_range_end(&range);
}

void split_huge_pmd_address(struct vm_area_struct *vma, unsigned long addr)
{
	pmd_t *pmd = pmd_off(vma->vm_mm, addr);

	if (pmd && (pmd_leaf(pmdp_get(pmd)) || is_swap_pmd(pmdp_get(pmd))))
		split_huge_pmd(vma, pmd, addr);
}

bool zap_huge_pmd(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr)
{
	struct mm_struct *mm = vma->vm_mm;
	pthread_mutex_t *ptl = pmd_lock(mm, pmd);
	pmd_t old = pmdp_get(pmd);
	struct folio *folio = NULL;

	(void)addr;
	if (!pmd_leaf(old) && !is_swap_pmd(old)) {
		spin_unlock(ptl);
		return false; /* split meanwhile: the caller walks the PTEs */
	}
	pmdp_get_and_clear(pmd);
	pt_free_table(mm, pgtable_trans_huge_withdraw(mm, pmd));
	if (is_swap_pmd(old)) {
		swp_entry_t e = pmd_to_swp_entry(old);

		folio = page_folio(pfn_to_page(swp_offset_pfn(e)));
		/* Counters first: the put may free the folio and clear its anon state. */
		add_mm_counter(mm, mm_counter(folio), -(long)HPAGE_PMD_NR);
		if (is_migration_entry(e)) {
			folio = NULL; /* the migrator holds the reference */
		} else if (is_device_private_entry(e)) {
			folio_remove_rmap_pmd(folio);
		} else {
			uhmm_warn("zap: unexpected PMD entry %#llx", (unsigned long long)pmd_val(old));
			folio = NULL;
		}
	} else if (!is_huge_zero_pmd(mm, old)) {
		folio = page_folio(pfn_to_page(pmd_pfn(old)));
		folio_remove_rmap_pmd(folio);
		add_mm_counter(mm, MM_ANONPAGES, -(long)HPAGE_PMD_NR);
	}
	spin_unlock(ptl);
	if (folio)
		folio_put(folio);
	return true;
}

/**
 * is_huge_zero_folio() - @folio is some machine's huge zero folio.
 * Return: true for a large folio flagged PG_zero.
 */
bool is_huge_zero_folio(const struct folio *folio)
{
	return folio_test_large(folio) && folio_test_zero(folio);
}

/**
 * split_folio() - split a large anonymous folio into order-0 folios, as
 * Linux's split_folio() does: unmap every mapping through the reverse map
 * (migration entries; PMD mappings are split to PTEs first, and each
 * unmap invalidates mirrors with MMU_NOTIFY_CLEAR), freeze the refcount
 * at the caller's reference, split, and map each page back, where a page
 * that holds only zeroes gets the shared zero page instead and is freed
 * (RMP_USE_SHARED_ZEROPAGE, Linux 6.12+).
 * @folio: locked by the caller, who holds one reference.
 *
 * Needs mmap_lock of the caller's mm; no page-table lock.  On success the
 * caller still holds the lock and the reference of the order-0 folio of
 * @folio's first page (page_folio() of the head page); the other pages
 * are unlocked and hold only their mappings' references.
 *
 * Return: 0, or -EBUSY with the folio whole and mapped as before (not
 * anonymous, device memory, pinned, or referenced beyond its mappings).
 */
int split_folio(struct folio *folio)
{
	struct page *head = folio_head(folio);
	unsigned long nr = folio_nr_pages(folio);
	struct anon_vma *anon_vma;

	if (!folio_test_large(folio) || !folio_test_anon(folio) || folio_is_zone_device(folio) ||
	    folio_maybe_dma_pinned(folio))
		return -EBUSY;
	/*
	 * While the folio is unmapped only migration entries point at it.
	 * The caller's VMA (mmap_lock held) keeps the anon_vma linked; hold
	 * a reference anyway, as Linux's split does, so the
	 * remove_migration_ptes() walk does not depend on whose mm that is.
	 */
	anon_vma = folio_get_anon_vma(folio); /* NULL: nothing maps it any more */
	try_to_migrate(folio, TTU_SPLIT_HUGE_PMD);
	if (folio_mapped(folio) || !folio_ref_freeze(folio, 1)) {
		remove_migration_ptes(folio, folio, 0);
		goto busy;
	}
	if (__split_unmapped_folio(folio, 0)) {
		folio_ref_unfreeze(folio, 1);
		remove_migration_ptes(folio, folio, 0);
		goto busy;
	}
	/* Each order-0 folio starts with the one frozen reference, locked. */
	for (unsigned long i = 0; i < nr; i++) {
		struct folio *small = page_folio(head + i);

		folio_ref_unfreeze(small, 1);
		remove_migration_ptes(small, small, RMP_USE_SHARED_ZEROPAGE);
		if (i == 0)
			continue; /* the caller's */
		folio_unlock(small);
		folio_put(small); /* frees a page nothing maps any more */
	}
	if (anon_vma)
		put_anon_vma(anon_vma);
	return 0;
busy:
	if (anon_vma)
		put_anon_vma(anon_vma);
	return -EBUSY;
}

/**
 * try_split_folio_put() - split @folio if it can be locked without
 * waiting, then unlock it and drop the caller's reference (of the head
 * page's order-0 folio after a split).  What Linux's madvise and
 * migrate_vma_collect_pmd() do around split_folio() with the ptl dropped.
 * @folio: a large anonymous folio the caller holds a reference on.
 * Needs mmap_lock, no page-table lock.  Return: true when it was split.
 */
bool try_split_folio_put(struct folio *folio)
{
	bool split = false;

	if (folio_trylock(folio)) {
		split = !split_folio(folio);
		folio = page_folio(folio_page(folio, 0));
		folio_unlock(folio);
	}
	folio_put(folio);
	return split;
}
