/* SPDX-License-Identifier: MIT */
/*
 * uhmm/gup.h - get_user_pages() and pin_user_pages(): take references on
 * the pages that back a range of an address space, faulting them in first
 * where needed, as Linux's mm/gup.c does.
 *
 * Two kinds of reference, as in Linux:
 *   - FOLL_GET (the get_user_pages*() calls): one folio reference per page
 *     returned, dropped with put_page().  For short-lived access.
 *   - FOLL_PIN (the pin_user_pages*() calls): a pin, for DMA or any access
 *     to the bytes that outlives the call.  A small folio gains
 *     GUP_PIN_COUNTING_BIAS references per pin; a large folio gains one
 *     reference and one _pincount per pin.  folio_maybe_dma_pinned() reads
 *     it back; later subsystems (fork, migration, reclaim) honour it.  Pins
 *     are dropped only with unpin_user_page() / unpin_user_pages() /
 *     unpin_user_pages_dirty_lock(), never with put_page().
 *
 * The shared zero page and the huge zero folio are returned for reads of
 * memory that maps them, but never referenced or pinned (Linux 6.x does
 * not pin the zero folio either); the unpin calls skip them.  Because
 * nothing is taken on them, a FOLL_GET caller must not put_page() a zero
 * page (is_zero_pfn(page_to_pfn(page))): the reserved zero page's only
 * reference is the machine's.  A page of the huge zero folio stays valid
 * while the mm that mapped it lives; unpin it before the last mmput().
 *
 * Flag values are those of Linux 6.x (include/linux/mm_types.h and the
 * internal ones of mm/internal.h).
 */
#ifndef UHMM_GUP_H
#define UHMM_GUP_H

#include "uhmm/machine.h"
#include "uhmm/mm_types.h"

/* ---- gup_flags (Linux 6.x values) ---- */
#define FOLL_WRITE 0x01u            /* the page must be writable: write faults, COW broken */
#define FOLL_GET 0x02u              /* take a reference (set by the get_ calls) */
#define FOLL_DUMP 0x04u             /* -EFAULT, not the zero page, for a hole */
#define FOLL_FORCE 0x08u            /* ptrace-style access (see get_user_pages_remote()) */
#define FOLL_NOWAIT 0x10u           /* accepted; uhmm never waits for I/O */
#define FOLL_NOFAULT 0x20u          /* never fault: return what is mapped */
#define FOLL_HWPOISON 0x40u         /* accepted; uhmm has no poisoned pages */
#define FOLL_ANON 0x80u             /* -EFAULT for a VMA that is not anonymous */
#define FOLL_LONGTERM 0x100u        /* a pin held for an unbounded time (FOLL_PIN only) */
#define FOLL_SPLIT_PMD 0x200u       /* split a PMD mapping into PTEs first */
#define FOLL_PCI_P2PDMA 0x400u      /* accepted; not with FOLL_LONGTERM */
#define FOLL_INTERRUPTIBLE 0x800u   /* accepted; uhmm has no signals */
#define FOLL_HONOR_NUMA_FAULT 0x1000u /* accepted; uhmm has no NUMA hinting */
/* Internal in Linux: set by the calls, refused from callers. */
#define FOLL_PIN 0x80000u           /* take a pin (set by the pin_ calls) */
#define FOLL_FAST_ONLY 0x100000u    /* never fault (set by get_user_pages_fast_only()) */

/**
 * GUP_PIN_COUNTING_BIAS - references one FOLL_PIN adds to a small folio.
 *
 * A small folio whose refcount reaches this is reported as maybe pinned;
 * large folios count pins exactly in _pincount instead.
 */
#define GUP_PIN_COUNTING_BIAS (1U << 10)

/*
 * MMF_HAS_PINNED - bit of mm->flags set by the first FOLL_PIN on an mm
 * (Linux's value); fork consults it before copying pinned anonymous pages.
 */
#define MMF_HAS_PINNED 27

