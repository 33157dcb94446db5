// SPDX-License-Identifier: MIT
/*
 * mm/gup.c - get_user_pages() and pin_user_pages(): references on the
 * pages behind a user range, for a device or any other access that does
 * not go through the page tables.
 *
 * The walk is the CPU's (mm/cpu.c): for each page, under the page-table
 * lock of the entry that maps it, the entry must be present and, for
 * FOLL_WRITE, writable.  If it is not, the lock is dropped, handle_mm_fault()
 * resolves the fault exactly as for a CPU access (so FOLL_WRITE breaks COW
 * and replaces the zero page) and the page is walked again.  The reference
 * (FOLL_GET) or pin (FOLL_PIN) is taken while the ptl is held, so the folio
 * cannot be unmapped and freed in between.
 *
 * Pins: a small folio gains GUP_PIN_COUNTING_BIAS references per pin, a
 * large folio one reference and one _pincount.  The audit (mm/audit.c)
 * accepts a refcount above the mappings only in those shapes; a FOLL_GET
 * reference is transient and is not expected to survive to an audit.
 *
 * The shared zero page and the huge zero folio are returned but never
 * referenced (their counts belong to the machine and the mms that map
 * them), and the unpin calls skip them.
 *
 * Everything runs under mmap_lock held for reading; uhmm never drops it, so
 * the @locked argument of the remote calls is only checked.
 */
#include <limits.h>
#include <string.h>

#include "internal.h"
#include "uhmm/memremap.h"
#include "uhmm/gup.h"

/* The flags a caller may pass; FOLL_PIN and FOLL_FAST_ONLY are set by the calls. */
#define GUP_PUBLIC_FLAGS                                                                  \
	(FOLL_WRITE | FOLL_GET | FOLL_DUMP | FOLL_FORCE | FOLL_NOWAIT | FOLL_NOFAULT |   \
	 FOLL_HWPOISON | FOLL_ANON | FOLL_LONGTERM | FOLL_SPLIT_PMD | FOLL_PCI_P2PDMA |  \
	 FOLL_INTERRUPTIBLE | FOLL_HONOR_NUMA_FAULT)
#define GUP_INTERNAL_FLAGS (FOLL_PIN | FOLL_FAST_ONLY)
/* What Linux's gup_fast accepts. */
#define GUP_FAST_FLAGS                                                                    \
	(FOLL_WRITE | FOLL_LONGTERM | FOLL_FORCE | FOLL_PIN | FOLL_GET | FOLL_FAST_ONLY | \
	 FOLL_NOFAULT | FOLL_PCI_P2PDMA | FOLL_HONOR_NUMA_FAULT)

/*
 * One walk of get_user_pages: the VMA being walked, the flags and, when a
 * walk stops short, the fault that would let it go on.
 */
struct gup_walk {
	struct mm_struct *mm;
	struct vm_area_struct *vma;
	unsigned int flags;
	bool need_fault;          /* the walk stopped at a page that must fault */
	unsigned int fault_flags; /* FAULT_FLAG_WRITE or 0 */
	struct folio *migrate;    /* a referenced coherent folio a LONGTERM pin must move first */
};

/*
 * A FOLL_LONGTERM pin may not hold device-coherent memory (the device
 * could not get it back): Linux migrates such a folio to system RAM first
 * (check_and_migrate_movable_folios()).  uhmm checks before pinning rather
 * than after, which has the same result.  Only anonymous coherent folios
 * move; a driver's own pages (vm_insert_page) are pinned in place.
 */
static bool gup_must_migrate(const struct gup_walk *w, struct folio *folio)
{
	return (w->flags & (FOLL_PIN | FOLL_LONGTERM)) == (FOLL_PIN | FOLL_LONGTERM) &&
	       folio_is_device_coherent(folio) && folio_test_anon(folio);
}

/*
 * migrate_device_coherent_folio(), for GUP: move the referenced coherent
 * @folio to a new system-RAM folio of @mm's machine through migration
 * entries.  mmap_lock held for reading; drops the caller's reference.
 * Return: 0, -ENOMEM, or -EBUSY when the folio could not be unmapped or
 * someone else holds it.
 */
