// SPDX-License-Identifier: MIT
/*
 * mm/memory.c - page faults and unmapping: handle_mm_fault() and its
 * anonymous, zero-page, file and write-protect paths; zap_page_range() and
 * the file reverse-map zap unmap_mapping_range().
 *
 * Faults run with mmap_lock held for reading.  A new page is allocated and
 * filled before the page-table lock is taken; under the lock the entry is
 * checked again and, if another thread got there first, the page is freed
 * and the fault reports success so that the caller walks again.
 */
#include <string.h>

#include "internal.h"
#include "uhmm/memremap.h"

int vm_fault_to_errno(vm_fault_t ret)
{
	if (ret & VM_FAULT_OOM)
		return -ENOMEM;
	if (ret & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV))
		return -EFAULT;
	return 0;
}

/* ---- unmapping ---- */

/* What a zap walk carries: the VMA, and the filter of a file's reverse-map zap. */
struct zap_walk {
	struct vm_area_struct *vma;
	const struct zap_details *details;
};

/* should_zap_folio(): does @details leave the entry mapping @folio alone? */
static bool zap_skips(const struct zap_details *details, struct folio *folio)
{
	if (!details)
		return false;
	if (details->single_folio && folio != details->single_folio)
		return true;
	return !details->even_cows && folio_test_anon(folio);
}

/*
 * zap_nonpresent_ptes(): a device-private entry is a mapping (rmap, RSS and
 * a reference of the device folio, whose last put reaches the driver's
 * folio_free); a migration entry only counts in RSS (the migrator holds the
 * folio).  Other kinds (swap, device-exclusive) are not uhmm's yet.
 */
static int zap_nonpresent_pte(struct zap_walk *zw, struct mm_struct *mm, pte_t *pte, pte_t entry,
			      unsigned long addr)
{
	swp_entry_t e = pte_to_swp_entry(entry);
	struct folio *folio;
	struct page *page;

	if (!is_device_private_entry(e) && !is_migration_entry(e)) {
		uhmm_warn("zap: unexpected non-present PTE %#llx at %#lx",
			  (unsigned long long)pte_val(entry), addr);
		return 0;
	}
	page = pfn_to_page(swp_offset_pfn(e));
	folio = page_folio(page);
	if (zap_skips(zw->details, folio))
		return 0;
	ptep_get_and_clear(pte);
	add_mm_counter(mm, mm_counter(folio), -1);
	if (is_device_private_entry(e)) {
		folio_remove_rmap_ptes(folio, page, 1);
		folio_put(folio);
	}
	return 0;
}

/* Clear one PTE (its table's ptl held), dropping rmap, RSS and its reference. */
static int zap_pte_entry(pte_t *pte, unsigned long addr, unsigned long next, struct mm_walk *walk)
{
	struct zap_walk *zw = walk->private;
	struct mm_struct *mm = walk->mm;
	pte_t entry = ptep_get(pte);
	struct page *page;
	struct folio *folio;

	(void)next;
	if (pte_none(entry))
		return 0;
	if (!pte_present(entry))
		return zap_nonpresent_pte(zw, mm, pte, entry, addr);
	if (zw->details) {
		page = vm_normal_page(mm, entry);
		if (!page || zap_skips(zw->details, page_folio(page)))
			return 0; /* the zero page, or a page this zap keeps */
	}
	entry = ptep_get_and_clear(pte);
	if (pte_pfn(entry) == mm->machine->zero_pfn)
		return 0;
	page = pfn_to_page(pte_pfn(entry));
	folio = page_folio(page);
	if (pte_dirty(entry) && !folio_test_anon(folio))
		folio_set_dirty(folio);
	add_mm_counter(mm, mm_counter(folio), -1);
	folio_remove_rmap_ptes(folio, page, 1);
	folio_put(folio);
	return 0;
}

