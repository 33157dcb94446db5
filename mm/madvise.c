// SPDX-License-Identifier: MIT
/*
 * mm/madvise.c - madvise(2): walking the VMAs of a range with Linux's
 * rules (holes give -ENOMEM after the mapped parts are advised), flag
 * advice that splits and merges VMAs, MADV_DONTNEED, MADV_FREE,
 * MADV_POPULATE_(READ|WRITE) and MADV_COLLAPSE.
 */
#include "internal.h"
#include "uhmm/memremap.h"

/* madvise_behavior_valid() for what this kernel is configured with (no KSM). */
static bool madvise_behavior_valid(int behavior)
{
	switch (behavior) {
	case MADV_NORMAL:
	case MADV_RANDOM:
	case MADV_SEQUENTIAL:
	case MADV_WILLNEED:
	case MADV_DONTNEED:
	case MADV_DONTNEED_LOCKED:
	case MADV_FREE:
	case MADV_REMOVE:
	case MADV_DONTFORK:
	case MADV_DOFORK:
	case MADV_HUGEPAGE:
	case MADV_NOHUGEPAGE:
	case MADV_DONTDUMP:
	case MADV_DODUMP:
	case MADV_WIPEONFORK:
	case MADV_KEEPONFORK:
	case MADV_COLD:
	case MADV_PAGEOUT:
	case MADV_POPULATE_READ:
	case MADV_POPULATE_WRITE:
	case MADV_COLLAPSE:
		return true;
	default:
		return false;
	}
}

/* Advice that changes VMAs, taken under mmap_lock held for writing. */
static bool madvise_need_mmap_write(int behavior)
{
	switch (behavior) {
	case MADV_WILLNEED:
	case MADV_DONTNEED:
	case MADV_DONTNEED_LOCKED:
	case MADV_FREE:
	case MADV_REMOVE:
	case MADV_COLD:
	case MADV_PAGEOUT:
	case MADV_POPULATE_READ:
	case MADV_POPULATE_WRITE:
		return false;
	default:
		return true;
	}
}

/* ---- MADV_FREE ---- */

struct madvise_free_range {
	struct vm_area_struct *vma;
	unsigned long start, end;
};

/*
 * Does MADV_FREE over [@r->start, @r->end) take all of the large @folio,
 * whose page @page the PTE at @addr maps?  Only when the folio lies wholly
 * inside the range and this mm maps each of its pages once.
 */
static bool madvise_free_whole_folio(const struct madvise_free_range *r, struct folio *folio,
				     struct page *page, unsigned long addr)
{
	unsigned long fstart = addr - (unsigned long)(page - folio_head(folio)) * PAGE_SIZE;

	return fstart >= r->start && fstart + folio_size(folio) <= r->end &&
	       folio_mapcount(folio) == (int)folio_nr_pages(folio) && !folio_entire_mapcount(folio);
}

/*
 * madvise_free_split_partial() - before the PTEs under @pmd in [@addr,
 * @end) are advised, split every large anonymous folio the range covers
 * only in part, as Linux's madvise_free_pte_range() does (it drops the
 * ptl, split_folio()s, and looks at the PTE again); a folio mapped more
 * often than it has pages (shared with a forked child) is left whole, and
 * so is one that cannot be locked or split.  Called without the ptl.
 */
static void madvise_free_split_partial(struct madvise_free_range *r, struct mm_struct *mm,
				       pmd_t *pmd, unsigned long addr, unsigned long end)
{
	while (addr < end) {
		struct folio *split = NULL;
		pthread_mutex_t *ptl;
		pte_t *pte = pte_offset_map_lock(mm, pmd, addr, &ptl);

		if (!pte)
			return;
		for (; addr < end; addr += PAGE_SIZE, pte++) {
			struct page *page = vm_normal_page(mm, ptep_get(pte));
			struct folio *folio = page ? page_folio(page) : NULL;

			if (!folio || !folio_test_large(folio) || !folio_test_anon(folio) ||
			    folio_is_zone_device(folio) ||
			    folio_mapcount(folio) > (int)folio_nr_pages(folio) ||
			    madvise_free_whole_folio(r, folio, page, addr))
				continue;
			folio_get(folio);
			split = folio;
			break;
		}
		spin_unlock(ptl);
		if (!split)
			return;
		if (!try_split_folio_put(split))
			addr += PAGE_SIZE; /* left whole: the PTE walk skips it */
	}
}

