/* SPDX-License-Identifier: MIT */
/*
 * uhmm/machine.h - a machine: system RAM with real bytes, struct pages in one
 * PFN space, the buddy allocator, folios, the zero pages, allocation-failure
 * injection and the invariant audit.
 *
 * PFNs of every machine (and, later, every device) share one number space
 * that is global to the process: pfn_to_page() is one addition into a
 * virtually contiguous struct page array (SPARSEMEM_VMEMMAP), reserved
 * lazily, so pages that are never allocated cost no memory.
 */
#ifndef UHMM_MACHINE_H
#define UHMM_MACHINE_H

#include <stdio.h>

#include "uhmm/fault_inject.h"
#include "uhmm/mm_types.h"

/**
 * enum thp_mode - /sys/kernel/mm/transparent_hugepage/enabled.
 * @THP_NEVER: no THP on faults.
 * @THP_MADVISE: THP only in VMAs with VM_HUGEPAGE (MADV_HUGEPAGE); the default.
 * @THP_ALWAYS: THP in every anonymous VMA without VM_NOHUGEPAGE.
 */
enum thp_mode {
	THP_MADVISE = 0,
	THP_ALWAYS,
	THP_NEVER,
};

/**
 * struct uhmm_machine_config - how to build a machine.
 * @ram_size: bytes of system RAM, a multiple of 2 MiB; 0 means 1 GiB.
 * @thp_enabled: transparent_hugepage/enabled.
 * @no_huge_zero_page: true turns off transparent_hugepage/use_zero_page.
 * @nr_hugepages: the hugetlb pool (vm.nr_hugepages) filled at creation,
 *                as many 2 MiB pages as the buddy allocator gives; 0 means
 *                UHMM_DEFAULT_NR_HUGEPAGES (8, at most 1/16 of RAM) and
 *                UHMM_NO_HUGEPAGES an empty pool (see uhmm/hugetlb.h).
 */
struct uhmm_machine_config {
	unsigned long ram_size;
	enum thp_mode thp_enabled;
	bool no_huge_zero_page;
	unsigned long nr_hugepages;
};

#define UHMM_DEFAULT_RAM_SIZE (1UL << 30)

struct uhmm_machine;

/**
 * uhmm_machine_create() - build a machine with system RAM.
 * @config: the configuration, or NULL for the defaults.
 *
 * Return: the machine, or ERR_PTR(-EINVAL) for a size that is zero after
 * rounding, not a multiple of 2 MiB or too large, ERR_PTR(-ENOMEM) when the
 * host cannot reserve it, ERR_PTR(-ENOSPC) when the PFN space is full.
 */
struct uhmm_machine *uhmm_machine_create(const struct uhmm_machine_config *config);

/**
 * uhmm_machine_destroy() - free a machine and its RAM.
 * @machine: a machine whose address spaces have all been mmput().
 *
 * Return: 0, or -EBUSY (and nothing freed) while an mm, a file (see
 * uhmm/fs.h: until its last fput()) or an allocated page still exists.
 */
int uhmm_machine_destroy(struct uhmm_machine *machine);

/** uhmm_machine_set_thp() - change transparent_hugepage/enabled at run time. */
void uhmm_machine_set_thp(struct uhmm_machine *machine, enum thp_mode mode);

/* ---- counters ---- */
/** uhmm_totalram_pages() - pages of system RAM the machine was built with. */
unsigned long uhmm_totalram_pages(const struct uhmm_machine *machine);
/** uhmm_nr_free_pages() - pages in the buddy allocator's free lists. */
unsigned long uhmm_nr_free_pages(struct uhmm_machine *machine);
/** uhmm_nr_free_blocks() - free blocks of @order (the /proc/buddyinfo column). */
unsigned long uhmm_nr_free_blocks(struct uhmm_machine *machine, unsigned int order);
/** uhmm_nr_reserved_pages() - pages never handed out: the zero page. */
unsigned long uhmm_nr_reserved_pages(const struct uhmm_machine *machine);

/* ---- allocation-failure injection (fail_page_alloc) ---- */
/* struct fault_attr: see uhmm/fault_inject.h.  __GFP_NOFAIL calls are never eligible. */
/**
 * uhmm_fail_page_alloc() - set or clear allocation-failure injection.
 * @machine: the machine.
 * @attr: the rule, or NULL to stop injecting.
 */