/* A PMD leaf inside the range goes whole; one that straddles its end is split first. */
static int zap_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next, struct mm_walk *walk)
{
	struct vm_area_struct *vma = ((struct zap_walk *)walk->private)->vma;
	pmd_t val = pmdp_get(pmd);

	if (pmd_leaf(val) || is_swap_pmd(val)) {
		if (is_swap_pmd(val) && ((struct zap_walk *)walk->private)->details &&
		    zap_skips(((struct zap_walk *)walk->private)->details,
			      page_folio(pfn_to_page(swp_offset_pfn(pmd_to_swp_entry(val))))))
			return WALK_SKIP_PTES;
		if (IS_ALIGNED(addr, PMD_SIZE) && next - addr == PMD_SIZE)
			return zap_huge_pmd(vma, pmd, addr) ? WALK_SKIP_PTES : 0;
		split_huge_pmd(vma, pmd, addr);
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
static void zap_page_range_details(struct vm_area_struct *vma, unsigned long start,
				   unsigned long end, const struct zap_details *details)
{
	static const struct mm_walk_ops ops = {
		.pmd_entry = zap_pmd_entry,
		.pte_entry = zap_pte_entry,
	};
	struct zap_walk zw = { .vma = vma, .details = details };

	walk_page_range(vma->vm_mm, start, end, &ops, &zw);
}

void zap_page_range(struct vm_area_struct *vma, unsigned long start, unsigned long end)
{
	/*
	 * hugetlb dispatch here and in zap_page_range_single(), under
	 * mmap_lock: a file's reverse-map zap reads no vm_flags (and never
	 * meets a hugetlb VMA: hugetlb files are not truncated or punched).
	 */
	if (is_vm_hugetlb_page(vma)) {
		unmap_hugepage_range(vma, start, end);
		return;
	}
	zap_page_range_details(vma, start, end, NULL);
}

/*
 * zap_vma_range_notify() - zap [@start, @end) of @vma inside one
 * MMU_NOTIFY_CLEAR invalidation of its mm, as Linux's
 * zap_page_range_single_batched() does.
 */
static void zap_vma_range_notify(struct vm_area_struct *vma, unsigned long start,
				 unsigned long end, const struct zap_details *details)
{
	struct mmu_notifier_range range;

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, vma->vm_mm, start, end);
	mmu_notifier_invalidate_range_start(&range);
	zap_page_range_details(vma, start, end, details);
	mmu_notifier_invalidate_range_end(&range);
}

/**
 * zap_page_range_single() - zap_page_range() inside an MMU_NOTIFY_CLEAR
 * invalidation of [@start, @end) (MADV_DONTNEED).  mmap_lock held.
 */
void zap_page_range_single(struct vm_area_struct *vma, unsigned long start, unsigned long end)
{
	if (is_vm_hugetlb_page(vma)) {
		struct mmu_notifier_range range;

		mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, vma->vm_mm, start, end);
		mmu_notifier_invalidate_range_start(&range);
		unmap_hugepage_range(vma, start, end);
		mmu_notifier_invalidate_range_end(&range);
		return;
	}
	zap_vma_range_notify(vma, start, end, NULL);
}

/*
 * Zap file pages [@first, @last] (inclusive) of @mapping in every VMA on
 * its i_mmap; i_mmap_rwsem held for reading.
 */
static void unmap_mapping_range_tree(struct address_space *mapping, unsigned long first,
				     unsigned long last, const struct zap_details *details)
{
	struct vm_area_struct *vma;

	list_for_each_entry(vma, &mapping->i_mmap, shared) {
		unsigned long vstart = vma->vm_pgoff;
		unsigned long vlast = vstart + ((vma->vm_end - vma->vm_start) >> PAGE_SHIFT) - 1;
		unsigned long from, to;

		if (vlast < first || vstart > last)
			continue;
		from = first > vstart ? first : vstart;
		to = last < vlast ? last : vlast;
		zap_vma_range_notify(vma, vma->vm_start + ((from - vstart) << PAGE_SHIFT),
				     vma->vm_start + ((to - vstart + 1) << PAGE_SHIFT), details);
	}
}

