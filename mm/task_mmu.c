// SPDX-License-Identifier: MIT
/*
 * mm/task_mmu.c - what fs/proc/task_mmu.c and fs/proc/page.c show:
 * /proc/pid/pagemap, /proc/kpageflags, /proc/kpagecount, smaps_rollup.
 */
#include <string.h>

#include "internal.h"

/* ---- pagemap ---- */

struct pagemapread {
	unsigned long start;
	uint64_t *out;
};

static uint64_t *pagemap_slot(struct mm_walk *walk, unsigned long addr)
{
	struct pagemapread *pm = walk->private;

	return &pm->out[(addr - pm->start) >> PAGE_SHIFT];
}

/* The pagemap bits of a non-present entry (swap, migration, device). */
static uint64_t pagemap_swap_bits(swp_entry_t entry, bool soft_dirty)
{
	uint64_t frame = ((uint64_t)swp_type(entry) & ((1u << PM_SWAP_TYPE_BITS) - 1)) |
			 (swp_offset(entry) << PM_SWAP_TYPE_BITS);

	return (frame & PM_PFRAME_MASK) | PM_SWAP | (soft_dirty ? PM_SOFT_DIRTY : 0);
}

static uint64_t pagemap_present_bits(struct mm_struct *mm, unsigned long pfn, bool soft_dirty,
				     int mapcount)
{
	uint64_t bits = PM_PRESENT | ((uint64_t)pfn & PM_PFRAME_MASK);

	if (soft_dirty)
		bits |= PM_SOFT_DIRTY;
	if (pfn != mm->machine->zero_pfn && !is_huge_zero_pfn(mm->machine, pfn) && mapcount == 1)
		bits |= PM_MMAP_EXCLUSIVE;
	return bits;
}

static int pagemap_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next,
			     struct mm_walk *walk)
{
	pthread_mutex_t *ptl = pmd_lock(walk->mm, pmd);
	pmd_t val = pmdp_get(pmd);
	int ret = 0;

	if (pmd_leaf(val)) {
		unsigned long first = pmd_pfn(val) + pte_index(addr);
		struct page *page = pfn_to_page(first);
		int mapcount = is_huge_zero_pfn(walk->mm->machine, first) ? 0 : page_mapcount(page);
		/*
		 * PM_FILE for a folio that is not anonymous: page-cache pages
		 * (shared hugetlb), and the huge zero folio too, since Linux's
		 * pagemap_pmd_range() takes pmd_page() where the PTE level takes
		 * vm_normal_page() (which hides the 4 KiB zero page).  Found by
		 * the differential suite (uhmm left PM_FILE off the huge zero
		 * folio).
		 */
		uint64_t file = !folio_test_anon(page_folio(page)) ? PM_FILE : 0;

		for (unsigned long a = addr, i = 0; a < next; a += PAGE_SIZE, i++)
			*pagemap_slot(walk, a) = pagemap_present_bits(walk->mm, first + i,
						pmd_val(val) & _PAGE_SOFT_DIRTY, mapcount) | file;
		ret = WALK_SKIP_PTES;
	} else if (is_swap_pmd(val)) {
		swp_entry_t entry = pmd_to_swp_entry(val);

		for (unsigned long a = addr, i = 0; a < next; a += PAGE_SIZE, i++) {
			swp_entry_t e = is_pfn_swap_entry(entry) ?
					swp_entry(swp_type(entry), swp_offset(entry) + i) : entry;

			*pagemap_slot(walk, a) = pagemap_swap_bits(e, false);
		}
		ret = WALK_SKIP_PTES;
	}
	spin_unlock(ptl);
	return ret;
}

static int pagemap_pte_entry(pte_t *pte, unsigned long addr, unsigned long next,
			     struct mm_walk *walk)
{
	pte_t val = ptep_get(pte);
	uint64_t *slot = pagemap_slot(walk, addr);

	(void)next;
	if (pte_none(val)) {
		*slot = 0;
	} else if (pte_present(val)) {
		unsigned long pfn = pte_pfn(val);
		int mapcount = pfn == walk->mm->machine->zero_pfn || is_huge_zero_pfn(walk->mm->machine, pfn)
				       ? 0 : page_mapcount(pfn_to_page(pfn));

		struct page *page = vm_normal_page(walk->mm, val);

		*slot = pagemap_present_bits(walk->mm, pfn, pte_val(val) & _PAGE_SOFT_DIRTY,
					     mapcount);
		/* A page-cache (file or shmem) page, as pte_to_pagemap_entry() says. */
		if (page && !folio_test_anon(page_folio(page)))
			*slot |= PM_FILE;
	} else {
		*slot = pagemap_swap_bits(pte_to_swp_entry(val), pte_swp_soft_dirty(val));
	}
	return 0;
}

