// SPDX-License-Identifier: MIT
/*
 * mm/migrate.c - the parts of page migration the device migration code
 * (migrate_device.c) and the fault paths share, after Linux's mm/migrate.c:
 * waiting on migration entries, moving a folio's mapping and flags to its
 * new copy, and remove_migration_ptes(), which replaces migration entries
 * with mappings of the new folio (or of the old one again, when the
 * migration failed).
 *
 * Migration entries hold no reference and no mapcount; the migrator holds
 * the source folio locked and referenced from try_to_migrate() until
 * remove_migration_ptes() and the unlock.  A fault that meets one sleeps
 * until the folio is unlocked (folio_wait_locked_unlock()), then retries.
 */
#include "internal.h"
#include "uhmm/memremap.h"

/**
 * migration_entry_wait() - a fault found a migration entry at @addr.
 * @mm: the mm; mmap_lock held for reading.
 * @pmd: the PMD slot covering @addr (pointing to a PTE table).
 * @addr: the faulting address.
 *
 * Takes the PTE table's lock; if the entry is still a migration entry,
 * sleeps (without the ptl and without taking a reference) until its folio
 * is unlocked.  The caller then retries the access.
 */
void migration_entry_wait(struct mm_struct *mm, pmd_t *pmd, unsigned long addr)
{
	pthread_mutex_t *ptl;
	pte_t *pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	pte_t entry;

	if (!pte)
		return;
	entry = ptep_get(pte);
	if (!is_swap_pte(entry) || !is_migration_entry(pte_to_swp_entry(entry))) {
		spin_unlock(ptl);
		return;
	}
	folio_wait_locked_unlock(page_folio(pfn_to_page(swp_offset_pfn(pte_to_swp_entry(entry)))),
				 ptl);
}

/**
 * pmd_migration_entry_wait() - the same for a PMD migration entry.
 * @mm: the mm; mmap_lock held for reading.
 * @pmd: the PMD slot.
 *
 * Takes the PMD's lock; sleeps without it until the folio is unlocked.
 */
void pmd_migration_entry_wait(struct mm_struct *mm, pmd_t *pmd)
{
	pthread_mutex_t *ptl = pmd_lock(mm, pmd);
	pmd_t val = pmdp_get(pmd);

	if (!is_pmd_migration_entry(val)) {
		spin_unlock(ptl);
		return;
	}
	folio_wait_locked_unlock(page_folio(pfn_to_page(swp_offset_pfn(pmd_to_swp_entry(val)))),
				 ptl);
}

/**
 * folio_migrate_mapping() - move @folio's mapping, index and anon state to
 * @newfolio.
 * @mapping: the folio's page cache, or NULL for an anonymous folio.
 * @newfolio: the locked destination, not mapped, nobody else sees it.
 * @folio: the locked, unmapped source.
 * @extra_count: references the caller expects beyond its own one and the
 *               mappings' (e.g. 1 for the page a device fault handed in).
 *
 * The refcount check (Linux's folio_expected_ref_count() + extra + 1) is
 * what makes a migration fail when someone else, GUP for instance, holds
 * the folio.  @folio keeps its own mapping and index until it is freed,
 * so the reverse map still finds its migration entries.
 *
 * Return: 0; -EAGAIN when the refcount shows another user; -EOPNOTSUPP
 * for a page-cache folio (uhmm does not migrate page-cache folios yet);
 * -EINVAL for folios of different sizes.
 */
int folio_migrate_mapping(struct address_space *mapping, struct folio *newfolio,
			  struct folio *folio, int extra_count)
{
	int expected = folio_mapcount(folio) + extra_count + 1;

	if (folio_nr_pages(newfolio) != folio_nr_pages(folio))
		return -EINVAL;
	if (mapping)
		return -EOPNOTSUPP;
	if (folio_ref_count(folio) != expected)
		return -EAGAIN;
	newfolio->index = folio->index;
	__atomic_store_n(&newfolio->mapping, __atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELEASE);
	if (folio_test_swapbacked(folio))
		folio_set_swapbacked(newfolio);
	else
		folio_clear_swapbacked(newfolio);
	return 0;
}

