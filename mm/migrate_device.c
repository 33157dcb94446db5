// SPDX-License-Identifier: MIT
/*
 * mm/migrate_device.c - migrate_vma_*() and migrate_device_*(): move the
 * pages of a range of an anonymous VMA (or a set of device pfns) between
 * system RAM and device memory, as Linux's mm/migrate_device.c does.
 *
 * A migration is three calls, all under the mm's mmap_lock (read):
 *
 *   migrate_vma_setup()    collect: walk the range under an
 *                          MMU_NOTIFY_MIGRATE invalidation; each selected
 *                          page is referenced, locked and its PTE replaced
 *                          by a migration entry; holes (and the zero page)
 *                          become MIGRATE entries without a page;
 *                          unmap: try_to_migrate() the mappings other mms
 *                          (or other addresses) still have, then refuse
 *                          pages that someone else references (a pin, a GUP
 *                          reference): those are restored at once.
 *   (the driver)           allocates a locked destination per MIGRATE
 *                          entry, copies, fills dst[].
 *   migrate_vma_pages()    commits: holes get the new page inserted into the
 *                          page table; pages have their mapping and flags
 *                          moved to the new page (folio_migrate_mapping()).
 *   migrate_vma_finalize() remove_migration_ptes(): each migration entry
 *                          becomes a mapping of the new page, or of the old
 *                          one for entries that did not migrate; then both
 *                          are unlocked and their extra references dropped.
 *
 * The fault page (migrate_vma.fault_page, from migrate_to_ram()) is locked
 * and referenced by the fault path: it is never locked, unlocked or put
 * for that reference here, and folio_migrate_mapping() expects its extra
 * reference.
 *
 * Entry encoding is include/uhmm/migrate.h's: (pfn << MIGRATE_PFN_SHIFT) |
 * flags; a hole is MIGRATE without VALID.
 *
 * THP: this file handles every 4 KiB path.  Migration of whole THPs (and
 * of large device folios) as one compound entry comes later: with or
 * without MIGRATE_VMA_SELECT_COMPOUND, a PMD-mapped THP is collected by
 * splitting the PMD and then the folio (split_folio(), through the
 * reverse map, which gives zero-filled pages the shared zero page),
 * a PMD-sized hole yields 512 4 KiB hole entries, and the huge zero page
 * is split into zero-page PTEs, which are holes.  MIGRATE_PFN_COMPOUND is
 * never set by this file, and a compound dst entry is refused.
 */
#include <string.h>

#include "internal.h"
#include "uhmm/gup.h"
#include "uhmm/memremap.h"
#include "uhmm/migrate.h"
#include "uhmm/mmu_notifier.h"

/* ---- collection ---- */

/* migrate_vma_collect_skip(): entries for [@start, @end) that do not migrate. */
static void migrate_vma_collect_skip(struct migrate_vma *migrate, unsigned long start,
				     unsigned long end)
{
	for (unsigned long addr = start; addr < end; addr += PAGE_SIZE) {
		migrate->src[migrate->npages] = 0;
		migrate->dst[migrate->npages] = 0;
		migrate->npages++;
	}
}

/*
 * migrate_vma_collect_hole(): nothing mapped in [@start, @end).  Only an
 * anonymous VMA may be populated, one 4 KiB hole entry per page (a
 * PMD-sized hole too: compound holes come with THP device migration).
 */
static void migrate_vma_collect_hole(struct migrate_vma *migrate, unsigned long start,
				     unsigned long end)
{
	if (!vma_is_anonymous(migrate->vma)) {
		migrate_vma_collect_skip(migrate, start, end);
		return;
	}
	for (unsigned long addr = start; addr < end; addr += PAGE_SIZE) {
		migrate->src[migrate->npages] = MIGRATE_PFN_MIGRATE;
		migrate->dst[migrate->npages] = 0;
		migrate->npages++;
		migrate->cpages++;
	}
}

/*
 * folio_try_share_anon_rmap_pte(): an exclusive anonymous page is about to
 * lose its PTE: it may no longer be exclusive afterwards.  A page that may
 * be pinned (DMA) cannot be shared.  Device-private pages cannot be pinned.
 * Return: 0, or -EBUSY (nothing changed).
 */
