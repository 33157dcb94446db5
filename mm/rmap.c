// SPDX-License-Identifier: MIT
/*
 * mm/rmap.c - the reverse map: anon_vma for anonymous memory, the file's
 * i_mmap list for page-cache folios, and the mapcount bookkeeping each
 * page-table entry that maps a folio carries.
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
#include "uhmm/gup.h"
#include "uhmm/mmu_notifier.h"

static struct anon_vma *anon_vma_alloc(void)
{
	struct anon_vma *anon_vma = calloc(1, sizeof(*anon_vma));

	if (!anon_vma)
		return NULL;
	anon_vma->root = anon_vma;
	anon_vma->parent = anon_vma;
	atomic_init(&anon_vma->refcount, 1);
	pthread_rwlock_init(&anon_vma->rwsem, NULL);
	INIT_LIST_HEAD(&anon_vma->head);
	return anon_vma;
}

/**
 * put_anon_vma() - drop a reference; the last one frees the anon_vma and
 * drops the reference it held on its root.
 * @anon_vma: the anon_vma, or NULL.
 */
void put_anon_vma(struct anon_vma *anon_vma)
{
	struct anon_vma *root;

	if (!anon_vma || atomic_fetch_sub(&anon_vma->refcount, 1) != 1)
		return;
	root = anon_vma->root;
	pthread_rwlock_destroy(&anon_vma->rwsem);
	free(anon_vma);
	if (root != anon_vma)
		put_anon_vma(root);
}

void anon_vma_lock_write(struct anon_vma *anon_vma)
{
	pthread_rwlock_wrlock(&anon_vma->root->rwsem);
}

void anon_vma_unlock_write(struct anon_vma *anon_vma)
{
	pthread_rwlock_unlock(&anon_vma->root->rwsem);
}

/* Link @vma to @anon_vma through @avc; the root's rwsem is taken inside. */
static void anon_vma_chain_link(struct vm_area_struct *vma, struct anon_vma_chain *avc,
				struct anon_vma *anon_vma)
{
	avc->vma = vma;
	avc->anon_vma = anon_vma;
	list_add(&avc->same_vma, &vma->anon_vma_chain);
	anon_vma_lock_write(anon_vma);
	list_add_tail(&avc->same_anon_vma, &anon_vma->head);
	anon_vma_unlock_write(anon_vma);
}

/**
 * anon_vma_prepare() - make sure @vma has an anon_vma before it maps an
 * anonymous folio.
 * @vma: the VMA; mmap_lock held (for reading is enough: racing faults
 *       serialise on mm->page_table_lock, as in Linux).
 *
 * Return: 0, or -ENOMEM.
 */
/* anon_vma_compatible(): could @a and @b (a right before b) share an anon_vma? */
static bool anon_vma_compatible(const struct vm_area_struct *a, const struct vm_area_struct *b)
{
	return a->vm_end == b->vm_start && a->vm_file == b->vm_file &&
	       !((a->vm_flags ^ b->vm_flags) & ~VM_ACCESS_FLAGS) &&
	       b->vm_pgoff == a->vm_pgoff + ((b->vm_start - a->vm_start) >> PAGE_SHIFT);
}

/*
 * find_mergeable_anon_vma() - the anon_vma of a neighbour of @vma (the next
 * VMA first, then the previous) that @vma may share: the two differ at most
 * in their access flags, and the neighbour's anon_vma is its only one (not
 * shared through fork).  Sharing it lets the two VMAs merge again later
 * (an mprotect that makes their flags equal), as in Linux; uhmm used to
 * give each VMA its own, so they never merged (found by the differential
 * suite).  mmap_lock held; mm->page_table_lock held.
 */
static struct anon_vma *find_mergeable_anon_vma(struct vm_area_struct *vma)
{
	struct mm_struct *mm = vma->vm_mm;
	size_t i = vma_index(mm, vma->vm_start);
	struct vm_area_struct *next, *prev;

