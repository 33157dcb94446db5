/* SPDX-License-Identifier: MIT */
/*
 * uhmm/fs.h - files and their page cache: tmpfs files (memfd_create(2)),
 * ramfs-like files, and the shared anonymous memory (shmem) behind
 * MAP_SHARED | MAP_ANONYMOUS.
 *
 * A file is an inode with a page cache (struct address_space): a sparse
 * index from page offset to an order-0 folio of the machine's RAM.  Files
 * are read and written with uhmm_pread() / uhmm_pwrite(), resized with
 * uhmm_ftruncate(), and mapped with mm_mmap() (MAP_SHARED maps the
 * page-cache folios themselves; MAP_PRIVATE maps them read-only and copies
 * a page into an anonymous folio on the first write to it).
 *
 * Each page-cache folio holds one reference for the cache (as in Linux),
 * plus one per page-table entry that maps it, plus pins.  There are no huge
 * folios in the page cache: Linux's shmem_enabled defaults to "never", and
 * uhmm builds only that.
 *
 * Errno values follow the system calls: -EBADF for a read or write through
 * a file not open for it, -EINVAL for a negative offset or size (and for
 * ftruncate through a file not open for writing), -EFBIG past the largest
 * file size, -ENOMEM when memory runs out.
 */
#ifndef UHMM_FS_H
#define UHMM_FS_H

#include <fcntl.h>
#include <pthread.h>
#include <sys/types.h>

#include "uhmm/machine.h"

/** MAX_LFS_FILESIZE - the largest file size (s_maxbytes of tmpfs on 64-bit). */
#define MAX_LFS_FILESIZE ((loff_t)0x7fffffffffffffffLL)
/** MFD_NAME_MAX_LEN - the longest memfd name memfd_create(2) accepts. */
#define MFD_NAME_MAX_LEN 249

/* file->f_mode bits, with Linux's values. */
#define FMODE_READ 0x1u
#define FMODE_WRITE 0x2u

/* inode->i_flags bits. */
#define S_SHMEM 0x1u    /* tmpfs/shmem: swap-backed page cache, MM_SHMEMPAGES */
#define S_KERNEL 0x2u   /* an internal file (the shmem object of a MAP_SHARED anonymous mapping) */
#define S_HUGETLB 0x4u  /* hugetlbfs: 2 MiB hugetlb folios (MAP_SHARED | MAP_HUGETLB) */

/**
 * struct page_tree - the page-cache index: a radix tree with 64 slots per
 * node (Linux keeps i_pages in an xarray of the same fan-out).
 * @root: the top node, or NULL for an empty tree.
 * @height: levels below and including @root (0 when empty); a tree of
 *          height h covers the indexes below 64^h.
 */
struct page_tree {
	void *root;
	unsigned int height;
};

/**
 * struct address_space - the page cache of one inode and the VMAs that map it.
 * @host: the inode.
 * @machine: the machine whose RAM holds the folios.
 * @i_pages_lock: protects @i_pages and @nrpages (Linux's xa_lock); taken
 *                inside the folio lock, never with a page-table lock.
 * @i_pages: page index -> folio.
 * @nrpages: folios in the cache.
 * @i_mmap_rwsem: protects @i_mmap and the vm_start, vm_end and vm_pgoff of
 *                every VMA on it.
 * @i_mmap: the VMAs that map the file (linked by vma->shared; Linux keeps
 *          an interval tree, a list gives the same walks).
 * @nr_mmap: VMAs on @i_mmap.
 */
struct address_space {
	struct inode *host;
	struct uhmm_machine *machine;
	pthread_mutex_t i_pages_lock;
	struct page_tree i_pages;
	atomic_ulong nrpages;
	pthread_rwlock_t i_mmap_rwsem;
	struct list_head i_mmap;
	unsigned long nr_mmap;
};