static int gup_migrate_coherent_folio(struct mm_struct *mm, struct folio *folio)
{
	struct anon_vma *anon_vma;
	struct folio *dst;
	int ret = 0;

	dst = folio_alloc(mm->machine, 0, folio_order(folio));
	if (!dst) {
		folio_put(folio);
		return -ENOMEM;
	}
	folio_lock(folio);
	folio_lock(dst);
	anon_vma = folio_get_anon_vma(folio);
	try_to_migrate(folio, 0);
	if (folio_mapped(folio)) {
		ret = -EBUSY;
	} else {
		memcpy(folio_address(dst), folio_address(folio), folio_size(folio));
		ret = folio_migrate_mapping(NULL, dst, folio, 0) ? -EBUSY : 0;
	}
	if (ret) {
		remove_migration_ptes(folio, folio, 0);
	} else {
		folio_migrate_flags(dst, folio);
		remove_migration_ptes(folio, dst, 0);
	}
	if (anon_vma)
		put_anon_vma(anon_vma);
	folio_unlock(dst);
	folio_put(dst);
	folio_unlock(folio);
	folio_put(folio);
	return ret;
}

/* ---- references and pins ---- */

/* Is @pfn one of @machine's zero pages, which GUP never references? */
static bool gup_page_is_zero(const struct uhmm_machine *machine, unsigned long pfn)
{
	return pfn == uhmm_zero_pfn(machine) || is_huge_zero_pfn(machine, pfn);
}

/*
 * try_grab_folio() - take @refs references (FOLL_GET) or pins (FOLL_PIN) on
 * @folio, which the caller knows to be mapped (its ptl is held, so the
 * refcount is not 0).  Return: 0, or -ENOMEM when the refcount would
 * overflow (Linux's answer too).
 */
static int try_grab_folio(struct folio *folio, int refs, unsigned int flags)
{
	int add = refs;

	if (!(flags & (FOLL_GET | FOLL_PIN)))
		return 0;
	if ((flags & FOLL_PIN) && !folio_test_large(folio))
		add = refs * (int)GUP_PIN_COUNTING_BIAS;
	if (folio_ref_count(folio) > INT_MAX - add)
		return -ENOMEM;
	folio_ref_add(folio, add);
	if ((flags & FOLL_PIN) && folio_test_large(folio))
		atomic_fetch_add(&folio->_pincount, refs);
	return 0;
}

/* Undo try_grab_folio(): drop @refs references or pins; the last one frees. */
static void gup_put_folio(struct folio *folio, int refs, unsigned int flags)
{
	if (flags & FOLL_PIN) {
		if (folio_test_large(folio)) {
			int old = atomic_fetch_sub(&folio->_pincount, refs);

			if (old < refs)
				uhmm_warn("unpin: folio %#lx had %d pins, %d dropped",
					  folio_pfn(folio), old, refs);
		} else {
			refs *= (int)GUP_PIN_COUNTING_BIAS;
		}
	}
	folio_put_refs(folio, refs);
}

/*
 * gup_must_unshare() - must a FOLL_PIN read of @page in @vma break its
 * sharing first?  A pinned anonymous page must stay the page the mm maps;
 * one that is not PageAnonExclusive may be replaced by the next write fault
 * (COW), leaving the pin on a stale copy.  Write pins never get here with a
 * shared page: a writable private entry maps an exclusive page.  A
 * page-cache page in a private (COW) mapping is unshared only for a
 * FOLL_LONGTERM pin, as Linux does: a short-term read pin need not follow
 * later writes.
 */
static bool gup_must_unshare(const struct vm_area_struct *vma, unsigned int flags,
			     struct folio *folio, struct page *page)
{
	if ((flags & (FOLL_PIN | FOLL_WRITE)) != FOLL_PIN)
		return false;
	if (!folio_test_anon(folio))
		return (flags & FOLL_LONGTERM) && is_cow_mapping(vma->vm_flags);
	return !PageAnonExclusive(page);
}

/* FOLL_TOUCH for a PTE-mapped page: a write GUP will dirty the folio. */
static void gup_touch_folio(struct folio *folio, bool entry_dirty, unsigned int flags)
{
	if ((flags & FOLL_WRITE) && !entry_dirty && !folio_test_dirty(folio))
		folio_set_dirty(folio);
	if (!folio_test_referenced(folio))
		folio_set_referenced(folio);
}

/* The walk must stop at this page for a fault with @fault_flags. */
static long gup_want_fault(struct gup_walk *w, unsigned int fault_flags)
{
	w->need_fault = true;
	w->fault_flags = fault_flags;
	return 0;
}