	if (i >= mm->mm_mt.nr || mm->mm_mt.vmas[i] != vma)
		return NULL;
	next = i + 1 < mm->mm_mt.nr ? mm->mm_mt.vmas[i + 1] : NULL;
	if (next && anon_vma_compatible(vma, next) && next->anon_vma &&
	    list_is_singular(&next->anon_vma_chain))
		return next->anon_vma;
	prev = i ? mm->mm_mt.vmas[i - 1] : NULL;
	if (prev && anon_vma_compatible(prev, vma) && prev->anon_vma &&
	    list_is_singular(&prev->anon_vma_chain))
		return prev->anon_vma;
	return NULL;
}

int anon_vma_prepare(struct vm_area_struct *vma)
{
	struct mm_struct *mm = vma->vm_mm;
	struct anon_vma *anon_vma;
	struct anon_vma_chain *avc;

	if (__atomic_load_n(&vma->anon_vma, __ATOMIC_ACQUIRE))
		return 0;
	anon_vma = anon_vma_alloc();
	avc = malloc(sizeof(*avc));
	if (!anon_vma || !avc) {
		free(avc);
		put_anon_vma(anon_vma);
		return -ENOMEM;
	}
	pthread_mutex_lock(&mm->page_table_lock);
	if (!vma->anon_vma) {
		struct anon_vma *shared = find_mergeable_anon_vma(vma);

		if (shared) {
			put_anon_vma(anon_vma); /* not needed after all */
			anon_vma = shared;
		}
		anon_vma_chain_link(vma, avc, anon_vma);
		anon_vma->num_active_vmas++;
		__atomic_store_n(&vma->anon_vma, anon_vma, __ATOMIC_RELEASE);
		anon_vma = NULL;
		avc = NULL;
	}
	pthread_mutex_unlock(&mm->page_table_lock);
	free(avc);
	put_anon_vma(anon_vma);
	return 0;
}

/**
 * anon_vma_clone() - link @dst to every anon_vma @src is linked to, and
 * give it @src's anon_vma (split_vma, mremap, a merge that keeps @dst).
 * @dst: a VMA with no anon_vma links yet; mmap_lock held for writing.
 * @src: the VMA it copies.
 *
 * Return: 0, or -ENOMEM with @dst left unlinked.
 */
int anon_vma_clone(struct vm_area_struct *dst, struct vm_area_struct *src)
{
	struct anon_vma_chain *src_avc, *avc;

	list_for_each_entry(src_avc, &src->anon_vma_chain, same_vma) {
		avc = malloc(sizeof(*avc));
		if (!avc) {
			dst->anon_vma = NULL;
			unlink_anon_vmas(dst);
			return -ENOMEM;
		}
		anon_vma_chain_link(dst, avc, src_avc->anon_vma);
	}
	dst->anon_vma = src->anon_vma;
	if (dst->anon_vma)
		dst->anon_vma->num_active_vmas++;
	return 0;
}

/**
 * anon_vma_fork() - give a child VMA the parent's anon_vma links plus an
 * anon_vma of its own, a child of the parent's (dup_mmap()).
 * @vma: the child's copy of @pvma, with no links yet; mmap_lock held.
 * @pvma: the parent's VMA.
 *
 * Folios the parent mapped keep pointing to the parent's anon_vma, which
 * now also lists @vma; folios the child faults in later point to the new
 * anon_vma, which the parent's VMAs are not linked to.
 *
 * Return: 0, or -ENOMEM with @vma left unlinked.
 */
int anon_vma_fork(struct vm_area_struct *vma, struct vm_area_struct *pvma)
{
	struct anon_vma *anon_vma;
	struct anon_vma_chain *avc;

	if (!pvma->anon_vma)
		return 0;
	vma->anon_vma = NULL;
	if (anon_vma_clone(vma, pvma))
		return -ENOMEM;
	anon_vma = anon_vma_alloc();
	avc = malloc(sizeof(*avc));
	if (!anon_vma || !avc) {
		free(avc);
		put_anon_vma(anon_vma);
		unlink_anon_vmas(vma); /* also undoes the clone's num_active_vmas */
		return -ENOMEM;
	}
	/* The previous clone made us an active VMA of the parent's anon_vma: undo. */
	pvma->anon_vma->num_active_vmas--;
	anon_vma->root = pvma->anon_vma->root;
	anon_vma->parent = pvma->anon_vma;
	atomic_fetch_add(&anon_vma->root->refcount, 1);
	anon_vma_lock_write(anon_vma);
	anon_vma->parent->num_children++;
	anon_vma_unlock_write(anon_vma);
	vma->anon_vma = anon_vma;
	anon_vma->num_active_vmas++;
	anon_vma_chain_link(vma, avc, anon_vma);
	return 0;
}