/* Mark the page at @pte lazily freeable if its folio is ours alone (ptl held). */
static int madvise_free_pte_entry(pte_t *pte, unsigned long addr, unsigned long next,
				  struct mm_walk *walk)
{
	struct madvise_free_range *r = walk->private;
	pte_t entry = ptep_get(pte);
	struct page *page = vm_normal_page(walk->mm, entry);
	struct folio *folio;

	(void)next;
	if (!page)
		return 0;
	folio = page_folio(page);
	if (!folio_test_anon(folio))
		return 0;
	/* A large folio still here was left whole by madvise_free_split_partial(). */
	if (folio_test_large(folio) ? !madvise_free_whole_folio(r, folio, page, addr) :
				      folio_mapcount(folio) != 1)
		return 0; /* shared with another mm, or only partly advised */
	set_pte(pte, pte_mkold(pte_mkclean(entry)));
	folio_clear_dirty(folio);
	folio_mark_lazyfree(folio);
	return 0;
}

/* madvise_free_huge_pmd(): a whole PMD-mapped folio, if mapped once; split a partial one. */
static int madvise_free_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next,
				  struct mm_walk *walk)
{
	struct madvise_free_range *r = walk->private;
	struct mm_struct *mm = walk->mm;
	struct folio *folio;
	pthread_mutex_t *ptl;
	pmd_t val = pmdp_get(pmd);

	if (is_swap_pmd(val))
		return WALK_SKIP_PTES;
	if (!pmd_leaf(val)) {
		if (!pmd_none(val))
			madvise_free_split_partial(r, mm, pmd, addr, next);
		return 0;
	}
	if (is_huge_zero_pfn(mm->machine, pmd_pfn(val)))
		return WALK_SKIP_PTES;
	if (next - addr != PMD_SIZE) {
		split_huge_pmd(r->vma, pmd, addr);
		if (!pmd_leaf(pmdp_get(pmd)) && !pmd_none(pmdp_get(pmd)))
			madvise_free_split_partial(r, mm, pmd, addr, next);
		return 0;
	}
	ptl = pmd_lock(mm, pmd);
	val = pmdp_get(pmd);
	if (!pmd_leaf(val)) {
		spin_unlock(ptl);
		return 0; /* split by a racing fault: advise its PTEs */
	}
	folio = page_folio(pfn_to_page(pmd_pfn(val)));
	if (folio_mapcount(folio) == 1) {
		set_pmd(pmd, pmd_mkold(pmd_mkclean(val)));
		folio_clear_dirty(folio);
		folio_mark_lazyfree(folio);
	}
	spin_unlock(ptl);
	return WALK_SKIP_PTES;
}

static void madvise_free_range(struct vm_area_struct *vma, unsigned long start, unsigned long end)
{
	static const struct mm_walk_ops ops = {
		.pmd_entry = madvise_free_pmd_entry,
		.pte_entry = madvise_free_pte_entry,
	};
	struct madvise_free_range r = { .vma = vma, .start = start, .end = end };
	struct mmu_notifier_range range;

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, vma->vm_mm, start, end);
	mmu_notifier_invalidate_range_start(&range);
	walk_page_range(vma->vm_mm, start, end, &ops, &r);
	mmu_notifier_invalidate_range_end(&range);
}

/* ---- MADV_POPULATE ---- */

/*
 * madvise_populate() - MADV_POPULATE_(READ|WRITE) of [start, end), as
 * Linux's madvise_populate() through faultin_page_range(): not a walk that
 * skips holes but one pass that stops at the first problem.  mmap_lock held
 * for reading.
 * Return: 0; -ENOMEM at a hole (what came before stays populated); -EINVAL
 * for a VMA the access is not allowed in (check_vma_flags(): PFN/IO maps,
 * a write without VM_WRITE, a read without VM_READ); -EFAULT for SIGSEGV or
 * SIGBUS, -ENOMEM for OOM from the fault.
 *
 * Found by the differential suite: uhmm used to skip holes and populate the
 * VMAs after them, and to return -EFAULT where Linux returns -EINVAL.
 */
static int madvise_populate(struct mm_struct *mm, unsigned long start, unsigned long end,
			    bool write)
{
	for (unsigned long addr = start; addr < end;) {
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		vm_fault_t ret;

		if (!vma)
			return -ENOMEM;
		if ((vma->vm_flags & (VM_PFNMAP | VM_IO)) ||
		    !(vma->vm_flags & (write ? VM_WRITE : VM_READ)))
			return -EINVAL;
		ret = handle_mm_fault(vma, addr, write ? FAULT_FLAG_WRITE : 0);
		if (ret & VM_FAULT_RETRY)
			continue; /* mmap_lock is still held: look the VMA up again */
		if (ret & VM_FAULT_ERROR)
			return vm_fault_to_errno(ret);
		addr += PAGE_SIZE;
	}
	return 0;
}