static int pagemap_hole(unsigned long addr, unsigned long next, struct mm_walk *walk)
{
	for (; addr < next; addr += PAGE_SIZE)
		*pagemap_slot(walk, addr) = 0;
	return 0;
}

int mm_pagemap_read(struct mm_struct *mm, unsigned long addr, unsigned long npages, uint64_t *out)
{
	static const struct mm_walk_ops ops = {
		.pmd_entry = pagemap_pmd_entry,
		.pte_entry = pagemap_pte_entry,
		.pte_hole = pagemap_hole,
	};
	struct pagemapread pm = { .start = addr, .out = out };
	unsigned long end;

	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (offset_in_page(addr))
		return -EINVAL;
	if (!npages)
		return 0;
	if (!out || npages > (TASK_SIZE >> PAGE_SHIFT) + 1)
		return -EINVAL;
	memset(out, 0, npages * sizeof(*out));
	if (addr >= TASK_SIZE)
		return 0; /* beyond the address space: nothing maps there */
	end = addr + (npages << PAGE_SHIFT);
	if (end > TASK_SIZE || end < addr)
		end = TASK_SIZE; /* entries past the address space stay 0 */
	pthread_rwlock_rdlock(&mm->mmap_lock);
	/* Only VMAs are walked; everything outside them reads as 0. */
	for (struct vm_area_struct *vma = find_vma(mm, addr); vma && vma->vm_start < end;
	     vma = find_vma(mm, vma->vm_end)) {
		unsigned long s = vma->vm_start > addr ? vma->vm_start : addr;
		unsigned long e = vma->vm_end < end ? vma->vm_end : end;

		walk_page_range(mm, s, e, &ops, &pm);
	}
	pthread_rwlock_unlock(&mm->mmap_lock);
	return 0;
}

/* ---- kpageflags / kpagecount ---- */

uint64_t uhmm_kpageflags(unsigned long pfn)
{
	struct page *page;
	struct folio *folio;
	uint64_t k = 0;

	if (!pfn_valid(pfn))
		return 1ULL << KPF_NOPAGE;
	page = pfn_to_page(pfn);
	if (test_page_flag(page, PG_buddy))
		return 1ULL << KPF_BUDDY;
	if (!PageTail(page) && !test_page_flag(page, PG_head) && page_ref_count(page) == 0)
		return 0; /* inside a free block, or not handed out yet */
	folio = page_folio(page);
	if (test_page_flag(folio_head(folio), PG_table))
		return 1ULL << KPF_PGTABLE;
	if (folio_test_large(folio)) {
		k |= 1ULL << (page == folio_head(folio) ? KPF_COMPOUND_HEAD : KPF_COMPOUND_TAIL);
		if (folio_test_hugetlb(folio))
			k |= 1ULL << KPF_HUGE; /* free in the pool or in use */
		else if (folio_test_anon(folio))
			k |= 1ULL << KPF_THP; /* any large anonymous folio, as Linux */
	}
	if (folio_test_zero(folio)) {
		k |= 1ULL << KPF_ZERO_PAGE;
		if (folio_test_large(folio))
			k |= 1ULL << KPF_THP; /* the huge zero folio is reported as a THP */
	}
	if (folio_mapped(folio))
		k |= 1ULL << KPF_MMAP;
	if (folio_test_anon(folio))
		k |= 1ULL << KPF_ANON;
	if (folio_test_locked(folio))
		k |= 1ULL << KPF_LOCKED;
	if (folio_test_dirty(folio))
		k |= 1ULL << KPF_DIRTY;
	if (folio_test_uptodate(folio))
		k |= 1ULL << KPF_UPTODATE;
	if (folio_test_referenced(folio))
		k |= 1ULL << KPF_REFERENCED;
	if (folio_test_swapbacked(folio))
		k |= 1ULL << KPF_SWAPBACKED;
	if (folio_test_swapcache(folio))
		k |= 1ULL << KPF_SWAPCACHE;
	if (folio_test_reserved(folio))
		k |= 1ULL << KPF_RESERVED;
	return k;
}

int uhmm_kpagecount(unsigned long pfn)
{
	struct page *page;

	if (!pfn_valid(pfn))
		return 0;
	page = pfn_to_page(pfn);
	if (test_page_flag(page, PG_buddy))
		return 0;
	if (!PageTail(page) && !test_page_flag(page, PG_head) && page_ref_count(page) == 0)
		return 0;
	if (test_page_flag(folio_head(page_folio(page)), PG_table) ||
	    folio_test_zero(page_folio(page)))
		return 0;
	return page_mapcount(page);
}

