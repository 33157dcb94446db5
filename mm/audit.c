// SPDX-License-Identifier: MIT
/*
 * mm/audit.c - uhmm_audit(): every invariant of DESIGN.md principle 7,
 * checked by walking every mm, every table and every page of RAM.
 *
 * What it counts, per page of the machine: the PTEs that map it and the PMD
 * leaves that map its folio.  What it then demands:
 *   - free pages (in the buddy lists) are mapped by nothing;
 *   - a folio's refcount equals its mappings (one per PTE, one per PMD)
 *     plus one if it is in a page cache, plus its pins
 *     (GUP_PIN_COUNTING_BIAS each for a small folio, one each, counted in
 *     _pincount, for a large one); its per-page, entire and large
 *     mapcounts equal what maps it; a folio that nothing maps, caches or
 *     pins is not allocated (a leak);
 *   - each mapped anonymous page's mapping and index agree with the VMA
 *     and address that map it; a writable private PTE maps an exclusive page;
 *   - each mapped page-cache page belongs to the file the VMA maps, at the
 *     VMA's offset for the address; a private VMA maps it read-only;
 *   - each mm's VMAs are sorted, aligned and disjoint, every entry lies in a
 *     VMA, the RSS counters (anon, file, shmem; no swap entries yet) and
 *     pgtables_bytes match what its tables hold, and each PMD leaf has a
 *     deposited PTE table; every file VMA is on its file's i_mmap and holds
 *     a file reference, and nothing else is on an i_mmap;
 *   - every cached folio sits at the index of its slot in the page cache
 *     of its ->mapping, is order 0, below i_size, swap-backed exactly when
 *     the file is shmem, and the cache counts its folios (nrpages);
 *   - the zero page is reserved and mapped read-only; the huge zero folio is
 *     referenced once per mm that used it;
 *   - hugetlb: hugetlb VMAs are 2 MiB aligned and map only hugetlb folios,
 *     each whole by one PMD leaf without a deposited table (never by a
 *     PTE), not counted in RSS; every free pool folio is on the free list,
 *     unmapped, refcount 0; the pool counts (total, free, surplus) match
 *     the folios found; the reservations the VMAs still hold add up to
 *     HugePages_Rsvd, which free pages cover.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "uhmm/gup.h"
#include "uhmm/memremap.h"

/* A memremapped device range, audited beside RAM: its pages follow RAM's in the arrays. */
struct audit_range {
	unsigned long start_pfn;
	unsigned long nr_pages;
	long base;
};

struct audit {
	struct uhmm_machine *machine;
	FILE *report;
	int violations;
	uint8_t *state;   /* AUDIT_FREE / AUDIT_USED per page */
	int32_t *pte_maps;/* PTEs mapping each page */
	int32_t *pmd_maps;/* PMD leaves mapping each folio (at its head) */
	uint8_t *cached;  /* the page is a folio in some page cache */
	uint8_t *table;   /* the page is a page table */
	int32_t *migr;    /* migration entries (PTE or PMD, at the head) pointing at each page */
	struct audit_range *dev; /* memremapped device ranges of the machine */
	int nr_dev;
	long nr_idx;      /* RAM pages + device pages */
	/* per mm being walked */
	struct mm_struct *mm;
	long rss[NR_MM_COUNTERS];
	long tables;
	int huge_zero_mms;
	unsigned long file_vmas; /* VMAs with a file, over every mm */
	unsigned long hugetlb_resv;   /* reservations the hugetlb VMAs hold */
	unsigned long hugetlb_in_use; /* hugetlb folios with references */
	unsigned long hugetlb_free;   /* free pool folios found in RAM */
};

static void __attribute__((format(printf, 2, 3))) violation(struct audit *a, const char *fmt, ...)
{
	va_list ap;

	a->violations++;
	if (!a->report)
		return;
	fprintf(a->report, "uhmm audit: ");
	va_start(ap, fmt);
	vfprintf(a->report, fmt, ap);
	va_end(ap);
	fputc('\n', a->report);
}

/*
 * Index of @pfn in the per-page arrays: RAM first, then each device range
 * of the machine; -1 when it is neither.
 */
static long page_idx(struct audit *a, unsigned long pfn)
{
	if (pfn >= a->machine->start_pfn && pfn < a->machine->start_pfn + a->machine->nr_pages)
		return (long)(pfn - a->machine->start_pfn);
	for (int i = 0; i < a->nr_dev; i++)
		if (pfn >= a->dev[i].start_pfn && pfn < a->dev[i].start_pfn + a->dev[i].nr_pages)
			return a->dev[i].base + (long)(pfn - a->dev[i].start_pfn);
	return -1;
}

/* Is @idx a page of system RAM (not device memory)? */
static bool idx_is_ram(struct audit *a, long idx) { return idx < (long)a->machine->nr_pages; }

/* A table page of the mm: mark it and check its struct page. */
static void audit_table(struct audit *a, const void *table, int level)
{
	struct page *page = pt_table_page(a->mm, table);
	long idx = page_idx(a, page_to_pfn(page));

	if (idx < 0 || !idx_is_ram(a, idx)) {
		violation(a, "mm %p: table %p outside RAM", (void *)a->mm, table);
		return;
	}
	if (level != PT_LEVEL_PGD)
		a->tables++;
	if (a->table[idx])
		violation(a, "mm %p: table pfn %#lx reached twice", (void *)a->mm, page_to_pfn(page));
	a->table[idx] = 1;
	if (!test_page_flag(page, PG_table) || page->pt_mm != a->mm ||
	    page->pt_index != (unsigned long)level)
		violation(a, "mm %p: table pfn %#lx has bad metadata (table %d, mm %p, level %lu/%d)",
			  (void *)a->mm, page_to_pfn(page), test_page_flag(page, PG_table),
			  (void *)page->pt_mm, page->pt_index, level);
}

