// SPDX-License-Identifier: MIT
/*
 * mm/filemap.c - the page cache: the index from page offset to folio, and
 * what reads, writes and truncation do with it (Linux's mm/filemap.c and
 * mm/truncate.c).
 *
 * Every folio in a page cache is order 0, has ->mapping pointing to the
 * address_space and ->index its page offset, and holds one reference for
 * the cache.  The index is a radix tree of 64-slot nodes (Linux's xarray has
 * the same fan-out), guarded by mapping->i_pages_lock.  A folio is added
 * with the cache lock only; it is removed under its folio lock and the
 * cache lock, so that a fault that locked the folio and still sees its
 * ->mapping knows it is in the cache.
 *
 * Truncation follows Linux's truncate_pagecache(): i_size first, then
 * every mapping of the pages past it is zapped (private COW copies too),
 * the folios are dropped from the cache (each locked; one that a racing
 * fault mapped meanwhile is unmapped again under its lock), and the
 * mappings are zapped once more for private copies made in the race.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- the radix tree ---- */

#define PT_NODE_SHIFT 6
#define PT_NODE_SLOTS (1U << PT_NODE_SHIFT)
#define PT_NODE_MASK (PT_NODE_SLOTS - 1)
/* Levels enough for every index below 2^64. */
#define PT_MAX_HEIGHT ((64 + PT_NODE_SHIFT - 1) / PT_NODE_SHIFT)

struct page_tree_node {
	void *slots[PT_NODE_SLOTS];
	unsigned int count; /* non-NULL slots */
};

/* The slot of @index in a node @level levels above the folios (1: leaf node). */
static unsigned int pt_offset(unsigned long index, unsigned int level)
{
	unsigned int shift = (level - 1) * PT_NODE_SHIFT;

	return shift >= 64 ? 0 : (unsigned int)(index >> shift) & PT_NODE_MASK;
}

/* Does a tree of @height cover @index? */
static bool pt_covers(unsigned int height, unsigned long index)
{
	unsigned int bits = height * PT_NODE_SHIFT;

	return height && (bits >= 64 || index >> bits == 0);
}

static struct folio *page_tree_load(const struct page_tree *tree, unsigned long index)
{
	struct page_tree_node *node = tree->root;

	if (!pt_covers(tree->height, index))
		return NULL;
	for (unsigned int level = tree->height; level > 1 && node; level--)
		node = node->slots[pt_offset(index, level)];
	return node ? node->slots[pt_offset(index, 1)] : NULL;
}

/* Store @folio at the empty slot @index.  Return: 0, -EEXIST or -ENOMEM. */
static int page_tree_insert(struct page_tree *tree, unsigned long index, struct folio *folio)
{
	struct page_tree_node *node;
	void **slot;

	if (!tree->root) {
		unsigned int height = 1;

		while (!pt_covers(height, index))
			height++;
		tree->root = calloc(1, sizeof(struct page_tree_node));
		if (!tree->root)
			return -ENOMEM;
		tree->height = height;
	}
	while (!pt_covers(tree->height, index)) {
		struct page_tree_node *top = calloc(1, sizeof(*top));

		if (!top)
			return -ENOMEM;
		top->slots[0] = tree->root;
		top->count = 1;
		tree->root = top;
		tree->height++;
	}
	node = tree->root;
	for (unsigned int level = tree->height; level > 1; level--) {
		slot = &node->slots[pt_offset(index, level)];
		if (!*slot) {
			*slot = calloc(1, sizeof(struct page_tree_node));
			if (!*slot)
				return -ENOMEM; /* the empty nodes above stay: harmless */
			node->count++;
		}
		node = *slot;
	}
	slot = &node->slots[pt_offset(index, 1)];
	if (*slot)
		return -EEXIST;
	*slot = folio;
	node->count++;
	return 0;
}