/*
 * A page that is not there at all (empty PMD or PTE): FOLL_DUMP reports a
 * hole of an anonymous VMA instead of faulting the zero page in.
 */
static long gup_no_page(struct gup_walk *w)
{
	if ((w->flags & FOLL_DUMP) && vma_is_anonymous(w->vma))
		return -EFAULT;
	return gup_want_fault(w, (w->flags & FOLL_WRITE) ? FAULT_FLAG_WRITE : 0);
}

/* Does a present entry with @rw allow the access, or must it fault? */
static bool gup_entry_ok(struct gup_walk *w, bool present, bool rw)
{
	return present && (!(w->flags & FOLL_WRITE) || rw);
}

/* ---- the walk ---- */

/*
 * gup_follow_pmd() - take up to @nr pages from @addr out of the PMD leaf at
 * @pmd, storing them in @pages (NULL: check and touch only, take nothing).
 * Return: the pages taken, 0 to walk again (need_fault says whether to
 * fault first), or a negative errno.
 */
static long gup_follow_pmd(struct gup_walk *w, pmd_t *pmd, unsigned long addr, unsigned long nr,
			   struct page **pages)
{
	struct mm_struct *mm = w->mm;
	pthread_mutex_t *ptl = pmd_lock(mm, pmd);
	pmd_t val = pmdp_get(pmd);
	unsigned long idx = (addr & ~PMD_MASK) >> PAGE_SHIFT;
	struct page *page;
	struct folio *folio;
	long ret;

	if (!pmd_leaf(val)) {
		spin_unlock(ptl); /* split or zapped meanwhile: walk again */
		return 0;
	}
	if (!gup_entry_ok(w, pmd_val(val) & _PAGE_PRESENT, pmd_write(val))) {
		spin_unlock(ptl);
		return gup_want_fault(w, (w->flags & FOLL_WRITE) ? FAULT_FLAG_WRITE : 0);
	}
	if (nr > HPAGE_PMD_NR - idx)
		nr = HPAGE_PMD_NR - idx;
	page = pfn_to_page(pmd_pfn(val) + idx);
	if (is_huge_zero_pfn(mm->machine, pmd_pfn(val))) {
		spin_unlock(ptl);
		if (w->flags & FOLL_DUMP)
			return -EFAULT;
		for (unsigned long i = 0; pages && i < nr; i++)
			pages[i] = page + i;
		return (long)nr;
	}
	folio = page_folio(page);
	if (gup_must_migrate(w, folio)) {
		folio_get(folio);
		w->migrate = folio;
		spin_unlock(ptl);
		return 0;
	}
	if (gup_must_unshare(w->vma, w->flags, folio, page) && (w->vma->vm_flags & VM_WRITE)) {
		spin_unlock(ptl);
		return gup_want_fault(w, FAULT_FLAG_WRITE);
	}
	if (pages) {
		ret = try_grab_folio(folio, (int)nr, w->flags);
		if (ret) {
			spin_unlock(ptl);
			return ret;
		}
		for (unsigned long i = 0; i < nr; i++)
			pages[i] = page + i;
	}
	/* FOLL_TOUCH on a PMD (touch_pmd()): young, and dirty for a write. */
	val = pmd_mkyoung(val);
	if (w->flags & FOLL_WRITE)
		val = pmd_mkdirty(val);
	if (pmd_val(val) != pmd_val(pmdp_get(pmd)))
		set_pmd(pmd, val);
	spin_unlock(ptl);
	return (long)nr;
}

/*
 * gup_follow_ptes() - take up to @nr pages from @addr out of the PTE table
 * under @pmd, all under its ptl, stopping at the first entry that needs a
 * fault.  Return: as gup_follow_pmd().
 */
static long gup_follow_ptes(struct gup_walk *w, pmd_t *pmd, unsigned long addr, unsigned long nr,
			    struct page **pages)
{
	struct mm_struct *mm = w->mm;
	unsigned long left = PTRS_PER_PTE - pte_index(addr), i;
	pthread_mutex_t *ptl;
	pte_t *pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	long err = 0;