static int folio_try_share_anon_rmap_pte(struct folio *folio, struct page *page)
{
	if (!folio_is_device_private(folio) && folio_maybe_dma_pinned(folio))
		return -EBUSY;
	ClearPageAnonExclusive(page);
	return 0;
}

/*
 * migrate_vma_collect_pte(): one PTE, its table's ptl held.  Appends one
 * entry to src/dst.  A selected page is referenced, locked (unless it is
 * the fault page) and replaced by a migration entry; its PTE mapping's
 * rmap and reference are dropped, as an unmap would.
 *
 * A page of a large folio appends nothing: *@split gets the folio,
 * referenced, for the caller to split with the ptl dropped (split_folio())
 * before it looks at the PTE again.
 */
static void migrate_vma_collect_pte(struct migrate_vma *migrate, pte_t *ptep, unsigned long addr,
				    struct folio **split)
{
	struct vm_area_struct *vma = migrate->vma;
	struct mm_struct *mm = vma->vm_mm;
	struct folio *fault_folio = migrate->fault_page ? page_folio(migrate->fault_page) : NULL;
	unsigned long mpfn = 0;
	bool anon_exclusive;
	struct folio *folio;
	struct page *page;
	swp_entry_t entry;
	pte_t pte, swp_pte;

	pte = ptep_get(ptep);
	if (pte_none(pte)) {
		migrate_vma_collect_hole(migrate, addr, addr + PAGE_SIZE);
		return;
	}
	if (!pte_present(pte)) {
		struct dev_pagemap *pgmap;

		/* Only device-private entries of the caller's device. */
		entry = pte_to_swp_entry(pte);
		if (!is_device_private_entry(entry))
			goto next;
		page = pfn_to_page(swp_offset_pfn(entry));
		pgmap = page_pgmap(page);
		if (!(migrate->flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) || !pgmap ||
		    pgmap->owner != migrate->pgmap_owner)
			goto next;
		folio = page_folio(page);
		if (folio_test_large(folio))
			goto next; /* large device folios: with THP device migration */
		mpfn = migrate_pfn(page_to_pfn(page)) | MIGRATE_PFN_MIGRATE;
		if (is_writable_device_private_entry(entry))
			mpfn |= MIGRATE_PFN_WRITE;
	} else {
		unsigned long pfn = pte_pfn(pte);

		if (pfn == mm->machine->zero_pfn) {
			/* The zero page is a hole: the driver clears the new page. */
			if (migrate->flags & MIGRATE_VMA_SELECT_SYSTEM) {
				mpfn = MIGRATE_PFN_MIGRATE;
				migrate->cpages++;
			}
			goto next;
		}
		page = vm_normal_page(mm, pte);
		if (!page)
			goto next;
		if (!is_zone_device_page(page)) {
			if (!(migrate->flags & MIGRATE_VMA_SELECT_SYSTEM))
				goto next;
		} else if (is_device_coherent_page(page)) {
			if (!(migrate->flags & MIGRATE_VMA_SELECT_DEVICE_COHERENT) ||
			    page_pgmap(page)->owner != migrate->pgmap_owner)
				goto next;
		} else {
			goto next; /* no other kind of device page is mapped by a present PTE */
		}
		folio = page_folio(page);
		if (folio_test_large(folio)) {
			if (!folio_test_anon(folio) || folio_is_zone_device(folio))
				goto next; /* large page-cache and device folios stay */
			/* Split with the ptl dropped, then look at this PTE again. */
			folio_get(folio);
			*split = folio;
			return;
		}
		mpfn = migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE;
		if (pte_write(pte))
			mpfn |= MIGRATE_PFN_WRITE;
	}