/* Is @anon_vma one of the anon_vmas @vma is chained to? */
static bool vma_links_anon_vma(struct vm_area_struct *vma, const struct anon_vma *anon_vma)
{
	struct anon_vma_chain *avc;

	list_for_each_entry(avc, &vma->anon_vma_chain, same_vma)
		if (avc->anon_vma == anon_vma)
			return true;
	return false;
}

/* Check an anonymous page mapped at @addr by @vma against its folio's rmap fields. */
static void audit_anon_rmap(struct audit *a, struct vm_area_struct *vma, unsigned long addr,
			    struct page *page, bool writable)
{
	struct folio *folio = page_folio(page);
	unsigned long want_index = linear_page_index(vma, addr);

	if (!folio_test_anon(folio))
		return;
	if (!vma_links_anon_vma(vma, (void *)((unsigned long)folio->mapping & ~PAGE_MAPPING_ANON)))
		violation(a, "mm %p addr %#lx: folio %#lx anon_vma %p is not linked to the VMA",
			  (void *)a->mm, addr, folio_pfn(folio), folio->mapping);
	if (folio->index + (unsigned long)(page - folio_head(folio)) != want_index)
		violation(a, "mm %p addr %#lx: page index %#lx, VMA says %#lx", (void *)a->mm, addr,
			  folio->index + (unsigned long)(page - folio_head(folio)), want_index);
	if (writable && !(vma->vm_flags & VM_SHARED) && !PageAnonExclusive(page))
		violation(a, "mm %p addr %#lx: writable PTE maps a non-exclusive anon page",
			  (void *)a->mm, addr);
}

/* Check a page-cache page mapped at @addr by @vma: the VMA's file, its offset. */
static void audit_file_rmap(struct audit *a, struct vm_area_struct *vma, unsigned long addr,
			    struct page *page, bool writable)
{
	struct folio *folio = page_folio(page);
	struct address_space *mapping = folio->mapping;
	unsigned long index = folio->index + (unsigned long)(page - folio_head(folio));

	if (!mapping && !vma->vm_file && (vma->vm_flags & VM_MIXEDMAP)) {
		/* A driver's page, mapped with vm_insert_page(). */
		if (writable && !(vma->vm_flags & VM_SHARED))
			violation(a, "mm %p addr %#lx: a private VMA maps a driver page writable",
				  (void *)a->mm, addr);
		return;
	}
	if (!vma->vm_file || mapping != vma->vm_file->f_mapping) {
		violation(a, "mm %p addr %#lx: pfn %#lx (mapping %p) is not a page of the file the "
			  "VMA maps", (void *)a->mm, addr, page_to_pfn(page), (void *)mapping);
		return;
	}
	if (index != linear_page_index(vma, addr))
		violation(a, "mm %p addr %#lx: page-cache index %#lx, VMA says %#lx", (void *)a->mm,
			  addr, index, linear_page_index(vma, addr));
	if (writable && !(vma->vm_flags & VM_SHARED))
		violation(a, "mm %p addr %#lx: a private VMA maps a page-cache page writable",
			  (void *)a->mm, addr);
}

/*
 * A migration entry (PTE, or PMD with @pmd) at @addr: the folio is locked
 * and referenced by its migrator; the entry is no mapping but still counts
 * in the RSS of the folio's kind (as Linux's zap and fork count it).
 */
static void audit_migration_entry(struct audit *a, struct vm_area_struct *vma, unsigned long addr,
				  swp_entry_t entry, bool pmd)
{
	unsigned long pfn = swp_offset_pfn(entry);
	long idx = page_idx(a, pfn);
	struct folio *folio;

	if (idx < 0) {
		violation(a, "mm %p addr %#lx: migration entry for pfn %#lx outside memory",
			  (void *)a->mm, addr, pfn);
		return;
	}
	folio = page_folio(pfn_to_page(pfn));
	if (pmd && (folio_head(folio) != pfn_to_page(pfn) ||
		    folio_order(folio) != HPAGE_PMD_ORDER || !IS_ALIGNED(addr, PMD_SIZE))) {
		violation(a, "mm %p addr %#lx: PMD migration entry for pfn %#lx, not a PMD folio",
			  (void *)a->mm, addr, pfn);
		return;
	}
	a->migr[idx]++;
	if (!folio_test_locked(folio) || folio_ref_count(folio) < 1)
		violation(a, "mm %p addr %#lx: migration entry for pfn %#lx whose folio is not "
			  "locked and referenced (refcount %d)", (void *)a->mm, addr, pfn,
			  folio_ref_count(folio));
	a->rss[mm_counter(folio)] += pmd ? (long)HPAGE_PMD_NR : 1;
	if (folio_test_anon(folio))
		audit_anon_rmap(a, vma, addr, pfn_to_page(pfn), false);
}

/*
 * A device-private entry (PTE, or PMD with @pmd): a mapping of a
 * device-private page, counted like a present PROT_NONE entry.
 */
static void audit_device_private_entry(struct audit *a, struct vm_area_struct *vma,
				       unsigned long addr, swp_entry_t entry, bool pmd)
{
	unsigned long pfn = swp_offset_pfn(entry);
	long idx = page_idx(a, pfn);
	struct page *page = pfn_to_page(pfn);
	struct folio *folio;

	if (idx < 0 || !is_device_private_page(page)) {
		violation(a, "mm %p addr %#lx: device-private entry for pfn %#lx, not "
			  "device-private memory of this machine", (void *)a->mm, addr, pfn);
		return;
	}
	folio = page_folio(page);
	if (pmd) {
		if (folio_head(folio) != page || folio_order(folio) != HPAGE_PMD_ORDER ||
		    !IS_ALIGNED(addr, PMD_SIZE)) {
			violation(a, "mm %p addr %#lx: device-private PMD for pfn %#lx, not the "
				  "head of a PMD folio", (void *)a->mm, addr, pfn);
			return;
		}
		a->pmd_maps[idx]++;
		a->rss[MM_ANONPAGES] += HPAGE_PMD_NR;
	} else {
		a->pte_maps[idx]++;
		a->rss[MM_ANONPAGES]++;
	}
	if (!folio_test_anon(folio))
		violation(a, "mm %p addr %#lx: device-private pfn %#lx is not anonymous",
			  (void *)a->mm, addr, pfn);
	else
		audit_anon_rmap(a, vma, addr, page, is_writable_device_private_entry(entry));
}