	if (!pte)
		return 0; /* no longer a PTE table: walk again */
	if (nr > left)
		nr = left;
	for (i = 0; i < nr; i++) {
		pte_t entry = ptep_get(pte + i);
		unsigned long pfn = pte_pfn(entry);
		struct page *page;
		struct folio *folio;

		if (pte_none(entry)) {
			err = gup_no_page(w);
			break;
		}
		if (!gup_entry_ok(w, pte_val(entry) & _PAGE_PRESENT, pte_write(entry))) {
			/* Not present (swap, migration, device) or read-only. */
			err = gup_want_fault(w, (w->flags & FOLL_WRITE) ? FAULT_FLAG_WRITE : 0);
			break;
		}
		if (gup_page_is_zero(mm->machine, pfn)) {
			if (w->flags & FOLL_DUMP) {
				err = -EFAULT;
				break;
			}
			if (pages)
				pages[i] = pfn_to_page(pfn);
			continue;
		}
		if (pte_special(entry) || !pfn_valid(pfn)) {
			err = -EFAULT; /* no struct page to hand out (follow_pfn_pte()) */
			break;
		}
		page = pfn_to_page(pfn);
		folio = page_folio(page);
		if (gup_must_migrate(w, folio)) {
			if (!i) {
				folio_get(folio);
				w->migrate = folio;
			}
			break; /* take what we have; migrate when the walk gets here */
		}
		if (gup_must_unshare(w->vma, w->flags, folio, page) && (w->vma->vm_flags & VM_WRITE)) {
			err = gup_want_fault(w, FAULT_FLAG_WRITE);
			break;
		}
		if (pages) {
			err = try_grab_folio(folio, 1, w->flags);
			if (err)
				break;
			pages[i] = page;
		}
		gup_touch_folio(folio, pte_dirty(entry), w->flags);
	}
	spin_unlock(ptl);
	if (i)
		w->need_fault = false; /* take what we have; the fault comes next time */
	return i ? (long)i : err;
}

/*
 * gup_follow() - take up to @nr pages from @addr (all inside w->vma).
 * Return: as gup_follow_pmd().
 */
static long gup_follow(struct gup_walk *w, unsigned long addr, unsigned long nr,
		       struct page **pages)
{
	pmd_t *pmd = pmd_off(w->mm, addr);
	pmd_t val;

	if (!pmd)
		return gup_no_page(w);
	val = pmdp_get(pmd);
	if (pmd_none(val))
		return gup_no_page(w);
	if (is_swap_pmd(val))
		return gup_want_fault(w, (w->flags & FOLL_WRITE) ? FAULT_FLAG_WRITE : 0);
	if (pmd_leaf(val)) {
		if (!(w->flags & FOLL_SPLIT_PMD))
			return gup_follow_pmd(w, pmd, addr, nr, pages);
		split_huge_pmd(w->vma, pmd, addr);
	}
	return gup_follow_ptes(w, pmd, addr, nr, pages);
}

/*
 * check_vma_flags() - may GUP with @flags touch @vma at all?  Linux's
 * rules.  Return: 0 or a negative errno.
 */
static int check_vma_flags(struct vm_area_struct *vma, unsigned int flags)
{
	unsigned long vm_flags = vma->vm_flags;

	if (vm_flags & (VM_IO | VM_PFNMAP))
		return -EFAULT;
	if ((flags & FOLL_ANON) && !vma_is_anonymous(vma))
		return -EFAULT;
	if ((flags & FOLL_SPLIT_PMD) && (vm_flags & VM_HUGETLB))
		return -EOPNOTSUPP;
	if (flags & FOLL_WRITE) {
		/*
		 * Linux lets FOLL_FORCE write into a private read-only VMA
		 * with VM_MAYWRITE (ptrace), COWing the page there;
		 * handle_mm_fault() has no FAULT_FLAG for that yet, so uhmm
		 * refuses every write to a VMA without VM_WRITE.
		 */
		if (!(vm_flags & VM_WRITE))
			return -EFAULT;
	} else if (!(vm_flags & VM_READ)) {
		if (!(flags & FOLL_FORCE) || !(vm_flags & VM_MAYREAD))
			return -EFAULT;
	}
	return 0;
}

/*
 * __get_user_pages() - the walk behind every call: page by page (or leaf by
 * leaf), fault when needed, stop at the first error.  mmap_lock held for
 * reading; @flags already checked.
 * Return: the pages taken if any, else 0 or a negative errno.
 */