/* Clear slot @index, freeing the nodes left empty.  Return: what it held. */
static struct folio *page_tree_erase(struct page_tree *tree, unsigned long index)
{
	struct page_tree_node *path[PT_MAX_HEIGHT + 1];
	struct page_tree_node *node = tree->root;
	struct folio *folio;
	unsigned int level;

	if (!pt_covers(tree->height, index))
		return NULL;
	for (level = tree->height; level > 1 && node; level--) {
		path[level] = node;
		node = node->slots[pt_offset(index, level)];
	}
	if (!node || !node->slots[pt_offset(index, 1)])
		return NULL;
	path[1] = node;
	folio = node->slots[pt_offset(index, 1)];
	for (level = 1; level <= tree->height; level++) {
		node = path[level];
		node->slots[pt_offset(index, level)] = NULL;
		if (--node->count)
			break;
		free(node);
		if (level == tree->height) {
			tree->root = NULL;
			tree->height = 0;
			return folio;
		}
	}
	/* Shrink while the top node only leads to its first child. */
	while (tree->height > 1) {
		node = tree->root;
		if (node->count != 1 || !node->slots[0])
			break;
		tree->root = node->slots[0];
		tree->height--;
		free(node);
	}
	return folio;
}

/* The first entry at an index >= *@index below @node (at @level), or NULL. */
static struct folio *pt_next(struct page_tree_node *node, unsigned int level, unsigned long base,
			     unsigned long *index)
{
	unsigned int shift = (level - 1) * PT_NODE_SHIFT;

	for (unsigned int i = pt_offset(*index, level); i < PT_NODE_SLOTS; i++) {
		unsigned long first = base | ((unsigned long)i << shift);
		struct folio *found;

		if (!node->slots[i])
			continue;
		if (first > *index)
			*index = first; /* an earlier slot: start at its first index */
		if (level == 1) {
			*index = first;
			return node->slots[i];
		}
		found = pt_next(node->slots[i], level - 1, first, index);
		if (found)
			return found;
	}
	return NULL;
}

/**
 * page_tree_next() - the first folio at an index >= *@index.
 * @tree: the tree; its page-cache lock held.
 * @index: in: where to start; out: the index of the folio found.
 *
 * Return: the folio, or NULL (and *@index unspecified) when there is none.
 */
struct folio *page_tree_next(const struct page_tree *tree, unsigned long *index)
{
	if (!tree->root)
		return NULL;
	if (!pt_covers(tree->height, *index))
		return NULL;
	return pt_next(tree->root, tree->height, 0, index);
}

/* ---- the page cache ---- */

/**
 * filemap_get_folio() - look a folio up in the page cache.
 * @mapping: the page cache.
 * @index: the page offset.
 *
 * Takes the page-cache lock; the cache's own reference keeps the folio
 * alive while the caller's is taken.
 *
 * Return: the folio with a new reference, or NULL for a hole.
 */
struct folio *filemap_get_folio(struct address_space *mapping, unsigned long index)
{
	struct folio *folio;

	pthread_mutex_lock(&mapping->i_pages_lock);
	folio = page_tree_load(&mapping->i_pages, index);
	if (folio)
		folio_get(folio);
	pthread_mutex_unlock(&mapping->i_pages_lock);
	return folio;
}

/**
 * filemap_grab_folio() - find or create the folio at @index.
 * @mapping: the page cache.
 * @index: the page offset.
 * @foliop: where the folio goes, with a reference the caller owns.
 *
 * A new folio is zeroed, uptodate, swap-backed for shmem, and holds the
 * cache's reference besides the caller's.  Allocates before it takes the
 * page-cache lock; a folio another thread added meanwhile wins.
 *
 * Return: 0, or -ENOMEM.
 */
