// SPDX-License-Identifier: MIT
/*
 * mm/mmap.c - address spaces and their VMAs: mm_alloc()/mmput(), the VMA
 * tree, placement of new mappings (top-down below mmap_base), mmap and
 * munmap, VMA split and merge.
 *
 * The VMA tree is a sorted array (see struct vma_tree).  It only changes
 * under mmap_lock held for writing; readers bisect it under mmap_lock held
 * for reading.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The lowest address mmap hands out (vm.mmap_min_addr). */
#define MMAP_MIN_ADDR 0x10000UL
/* mmap_base with randomisation off (setarch -R) on x86-64. */
#define MMAP_BASE 0x7ffff7fff000UL

/* ---- the VMA tree ---- */

size_t vma_index(struct mm_struct *mm, unsigned long addr)
{
	size_t lo = 0, hi = mm->mm_mt.nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mm->mm_mt.vmas[mid]->vm_end > addr)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

struct vm_area_struct *find_vma(struct mm_struct *mm, unsigned long addr)
{
	size_t i = vma_index(mm, addr);

	return i < mm->mm_mt.nr ? mm->mm_mt.vmas[i] : NULL;
}

struct vm_area_struct *vma_lookup(struct mm_struct *mm, unsigned long addr)
{
	struct vm_area_struct *vma = find_vma(mm, addr);

	return vma && vma->vm_start <= addr ? vma : NULL;
}

/**
 * vma_tree_reserve() - make room for one more VMA in @mm's tree.
 * Needs mmap_lock for writing.  Return: 0 or -ENOMEM (also at max_map_count).
 */