/* ---- MADV_REMOVE ---- */

/*
 * madvise_remove() - punch a hole in the file behind a shared writable
 * mapping: fallocate(PUNCH_HOLE | KEEP_SIZE) on the file range
 * [start, end) maps.  Like Linux, mmap_lock (held for reading) is dropped
 * around the punch, which takes i_rwsem and the file's i_mmap_rwsem; the
 * caller looks the VMAs up again afterwards.
 * Return: 0, -EINVAL (locked VMA, no file), -EACCES (not shared and
 * writable), -EOPNOTSUPP (the file cannot punch holes), -EBADF.
 */
static int madvise_remove(struct mm_struct *mm, struct vm_area_struct *vma, unsigned long start,
			  unsigned long end)
{
	struct file *file = vma->vm_file;
	loff_t offset;
	int err;

	if (vma->vm_flags & VM_LOCKED)
		return -EINVAL;
	if (!file)
		return -EINVAL;
	if ((vma->vm_flags & (VM_SHARED | VM_MAYWRITE)) != (VM_SHARED | VM_MAYWRITE))
		return -EACCES; /* !vma_is_shared_maywrite() */
	offset = (loff_t)(start - vma->vm_start) + ((loff_t)vma->vm_pgoff << PAGE_SHIFT);
	get_file(file);
	pthread_rwlock_unlock(&mm->mmap_lock);
	err = shmem_punch_hole(file, offset, (loff_t)(end - start));
	fput(file);
	pthread_rwlock_rdlock(&mm->mmap_lock);
	return err;
}

/* ---- MADV_DONTNEED: page-table reclaim ---- */

/*
 * madvise_reclaim_pt() - free the PTE tables MADV_DONTNEED emptied over
 * [@start, @end), as Linux 6.14+ does (CONFIG_PT_RECLAIM, on by default on
 * x86-64): a table whose whole 2 MiB the zap covered inside one VMA and
 * whose entries are now all none.  Afterwards the PMD is empty again, so
 * a fault there may map a THP and MADV_COLLAPSE stops there, as on Linux
 * (checked on the host: zapping [4 KiB, 2 MiB) of a PMD keeps the table,
 * zapping all of it does not).  uhmm cannot free under the read lock the
 * zap ran with (see try_to_free_pte()), so this second pass takes
 * mmap_lock for writing; a fault that filled an entry in between keeps
 * its table.  Called without mmap_lock.
 */
static void madvise_reclaim_pt(struct mm_struct *mm, unsigned long start, unsigned long end)
{
	unsigned long first = ALIGN(start, PMD_SIZE);

	if (first < start || first >= end || end - first < PMD_SIZE)
		return;
	pthread_rwlock_wrlock(&mm->mmap_lock);
	for (unsigned long addr = first; end - addr >= PMD_SIZE; addr += PMD_SIZE) {
		struct vm_area_struct *vma = find_vma(mm, addr);
		struct address_space *mapping;
		pmd_t *pmd;

		if (!vma || vma->vm_start > addr || vma->vm_end - addr < PMD_SIZE ||
		    is_vm_hugetlb_page(vma))
			continue;
		pmd = pmd_off(mm, addr);
		if (!pmd || pmd_none(pmdp_get(pmd)) || pmd_leaf(pmdp_get(pmd)))
			continue;
		mapping = vma_mapping(vma);
		if (mapping)
			i_mmap_lock_write(mapping);
		if (vma->anon_vma)
			anon_vma_lock_write(vma->anon_vma);
		try_to_free_pte(mm, pmd);
		if (vma->anon_vma)
			anon_vma_unlock_write(vma->anon_vma);
		if (mapping)
			i_mmap_unlock_write(mapping);
	}
	pthread_rwlock_unlock(&mm->mmap_lock);
}

/* ---- one VMA ---- */