int filemap_grab_folio(struct address_space *mapping, unsigned long index, struct folio **foliop)
{
	struct folio *folio = filemap_get_folio(mapping, index);
	struct folio *new;
	int err;

	if (folio) {
		*foliop = folio;
		return 0;
	}
	new = folio_alloc(mapping->machine, GFP_HIGHUSER_MOVABLE | __GFP_ZERO, 0);
	if (!new)
		return -ENOMEM;
	folio_set_uptodate(new);
	if (inode_is_shmem(mapping->host))
		folio_set_swapbacked(new);
	new->index = index;
	__atomic_store_n(&new->mapping, mapping, __ATOMIC_RELEASE);
	pthread_mutex_lock(&mapping->i_pages_lock);
	folio = page_tree_load(&mapping->i_pages, index);
	if (folio) {
		folio_get(folio);
		err = 0;
	} else {
		err = page_tree_insert(&mapping->i_pages, index, new);
		if (!err) {
			folio_get(new); /* the page cache's reference */
			atomic_fetch_add(&mapping->nrpages, 1);
			folio = new;
			new = NULL;
		}
	}
	pthread_mutex_unlock(&mapping->i_pages_lock);
	if (new) {
		__atomic_store_n(&new->mapping, NULL, __ATOMIC_RELAXED);
		folio_put(new);
	}
	if (err)
		return err;
	*foliop = folio;
	return 0;
}

/**
 * filemap_add_folio() - put @folio in @mapping's page cache at @index.
 * @mapping: the page cache.
 * @folio: a new folio nobody else sees (hugetlb: a whole huge page at the
 *         index of its first page); the cache takes a reference of its own.
 * @index: the page offset.
 *
 * Takes the page-cache lock.  nrpages grows by the folio's pages, as in Linux.
 * Return: 0, -EEXIST (a folio is already there), -ENOMEM.
 */
int filemap_add_folio(struct address_space *mapping, struct folio *folio, unsigned long index)
{
	int err;

	folio->index = index;
	__atomic_store_n(&folio->mapping, mapping, __ATOMIC_RELEASE);
	pthread_mutex_lock(&mapping->i_pages_lock);
	if (page_tree_load(&mapping->i_pages, index)) {
		err = -EEXIST;
	} else {
		err = page_tree_insert(&mapping->i_pages, index, folio);
		if (!err) {
			folio_get(folio); /* the page cache's reference */
			atomic_fetch_add(&mapping->nrpages, folio_nr_pages(folio));
		}
	}
	pthread_mutex_unlock(&mapping->i_pages_lock);
	if (err)
		__atomic_store_n(&folio->mapping, NULL, __ATOMIC_RELEASE);
	return err;
}

/**
 * filemap_remove_folio() - delete a folio from its page cache.
 * @folio: a locked folio whose ->mapping is set; the caller holds a
 *         reference of its own besides the cache's.
 *
 * Takes the page-cache lock; drops the cache's reference.  The folio may
 * still be mapped (a truncate race): the caller unmaps it.
 */
void filemap_remove_folio(struct folio *folio)
{
	struct address_space *mapping = __atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE);
	struct folio *old;

	if (!mapping || folio_test_anon(folio))
		return;
	pthread_mutex_lock(&mapping->i_pages_lock);
	old = page_tree_erase(&mapping->i_pages, folio->index);
	if (old == folio)
		atomic_fetch_sub(&mapping->nrpages, folio_nr_pages(folio));
	else
		uhmm_warn("page cache: folio %#lx is not at index %#lx", folio_pfn(folio),
			  folio->index);
	__atomic_store_n(&folio->mapping, NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&mapping->i_pages_lock);
	folio_clear_dirty(folio);
	if (old == folio)
		folio_put(folio);
}

/* ---- truncation ---- */

/* Zero bytes [@from, @to) of @folio, under its lock. */
static void folio_zero_range_locked(struct folio *folio, size_t from, size_t to)
{
	memset((char *)folio_address(folio) + from, 0, to - from);
}

/*
 * Zero [@from, @to) of the cached page @index (if cached), under its lock.
 * A page that a truncate race took out of the cache is left alone.
 */
static void zero_partial_page(struct address_space *mapping, unsigned long index, size_t from,
			      size_t to)
{
	struct folio *folio = filemap_get_folio(mapping, index);

	if (!folio)
		return;
	folio_lock(folio);
	if (__atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE) == mapping)
		folio_zero_range_locked(folio, from, to);
	folio_unlock(folio);
	folio_put(folio);
}

