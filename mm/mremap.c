// SPDX-License-Identifier: MIT
/*
 * mm/mremap.c - mremap(2): shrink a mapping in place, grow it in place when
 * the range after it is free, or move it (MREMAP_MAYMOVE, MREMAP_FIXED,
 * MREMAP_DONTUNMAP) by moving its page-table entries, not its pages.
 *
 * The rules are those of Linux 6.18 (checked against mremap(2) on such a
 * kernel):
 *   - argument errors (-EINVAL) come first, before mmap_lock is taken;
 *   - MREMAP_FIXED with old_len == new_len is a "move only": it may span
 *     several VMAs (not a gap at the start), each moved to the same offset
 *     from the destination, as since Linux 6.17; the gaps between them are
 *     left alone at the destination;
 *   - any other call needs a VMA at old_addr; a resize to the same length
 *     without a new address is a no-op that checks nothing else; a shrink
 *     unmaps [old_addr + new_len, old_addr + old_len), whatever VMAs that
 *     range crosses; growing or moving needs the old range inside the VMA;
 *   - a move copies the VMA (same vm_pgoff, so anonymous folios keep their
 *     index; an anonymous VMA that never faulted takes the pgoff of its new
 *     address instead, as copy_vma() does), links the copy to the same
 *     anon_vmas, merges it with its neighbours when it can, then moves the
 *     entries: a PMD (a leaf with its deposited PTE table, or a whole PTE
 *     table) moves as one entry when the source and destination PMDs are
 *     both wholly covered; otherwise a PMD leaf is split first and the PTEs
 *     move one by one.  References, mapcounts and RSS do not change: the
 *     same entries map the same pages.  Moved entries are marked soft-dirty,
 *     as on x86 with CONFIG_MEM_SOFT_DIRTY.
 *
 * Everything runs under mmap_lock held for writing.  The anon_vma lock is
 * held around each entry move so that a reverse-map walk sees every entry
 * either at its old or at its new place; the two page-table locks of a move
 * are taken in address order.
 */
#include <stdlib.h>

#include "internal.h"


enum mremap_type {
	MREMAP_NO_RESIZE,
	MREMAP_SHRINK,
	MREMAP_EXPAND,
};

/**
 * struct vma_remap_struct - one mremap request as it is carried out.
 * @mm: the address space.
 * @addr: start of the range to remap.
 * @old_len: its length (page aligned).
 * @new_len: the length wanted (page aligned).
 * @flags: MREMAP_* flags.
 * @new_addr: the destination, once known.
 * @vma: the VMA containing @addr.
 * @remap_type: no resize, shrink or expand.
 */
struct vma_remap_struct {
	struct mm_struct *mm;
	unsigned long addr;
	unsigned long old_len;
	unsigned long new_len;
	int flags;
	unsigned long new_addr;
	struct vm_area_struct *vma;
	enum mremap_type remap_type;
};

/* MREMAP_FIXED and MREMAP_DONTUNMAP both name (or hint) a destination. */
static bool vrm_implies_new_addr(const struct vma_remap_struct *vrm)
{
	return vrm->flags & (MREMAP_FIXED | MREMAP_DONTUNMAP);
}

/* A fixed move without resize may span several VMAs (remap_move()). */
static bool vrm_move_only(const struct vma_remap_struct *vrm)
{
	return (vrm->flags & MREMAP_FIXED) && vrm->old_len == vrm->new_len;
}

/* ---- moving page-table entries ---- */

/* A PMD value that points to a PTE table. */
static bool pmd_points_to_table(pmd_t val)
{
	return (pmd_val(val) & _PAGE_PRESENT) && !(pmd_val(val) & _PAGE_PSE);
}

/* Take two page-table locks, lower address first (one if they are the same). */
static void lock_two_ptls(pthread_mutex_t *a, pthread_mutex_t *b)
{
	if (a == b) {
		pthread_mutex_lock(a);
		return;
	}
	if ((uintptr_t)a > (uintptr_t)b) {
		pthread_mutex_t *t = a;

		a = b;
		b = t;
	}
	pthread_mutex_lock(a);
	pthread_mutex_lock(b);
}