/**
 * folio_maybe_dma_pinned() - might @folio be pinned by FOLL_PIN?
 * @folio: any folio; no lock needed (the answer may change at once).
 *
 * Exact for large folios (_pincount); for small folios a false positive is
 * possible once GUP_PIN_COUNTING_BIAS plain references are held, as in
 * Linux.
 *
 * Return: true when the folio may be pinned.
 */
static inline bool folio_maybe_dma_pinned(struct folio *folio)
{
	if (folio_test_large(folio))
		return atomic_load(&folio->_pincount) > 0;
	return (unsigned int)folio_ref_count(folio) >= GUP_PIN_COUNTING_BIAS;
}

/**
 * get_user_pages_remote() - take a reference on each page of a range,
 * faulting it in as needed.
 * @mm: the address space; the caller holds mm->mmap_lock for reading.
 * @start: the first address (rounded down to its page).
 * @nr_pages: how many pages.
 * @gup_flags: FOLL_WRITE, FOLL_FORCE, FOLL_GET (implied when @pages is
 *             given), FOLL_DUMP, FOLL_NOFAULT, FOLL_ANON, FOLL_SPLIT_PMD
 *             and the accepted no-op flags; not FOLL_PIN, FOLL_LONGTERM or
 *             FOLL_FAST_ONLY.
 * @pages: where the pages go (one reference each, dropped with
 *         put_page()), or NULL to only fault the range in.
 * @locked: NULL, or a pointer to 1: uhmm never drops mmap_lock, so it
 *          stays 1.
 *
 * Each page must be present and, with FOLL_WRITE, writable; otherwise the
 * call faults as a CPU access would (handle_mm_fault() with
 * FAULT_FLAG_REMOTE): a read of an empty anonymous page maps the zero
 * page, a write allocates or breaks COW, so the pages returned are the ones
 * the mm maps afterwards.
 *
 * FOLL_FORCE lets a read reach a VMA without VM_READ that has VM_MAYREAD,
 * and (in Linux) a write reach a private read-only VMA with VM_MAYWRITE.
 * uhmm's fault handler cannot COW into a VMA without VM_WRITE yet, so a
 * FOLL_FORCE write to a read-only VMA, and a forced read of a PROT_NONE VMA,
 * fail with -EFAULT.
 *
 * Return: the number of pages taken, which is less than @nr_pages when an
 * error stopped the walk after the first page; otherwise a negative errno:
 * -EINVAL (bad flags, *@locked not 1), -EFAULT (no VMA, VM_IO or
 * VM_PFNMAP, no permission, FOLL_NOFAULT or FOLL_DUMP on a page that is not
 * there, the end of the address space), -ENOMEM (the fault could not
 * allocate).  0 for @nr_pages 0.
 */
long get_user_pages_remote(struct mm_struct *mm, unsigned long start, unsigned long nr_pages,
			   unsigned int gup_flags, struct page **pages, int *locked);

/**
 * pin_user_pages_remote() - pin each page of a range (FOLL_PIN).
 * @mm: the address space; the caller holds mm->mmap_lock for reading.
 * @start: the first address (rounded down to its page).
 * @nr_pages: how many pages.
 * @gup_flags: as get_user_pages_remote(), plus FOLL_LONGTERM; not FOLL_GET.
 * @pages: where the pinned pages go; required.
 * @locked: NULL, or a pointer to 1.
 *
 * As get_user_pages_remote(), but each page is pinned (see the top of this
 * header) and released with unpin_user_page() and friends.  A read pin of
 * an anonymous page that is not PageAnonExclusive (shared with a fork)
 * must not keep sharing it (Linux's gup_must_unshare()): uhmm breaks the
 * sharing with a write fault when the VMA is writable, which also makes the
 * entry writable; in a read-only VMA it pins the shared page.
 * FOLL_LONGTERM pins of system RAM need nothing more.
 *
 * Return: as get_user_pages_remote(); -EINVAL for FOLL_GET (which Linux
 * reports by returning 0) or a NULL @pages.
 */
long pin_user_pages_remote(struct mm_struct *mm, unsigned long start, unsigned long nr_pages,
			   unsigned int gup_flags, struct page **pages, int *locked);