	/* A page nobody can find through the reverse map cannot be migrated. */
	if (!__atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE)) {
		mpfn = 0;
		goto next;
	}

	/*
	 * The reference pins the folio against being freed; the lock keeps
	 * everyone else's migration (and split) away until finalize.  The fault
	 * folio is locked already by the fault path.
	 */
	folio_get(folio);
	if (folio != fault_folio && !folio_trylock(folio)) {
		folio_put(folio);
		mpfn = 0;
		goto next;
	}

	anon_exclusive = folio_test_anon(folio) && PageAnonExclusive(page);
	pte = ptep_get_and_clear(ptep);
	if (anon_exclusive && folio_try_share_anon_rmap_pte(folio, page)) {
		set_pte(ptep, pte); /* pinned: leave it mapped */
		if (folio != fault_folio)
			folio_unlock(folio);
		folio_put(folio);
		mpfn = 0;
		goto next;
	}
	migrate->cpages++;

	/* The dirty bit lives on in the folio while the PTE is gone. */
	if (pte_present(pte) && pte_dirty(pte))
		folio_set_dirty(folio);

	if (mpfn & MIGRATE_PFN_WRITE)
		entry = make_writable_migration_entry(page_to_pfn(page));
	else if (anon_exclusive)
		entry = make_readable_exclusive_migration_entry(page_to_pfn(page));
	else
		entry = make_readable_migration_entry(page_to_pfn(page));
	/*
	 * uhmm's migration entries have no young/dirty offset bits (Linux's
	 * !migration_entry_supports_ad() case): dirty went to the folio above,
	 * and the restored PTE is young.  Soft-dirty is kept.
	 */
	swp_pte = swp_entry_to_pte(entry);
	if (pte_present(pte) ? (pte_val(pte) & _PAGE_SOFT_DIRTY) : pte_swp_soft_dirty(pte))
		swp_pte = pte_swp_mksoft_dirty(swp_pte);
	set_pte(ptep, swp_pte);

	/* Like an unmap: the PTE's rmap and reference go. */
	folio_remove_rmap_ptes(folio, page, 1);
	folio_put(folio);
next:
	migrate->dst[migrate->npages] = 0;
	migrate->src[migrate->npages++] = mpfn;
}

/*
 * migrate_vma_collect(): walk [start, end) of the VMA, one entry per page,
 * under an MMU_NOTIFY_MIGRATE invalidation owned by pgmap_owner.
 *
 * uhmm passes MMU_NOTIFIER_RANGE_BLOCKABLE (its core ranges always are);
 * Linux passes 0 here.
 */
static void migrate_vma_collect(struct migrate_vma *migrate)
{
	struct vm_area_struct *vma = migrate->vma;
	struct mm_struct *mm = vma->vm_mm;
	struct folio *fault_folio = migrate->fault_page ? page_folio(migrate->fault_page) : NULL;
	struct mmu_notifier_range range;
	unsigned long addr = migrate->start, end = migrate->end;
	struct folio *split = NULL;

	mmu_notifier_range_init_owner(&range, MMU_NOTIFY_MIGRATE, MMU_NOTIFIER_RANGE_BLOCKABLE, mm,
				      migrate->start, migrate->end, migrate->pgmap_owner);
	mmu_notifier_invalidate_range_start(&range);

	while (addr < end) {
		unsigned long next = ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE;
		pthread_mutex_t *ptl;
		pte_t *ptep;
		pmd_t *pmd;
		pmd_t val;

		if (next > end || next < addr)
			next = end;
		pmd = pmd_off(mm, addr);
		if (!pmd) {
			/* No PMD table: a hole up to the next PUD boundary. */
			next = ALIGN_DOWN(addr, PUD_SIZE) + PUD_SIZE;
			if (next > end || next < addr)
				next = end;
			migrate_vma_collect_hole(migrate, addr, next);
			addr = next;
			continue;
		}
again:
		val = pmdp_get(pmd);
		if (pmd_none(val)) {
			migrate_vma_collect_hole(migrate, addr, next);
			addr = next;
			continue;
		}
		if (pmd_leaf(val)) {
			/*
			 * A THP or the huge zero page.  Without SELECT_SYSTEM it
			 * stays.  Otherwise split the PMD (the huge zero page
			 * becomes zero-page PTEs, i.e. holes; a THP becomes a
			 * PTE-mapped folio that the PTE walk splits): compound
			 * collection comes with THP device migration.
			 */
			if (!(migrate->flags & MIGRATE_VMA_SELECT_SYSTEM)) {
				migrate_vma_collect_skip(migrate, addr, next);
				addr = next;
				continue;
			}
			split_huge_pmd(vma, pmd, addr);
			goto again;
		}
		if (is_swap_pmd(val)) {
			/* PMD migration and device-private entries: THP device migration. */
			migrate_vma_collect_skip(migrate, addr, next);
			addr = next;
			continue;
		}
		ptep = pte_offset_map_lock(mm, pmd, addr, &ptl);
		if (!ptep)
			goto again;
		for (; addr < next; addr += PAGE_SIZE, ptep++) {
			migrate_vma_collect_pte(migrate, ptep, addr, &split);
			if (split)
				break;
		}
		spin_unlock(ptl);
		if (split) {
			/*
			 * Split the large folio at addr (it stays referenced across
			 * the unlocked window), then look at addr again; if it
			 * cannot be split, the page is skipped.
			 */
			bool split_done = false;

			if (split == fault_folio)
				folio_put(split);
			else
				split_done = try_split_folio_put(split);
			if (!split_done) {
				migrate_vma_collect_skip(migrate, addr, addr + PAGE_SIZE);
				addr += PAGE_SIZE;
			}
			split = NULL;
		}
	}

	mmu_notifier_invalidate_range_end(&range);
	migrate->end = migrate->start + (migrate->npages << PAGE_SHIFT);
}

