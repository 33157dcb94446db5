// SPDX-License-Identifier: MIT
/*
 * mm/pgtable.c - page-table pages: allocation from system RAM, the split
 * page-table locks, walking and populating the four levels, freeing empty
 * tables, and the PTE tables deposited with PMD leaves.
 *
 * Every table is one 4 KiB page of system RAM holding 512 entries.  Its
 * struct page carries PG_table, the owning mm, its level and a pointer to
 * its lock (Linux's ALLOC_SPLIT_PTLOCKS: a pthread mutex is too big to sit
 * in struct page).  The PGD and PUD levels are populated under
 * mm->page_table_lock; a PMD slot is populated under the ptl of the PMD
 * table that holds it, and PTEs are changed under the ptl of their table.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/**
 * vm_get_page_prot() - the protection bits of a present entry for @vm_flags.
 * @vm_flags: the VMA's flags.
 *
 * Private writable mappings get no _PAGE_RW here: the write fault decides
 * (the zero page and shared folios must be copied first), as in Linux.
 *
 * Return: the bits to OR with a PFN.
 */
uint64_t vm_get_page_prot(unsigned long vm_flags)
{
	uint64_t prot = _PAGE_USER | _PAGE_ACCESSED;

	if (vm_flags & VM_ACCESS_FLAGS)
		prot |= _PAGE_PRESENT;
	else
		prot |= _PAGE_PROTNONE;
	if (!(vm_flags & VM_EXEC))
		prot |= _PAGE_NX;
	if ((vm_flags & (VM_SHARED | VM_WRITE)) == (VM_SHARED | VM_WRITE))
		prot |= _PAGE_RW;
	return prot;
}

/**
 * pt_alloc_table() - allocate a zeroed page-table page.
 * @mm: the owner, charged in pgtables_bytes for every level below the PGD
 *      (Linux's mm_pgtables_bytes(), which VmPTE shows, leaves the PGD out).
 * @level: PT_LEVEL_PTE .. PT_LEVEL_PGD.
 *
 * Return: the table's bytes, or NULL when RAM (or the lock) cannot be had.
 */
uint64_t *pt_alloc_table(struct mm_struct *mm, int level)
{
	struct page *page = alloc_pages(mm->machine, __GFP_ZERO, 0);
	pthread_mutex_t *ptl;

	if (!page)
		return NULL;
	ptl = malloc(sizeof(*ptl));
	if (!ptl) {
		__free_pages(page, 0);
		return NULL;
	}
	pthread_mutex_init(ptl, NULL);
	/* Stored atomically: they alias lru and mapping, which lock-free page
	 * walkers (kpageflags) load. */
	__atomic_store_n(&page->pmd_huge_pte, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&page->pt_deposit_next, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&page->pt_mm, mm, __ATOMIC_RELAXED);
	page->pt_index = (unsigned long)level;
	page->ptl = ptl;
	set_page_flag(page, PG_table);
	if (level != PT_LEVEL_PGD)
		atomic_fetch_add(&mm->pgtables_bytes, (long)PAGE_SIZE);
	return page_address(page);
}

/**
 * pt_free_table() - free a table no entry points to any more.
 * @mm: the owner.
 * @table: the table; its entries should all be none.
 */
void pt_free_table(struct mm_struct *mm, uint64_t *table)
{
	struct page *page = pt_table_page(mm, table);

	if (page->pt_index != PT_LEVEL_PGD)
		atomic_fetch_sub(&mm->pgtables_bytes, (long)PAGE_SIZE);
	pthread_mutex_destroy(page->ptl);
	free(page->ptl);
	page->ptl = NULL;
	__atomic_store_n(&page->pt_mm, NULL, __ATOMIC_RELAXED);
	page->pt_index = 0;
	__atomic_store_n(&page->pmd_huge_pte, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&page->pt_deposit_next, NULL, __ATOMIC_RELAXED);
	clear_page_flag(page, PG_table);
	__free_pages(page, 0);
}

pthread_mutex_t *pte_lockptr(struct mm_struct *mm, pmd_t pmd)
{
	return pt_table_page(mm, pt_entry_table(mm, pmd_val(pmd)))->ptl;
}

pthread_mutex_t *pmd_lockptr(struct mm_struct *mm, pmd_t *pmd)
{
	return pt_table_page(mm, (void *)((uintptr_t)pmd & ~(uintptr_t)(PAGE_SIZE - 1)))->ptl;
}

pthread_mutex_t *pmd_lock(struct mm_struct *mm, pmd_t *pmd)
{
	pthread_mutex_t *ptl = pmd_lockptr(mm, pmd);

	pthread_mutex_lock(ptl);
	return ptl;
}

/*
 * Populate an upper-level slot (PGD or PUD entry) with a new table of
 * @level, under mm->page_table_lock.  Return: 0 or -ENOMEM.
 */
