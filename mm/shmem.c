// SPDX-License-Identifier: MIT
/*
 * mm/shmem.c - files: tmpfs (memfd_create(2)), ramfs-like files and the
 * shmem object behind MAP_SHARED | MAP_ANONYMOUS; their inodes and open
 * file descriptions, ftruncate, hole punching, and the fault handler of
 * their VMAs (Linux's mm/shmem.c, fs/ramfs, mm/memfd.c, fs/file_table.c).
 *
 * tmpfs and ramfs differ only where Linux makes them differ: tmpfs folios
 * are swap-backed (PG_swapbacked, counted in MM_SHMEMPAGES) and tmpfs can
 * punch holes; ramfs folios are plain page cache (MM_FILEPAGES).  Both
 * allocate a zeroed folio when a fault touches a hole, as shmem_fault()
 * and ramfs's read_folio do; pread of a hole allocates nothing (uhmm does
 * not read ahead; Linux's ramfs would cache a zeroed page there).
 *
 * There is no swap yet, so shmem folios never leave the page cache but by
 * truncate, hole punch or the last close; there are no huge folios
 * (shmem_enabled "never", Linux's default).
 *
 * An inode lives while an open file refers to it; an open file lives while
 * its opener or a VMA holds it (vm_file).  The last fput() of the last
 * file frees the inode and its page cache.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- inodes ---- */

static struct inode *new_inode(struct uhmm_machine *machine, const char *name, unsigned int flags)
{
	struct inode *inode = calloc(1, sizeof(*inode));

	if (!inode)
		return NULL;
	atomic_init(&inode->i_count, 1);
	atomic_init(&inode->i_size, 0);
	pthread_mutex_init(&inode->i_rwsem, NULL);
	inode->i_flags = flags;
	snprintf(inode->i_name, sizeof(inode->i_name), "%s", name);
	inode->i_data.host = inode;
	inode->i_data.machine = machine;
	pthread_mutex_init(&inode->i_data.i_pages_lock, NULL);
	atomic_init(&inode->i_data.nrpages, 0);
	pthread_rwlock_init(&inode->i_data.i_mmap_rwsem, NULL);
	INIT_LIST_HEAD(&inode->i_data.i_mmap);
	pthread_mutex_lock(&machine->inodes_lock);
	inode->i_ino = ++machine->last_ino;
	list_add_tail(&inode->i_sb_list, &machine->inodes);
	machine->nr_inodes++;
	pthread_mutex_unlock(&machine->inodes_lock);
	return inode;
}

/* evict() - the last reference went: drop the page cache, free the inode. */
static void evict(struct inode *inode)
{
	struct address_space *mapping = &inode->i_data;
	struct uhmm_machine *machine = mapping->machine;

	pthread_mutex_lock(&machine->inodes_lock);
	list_del_init(&inode->i_sb_list);
	machine->nr_inodes--;
	pthread_mutex_unlock(&machine->inodes_lock);
	if (!list_empty(&mapping->i_mmap))
		uhmm_warn("evict: inode %lu is still mapped", inode->i_ino);
	if (inode->i_flags & S_HUGETLB)
		hugetlbfs_evict_inode(inode); /* its reservations */
	truncate_inode_pages_range(mapping, 0, MAX_LFS_FILESIZE);
	if (atomic_load(&mapping->nrpages) || mapping->i_pages.root)
		uhmm_warn("evict: inode %lu keeps %lu cached pages", inode->i_ino,
			  atomic_load(&mapping->nrpages));
	pthread_rwlock_destroy(&mapping->i_mmap_rwsem);
	pthread_mutex_destroy(&mapping->i_pages_lock);
	pthread_mutex_destroy(&inode->i_rwsem);
	free(inode);
}

/* iput() - drop an inode reference; the last one evicts it. */
static void iput(struct inode *inode)
{
	if (atomic_fetch_sub(&inode->i_count, 1) == 1)
		evict(inode);
}

/* ---- open file descriptions ---- */

static struct file *alloc_file(struct inode *inode, int flags)
{
	struct file *file = calloc(1, sizeof(*file));

	if (!file)
		return NULL;
	file->f_inode = inode;
	file->f_mapping = &inode->i_data;
	file->f_flags = flags;
	switch (flags & O_ACCMODE) {
	case O_RDONLY:
		file->f_mode = FMODE_READ;
		break;
	case O_WRONLY:
		file->f_mode = FMODE_WRITE;
		break;
	default:
		file->f_mode = FMODE_READ | FMODE_WRITE;
		break;
	}
	atomic_init(&file->f_count, 1);
	return file;
}