/**
 * folio_migrate_flags() - copy the page flags a migration carries over.
 * @newfolio: the locked destination.
 * @folio: the locked source.
 *
 * Dirty, uptodate and referenced are copied; PG_anon_exclusive is not (the
 * migration entries carry it and remove_migration_ptes() sets it again).
 */
void folio_migrate_flags(struct folio *newfolio, struct folio *folio)
{
	if (folio_test_referenced(folio))
		folio_set_referenced(newfolio);
	if (folio_test_uptodate(folio))
		folio_set_uptodate(newfolio);
	if (folio_test_dirty(folio))
		folio_set_dirty(newfolio);
}

struct rmap_remove {
	struct folio *src;
	struct folio *dst;
	int flags;
};

/*
 * try_to_map_unused_to_zeropage() - after a split, map the shared zero page
 * instead of a subpage that holds only zeroes (Linux 6.12+, for anonymous
 * folios: an underused THP gives back its unused pages when it is split).
 * @m: the migration entry's mapping; its ptl is held.
 * @folio: the order-0 anonymous folio the entry names (locked).
 * Not in a VM_LOCKED VMA.  RSS drops by one page; the folio gets no
 * mapping or reference, so it is freed when its last reference goes.
 * Return: true when the zero page was mapped.
 */
static bool try_to_map_unused_to_zeropage(const struct folio_mapping *m, struct folio *folio)
{
	struct vm_area_struct *vma = m->vma;
	struct mm_struct *mm = vma->vm_mm;
	const uint64_t *words;

	if (folio_test_large(folio) || !folio_test_anon(folio) || folio_is_zone_device(folio) ||
	    (vma->vm_flags & VM_LOCKED))
		return false;
	words = machine_pfn_to_virt(mm->machine, folio_pfn(folio));
	for (size_t i = 0; i < PAGE_SIZE / sizeof(*words); i++)
		if (words[i])
			return false;
	set_pte(m->pte, pte_mkspecial(pfn_pte(mm->machine->zero_pfn,
					      vm_get_page_prot(vma->vm_flags) & ~_PAGE_RW)));
	add_mm_counter(mm, MM_ANONPAGES, -1);
	return true;
}

/* The anon rmap of @page of anonymous @dst after a migration entry of kind @e. */
static void remove_migration_rmap(struct folio *dst, struct page *page, swp_entry_t e, bool pmd)
{
	bool excl = !is_readable_migration_entry(e);

	if (!folio_test_anon(dst)) {
		folio_add_file_rmap_ptes(dst, page, 1);
		return;
	}
	if (pmd)
		folio_add_anon_rmap_pmd(dst);
	else
		folio_add_anon_rmap_ptes(dst, page, 1);
	for (unsigned long i = 0; i < (pmd ? HPAGE_PMD_NR : 1); i++)
		if (excl)
			SetPageAnonExclusive(page + i);
		else
			ClearPageAnonExclusive(page + i);
}