static void audit_pte(struct audit *a, struct vm_area_struct *vma, unsigned long addr, pte_t pte)
{
	unsigned long pfn;
	long idx;

	if (!pte_present(pte)) {
		swp_entry_t entry = pte_to_swp_entry(pte);

		if (is_migration_entry(entry))
			audit_migration_entry(a, vma, addr, entry, false);
		else if (is_device_private_entry(entry))
			audit_device_private_entry(a, vma, addr, entry, false);
		else if (is_device_exclusive_entry(entry) &&
			 (idx = page_idx(a, swp_offset_pfn(entry))) >= 0) {
			struct page *page = pfn_to_page(swp_offset_pfn(entry));

			a->pte_maps[idx]++;
			a->rss[mm_counter(page_folio(page))]++;
			audit_anon_rmap(a, vma, addr, page, false);
		} else
			violation(a, "mm %p addr %#lx: non-present PTE %#llx of a kind no subsystem "
				  "installs yet", (void *)a->mm, addr, (unsigned long long)pte_val(pte));
		return;
	}
	pfn = pte_pfn(pte);
	if (pfn == a->machine->zero_pfn || is_huge_zero_pfn(a->machine, pfn)) {
		if (pte_write(pte))
			violation(a, "mm %p addr %#lx: writable zero-page PTE", (void *)a->mm, addr);
		return;
	}
	idx = page_idx(a, pfn);
	if (idx < 0 || (!idx_is_ram(a, idx) && !is_device_coherent_page(pfn_to_page(pfn)))) {
		violation(a, "mm %p addr %#lx: PTE maps pfn %#lx, neither RAM nor coherent device "
			  "memory", (void *)a->mm, addr, pfn);
		return;
	}
	a->pte_maps[idx]++;
	if (folio_test_hugetlb(page_folio(pfn_to_page(pfn))))
		violation(a, "mm %p addr %#lx: a PTE maps hugetlb pfn %#lx", (void *)a->mm, addr, pfn);
	a->rss[mm_counter(page_folio(pfn_to_page(pfn)))]++;
	if (folio_test_anon(page_folio(pfn_to_page(pfn))))
		audit_anon_rmap(a, vma, addr, pfn_to_page(pfn), pte_write(pte));
	else
		audit_file_rmap(a, vma, addr, pfn_to_page(pfn), pte_write(pte));
}

static void audit_pmd_leaf(struct audit *a, struct vm_area_struct *vma, unsigned long addr,
			   pmd_t pmd)
{
	unsigned long pfn = pmd_pfn(pmd);
	struct folio *folio;
	long idx;

	if (is_huge_zero_pfn(a->machine, pfn)) {
		if (pmd_write(pmd) || pfn != folio_pfn(a->machine->huge_zero_folio))
			violation(a, "mm %p addr %#lx: bad huge zero PMD", (void *)a->mm, addr);
		return;
	}
	idx = page_idx(a, pfn);
	if (idx < 0 || !IS_ALIGNED(addr, PMD_SIZE) ||
	    (!idx_is_ram(a, idx) && !is_device_coherent_page(pfn_to_page(pfn)))) {
		violation(a, "mm %p addr %#lx: PMD maps pfn %#lx", (void *)a->mm, addr, pfn);
		return;
	}
	folio = page_folio(pfn_to_page(pfn));
	if (folio_head(folio) != pfn_to_page(pfn) || folio_order(folio) != HPAGE_PMD_ORDER) {
		violation(a, "mm %p addr %#lx: PMD maps pfn %#lx, not the head of a PMD-sized folio",
			  (void *)a->mm, addr, pfn);
		return;
	}
	a->pmd_maps[idx]++;
	a->rss[mm_counter(folio)] += HPAGE_PMD_NR;
	if (!folio_test_anon(folio))
		violation(a, "mm %p addr %#lx: a PMD maps a page-cache folio (no file THP exists)",
			  (void *)a->mm, addr);
	audit_anon_rmap(a, vma, addr, folio_head(folio), pmd_write(pmd));
}

/* A huge PMD of a hugetlb VMA: a whole hugetlb folio, no RSS, no deposit. */
static void audit_hugetlb_pmd(struct audit *a, struct vm_area_struct *vma, unsigned long addr,
			      pmd_t pmd)
{
	unsigned long pfn = pmd_pfn(pmd);
	long idx = page_idx(a, pfn);
	struct folio *folio;

	if (idx < 0 || !IS_ALIGNED(addr, HPAGE_SIZE)) {
		violation(a, "mm %p addr %#lx: hugetlb PMD maps pfn %#lx", (void *)a->mm, addr, pfn);
		return;
	}
	folio = page_folio(pfn_to_page(pfn));
	if (!folio_test_hugetlb(folio) || folio_head(folio) != pfn_to_page(pfn) ||
	    folio_order(folio) != HUGETLB_PAGE_ORDER || folio_ref_count(folio) <= 0) {
		violation(a, "mm %p addr %#lx: hugetlb PMD maps pfn %#lx, not a hugetlb folio in use",
			  (void *)a->mm, addr, pfn);
		return;
	}
	a->pmd_maps[idx]++;
	if (folio_test_anon(folio)) {
		if (vma->vm_flags & VM_MAYSHARE)
			violation(a, "mm %p addr %#lx: a shared hugetlb VMA maps an anon folio",
				  (void *)a->mm, addr);
		audit_anon_rmap(a, vma, addr, folio_head(folio), pmd_write(pmd));
	} else {
		audit_file_rmap(a, vma, addr, folio_head(folio), pmd_write(pmd));
	}
}