/**
 * unmap_mapping_range() - unmap file pages from every mm that maps them.
 * @mapping: the page cache.
 * @first: the first page offset.
 * @nr: how many pages; 0 for every page from @first on.
 * @even_cows: also zap the anonymous copies private mappings made of those
 *             pages (truncate); without it only page-cache pages go (hole
 *             punch).
 *
 * Takes i_mmap_rwsem for reading and each entry's page-table lock; takes
 * no mmap_lock (see the lock notes in internal.h for why the tables stay).
 */
void unmap_mapping_range(struct address_space *mapping, unsigned long first, unsigned long nr,
			 bool even_cows)
{
	struct zap_details details = { .even_cows = even_cows };
	unsigned long last = first + nr - 1;

	if (!nr || last < first)
		last = ~0UL;
	i_mmap_lock_read(mapping);
	unmap_mapping_range_tree(mapping, first, last, &details);
	i_mmap_unlock_read(mapping);
}

/**
 * unmap_mapping_folio() - zap every page-table entry that maps @folio.
 * @folio: a locked page-cache folio.
 *
 * Private copies are left alone.  Takes i_mmap_rwsem for reading.
 */
void unmap_mapping_folio(struct folio *folio)
{
	struct address_space *mapping = __atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE);
	struct zap_details details = { .single_folio = folio };

	if (!mapping || folio_test_anon(folio))
		return;
	i_mmap_lock_read(mapping);
	unmap_mapping_range_tree(mapping, folio->index, folio->index + folio_nr_pages(folio) - 1,
				 &details);
	i_mmap_unlock_read(mapping);
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
	struct mmu_notifier_range range;
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
	/* The old page goes from the mm: mirrors must drop it first. */
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, addr & PAGE_MASK,
				(addr & PAGE_MASK) + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!pte || pte_val(ptep_get(pte)) != pte_val(orig)) {
		if (pte)
			spin_unlock(ptl);
		mmu_notifier_invalidate_range_end(&range);
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
		if (!folio_test_anon(old_folio)) {
			/* A private copy of a page-cache page: file -> anon. */
			add_mm_counter(mm, mm_counter_file(old_folio), -1);
			add_mm_counter(mm, MM_ANONPAGES, 1);
		}
		folio_remove_rmap_ptes(old_folio, old_page, 1);
		folio_put(old_folio); /* the mapping's reference */
	} else {
		add_mm_counter(mm, MM_ANONPAGES, 1);
	}
	spin_unlock(ptl);
	mmu_notifier_invalidate_range_end(&range);
	if (old_folio)
		folio_put(old_folio); /* ours */
	return 0;
}

/*
 * do_wp_page() - write fault on a present, read-only PTE of a writable VMA.
 * Called with the ptl held; drops it.  A shared mapping just becomes
 * writable (wp_page_shared(): shmem and ramfs need no write notification);
 * a private one reuses an exclusive anonymous page in place and copies
 * anything else, page-cache pages included.
 */