static void unlock_two_ptls(pthread_mutex_t *a, pthread_mutex_t *b)
{
	pthread_mutex_unlock(a);
	if (b != a)
		pthread_mutex_unlock(b);
}

/* A moved entry is new at its address: soft-dirty (move_soft_dirty_pte()). */
static pte_t move_soft_dirty_pte(pte_t pte)
{
	if (pte_present(pte))
		return __pte(pte_val(pte) | _PAGE_SOFT_DIRTY);
	if (is_swap_pte(pte))
		return pte_swp_mksoft_dirty(pte);
	return pte;
}

static pmd_t move_soft_dirty_pmd(pmd_t pmd)
{
	if (pmd_present(pmd))
		return __pmd(pmd_val(pmd) | _PAGE_SOFT_DIRTY);
	if (is_swap_pmd(pmd))
		return __pmd(pmd_val(pmd) | _PAGE_SWP_SOFT_DIRTY);
	return pmd;
}

/* The reverse-map locks a move holds (take_rmap_locks()). */
struct move_rmap {
	struct address_space *mapping;
	struct anon_vma *anon_vma;
};

/*
 * The rmap locks of a move: the file's i_mmap_rwsem, then the root
 * anon_vma of whichever VMA has one (a VMA and its copy share the root),
 * so that neither a file nor an anon reverse-map walk misses an entry in
 * flight.
 */
static struct move_rmap move_rmap_lock(struct vm_area_struct *old_vma,
				       struct vm_area_struct *new_vma)
{
	struct move_rmap r = {
		.mapping = vma_mapping(old_vma),
		.anon_vma = old_vma->anon_vma ? old_vma->anon_vma : new_vma->anon_vma,
	};

	if (r.mapping)
		i_mmap_lock_write(r.mapping);
	if (r.anon_vma)
		anon_vma_lock_write(r.anon_vma);
	return r;
}

static void move_rmap_unlock(struct move_rmap r)
{
	if (r.anon_vma)
		anon_vma_unlock_write(r.anon_vma);
	if (r.mapping)
		i_mmap_unlock_write(r.mapping);
}

/*
 * move_huge_pmd() - move the PMD leaf (or PMD swap entry) at @old_pmd to the
 * empty slot @new_pmd, with the PTE table deposited for it.
 * Return: false when @new_pmd is not empty or @old_pmd is no longer a leaf.
 */
static bool move_huge_pmd(struct mm_struct *mm, pmd_t *old_pmd, pmd_t *new_pmd)
{
	pthread_mutex_t *old_ptl = pmd_lockptr(mm, old_pmd);
	pthread_mutex_t *new_ptl = pmd_lockptr(mm, new_pmd);
	pmd_t val;

	if (!pmd_none(pmdp_get(new_pmd)))
		return false;
	lock_two_ptls(old_ptl, new_ptl);
	val = pmdp_get(old_pmd);
	if (!pmd_leaf(val) && !is_swap_pmd(val)) {
		unlock_two_ptls(old_ptl, new_ptl);
		return false;
	}
	val = pmdp_get_and_clear(old_pmd);
	/* The deposit stays with the PMD table that holds the leaf. */
	if (old_ptl != new_ptl) {
		uint64_t *pgtable = pgtable_trans_huge_withdraw(mm, old_pmd);

		if (pgtable)
			pgtable_trans_huge_deposit(mm, new_pmd, pgtable);
		else
			uhmm_warn("mremap: PMD leaf without a deposited table");
	}
	set_pmd(new_pmd, move_soft_dirty_pmd(val));
	unlock_two_ptls(old_ptl, new_ptl);
	return true;
}