static void audit_pte_table(struct audit *a, uint64_t *table, unsigned long base)
{
	audit_table(a, table, PT_LEVEL_PTE);
	for (int i = 0; i < PTRS_PER_PTE; i++) {
		unsigned long addr = base + ((unsigned long)i << PAGE_SHIFT);
		struct vm_area_struct *vma;

		if (!table[i])
			continue;
		vma = vma_lookup(a->mm, addr);
		if (!vma) {
			violation(a, "mm %p: PTE %#llx at %#lx outside any VMA", (void *)a->mm,
				  (unsigned long long)table[i], addr);
			continue;
		}
		audit_pte(a, vma, addr, __pte(table[i]));
	}
}

static void audit_pmd_table(struct audit *a, uint64_t *table, unsigned long base)
{
	struct page *tpage = pt_table_page(a->mm, table);
	long leaves = 0, deposited = 0;

	audit_table(a, table, PT_LEVEL_PMD);
	for (int i = 0; i < PTRS_PER_PMD; i++) {
		unsigned long addr = base + ((unsigned long)i << PMD_SHIFT);
		pmd_t pmd = __pmd(table[i]);
		struct vm_area_struct *vma;

		if (pmd_none(pmd))
			continue;
		if (!pmd_leaf(pmd) && !is_swap_pmd(pmd)) {
			vma = vma_lookup(a->mm, addr);
			if (vma && is_vm_hugetlb_page(vma))
				violation(a, "mm %p addr %#lx: a PTE table in a hugetlb VMA",
					  (void *)a->mm, addr);
			audit_pte_table(a, pt_entry_table(a->mm, pmd_val(pmd)), addr);
			continue;
		}
		vma = vma_lookup(a->mm, addr);
		if (vma && is_vm_hugetlb_page(vma) && pmd_leaf(pmd)) {
			audit_hugetlb_pmd(a, vma, addr, pmd);
			continue;
		}
		leaves++;
		if (!vma || vma->vm_end < addr + PMD_SIZE) {
			violation(a, "mm %p: PMD leaf at %#lx not inside one VMA", (void *)a->mm, addr);
			continue;
		}
		if (is_pmd_migration_entry(pmd))
			audit_migration_entry(a, vma, addr, pmd_to_swp_entry(pmd), true);
		else if (is_pmd_device_private_entry(pmd))
			audit_device_private_entry(a, vma, addr, pmd_to_swp_entry(pmd), true);
		else if (is_swap_pmd(pmd))
			violation(a, "mm %p addr %#lx: PMD swap entry %#llx of an unknown kind",
				  (void *)a->mm, addr, (unsigned long long)pmd_val(pmd));
		else
			audit_pmd_leaf(a, vma, addr, pmd);
	}
	for (struct page *dep = tpage->pmd_huge_pte; dep; dep = dep->pt_deposit_next) {
		deposited++;
		audit_table(a, page_address(dep), PT_LEVEL_PTE);
		const uint64_t *entries = page_address(dep);

		for (int i = 0; i < PTRS_PER_PTE; i++)
			if (entries[i]) {
				violation(a, "mm %p: a deposited PTE table is not empty", (void *)a->mm);
				break;
			}
	}
	if (leaves != deposited)
		violation(a, "mm %p: PMD table at %#lx has %ld leaves but %ld deposited tables",
			  (void *)a->mm, base, leaves, deposited);
}

/* A VMA and the file it maps: a reference, vm_ops, and a place on i_mmap. */
static void audit_vma_file(struct audit *a, struct vm_area_struct *vma)
{
	struct address_space *mapping;
	struct vm_area_struct *v;
	bool found = false;

	if (!vma->vm_file) {
		/* A device's VMA (mm_mmap_device()) has vm_ops and no file. */
		if ((vma->vm_ops && vma->vm_ops != &device_vm_ops) || !list_empty(&vma->shared))
			violation(a, "mm %p: anonymous VMA %#lx has vm_ops or an i_mmap link",
				  (void *)a->mm, vma->vm_start);
		return;
	}
	a->file_vmas++;
	mapping = vma->vm_file->f_mapping;
	if (!vma->vm_ops || atomic_load(&vma->vm_file->f_count) < 1)
		violation(a, "mm %p: file VMA %#lx without vm_ops or file reference", (void *)a->mm,
			  vma->vm_start);
	i_mmap_lock_read(mapping);
	list_for_each_entry(v, &mapping->i_mmap, shared)
		if (v == vma) {
			found = true;
			break;
		}
	i_mmap_unlock_read(mapping);
	if (!found)
		violation(a, "mm %p: file VMA %#lx is not on its file's i_mmap", (void *)a->mm,
			  vma->vm_start);
}