static vm_fault_t do_wp_page(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
			     pte_t *pte, pthread_mutex_t *ptl)
{
	pte_t orig = ptep_get(pte);
	struct page *page;
	struct folio *folio;
	bool reuse = false;

	if (vma->vm_flags & VM_SHARED) {
		page = vm_normal_page(vma->vm_mm, orig);
		if (page)
			folio_set_dirty(page_folio(page));
		set_pte(pte, pte_mkyoung(pte_mkdirty(pte_mkwrite(orig))));
		spin_unlock(ptl);
		return 0;
	}

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

/* ---- file faults ---- */

/*
 * __do_fault() - ask the VMA's vm_ops for the folio behind @addr.
 * Return: 0 with vmf->folio locked and referenced, or an error bit.
 */
static vm_fault_t __do_fault(struct vm_area_struct *vma, unsigned long addr, unsigned int flags,
			     struct vm_fault *vmf)
{
	*vmf = (struct vm_fault){ .vma = vma, .address = addr & PAGE_MASK,
				  .pgoff = linear_page_index(vma, addr & PAGE_MASK),
				  .flags = flags };
	if (!vma->vm_ops || !vma->vm_ops->fault)
		return VM_FAULT_SIGBUS;
	return vma->vm_ops->fault(vmf);
}

/*
 * finish_fault() - map the locked page-cache @folio at @addr (set_pte_range()):
 * read-only in a private mapping, writable (and dirty for a write) in a
 * shared writable one.  The caller's reference becomes the mapping's; the
 * folio is unlocked.  Another thread that mapped the PTE first wins.
 */
static vm_fault_t finish_fault(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
			       unsigned int flags, struct folio *folio)
{
	struct mm_struct *mm = vma->vm_mm;
	pte_t entry = pte_mkyoung(pfn_pte(folio_pfn(folio), vm_get_page_prot(vma->vm_flags)));
	pthread_mutex_t *ptl;
	pte_t *pte;

	if ((flags & FAULT_FLAG_WRITE) && (vma->vm_flags & VM_SHARED)) {
		entry = pte_mkdirty(pte_mkwrite(entry));
		folio_set_dirty(folio);
	}
	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!pte || !pte_none(ptep_get(pte))) {
		if (pte)
			spin_unlock(ptl);
		folio_unlock(folio);
		folio_put(folio);
		return pte ? 0 : VM_FAULT_RETRY;
	}
	folio_add_file_rmap_ptes(folio, folio_head(folio), 1);
	add_mm_counter(mm, mm_counter_file(folio), 1);
	set_pte(pte, entry);
	spin_unlock(ptl);
	folio_unlock(folio);
	return 0;
}

/*
 * do_cow_fault() - write fault on an empty PTE of a private file mapping:
 * copy the page-cache page into a new anonymous page and map that.  The
 * copy is mapped while the page-cache folio is still locked, so a truncate
 * that drops the folio afterwards finds the copy with its second
 * unmap_mapping_range() pass.
 */
static vm_fault_t do_cow_fault(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
			       unsigned int flags)
{
	struct mm_struct *mm = vma->vm_mm;
	struct folio *new, *folio;
	struct vm_fault vmf;
	pthread_mutex_t *ptl;
	vm_fault_t ret;
	pte_t *pte;

	if (anon_vma_prepare(vma))
		return VM_FAULT_OOM;
	new = folio_alloc(mm->machine, GFP_HIGHUSER_MOVABLE, 0);
	if (!new)
		return VM_FAULT_OOM;
	ret = __do_fault(vma, addr, flags, &vmf);
	if (ret) {
		folio_put(new);
		return ret;
	}
	folio = vmf.folio;
	memcpy(folio_address(new), folio_address(folio), PAGE_SIZE);
	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!pte || !pte_none(ptep_get(pte))) {
		if (pte)
			spin_unlock(ptl);
		folio_put(new);
		ret = pte ? 0 : VM_FAULT_RETRY;
	} else {
		folio_add_new_anon_rmap(new, vma, addr, false);
		add_mm_counter(mm, MM_ANONPAGES, 1);
		set_pte(pte, mk_anon_write_pte(vma, folio_pfn(new)));
		spin_unlock(ptl);
	}
	folio_unlock(folio);
	folio_put(folio);
	return ret;
}

/*
 * do_fault() - a fault on an empty PTE of a file VMA: a read maps the
 * page-cache folio (read-only when private), a write to a shared mapping
 * maps it writable, a write to a private one copies it (do_cow_fault()).
 * Past the end of the file: VM_FAULT_SIGBUS.
 */