/* ---- unmap ---- */

/*
 * migrate_vma_check_page(): may @page's folio migrate?  It must hold no
 * reference beyond its mappings and the ones migration accounts for: ours,
 * the fault path's for the fault page, the one ZONE_DEVICE pages carry in
 * Linux's accounting, and the page cache's for a file page.
 */
static bool migrate_vma_check_page(struct page *page, struct page *fault_page)
{
	struct folio *folio = page_folio(page);
	int extra = 1 + (page == fault_page);

	if (folio_is_zone_device(folio))
		extra++;
	if (!folio_test_anon(folio) && __atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE))
		extra += 1 + test_page_flag(folio_head(folio), PG_private);
	return folio_ref_count(folio) - extra <= folio_mapcount(folio);
}

/*
 * The anon_vma reference of a collected folio.  Once try_to_migrate() has
 * turned every mapping into a migration entry the folio is no longer
 * mapped, and nothing else keeps its anon_vma alive: migrate_device_range()
 * and migrate_device_pfns() hold no mmap_lock, and even migrate_vma_*()
 * holds only its own mm's, not that of a forked child whose mappings are
 * replaced here.  If those mms munmap or exit before finalize, the
 * anon_vma would be freed under remove_migration_ptes().  So, as Linux's
 * migrators do with folio_get_anon_vma(), a reference is taken before
 * try_to_migrate() and dropped once the migration entries are gone.
 *
 * uhmm differs from Linux in how it remembers that: the pfn-array encoding
 * is public and has no spare bit, so the source folio (locked from
 * collection to finalize) carries PG_migrate_anon_vma on its head while
 * the reference is held.  folio_migrate_mapping() copies the anon_vma to
 * the destination and leaves it in the source's mapping too, and the
 * locked, referenced source cannot be freed or re-anchored meanwhile, so
 * the reference is always found through the source.  The audit checks that
 * only a locked folio carries the flag.
 */
static void migrate_device_get_anon_vma(struct folio *folio)
{
	struct page *head = folio_head(folio);

	if (test_page_flag(head, PG_migrate_anon_vma))
		return;
	if (folio_get_anon_vma(folio))
		set_page_flag(head, PG_migrate_anon_vma);
}

static void migrate_device_put_anon_vma(struct folio *folio)
{
	struct page *head = folio_head(folio);
	unsigned long mapping;

	if (!test_page_flag(head, PG_migrate_anon_vma))
		return;
	clear_page_flag(head, PG_migrate_anon_vma);
	mapping = (unsigned long)__atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE);
	put_anon_vma((struct anon_vma *)(mapping & ~PAGE_MAPPING_ANON));
}