/**
 * unlink_anon_vmas() - drop every anon_vma link of @vma (it is going away
 * or lost a merge); anon_vmas left with no link are freed.
 * @vma: the VMA; mmap_lock held for writing; its pages already zapped.
 */
void unlink_anon_vmas(struct vm_area_struct *vma)
{
	struct anon_vma_chain *avc, *next;

	if (vma->anon_vma)
		vma->anon_vma->num_active_vmas--;
	list_for_each_entry_safe(avc, next, &vma->anon_vma_chain, same_vma) {
		struct anon_vma *anon_vma = avc->anon_vma;
		bool unused;

		anon_vma_lock_write(anon_vma);
		list_del_init(&avc->same_anon_vma);
		unused = list_empty(&anon_vma->head);
		if (unused && anon_vma->parent != anon_vma)
			anon_vma->parent->num_children--;
		anon_vma_unlock_write(anon_vma);
		list_del_init(&avc->same_vma);
		free(avc);
		if (unused)
			put_anon_vma(anon_vma); /* its "alive while linked" reference */
	}
	vma->anon_vma = NULL;
}

/**
 * vma_address() - where @vma maps page @pgoff of an anonymous folio.
 * Return: the address, or -EFAULT when @vma does not cover it.
 */
long vma_address(const struct vm_area_struct *vma, unsigned long pgoff)
{
	unsigned long addr;

	if (pgoff < vma->vm_pgoff)
		return -EFAULT;
	addr = vma->vm_start + ((pgoff - vma->vm_pgoff) << PAGE_SHIFT);
	if (addr < vma->vm_start || addr >= vma->vm_end)
		return -EFAULT;
	return (long)addr;
}

/**
 * rmap_walk_anon() - call @rmap_one for every VMA that may map @folio.
 * @folio: a locked, anonymous folio.
 * @rmap_one: called with the VMA and the address of the folio's first
 *            page in it (which may lie outside the VMA for a large folio
 *            that a VMA boundary cuts); returns false to stop the walk.
 * @arg: passed through.
 *
 * Takes the root anon_vma's rwsem for reading.  Lock order: folio lock,
 * anon_vma rwsem, page-table locks.
 */
static void __rmap_walk_anon(struct folio *folio,
			     bool (*rmap_one)(struct folio *, struct vm_area_struct *, unsigned long,
					      void *),
			     void *arg, bool unmapped_ok)
{
	struct anon_vma *anon_vma =
		(void *)((unsigned long)__atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE) &
			 ~PAGE_MAPPING_ANON);
	struct anon_vma_chain *avc;

	if (!anon_vma || (!unmapped_ok && !folio_mapped(folio)))
		return; /* an unmapped folio's anon_vma may already be gone */
	pthread_rwlock_rdlock(&anon_vma->root->rwsem);
	list_for_each_entry(avc, &anon_vma->head, same_anon_vma) {
		struct vm_area_struct *vma = avc->vma;
		unsigned long first = vma->vm_start +
				      ((folio->index - vma->vm_pgoff) << PAGE_SHIFT);
		unsigned long last = first + folio_size(folio);

		if (folio->index + folio_nr_pages(folio) <= vma->vm_pgoff ||
		    first >= vma->vm_end || last <= vma->vm_start)
			continue;
		if (!rmap_one(folio, vma, first, arg))
			break;
	}
	pthread_rwlock_unlock(&anon_vma->root->rwsem);
}

void rmap_walk_anon(struct folio *folio,
		    bool (*rmap_one)(struct folio *, struct vm_area_struct *, unsigned long, void *),
		    void *arg)
{
	__rmap_walk_anon(folio, rmap_one, arg, false);
}