static void audit_mm(struct audit *a, struct mm_struct *mm)
{
	unsigned long file_vmas = mm->nr_file_vmas, file_vmas_before = a->file_vmas;
	long want_tables;

	a->mm = mm;
	memset(a->rss, 0, sizeof(a->rss));
	a->tables = 0;
	for (size_t i = 0; i < mm->mm_mt.nr; i++) {
		struct vm_area_struct *vma = mm->mm_mt.vmas[i];

		if (vma->vm_start >= vma->vm_end || !IS_ALIGNED(vma->vm_start, PAGE_SIZE) ||
		    !IS_ALIGNED(vma->vm_end, PAGE_SIZE) || vma->vm_end > TASK_SIZE ||
		    (i && mm->mm_mt.vmas[i - 1]->vm_end > vma->vm_start) || vma->vm_mm != mm)
			violation(a, "mm %p: bad VMA %#lx-%#lx", (void *)mm, vma->vm_start, vma->vm_end);
	}
	for (size_t i = 0; i < mm->mm_mt.nr; i++) {
		struct vm_area_struct *vma = mm->mm_mt.vmas[i];
		struct anon_vma_chain *avc;

		if (is_vm_hugetlb_page(vma)) {
			if (!IS_ALIGNED(vma->vm_start, HPAGE_SIZE) || !IS_ALIGNED(vma->vm_end, HPAGE_SIZE))
				violation(a, "mm %p: hugetlb VMA %#lx-%#lx is not 2 MiB aligned",
					  (void *)mm, vma->vm_start, vma->vm_end);
			a->hugetlb_resv += hugetlb_vma_resv_pages(vma);
		}
		if (vma->anon_vma && !vma_links_anon_vma(vma, vma->anon_vma))
			violation(a, "mm %p: VMA %#lx is not chained to its own anon_vma", (void *)mm,
				  vma->vm_start);
		list_for_each_entry(avc, &vma->anon_vma_chain, same_vma)
			if (avc->vma != vma || list_empty(&avc->same_anon_vma))
				violation(a, "mm %p: VMA %#lx has a broken anon_vma_chain", (void *)mm,
					  vma->vm_start);
		audit_vma_file(a, vma);
	}
	if (file_vmas != a->file_vmas - file_vmas_before)
		violation(a, "mm %p: nr_file_vmas is %lu, %lu VMAs map files", (void *)mm,
			  file_vmas, a->file_vmas - file_vmas_before);
	if (!mm->pgd) {
		violation(a, "mm %p: no PGD", (void *)mm);
		return;
	}
	audit_table(a, mm->pgd, PT_LEVEL_PGD);
	for (unsigned long g = 0; g < PTRS_PER_PGD; g++) {
		uint64_t *pud;

		if (!mm->pgd[g])
			continue;
		pud = pt_entry_table(mm, mm->pgd[g]);
		audit_table(a, pud, PT_LEVEL_PUD);
		for (unsigned long u = 0; u < PTRS_PER_PUD; u++)
			if (pud[u])
				audit_pmd_table(a, pt_entry_table(mm, pud[u]),
						(g << PGDIR_SHIFT) | (u << PUD_SHIFT));
	}
	for (int i = 0; i < NR_MM_COUNTERS; i++) {
		static const char *const names[NR_MM_COUNTERS] = {
			[MM_FILEPAGES] = "MM_FILEPAGES", [MM_ANONPAGES] = "MM_ANONPAGES",
			[MM_SWAPENTS] = "MM_SWAPENTS", [MM_SHMEMPAGES] = "MM_SHMEMPAGES",
		};

		if (a->rss[i] != atomic_load(&mm->rss_stat[i]))
			violation(a, "mm %p: %s is %ld, tables map %ld such pages", (void *)mm,
				  names[i], atomic_load(&mm->rss_stat[i]), a->rss[i]);
	}
	want_tables = atomic_load(&mm->pgtables_bytes) / (long)PAGE_SIZE;
	if (a->tables != want_tables)
		violation(a, "mm %p: pgtables_bytes counts %ld tables, %ld found", (void *)mm,
			  want_tables, a->tables);
	if (atomic_load(&mm->flags) & (1UL << MMF_HUGE_ZERO_PAGE))
		a->huge_zero_mms++;
}

/* Check one allocated folio starting at page index @idx; return its page count. */
static unsigned long audit_folio(struct audit *a, long idx)
{
	struct page *head = pfn_to_page(a->machine->start_pfn + (unsigned long)idx);
	struct folio *folio = (struct folio *)(void *)head;
	unsigned long nr = folio_nr_pages(folio);
	long pte_sum = 0, pages_mapped = 0, extra, pins;
	int pmds = a->pmd_maps[idx];
	int cached = a->cached[idx];
	int refs = folio_ref_count(folio);
	long migr = 0;

	if ((unsigned long)idx + nr > a->machine->nr_pages) {
		violation(a, "folio %#lx runs past the end of RAM", folio_pfn(folio));
		return 1;
	}
	if (test_page_flag(head, PG_migrate_anon_vma) && !folio_test_locked(folio))
		violation(a, "folio %#lx holds a migration's anon_vma reference but is not locked",
			  folio_pfn(folio));
	for (unsigned long i = 0; i < nr; i++) {
		struct page *page = folio_page(folio, i);
		int maps = a->pte_maps[idx + (long)i];

		if (a->state[idx + (long)i] == AUDIT_FREE)
			violation(a, "pfn %#lx is free but part of folio %#lx", page_to_pfn(page),
				  folio_pfn(folio));
		if (i && (page_folio(page) != folio || page_ref_count(page)))
			violation(a, "pfn %#lx: bad tail of folio %#lx", page_to_pfn(page),
				  folio_pfn(folio));
		if (i && a->pmd_maps[idx + (long)i])
			violation(a, "pfn %#lx: PMD maps a tail page", page_to_pfn(page));
		if (atomic_load(&page->_mapcount) + 1 != maps)
			violation(a, "pfn %#lx: _mapcount %d but %d PTEs map it", page_to_pfn(page),
				  atomic_load(&page->_mapcount), maps);
		pte_sum += maps;
		pages_mapped += maps > 0;
		migr += a->migr[idx + (long)i];
	}
	if (folio_test_large(folio)) {
		if (folio_entire_mapcount(folio) != pmds)
			violation(a, "folio %#lx: entire mapcount %d but %d PMDs map it",
				  folio_pfn(folio), folio_entire_mapcount(folio), pmds);
		if (folio_mapcount(folio) != pte_sum + pmds)
			violation(a, "folio %#lx: large mapcount %d but %ld mappings", folio_pfn(folio),
				  folio_mapcount(folio), pte_sum + pmds);
		if (atomic_load(&folio->_nr_pages_mapped) != pages_mapped)
			violation(a, "folio %#lx: nr_pages_mapped %d but %ld pages are PTE-mapped",
				  folio_pfn(folio), atomic_load(&folio->_nr_pages_mapped), pages_mapped);
	} else if (pmds) {
		violation(a, "pfn %#lx: a PMD maps an order-0 page", folio_pfn(folio));
	}
	/*
	 * References beyond the mappings are FOLL_PIN pins (mm/gup.c): one
	 * each with _pincount for a large folio, GUP_PIN_COUNTING_BIAS each
	 * for a small one.  A pinned folio may be mapped by nothing.
	 */
	extra = refs - (pte_sum + pmds + cached);
	if (migr) {
		/*
		 * Being migrated: the migrator holds a reference (and the lock,
		 * checked where the entries were seen); GUP references that
		 * made the migration fail may be there too.
		 */
		if (extra < 1)
			violation(a, "folio %#lx (order %u): %ld migration entries but refcount %d "
				  "has no reference for the migrator beyond %ld mappings",
				  folio_pfn(folio), folio_order(folio), migr, refs, pte_sum + pmds);
		return nr;
	}
	if (folio_test_large(folio))
		pins = atomic_load(&folio->_pincount);
	else
		pins = extra >= 0 ? extra / (long)GUP_PIN_COUNTING_BIAS : 0;
	if (!cached && folio->mapping && !folio_test_anon(folio))
		violation(a, "folio %#lx points to page cache %p, which does not hold it",
			  folio_pfn(folio), folio->mapping);
	if (pte_sum + pmds == 0 && pins == 0 && !cached)
		violation(a, "folio %#lx (order %u, refcount %d, flags %#lx) is allocated but "
			  "nothing maps, caches or pins it: leaked", folio_pfn(folio),
			  folio_order(folio), refs, folio->flags);
	else if (folio_test_large(folio) ? extra != pins
					 : extra < 0 || extra % (long)GUP_PIN_COUNTING_BIAS)
		violation(a, "folio %#lx (order %u): refcount %d but %ld mappings, %d page-cache "
			  "and %ld pins (pincount %d) hold references", folio_pfn(folio),
			  folio_order(folio), refs, pte_sum + pmds, cached, pins,
			  folio_test_large(folio) ? atomic_load(&folio->_pincount) : 0);
	return nr;
}