/*
 * move_normal_pmd() - move the PTE table @old_pmd points to, whole, into the
 * empty slot @new_pmd (the source and destination cover whole PMDs).  Like
 * Linux, the entries in the table keep their bits.
 * Return: false when @new_pmd is not empty or @old_pmd no longer points to
 * a table.
 */
static bool move_normal_pmd(struct mm_struct *mm, pmd_t *old_pmd, pmd_t *new_pmd)
{
	pthread_mutex_t *old_ptl = pmd_lockptr(mm, old_pmd);
	pthread_mutex_t *new_ptl = pmd_lockptr(mm, new_pmd);
	pmd_t val;

	if (!pmd_none(pmdp_get(new_pmd)))
		return false;
	lock_two_ptls(old_ptl, new_ptl);
	val = pmdp_get(old_pmd);
	if (!pmd_points_to_table(val)) {
		unlock_two_ptls(old_ptl, new_ptl);
		return false;
	}
	pmdp_get_and_clear(old_pmd);
	set_pmd(new_pmd, val);
	unlock_two_ptls(old_ptl, new_ptl);
	return true;
}

/*
 * move_ptes() - move the PTEs of [@old_addr, @old_addr + @extent), all in
 * the table under @old_pmd, to the table under @new_pmd from @new_addr.
 * Return: 0, or -EAGAIN when a PMD no longer points to a PTE table.
 */
static int move_ptes(struct mm_struct *mm, pmd_t *old_pmd, unsigned long old_addr, pmd_t *new_pmd,
		     unsigned long new_addr, unsigned long extent)
{
	pmd_t old_val = pmdp_get(old_pmd), new_val = pmdp_get(new_pmd);
	pthread_mutex_t *old_ptl, *new_ptl;
	pte_t *old_pte, *new_pte;

	if (!pmd_points_to_table(old_val) || !pmd_points_to_table(new_val))
		return -EAGAIN;
	old_ptl = pte_lockptr(mm, old_val);
	new_ptl = pte_lockptr(mm, new_val);
	lock_two_ptls(old_ptl, new_ptl);
	if (pmd_val(pmdp_get(old_pmd)) != pmd_val(old_val) ||
	    pmd_val(pmdp_get(new_pmd)) != pmd_val(new_val)) {
		unlock_two_ptls(old_ptl, new_ptl);
		return -EAGAIN;
	}
	old_pte = (pte_t *)pt_entry_table(mm, pmd_val(old_val)) + pte_index(old_addr);
	new_pte = (pte_t *)pt_entry_table(mm, pmd_val(new_val)) + pte_index(new_addr);
	for (unsigned long i = 0; i < extent >> PAGE_SHIFT; i++) {
		pte_t pte = ptep_get(&old_pte[i]);

		if (pte_none(pte))
			continue;
		if (!pte_none(ptep_get(&new_pte[i])))
			uhmm_warn("mremap: destination PTE at %#lx is not empty",
				  new_addr + (i << PAGE_SHIFT));
		pte = ptep_get_and_clear(&old_pte[i]);
		set_pte(&new_pte[i], move_soft_dirty_pte(pte));
	}
	unlock_two_ptls(old_ptl, new_ptl);
	return 0;
}

/* The bytes from @old_addr the next step may move: up to the next PMD boundary of either side. */
static unsigned long move_extent(unsigned long old_addr, unsigned long new_addr, unsigned long left)
{
	unsigned long extent = PMD_SIZE - (old_addr & ~PMD_MASK);
	unsigned long new_extent = PMD_SIZE - (new_addr & ~PMD_MASK);

	if (new_extent < extent)
		extent = new_extent;
	return left < extent ? left : extent;
}

/*
 * move_page_tables() - move every entry of [@old_addr, @old_addr + @len) in
 * @old_vma to the same offset from @new_addr in @new_vma.
 * mmap_lock held for writing.
 * Return: the bytes moved: @len, or less when a page table could not be
 * allocated (what was moved stays moved).
 */