/**
 * rmap_walk_file() - call @rmap_one for every VMA that may map @folio.
 * @folio: a locked page-cache folio.
 * @rmap_one: as for rmap_walk_anon().
 * @arg: passed through.
 *
 * Walks the i_mmap list of the folio's mapping under i_mmap_rwsem held for
 * reading: every VMA, shared or private, whose file range covers the
 * folio.  Lock order: folio lock, i_mmap_rwsem, page-table locks.
 */
static void __rmap_walk_file(struct folio *folio,
			     bool (*rmap_one)(struct folio *, struct vm_area_struct *, unsigned long,
					      void *),
			     void *arg, bool unmapped_ok)
{
	struct address_space *mapping = __atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE);
	struct vm_area_struct *vma;

	if (!mapping || folio_test_anon(folio) || (!unmapped_ok && !folio_mapped(folio)))
		return;
	i_mmap_lock_read(mapping);
	list_for_each_entry(vma, &mapping->i_mmap, shared) {
		unsigned long npages = (vma->vm_end - vma->vm_start) >> PAGE_SHIFT;

		if (folio->index + folio_nr_pages(folio) <= vma->vm_pgoff ||
		    folio->index >= vma->vm_pgoff + npages)
			continue;
		if (!rmap_one(folio, vma,
			      vma->vm_start + ((folio->index - vma->vm_pgoff) << PAGE_SHIFT), arg))
			break;
	}
	i_mmap_unlock_read(mapping);
}