static long __get_user_pages(struct mm_struct *mm, unsigned long start, unsigned long nr_pages,
			     unsigned int flags, struct page **pages)
{
	struct gup_walk w = { .mm = mm, .flags = flags };
	unsigned long done = 0;
	long ret = 0;

	start &= PAGE_MASK;
	if ((flags & FOLL_PIN) && !(atomic_load(&mm->flags) & (1UL << MMF_HAS_PINNED)))
		atomic_fetch_or(&mm->flags, 1UL << MMF_HAS_PINNED);
	while (done < nr_pages) {
		unsigned long addr = start + done * PAGE_SIZE;
		unsigned long nr;
		vm_fault_t fault;

		if (addr < start || addr >= TASK_SIZE) {
			ret = -EFAULT;
			break;
		}
		if (!w.vma || addr >= w.vma->vm_end) {
			w.vma = vma_lookup(mm, addr);
			if (!w.vma) {
				ret = -EFAULT;
				break;
			}
			ret = check_vma_flags(w.vma, flags);
			if (ret)
				break;
		}
		nr = (w.vma->vm_end - addr) >> PAGE_SHIFT;
		if (nr > nr_pages - done)
			nr = nr_pages - done;
		w.need_fault = false;
		w.migrate = NULL;
		ret = gup_follow(&w, addr, nr, pages ? pages + done : NULL);
		if (ret > 0) {
			done += (unsigned long)ret;
			ret = 0;
			continue;
		}
		if (ret < 0)
			break;
		if (w.migrate) {
			ret = gup_migrate_coherent_folio(mm, w.migrate);
			if (ret)
				break;
			continue;
		}
		if (!w.need_fault)
			continue; /* the tables changed under the walk */
		if (flags & (FOLL_NOFAULT | FOLL_FAST_ONLY)) {
			ret = -EFAULT;
			break;
		}
		fault = handle_mm_fault(w.vma, addr, w.fault_flags | FAULT_FLAG_REMOTE);
		if (fault & VM_FAULT_ERROR) {
			ret = vm_fault_to_errno(fault);
			break;
		}
	}
	return done ? (long)done : ret;
}

/*
 * is_valid_gup_args() - Linux's checks of the caller's flags, with @to_set
 * (what the call implies) added.  Return: true and the final flags in
 * *@flagsp, or false for -EINVAL.
 */
static bool is_valid_gup_args(struct page **pages, int *locked, unsigned int *flagsp,
			      unsigned int to_set)
{
	unsigned int flags = *flagsp;

	if (flags & ~(GUP_PUBLIC_FLAGS | GUP_INTERNAL_FLAGS))
		return false; /* uhmm refuses bits Linux does not define */
	if (flags & GUP_INTERNAL_FLAGS)
		return false;
	if (locked && *locked != 1)
		return false;
	flags |= to_set;
	if ((flags & (FOLL_GET | FOLL_PIN)) == (FOLL_GET | FOLL_PIN))
		return false;
	if ((flags & FOLL_LONGTERM) && !(flags & FOLL_PIN))
		return false;
	if ((flags & (FOLL_GET | FOLL_PIN)) && !pages)
		return false;
	if ((flags & FOLL_LONGTERM) && (flags & FOLL_PCI_P2PDMA))
		return false;
	*flagsp = flags;
	return true;
}

long get_user_pages_remote(struct mm_struct *mm, unsigned long start, unsigned long nr_pages,
			   unsigned int gup_flags, struct page **pages, int *locked)
{
	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (!is_valid_gup_args(pages, locked, &gup_flags, pages ? FOLL_GET : 0))
		return -EINVAL;
	if (!nr_pages)
		return 0;
	return __get_user_pages(mm, start, nr_pages, gup_flags, pages);
}

long pin_user_pages_remote(struct mm_struct *mm, unsigned long start, unsigned long nr_pages,
			   unsigned int gup_flags, struct page **pages, int *locked)
{
	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (!is_valid_gup_args(pages, locked, &gup_flags, FOLL_PIN))
		return -EINVAL;
	if (!nr_pages)
		return 0;
	/*
	 * FOLL_LONGTERM: Linux migrates pages that must not stay pinned
	 * (movable zones, CMA, device-coherent memory) before returning.
	 * System RAM here is none of the first two; device-coherent folios
	 * are moved to RAM by the walk (gup_must_migrate()).
	 */
	return __get_user_pages(mm, start, nr_pages, gup_flags, pages);
}