static unsigned long move_page_tables(struct mm_struct *mm, struct vm_area_struct *old_vma,
				      struct vm_area_struct *new_vma, unsigned long old_addr,
				      unsigned long new_addr, unsigned long len)
{
	struct mmu_notifier_range range;
	unsigned long done, extent;

	/* The source's entries move away: MMU_NOTIFY_UNMAP, as Linux's. */
	mmu_notifier_range_init(&range, MMU_NOTIFY_UNMAP, 0, mm, old_addr, old_addr + len);
	mmu_notifier_invalidate_range_start(&range);
	if (is_vm_hugetlb_page(old_vma)) {
		done = move_hugetlb_page_tables(old_vma, new_vma, old_addr, new_addr, len);
		mmu_notifier_invalidate_range_end(&range);
		return done;
	}
	for (done = 0; done < len; done += extent) {
		unsigned long old = old_addr + done, new = new_addr + done;
		pmd_t *old_pmd, *new_pmd;
		struct move_rmap rmap;
		pmd_t val;
		bool moved;

		extent = move_extent(old, new, len - done);
		old_pmd = pmd_off(mm, old);
		if (!old_pmd || pmd_none(pmdp_get(old_pmd)))
			continue;
		new_pmd = pmd_off_alloc(mm, new);
		if (!new_pmd)
			break;
again:
		val = pmdp_get(old_pmd);
		if (pmd_leaf(val) || is_swap_pmd(val)) {
			if (extent == PMD_SIZE) {
				rmap = move_rmap_lock(old_vma, new_vma);
				moved = move_huge_pmd(mm, old_pmd, new_pmd);
				move_rmap_unlock(rmap);
				if (moved)
					continue;
			}
			split_huge_pmd(old_vma, old_pmd, old);
			val = pmdp_get(old_pmd);
			if (!pmd_none(val) && !pmd_points_to_table(val)) {
				/* A PMD swap entry cannot be split here. */
				uhmm_warn("mremap: cannot split PMD entry %#llx at %#lx",
					  (unsigned long long)pmd_val(val), old);
				break;
			}
		} else if (extent == PMD_SIZE) {
			rmap = move_rmap_lock(old_vma, new_vma);
			moved = move_normal_pmd(mm, old_pmd, new_pmd);
			move_rmap_unlock(rmap);
			if (moved)
				continue;
		}
		if (pmd_none(pmdp_get(old_pmd)))
			continue;
		if (pte_alloc(mm, new_pmd))
			break;
		rmap = move_rmap_lock(old_vma, new_vma);
		moved = !move_ptes(mm, old_pmd, old, new_pmd, new, extent);
		move_rmap_unlock(rmap);
		if (!moved)
			goto again;
	}
	mmu_notifier_invalidate_range_end(&range);
	return done < len ? done : len;
}

/* ---- the VMA side ---- */

/*
 * copy_vma() - a VMA for [new_addr, new_addr + new_len) with @vrm->vma's
 * flags and anon_vma links, page offset @pgoff, merged with its neighbours
 * when they allow it.  mmap_lock held for writing.
 * Return: the VMA that now covers the destination (possibly a neighbour, or
 * even the source VMA, it merged into), or NULL on -ENOMEM.
 */
static struct vm_area_struct *copy_vma(struct vma_remap_struct *vrm, unsigned long pgoff)
{
	struct vm_area_struct *vma = vrm->vma, *new;
	struct mm_struct *mm = vrm->mm;
	size_t i;

	/*
	 * Never faulted: take the pgoff of the new place, so that it may merge
	 * there (not hugetlb: its reservation map is indexed by pgoff).
	 */
	if (vma_is_anonymous(vma) && !vma->anon_vma && !is_vm_hugetlb_page(vma))
		pgoff = vrm->new_addr >> PAGE_SHIFT;
	if (vma_tree_reserve(mm))
		return NULL;
	new = vm_area_dup(vma);
	if (!new)
		return NULL;
	if (anon_vma_clone(new, vma)) {
		vm_area_free(new);
		return NULL;
	}
	new->vm_start = vrm->new_addr;
	new->vm_end = vrm->new_addr + vrm->new_len;
	new->vm_pgoff = pgoff;
	i = vma_index(mm, new->vm_start);
	vma_tree_insert_at(mm, i, new);
	vma_link_file(new, vma);
	return vma_try_merge_around(mm, i);
}