void rmap_walk_file(struct folio *folio,
		    bool (*rmap_one)(struct folio *, struct vm_area_struct *, unsigned long, void *),
		    void *arg)
{
	__rmap_walk_file(folio, rmap_one, arg, false);
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

/**
 * folio_add_file_rmap_ptes() - @nr more PTE mappings of a page-cache folio.
 * @folio: the folio of @page (not anonymous).
 * @page: the first page mapped.
 * @nr: how many consecutive pages.
 *
 * Only the mapcounts change: a page-cache folio's mapping and index are
 * set when it enters the cache.  The caller holds the entries' ptl.
 */
void folio_add_file_rmap_ptes(struct folio *folio, struct page *page, int nr)
{
	folio_add_anon_rmap_ptes(folio, page, nr); /* the same counters */
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

/* ---- finding the entries that map a folio ---- */

struct folio_entry_walk {
	struct folio *folio;
	bool (*visit)(const struct folio_mapping *m, void *arg);
	void *arg;
	bool stop;
};

/*
 * Does the entry value @val (a PTE, or a PMD when @pmd_level) map a page of
 * @folio?  Present entries by PFN; migration, device-private and
 * device-exclusive entries by the PFN in their offset.
 */
static bool entry_maps_folio(uint64_t val, const struct folio *folio, bool pmd_level,
			     unsigned long *pfn)
{
	unsigned long first = folio_pfn(folio), last = first + folio_nr_pages(folio);
	pte_t pte = __pte(val);

	if (pte_none(pte))
		return false;
	if (pte_present(pte)) {
		if (pmd_level && !(val & _PAGE_PSE))
			return false; /* a table pointer */
		*pfn = pte_pfn(pte);
	} else if (is_pfn_swap_entry(pte_to_swp_entry(pte))) {
		*pfn = swp_offset_pfn(pte_to_swp_entry(pte));
	} else {
		return false; /* a swap slot names no page */
	}
	return *pfn >= first && *pfn < last;
}

/* rmap_one for folio_walk_mappings(): look at the folio's span in one VMA. */
static bool walk_folio_in_vma(struct folio *folio, struct vm_area_struct *vma, unsigned long first,
			      void *arg)
{
	struct folio_entry_walk *w = arg;
	struct mm_struct *mm = vma->vm_mm;
	unsigned long start = first < vma->vm_start ? vma->vm_start : first;
	unsigned long end = first + folio_size(folio);

	if (end > vma->vm_end)
		end = vma->vm_end;
	for (unsigned long addr = start; addr < end && !w->stop;) {
		unsigned long next = ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE;
		pmd_t *pmd = pmd_off(mm, addr);
		pthread_mutex_t *ptl;
		unsigned long pfn;
		pte_t *pte;

		if (next > end)
			next = end;
		if (!pmd) {
			addr = next;
			continue;
		}
		ptl = pmd_lock(mm, pmd);
		if (entry_maps_folio(pmd_val(pmdp_get(pmd)), folio, true, &pfn)) {
			struct folio_mapping m = { .mm = mm, .vma = vma,
						   .address = addr & PMD_MASK, .pmd = pmd,
						   .entry = pmd_val(pmdp_get(pmd)),
						   .page = pfn_to_page(pfn), .nr_pages = HPAGE_PMD_NR,
						   .ptl = ptl };

			w->stop = !w->visit(&m, w->arg);
			spin_unlock(ptl);
			addr = next;
			continue;
		}
		spin_unlock(ptl);
		pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
		if (!pte) {
			addr = next;
			continue;
		}
		for (; addr < next && !w->stop; addr += PAGE_SIZE, pte++) {
			uint64_t val = pte_val(ptep_get(pte));

			if (entry_maps_folio(val, folio, false, &pfn)) {
				struct folio_mapping m = { .mm = mm, .vma = vma, .address = addr,
							   .pte = pte, .entry = val,
							   .page = pfn_to_page(pfn), .nr_pages = 1,
							   .ptl = ptl };

				w->stop = !w->visit(&m, w->arg);
			}
		}
		spin_unlock(ptl);
		addr = next;
	}
	return !w->stop;
}

/**
 * folio_walk_mappings() - call @visit for every page-table entry, in every
 * mm, that maps a page of @folio (page_vma_mapped_walk() over rmap_walk()).
 * @folio: a locked anonymous or page-cache folio (the latter found through
 *         its file's i_mmap).
 * @visit: called with the entry's ptl held (m->ptl); it may change the
 *         entry; returns false to stop.
 * @arg: passed through.
 *
 * Entries are recognised by PFN: present PTEs and PMD leaves, and the
 * migration, device-private and device-exclusive entries that name one of
 * the folio's pages.
 */
void folio_walk_mappings(struct folio *folio, bool (*visit)(const struct folio_mapping *m, void *arg),
			 void *arg)
{
	struct folio_entry_walk w = { .folio = folio, .visit = visit, .arg = arg };

	if (folio_test_anon(folio))
		rmap_walk_anon(folio, walk_folio_in_vma, &w);
	else
		rmap_walk_file(folio, walk_folio_in_vma, &w);
}

/**
 * folio_walk_migration_entries() - folio_walk_mappings() for a folio that
 * may be wholly unmapped: its mappings are migration entries
 * (remove_migration_ptes()).
 * @folio: a locked folio; its anon_vma (or page cache) must stay alive:
 *         the caller holds the mmap_lock of every mm involved, or a
 *         reference from folio_get_anon_vma(), as Linux's migrators do.
 * @visit: as for folio_walk_mappings().
 * @arg: passed through.
 */
void folio_walk_migration_entries(struct folio *folio,
				  bool (*visit)(const struct folio_mapping *m, void *arg), void *arg)
{
	struct folio_entry_walk w = { .folio = folio, .visit = visit, .arg = arg };

	if (folio_test_anon(folio))
		__rmap_walk_anon(folio, walk_folio_in_vma, &w, true);
	else
		__rmap_walk_file(folio, walk_folio_in_vma, &w, true);
}

/**
 * folio_get_anon_vma() - a reference on the anon_vma of a mapped anonymous
 * folio, so that a migrator that holds no mmap_lock can still walk it in
 * remove_migration_ptes() after every mapping became a migration entry.
 * @folio: a locked folio.
 * Return: the anon_vma (drop it with put_anon_vma()), or NULL for a folio
 * that is not anonymous or not mapped.
 */
struct anon_vma *folio_get_anon_vma(struct folio *folio)
{
	struct anon_vma *anon_vma;

	if (!folio_test_anon(folio) || !folio_mapped(folio))
		return NULL;
	anon_vma = (void *)((unsigned long)__atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE) &
			    ~PAGE_MAPPING_ANON);
	if (anon_vma)
		get_anon_vma(anon_vma);
	return anon_vma;
}

/* ---- try_to_unmap() and try_to_migrate() ---- */

struct ttu_state {
	enum ttu_flags flags;
	bool split;   /* a PMD was split: walk again to see its PTEs */
	bool failed;  /* a mapping must stay: stop */
};

/*
 * rmap_one of try_to_unmap()/try_to_migrate(): the folio's span in one VMA,
 * bracketed by an MMU_NOTIFY_CLEAR invalidation (Linux's try_to_unmap_one()
 * and try_to_migrate_one() both send CLEAR) over the folio's span in the
 * VMA.  Called under the rmap lock, without page-table locks.
 */
static bool ttu_rmap_one(struct folio *folio, struct vm_area_struct *vma, unsigned long first,
			 void *arg)
{
	struct folio_entry_walk *w = arg;
	unsigned long start = first, end = first + folio_size(folio);
	struct mmu_notifier_range range;
	bool more;

	if (start < vma->vm_start)
		start = vma->vm_start;
	if (end > vma->vm_end)
		end = vma->vm_end;
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, vma->vm_mm, start, end);
	mmu_notifier_invalidate_range_start(&range);
	more = walk_folio_in_vma(folio, vma, first, w);
	mmu_notifier_invalidate_range_end(&range);
	return more;
}