/*
 * A hugetlb folio at page index @idx: a free pool folio (refcount 0) must be
 * unmapped; one in use is checked like any folio.  Return: its page count.
 */
static unsigned long audit_hugetlb_folio(struct audit *a, long idx)
{
	struct folio *folio = (struct folio *)(void *)pfn_to_page(a->machine->start_pfn +
								 (unsigned long)idx);

	if (!folio_test_large(folio) || folio_order(folio) != HUGETLB_PAGE_ORDER ||
	    (unsigned long)idx + HPAGE_PMD_NR > a->machine->nr_pages) {
		violation(a, "pfn %#lx: PG_hugetlb on a folio of order %u", folio_pfn(folio),
			  folio_order(folio));
		return 1;
	}
	if (folio_ref_count(folio)) {
		a->hugetlb_in_use++;
		return audit_folio(a, idx);
	}
	a->hugetlb_free++;
	for (unsigned long i = 0; i < HPAGE_PMD_NR; i++)
		if (a->pte_maps[idx + (long)i] || a->pmd_maps[idx + (long)i] ||
		    a->state[idx + (long)i] == AUDIT_FREE || a->cached[idx + (long)i])
			violation(a, "free hugetlb folio %#lx is mapped, cached or in the buddy lists",
				  folio_pfn(folio));
	if (folio_mapped(folio) || folio_entire_mapcount(folio) || folio->mapping ||
	    atomic_load(&folio->_pincount))
		violation(a, "free hugetlb folio %#lx has mapcounts, pins or a mapping",
			  folio_pfn(folio));
	return HPAGE_PMD_NR;
}

/* The pool's counters against what the walk found. */
static void audit_hugetlb_pool(struct audit *a)
{
	struct hstate *h = &a->machine->hstate;
	unsigned long on_list = 0;
	struct folio *folio;

	pthread_mutex_lock(&h->lock);
	list_for_each_entry(folio, &h->free_list, lru) {
		on_list++;
		if (!folio_test_hugetlb(folio) || folio_ref_count(folio))
			violation(a, "hugetlb free list: folio %#lx is not a free hugetlb folio",
				  folio_pfn(folio));
	}
	if (on_list != h->free_huge_pages || a->hugetlb_free != h->free_huge_pages)
		violation(a, "hugetlb: HugePages_Free %lu, %lu on the free list, %lu free folios in RAM",
			  h->free_huge_pages, on_list, a->hugetlb_free);
	if (h->nr_huge_pages != a->hugetlb_free + a->hugetlb_in_use)
		violation(a, "hugetlb: HugePages_Total %lu, %lu free and %lu in use found",
			  h->nr_huge_pages, a->hugetlb_free, a->hugetlb_in_use);
	if (h->surplus_huge_pages > h->nr_huge_pages || h->resv_huge_pages > h->free_huge_pages)
		violation(a, "hugetlb: surplus %lu, reserved %lu, free %lu of %lu",
			  h->surplus_huge_pages, h->resv_huge_pages, h->free_huge_pages,
			  h->nr_huge_pages);
	if (h->resv_huge_pages != a->hugetlb_resv)
		violation(a, "hugetlb: HugePages_Rsvd %lu but the mappings hold %lu reservations",
			  h->resv_huge_pages, a->hugetlb_resv);
	pthread_mutex_unlock(&h->lock);
}

/*
 * The pages of one memremapped device range.  A free device page (refcount
 * 0, the driver's) is mapped by nothing; an in-use folio's per-page,
 * entire and large mapcounts equal what maps it, and its refcount covers
 * its mappings (the driver may hold more: an allocated page that is not
 * yet, or no longer, mapped is the driver's, not a leak).
 */