/*
 * move_vma() - move [addr, addr + old_len) of @vrm->vma to a new VMA of
 * new_len at new_addr (free by now), then unmap the source, or with
 * MREMAP_DONTUNMAP leave it mapped and empty.
 * Return: new_addr, or -ENOMEM with the source as it was and nothing at the
 * destination.
 */
static long move_vma(struct vma_remap_struct *vrm)
{
	struct mm_struct *mm = vrm->mm;
	unsigned long addr = vrm->addr, new_addr = vrm->new_addr;
	struct vm_area_struct *vma = vrm->vma, *new_vma;
	unsigned long pgoff, moved;

	/* Room for the copy and for splitting the source on both sides. */
	if (mm->mm_mt.nr >= MAX_MAP_COUNT - 3)
		return -ENOMEM;
	pgoff = vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
	new_vma = copy_vma(vrm, pgoff);
	if (!new_vma)
		return -ENOMEM;
	/* The merge may have freed or grown the source VMA. */
	vma = vma_lookup(mm, addr);
	moved = move_page_tables(mm, vma, new_vma, addr, new_addr, vrm->old_len);
	if (moved < vrm->old_len) {
		/* Put back what moved (its tables exist), drop the destination. */
		move_page_tables(mm, new_vma, vma, new_addr, addr, moved);
		do_munmap_locked(mm, new_addr, new_addr + vrm->new_len);
		return -ENOMEM;
	}
	if (vrm->flags & MREMAP_DONTUNMAP) {
		/*
		 * The source stays, empty: later faults there see zeroes.  It loses
		 * VM_LOCKED, and its anon_vma links when all of it moved (Linux's
		 * dontunmap_complete(); VM_ACCOUNT stays, as 6.18 shows it).  Its
		 * empty page tables stay until it is unmapped, as in Linux.
		 */
		vma->vm_flags &= ~VM_LOCKED;
		if (new_vma != vma && vma->vm_start == addr && vma->vm_end == addr + vrm->old_len)
			unlink_anon_vmas(vma);
	} else if (vrm->old_len) {
		/* A failed split leaves the source mapped (and empty), as in Linux. */
		do_munmap_locked(mm, addr, addr + vrm->old_len);
	}
	return (long)new_addr;
}

/*
 * shrink_vma() - unmap [addr + new_len, addr + old_len), whatever it
 * covers.  Return: 0, -EINVAL when that range leaves the address space (as
 * munmap(2) would say), or -ENOMEM.
 */
static int shrink_vma(struct vma_remap_struct *vrm)
{
	unsigned long start = vrm->addr + vrm->new_len;
	unsigned long len = vrm->old_len - vrm->new_len;

	if (start > TASK_SIZE || len > TASK_SIZE - start)
		return -EINVAL;
	return do_munmap_locked(vrm->mm, start, start + len);
}

/* vrm_set_new_addr() - choose the destination (get_unmapped_area()). */
static long vrm_set_new_addr(struct vma_remap_struct *vrm)
{
	unsigned long hint = vrm_implies_new_addr(vrm) ? vrm->new_addr : 0;
	long ret;

	ret = get_unmapped_area(vrm->mm, vrm->vma->vm_file, hint, vrm->new_len,
				((vrm->flags & MREMAP_FIXED) ? MAP_FIXED : 0) |
					((vrm->vma->vm_flags & VM_MAYSHARE) ? MAP_SHARED : 0) |
					((vrm->vma->vm_flags & VM_HUGETLB) ? MAP_HUGETLB : 0));
	if (ret < 0)
		return ret;
	vrm->new_addr = (unsigned long)ret;
	return 0;
}