/*
 * migrate_device_unmap(): for every collected page, replace the mappings
 * it still has elsewhere with migration entries and check it can migrate;
 * restore (and drop from src) those that cannot.
 * Return: the entries still marked MIGRATE (holes included).
 *
 * uhmm has no LRU: where Linux isolates a system folio (trading the
 * collection reference for the isolation one) uhmm keeps the collection
 * reference; the counts are the same.
 */
static unsigned long migrate_device_unmap(unsigned long *src_pfns, unsigned long npages,
					  struct page *fault_page)
{
	struct folio *fault_folio = fault_page ? page_folio(fault_page) : NULL;
	unsigned long unmapped = 0, restore = 0;

	for (unsigned long i = 0; i < npages; i++) {
		struct page *page = migrate_pfn_to_page(src_pfns[i]);
		struct folio *folio;

		if (!page) {
			if (src_pfns[i] & MIGRATE_PFN_MIGRATE)
				unmapped++;
			continue;
		}
		folio = page_folio(page);
		if (folio_mapped(folio)) {
			migrate_device_get_anon_vma(folio);
			try_to_migrate(folio, 0);
		}
		if (folio_mapped(folio) || !migrate_vma_check_page(page, fault_page)) {
			src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
			restore++;
			continue;
		}
		unmapped++;
	}

	for (unsigned long i = 0; i < npages && restore; i++) {
		struct page *page = migrate_pfn_to_page(src_pfns[i]);
		struct folio *folio;

		if (!page || (src_pfns[i] & MIGRATE_PFN_MIGRATE))
			continue;
		folio = page_folio(page);
		remove_migration_ptes(folio, folio, 0);
		migrate_device_put_anon_vma(folio);
		src_pfns[i] = 0;
		if (folio != fault_folio)
			folio_unlock(folio);
		folio_put(folio);
		restore--;
	}
	return unmapped;
}

static void migrate_vma_unmap(struct migrate_vma *migrate)
{
	migrate->cpages = migrate_device_unmap(migrate->src, migrate->npages, migrate->fault_page);
}

/**
 * migrate_vma_setup() - collect, lock and unmap the pages of a range.
 * @args: vma, start, end, src, dst, flags, pgmap_owner and fault_page.
 *
 * Needs the VMA's mm's mmap_lock held for reading (and, with fault_page,
 * that page's folio locked by the fault path).  start and end are rounded
 * down to pages, as Linux does.  On return each src[] entry is a locked,
 * unmapped page to migrate (VALID | MIGRATE, and WRITE if it was mapped
 * writable), a hole to fill (MIGRATE only), or 0; dst[] is zeroed; npages
 * entries were filled, cpages of them will migrate, and end is
 * start + npages pages.
 *
 * Return: 0 (possibly with cpages 0), or -EINVAL with nothing changed: no
 * vma, a hugetlb or VM_SPECIAL vma, an empty range, a range not inside the
 * vma, src or dst NULL, a fault_page that is not a locked device-private
 * page.
 */
int migrate_vma_setup(struct migrate_vma *args)
{
	long nr_pages = (long)(args->end - args->start) >> PAGE_SHIFT;
	unsigned long start = args->start & PAGE_MASK, end = args->end & PAGE_MASK;
	struct vm_area_struct *vma = args->vma;

	if (!vma || (vma->vm_flags & (VM_HUGETLB | VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP)))
		return -EINVAL;
	if (nr_pages <= 0)
		return -EINVAL;
	if (start < vma->vm_start || start >= vma->vm_end)
		return -EINVAL;
	if (end <= vma->vm_start || end > vma->vm_end)
		return -EINVAL;
	if (!args->src || !args->dst)
		return -EINVAL;
	if (args->fault_page && !is_device_private_page(args->fault_page))
		return -EINVAL;
	if (args->fault_page && !folio_test_locked(page_folio(args->fault_page)))
		return -EINVAL;

	args->start = start;
	args->end = end;
	memset(args->src, 0, sizeof(*args->src) * (size_t)nr_pages);
	args->cpages = 0;
	args->npages = 0;

	migrate_vma_collect(args);
	if (args->cpages)
		migrate_vma_unmap(args);
	/* The collected pages are locked and unmapped: their bytes are stable. */
	return 0;
}