static void audit_device_range(struct audit *a, const struct audit_range *r)
{
	for (unsigned long i = 0; i < r->nr_pages;) {
		struct page *page = pfn_to_page(r->start_pfn + i);
		long idx = r->base + (long)i;
		struct folio *folio;
		unsigned long nr;
		long pte_sum = 0, pages_mapped = 0;

		if (PageTail(page) || !page_ref_count(page)) {
			/* Free, or a stale tail of a freed large folio. */
			if (PageTail(page) && folio_ref_count(page_folio(page)))
				violation(a, "device pfn %#lx: tail of in-use folio %#lx seen alone",
					  r->start_pfn + i, folio_pfn(page_folio(page)));
			else if (test_page_flag(page, PG_migrate_anon_vma))
				violation(a, "device pfn %#lx is free but holds a migration's anon_vma "
					  "reference", r->start_pfn + i);
			else if (a->pte_maps[idx] || a->pmd_maps[idx] ||
				 atomic_load(&page->_mapcount) != -1)
				violation(a, "device pfn %#lx is free but mapped (%d PTEs, %d PMDs, "
					  "_mapcount %d)", r->start_pfn + i, a->pte_maps[idx],
					  a->pmd_maps[idx], atomic_load(&page->_mapcount));
			i++;
			continue;
		}
		folio = (struct folio *)(void *)page;
		nr = folio_nr_pages(folio);
		if (test_page_flag(page, PG_migrate_anon_vma) && !folio_test_locked(folio))
			violation(a, "device folio %#lx holds a migration's anon_vma reference but "
				  "is not locked", folio_pfn(folio));
		if (i + nr > r->nr_pages) {
			violation(a, "device folio %#lx runs past its range", folio_pfn(folio));
			return;
		}
		for (unsigned long j = 0; j < nr; j++) {
			struct page *p = folio_page(folio, j);
			int maps = a->pte_maps[idx + (long)j];

			if (j && (page_folio(p) != folio || page_ref_count(p)))
				violation(a, "device pfn %#lx: bad tail of folio %#lx", page_to_pfn(p),
					  folio_pfn(folio));
			if (j && a->pmd_maps[idx + (long)j])
				violation(a, "device pfn %#lx: PMD maps a tail page", page_to_pfn(p));
			if (atomic_load(&p->_mapcount) + 1 != maps)
				violation(a, "device pfn %#lx: _mapcount %d but %d entries map it",
					  page_to_pfn(p), atomic_load(&p->_mapcount), maps);
			pte_sum += maps;
			pages_mapped += maps > 0;
		}
		if (folio_test_large(folio)) {
			if (folio_entire_mapcount(folio) != a->pmd_maps[idx])
				violation(a, "device folio %#lx: entire mapcount %d but %d PMDs map it",
					  folio_pfn(folio), folio_entire_mapcount(folio),
					  a->pmd_maps[idx]);
			if (folio_mapcount(folio) != pte_sum + a->pmd_maps[idx])
				violation(a, "device folio %#lx: large mapcount %d but %ld mappings",
					  folio_pfn(folio), folio_mapcount(folio),
					  pte_sum + a->pmd_maps[idx]);
			if (atomic_load(&folio->_nr_pages_mapped) != pages_mapped)
				violation(a, "device folio %#lx: nr_pages_mapped %d but %ld pages "
					  "PTE-mapped", folio_pfn(folio),
					  atomic_load(&folio->_nr_pages_mapped), pages_mapped);
		} else if (a->pmd_maps[idx]) {
			violation(a, "device pfn %#lx: a PMD maps an order-0 page", folio_pfn(folio));
		}
		if (folio_ref_count(folio) < pte_sum + a->pmd_maps[idx])
			violation(a, "device folio %#lx: refcount %d below its %ld mappings",
				  folio_pfn(folio), folio_ref_count(folio), pte_sum + a->pmd_maps[idx]);
		if (folio->mapping && !folio_test_anon(folio))
			violation(a, "device folio %#lx has a page-cache mapping %p", folio_pfn(folio),
				  folio->mapping);
		i += nr;
	}
}

/* One inode: its page cache (index, folios, counts) and its i_mmap list. */
static void audit_inode(struct audit *a, struct inode *inode, unsigned long *mmap_vmas)
{
	struct address_space *mapping = &inode->i_data;
	unsigned long index = 0, nr = 0, size_pages = i_size_pages(inode);
	struct vm_area_struct *vma;
	unsigned long on_list = 0;
	struct folio *folio;

	if (atomic_load(&inode->i_count) < 1 || mapping->host != inode ||
	    mapping->machine != a->machine)
		violation(a, "inode %lu (%s): bad count %d or mapping", inode->i_ino, inode->i_name,
			  atomic_load(&inode->i_count));
	pthread_mutex_lock(&mapping->i_pages_lock);
	while ((folio = page_tree_next(&mapping->i_pages, &index))) {
		long idx = page_idx(a, folio_pfn(folio));
		/* hugetlbfs caches whole hugetlb folios at 2 MiB-aligned indices. */
		bool huge_ok = (inode->i_flags & S_HUGETLB) ?
				       folio_test_hugetlb(folio) && IS_ALIGNED(index, HPAGE_PMD_NR) :
				       !folio_test_large(folio);

		nr += folio_nr_pages(folio); /* nrpages counts pages, as Linux's */
		if (idx < 0 || folio->mapping != mapping || folio->index != index || !huge_ok ||
		    PageTail(folio_head(folio))) {
			violation(a, "inode %lu index %#lx: folio %#lx has mapping %p index %#lx "
				  "order %u", inode->i_ino, index, folio_pfn(folio),
				  (void *)folio->mapping, folio->index, folio_order(folio));
		} else {
			if (a->cached[idx]++)
				violation(a, "folio %#lx is cached twice", folio_pfn(folio));
			if (a->state[idx] == AUDIT_FREE)
				violation(a, "inode %lu index %#lx: folio %#lx is free", inode->i_ino,
					  index, folio_pfn(folio));
		}
		if (index >= size_pages)
			violation(a, "inode %lu: folio %#lx cached at index %#lx, past i_size %lld",
				  inode->i_ino, folio_pfn(folio), index,
				  (long long)i_size_read(inode));
		if (folio_test_swapbacked(folio) != inode_is_shmem(inode))
			violation(a, "inode %lu: folio %#lx swapbacked %d on a %s file", inode->i_ino,
				  folio_pfn(folio), folio_test_swapbacked(folio),
				  inode_is_shmem(inode) ? "shmem" : "non-shmem");
		if (index == ~0UL)
			break;
		index++;
	}
	if (nr != atomic_load(&mapping->nrpages))
		violation(a, "inode %lu: nrpages %lu but %lu folios cached", inode->i_ino,
			  atomic_load(&mapping->nrpages), nr);
	pthread_mutex_unlock(&mapping->i_pages_lock);
	if (inode->i_flags & S_HUGETLB)
		a->hugetlb_resv += hugetlb_inode_resv_pages(inode);
	i_mmap_lock_read(mapping);
	list_for_each_entry(vma, &mapping->i_mmap, shared) {
		on_list++;
		if (!vma->vm_file || vma->vm_file->f_mapping != mapping)
			violation(a, "inode %lu: VMA %#lx on its i_mmap maps another file",
				  inode->i_ino, vma->vm_start);
	}
	if (on_list != mapping->nr_mmap)
		violation(a, "inode %lu: nr_mmap %lu but %lu VMAs on i_mmap", inode->i_ino,
			  mapping->nr_mmap, on_list);
	i_mmap_unlock_read(mapping);
	*mmap_vmas += on_list;
}