/*
 * align_hugetlb() - hugetlb VMAs move whole huge pages only: both addresses
 * aligned, both lengths rounded up, and no growing.
 */
static bool align_hugetlb(struct vma_remap_struct *vrm)
{
	vrm->old_len = ALIGN(vrm->old_len, HPAGE_PMD_SIZE);
	vrm->new_len = ALIGN(vrm->new_len, HPAGE_PMD_SIZE);
	if (!IS_ALIGNED(vrm->addr, HPAGE_PMD_SIZE) || !IS_ALIGNED(vrm->new_addr, HPAGE_PMD_SIZE))
		return false;
	return vrm->new_len <= vrm->old_len;
}

/*
 * check_prep_vma() - the checks that need the VMA at addr (Linux's
 * check_prep_vma()).  Return: 0 or a negative errno.
 */
static long check_prep_vma(struct vma_remap_struct *vrm)
{
	struct vm_area_struct *vma = vrm->vma;
	unsigned long old_len, pgoff;

	if (!vma)
		return -EFAULT;
	if ((vma->vm_flags & VM_HUGETLB) && !align_hugetlb(vrm))
		return -EINVAL;
	if (vrm->old_len == vrm->new_len)
		vrm->remap_type = MREMAP_NO_RESIZE;
	else if (vrm->old_len > vrm->new_len)
		vrm->remap_type = MREMAP_SHRINK;
	else
		vrm->remap_type = MREMAP_EXPAND;
	if (!vrm_implies_new_addr(vrm))
		vrm->new_addr = vrm->addr;
	/* The rest only matters when something new gets mapped. */
	if (vrm->remap_type != MREMAP_EXPAND && !vrm_implies_new_addr(vrm))
		return 0;
	/* old_len 0 duplicates a shared mapping; a private one cannot be duplicated. */
	if (!vrm->old_len && !(vma->vm_flags & (VM_SHARED | VM_MAYSHARE)))
		return -EINVAL;
	if ((vrm->flags & MREMAP_DONTUNMAP) && (vma->vm_flags & (VM_DONTEXPAND | VM_PFNMAP)))
		return -EINVAL;
	/* What is kept (a shrink may unmap across VMAs) must lie in this VMA. */
	old_len = vrm->remap_type == MREMAP_SHRINK ? vrm->new_len : vrm->old_len;
	if (old_len > vma->vm_end - vrm->addr)
		return -EFAULT;
	if (vrm->old_len == vrm->new_len)
		return 0;
	pgoff = vma->vm_pgoff + ((vrm->addr - vma->vm_start) >> PAGE_SHIFT);
	if (pgoff + (vrm->new_len >> PAGE_SHIFT) < pgoff)
		return -EINVAL;
	if (vma->vm_flags & (VM_DONTEXPAND | VM_PFNMAP))
		return -EFAULT;
	/* No mlock and no RLIMIT_AS here: mlock_future_ok() and may_expand_vm() pass. */
	return 0;
}

/*
 * mremap_to() - move (and resize) to new_addr: MREMAP_FIXED, or
 * MREMAP_DONTUNMAP with new_addr as a hint.
 */
static long mremap_to(struct vma_remap_struct *vrm)
{
	struct mm_struct *mm = vrm->mm;
	long err;

	if (vrm->flags & MREMAP_FIXED) {
		err = do_munmap_locked(mm, vrm->new_addr, vrm->new_addr + vrm->new_len);
		if (err)
			return err;
		/* Unmapping the destination may have split the source VMA. */
		vrm->vma = vma_lookup(mm, vrm->addr);
		if (!vrm->vma)
			return -EFAULT;
	}
	if (vrm->remap_type == MREMAP_SHRINK) {
		err = shrink_vma(vrm);
		if (err)
			return err;
		vrm->old_len = vrm->new_len;
		vrm->vma = vma_lookup(mm, vrm->addr);
	}
	err = vrm_set_new_addr(vrm);
	if (err)
		return err;
	return move_vma(vrm);
}