static int populate_upper(struct mm_struct *mm, uint64_t *slot, int level)
{
	uint64_t *table;

	if (__atomic_load_n(slot, __ATOMIC_ACQUIRE))
		return 0;
	table = pt_alloc_table(mm, level);
	if (!table)
		return -ENOMEM;
	pthread_mutex_lock(&mm->page_table_lock);
	if (!__atomic_load_n(slot, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(slot, ((uint64_t)page_to_pfn(pt_table_page(mm, table)) << PAGE_SHIFT) |
					       _PAGE_TABLE, __ATOMIC_RELEASE);
		table = NULL;
	}
	pthread_mutex_unlock(&mm->page_table_lock);
	if (table)
		pt_free_table(mm, table);
	return 0;
}

static pmd_t *__pmd_off(struct mm_struct *mm, unsigned long addr, bool alloc)
{
	uint64_t *pgd_slot = &mm->pgd[pgd_index(addr)];
	uint64_t *pud_slot;

	if (alloc && populate_upper(mm, pgd_slot, PT_LEVEL_PUD))
		return NULL;
	if (!__atomic_load_n(pgd_slot, __ATOMIC_ACQUIRE))
		return NULL;
	pud_slot = pt_entry_table(mm, __atomic_load_n(pgd_slot, __ATOMIC_ACQUIRE)) + pud_index(addr);
	if (alloc && populate_upper(mm, pud_slot, PT_LEVEL_PMD))
		return NULL;
	if (!__atomic_load_n(pud_slot, __ATOMIC_ACQUIRE))
		return NULL;
	return (pmd_t *)(pt_entry_table(mm, __atomic_load_n(pud_slot, __ATOMIC_ACQUIRE)) +
			 pmd_index(addr));
}

pmd_t *pmd_off_alloc(struct mm_struct *mm, unsigned long addr)
{
	return __pmd_off(mm, addr, true);
}

pmd_t *pmd_off(struct mm_struct *mm, unsigned long addr)
{
	return __pmd_off(mm, addr, false);
}

int pte_alloc(struct mm_struct *mm, pmd_t *pmd)
{
	pthread_mutex_t *ptl;
	uint64_t *table;
	pmd_t val = pmdp_get(pmd);

	if (pmd_none(val)) {
		table = pt_alloc_table(mm, PT_LEVEL_PTE);
		if (!table)
			return -ENOMEM;
		ptl = pmd_lock(mm, pmd);
		val = pmdp_get(pmd);
		if (pmd_none(val)) {
			val = __pmd(((uint64_t)page_to_pfn(pt_table_page(mm, table)) << PAGE_SHIFT) |
				    _PAGE_TABLE);
			set_pmd(pmd, val);
			table = NULL;
		}
		spin_unlock(ptl);
		if (table)
			pt_free_table(mm, table);
	}
	if (pmd_leaf(val) || is_swap_pmd(val))
		return 1;
	return 0;
}

/* A PMD value that points to a PTE table. */
static bool pmd_is_table(pmd_t val)
{
	return (pmd_val(val) & _PAGE_PRESENT) && !(pmd_val(val) & _PAGE_PSE);
}

pte_t *pte_offset_map_lock(struct mm_struct *mm, pmd_t *pmd, unsigned long addr,
			   pthread_mutex_t **ptlp)
{
	pmd_t val = pmdp_get(pmd);
	pthread_mutex_t *ptl;

	if (!pmd_is_table(val))
		return NULL;
	ptl = pte_lockptr(mm, val);
	pthread_mutex_lock(ptl);
	if (pmd_val(pmdp_get(pmd)) != pmd_val(val)) {
		pthread_mutex_unlock(ptl);
		return NULL;
	}
	*ptlp = ptl;
	return (pte_t *)pt_entry_table(mm, pmd_val(val)) + pte_index(addr);
}

void pgtable_trans_huge_deposit(struct mm_struct *mm, pmd_t *pmd, uint64_t *pgtable)
{
	struct page *pmd_table = pt_table_page(mm, (void *)((uintptr_t)pmd & ~(uintptr_t)(PAGE_SIZE - 1)));
	struct page *pte_table = pt_table_page(mm, pgtable);

	__atomic_store_n(&pte_table->pt_deposit_next, pmd_table->pmd_huge_pte, __ATOMIC_RELAXED);
	__atomic_store_n(&pmd_table->pmd_huge_pte, pte_table, __ATOMIC_RELAXED);
}

uint64_t *pgtable_trans_huge_withdraw(struct mm_struct *mm, pmd_t *pmd)
{
	struct page *pmd_table = pt_table_page(mm, (void *)((uintptr_t)pmd & ~(uintptr_t)(PAGE_SIZE - 1)));
	struct page *pte_table = pmd_table->pmd_huge_pte;

	if (!pte_table)
		return NULL;
	__atomic_store_n(&pmd_table->pmd_huge_pte, pte_table->pt_deposit_next, __ATOMIC_RELAXED);
	__atomic_store_n(&pte_table->pt_deposit_next, NULL, __ATOMIC_RELAXED);
	return page_address(pte_table);
}

static bool table_empty(const uint64_t *table)
{
	for (int i = 0; i < 512; i++)
		if (__atomic_load_n(&table[i], __ATOMIC_RELAXED))
			return false;
	return true;
}

/**
 * try_to_free_pte() - free the PTE table under @pmd if every entry is none
 * (Linux's try_to_free_pte(), CONFIG_PT_RECLAIM).
 * @mm: the owner.
 * @pmd: a PMD slot pointing to a PTE table.
 *
 * Linux clears the PMD under the ptl and frees the table after an RCU
 * grace period, since lockless walkers may still read it.  uhmm's walkers
 * take no RCU: they rely on a PTE table staying while they hold mmap_lock
 * (faults, the CPU, page walks) or the reverse-map lock of the VMA (rmap
 * walks).  So the caller holds mmap_lock for writing and the VMA's
 * reverse-map locks (i_mmap_rwsem, then the anon_vma's), and no one can
 * reach the table while it goes.
 *
 * Return: true when the table was freed.
 */
bool try_to_free_pte(struct mm_struct *mm, pmd_t *pmd)
{
	pthread_mutex_t *ptl = pmd_lock(mm, pmd);
	pmd_t val = pmdp_get(pmd);
	uint64_t *table;

	if (pmd_none(val) || pmd_leaf(val) || !(pmd_val(val) & _PAGE_PRESENT)) {
		spin_unlock(ptl);
		return false;
	}
	table = pt_entry_table(mm, pmd_val(val));
	if (!table_empty(table)) {
		spin_unlock(ptl);
		return false;
	}
	set_pmd(pmd, __pmd(0));
	spin_unlock(ptl);
	pt_free_table(mm, table);
	return true;
}

/* The range [floor, ceiling) tables may be freed in (@ceiling 0: no upper bound). */
struct pgtable_bounds {
	unsigned long start, end;
	unsigned long floor, ceiling;
};

/*
 * Free the empty tables below @slot (an entry of level @level + 1 pointing
 * to a table of @level) that cover part of [start, end), then the table
 * itself when it ended up empty and lies inside [floor, ceiling).  @base is
 * the address the table maps from.
 */
static void free_tables_below(struct mm_struct *mm, uint64_t *slot, int level, unsigned long base,
			      const struct pgtable_bounds *b)
{
	uint64_t *table = pt_entry_table(mm, *slot);
	unsigned int shift = PAGE_SHIFT + 9 * (unsigned int)(level - 1);
	unsigned long span = 1UL << shift;
	unsigned long table_end = base + span * PTRS_PER_PTE;

	if (level > PT_LEVEL_PTE) {
		for (int i = 0; i < 512; i++) {
			unsigned long lo = base + (unsigned long)i * span;
			unsigned long hi = lo + span;

			if (hi <= b->start || lo >= b->end || !table[i])
				continue;
			if (level == PT_LEVEL_PMD && (table[i] & _PAGE_PSE))
				continue; /* a PMD leaf is not a table */
			if (level == PT_LEVEL_PMD && !(table[i] & _PAGE_PRESENT))
				continue; /* a PMD swap entry */
			free_tables_below(mm, &table[i], level - 1, lo, b);
		}
	}
	if (base < b->floor || (b->ceiling && table_end > b->ceiling))
		return; /* it also covers a file VMA (free_pgd_range()'s floor/ceiling) */
	if (table_empty(table) && !pt_table_page(mm, table)->pmd_huge_pte) {
		__atomic_store_n(slot, 0, __ATOMIC_RELEASE);
		pt_free_table(mm, table);
	}
}

void free_pgtables(struct mm_struct *mm, unsigned long start, unsigned long end,
		   unsigned long floor, unsigned long ceiling)
{
	struct pgtable_bounds b = { .start = start, .end = end, .floor = floor, .ceiling = ceiling };

	for (unsigned long i = pgd_index(start); i <= pgd_index(end - 1); i++) {
		if (!mm->pgd[i])
			continue;
		free_tables_below(mm, &mm->pgd[i], PT_LEVEL_PUD, i << PGDIR_SHIFT, &b);
	}
}

/* Free a whole subtree, including leftovers (exit_mmap after every zap). */
static void free_subtree(struct mm_struct *mm, uint64_t *table, int level)
{
	struct page *page = pt_table_page(mm, table);

	if (level > PT_LEVEL_PTE) {
		for (int i = 0; i < 512; i++) {
			uint64_t e = table[i];

			if (!e)
				continue;
			if (level == PT_LEVEL_PMD && (!(e & _PAGE_PRESENT) || (e & _PAGE_PSE))) {
				uhmm_warn("exit_mmap: PMD entry %#llx left behind", (unsigned long long)e);
				continue;
			}
			free_subtree(mm, pt_entry_table(mm, e), level - 1);
			table[i] = 0;
		}
	} else if (!table_empty(table)) {
		uhmm_warn("exit_mmap: a PTE table still maps something");
	}
	while (page->pmd_huge_pte) {
		pmd_t *any = (pmd_t *)table;
		pt_free_table(mm, pgtable_trans_huge_withdraw(mm, any));
	}
	pt_free_table(mm, table);
}

void free_all_pgtables(struct mm_struct *mm)
{
	free_subtree(mm, mm->pgd, PT_LEVEL_PGD);
	mm->pgd = NULL;
}