/* folio_walk_mappings() with ttu_rmap_one() around each VMA. */
static void ttu_walk(struct folio *folio, bool (*visit)(const struct folio_mapping *m, void *arg),
		     struct ttu_state *t)
{
	struct folio_entry_walk w = { .folio = folio, .visit = visit, .arg = t };

	if (folio_test_anon(folio))
		rmap_walk_anon(folio, ttu_rmap_one, &w);
	else
		rmap_walk_file(folio, ttu_rmap_one, &w);
}

/* The swap-format soft-dirty bit an entry replacing @old keeps. */
static pte_t swp_keep_soft_dirty(pte_t swp, uint64_t old, bool old_present)
{
	if (old_present ? (old & _PAGE_SOFT_DIRTY) : (old & _PAGE_SWP_SOFT_DIRTY))
		swp = pte_swp_mksoft_dirty(swp);
	return swp;
}

/*
 * The migration entry for a mapping of @page that was writable (@write)
 * and anon-exclusive (@excl): writable, readable-exclusive or readable.
 */
static swp_entry_t make_migration_entry(struct page *page, bool write, bool excl)
{
	unsigned long pfn = page_to_pfn(page);

	if (write)
		return make_writable_migration_entry(pfn);
	if (excl)
		return make_readable_exclusive_migration_entry(pfn);
	return make_readable_migration_entry(pfn);
}

/*
 * folio_try_share_anon_rmap(): an anon-exclusive page is about to lose its
 * mappings; it may not if it may be pinned (GUP would see a stale copy).
 * Return: false when the page must stay mapped.
 */
static bool try_share_anon_pages(struct folio *folio, struct page *page, unsigned long nr)
{
	if (folio_maybe_dma_pinned(folio))
		return false;
	for (unsigned long i = 0; i < nr; i++)
		ClearPageAnonExclusive(page + i);
	return true;
}

/* set_pmd_migration_entry(): a PMD leaf or device-private PMD (ptl held). */
static bool set_pmd_migration_entry(const struct folio_mapping *m, struct ttu_state *t)
{
	pmd_t old = pmdp_get(m->pmd);
	struct folio *folio = page_folio(m->page);
	struct page *head = folio_head(folio);
	bool present = pmd_present(old), write, excl;
	pte_t swp;

	if (present)
		write = pmd_write(old);
	else
		write = is_writable_device_private_entry(pmd_to_swp_entry(old));
	excl = folio_test_anon(folio) && PageAnonExclusive(head);
	if (excl && !try_share_anon_pages(folio, head, HPAGE_PMD_NR)) {
		t->failed = true;
		return false;
	}
	if (present && pmd_dirty(old))
		folio_set_dirty(folio);
	swp = swp_entry_to_pte(make_migration_entry(head, write, excl));
	swp = swp_keep_soft_dirty(swp, pmd_val(old), present);
	pmdp_get_and_clear(m->pmd);
	set_pmd(m->pmd, __pmd(pte_val(swp)));
	folio_remove_rmap_pmd(folio);
	folio_put(folio);
	return true;
}