static vm_fault_t do_fault(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
			   unsigned int flags)
{
	struct vm_fault vmf;
	vm_fault_t ret;

	if ((flags & FAULT_FLAG_WRITE) && !(vma->vm_flags & VM_SHARED))
		return do_cow_fault(vma, pmd, addr, flags);
	ret = __do_fault(vma, addr, flags, &vmf);
	if (ret)
		return ret;
	return finish_fault(vma, pmd, addr, flags, vmf.folio);
}

/*
 * device_private_migrate_to_ram() - the common end of a fault on a
 * device-private entry, PTE or PMD: with @ptl held and vmf->page the
 * entry's page, take a reference and trylock the folio (a locked folio is
 * being migrated: drop the ptl, wait for the unlock and return 0 so the
 * access retries, as Linux does), drop the ptl and call the driver's
 * migrate_to_ram().  Return: 0 (retry) or what migrate_to_ram returned.
 */
static vm_fault_t device_private_migrate_to_ram(struct vm_fault *vmf, pthread_mutex_t *ptl)
{
	struct folio *folio = page_folio(vmf->page);
	vm_fault_t ret;

	/* The entry holds a reference, so this one cannot fail under the ptl. */
	folio_get(folio);
	if (!folio_trylock(folio)) {
		folio_put(folio);
		folio_wait_locked_unlock(folio, ptl);
		return 0;
	}
	spin_unlock(ptl);
	ret = page_pgmap(vmf->page)->ops->migrate_to_ram(vmf);
	/* vmf->page is still locked, even if the driver split its folio. */
	folio_unlock(page_folio(vmf->page));
	put_page(vmf->page);
	return ret;
}

/*
 * do_swap_page(), for the entries uhmm has: a migration entry waits for
 * the migration to finish; a device-private entry asks the driver to
 * migrate the page back (ops->migrate_to_ram) with the device page
 * referenced and trylocked, as Linux does (a page that is locked, by a
 * migration for instance, is waited for and the fault retried).  Called
 * with the PTE's ptl held; drops it.  Return: 0 (retry the access) or what
 * migrate_to_ram returned; VM_FAULT_SIGBUS for entries uhmm does not
 * handle (swap, hwpoison, device-exclusive).
 */
static vm_fault_t do_swap_page(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
			       unsigned int flags, pte_t *pte, pthread_mutex_t *ptl)
{
	pte_t orig = ptep_get(pte);
	swp_entry_t e = pte_to_swp_entry(orig);
	struct vm_fault vmf;

	if (is_migration_entry(e)) {
		folio_wait_locked_unlock(page_folio(pfn_to_page(swp_offset_pfn(e))), ptl);
		return 0;
	}
	if (!is_device_private_entry(e)) {
		spin_unlock(ptl);
		uhmm_warn("fault: unexpected non-present PTE %#llx at %#lx",
			  (unsigned long long)pte_val(orig), addr);
		return VM_FAULT_SIGBUS;
	}
	vmf = (struct vm_fault){ .vma = vma, .address = addr & PAGE_MASK,
				 .pgoff = linear_page_index(vma, addr & PAGE_MASK), .flags = flags,
				 .page = pfn_to_page(swp_offset_pfn(e)), .pmd = pmd, .pte = pte,
				 .orig_pte = orig };
	return device_private_migrate_to_ram(&vmf, ptl);
}

/**
 * do_huge_pmd_device_private() - fault on a device-private PMD entry.
 * @vma: the VMA; mmap_lock held for reading.
 * @pmd: the PMD slot.
 * @addr: the faulting address.
 * @flags: FAULT_FLAG_*.
 *
 * As do_swap_page(), at PMD level: vmf->page is the folio's head and
 * vmf->pte is NULL, so the driver migrates the whole folio.
 * Return: 0 (retry) or what migrate_to_ram returned.
 */