int vma_tree_reserve(struct mm_struct *mm)
{
	struct vma_tree *mt = &mm->mm_mt;
	struct vm_area_struct **grown;
	size_t capacity;

	if (mt->nr >= MAX_MAP_COUNT)
		return -ENOMEM;
	if (mt->nr < mt->capacity)
		return 0;
	capacity = mt->capacity ? mt->capacity * 2 : 16;
	grown = realloc(mt->vmas, capacity * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	mt->vmas = grown;
	mt->capacity = capacity;
	return 0;
}

/**
 * vma_tree_insert_at() - insert @vma at position @i of @mm's tree, after a
 * successful vma_tree_reserve().  Needs mmap_lock for writing.
 */
void vma_tree_insert_at(struct mm_struct *mm, size_t i, struct vm_area_struct *vma)
{
	struct vma_tree *mt = &mm->mm_mt;

	memmove(&mt->vmas[i + 1], &mt->vmas[i], (mt->nr - i) * sizeof(*mt->vmas));
	mt->vmas[i] = vma;
	mt->nr++;
}

void vma_tree_remove_at(struct mm_struct *mm, size_t i)
{
	struct vma_tree *mt = &mm->mm_mt;

	memmove(&mt->vmas[i], &mt->vmas[i + 1], (mt->nr - i - 1) * sizeof(*mt->vmas));
	mt->nr--;
}

/* ---- VMAs and the files they map ---- */

/* Put @vma on its file's i_mmap after @after (NULL: at the end); i_mmap_rwsem held. */
static void __vma_link_file(struct vm_area_struct *vma, struct vm_area_struct *after)
{
	struct address_space *mapping = vma->vm_file->f_mapping;

	if (after && after->vm_file == vma->vm_file && !list_empty(&after->shared))
		list_add(&vma->shared, &after->shared);
	else
		list_add_tail(&vma->shared, &mapping->i_mmap);
	mapping->nr_mmap++;
	vma->vm_mm->nr_file_vmas++;
}

/* Take @vma off its file's i_mmap, if it is on it; i_mmap_rwsem held. */
static void __vma_unlink_file(struct vm_area_struct *vma)
{
	if (list_empty(&vma->shared))
		return;
	list_del_init(&vma->shared);
	vma->vm_file->f_mapping->nr_mmap--;
	vma->vm_mm->nr_file_vmas--;
}

void vma_link_file(struct vm_area_struct *vma, struct vm_area_struct *after)
{
	if (!vma->vm_file)
		return;
	i_mmap_lock_write(vma->vm_file->f_mapping);
	__vma_link_file(vma, after);
	i_mmap_unlock_write(vma->vm_file->f_mapping);
}

/**
 * vm_area_alloc() - a new, empty VMA of @mm over [@start, @end).
 * @mm: the address space it will belong to.
 * @start: the first address (page aligned).
 * @end: the end (page aligned, above @start).
 * @vm_flags: its VM_* flags.
 *
 * Everything else is zero: no file, no ops, no anon_vma, empty lists.
 * Needs no lock; the VMA is not in the tree yet.
 *
 * Return: the VMA, or NULL when memory is short.
 */
static struct vm_area_struct *vm_area_alloc(struct mm_struct *mm, unsigned long start,
					    unsigned long end, unsigned long vm_flags)
{
	struct vm_area_struct *vma = calloc(1, sizeof(*vma));

	if (!vma)
		return NULL;
	INIT_LIST_HEAD(&vma->anon_vma_chain);
	INIT_LIST_HEAD(&vma->shared);
	vma->vm_start = start;
	vma->vm_end = end;
	vma->vm_mm = mm;
	vma->vm_flags = vm_flags;
	return vma;
}

struct vm_area_struct *vm_area_dup(struct vm_area_struct *orig)
{
	struct vm_area_struct *new = malloc(sizeof(*new));

	if (!new)
		return NULL;
	*new = *orig;
	INIT_LIST_HEAD(&new->anon_vma_chain);
	new->anon_vma = NULL;
	INIT_LIST_HEAD(&new->shared);
	if (new->vm_file)
		get_file(new->vm_file);
	if (is_vm_hugetlb_page(new))
		hugetlb_vm_op_open(new);
	return new;
}

/**
 * vm_area_free() - free a VMA that left (or never entered) the tree: take
 * it off its file's i_mmap, unlink its anon_vmas, drop its file reference.
 * @vma: the VMA; its pages are zapped; mmap_lock held for writing.
 *
 * Takes i_mmap_rwsem for writing; the file reference it drops may be the
 * last, which frees the file's page cache.
 */
void vm_area_free(struct vm_area_struct *vma)
{
	if (vma->vm_file) {
		i_mmap_lock_write(vma->vm_file->f_mapping);
		__vma_unlink_file(vma);
		i_mmap_unlock_write(vma->vm_file->f_mapping);
	}
	unlink_anon_vmas(vma);
	if (is_vm_hugetlb_page(vma))
		hugetlb_vm_op_free(vma);
	if (vma->vm_file)
		fput(vma->vm_file);
	free(vma);
}

/* ---- split and merge ---- */

/*
 * vma_adjust_trans_huge() - before a VMA boundary moves to @addr, split a
 * PMD leaf that straddles it.
 */
static void vma_adjust_trans_huge(struct vm_area_struct *vma, unsigned long addr)
{
	if (IS_ALIGNED(addr, PMD_SIZE))
		return;
	split_huge_pmd_address(vma, addr);
}

int split_vma(struct mm_struct *mm, struct vm_area_struct *vma, unsigned long addr)
{
	struct vm_area_struct *new;
	size_t i;

	if (addr <= vma->vm_start || addr >= vma->vm_end || !IS_ALIGNED(addr, PAGE_SIZE))
		return -EINVAL;
	if (is_vm_hugetlb_page(vma) && hugetlb_vma_may_split(vma, addr))
		return -EINVAL; /* vm_ops->may_split */
	if (vma_tree_reserve(mm))
		return -ENOMEM;
	new = vm_area_dup(vma);
	if (!new)
		return -ENOMEM;
	if (anon_vma_clone(new, vma)) {
		vm_area_free(new);
		return -ENOMEM;
	}
	vma_adjust_trans_huge(vma, addr);
	/* The file's reverse map sees both halves change at once. */
	vma_bounds_lock(vma);
	new->vm_start = addr;
	new->vm_pgoff = vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
	vma->vm_end = addr;
	if (new->vm_file)
		__vma_link_file(new, vma);
	vma_bounds_unlock(vma);
	i = vma_index(mm, vma->vm_start);
	vma_tree_insert_at(mm, i + 1, new);
	return 0;
}

/* Can @next be appended to @prev into one VMA? (is_mergeable_vma + anon_vma) */
static bool vmas_mergeable(const struct vm_area_struct *prev, const struct vm_area_struct *next)
{
	/* A hugetlb VMA has a close() hook: never merged away (uhmm merges none). */
	if (is_vm_hugetlb_page(prev) || is_vm_hugetlb_page(next))
		return false;
	if (prev->vm_end != next->vm_start || prev->vm_flags != next->vm_flags ||
	    prev->vm_file != next->vm_file || prev->vm_ops != next->vm_ops ||
	    prev->vm_private_data != next->vm_private_data)
		return false;
	if (prev->vm_pgoff + ((prev->vm_end - prev->vm_start) >> PAGE_SHIFT) != next->vm_pgoff)
		return false;
	if (prev->anon_vma == next->anon_vma)
		return true;
	/* is_mergeable_anon_vma(): one side has none and the other is not forked. */
	if (!prev->anon_vma)
		return list_is_singular(&next->anon_vma_chain);
	if (!next->anon_vma)
		return list_is_singular(&prev->anon_vma_chain);
	return false;
}

/*
 * Fold the VMA at @i + 1 into the VMA at @i.  Return: false (nothing
 * changed) when @i needs @i + 1's anon_vma links and they cannot be copied.
 */
static bool vma_merge_with_next(struct mm_struct *mm, size_t i)
{
	struct vm_area_struct *prev = mm->mm_mt.vmas[i];
	struct vm_area_struct *next = mm->mm_mt.vmas[i + 1];

	if (!prev->anon_vma && next->anon_vma && anon_vma_clone(prev, next))
		return false; /* dup_anon_vma() */
	vma_bounds_lock(prev);
	prev->vm_end = next->vm_end;
	if (next->vm_file)
		__vma_unlink_file(next); /* same file: the lock held covers it */
	vma_bounds_unlock(prev);
	vma_tree_remove_at(mm, i + 1);
	vm_area_free(next);
	return true;
}

struct vm_area_struct *vma_try_merge_around(struct mm_struct *mm, size_t i)
{
	struct vma_tree *mt = &mm->mm_mt;

	/* Like vma_merge_new_range(): the left neighbour first, then the right. */
	if (i > 0 && vmas_mergeable(mt->vmas[i - 1], mt->vmas[i]) && vma_merge_with_next(mm, i - 1))
		i--;
	if (i + 1 < mt->nr && vmas_mergeable(mt->vmas[i], mt->vmas[i + 1]))
		vma_merge_with_next(mm, i);
	return mt->vmas[i];
}

/* ---- address spaces ---- */

struct mm_struct *mm_alloc(struct uhmm_machine *machine)
{
	struct mm_struct *mm;
	pthread_rwlockattr_t attr;

	if (IS_ERR_OR_NULL(machine))
		return ERR_PTR(-EINVAL); /* uhmm only: no machine to build it on */
	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return ERR_PTR(-ENOMEM);
	mm->machine = machine;
	mm->pgd = pt_alloc_table(mm, PT_LEVEL_PGD);
	if (!mm->pgd) {
		free(mm);
		return ERR_PTR(-ENOMEM);
	}
	pthread_rwlockattr_init(&attr);
	/* Writers (munmap, mprotect) must not starve behind a stream of faults. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&mm->mmap_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&mm->page_table_lock, NULL);
	atomic_init(&mm->mm_users, 1);
	atomic_init(&mm->mm_count, 1);
	mm->mmap_base = MMAP_BASE;
	mm->task_size = TASK_SIZE;
	pthread_mutex_lock(&machine->mms_lock);
	list_add_tail(&mm->mmlist, &machine->mms);
	machine->nr_mms++;
	pthread_mutex_unlock(&machine->mms_lock);
	return mm;
}

void mmget(struct mm_struct *mm)
{
	atomic_fetch_add(&mm->mm_users, 1);
}

bool mmget_not_zero(struct mm_struct *mm)
{
	int users = atomic_load(&mm->mm_users);

	while (users > 0)
		if (atomic_compare_exchange_weak(&mm->mm_users, &users, users + 1))
			return true;
	return false;
}

void mmgrab(struct mm_struct *mm)
{
	atomic_fetch_add(&mm->mm_count, 1);
}

void mmdrop(struct mm_struct *mm)
{
	if (atomic_fetch_sub(&mm->mm_count, 1) != 1)
		return;
	mmu_notifier_subscriptions_destroy(mm);
	pthread_rwlock_destroy(&mm->mmap_lock);
	pthread_mutex_destroy(&mm->page_table_lock);
	free(mm->mm_mt.vmas);
	free(mm);
}

/*
 * exit_mmap() - tear down every mapping and page table of @mm.  The mm
 * leaves the machine's list first, so walkers of that list (audit, reclaim),
 * which take mms_lock before mmap_lock, never see it half torn down.
 */
static void exit_mmap(struct mm_struct *mm)
{
	struct uhmm_machine *machine = mm->machine;

	pthread_mutex_lock(&machine->mms_lock);
	list_del_init(&mm->mmlist);
	machine->nr_mms--;
	pthread_mutex_unlock(&machine->mms_lock);

	/* Interval notifiers hear MMU_NOTIFY_RELEASE before anything goes. */
	mmu_notifier_release(mm);
	pthread_rwlock_wrlock(&mm->mmap_lock);
	for (size_t i = 0; i < mm->mm_mt.nr; i++) {
		struct vm_area_struct *vma = mm->mm_mt.vmas[i];

		zap_page_range(vma, vma->vm_start, vma->vm_end);
		if (is_vm_hugetlb_page(vma))
			hugetlb_vm_op_close(vma);
	}
	for (size_t i = 0; i < mm->mm_mt.nr; i++)
		vm_area_free(mm->mm_mt.vmas[i]);
	mm->mm_mt.nr = 0;
	free_all_pgtables(mm);
	mm_put_huge_zero_folio(mm);
	for (int i = 0; i < NR_MM_COUNTERS; i++)
		if (atomic_load(&mm->rss_stat[i]))
			uhmm_warn("exit_mmap: rss counter %d is %ld", i, atomic_load(&mm->rss_stat[i]));
	pthread_rwlock_unlock(&mm->mmap_lock);
}

void mmput(struct mm_struct *mm)
{
	if (atomic_fetch_sub(&mm->mm_users, 1) != 1)
		return;
	exit_mmap(mm);
	mmdrop(mm);
}

/* ---- placement ---- */

/* Is [addr, addr + len) free of VMAs? */
static bool range_is_free(struct mm_struct *mm, unsigned long addr, unsigned long len)
{
	struct vm_area_struct *vma = find_vma(mm, addr);

	return !vma || vma->vm_start >= addr + len;
}

/*
 * Top-down search for the highest @align-aligned gap of @len bytes below
 * mmap_base, then bottom-up above it, as vm_unmapped_area() does.
 * Return: the address, or 0 when nothing fits.
 */
static unsigned long unmapped_area_topdown(struct mm_struct *mm, unsigned long len,
					   unsigned long align)
{
	struct vma_tree *mt = &mm->mm_mt;
	size_t i = vma_index(mm, mm->mmap_base);

	/* Gaps below mmap_base: [end of vmas[i-1], start of vmas[i]) capped at mmap_base. */
	for (;;) {
		unsigned long gap_end = mm->mmap_base;
		unsigned long gap_start = i ? mt->vmas[i - 1]->vm_end : MMAP_MIN_ADDR;
		unsigned long addr;

		if (i < mt->nr && mt->vmas[i]->vm_start < gap_end)
			gap_end = mt->vmas[i]->vm_start;
		if (gap_start < MMAP_MIN_ADDR)
			gap_start = MMAP_MIN_ADDR;
		if (gap_end > gap_start && gap_end - gap_start >= len) {
			addr = ALIGN_DOWN(gap_end - len, align);
			if (addr >= gap_start)
				return addr;
		}
		if (!i)
			break;
		i--;
	}
	/* Bottom-up above mmap_base. */
	for (i = vma_index(mm, mm->mmap_base);; i++) {
		unsigned long gap_start = i ? mt->vmas[i - 1]->vm_end : MMAP_MIN_ADDR;
		unsigned long gap_end = i < mt->nr ? mt->vmas[i]->vm_start : mm->task_size;
		unsigned long addr;

		if (gap_start < mm->mmap_base)
			gap_start = mm->mmap_base;
		addr = ALIGN(gap_start, align);
		if (addr < gap_end && gap_end - addr >= len)
			return addr;
		if (i >= mt->nr)
			break;
	}
	return 0;
}

/*
 * get_unmapped_area() - choose where a new mapping of @len goes (of @file,
 * with mmap @flags).  Return: the address, or -ENOMEM.
 */
long get_unmapped_area(struct mm_struct *mm, struct file *file, unsigned long addr,
		       unsigned long len, unsigned long flags)
{
	unsigned long align = PAGE_SIZE;

	if (len > mm->task_size - MMAP_MIN_ADDR)
		return -ENOMEM;
	if (flags & MAP_HUGETLB) {
		/* hugetlb_get_unmapped_area(): everything huge-page aligned. */
		if (!IS_ALIGNED(len, HPAGE_SIZE))
			return -EINVAL;
		if (flags & MAP_FIXED)
			return IS_ALIGNED(addr, HPAGE_SIZE) ? (long)addr : -EINVAL;
		if (addr) {
			addr = ALIGN(addr, HPAGE_SIZE);
			if (addr >= MMAP_MIN_ADDR && addr <= mm->task_size - len &&
			    range_is_free(mm, addr, len))
				return (long)addr;
		}
		addr = unmapped_area_topdown(mm, len, HPAGE_SIZE);
		return addr ? (long)addr : -ENOMEM;
	}
	if (flags & MAP_FIXED)
		return (long)addr;
	if (addr) {
		/*
		 * x86's arch_get_unmapped_area_topdown() rounds a hint down
		 * (found by the differential suite: uhmm rounded it up).
		 */
		addr &= PAGE_MASK;
		if (addr >= MMAP_MIN_ADDR && addr <= mm->task_size - len &&
		    range_is_free(mm, addr, len))
			return (long)addr;
	} else if (!file && !(flags & MAP_SHARED) && IS_ALIGNED(len, PMD_SIZE)) {
		/*
		 * Private anonymous mappings of a PMD multiple without a hint
		 * are THP aligned (thp_get_unmapped_area()); shmem and files are
		 * not, as shmem_get_unmapped_area() with shmem_enabled "never".
		 */
		align = PMD_SIZE;
	}
	addr = unmapped_area_topdown(mm, len, align);
	if (!addr && align > PAGE_SIZE)
		addr = unmapped_area_topdown(mm, len, PAGE_SIZE);
	return addr ? (long)addr : -ENOMEM;
}

/* ---- munmap ---- */

/*
 * file_vma_bounds() - the end of the last file VMA below @start (@floor)
 * and the start of the first one from @end on (@ceiling, 0 if none): the
 * page tables of [@start, @end) that reach past them may be walked by a
 * file's unmap_mapping_range() without our mmap_lock, so they stay.
 */
static void file_vma_bounds(struct mm_struct *mm, unsigned long start, unsigned long end,
			    unsigned long *floor, unsigned long *ceiling)
{
	*floor = 0;
	*ceiling = 0;
	if (!mm->nr_file_vmas)
		return;
	for (size_t i = vma_index(mm, start); i-- > 0;)
		if (mm->mm_mt.vmas[i]->vm_file) {
			*floor = mm->mm_mt.vmas[i]->vm_end;
			break;
		}
	for (size_t i = vma_index(mm, end); i < mm->mm_mt.nr; i++)
		if (mm->mm_mt.vmas[i]->vm_file) {
			*ceiling = mm->mm_mt.vmas[i]->vm_start;
			break;
		}
}

/*
 * do_munmap_locked() - unmap [start, end); mmap_lock held for writing.
 * Return: 0 or -ENOMEM (a VMA could not be split; nothing was unmapped).
 */
int do_munmap_locked(struct mm_struct *mm, unsigned long start, unsigned long end)
{
	struct vm_area_struct *vma = find_vma(mm, start);
	struct mmu_notifier_range range;
	unsigned long floor, ceiling;
	size_t first, last;
	int err;

	if (!vma || vma->vm_start >= end)
		return 0;
	/* Check both splits before making either (hugetlb's may_split). */
	if (vma->vm_start < start && is_vm_hugetlb_page(vma) && hugetlb_vma_may_split(vma, start))
		return -EINVAL;
	{
		struct vm_area_struct *last = find_vma(mm, end - 1);

		if (last && last->vm_start < end && last->vm_end > end &&
		    is_vm_hugetlb_page(last) && hugetlb_vma_may_split(last, end))
			return -EINVAL;
	}
	if (vma->vm_start < start) {
		err = split_vma(mm, vma, start);
		if (err)
			return err;
	}
	vma = find_vma(mm, end - 1);
	if (vma && vma->vm_start < end && vma->vm_end > end) {
		err = split_vma(mm, vma, end);
		if (err)
			return err;
	}
	first = vma_index(mm, start);
	last = first;
	while (last < mm->mm_mt.nr && mm->mm_mt.vmas[last]->vm_end <= end)
		last++;
	/* unmap_vmas(): one MMU_NOTIFY_UNMAP over the whole munmap range. */
	mmu_notifier_range_init(&range, MMU_NOTIFY_UNMAP, 0, mm, start, end);
	mmu_notifier_invalidate_range_start(&range);
	for (size_t i = first; i < last; i++) {
		vma = mm->mm_mt.vmas[i];
		zap_page_range(vma, vma->vm_start, vma->vm_end);
		if (is_vm_hugetlb_page(vma))
			hugetlb_vm_op_close(vma);
	}
	mmu_notifier_invalidate_range_end(&range);
	for (size_t i = first; i < last; i++)
		vm_area_free(mm->mm_mt.vmas[i]);
	memmove(&mm->mm_mt.vmas[first], &mm->mm_mt.vmas[last],
		(mm->mm_mt.nr - last) * sizeof(*mm->mm_mt.vmas));
	mm->mm_mt.nr -= last - first;
	file_vma_bounds(mm, start, end, &floor, &ceiling);
	free_pgtables(mm, start, end, floor, ceiling);
	return 0;
}

int mm_munmap(struct mm_struct *mm, unsigned long addr, unsigned long len)
{
	unsigned long end;
	int err;

	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (offset_in_page(addr) || addr > TASK_SIZE || len > TASK_SIZE - addr)
		return -EINVAL;
	end = addr + PAGE_ALIGN(len);
	if (end == addr)
		return -EINVAL;
	pthread_rwlock_wrlock(&mm->mmap_lock);
	err = do_munmap_locked(mm, addr, end);
	pthread_rwlock_unlock(&mm->mmap_lock);
	return err;
}

/* ---- mmap ---- */

/*
 * round_hint_to_min() - a hint (not MAP_FIXED, nor MAP_FIXED_NOREPLACE,
 * which do_mmap() turns into MAP_FIXED first) is rounded down to a page;
 * one below mmap_min_addr becomes mmap_min_addr, one in the first page no
 * hint at all.  (uhmm used to round up and to apply this to
 * MAP_FIXED_NOREPLACE, which let an unaligned address through.)
 */
static unsigned long round_hint_to_min(unsigned long hint)
{
	hint &= PAGE_MASK;
	if (hint && hint < MMAP_MIN_ADDR)
		return MMAP_MIN_ADDR;
	return hint;
}

/* calc_vm_prot_bits() + calc_vm_flag_bits() + the VM_MAY* defaults. */
static unsigned long mmap_vm_flags(int prot, int flags)
{
	unsigned long vm_flags = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;

	if (prot & PROT_READ)
		vm_flags |= VM_READ;
	if (prot & PROT_WRITE)
		vm_flags |= VM_WRITE;
	if (prot & PROT_EXEC)
		vm_flags |= VM_EXEC;
	if (flags & MAP_NORESERVE)
		vm_flags |= VM_NORESERVE;
	return vm_flags;
}

/* accountable_mapping(): private writable mappings are charged (VM_ACCOUNT). */
static unsigned long mmap_account(unsigned long vm_flags)
{
	if ((vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE)
		vm_flags |= VM_ACCOUNT;
	return vm_flags;
}

#ifndef MAP_UNINITIALIZED
#define MAP_UNINITIALIZED 0x4000000
#endif
/* The flags every file's MAP_SHARED_VALIDATE accepts (Linux's LEGACY_MAP_MASK). */
#define LEGACY_MAP_MASK                                                                   \
	(MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE |           \
	 MAP_EXECUTABLE | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | \
	 MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB)

/*
 * file_mmap_ok() - does [pgoff, pgoff + len) stay below the largest file
 * size (s_maxbytes)?
 */
static bool file_mmap_ok(unsigned long pgoff, unsigned long len)
{
	unsigned long maxsize = (unsigned long)MAX_LFS_FILESIZE;

	if (len > maxsize)
		return false;
	maxsize -= len;
	return pgoff <= maxsize >> PAGE_SHIFT;
}

/*
 * mmap_file_flags() - do_mmap()'s checks and vm_flags for a file mapping of
 * type @flags & MAP_TYPE.  Return: the flags, or a negative errno.
 */
static long mmap_file_flags(struct file *file, int prot, int flags, unsigned long vm_flags)
{
	switch (flags & 0x0f /* MAP_TYPE */) {
	case MAP_SHARED_VALIDATE:
		if (flags & ~LEGACY_MAP_MASK)
			return -EOPNOTSUPP;
		/* fallthrough */
	case MAP_SHARED:
		if ((prot & PROT_WRITE) && !(file->f_mode & FMODE_WRITE))
			return -EACCES;
		vm_flags |= VM_SHARED | VM_MAYSHARE;
		/* Opened read-only: never writable, so not really shared either. */
		if (!(file->f_mode & FMODE_WRITE))
			vm_flags &= ~(VM_MAYWRITE | VM_SHARED);
		/* fallthrough */
	case MAP_PRIVATE:
		if (!(file->f_mode & FMODE_READ))
			return -EACCES;
		return (long)vm_flags;
	default:
		return -EINVAL;
	}
}

/*
 * populate_range() - MAP_POPULATE: fault in [start, end) as
 * populate_vma_page_range() does (write faults for private writable VMAs).
 * mmap_lock held for reading.  Errors are ignored, as mmap ignores them.
 */
static void populate_range(struct mm_struct *mm, unsigned long start, unsigned long end)
{
	for (unsigned long addr = start; addr < end;) {
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		unsigned int flags = FAULT_FLAG_REMOTE;
		vm_fault_t ret;

		if (!vma || !(vma->vm_flags & VM_ACCESS_FLAGS))
			return;
		if ((vma->vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE)
			flags |= FAULT_FLAG_WRITE;
		ret = handle_mm_fault(vma, addr, flags);
		if (ret & VM_FAULT_ERROR)
			return;
		if (ret & VM_FAULT_RETRY)
			continue;
		addr += PAGE_SIZE;
	}
}

long mm_mmap(struct mm_struct *mm, unsigned long addr, unsigned long len, int prot, int flags,
	     struct file *file, unsigned long off)
{
	unsigned long vm_flags, end, pgoff = off >> PAGE_SHIFT;
	struct vm_area_struct *vma;
	bool bad_anon_type = false;
	long ret;
	size_t i;

	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (flags & MAP_ANONYMOUS)
		file = NULL; /* ksys_mmap_pgoff() does not look at the fd */
	else if (!file)
		return -EBADF;
	else if (flags & MAP_HUGETLB)
		return -EINVAL; /* not a hugetlbfs file */
	if (flags & MAP_HUGETLB) {
		/* ksys_mmap_pgoff(): the one hstate is 2 MiB (MAP_HUGE_2MB or 0). */
		unsigned int log = ((unsigned int)flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;

		if (log && log != HPAGE_SHIFT)
			return -EINVAL;
		len = ALIGN(len, HPAGE_SIZE); /* 0 when it wraps: -EINVAL below */
	}
	if (offset_in_page(off))
		return -EINVAL;
	if (!len)
		return -EINVAL;
	if (flags & MAP_FIXED_NOREPLACE)
		flags |= MAP_FIXED;
	if (!(flags & MAP_FIXED))
		addr = round_hint_to_min(addr);
	len = PAGE_ALIGN(len);
	if (!len)
		return -ENOMEM;
	if (pgoff + (len >> PAGE_SHIFT) < pgoff)
		return -EOVERFLOW;
	if (flags & MAP_FIXED) {
		if (len > TASK_SIZE || addr > TASK_SIZE - len)
			return -ENOMEM;
		if (offset_in_page(addr))
			return -EINVAL;
	}
	vm_flags = mmap_vm_flags(prot, flags);
	if (flags & MAP_HUGETLB)
		vm_flags |= VM_HUGETLB | VM_DONTEXPAND; /* hugetlbfs_file_mmap() */
	if (!file) {
		switch (flags & 0x0f /* MAP_TYPE */) {
		case MAP_PRIVATE:
			break;
		case MAP_SHARED:
			/* shmem: a new object, offset 0 (do_mmap() ignores pgoff). */
			vm_flags |= VM_SHARED | VM_MAYSHARE;
			pgoff = 0;
			break;
		default:
			/*
			 * Anonymous memory takes MAP_SHARED or MAP_PRIVATE only
			 * (not even MAP_SHARED_VALIDATE), as in do_mmap(), which
			 * checks this after placing the mapping: a
			 * MAP_FIXED_NOREPLACE clash is -EEXIST first (found by
			 * the differential suite).
			 */
			bad_anon_type = true;
			break;
		}
	}

	pthread_rwlock_wrlock(&mm->mmap_lock);
	ret = get_unmapped_area(mm, file, addr, len, (unsigned long)flags);
	if (ret < 0)
		goto out;
	addr = (unsigned long)ret;
	end = addr + len;
	if ((flags & MAP_FIXED_NOREPLACE) && !range_is_free(mm, addr, len)) {
		ret = -EEXIST;
		goto out;
	}
	if (bad_anon_type) {
		ret = -EINVAL;
		goto out;
	}
	if (file) {
		/* do_mmap() checks the file after placing the mapping. */
		if (!file_mmap_ok(pgoff, len)) {
			ret = -EOVERFLOW;
			goto out;
		}
		ret = mmap_file_flags(file, prot, flags, vm_flags);
		if (ret < 0)
			goto out;
		vm_flags = (unsigned long)ret;
	}
	if (!(vm_flags & VM_HUGETLB))
		vm_flags = mmap_account(vm_flags); /* hugetlb is never charged */
	if (vma_tree_reserve(mm)) {
		ret = -ENOMEM;
		goto out;
	}
	vma = vm_area_alloc(mm, addr, end, vm_flags);
	if (!vma) {
		ret = -ENOMEM;
		goto out;
	}
	if (file) {
		vma->vm_file = get_file(file);
		vma->vm_ops = file_vm_ops(file);
		vma->vm_pgoff = pgoff;
	} else if (vm_flags & VM_HUGETLB) {
		/* Reserve before MAP_FIXED unmaps anything: a failure changes nothing. */
		vma->vm_pgoff = (vm_flags & VM_MAYSHARE) ? 0 : addr >> PAGE_SHIFT;
		ret = hugetlb_mmap_prepare(vma);
		if (ret) {
			free(vma);
			goto out;
		}
	} else if (vm_flags & VM_MAYSHARE) {
		/* Before MAP_FIXED unmaps anything: a failure changes nothing. */
		ret = shmem_zero_setup(vma);
		if (ret) {
			free(vma);
			goto out;
		}
	} else {
		vma->vm_pgoff = addr >> PAGE_SHIFT;
	}
	if (flags & MAP_FIXED) {
		ret = do_munmap_locked(mm, addr, end);
		if (!ret && vma_tree_reserve(mm))
			ret = -ENOMEM;
		if (ret) {
			if (is_vm_hugetlb_page(vma))
				hugetlb_vm_op_close(vma);
			vm_area_free(vma);
			goto out;
		}
	}
	i = vma_index(mm, addr);
	vma_tree_insert_at(mm, i, vma);
	vma_link_file(vma, NULL);
	vma_try_merge_around(mm, i);
	ret = (long)addr;
out:
	if (ret >= 0 && (flags & MAP_POPULATE)) {
		/* Downgrade: populate under the read lock, as mm_populate() does. */
		pthread_rwlock_unlock(&mm->mmap_lock);
		pthread_rwlock_rdlock(&mm->mmap_lock);
		populate_range(mm, (unsigned long)ret, (unsigned long)ret + len);
	}
	pthread_rwlock_unlock(&mm->mmap_lock);
	return ret;
}

/* ---- mmap of a device file ---- */

/*
 * The vm_ops of a driver's VMA: no ->fault, so a touch of a page the driver
 * did not insert raises SIGBUS, as in Linux for a VMA without ->fault.
 */
const struct vm_operations_struct device_vm_ops = {
	.name = "device",
};

/**
 * mm_mmap_device() - mmap(2) of a character device whose f_op->mmap is
 * @mmap: a VMA without a file or anonymous memory, filled by the driver
 * (with vm_insert_page(), which makes it VM_MIXEDMAP).
 * @mm: the address space.
 * @addr: hint, or the address with MAP_FIXED / MAP_FIXED_NOREPLACE.
 * @len: bytes, rounded up to pages.
 * @prot: PROT_* bits.
 * @flags: MAP_SHARED or MAP_PRIVATE, MAP_FIXED, MAP_FIXED_NOREPLACE.
 * @mmap: the driver's mmap, called with mmap_lock held for writing once
 *        the VMA is in place (vm_private_data = @priv).  Return: 0 or a
 *        negative errno, which unmaps the VMA again.
 * @priv: for the driver.
 *
 * uhmm has no character-device files: the driver calls this from its own
 * mmap entry point (dmirror_mmap()) instead of the core calling
 * file->f_op->mmap.  The VMA is never merged with a neighbour.
 *
 * Return: the address, or -EINVAL (zero length, no or both sharing types,
 * MAP_ANONYMOUS, unaligned fixed address), -ENOMEM, -EEXIST, -ENODEV (no
 * @mmap), or the driver's error.
 */
long mm_mmap_device(struct mm_struct *mm, unsigned long addr, unsigned long len, int prot,
		    int flags, int (*mmap)(struct vm_area_struct *vma, void *priv), void *priv)
{
	unsigned long vm_flags, end;
	struct vm_area_struct *vma;
	long ret;

	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (flags & (MAP_ANONYMOUS | MAP_HUGETLB))
		return -EINVAL;
	if ((flags & 0x0f /* MAP_TYPE */) != MAP_SHARED && (flags & 0x0f) != MAP_PRIVATE)
		return -EINVAL;
	if (!len)
		return -EINVAL;
	len = PAGE_ALIGN(len);
	if (!len)
		return -ENOMEM;
	if (flags & MAP_FIXED_NOREPLACE)
		flags |= MAP_FIXED;
	if (!(flags & MAP_FIXED))
		addr = round_hint_to_min(addr);
	if (flags & MAP_FIXED) {
		if (len > TASK_SIZE || addr > TASK_SIZE - len)
			return -ENOMEM;
		if (offset_in_page(addr))
			return -EINVAL;
	}
	/* do_mmap(): a file whose f_op has no ->mmap is -ENODEV. */
	if (!mmap)
		return -ENODEV;
	vm_flags = mmap_vm_flags(prot, flags);
	if ((flags & 0x0f) == MAP_SHARED)
		vm_flags |= VM_SHARED | VM_MAYSHARE;

	pthread_rwlock_wrlock(&mm->mmap_lock);
	/* Placed like a shared mapping: not THP aligned. */
	ret = get_unmapped_area(mm, NULL, addr, len, (unsigned long)flags | MAP_SHARED);
	if (ret < 0)
		goto out;
	addr = (unsigned long)ret;
	end = addr + len;
	if ((flags & MAP_FIXED_NOREPLACE) && !range_is_free(mm, addr, len)) {
		ret = -EEXIST;
		goto out;
	}
	if (vma_tree_reserve(mm)) {
		ret = -ENOMEM;
		goto out;
	}
	vma = vm_area_alloc(mm, addr, end, mmap_account(vm_flags) | VM_DONTEXPAND);
	if (!vma) {
		ret = -ENOMEM;
		goto out;
	}
	vma->vm_ops = &device_vm_ops;
	vma->vm_private_data = priv;
	if (flags & MAP_FIXED) {
		ret = do_munmap_locked(mm, addr, end);
		if (!ret && vma_tree_reserve(mm))
			ret = -ENOMEM;
		if (ret) {
			vm_area_free(vma);
			goto out;
		}
	}
	vma_tree_insert_at(mm, vma_index(mm, addr), vma);
	ret = mmap(vma, priv);
	if (ret) {
		/* unmap_region(): whatever the driver inserted goes too. */
		do_munmap_locked(mm, addr, end);
		goto out;
	}
	ret = (long)addr;
out:
	pthread_rwlock_unlock(&mm->mmap_lock);
	return ret;
}