/* vma_expandable() - is [vm_end, vm_end + delta) free and inside the address space? */
static bool vma_expandable(struct mm_struct *mm, struct vm_area_struct *vma, unsigned long delta)
{
	unsigned long end = vma->vm_end + delta;
	struct vm_area_struct *next;

	if (end < vma->vm_end || end > mm->task_size)
		return false;
	next = find_vma(mm, vma->vm_end);
	return !next || next->vm_start >= end;
}

/*
 * expand_vma() - grow in place when the range ends at the end of its VMA
 * and the space after it is free (merging with the next VMA if it can),
 * else move with MREMAP_MAYMOVE.
 */
static long expand_vma(struct vma_remap_struct *vrm)
{
	struct mm_struct *mm = vrm->mm;
	struct vm_area_struct *vma = vrm->vma;
	unsigned long delta = vrm->new_len - vrm->old_len;
	long err;

	if (vma->vm_end - vrm->addr == vrm->old_len && vma_expandable(mm, vma, delta)) {
		vma_bounds_lock(vma);
		vma->vm_end += delta;
		vma_bounds_unlock(vma);
		vma_try_merge_around(mm, vma_index(mm, vma->vm_start));
		return (long)vrm->addr;
	}
	if (!(vrm->flags & MREMAP_MAYMOVE))
		return -ENOMEM;
	err = vrm_set_new_addr(vrm);
	if (err)
		return err;
	return move_vma(vrm);
}

/* mremap_at() - resize without a new address: nothing, shrink, or grow. */
static long mremap_at(struct vma_remap_struct *vrm)
{
	long err;

	switch (vrm->remap_type) {
	case MREMAP_NO_RESIZE:
		return (long)vrm->addr;
	case MREMAP_SHRINK:
		err = shrink_vma(vrm);
		return err ? err : (long)vrm->addr;
	case MREMAP_EXPAND:
		return expand_vma(vrm);
	}
	return -EINVAL;
}

/*
 * remap_move() - MREMAP_FIXED without resize: move every VMA of
 * [addr, addr + old_len), each at its offset from new_addr.
 * Return: where the first one went, or the first error (what moved before
 * it stays moved).
 */
static long remap_move(struct vma_remap_struct *vrm)
{
	unsigned long start = vrm->addr, end = vrm->addr + vrm->old_len;
	unsigned long target = vrm->new_addr, cursor = start, last_end = 0;
	bool seen = false;
	long res = -EFAULT;

	while (cursor < end) {
		struct vm_area_struct *vma = find_vma(vrm->mm, cursor);
		unsigned long addr, len, offset;
		long ret;

		if (!vma || vma->vm_start >= end)
			break;
		if (!seen && vma->vm_start > start)
			return -EFAULT; /* no gap at the start */
		addr = vma->vm_start > start ? vma->vm_start : start;
		len = (vma->vm_end < end ? vma->vm_end : end) - addr;
		/* Keep the gaps between source VMAs at the destination. */
		offset = seen ? vma->vm_start - last_end : 0;
		last_end = vma->vm_end;
		vrm->vma = vma;
		vrm->addr = addr;
		vrm->new_addr = target + offset;
		vrm->old_len = len;
		vrm->new_len = len;
		ret = check_prep_vma(vrm);
		if (!ret)
			ret = mremap_to(vrm);
		if (ret < 0)
			return ret;
		if (!seen)
			res = ret;
		seen = true;
		target = (unsigned long)ret + vrm->new_len;
		cursor = addr + len;
	}
	return res;
}

/*
 * check_mremap_params() - the checks that need no VMA, made before
 * mmap_lock is taken.  Return: 0 or a negative errno.
 */