/* ---- smaps_rollup ---- */

/*
 * smaps_account(): @present is false for a migration entry, which Linux
 * counts in everything but Rss; a device-private entry counts as present.
 */
static void smaps_account(struct mm_smaps *s, struct folio *folio, struct page *page,
			  unsigned long size, bool dirty, int mapcount, bool present)
{
	bool anon = folio_test_anon(folio);

	(void)page;
	if (present)
		s->rss += size;
	if (anon)
		s->anonymous += size;
	if (anon && folio_test_lazyfree(folio) && !dirty && !folio_test_dirty(folio))
		s->lazy_free += size;
	dirty = dirty || folio_test_dirty(folio);
	if (mapcount >= 2)
		*(dirty ? &s->shared_dirty : &s->shared_clean) += size;
	else
		*(dirty ? &s->private_dirty : &s->private_clean) += size;
}

static int smaps_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next,
			   struct mm_walk *walk)
{
	struct mm_smaps *s = walk->private;
	pthread_mutex_t *ptl = pmd_lock(walk->mm, pmd);
	pmd_t val = pmdp_get(pmd);
	int ret = 0;

	(void)addr;
	(void)next;
	if (pmd_leaf(val)) {
		struct folio *folio = page_folio(pfn_to_page(pmd_pfn(val)));

		if (folio_test_hugetlb(folio)) {
			/* smaps_hugetlb_range(): not in Rss, by how many map it. */
			if (folio_mapcount(folio) >= 2)
				s->shared_hugetlb += HPAGE_SIZE;
			else
				s->private_hugetlb += HPAGE_SIZE;
		} else if (!is_huge_zero_pfn(walk->mm->machine, pmd_pfn(val))) {
			smaps_account(s, folio, folio_head(folio), PMD_SIZE, pmd_dirty(val),
				      folio_entire_mapcount(folio), true);
			if (folio_test_anon(folio))
				s->anon_huge_pages += PMD_SIZE;
		}
		ret = WALK_SKIP_PTES;
	} else if (is_swap_pmd(val)) {
		swp_entry_t e = pmd_to_swp_entry(val);

		if (is_pfn_swap_entry(e)) {
			struct folio *folio = page_folio(pfn_to_page(swp_offset_pfn(e)));

			smaps_account(s, folio, folio_head(folio), PMD_SIZE, false,
				      folio_entire_mapcount(folio), is_device_private_entry(e));
		}
		ret = WALK_SKIP_PTES;
	}
	spin_unlock(ptl);
	return ret;
}

static int smaps_pte_entry(pte_t *pte, unsigned long addr, unsigned long next,
			   struct mm_walk *walk)
{
	struct mm_smaps *s = walk->private;
	pte_t val = ptep_get(pte);

	(void)addr;
	(void)next;
	if (pte_present(val)) {
		struct page *page = vm_normal_page(walk->mm, val);

		if (page)
			smaps_account(s, page_folio(page), page, PAGE_SIZE, pte_dirty(val),
				      page_mapcount(page), true);
	} else if (is_swap_pte(val) && !non_swap_entry(pte_to_swp_entry(val))) {
		s->swap += PAGE_SIZE;
	} else if (is_swap_pte(val) && is_pfn_swap_entry(pte_to_swp_entry(val))) {
		swp_entry_t e = pte_to_swp_entry(val);
		struct page *page = pfn_to_page(swp_offset_pfn(e));

		smaps_account(s, page_folio(page), page, PAGE_SIZE, false, page_mapcount(page),
			      is_device_private_entry(e));
	}
	return 0;
}

int mm_smaps_rollup(struct mm_struct *mm, struct mm_smaps *out)
{
	static const struct mm_walk_ops ops = {
		.pmd_entry = smaps_pmd_entry,
		.pte_entry = smaps_pte_entry,
	};

	if (!mm || !out)
		return -EINVAL; /* uhmm only: Linux has no NULL mm or buffer here */
	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&mm->mmap_lock);
	for (size_t i = 0; i < mm->mm_mt.nr; i++)
		walk_page_range(mm, mm->mm_mt.vmas[i]->vm_start, mm->mm_mt.vmas[i]->vm_end, &ops,
				out);
	out->page_tables = (unsigned long)atomic_load(&mm->pgtables_bytes);
	pthread_rwlock_unlock(&mm->mmap_lock);
	return 0;
}

long mm_get_rss(struct mm_struct *mm, int member)
{
	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (member < 0 || member >= NR_MM_COUNTERS)
		return -EINVAL;
	return atomic_load(&mm->rss_stat[member]);
}