/*
 * try_to_migrate_one(): replace one present PTE, device-private PTE, PMD
 * leaf or device-private PMD with a migration entry (ptl held).
 */
static bool try_to_migrate_one(const struct folio_mapping *m, void *arg)
{
	struct ttu_state *t = arg;
	struct folio *folio = page_folio(m->page);
	struct page *page = m->page;
	pte_t old, swp;
	bool present, write, excl;

	if (m->pmd) {
		pmd_t val = pmdp_get(m->pmd);

		if (is_pmd_migration_entry(val))
			return true;
		if (!pmd_leaf(val) && !is_pmd_device_private_entry(val))
			return true;
		if (t->flags & TTU_SPLIT_HUGE_PMD) {
			__split_huge_pmd_locked(m->vma, m->pmd, m->address);
			t->split = true;
			return true;
		}
		return set_pmd_migration_entry(m, t);
	}
	old = ptep_get(m->pte);
	present = pte_present(old);
	if (present) {
		write = pte_write(old);
	} else {
		swp_entry_t e = pte_to_swp_entry(old);

		if (!is_device_private_entry(e))
			return true; /* a migration entry already, or one uhmm leaves */
		write = is_writable_device_private_entry(e);
	}
	excl = folio_test_anon(folio) && PageAnonExclusive(page);
	if (excl && !try_share_anon_pages(folio, page, 1)) {
		t->failed = true;
		return false;
	}
	ptep_get_and_clear(m->pte);
	if (present && pte_dirty(old))
		folio_set_dirty(folio);
	swp = swp_entry_to_pte(make_migration_entry(page, write, excl));
	set_pte(m->pte, swp_keep_soft_dirty(swp, pte_val(old), present));
	folio_remove_rmap_ptes(folio, page, 1);
	folio_put(folio);
	return true;
}

/**
 * try_to_migrate() - replace every mapping of a folio with migration entries.
 * @folio: a locked folio the caller holds a reference on.
 * @flags: TTU_SPLIT_HUGE_PMD splits PMD mappings into PTE mappings first
 *         (device-private PMDs too); without it a PMD becomes a PMD
 *         migration entry.  Other flags are accepted and ignored.
 *
 * Takes the anon_vma rwsem (or i_mmap_rwsem) and each entry's page-table
 * lock.  Present PTEs and PMDs and device-private entries become writable,
 * readable-exclusive (an anon-exclusive page that was read-only) or
 * readable migration entries; each drops its mapcount and its reference
 * (migration entries hold none) but stays in the mm's RSS.  An
 * anon-exclusive page that may be pinned is left mapped and the walk
 * stops.  Device-exclusive entries are left alone.  Check folio_mapped()
 * afterwards.
 *
 * Each VMA's part is bracketed by an MMU_NOTIFY_CLEAR invalidation, as in
 * Linux (the owner-tagged MMU_NOTIFY_MIGRATE is migrate_vma_setup()'s).
 */
void try_to_migrate(struct folio *folio, enum ttu_flags flags)
{
	struct ttu_state t = { .flags = flags };

	do {
		t.split = false;
		ttu_walk(folio, try_to_migrate_one, &t);
	} while (t.split && !t.failed);
}

/*
 * try_to_unmap_one(): drop one mapping of a page-cache folio, or of a
 * clean lazyfree anonymous folio; anything else needs swap and stays.
 */