/* ---- commit ---- */

/*
 * migrate_vma_insert_page(): map the driver's new page @page at @addr, a
 * hole collected by setup (empty, or the zero page).  Anonymous VMAs only;
 * page tables are allocated as needed.  If anything changed there since
 * collection (a fault filled the hole) or an allocation fails, the entry
 * does not migrate: MIGRATE is cleared in *@src.
 */
static void migrate_vma_insert_page(struct migrate_vma *migrate, unsigned long addr,
				    struct page *page, unsigned long *src)
{
	struct vm_area_struct *vma = migrate->vma;
	struct mm_struct *mm = vma->vm_mm;
	struct folio *folio = page_folio(page);
	pthread_mutex_t *ptl;
	pte_t *ptep, entry, orig;
	pmd_t *pmdp;
	int err;

	/* Only anonymous memory can be populated. */
	if (!vma_is_anonymous(vma))
		goto abort;
	if (folio_test_large(folio))
		goto abort; /* a compound destination: THP device migration */
	pmdp = pmd_off_alloc(mm, addr);
	if (!pmdp)
		goto abort;
	if (pmd_leaf(pmdp_get(pmdp))) {
		/* The huge zero page is split; a THP that appeared meanwhile is not a hole. */
		if (!is_huge_zero_pfn(mm->machine, pmd_pfn(pmdp_get(pmdp))))
			goto abort;
		split_huge_pmd(vma, pmdp, addr);
	}
	err = pte_alloc(mm, pmdp);
	if (err)
		goto abort; /* -ENOMEM, or a PMD leaf or entry: not a hole any more */
	if (anon_vma_prepare(vma))
		goto abort;

	if (folio_is_device_private(folio)) {
		swp_entry_t swp = (vma->vm_flags & VM_WRITE) ?
			make_writable_device_private_entry(page_to_pfn(page)) :
			make_readable_device_private_entry(page_to_pfn(page));

		entry = swp_entry_to_pte(swp);
	} else {
		if (folio_is_zone_device(folio) && !folio_is_device_coherent(folio)) {
			uhmm_warn("migrate_vma: unsupported ZONE_DEVICE page type at pfn %#lx",
				  page_to_pfn(page));
			goto abort;
		}
		entry = pfn_pte(page_to_pfn(page), vm_get_page_prot(vma->vm_flags));
		if (vma->vm_flags & VM_WRITE)
			entry = pte_mkwrite(pte_mkdirty(entry));
		entry = pte_mkyoung(entry);
	}

	ptep = pte_offset_map_lock(mm, pmdp, addr, &ptl);
	if (!ptep)
		goto abort;
	orig = ptep_get(ptep);
	if (pte_present(orig) ? pte_pfn(orig) != mm->machine->zero_pfn : !pte_none(orig)) {
		spin_unlock(ptl);
		goto abort;
	}
	add_mm_counter(mm, MM_ANONPAGES, 1);
	folio_add_new_anon_rmap(folio, vma, addr, false);
	folio_get(folio); /* the mapping's; the driver's goes at finalize */
	set_pte(ptep, entry); /* replaces the zero page, which holds no reference */
	spin_unlock(ptl);
	*src = MIGRATE_PFN_MIGRATE;
	return;
abort:
	*src &= ~MIGRATE_PFN_MIGRATE;
}

/* folio_mapping(): the page cache of a file folio; NULL for anon (uhmm has no swap cache). */
static struct address_space *folio_mapping(struct folio *folio)
{
	if (folio_test_anon(folio))
		return NULL;
	return __atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE);
}