/**
 * struct inode - a file's object.
 * @i_ino: inode number, unique per machine.
 * @i_count: references: one per open file.  The last iput() frees the page
 *           cache and the inode.
 * @i_size: the size in bytes; read and written atomically
 *          (i_size_read()/i_size_write()), changed under @i_rwsem.
 * @i_rwsem: serialises writers: pwrite, truncate, hole punch.
 * @i_flags: S_SHMEM, S_KERNEL, S_HUGETLB.
 * @i_private: the file system's data (hugetlbfs: its reservation map).
 * @i_sb_list: on the machine's list of inodes.
 * @i_name: the memfd name (for messages).
 * @i_data: the page cache.
 */
struct inode {
	unsigned long i_ino;
	atomic_int i_count;
	atomic_long i_size;
	pthread_mutex_t i_rwsem;
	unsigned int i_flags;
	struct list_head i_sb_list;
	char i_name[MFD_NAME_MAX_LEN + 1];
	struct address_space i_data;
	void *i_private;
};

/**
 * struct file - one open file description.
 * @f_inode: the inode.
 * @f_mapping: its page cache (&f_inode->i_data).
 * @f_mode: FMODE_READ and/or FMODE_WRITE.
 * @f_flags: the open flags (O_RDONLY, O_WRONLY or O_RDWR).
 * @f_count: references: the opener's, one per VMA mapping the file, and
 *           any taken with get_file().
 */
struct file {
	struct inode *f_inode;
	struct address_space *f_mapping;
	unsigned int f_mode;
	int f_flags;
	atomic_long f_count;
};

/**
 * uhmm_memfd_create() - memfd_create(2): a new tmpfs file of size 0, open
 * O_RDWR.  Its page cache is swap-backed shmem: mapped pages count in
 * MM_SHMEMPAGES.
 * @machine: the machine whose RAM will hold the file's pages.
 * @name: the name (only shown in messages), at most MFD_NAME_MAX_LEN bytes.
 *
 * Lock-free apart from the machine's inode list lock.
 *
 * Return: the file with f_count 1 (drop it with fput()), or ERR_PTR(-EFAULT)
 * for a NULL @name, ERR_PTR(-EINVAL) for a name too long (or, uhmm only, a
 * NULL @machine), ERR_PTR(-ENOMEM).
 */
struct file *uhmm_memfd_create(struct uhmm_machine *machine, const char *name);

/**
 * uhmm_ramfs_create() - a new file of size 0 on a ramfs-like file system,
 * open O_RDWR.  Its page cache is not swap-backed: mapped pages count in
 * MM_FILEPAGES, and it cannot punch holes (MADV_REMOVE is -EOPNOTSUPP).
 * @machine: the machine.
 * @name: as for uhmm_memfd_create().
 *
 * Return: as uhmm_memfd_create().
 */
struct file *uhmm_ramfs_create(struct uhmm_machine *machine, const char *name);

/**
 * uhmm_file_reopen() - open the inode of @file again: open("/proc/self/fd/N").
 * @file: an open file.
 * @flags: O_RDONLY, O_WRONLY or O_RDWR (other bits, O_CLOEXEC aside, are
 *         -EINVAL).
 *
 * Lock-free.
 *
 * Return: a new file description with f_count 1, or ERR_PTR(-EINVAL),
 * ERR_PTR(-EBADF) for a NULL @file, ERR_PTR(-ENOMEM).
 */
struct file *uhmm_file_reopen(struct file *file, int flags);

/**
 * get_file() - take a reference on @file.
 * @file: a file with at least one reference.
 * Lock-free.  Return: @file.
 */
struct file *get_file(struct file *file);

/**
 * fput() - drop a reference; the last one closes the file description, and
 * the last close of an inode that nothing maps frees its page cache.
 * @file: the file.
 *
 * May free folios (zone lock); must not be called with a page-table lock,
 * a folio lock of the file's pages or the file's i_mmap_rwsem held.
 */
void fput(struct file *file);