int uhmm_audit(struct uhmm_machine *machine, FILE *report)
{
	struct audit a = { .machine = machine, .report = report };
	struct memremap_info *info;
	struct mm_struct *mm;
	unsigned long nr;
	long nr_idx;

	if (IS_ERR_OR_NULL(machine))
		return -EINVAL; /* uhmm only: nothing to audit */
	nr = machine->nr_pages;
	nr_idx = (long)nr;
	pthread_mutex_lock(&machine->pgmap_lock);
	a.dev = calloc((size_t)machine->nr_pgmaps + 1, sizeof(*a.dev));
	if (a.dev)
		list_for_each_entry(info, &machine->pgmaps, list) {
			a.dev[a.nr_dev].start_pfn = info->start_pfn;
			a.dev[a.nr_dev].nr_pages = info->nr_pages;
			a.dev[a.nr_dev].base = nr_idx;
			nr_idx += (long)info->nr_pages;
			a.nr_dev++;
		}
	pthread_mutex_unlock(&machine->pgmap_lock);
	a.nr_idx = nr_idx;
	a.state = calloc((size_t)nr_idx, 1);
	a.table = calloc((size_t)nr_idx, 1);
	a.pte_maps = calloc((size_t)nr_idx, sizeof(*a.pte_maps));
	a.pmd_maps = calloc((size_t)nr_idx, sizeof(*a.pmd_maps));
	a.migr = calloc((size_t)nr_idx, sizeof(*a.migr));
	a.cached = calloc((size_t)nr_idx, 1);
	if (!a.dev || !a.state || !a.table || !a.pte_maps || !a.pmd_maps || !a.cached || !a.migr) {
		violation(&a, "out of host memory for the audit");
		goto out;
	}
	a.violations += page_alloc_mark_free(machine, a.state, report);

	pthread_mutex_lock(&machine->mms_lock);
	list_for_each_entry(mm, &machine->mms, mmlist) {
		pthread_rwlock_rdlock(&mm->mmap_lock);
		audit_mm(&a, mm);
		a.violations += mmu_notifier_audit(mm, report);
		pthread_rwlock_unlock(&mm->mmap_lock);
	}
	pthread_mutex_unlock(&machine->mms_lock);

	pthread_mutex_lock(&machine->inodes_lock);
	{
		unsigned long mmap_vmas = 0;
		int inodes = 0;
		struct inode *inode;

		list_for_each_entry(inode, &machine->inodes, i_sb_list) {
			audit_inode(&a, inode, &mmap_vmas);
			inodes++;
		}
		if (inodes != machine->nr_inodes)
			violation(&a, "nr_inodes is %d, %d inodes listed", machine->nr_inodes, inodes);
		if (mmap_vmas != a.file_vmas)
			violation(&a, "%lu VMAs on files' i_mmap lists, %lu file VMAs in the mms",
				  mmap_vmas, a.file_vmas);
	}
	pthread_mutex_unlock(&machine->inodes_lock);

	pthread_mutex_lock(&machine->huge_zero_lock);
	if (machine->huge_zero_folio) {
		struct folio *zero = machine->huge_zero_folio;

		if (folio_ref_count(zero) != machine->huge_zero_users ||
		    machine->huge_zero_users != a.huge_zero_mms)
			violation(&a, "huge zero folio: refcount %d, %d users, %d mms use it",
				  folio_ref_count(zero), machine->huge_zero_users, a.huge_zero_mms);
	} else if (a.huge_zero_mms || machine->huge_zero_users) {
		violation(&a, "%d mms hold the huge zero folio, which does not exist",
			  a.huge_zero_mms);
	}
	pthread_mutex_unlock(&machine->huge_zero_lock);

	for (long idx = 0; idx < (long)nr;) {
		unsigned long pfn = machine->start_pfn + (unsigned long)idx;
		struct page *page = pfn_to_page(pfn);

		if (a.state[idx] == AUDIT_FREE) {
			if (a.pte_maps[idx] || a.pmd_maps[idx])
				violation(&a, "pfn %#lx is free but mapped", pfn);
			idx++;
			continue;
		}
		if (a.table[idx]) {
			idx++;
			continue;
		}
		if (pfn == machine->zero_pfn) {
			if (!test_page_flag(page, PG_reserved) || page_ref_count(page) != 1)
				violation(&a, "the zero page lost its reservation or reference");
			idx++;
			continue;
		}
		if (is_huge_zero_pfn(machine, pfn)) {
			idx += HPAGE_PMD_NR;
			continue;
		}
		if (test_page_flag(page, PG_table)) {
			violation(&a, "pfn %#lx is a page table that no mm reaches", pfn);
			idx++;
			continue;
		}
		if (PageTail(page)) {
			violation(&a, "pfn %#lx is a tail page without its head", pfn);
			idx++;
			continue;
		}
		if (test_page_flag(page, PG_hugetlb)) {
			idx += (long)audit_hugetlb_folio(&a, idx);
			continue;
		}
		idx += (long)audit_folio(&a, idx);
	}
	audit_hugetlb_pool(&a);
	for (int i = 0; i < a.nr_dev; i++)
		audit_device_range(&a, &a.dev[i]);
out:
	free(a.dev);
	free(a.migr);
	free(a.state);
	free(a.table);
	free(a.pte_maps);
	free(a.pmd_maps);
	free(a.cached);
	return a.violations;
}