static void __migrate_device_pages(unsigned long *src_pfns, unsigned long *dst_pfns,
				   unsigned long npages, struct migrate_vma *migrate)
{
	struct mmu_notifier_range range;
	bool notified = false;

	for (unsigned long i = 0; i < npages; i++) {
		struct page *newpage = migrate_pfn_to_page(dst_pfns[i]);
		struct page *page = migrate_pfn_to_page(src_pfns[i]);
		struct address_space *mapping;
		struct folio *folio, *newfolio;
		int extra_cnt = 0;

		if (!newpage) {
			src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
			continue;
		}
		if (dst_pfns[i] & MIGRATE_PFN_COMPOUND) {
			/* Compound destinations come with THP device migration. */
			src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
			continue;
		}
		if (!page) {
			unsigned long addr;

			if (!(src_pfns[i] & MIGRATE_PFN_MIGRATE))
				continue;
			if (!migrate) {
				/* Holes only come from a VMA walk. */
				src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
				continue;
			}
			addr = migrate->start + (i << PAGE_SHIFT);
			if (!notified) {
				notified = true;
				mmu_notifier_range_init_owner(&range, MMU_NOTIFY_MIGRATE,
							      MMU_NOTIFIER_RANGE_BLOCKABLE,
							      migrate->vma->vm_mm, addr, migrate->end,
							      migrate->pgmap_owner);
				mmu_notifier_invalidate_range_start(&range);
			}
			migrate_vma_insert_page(migrate, addr, newpage, &src_pfns[i]);
			continue;
		}
		if (!(src_pfns[i] & MIGRATE_PFN_MIGRATE))
			continue;

		folio = page_folio(page);
		newfolio = page_folio(newpage);
		mapping = folio_mapping(folio);
		if (folio_is_device_private(newfolio) || folio_is_device_coherent(newfolio)) {
			/*
			 * Device memory only takes anonymous pages; a page-cache page
			 * stays (Linux also frees a swap cache here; uhmm has none).
			 */
			if (mapping) {
				src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
				continue;
			}
		} else if (folio_is_zone_device(newfolio)) {
			/* Other ZONE_DEVICE types cannot be migration targets. */
			src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
			continue;
		}
		if (migrate && migrate->fault_page == page)
			extra_cnt = 1;
		if (folio_migrate_mapping(mapping, newfolio, folio, extra_cnt))
			src_pfns[i] &= ~MIGRATE_PFN_MIGRATE;
		else
			folio_migrate_flags(newfolio, folio);
	}
	if (notified)
		mmu_notifier_invalidate_range_end(&range);
}

/**
 * migrate_device_pages() - migrate_vma_pages() for entries that
 * migrate_device_range() or migrate_device_pfns() collected.
 * @src_pfns: the collected entries; MIGRATE is cleared where the page
 *            does not migrate.
 * @dst_pfns: the driver's locked destinations (0: do not migrate).
 * @npages: entries.
 *
 * Sources and destinations locked.  Return: nothing; check src MIGRATE.
 */
void migrate_device_pages(unsigned long *src_pfns, unsigned long *dst_pfns, unsigned long npages)
{
	__migrate_device_pages(src_pfns, dst_pfns, npages, NULL);
}

/**
 * migrate_vma_pages() - the commit point of a migration.
 * @migrate: as migrate_vma_setup() left it, with dst[] filled.
 *
 * mmap_lock held for reading.  Entries without a destination, or whose
 * page cannot move (another reference appeared, a page-cache page going to
 * device memory), lose MIGRATE; holes get the new page mapped.  After it
 * the driver may update its own page tables for the entries still marked
 * MIGRATE, then calls migrate_vma_finalize().
 */
void migrate_vma_pages(struct migrate_vma *migrate)
{
	__migrate_device_pages(migrate->src, migrate->dst, migrate->npages, migrate);
}

/* ---- finalize ---- */

static void __migrate_device_finalize(unsigned long *src_pfns, unsigned long *dst_pfns,
				      unsigned long npages, struct page *fault_page)
{
	struct folio *fault_folio = fault_page ? page_folio(fault_page) : NULL;

	for (unsigned long i = 0; i < npages; i++) {
		struct page *newpage = migrate_pfn_to_page(dst_pfns[i]);
		struct page *page = migrate_pfn_to_page(src_pfns[i]);
		struct folio *src, *dst = newpage ? page_folio(newpage) : NULL;

		if (!page) {
			/* A hole: the inserted page keeps its mapping's reference. */
			if (dst) {
				folio_unlock(dst);
				folio_put(dst);
			}
			continue;
		}
		src = page_folio(page);
		if (!(src_pfns[i] & MIGRATE_PFN_MIGRATE) || !dst) {
			if (dst) {
				folio_unlock(dst);
				folio_put(dst);
			}
			dst = src; /* restore */
		}
		remove_migration_ptes(src, dst, 0);
		/* The entries are gone (or an exit zapped them): the anon_vma may go. */
		migrate_device_put_anon_vma(src);
		if (src != fault_folio)
			folio_unlock(src);
		folio_put(src);
		if (dst != src) {
			folio_unlock(dst);
			folio_put(dst);
		}
	}
}