/**
 * get_user_pages_fast() - get_user_pages_remote() that takes mmap_lock.
 * @mm: the address space; mmap_lock must not be held by the caller.
 * @start: the first address (rounded down to its page).
 * @nr_pages: how many pages.
 * @gup_flags: FOLL_WRITE, FOLL_FORCE, FOLL_NOFAULT, FOLL_PCI_P2PDMA,
 *             FOLL_HONOR_NUMA_FAULT (Linux's gup_fast set); FOLL_GET implied.
 * @pages: where the pages go; required.
 *
 * Takes mm->mmap_lock for reading for the whole call.
 *
 * Return: as get_user_pages_remote(); also -EINVAL for flags outside the
 * set above, -EOVERFLOW when the range wraps, -EFAULT when it ends past
 * TASK_SIZE.
 */
int get_user_pages_fast(struct mm_struct *mm, unsigned long start, int nr_pages,
			unsigned int gup_flags, struct page **pages);

/**
 * pin_user_pages_fast() - pin_user_pages_remote() that takes mmap_lock.
 * @mm: the address space; mmap_lock must not be held by the caller.
 * @start: the first address (rounded down to its page).
 * @nr_pages: how many pages.
 * @gup_flags: as get_user_pages_fast(), plus FOLL_LONGTERM; not FOLL_GET.
 * @pages: where the pinned pages go; required.
 *
 * Return: as get_user_pages_fast().
 */
int pin_user_pages_fast(struct mm_struct *mm, unsigned long start, int nr_pages,
			unsigned int gup_flags, struct page **pages);

/**
 * get_user_pages_fast_only() - get_user_pages_fast() without faulting.
 * @mm: the address space; mmap_lock must not be held by the caller.
 * @start: the first address (rounded down to its page).
 * @nr_pages: how many pages.
 * @gup_flags: as get_user_pages_fast().
 * @pages: where the pages go; required.
 *
 * Stops at the first page that is not mapped as required.
 *
 * Return: the number of pages taken (0 if the first one is not mapped), or
 * a negative errno for bad arguments.
 */
int get_user_pages_fast_only(struct mm_struct *mm, unsigned long start, int nr_pages,
			     unsigned int gup_flags, struct page **pages);

/**
 * get_user_page_vma_remote() - get_user_pages_remote() of one page that
 * also returns its VMA.
 * @mm: the address space; the caller holds mm->mmap_lock for reading.
 * @addr: an address in the page.
 * @gup_flags: as get_user_pages_remote().
 * @vmap: where the VMA containing @addr goes.
 *
 * Return: the page, with a reference the caller drops with put_page(), or
 * ERR_PTR() of the errno get_user_pages_remote() returned.
 */
struct page *get_user_page_vma_remote(struct mm_struct *mm, unsigned long addr,
				      unsigned int gup_flags, struct vm_area_struct **vmap);

/**
 * unpin_user_page() - drop one FOLL_PIN pin.
 * @page: a page a pin_user_pages*() call returned.
 *
 * A zero page (never pinned) is skipped.  The last reference frees the
 * folio.  Needs no lock; must not be called holding a page-table lock.
 */
void unpin_user_page(struct page *page);

/**
 * unpin_user_pages() - drop the pins of @npages pages.
 * @pages: pages pin_user_pages*() returned.
 * @npages: how many.
 *
 * Consecutive pages of one folio are released together.  As
 * unpin_user_page().
 */
void unpin_user_pages(struct page **pages, unsigned long npages);

/**
 * unpin_user_pages_dirty_lock() - mark pinned folios dirty, then unpin.
 * @pages: pages pin_user_pages*() returned.
 * @npages: how many.
 * @make_dirty: mark each folio dirty (under its folio lock) before
 *              unpinning; false is unpin_user_pages().
 *
 * For a caller whose device wrote into the pages.  Takes each folio lock,
 * so it must not be called holding a page-table lock or a folio lock.
 */
void unpin_user_pages_dirty_lock(struct page **pages, unsigned long npages, bool make_dirty);

#endif /* UHMM_GUP_H */