/* remove_migration_pte(): one migration entry of @src becomes a mapping of @dst (ptl held). */
static bool remove_migration_pte(const struct folio_mapping *m, void *arg)
{
	struct rmap_remove *r = arg;
	unsigned long idx = page_to_pfn(m->page) - folio_pfn(r->src);
	struct vm_area_struct *vma = m->vma;
	uint64_t prot = vm_get_page_prot(vma->vm_flags);
	bool dev_private = folio_is_device_private(r->dst);
	swp_entry_t e;
	bool write;

	if (m->pmd) {
		pmd_t old = pmdp_get(m->pmd), new;

		if (!is_pmd_migration_entry(old))
			return true;
		e = pmd_to_swp_entry(old);
		write = is_writable_migration_entry(e);
		if (folio_nr_pages(r->dst) != HPAGE_PMD_NR) {
			uhmm_warn("remove_migration_ptes: PMD entry at %#lx, destination pfn %#lx "
				  "is not PMD-sized", m->address, folio_pfn(r->dst));
			return true;
		}
		if (dev_private) {
			swp_entry_t d = write ? make_writable_device_private_entry(folio_pfn(r->dst))
					      : make_readable_device_private_entry(folio_pfn(r->dst));
			new = swp_entry_to_pmd(d);
			if (pmd_val(old) & _PAGE_SWP_SOFT_DIRTY)
				new = __pmd(pmd_val(new) | _PAGE_SWP_SOFT_DIRTY);
		} else {
			new = pmd_mkyoung(pfn_pmd(folio_pfn(r->dst), prot & ~_PAGE_RW));
			if (write)
				new = pmd_mkwrite(new);
			if (write && folio_test_dirty(r->dst))
				new = pmd_mkdirty(new);
			if (pmd_val(old) & _PAGE_SWP_SOFT_DIRTY)
				new = __pmd(pmd_val(new) | _PAGE_SOFT_DIRTY);
		}
		folio_get(r->dst);
		remove_migration_rmap(r->dst, folio_head(r->dst), e, true);
		set_pmd(m->pmd, new);
		return true;
	} else {
		pte_t old = ptep_get(m->pte), new;
		struct page *page = folio_page(r->dst, idx);

		if (!is_swap_pte(old) || !is_migration_entry(pte_to_swp_entry(old)))
			return true;
		if ((r->flags & RMP_USE_SHARED_ZEROPAGE) && r->src == r->dst &&
		    try_to_map_unused_to_zeropage(m, r->dst))
			return true;
		e = pte_to_swp_entry(old);
		write = is_writable_migration_entry(e);
		if (dev_private) {
			swp_entry_t d = write ? make_writable_device_private_entry(page_to_pfn(page))
					      : make_readable_device_private_entry(page_to_pfn(page));
			new = swp_entry_to_pte(d);
			if (pte_swp_soft_dirty(old))
				new = pte_swp_mksoft_dirty(new);
		} else {
			new = pte_mkyoung(pfn_pte(page_to_pfn(page), prot & ~_PAGE_RW));
			if (write)
				new = pte_mkwrite(new);
			if (write && folio_test_dirty(r->dst))
				new = pte_mkdirty(new);
			if (pte_swp_soft_dirty(old))
				new = __pte(pte_val(new) | _PAGE_SOFT_DIRTY);
		}
		folio_get(r->dst);
		remove_migration_rmap(r->dst, page, e, false);
		set_pte(m->pte, new);
	}
	return true;
}

/**
 * remove_migration_ptes() - replace the migration entries of @src with
 * mappings of @dst.
 * @src: the locked source folio whose pages the migration entries name.
 * @dst: the locked destination of the same size, whose mapping and index
 *       folio_migrate_mapping() set (or @src itself after a failure).
 * @flags: RMP_LOCKED is accepted (uhmm takes the rmap lock itself);
 *         RMP_USE_SHARED_ZEROPAGE (a split: @src == @dst, order 0) maps
 *         the zero page where the page holds only zeroes
 *         (try_to_map_unused_to_zeropage()).
 *
 * Walks @src's reverse map (its anon_vma or page cache, which the caller
 * keeps alive: mmap_lock held or folio_get_anon_vma()) and takes each
 * entry's page-table lock.  A @dst in system RAM or device-coherent memory
 * is mapped by present entries (writable for a writable migration entry,
 * read-only otherwise); a device-private @dst by device-private entries
 * (writable kept).  Every new mapping takes a reference and a mapcount of
 * @dst; writable and readable-exclusive entries make the page
 * anon-exclusive.  RSS does not change (migration entries were counted).
 */
void remove_migration_ptes(struct folio *src, struct folio *dst, int flags)
{
	struct rmap_remove r = { .src = src, .dst = dst, .flags = flags };

	if (folio_nr_pages(src) != folio_nr_pages(dst)) {
		uhmm_warn("remove_migration_ptes: pfn %#lx and %#lx differ in size", folio_pfn(src),
			  folio_pfn(dst));
		return;
	}
	folio_walk_migration_entries(src, remove_migration_pte, &r);
}