static int madvise_vma(struct mm_struct *mm, struct vm_area_struct *vma, unsigned long start,
		       unsigned long end, int behavior)
{
	unsigned long flags = vma->vm_flags;

	switch (behavior) {
	case MADV_DONTNEED:
	case MADV_DONTNEED_LOCKED:
		if (flags & VM_PFNMAP || ((flags & VM_LOCKED) && behavior == MADV_DONTNEED))
			return -EINVAL;
		if (is_vm_hugetlb_page(vma)) {
			/*
			 * madvise_dontneed_free_valid_vma(): an aligned start, and
			 * the end rounded down so that no data is lost by surprise.
			 */
			if (!IS_ALIGNED(start, HPAGE_SIZE))
				return -EINVAL;
			end = ALIGN_DOWN(end, HPAGE_SIZE);
			if (end <= start)
				return 0;
		}
		zap_page_range_single(vma, start, end);
		return 0;
	case MADV_FREE:
		if (!vma_is_anonymous(vma) || (flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB)))
			return -EINVAL;
		madvise_free_range(vma, start, end);
		return 0;
	case MADV_REMOVE:
		return madvise_remove(mm, vma, start, end);
	case MADV_WILLNEED:
	case MADV_COLD:
	case MADV_PAGEOUT:
		/* Nothing to read ahead or reclaim into: there is no swap yet. */
		return 0;
	case MADV_COLLAPSE:
		return madvise_collapse(vma, start, end);
	case MADV_NORMAL:
		flags &= ~(VM_RAND_READ | VM_SEQ_READ);
		break;
	case MADV_RANDOM:
		flags = (flags & ~VM_SEQ_READ) | VM_RAND_READ;
		break;
	case MADV_SEQUENTIAL:
		flags = (flags & ~VM_RAND_READ) | VM_SEQ_READ;
		break;
	case MADV_DONTFORK:
		flags |= VM_DONTCOPY;
		break;
	case MADV_DOFORK:
		if (flags & VM_IO)
			return -EINVAL;
		flags &= ~VM_DONTCOPY;
		break;
	case MADV_WIPEONFORK:
		/* Linux's hugetlb VMAs have a file: refused as file mappings are. */
		if (vma->vm_file || (flags & (VM_SHARED | VM_HUGETLB)))
			return -EINVAL;
		flags |= VM_WIPEONFORK;
		break;
	case MADV_KEEPONFORK:
		flags &= ~VM_WIPEONFORK;
		break;
	case MADV_DONTDUMP:
		flags |= VM_DONTDUMP;
		break;
	case MADV_DODUMP:
		flags &= ~VM_DONTDUMP;
		break;
	case MADV_HUGEPAGE:
		flags = (flags & ~VM_NOHUGEPAGE) | VM_HUGEPAGE;
		break;
	case MADV_NOHUGEPAGE:
		flags = (flags & ~VM_HUGEPAGE) | VM_NOHUGEPAGE;
		break;
	default:
		return -EINVAL;
	}
	return vma_modify_flags(mm, vma, start, end, flags, false);
}

int mm_madvise(struct mm_struct *mm, unsigned long start, unsigned long len_in, int behavior)
{
	unsigned long len, end, zapped_from;
	int unmapped_error = 0;
	int err = 0;
	bool write;

	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (!madvise_behavior_valid(behavior))
		return -EINVAL;
	if (offset_in_page(start))
		return -EINVAL;
	len = PAGE_ALIGN(len_in);
	if (len_in && !len)
		return -EINVAL;
	end = start + len;
	if (end < start)
		return -EINVAL;
	if (end == start)
		return 0;

	write = madvise_need_mmap_write(behavior);
	if (write)
		pthread_rwlock_wrlock(&mm->mmap_lock);
	else
		pthread_rwlock_rdlock(&mm->mmap_lock);
	if (behavior == MADV_POPULATE_READ || behavior == MADV_POPULATE_WRITE) {
		err = madvise_populate(mm, start, end, behavior == MADV_POPULATE_WRITE);
		pthread_rwlock_unlock(&mm->mmap_lock);
		return err;
	}
	/* madvise_walk_vmas(): advise each mapped piece, remember holes. */
	zapped_from = start;
	for (;;) {
		struct vm_area_struct *vma = find_vma(mm, start);
		unsigned long tmp;

		if (!vma || vma->vm_start >= end) {
			unmapped_error = -ENOMEM;
			break;
		}
		if (start < vma->vm_start) {
			unmapped_error = -ENOMEM;
			start = vma->vm_start;
		}
		tmp = vma->vm_end < end ? vma->vm_end : end;
		err = madvise_vma(mm, vma, start, tmp, behavior);
		if (err)
			break;
		start = tmp;
		if (start >= end)
			break;
	}
	pthread_rwlock_unlock(&mm->mmap_lock);
	/* [zapped_from, start) was advised VMA by VMA (start stops at a failure). */
	if (behavior == MADV_DONTNEED || behavior == MADV_DONTNEED_LOCKED)
		madvise_reclaim_pt(mm, zapped_from, start);
	return err ? err : unmapped_error;
}