/**
 * truncate_inode_pages_range() - drop cached folios and zero partial pages.
 * @mapping: the page cache.
 * @lstart: first byte to drop.
 * @lend: last byte to drop (inclusive); LLONG_MAX for "to the end".
 *
 * Whole pages inside the range leave the cache; a page still mapped (a
 * fault mapped it after the caller's unmap_mapping_range()) is unmapped
 * first, under its lock (Linux's truncate_cleanup_folio()).  The bytes of
 * the range in a partial first or last page are zeroed.  Takes folio locks,
 * the page-cache lock and, to unmap, i_mmap_rwsem; the caller holds
 * i_rwsem or is the last user of the inode.
 */
void truncate_inode_pages_range(struct address_space *mapping, loff_t lstart, loff_t lend)
{
	unsigned long start = (unsigned long)((lstart + (loff_t)PAGE_SIZE - 1) >> PAGE_SHIFT);
	unsigned long end; /* first page not wholly inside */
	unsigned long index;

	if (lend < lstart)
		return;
	end = lend == MAX_LFS_FILESIZE ? ~0UL : (unsigned long)((lend + 1) >> PAGE_SHIFT);
	if (offset_in_page(lstart)) {
		unsigned long first = (unsigned long)(lstart >> PAGE_SHIFT);
		size_t to = PAGE_SIZE;

		if ((lend >> PAGE_SHIFT) == (loff_t)first)
			to = (size_t)offset_in_page(lend) + 1;
		zero_partial_page(mapping, first, (size_t)offset_in_page(lstart), to);
	}
	/* A partial last page that is not also the partial first one. */
	if (lend != MAX_LFS_FILESIZE && offset_in_page(lend + 1) &&
	    (unsigned long)(lend >> PAGE_SHIFT) >= start)
		zero_partial_page(mapping, (unsigned long)(lend >> PAGE_SHIFT), 0,
				  (size_t)offset_in_page(lend) + 1);
	for (index = start; index < end;) {
		struct folio *folio;

		pthread_mutex_lock(&mapping->i_pages_lock);
		folio = page_tree_next(&mapping->i_pages, &index);
		if (folio && index < end)
			folio_get(folio);
		else
			folio = NULL;
		pthread_mutex_unlock(&mapping->i_pages_lock);
		if (!folio)
			break;
		folio_lock(folio);
		if (__atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE) == mapping &&
		    folio->index == index) {
			if (folio_mapped(folio))
				unmap_mapping_folio(folio);
			filemap_remove_folio(folio);
		}
		folio_unlock(folio);
		folio_put(folio);
		if (index == ~0UL)
			break;
		index++;
	}
}

/**
 * truncate_pagecache() - unmap and drop the page cache past a new size.
 * @inode: the inode; i_rwsem held, i_size already @newsize.
 * @newsize: the new size in bytes.
 *
 * Linux's order: unmap every mapping of the pages past the end (the
 * private COW copies too: even_cows), drop the folios (zeroing the tail
 * of a partial last page), then unmap again for copies a racing private
 * fault made from a folio before it left the cache.
 */
void truncate_pagecache(struct inode *inode, loff_t newsize)
{
	struct address_space *mapping = &inode->i_data;
	unsigned long holebegin = (unsigned long)((newsize + (loff_t)PAGE_SIZE - 1) >> PAGE_SHIFT);

	unmap_mapping_range(mapping, holebegin, 0, true);
	truncate_inode_pages_range(mapping, newsize, MAX_LFS_FILESIZE);
	unmap_mapping_range(mapping, holebegin, 0, true);
}

/* ---- read and write ---- */