static bool try_to_unmap_one(const struct folio_mapping *m, void *arg)
{
	struct ttu_state *t = arg;
	struct folio *folio = page_folio(m->page);
	struct mm_struct *mm = m->mm;
	pte_t old;

	if ((m->vma->vm_flags & VM_LOCKED) && !(t->flags & TTU_IGNORE_MLOCK)) {
		t->failed = true;
		return false;
	}
	if (m->pmd) {
		pmd_t val = pmdp_get(m->pmd);

		if (!pmd_leaf(val))
			return true; /* migration or device-private PMD: not ours */
		if (t->flags & TTU_SPLIT_HUGE_PMD) {
			__split_huge_pmd_locked(m->vma, m->pmd, m->address);
			t->split = true;
			return true;
		}
		t->failed = true;
		return false;
	}
	old = ptep_get(m->pte);
	if (!pte_present(old))
		return true; /* migration, device-private, device-exclusive: left */
	if (folio_test_anon(folio)) {
		/* Without swap only a clean lazyfree folio can go (it is discarded). */
		if (!folio_test_lazyfree(folio)) {
			t->failed = true;
			return false;
		}
		if (pte_dirty(old) || folio_test_dirty(folio)) {
			folio_set_swapbacked(folio); /* written after MADV_FREE */
			t->failed = true;
			return false;
		}
		if (folio_ref_count(folio) != 1 + folio_mapcount(folio)) {
			t->failed = true; /* someone else holds it */
			return false;
		}
		ptep_get_and_clear(m->pte);
		add_mm_counter(mm, MM_ANONPAGES, -1);
	} else {
		ptep_get_and_clear(m->pte);
		if (pte_dirty(old))
			folio_set_dirty(folio);
		add_mm_counter(mm, mm_counter_file(folio), -1);
	}
	folio_remove_rmap_ptes(folio, m->page, 1);
	folio_put(folio);
	return true;
}

/**
 * try_to_unmap() - remove every mapping of a folio through the reverse map.
 * @folio: a locked folio the caller holds a reference on.
 * @flags: TTU_SPLIT_HUGE_PMD splits PMD mappings first (else a PMD-mapped
 *         folio stays mapped); TTU_IGNORE_MLOCK unmaps VM_LOCKED VMAs too.
 *
 * Takes the anon_vma rwsem (or i_mmap_rwsem) and each entry's page-table
 * lock.  Page-cache pages lose their PTEs (a dirty PTE dirties the folio);
 * a clean lazyfree anonymous folio referenced only by its mappings and
 * the caller is discarded (a dirty one becomes swap-backed again and
 * stays); other anonymous folios would need swap, which uhmm does not have
 * yet, and stay mapped.  The walk stops at the first mapping that must
 * stay.  Check folio_mapped() afterwards.
 *
 * Each VMA's part is bracketed by an MMU_NOTIFY_CLEAR invalidation.
 */
void try_to_unmap(struct folio *folio, enum ttu_flags flags)
{
	struct ttu_state t = { .flags = flags };

	do {
		t.split = false;
		ttu_walk(folio, try_to_unmap_one, &t);
	} while (t.split && !t.failed);
}

struct rmap_query {
	struct folio_mapping_info *out;
	int max, found;
};

static bool record_mapping(const struct folio_mapping *m, void *arg)
{
	struct rmap_query *q = arg;

	if (q->found < q->max)
		q->out[q->found] = (struct folio_mapping_info){
			.mm = m->mm, .address = m->address, .pfn = page_to_pfn(m->page),
			.pmd_mapped = m->pmd != NULL, .entry = m->entry };
	q->found++;
	return true;
}

/**
 * folio_rmap_query() - every (mm, address) that maps @folio.
 * @folio: an anonymous or page-cache folio; locked inside.
 * @out: where the mappings go; may be NULL when @max is 0.
 * @max: room in @out.
 *
 * Return: the number of mappings (which may exceed @max: only the first
 * @max are stored), 0 for an unmapped folio or one that is neither
 * anonymous nor in a page cache.
 */
int folio_rmap_query(struct folio *folio, struct folio_mapping_info *out, int max)
{
	struct rmap_query q = { .out = out, .max = max };

	/* uhmm only: a negative @max, or records asked for with nowhere to put them. */
	if (!folio || max < 0 || (!out && max > 0))
		return -EINVAL;
	if (!__atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE))
		return 0;
	folio_lock(folio);
	folio_walk_mappings(folio, record_mapping, &q);
	folio_unlock(folio);
	return q.found;
}