void uhmm_fail_page_alloc(struct uhmm_machine *machine, const struct fault_attr *attr);
/** uhmm_fail_page_alloc_count() - failures injected since the rule was set. */
unsigned long uhmm_fail_page_alloc_count(struct uhmm_machine *machine);
/** uhmm_fail_page_alloc_calls() - eligible allocations since the rule was set. */
unsigned long uhmm_fail_page_alloc_calls(struct uhmm_machine *machine);

/* ---- the PFN space ---- */
extern struct page *uhmm_vmemmap;
static inline struct page *pfn_to_page(unsigned long pfn) { return uhmm_vmemmap + pfn; }
static inline unsigned long page_to_pfn(const struct page *page)
{
	return (unsigned long)(page - uhmm_vmemmap);
}
/** pfn_valid() - @pfn belongs to memory some machine or device registered. */
bool pfn_valid(unsigned long pfn);
/** page_address() - the bytes of @page (system RAM or device memory). */
void *page_address(const struct page *page);
/** page_machine() - the machine that owns @page. */
struct uhmm_machine *page_machine(const struct page *page);

/* ---- page flags (atomic, like set_bit/test_bit) ---- */
static inline bool test_page_flag(const struct page *page, enum pageflags bit)
{
	return (__atomic_load_n(&page->flags, __ATOMIC_ACQUIRE) >> bit) & 1;
}
static inline void set_page_flag(struct page *page, enum pageflags bit)
{
	__atomic_fetch_or(&page->flags, 1UL << bit, __ATOMIC_ACQ_REL);
}
static inline void clear_page_flag(struct page *page, enum pageflags bit)
{
	__atomic_fetch_and(&page->flags, ~(1UL << bit), __ATOMIC_ACQ_REL);
}
static inline bool test_and_set_page_flag(struct page *page, enum pageflags bit)
{
	return (__atomic_fetch_or(&page->flags, 1UL << bit, __ATOMIC_ACQ_REL) >> bit) & 1;
}

/* ---- folios ---- */
static inline bool PageTail(const struct page *page)
{
	return __atomic_load_n(&page->compound_head, __ATOMIC_ACQUIRE) & 1;
}
static inline struct folio *page_folio(const struct page *page)
{
	unsigned long head = __atomic_load_n(&page->compound_head, __ATOMIC_ACQUIRE);
	if (head & 1)
		return (struct folio *)(head - 1);
	return (struct folio *)(void *)(uintptr_t)page;
}
static inline struct page *folio_page(struct folio *folio, unsigned long n)
{
	return (struct page *)(void *)folio + n;
}
static inline struct page *folio_head(const struct folio *folio)
{
	return (struct page *)(void *)(uintptr_t)folio;
}
static inline unsigned long folio_pfn(const struct folio *folio) { return page_to_pfn(folio_head(folio)); }
static inline bool folio_test_large(const struct folio *folio)
{
	return test_page_flag(folio_head(folio), PG_head);
}
static inline unsigned int folio_order(const struct folio *folio)
{
	if (!folio_test_large(folio))
		return 0;
	return (unsigned int)(__atomic_load_n(&folio->_flags_1, __ATOMIC_ACQUIRE) & FOLIO_ORDER_MASK);
}
static inline unsigned long folio_nr_pages(const struct folio *folio) { return 1UL << folio_order(folio); }
static inline unsigned long folio_size(const struct folio *folio) { return PAGE_SIZE << folio_order(folio); }
static inline bool folio_test_pmd_mappable(const struct folio *folio)
{
	return folio_order(folio) >= HPAGE_PMD_ORDER;
}
static inline struct folio *folio_next(struct folio *folio)
{
	return (struct folio *)(void *)(folio_head(folio) + folio_nr_pages(folio));
}
static inline void *folio_address(const struct folio *folio) { return page_address(folio_head(folio)); }