/* The common part of the fast calls: Linux's range checks, then the walk under mmap_lock. */
static int gup_fast_fallback(struct mm_struct *mm, unsigned long start, int nr_pages,
			     unsigned int flags, struct page **pages)
{
	unsigned long len, end;
	long ret;

	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (flags & ~GUP_FAST_FLAGS)
		return -EINVAL;
	start &= PAGE_MASK;
	len = (unsigned long)(long)nr_pages << PAGE_SHIFT;
	if (__builtin_add_overflow(start, len, &end))
		return -EOVERFLOW;
	if (end > TASK_SIZE)
		return -EFAULT;
	if (nr_pages <= 0)
		return 0;
	pthread_rwlock_rdlock(&mm->mmap_lock);
	ret = __get_user_pages(mm, start, (unsigned long)nr_pages, flags, pages);
	pthread_rwlock_unlock(&mm->mmap_lock);
	if ((flags & FOLL_FAST_ONLY) && ret < 0)
		ret = 0; /* the fast-only walk reports how far it got */
	return (int)ret;
}

int get_user_pages_fast(struct mm_struct *mm, unsigned long start, int nr_pages,
			unsigned int gup_flags, struct page **pages)
{
	if (!is_valid_gup_args(pages, NULL, &gup_flags, FOLL_GET))
		return -EINVAL;
	return gup_fast_fallback(mm, start, nr_pages, gup_flags, pages);
}

int pin_user_pages_fast(struct mm_struct *mm, unsigned long start, int nr_pages,
			unsigned int gup_flags, struct page **pages)
{
	if (!is_valid_gup_args(pages, NULL, &gup_flags, FOLL_PIN))
		return -EINVAL;
	return gup_fast_fallback(mm, start, nr_pages, gup_flags, pages);
}

int get_user_pages_fast_only(struct mm_struct *mm, unsigned long start, int nr_pages,
			     unsigned int gup_flags, struct page **pages)
{
	if (!is_valid_gup_args(pages, NULL, &gup_flags, FOLL_GET))
		return -EINVAL;
	return gup_fast_fallback(mm, start, nr_pages, gup_flags | FOLL_FAST_ONLY, pages);
}

struct page *get_user_page_vma_remote(struct mm_struct *mm, unsigned long addr,
				      unsigned int gup_flags, struct vm_area_struct **vmap)
{
	struct vm_area_struct *vma;
	struct page *page;
	long got;

	got = get_user_pages_remote(mm, addr, 1, gup_flags, &page, NULL);
	if (got < 0)
		return ERR_PTR(got);
	vma = vma_lookup(mm, addr);
	if (!vma) {
		/* Cannot happen: the caller's mmap_lock kept the VMA. */
		if (!gup_page_is_zero(mm->machine, page_to_pfn(page)))
			put_page(page);
		return ERR_PTR(-EINVAL);
	}
	*vmap = vma;
	return page;
}

/* ---- unpinning ---- */

/*
 * The folio of pages[i] and how many of the pages from i on belong to it
 * (Linux's gup_folio_next()); *@nrp is 0 for a zero page, which holds no pin.
 */
static struct folio *gup_folio_next(struct page **pages, unsigned long npages, unsigned long i,
				    unsigned long *nrp)
{
	struct folio *folio = page_folio(pages[i]);
	unsigned long nr = 1;

	if (is_zero_pfn(page_to_pfn(pages[i])) || is_huge_zero_folio(folio)) {
		*nrp = 0;
		return folio;
	}
	while (i + nr < npages && page_folio(pages[i + nr]) == folio)
		nr++;
	*nrp = nr;
	return folio;
}

void unpin_user_page(struct page *page)
{
	unpin_user_pages(&page, 1);
}

void unpin_user_pages(struct page **pages, unsigned long npages)
{
	unpin_user_pages_dirty_lock(pages, npages, false);
}

void unpin_user_pages_dirty_lock(struct page **pages, unsigned long npages, bool make_dirty)
{
	unsigned long i, nr;

	for (i = 0; i < npages; i += nr ? nr : 1) {
		struct folio *folio = gup_folio_next(pages, npages, i, &nr);

		if (!nr)
			continue;
		if (make_dirty && !folio_test_dirty(folio)) {
			/* set_page_dirty_lock(): the folio lock orders it against writeback. */
			folio_lock(folio);
			folio_set_dirty(folio);
			folio_unlock(folio);
		}
		gup_put_folio(folio, (int)nr, FOLL_PIN);
	}
}