/**
 * uhmm_ftruncate() - ftruncate(2): set the size of @file's inode.
 * @file: a file open for writing.
 * @length: the new size in bytes.
 *
 * Shrinking unmaps every mapping of the pages past the new end (shared
 * mappings and the private copies made from them, as Linux's
 * truncate_pagecache() does), drops them from the page cache and zeroes
 * the tail of a partial last page; later accesses past the end raise
 * SIGBUS (-EFAULT from the CPU).  Growing adds a hole that reads as zeros.
 * Takes the inode's i_rwsem, then i_mmap_rwsem and the folio locks.
 *
 * Return: 0, -EBADF (NULL @file), -EINVAL (negative @length, or @file not
 * open for writing).  (-EFBIG cannot happen: every non-negative loff_t is
 * within MAX_LFS_FILESIZE, tmpfs's s_maxbytes.)
 */
long uhmm_ftruncate(struct file *file, loff_t length);

/**
 * uhmm_pread() - pread(2): read up to @count bytes at @pos into @buf.
 * @file: a file open for reading.
 * @buf: the destination (host memory).
 * @count: bytes wanted; clipped to MAX_RW_COUNT.
 * @pos: the file offset.
 *
 * Reads through the page cache; holes read as zeros and allocate nothing.
 * Stops at the end of the file.  Takes no inode lock: a concurrent write
 * or truncate may be seen in part, as on Linux.
 *
 * Return: the bytes read (0 at or past the end, whatever @buf), or, checked
 * in Linux's order, -EINVAL (negative @pos), -EBADF (not open for reading),
 * -EFAULT (@count above PTRDIFF_MAX or @buf + @count wrapping, as
 * access_ok()), -EINVAL (@pos + @count past LLONG_MAX: rw_verify_area()),
 * -EFAULT (NULL @buf with bytes to copy).
 */
ssize_t uhmm_pread(struct file *file, void *buf, size_t count, loff_t pos);

/**
 * uhmm_pwrite() - pwrite(2): write @count bytes from @buf at @pos.
 * @file: a file open for writing.
 * @buf: the source (host memory).
 * @count: bytes to write; clipped to MAX_RW_COUNT and to MAX_LFS_FILESIZE.
 * @pos: the file offset; the file grows to cover what was written.
 *
 * Allocates zeroed page-cache folios for holes, copies under each folio's
 * lock and marks it dirty; mappings of the file see the bytes at once.
 * Takes the inode's i_rwsem.
 *
 * Return: the bytes written (fewer than @count when memory ran out part
 * way), or, checked in Linux's order, -EINVAL (negative @pos), -EBADF (not
 * open for writing), -EFAULT (@count above PTRDIFF_MAX or @buf + @count
 * wrapping), -EINVAL (@pos + @count past LLONG_MAX), -EFAULT (NULL @buf
 * with a non-zero @count), -ENOMEM (nothing could be written).  (-EFBIG
 * cannot happen: MAX_LFS_FILESIZE is LLONG_MAX, so rw_verify_area()'s
 * -EINVAL comes first.)
 */
ssize_t uhmm_pwrite(struct file *file, const void *buf, size_t count, loff_t pos);

/**
 * uhmm_file_size() - the size of @file's inode in bytes (fstat's st_size).
 * Lock-free.  Return: the size, or -EBADF for a NULL @file.
 */
loff_t uhmm_file_size(struct file *file);

/**
 * uhmm_file_nrpages() - folios in @file's page cache.  Lock-free.
 * Return: the count (0 for a NULL @file).
 */
unsigned long uhmm_file_nrpages(struct file *file);

/**
 * uhmm_file_folio() - the page-cache folio at page @index of @file, without
 * taking a reference (for tests and introspection: it may go away as soon
 * as a truncate or the last fput runs).
 * Takes the page-cache lock.  Return: the folio, or NULL for a hole.
 */
struct folio *uhmm_file_folio(struct file *file, unsigned long index);

#endif /* UHMM_FS_H */