/*
 * rw_check() - what pread(2)/pwrite(2) check before a byte moves, in
 * Linux's order: ksys_pread64()'s negative @pos (-EINVAL, before the fd is
 * looked at), the file's mode (-EBADF), access_ok() of the buffer (-EFAULT
 * for a range no address space holds: above PTRDIFF_MAX or wrapping), and
 * rw_verify_area()'s pos + count past LLONG_MAX (-EINVAL).  A NULL buffer
 * passes: the copy itself faults, and only if bytes are to be copied.
 */
static ssize_t rw_check(struct file *file, unsigned int mode, const void *buf, size_t count,
			loff_t pos)
{
	if (pos < 0)
		return -EINVAL;
	if (!file || !(file->f_mode & mode))
		return -EBADF;
	if (count > (size_t)PTRDIFF_MAX || (uintptr_t)buf + count < (uintptr_t)buf)
		return -EFAULT;
	if ((loff_t)((uint64_t)pos + count) < 0)
		return -EINVAL;
	return 0;
}

ssize_t uhmm_pread(struct file *file, void *buf, size_t count, loff_t pos)
{
	struct address_space *mapping;
	struct inode *inode;
	size_t done = 0;
	loff_t size;
	ssize_t err = rw_check(file, FMODE_READ, buf, count, pos);

	if (err)
		return err;
	if (!count)
		return 0;
	inode = file->f_inode;
	mapping = file->f_mapping;
	if (count > MAX_RW_COUNT)
		count = MAX_RW_COUNT;
	size = i_size_read(inode);
	if (pos >= size)
		return 0; /* nothing to copy: even a NULL @buf does not fault */
	if (!buf)
		return -EFAULT;
	if ((loff_t)count > size - pos)
		count = (size_t)(size - pos);
	while (done < count) {
		loff_t at = pos + (loff_t)done;
		unsigned long index = (unsigned long)(at >> PAGE_SHIFT);
		size_t off = (size_t)offset_in_page(at);
		size_t n = PAGE_SIZE - off < count - done ? PAGE_SIZE - off : count - done;
		struct folio *folio = filemap_get_folio(mapping, index);

		if (folio) {
			memcpy((char *)buf + done, (char *)folio_address(folio) + off, n);
			folio_put(folio);
		} else {
			memset((char *)buf + done, 0, n); /* a hole: no page allocated */
		}
		done += n;
	}
	return (ssize_t)done;
}

ssize_t uhmm_pwrite(struct file *file, const void *buf, size_t count, loff_t pos)
{
	struct address_space *mapping;
	struct inode *inode;
	size_t done = 0;
	int err = (int)rw_check(file, FMODE_WRITE, buf, count, pos);

	if (err)
		return err;
	if (!count)
		return 0;
	if (pos >= MAX_LFS_FILESIZE)
		return -EFBIG;
	if (!buf)
		return -EFAULT;
	inode = file->f_inode;
	mapping = file->f_mapping;
	if (count > MAX_RW_COUNT)
		count = MAX_RW_COUNT;
	if ((loff_t)count > MAX_LFS_FILESIZE - pos)
		count = (size_t)(MAX_LFS_FILESIZE - pos);
	pthread_mutex_lock(&inode->i_rwsem);
	while (done < count) {
		loff_t at = pos + (loff_t)done;
		unsigned long index = (unsigned long)(at >> PAGE_SHIFT);
		size_t off = (size_t)offset_in_page(at);
		size_t n = PAGE_SIZE - off < count - done ? PAGE_SIZE - off : count - done;
		struct folio *folio;

		err = filemap_grab_folio(mapping, index, &folio);
		if (err)
			break;
		folio_lock(folio);
		/* i_rwsem keeps truncate and hole punch away: it is still cached. */
		memcpy((char *)folio_address(folio) + off, (const char *)buf + done, n);
		folio_set_dirty(folio);
		folio_unlock(folio);
		folio_put(folio);
		done += n;
		if (at + (loff_t)n > i_size_read(inode))
			i_size_write(inode, at + (loff_t)n);
	}
	pthread_mutex_unlock(&inode->i_rwsem);
	return done ? (ssize_t)done : err;
}
