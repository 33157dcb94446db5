// SPDX-License-Identifier: MIT
/*
 * mm/ptdump.c - mm_dump(): an mm's VMAs and page tables as text a person
 * can read, one line per run of like entries (in the spirit of
 * /sys/kernel/debug/page_tables and /proc/pid/maps).
 *
 * Format:
 *   mm <addr>: <n> VMAs, anon <pages> pages, page tables <bytes> bytes
 *   VMA <start>-<end> <rwxs|p> pgoff <pgoff> flags <vm_flags>[ hugepage][ nohugepage]
 *       [ shmem|file ino <inode number>]
 *     PMD <start>-<end> THP|hugetlb pfn <pfn> <rw|ro> [dirty] [young] map <mapcount> ref <refcount>
 *     PMD <start>-<end> huge-zero pfn <pfn> ro
 *     PTE <start>-<end> <anon|shmem|file> pfn <first>-<last> <rw|ro|none> [dirty] (<n> pages)
 *     PTE <start>-<end> zero pfn <pfn> ro (<n> pages)
 *     PTE <addr> swap type <t> offset <o>   (or migration-*, device-*)
 */
#include <string.h>

#include "internal.h"

/* A run of like PTEs being collected. */
struct dump_run {
	FILE *out;
	unsigned long start, end;    /* addresses */
	unsigned long first_pfn, next_pfn;
	const char *kind;            /* NULL: no run open */
	const char *prot;
	bool dirty;
};

static void run_flush(struct dump_run *run)
{
	if (!run->kind)
		return;
	if (!strcmp(run->kind, "zero"))
		fprintf(run->out, "    PTE %#lx-%#lx zero pfn %#lx ro (%lu pages)\n", run->start,
			run->end, run->first_pfn, (run->end - run->start) >> PAGE_SHIFT);
	else
		fprintf(run->out, "    PTE %#lx-%#lx %s pfn %#lx-%#lx %s%s (%lu pages)\n", run->start,
			run->end, run->kind, run->first_pfn, run->next_pfn - 1, run->prot,
			run->dirty ? " dirty" : "", (run->end - run->start) >> PAGE_SHIFT);
	run->kind = NULL;
}

static const char *swap_kind(swp_entry_t e)
{
	switch (swp_type(e)) {
	case SWP_MIGRATION_READ:
		return "migration-read";
	case SWP_MIGRATION_READ_EXCLUSIVE:
		return "migration-read-exclusive";
	case SWP_MIGRATION_WRITE:
		return "migration-write";
	case SWP_DEVICE_READ:
		return "device-private-read";
	case SWP_DEVICE_WRITE:
		return "device-private-write";
	case SWP_DEVICE_EXCLUSIVE:
		return "device-exclusive";
	case SWP_HWPOISON:
		return "hwpoison";
	case SWP_PTE_MARKER:
		return "marker";
	default:
		return "swap";
	}
}

static int dump_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next, struct mm_walk *walk)
{
	struct dump_run *run = walk->private;
	pmd_t val = pmdp_get(pmd);

	if (pmd_leaf(val)) {
		run_flush(run);
		if (is_huge_zero_pfn(walk->mm->machine, pmd_pfn(val))) {
			fprintf(run->out, "    PMD %#lx-%#lx huge-zero pfn %#lx ro\n", addr, next,
				pmd_pfn(val));
		} else {
			struct folio *folio = page_folio(pfn_to_page(pmd_pfn(val)));

			fprintf(run->out, "    PMD %#lx-%#lx %s pfn %#lx %s%s%s map %d ref %d\n", addr,
				next, folio_test_hugetlb(folio) ? "hugetlb" : "THP", pmd_pfn(val),
				pmd_protnone(val) ? "none" : pmd_write(val) ? "rw" : "ro",
				pmd_dirty(val) ? " dirty" : "", pmd_young(val) ? " young" : "",
				folio_entire_mapcount(folio), folio_ref_count(folio));
		}
		return WALK_SKIP_PTES;
	}
	if (is_swap_pmd(val)) {
		swp_entry_t e = pmd_to_swp_entry(val);

		run_flush(run);
		fprintf(run->out, "    PMD %#lx-%#lx %s offset %#llx\n", addr, next, swap_kind(e),
			(unsigned long long)swp_offset(e));
		return WALK_SKIP_PTES;
	}
	return 0;
}