static long check_mremap_params(struct vma_remap_struct *vrm)
{
	if (vrm->flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP))
		return -EINVAL;
	if (offset_in_page(vrm->addr))
		return -EINVAL;
	/* old_len 0 is the shmem "duplicate" special case; new_len 0 is nonsense. */
	if (!vrm->new_len || vrm->new_len > TASK_SIZE)
		return -EINVAL;
	if (!vrm_implies_new_addr(vrm))
		return 0;
	if (vrm->new_addr > TASK_SIZE - vrm->new_len)
		return -EINVAL;
	if (offset_in_page(vrm->new_addr))
		return -EINVAL;
	if (!(vrm->flags & MREMAP_MAYMOVE))
		return -EINVAL;
	if ((vrm->flags & MREMAP_DONTUNMAP) && vrm->old_len != vrm->new_len)
		return -EINVAL;
	if (vrm->addr + vrm->old_len > vrm->new_addr && vrm->new_addr + vrm->new_len > vrm->addr)
		return -EINVAL; /* the ranges overlap */
	return 0;
}

/**
 * mm_mremap() - mremap(2) on @mm.
 * @mm: the address space.
 * @old_addr: page-aligned start of the mapping to remap.
 * @old_len: its length, rounded up to pages; 0 asks to duplicate a shared
 *           mapping.
 * @new_len: the new length, rounded up to pages.
 * @flags: MREMAP_MAYMOVE, MREMAP_FIXED (with MAYMOVE: move to @new_addr,
 *         replacing what is there), MREMAP_DONTUNMAP (with MAYMOVE and
 *         @old_len == @new_len: move the pages, leave the old range mapped
 *         and empty; @new_addr is a hint unless MREMAP_FIXED).
 * @new_addr: the destination for MREMAP_FIXED or MREMAP_DONTUNMAP.
 *
 * Takes mmap_lock for writing (the caller holds no lock).  Pages are never
 * copied: page-table entries move, a PMD whole when the source and
 * destination cover a whole aligned PMD, else one PTE at a time after
 * splitting a PMD-mapped THP.  Refcounts, mapcounts and RSS do not change.
 *
 * Return: the (new) address of the mapping, or -EINVAL (bad flags or
 * alignment, zero or too large @new_len, overlapping ranges, a fixed
 * destination outside the address space, DONTUNMAP with a resize or on a
 * VM_DONTEXPAND/VM_PFNMAP VMA, @old_len 0 on a private mapping), -EFAULT
 * (no VMA at @old_addr, or a range to keep or grow that leaves its VMA),
 * -ENOMEM (cannot grow in place without MREMAP_MAYMOVE, no room for the
 * move, out of memory: the source is then as it was).
 */
long mm_mremap(struct mm_struct *mm, unsigned long old_addr, unsigned long old_len,
	       unsigned long new_len, int flags, unsigned long new_addr)
{
	struct vma_remap_struct vrm = {
		.mm = mm,
		.addr = old_addr,
		.old_len = PAGE_ALIGN(old_len),
		.new_len = PAGE_ALIGN(new_len),
		.flags = flags,
		.new_addr = new_addr,
	};
	long ret;

	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	ret = check_mremap_params(&vrm);
	if (ret)
		return ret;
	pthread_rwlock_wrlock(&mm->mmap_lock);
	if (vrm_implies_new_addr(&vrm) && mm->mm_mt.nr + 2 >= MAX_MAP_COUNT - 3) {
		/*
		 * Both ranges may split a VMA in three: stay below max_map_count
		 * (Linux checks this with the other parameters, unlocked).
		 */
		ret = -ENOMEM;
	} else if (vrm_move_only(&vrm)) {
		ret = remap_move(&vrm);
	} else {
		vrm.vma = vma_lookup(mm, old_addr);
		ret = check_prep_vma(&vrm);
		if (!ret)
			ret = vrm_implies_new_addr(&vrm) ? mremap_to(&vrm) : mremap_at(&vrm);
	}
	pthread_rwlock_unlock(&mm->mmap_lock);
	return ret;
}