/**
 * migrate_device_finalize() - migrate_vma_finalize() for the pfn-based path.
 * @src_pfns: as migrate_device_pages() left them.
 * @dst_pfns: the destinations.
 * @npages: entries.
 */
void migrate_device_finalize(unsigned long *src_pfns, unsigned long *dst_pfns,
			     unsigned long npages)
{
	__migrate_device_finalize(src_pfns, dst_pfns, npages, NULL);
}

/**
 * migrate_vma_finalize() - end a migration.
 * @migrate: as migrate_vma_pages() left it.
 *
 * mmap_lock held for reading; the driver's copies are complete.  Every
 * migration entry becomes a mapping of the new page where the entry
 * migrated, of the old page where it did not; both pages are unlocked and
 * the migration's references dropped (a migrated source usually frees).
 * The fault page stays locked, and the fault path's reference stays.
 */
void migrate_vma_finalize(struct migrate_vma *migrate)
{
	__migrate_device_finalize(migrate->src, migrate->dst, migrate->npages,
				  migrate->fault_page);
}

/* ---- collection by pfn (eviction) ---- */

/*
 * migrate_device_pfn_lock(): reference and lock the page at @pfn for an
 * eviction.  Return: the entry (migrate_pfn | MIGRATE), or 0 for a free
 * page, a page someone else has locked, or a large folio (THP device
 * migration comes later).
 */
static unsigned long migrate_device_pfn_lock(unsigned long pfn)
{
	struct page *page;
	struct folio *folio;

	/* uhmm only: Linux trusts the driver's pfns; one without a page is skipped. */
	if (!pfn_valid(pfn))
		return 0;
	page = pfn_to_page(pfn);
	folio = page_folio(page);
	if (folio_test_large(folio))
		return 0;
	if (!folio_try_get(folio))
		return 0;
	if (!folio_trylock(folio)) {
		folio_put(folio);
		return 0;
	}
	return migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE;
}

/**
 * migrate_device_range() - collect device pages for migration without a
 * VMA (driver unload, device memory reclaim).
 * @src_pfns: out: one entry per pfn: migrate_pfn(pfn) | MIGRATE for each
 *            page that was in use and could be referenced and locked,
 *            else 0.
 * @start: the first device pfn.
 * @npages: pfns.
 *
 * No lock needed; takes folio locks, the anon_vma lock and page-table
 * locks.  Every collected page is unmapped from every mm through the
 * reverse map (migration entries); pages that cannot be (referenced
 * elsewhere) are restored and their entry is 0.  The anon_vma of each
 * collected anonymous folio is referenced until migrate_device_finalize(),
 * so the mms may munmap or exit meanwhile.  Continue with
 * migrate_device_pages() and migrate_device_finalize().
 *
 * Return: 0.
 */
int migrate_device_range(unsigned long *src_pfns, unsigned long start, unsigned long npages)
{
	for (unsigned long i = 0; i < npages; i++)
		src_pfns[i] = migrate_device_pfn_lock(start + i);
	migrate_device_unmap(src_pfns, npages, NULL);
	return 0;
}

/**
 * migrate_device_pfns() - migrate_device_range() for pfns that need not be
 * contiguous.
 * @src_pfns: in: a raw pfn per entry; out: as for migrate_device_range().
 * @npages: entries.
 *
 * Return: 0.
 */
int migrate_device_pfns(unsigned long *src_pfns, unsigned long npages)
{
	for (unsigned long i = 0; i < npages; i++)
		src_pfns[i] = migrate_device_pfn_lock(src_pfns[i]);
	migrate_device_unmap(src_pfns, npages, NULL);
	return 0;
}