static inline int folio_ref_count(const struct folio *folio) { return atomic_load(&folio->_refcount); }
static inline int page_ref_count(const struct page *page) { return atomic_load(&page->_refcount); }
static inline void folio_get(struct folio *folio) { atomic_fetch_add(&folio->_refcount, 1); }
static inline void folio_ref_add(struct folio *folio, int nr) { atomic_fetch_add(&folio->_refcount, nr); }
/** folio_try_get() - take a reference unless the folio is free or frozen. */
static inline bool folio_try_get(struct folio *folio)
{
	int old = atomic_load(&folio->_refcount);
	while (old > 0)
		if (atomic_compare_exchange_weak(&folio->_refcount, &old, old + 1))
			return true;
	return false;
}
/** folio_ref_freeze() - set the refcount to 0 if it is exactly @count. */
static inline bool folio_ref_freeze(struct folio *folio, int count)
{
	int expected = count;
	return atomic_compare_exchange_strong(&folio->_refcount, &expected, 0);
}
static inline void folio_ref_unfreeze(struct folio *folio, int count)
{
	atomic_store(&folio->_refcount, count);
}

/**
 * folio_put() - drop a reference; the last one frees the folio.
 * @folio: a folio whose refcount is at least 1.
 */
void folio_put(struct folio *folio);
/** folio_put_refs() - drop @refs references at once. */
void folio_put_refs(struct folio *folio, int refs);
static inline void get_page(struct page *page) { folio_get(page_folio(page)); }
static inline void put_page(struct page *page) { folio_put(page_folio(page)); }

/** page_mapcount() - PTE mappings of @page plus PMD mappings of its folio. */
static inline int page_mapcount(const struct page *page)
{
	int mapcount = atomic_load(&page->_mapcount) + 1;
	const struct folio *folio = page_folio(page);
	if (folio_test_large(folio))
		mapcount += atomic_load(&folio->_entire_mapcount) + 1;
	return mapcount;
}
/** folio_mapcount() - all page-table entries that map the folio. */
static inline int folio_mapcount(const struct folio *folio)
{
	if (!folio_test_large(folio))
		return atomic_load(&folio->_mapcount) + 1;
	return atomic_load(&folio->_large_mapcount) + 1;
}
static inline int folio_entire_mapcount(const struct folio *folio)
{
	return atomic_load(&folio->_entire_mapcount) + 1;
}
static inline bool folio_mapped(const struct folio *folio) { return folio_mapcount(folio) > 0; }

static inline bool folio_test_anon(const struct folio *folio)
{
	return ((unsigned long)__atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE) &
		PAGE_MAPPING_ANON) != 0;
}
#define FOLIO_FLAG_FUNCS(name, bit)                                                \
	static inline bool folio_test_##name(const struct folio *f)                \
	{                                                                          \
		return test_page_flag(folio_head(f), bit);                        \
	}                                                                          \
	static inline void folio_set_##name(struct folio *f) { set_page_flag(folio_head(f), bit); } \
	static inline void folio_clear_##name(struct folio *f) { clear_page_flag(folio_head(f), bit); }
FOLIO_FLAG_FUNCS(locked, PG_locked)
FOLIO_FLAG_FUNCS(dirty, PG_dirty)
FOLIO_FLAG_FUNCS(uptodate, PG_uptodate)
FOLIO_FLAG_FUNCS(swapbacked, PG_swapbacked)
FOLIO_FLAG_FUNCS(swapcache, PG_swapcache)
FOLIO_FLAG_FUNCS(referenced, PG_referenced)
FOLIO_FLAG_FUNCS(reserved, PG_reserved)
FOLIO_FLAG_FUNCS(zero, PG_zero)
#undef FOLIO_FLAG_FUNCS
static inline bool PageAnonExclusive(const struct page *page) { return test_page_flag(page, PG_anon_exclusive); }
static inline void SetPageAnonExclusive(struct page *page) { set_page_flag(page, PG_anon_exclusive); }
static inline void ClearPageAnonExclusive(struct page *page) { clear_page_flag(page, PG_anon_exclusive); }
/** folio_test_lazyfree() - an anonymous folio MADV_FREE made reclaimable without swap. */
static inline bool folio_test_lazyfree(const struct folio *folio)
{
	return folio_test_anon(folio) && !folio_test_swapbacked(folio);
}

/**
 * folio_lock() - take the folio lock, sleeping while another holder has it.
 * Lock order: mmap_lock, then folio lock, then page-table lock.
 */
