// SPDX-License-Identifier: MIT
/*
 * mm/rmap.c - the reverse map of anonymous memory: anon_vma, and the
 * mapcount bookkeeping each page-table entry that maps a folio carries.
 *
 * Mapcounts follow Linux: a page's _mapcount counts the PTEs that map it; a
 * large folio's _entire_mapcount counts PMD mappings, _large_mapcount all
 * mappings, and _nr_pages_mapped the pages mapped by at least one PTE.  All
 * are -1 based except _nr_pages_mapped.  The caller holds the page-table
 * lock of the entry it changes; the counters are atomics so that lockless
 * readers (folio_mapcount()) see whole values.
 */
#include <stdlib.h>

#include "internal.h"

/**
 * anon_vma_prepare() - make sure @vma has an anon_vma before it maps an
 * anonymous folio.
 * @vma: the VMA; mmap_lock held (for reading is enough).
 *
 * Return: 0, or -ENOMEM.
 */
int anon_vma_prepare(struct vm_area_struct *vma)
{
	struct anon_vma *anon_vma;
	struct anon_vma *expected = NULL;

	if (__atomic_load_n(&vma->anon_vma, __ATOMIC_ACQUIRE))
		return 0;
	anon_vma = malloc(sizeof(*anon_vma));
	if (!anon_vma)
		return -ENOMEM;
	anon_vma->root = anon_vma;
	atomic_init(&anon_vma->refcount, 1);
	/* Two faults under mmap_lock for reading may race to install one. */
	if (!__atomic_compare_exchange_n(&vma->anon_vma, &expected, anon_vma, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		free(anon_vma);
	return 0;
}

/**
 * put_anon_vma() - drop a reference; the last one frees the anon_vma.
 * @anon_vma: the anon_vma, or NULL.
 */
void put_anon_vma(struct anon_vma *anon_vma)
{
	if (anon_vma && atomic_fetch_sub(&anon_vma->refcount, 1) == 1)
		free(anon_vma);
}

/**
 * folio_add_new_anon_rmap() - map a folio that nobody else can see yet.
 * @folio: a new folio; the caller's reference becomes the mapping's.
 * @vma: the VMA it is mapped in (it has an anon_vma).
 * @addr: the address of the folio's first page.
 * @pmd_mapped: mapped by one PMD (else by one PTE per page).
 *
 * Sets mapping and index, PG_swapbacked and PG_uptodate, marks every page
 * anon-exclusive and sets the mapcounts for one mapping.
 */
void folio_add_new_anon_rmap(struct folio *folio, struct vm_area_struct *vma, unsigned long addr,
			     bool pmd_mapped)
{
	unsigned long nr = folio_nr_pages(folio);

	folio->index = linear_page_index(vma, addr);
	struct anon_vma *anon_vma = __atomic_load_n(&vma->anon_vma, __ATOMIC_ACQUIRE);

	__atomic_store_n(&folio->mapping, (void *)((unsigned long)anon_vma | PAGE_MAPPING_ANON),
			 __ATOMIC_RELEASE);
	folio_set_swapbacked(folio);
	folio_set_uptodate(folio);
	for (unsigned long i = 0; i < nr; i++)
		SetPageAnonExclusive(folio_page(folio, i));
	if (!folio_test_large(folio)) {
		atomic_store(&folio->_mapcount, 0);
		return;
	}
	if (pmd_mapped) {
		atomic_store(&folio->_entire_mapcount, 0);
		atomic_store(&folio->_large_mapcount, 0);
		return;
	}
	for (unsigned long i = 0; i < nr; i++)
		atomic_store(&folio_page(folio, i)->_mapcount, 0);
	atomic_store(&folio->_large_mapcount, (int)nr - 1);
	atomic_store(&folio->_nr_pages_mapped, (int)nr);
}

void folio_add_anon_rmap_ptes(struct folio *folio, struct page *page, int nr)
{
	for (int i = 0; i < nr; i++) {
		int old = atomic_fetch_add(&page[i]._mapcount, 1);

		if (folio_test_large(folio) && old == -1)
			atomic_fetch_add(&folio->_nr_pages_mapped, 1);
	}
	if (folio_test_large(folio))
		atomic_fetch_add(&folio->_large_mapcount, nr);
}

void folio_add_anon_rmap_pmd(struct folio *folio)
{
	atomic_fetch_add(&folio->_entire_mapcount, 1);
	atomic_fetch_add(&folio->_large_mapcount, 1);
}

/**
 * folio_remove_rmap_ptes() - drop @nr PTE mappings of consecutive pages.
 * @folio: the folio of @page.
 * @page: the first page.
 * @nr: how many.
 *
 * A large folio that is left partly mapped goes to the deferred-split
 * queue in Linux; uhmm keeps it whole until its last mapping goes.
 */
void folio_remove_rmap_ptes(struct folio *folio, struct page *page, int nr)
{
	for (int i = 0; i < nr; i++) {
		int old = atomic_fetch_sub(&page[i]._mapcount, 1);

		if (old < 0)
			uhmm_warn("rmap: page %#lx mapcount underflow", page_to_pfn(&page[i]));
		if (folio_test_large(folio) && old == 0)
			atomic_fetch_sub(&folio->_nr_pages_mapped, 1);
	}
	if (folio_test_large(folio))
		atomic_fetch_sub(&folio->_large_mapcount, nr);
}

void folio_remove_rmap_pmd(struct folio *folio)
{
	if (atomic_fetch_sub(&folio->_entire_mapcount, 1) < 0)
		uhmm_warn("rmap: folio %#lx entire mapcount underflow", folio_pfn(folio));
	atomic_fetch_sub(&folio->_large_mapcount, 1);
}

void folio_convert_pmd_to_ptes_rmap(struct folio *folio)
{
	unsigned long nr = folio_nr_pages(folio);

	for (unsigned long i = 0; i < nr; i++)
		if (atomic_fetch_add(&folio_page(folio, i)->_mapcount, 1) == -1)
			atomic_fetch_add(&folio->_nr_pages_mapped, 1);
	atomic_fetch_sub(&folio->_entire_mapcount, 1);
	atomic_fetch_add(&folio->_large_mapcount, (int)nr - 1);
}