static int dump_pte_entry(pte_t *pte, unsigned long addr, unsigned long next, struct mm_walk *walk)
{
	struct dump_run *run = walk->private;
	pte_t val = ptep_get(pte);
	const char *kind, *prot;
	unsigned long pfn;

	(void)next;
	if (pte_none(val)) {
		run_flush(run);
		return 0;
	}
	if (!pte_present(val)) {
		swp_entry_t e = pte_to_swp_entry(val);

		run_flush(run);
		fprintf(run->out, "    PTE %#lx %s type %u offset %#llx%s\n", addr, swap_kind(e),
			swp_type(e), (unsigned long long)swp_offset(e),
			pte_swp_exclusive(val) ? " exclusive" : "");
		return 0;
	}
	pfn = pte_pfn(val);
	kind = pfn == walk->mm->machine->zero_pfn ? "zero" : "anon";
	if (strcmp(kind, "zero") && !folio_test_anon(page_folio(pfn_to_page(pfn)))) {
		struct folio *folio = page_folio(pfn_to_page(pfn));

		if (!folio->mapping)
			kind = "page";
		else
			kind = folio_test_swapbacked(folio) ? "shmem" : "file";
	}
	prot = pte_protnone(val) ? "none" : pte_write(val) ? "rw" : "ro";
	if (run->kind && !strcmp(run->kind, kind) && run->end == addr && run->prot == prot &&
	    run->dirty == pte_dirty(val) &&
	    (!strcmp(kind, "zero") || run->next_pfn == pfn)) {
		run->end += PAGE_SIZE;
		run->next_pfn = pfn + 1;
		return 0;
	}
	run_flush(run);
	*run = (struct dump_run){ .out = run->out, .start = addr, .end = addr + PAGE_SIZE,
				  .first_pfn = pfn, .next_pfn = pfn + 1, .kind = kind,
				  .prot = prot, .dirty = pte_dirty(val) };
	return 0;
}

static int dump_hole(unsigned long addr, unsigned long next, struct mm_walk *walk)
{
	(void)addr;
	(void)next;
	run_flush(walk->private);
	return 0;
}

/**
 * mm_dump() - print @mm's VMAs and page tables to @out.
 * @mm: the mm; takes its mmap_lock for reading.
 * @out: the stream.
 */
void mm_dump(struct mm_struct *mm, FILE *out)
{
	static const struct mm_walk_ops ops = {
		.pmd_entry = dump_pmd_entry,
		.pte_entry = dump_pte_entry,
		.pte_hole = dump_hole,
	};
	struct dump_run run = { .out = out };

	if (!mm || !out)
		return; /* uhmm only: nothing to dump, or nowhere to */
	pthread_rwlock_rdlock(&mm->mmap_lock);
	fprintf(out, "mm %p: %zu VMAs, anon %ld pages, page tables %ld bytes\n", (void *)mm,
		mm->mm_mt.nr, atomic_load(&mm->rss_stat[MM_ANONPAGES]),
		atomic_load(&mm->pgtables_bytes));
	for (size_t i = 0; i < mm->mm_mt.nr; i++) {
		struct vm_area_struct *vma = mm->mm_mt.vmas[i];

		fprintf(out, "  VMA %#lx-%#lx %c%c%c%c pgoff %#lx flags %#lx%s%s", vma->vm_start,
			vma->vm_end, vma->vm_flags & VM_READ ? 'r' : '-',
			vma->vm_flags & VM_WRITE ? 'w' : '-', vma->vm_flags & VM_EXEC ? 'x' : '-',
			vma->vm_flags & VM_SHARED ? 's' : 'p', vma->vm_pgoff, vma->vm_flags,
			vma->vm_flags & VM_HUGEPAGE ? " hugepage" : "",
			vma->vm_flags & VM_NOHUGEPAGE ? " nohugepage" : "");
		if (vma->vm_file)
			fprintf(out, " %s ino %lu", vma->vm_ops ? vma->vm_ops->name : "file",
				vma->vm_file->f_inode->i_ino);
		fputc('\n', out);
		walk_page_range(mm, vma->vm_start, vma->vm_end, &ops, &run);
		run_flush(&run);
	}
	pthread_rwlock_unlock(&mm->mmap_lock);
}