void folio_lock(struct folio *folio);
/** folio_trylock() - take the folio lock if it is free. Return: true if taken. */
bool folio_trylock(struct folio *folio);
/** folio_unlock() - release the folio lock and wake its waiters. */
void folio_unlock(struct folio *folio);

/* ---- the buddy allocator ---- */
/**
 * alloc_pages() - allocate 2^@order contiguous pages of system RAM.
 * @machine: the machine.
 * @gfp: __GFP_ZERO zeroes the bytes; __GFP_COMP makes a large folio.
 * @order: 0..MAX_PAGE_ORDER.
 *
 * Each page comes back with refcount 0 except the first (1), mapcount -1,
 * flags clear.  Page flags of a large folio are read from its head: the
 * first tail's flags word holds the folio order.  Takes the zone lock internally.
 *
 * Return: the first page, or NULL when no block is free, @order is too large,
 * or failure injection chose this call.
 */
struct page *alloc_pages(struct uhmm_machine *machine, gfp_t gfp, unsigned int order);
/**
 * __free_pages() - drop the reference on a block that alloc_pages() returned
 * without __GFP_COMP; the block is freed when that was the last one.
 */
void __free_pages(struct page *page, unsigned int order);
/**
 * folio_alloc() - allocate a folio of @order with one reference.
 * Return: the folio, or NULL (see alloc_pages()).
 */
struct folio *folio_alloc(struct uhmm_machine *machine, gfp_t gfp, unsigned int order);

/**
 * __split_unmapped_folio() - split a large folio into folios of @new_order.
 * @folio: a locked large folio that no page table maps, whose refcount the
 *         caller has frozen to 0 (folio_ref_freeze()).
 * @new_order: the order of the resulting folios, below folio_order(@folio).
 *
 * Every resulting folio is left locked with its refcount frozen at 0; flags,
 * mapping, per-page anon-exclusive bits and index (advanced per page) are
 * carried over.  The caller unfreezes each and unlocks it.
 *
 * Return: 0, -EINVAL for an order-0 folio or a @new_order not below the
 * folio's, -EBUSY if the folio is mapped or its refcount is not frozen.
 */
int __split_unmapped_folio(struct folio *folio, unsigned int new_order);

/**
 * split_folio_to_order() - split an unmapped large folio the caller owns.
 * @folio: a locked, unmapped large folio on which the caller holds the only
 *         reference.
 * @new_order: the order of the resulting folios.
 *
 * Return: 0 with every resulting folio locked and holding one reference that
 * the caller now owns (walk them with folio_next()); -EINVAL for a bad order;
 * -EBUSY, changing nothing, if the folio is mapped or another reference
 * exists (Linux's can_split_folio() check).
 */
int split_folio_to_order(struct folio *folio, unsigned int new_order);

/* ---- the zero pages ---- */
/** uhmm_zero_pfn() - the PFN of the machine's shared zero page (Linux's my_zero_pfn()). */
unsigned long uhmm_zero_pfn(const struct uhmm_machine *machine);
/** is_zero_pfn() - @pfn is some machine's shared zero page. */
bool is_zero_pfn(unsigned long pfn);
/** is_huge_zero_folio() - @folio is some machine's huge zero folio. */
bool is_huge_zero_folio(const struct folio *folio);

/* ---- the invariant audit ---- */
/**
 * uhmm_audit() - check every invariant of the machine (DESIGN.md principle 7).
 * @machine: the machine; no other thread may change it during the audit.
 * @report: where each violation is written, or NULL.
 *
 * Walks every mm's VMAs and page tables, every file's page cache and every
 * page of RAM, and checks: refcount = page-table references (+ one for the
 * page cache, pins and huge-zero users); per-page,
 * entire and large mapcounts = the entries that map them (present,
 * device-private and device-exclusive); RSS and page-table counters; no
 * folio both free and mapped; free lists consistent; no page allocated that
 * nothing accounts for.
 *
 * Return: the number of violations (0 when everything holds), or -EINVAL
 * for a NULL @machine.
 */
int uhmm_audit(struct uhmm_machine *machine, FILE *report);

#endif /* UHMM_MACHINE_H */