/*
 * A new inode of @flags and a file open O_RDWR on it.
 * Return: the file, or ERR_PTR(-ENOMEM).
 */
static struct file *new_file(struct uhmm_machine *machine, const char *name, unsigned int flags,
			     loff_t size)
{
	struct inode *inode = new_inode(machine, name, flags);
	struct file *file;

	if (!inode)
		return ERR_PTR(-ENOMEM);
	i_size_write(inode, size);
	file = alloc_file(inode, O_RDWR);
	if (!file) {
		iput(inode);
		return ERR_PTR(-ENOMEM);
	}
	return file;
}

/* memfd_create()'s checks of the name.  Return: 0, -EFAULT or -EINVAL. */
static int check_name(struct uhmm_machine *machine, const char *name)
{
	if (IS_ERR_OR_NULL(machine))
		return -EINVAL; /* uhmm only: no machine to hold the pages */
	if (!name)
		return -EFAULT;
	if (strnlen(name, MFD_NAME_MAX_LEN + 1) > MFD_NAME_MAX_LEN)
		return -EINVAL;
	return 0;
}

struct file *uhmm_memfd_create(struct uhmm_machine *machine, const char *name)
{
	int err = check_name(machine, name);

	if (err)
		return ERR_PTR(err);
	return new_file(machine, name, S_SHMEM, 0);
}

struct file *uhmm_ramfs_create(struct uhmm_machine *machine, const char *name)
{
	int err = check_name(machine, name);

	if (err)
		return ERR_PTR(err);
	return new_file(machine, name, 0, 0);
}

struct file *uhmm_file_reopen(struct file *file, int flags)
{
	struct file *new;

	if (!file)
		return ERR_PTR(-EBADF);
	if ((flags & ~(O_ACCMODE | O_CLOEXEC)) || (flags & O_ACCMODE) == O_ACCMODE)
		return ERR_PTR(-EINVAL);
	new = alloc_file(file->f_inode, flags & O_ACCMODE);
	if (!new)
		return ERR_PTR(-ENOMEM);
	atomic_fetch_add(&file->f_inode->i_count, 1);
	return new;
}

struct file *get_file(struct file *file)
{
	atomic_fetch_add(&file->f_count, 1);
	return file;
}

void fput(struct file *file)
{
	if (!file || atomic_fetch_sub(&file->f_count, 1) != 1)
		return;
	iput(file->f_inode);
	free(file);
}

loff_t uhmm_file_size(struct file *file)
{
	return file ? i_size_read(file->f_inode) : -EBADF;
}

unsigned long uhmm_file_nrpages(struct file *file)
{
	return file ? atomic_load(&file->f_mapping->nrpages) : 0;
}

struct folio *uhmm_file_folio(struct file *file, unsigned long index)
{
	struct folio *folio = file ? filemap_get_folio(file->f_mapping, index) : NULL;

	if (folio)
		folio_put(folio); /* the cache still holds one */
	return folio;
}

/* ---- size changes ---- */

long uhmm_ftruncate(struct file *file, loff_t length)
{
	struct inode *inode;
	loff_t oldsize, holebegin;

	if (!file)
		return -EBADF;
	if (length < 0)
		return -EINVAL;
	if (!(file->f_mode & FMODE_WRITE))
		return -EINVAL; /* do_ftruncate(): not open for writing */
	inode = file->f_inode;
	pthread_mutex_lock(&inode->i_rwsem);
	oldsize = i_size_read(inode);
	i_size_write(inode, length);
	if (length <= oldsize) {
		/*
		 * shmem_setattr(): even at the same size the tail of a partial
		 * last page is zeroed; pages past it are unmapped (private
		 * copies too), dropped, and unmapped again for racing COWs.
		 */
		holebegin = (loff_t)PAGE_ALIGN((unsigned long)length);
		if (oldsize > holebegin)
			truncate_pagecache(inode, length);
		else
			truncate_inode_pages_range(&inode->i_data, length, MAX_LFS_FILESIZE);
	}
	pthread_mutex_unlock(&inode->i_rwsem);
	return 0;
}