vm_fault_t do_huge_pmd_device_private(struct vm_area_struct *vma, pmd_t *pmd, unsigned long addr,
				      unsigned int flags)
{
	pthread_mutex_t *ptl = pmd_lock(vma->vm_mm, pmd);
	pmd_t val = pmdp_get(pmd);
	struct vm_fault vmf;

	if (!is_pmd_device_private_entry(val)) {
		spin_unlock(ptl);
		return 0;
	}
	vmf = (struct vm_fault){ .vma = vma, .address = addr & PAGE_MASK,
				 .pgoff = linear_page_index(vma, addr & PAGE_MASK), .flags = flags,
				 .page = pfn_to_page(swp_offset_pfn(pmd_to_swp_entry(val))),
				 .pmd = pmd, .pte = NULL, .orig_pte = __pte(pmd_val(val)) };
	return device_private_migrate_to_ram(&vmf, ptl);
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
			return do_fault(vma, pmd, addr, flags);
		return do_anonymous_page(vma, pmd, addr, flags);
	}
	if (!pte_present(entry))
		return do_swap_page(vma, pmd, addr, flags, pte, ptl);
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
 * when the VMA forbids the access, VM_FAULT_SIGBUS for a page of a file
 * mapping past the end of the file, VM_FAULT_OOM when no memory is left.
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
	if (is_vm_hugetlb_page(vma))
		return hugetlb_fault(vma, addr, flags);
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
	} else if (is_pmd_migration_entry(val)) {
		pmd_migration_entry_wait(mm, pmd);
		return 0;
	} else if (is_pmd_device_private_entry(val)) {
		return do_huge_pmd_device_private(vma, pmd, addr, flags);
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

/**
 * vm_insert_page() - map a driver's page into a user VMA (Linux's).
 * @vma: the VMA; mmap_lock held for writing (from the driver's mmap).
 * @addr: a page-aligned address inside @vma.
 * @page: an order-0 page of system RAM the driver allocated, neither
 *        anonymous nor in a page cache, with a reference.
 *
 * The PTE takes a reference of its own and a file-style rmap count, is
 * accounted in MM_FILEPAGES, and uses the VMA's page protection (read-only
 * in a private mapping: a write copies the page, as in Linux).  The VMA
 * becomes VM_MIXEDMAP.  uhmm takes order-0 pages only (Linux also takes
 * pages of larger kernel allocations).
 *
 * Return: 0, -EFAULT (@addr outside @vma), -EINVAL (a free, anonymous,
 * page-cache, large, zero or device page, or a VM_PFNMAP VMA), -EBUSY
 * (the PTE is not empty), -ENOMEM.
 */
int vm_insert_page(struct vm_area_struct *vma, unsigned long addr, struct page *page)
{
	struct mm_struct *mm = vma->vm_mm;
	struct folio *folio = page_folio(page);
	pthread_mutex_t *ptl;
	pmd_t *pmd;
	pte_t *pte;

	if (addr < vma->vm_start || addr >= vma->vm_end || offset_in_page(addr))
		return -EFAULT;
	if (!page_ref_count(page) || folio_test_anon(folio) || folio->mapping ||
	    folio_test_large(folio) || folio_test_zero(folio) || page_machine(page) != mm->machine ||
	    (vma->vm_flags & VM_PFNMAP))
		return -EINVAL;
	vma->vm_flags |= VM_MIXEDMAP;
	pmd = pmd_off_alloc(mm, addr);
	if (!pmd || pte_alloc(mm, pmd) < 0)
		return -ENOMEM;
	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!pte)
		return -EBUSY; /* a huge PMD is there */
	if (!pte_none(ptep_get(pte))) {
		spin_unlock(ptl);
		return -EBUSY;
	}
	folio_get(folio);
	add_mm_counter(mm, mm_counter_file(folio), 1);
	folio_add_file_rmap_ptes(folio, page, 1);
	set_pte(pte, pfn_pte(page_to_pfn(page), vm_get_page_prot(vma->vm_flags)));
	spin_unlock(ptl);
	return 0;
}