int shmem_punch_hole(struct file *file, loff_t offset, loff_t len)
{
	struct inode *inode = file->f_inode;
	struct address_space *mapping = file->f_mapping;
	loff_t unmap_start, unmap_end;

	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	if (offset < 0 || len <= 0)
		return -EINVAL;
	if (offset > MAX_LFS_FILESIZE - len)
		return -EFBIG;
	if (!inode_is_shmem(inode))
		return -EOPNOTSUPP; /* ramfs has no fallocate */
	unmap_start = (loff_t)PAGE_ALIGN((unsigned long)offset);
	unmap_end = (loff_t)ALIGN_DOWN((unsigned long)(offset + len), PAGE_SIZE);
	pthread_mutex_lock(&inode->i_rwsem);
	/* Whole pages: unmap them where the cache is mapped (not private copies). */
	if (unmap_end > unmap_start)
		unmap_mapping_range(mapping, (unsigned long)unmap_start >> PAGE_SHIFT,
				    (unsigned long)(unmap_end - unmap_start) >> PAGE_SHIFT, false);
	truncate_inode_pages_range(mapping, offset, offset + len - 1);
	pthread_mutex_unlock(&inode->i_rwsem);
	return 0;
}

/* ---- faults ---- */

/*
 * filemap_fault() - the folio behind vmf->pgoff, created zeroed for a
 * hole: shmem_fault() for tmpfs, filemap_fault() + ramfs's read_folio.
 * Return: 0 with vmf->folio locked and referenced, VM_FAULT_SIGBUS past
 * the end of the file, VM_FAULT_OOM.
 */
static vm_fault_t filemap_fault(struct vm_fault *vmf)
{
	struct address_space *mapping = vmf->vma->vm_file->f_mapping;
	struct inode *inode = mapping->host;
	struct folio *folio;

	for (;;) {
		if (vmf->pgoff >= i_size_pages(inode))
			return VM_FAULT_SIGBUS;
		if (filemap_grab_folio(mapping, vmf->pgoff, &folio))
			return VM_FAULT_OOM;
		folio_lock(folio);
		if (__atomic_load_n(&folio->mapping, __ATOMIC_ACQUIRE) == mapping)
			break;
		/* Truncated or punched out while we slept on the lock: look again. */
		folio_unlock(folio);
		folio_put(folio);
	}
	if (vmf->pgoff >= i_size_pages(inode)) {
		/*
		 * The file shrank after the lookup: no page may stay cached
		 * (or mapped) past its end (shmem_get_folio_gfp()'s "whoops").
		 */
		if (folio_mapped(folio))
			unmap_mapping_folio(folio);
		filemap_remove_folio(folio);
		folio_unlock(folio);
		folio_put(folio);
		return VM_FAULT_SIGBUS;
	}
	vmf->folio = folio;
	return 0;
}

static const struct vm_operations_struct shmem_vm_ops = {
	.name = "shmem",
	.fault = filemap_fault,
};

static const struct vm_operations_struct generic_file_vm_ops = {
	.name = "file",
	.fault = filemap_fault,
};

/**
 * file_vm_ops() - the vm_operations_struct of a VMA that maps @file.
 * @file: the file.
 * Return: shmem's for tmpfs and shmem objects, the generic one otherwise.
 */
const struct vm_operations_struct *file_vm_ops(const struct file *file)
{
	return inode_is_shmem(file->f_inode) ? &shmem_vm_ops : &generic_file_vm_ops;
}

/**
 * hugetlb_file_setup() - the hugetlbfs file behind a MAP_SHARED |
 * MAP_ANONYMOUS | MAP_HUGETLB mapping ("anon_hugepage"): an internal
 * S_HUGETLB inode of @size bytes and a file open O_RDWR on it.
 * Return: the file, or ERR_PTR(-ENOMEM).
 */
struct file *hugetlb_file_setup(struct uhmm_machine *machine, loff_t size)
{
	return new_file(machine, "anon_hugepage", S_HUGETLB | S_KERNEL, size);
}

/**
 * shmem_zero_setup() - back a MAP_SHARED | MAP_ANONYMOUS VMA with shmem.
 * @vma: the new VMA, not yet in any tree; its bounds set.
 *
 * Creates an internal shmem file ("dev/zero") of the VMA's size and gives
 * the VMA its only reference, with vm_pgoff 0, as Linux's do_mmap() and
 * shmem_zero_setup() do.  Growing the mapping later (mremap) does not grow
 * the object: accesses past its size raise SIGBUS, as on Linux.
 *
 * Return: 0, or -ENOMEM.
 */
int shmem_zero_setup(struct vm_area_struct *vma)
{
	struct uhmm_machine *machine = vma->vm_mm->machine;
	struct file *file = new_file(machine, "dev/zero", S_SHMEM | S_KERNEL,
				     (loff_t)(vma->vm_end - vma->vm_start));

	if (IS_ERR(file))
		return (int)PTR_ERR(file);
	vma->vm_file = file;
	vma->vm_ops = &shmem_vm_ops;
	vma->vm_pgoff = 0;
	return 0;
}
