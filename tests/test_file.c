/* SPDX-License-Identifier: MIT */
/*
 * tests/test_file.c - files and their page cache (uhmm/fs.h): pread and
 * pwrite, holes, truncation both ways, MAP_SHARED and MAP_PRIVATE file
 * mappings (the private copy on write, Linux's visibility rules), the
 * -EACCES rules of read-only files, fork with file mappings, the reverse
 * map of page-cache folios, MADV_DONTNEED / MADV_REMOVE, mremap and
 * mprotect of file VMAs, GUP pins on page-cache pages, pagemap PM_FILE,
 * smaps, RSS counters, refcounts (one for the cache plus one per mapping)
 * and errno.  Linux 6.x semantics (tmpfs for memfd, ramfs for the other
 * kind).
 *
 * Every test fput()s its files and mmput()s its mms: the fixture's
 * teardown audits and checks that every page is free again.
 */
#include "helpers.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define PG PAGE_SIZE
#define RW (PROT_READ | PROT_WRITE)

TestSuite(file, .init = machine_setup, .fini = machine_teardown);

/* ---- local helpers ---- */

static unsigned long nr_free(void)
{
	return uhmm_nr_free_pages(machine);
}

static struct vm_area_struct *vma_at(struct mm_struct *mm, unsigned long addr)
{
	struct vm_area_struct *vma = vma_lookup(mm, addr);

	cr_assert(vma, "no VMA at %#lx", addr);
	return vma;
}

/* The page-cache folio at @index; asserts it is cached. */
static struct folio *cached(struct file *file, unsigned long index)
{
	struct folio *folio = uhmm_file_folio(file, index);

	cr_assert(folio, "page %lu of the file is not cached", index);
	return folio;
}

static int read_byte(struct mm_struct *mm, unsigned long addr)
{
	uint8_t b;
	int err = cpu_read(mm, addr, &b, 1);

	return err ? err : b;
}

static struct mm_struct *fork_mm(struct mm_struct *mm)
{
	struct mm_struct *child = mm_fork(mm);

	cr_assert(!IS_ERR_OR_NULL(child), "mm_fork() = %ld", PTR_ERR(child));
	return child;
}

/* ------------------------------------------------------------------ */
/* pread / pwrite / holes                                              */
/* ------------------------------------------------------------------ */

Test(file, new_memfd_is_empty)
{
	struct file *file = new_memfd();
	char buf[16];

	cr_assert_eq(uhmm_file_size(file), 0);
	cr_assert_eq(uhmm_file_nrpages(file), 0);
	cr_assert_eq(uhmm_pread(file, buf, sizeof(buf), 0), 0);
	cr_assert_eq(file->f_mode, FMODE_READ | FMODE_WRITE);
	cr_assert(inode_is_shmem(file->f_inode));
	assert_audit_clean();
	fput(file);
}

Test(file, pwrite_then_pread)
{
	struct file *file = new_memfd();
	unsigned long free0 = nr_free();

	file_fill(file, 100, 3 * PG, 1);
	cr_assert_eq(uhmm_file_size(file), 100 + 3 * PG);
	cr_assert_eq(uhmm_file_nrpages(file), 4, "bytes 100..12387 touch pages 0..3");
	cr_assert_eq(free0 - nr_free(), 4);
	file_check(file, 100, 3 * PG, 1);
	file_check_zero(file, 0, 100); /* the hole before the first byte written */
	for (unsigned long i = 0; i < 4; i++) {
		struct folio *folio = cached(file, i);

		cr_assert_eq(folio_ref_count(folio), 1, "the page cache's reference only");
		cr_assert_eq(folio_mapcount(folio), 0);
		cr_assert(!folio_test_anon(folio));
		cr_assert(folio_test_swapbacked(folio), "shmem is swap-backed");
		cr_assert(folio_test_dirty(folio));
		cr_assert_eq(folio->index, i);
		cr_assert_eq(folio->mapping, file->f_mapping);
	}
	assert_audit_clean();
	fput(file);
	cr_assert_eq(nr_free(), free0, "the last fput frees the page cache");
}

Test(file, holes_read_zero_without_allocating)
{
	struct file *file = new_memfd();
	unsigned long free0 = nr_free();

	cr_assert_eq(uhmm_ftruncate(file, 1 << 20), 0);
	cr_assert_eq(uhmm_file_size(file), 1 << 20);
	file_check_zero(file, 0, 1 << 20);
	cr_assert_eq(uhmm_file_nrpages(file), 0);
	cr_assert_eq(nr_free(), free0);
	file_fill(file, 512 << 10, 1, 2);
	cr_assert_eq(uhmm_file_nrpages(file), 1);
	file_check_zero(file, 0, 512 << 10);
	file_check(file, 512 << 10, 1, 2);
	file_check_zero(file, (512 << 10) + 1, (512 << 10) - 1);
	cr_assert_eq(uhmm_file_size(file), 1 << 20, "a write inside the file keeps its size");
	fput(file);
}

Test(file, short_read_at_eof)
{
	struct file *file = new_memfd();
	char buf[2 * PG];

	file_fill(file, 0, 5000, 3);
	cr_assert_eq(uhmm_pread(file, buf, sizeof(buf), PG), 5000 - (ssize_t)PG);
	cr_assert_eq(uhmm_pread(file, buf, sizeof(buf), 5000), 0);
	cr_assert_eq(uhmm_pread(file, buf, sizeof(buf), 1 << 30), 0);
	cr_assert_eq(uhmm_pread(file, buf, 10, 4990), 10);
	fput(file);
}

Test(file, sparse_far_offsets)
{
	struct file *file = new_memfd();
	loff_t far = (loff_t)1 << 40;

	file_fill(file, far, 10, 4);
	file_fill(file, 3 * PG, 10, 4);
	cr_assert_eq(uhmm_file_nrpages(file), 2);
	cr_assert_eq(uhmm_file_size(file), far + 10);
	file_check(file, far, 10, 4);
	file_check(file, 3 * PG, 10, 4);
	file_check_zero(file, far - PG, PG);
	cr_assert_eq(cached(file, (unsigned long)(far >> PAGE_SHIFT))->index,
		     (unsigned long)(far >> PAGE_SHIFT));
	cr_assert_eq(uhmm_ftruncate(file, 4 * PG), 0);
	cr_assert_eq(uhmm_file_nrpages(file), 1);
	assert_audit_clean();
	fput(file);
}

Test(file, file_api_errno)
{
	struct file *file = new_memfd();
	struct file *ro = uhmm_file_reopen(file, O_RDONLY);
	struct file *wo = uhmm_file_reopen(file, O_WRONLY);
	char buf[16] = { 0 };
	char name[MFD_NAME_MAX_LEN + 2];

	cr_assert(!IS_ERR(ro) && !IS_ERR(wo));
	cr_assert_eq(ro->f_mode, FMODE_READ);
	cr_assert_eq(wo->f_mode, FMODE_WRITE);
	/* pread / pwrite */
	cr_assert_eq(uhmm_pread(wo, buf, 1, 0), -EBADF);
	cr_assert_eq(uhmm_pwrite(ro, buf, 1, 0), -EBADF);
	cr_assert_eq(uhmm_pread(NULL, buf, 1, 0), -EBADF);
	cr_assert_eq(uhmm_pwrite(NULL, buf, 1, 0), -EBADF);
	cr_assert_eq(uhmm_pread(file, buf, 1, -1), -EINVAL);
	cr_assert_eq(uhmm_pwrite(file, buf, 1, -1), -EINVAL);
	/*
	 * rw_verify_area(): pos + count past LLONG_MAX (= MAX_LFS_FILESIZE) is
	 * -EINVAL, before generic_write_checks() could say -EFBIG or cut it.
	 */
	cr_assert_eq(uhmm_pwrite(file, buf, 1, MAX_LFS_FILESIZE), -EINVAL);
	cr_assert_eq(uhmm_pwrite(file, buf, 0, MAX_LFS_FILESIZE), 0, "an empty write checks nothing");
	cr_assert_eq(uhmm_pwrite(file, NULL, 1, 0), -EFAULT);
	cr_assert_eq(uhmm_pwrite(file, buf, 0, 0), 0);
	cr_assert_eq(uhmm_pread(file, buf, 0, 0), 0);
	cr_assert_eq(uhmm_pwrite(file, buf, 10, MAX_LFS_FILESIZE - 4), -EINVAL);
	cr_assert_eq(uhmm_file_size(file), 0);
	/* a write that ends exactly at the largest size works */
	cr_assert_eq(uhmm_pwrite(file, buf, 4, MAX_LFS_FILESIZE - 4), 4);
	cr_assert_eq(uhmm_file_size(file), MAX_LFS_FILESIZE);
	cr_assert_eq(uhmm_pread(ro, buf, 16, MAX_LFS_FILESIZE - 4), -EINVAL);
	cr_assert_eq(uhmm_pread(ro, buf, 4, MAX_LFS_FILESIZE - 4), 4);
	/* ftruncate */
	cr_assert_eq(uhmm_ftruncate(file, -1), -EINVAL);
	cr_assert_eq(uhmm_ftruncate(ro, 0), -EINVAL, "do_ftruncate(): not open for writing");
	cr_assert_eq(uhmm_ftruncate(NULL, 0), -EBADF);
	cr_assert_eq(uhmm_ftruncate(wo, 0), 0);
	cr_assert_eq(uhmm_file_size(ro), 0, "one inode behind every description");
	cr_assert_eq(uhmm_file_nrpages(file), 0);
	/* open / create */
	cr_assert_eq(PTR_ERR(uhmm_file_reopen(file, O_RDWR | O_TRUNC)), -EINVAL);
	cr_assert_eq(PTR_ERR(uhmm_file_reopen(file, O_ACCMODE)), -EINVAL);
	cr_assert_eq(PTR_ERR(uhmm_file_reopen(NULL, O_RDONLY)), -EBADF);
	cr_assert_eq(PTR_ERR(uhmm_memfd_create(machine, NULL)), -EFAULT);
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	cr_assert_eq(PTR_ERR(uhmm_memfd_create(machine, name)), -EINVAL, "250 bytes");
	name[MFD_NAME_MAX_LEN] = 0;
	fput(uhmm_memfd_create(machine, name)); /* 249 bytes are fine */
	cr_assert_eq(uhmm_file_size(NULL), -EBADF);
	assert_audit_clean();
	fput(ro);
	fput(wo);
	fput(file);
}

Test(file, mmap_errno)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	struct file *wo = uhmm_file_reopen(file, O_WRONLY);

	cr_assert_eq(uhmm_ftruncate(file, 4 * PG), 0);
	cr_assert_eq(mm_mmap(mm, 0, PG, PROT_READ, MAP_SHARED, file, 100), -EINVAL);
	cr_assert_eq(mm_mmap(mm, 0, PG, PROT_READ, MAP_SHARED, NULL, 0), -EBADF);
	cr_assert_eq(mm_mmap(mm, 0, PG, PROT_READ, MAP_PRIVATE, wo, 0), -EACCES,
		     "every file mapping needs FMODE_READ");
	cr_assert_eq(mm_mmap(mm, 0, PG, PROT_READ, MAP_SHARED, wo, 0), -EACCES);
	cr_assert_eq(mm_mmap(mm, 0, PG, PROT_READ, MAP_SHARED | MAP_HUGETLB, file, 0), -EINVAL);
	cr_assert_eq(mm_mmap(mm, 0, PG, PROT_READ, MAP_SHARED_VALIDATE | MAP_SYNC, file, 0),
		     -EOPNOTSUPP);
	cr_assert_eq(mm_mmap(mm, 0, PG, PROT_READ, 0, file, 0), -EINVAL, "no sharing type");
	cr_assert_eq(mm_mmap(mm, 0, 2 * PG, PROT_READ, MAP_SHARED, file, -PG), -EOVERFLOW);
	cr_assert_eq(mm_mmap(mm, 0, PG, PROT_READ, MAP_SHARED, file,
			     (unsigned long)MAX_LFS_FILESIZE + 1 - PG), -EOVERFLOW,
		     "the page past the largest file");
	cr_assert_eq(nr_vmas(mm), 0);
	/* MAP_SHARED_VALIDATE with known flags works like MAP_SHARED. */
	map_file(mm, PG, RW, MAP_SHARED_VALIDATE, file, 0);
	/* MAP_ANONYMOUS ignores the file. */
	unsigned long anon = map_file(mm, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, file, 0);
	cr_assert(vma_is_anonymous(vma_at(mm, anon)));
	mmput(mm);
	fput(wo);
	fput(file);
}

/* ------------------------------------------------------------------ */
/* MAP_SHARED: pread/pwrite against mapped accesses                    */
/* ------------------------------------------------------------------ */

Test(file, shared_mapping_sees_pwrite)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr;

	file_fill(file, 0, 4 * PG, 5);
	addr = map_file(mm, 4 * PG, RW, MAP_SHARED, file, 0);
	check_pattern(mm, addr, 4 * PG, 5);
	cr_assert_eq(pfn_at(mm, addr + PG), folio_pfn(cached(file, 1)), "the page cache itself");
	/* A later pwrite shows through the mapping at once. */
	file_fill(file, PG + 10, 100, 6);
	check_at(mm, addr, PG + 10, 100, 6);
	check_at(mm, addr, PG, 10, 5);
	/* pwrite into a hole of the mapped file: the next fault maps the new page. */
	cr_assert_eq(uhmm_ftruncate(file, 8 * PG), 0);
	mm_munmap(mm, addr, 4 * PG);
	addr = map_file(mm, 8 * PG, RW, MAP_SHARED, file, 0);
	file_fill(file, 6 * PG, PG, 7);
	check_at(mm, addr, 6 * PG, PG, 7);
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

Test(file, pread_sees_mapped_writes)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr;

	cr_assert_eq(uhmm_ftruncate(file, 4 * PG), 0);
	addr = map_file(mm, 4 * PG, RW, MAP_SHARED, file, 0);
	fill_pattern(mm, addr, 4 * PG, 8);
	file_check(file, 0, 4 * PG, 8);
	cr_assert_eq(uhmm_file_nrpages(file), 4);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 4);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	cr_assert_eq(mm_get_rss(mm, MM_FILEPAGES), 0);
	for (unsigned long i = 0; i < 4; i++) {
		struct folio *folio = cached(file, i);
		uint64_t pm = pagemap(mm, addr + i * PG);

		cr_assert_eq(folio_ref_count(folio), 2, "cache + one mapping");
		cr_assert_eq(folio_mapcount(folio), 1);
		cr_assert(pm & PM_PRESENT);
		cr_assert(pm & PM_FILE, "pagemap %#llx lacks PM_FILE", (unsigned long long)pm);
		cr_assert(pm & PM_MMAP_EXCLUSIVE);
		cr_assert_eq(pm & PM_PFRAME_MASK, folio_pfn(folio));
		cr_assert(folio_test_dirty(folio), "a write fault on a shared mapping dirties");
	}
	/* cpu atomics go to the page cache as well */
	uint64_t old;
	cr_assert_eq(cpu_atomic_xchg_u64(mm, addr + 8, 0x1122334455667788ULL, &old), 0);
	cr_assert_eq(uhmm_pread(file, &old, 8, 8), 8);
	cr_assert_eq(old, 0x1122334455667788ULL);
	assert_audit_clean();
	mm_munmap(mm, addr, 4 * PG);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 0);
	cr_assert_eq(folio_ref_count(cached(file, 0)), 1, "unmapped: the cache's reference is left");
	file_check(file, 8 * 2, 4 * PG - 16, 8);
	mmput(mm);
	fput(file);
}

Test(file, read_fault_on_shared_writable_maps_writable)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr;
	pte_t *pte;
	pthread_mutex_t *ptl;

	cr_assert_eq(uhmm_ftruncate(file, PG), 0);
	addr = map_file(mm, PG, RW, MAP_SHARED, file, 0);
	cr_assert_eq(read_byte(mm, addr), 0);
	cr_assert_eq(uhmm_file_nrpages(file), 1, "shmem_fault() allocates for a read of a hole");
	pte = pte_offset_map_lock(mm, pmd_off(mm, addr), addr, &ptl);
	cr_assert(pte_write(ptep_get(pte)), "vm_get_page_prot(shared|write) is writable");
	cr_assert(!pte_dirty(ptep_get(pte)));
	spin_unlock(ptl);
	cr_assert(!folio_test_dirty(cached(file, 0)));
	mmput(mm);
	fput(file);
}

Test(file, access_past_eof_is_sigbus)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr;
	char c = 1;

	file_fill(file, 0, PG + 100, 9);
	addr = map_file(mm, 4 * PG, RW, MAP_SHARED, file, 0);
	check_pattern(mm, addr, PG + 100, 9);
	check_zero(mm, addr + PG + 100, PG - 100); /* the rest of the last page */
	cr_assert_eq(read_byte(mm, addr + 2 * PG), -EFAULT);
	cr_assert_eq(cpu_write(mm, addr + 3 * PG, &c, 1), -EFAULT);
	cr_assert_eq(uhmm_file_nrpages(file), 2, "nothing cached past the end");
	/* Bytes written past i_size in the last page are not file data. */
	cr_assert_eq(cpu_write(mm, addr + PG + 200, &c, 1), 0);
	cr_assert_eq(uhmm_file_size(file), PG + 100);
	/* A private mapping past EOF: SIGBUS for a write too. */
	unsigned long priv = map_file(mm, 4 * PG, RW, MAP_PRIVATE, file, 0);
	cr_assert_eq(cpu_write(mm, priv + 2 * PG, &c, 1), -EFAULT);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	/* The file grows: the same mapping now reaches the new pages. */
	cr_assert_eq(uhmm_ftruncate(file, 4 * PG), 0);
	cr_assert_eq(read_byte(mm, addr + 3 * PG), 0);
	cr_assert_eq(cpu_write(mm, priv + 2 * PG, &c, 1), 0);
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

Test(file, mapping_at_offset)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr;

	file_fill(file, 0, 8 * PG, 10);
	addr = map_file(mm, 3 * PG, PROT_READ, MAP_SHARED, file, 4 * PG);
	cr_assert_eq(vma_at(mm, addr)->vm_pgoff, 4);
	check_at(mm, addr - 4 * PG, 4 * PG, 3 * PG, 10); /* file bytes 4 pages on */
	for (unsigned long i = 0; i < 3; i++)
		cr_assert_eq(pfn_at(mm, addr + i * PG), folio_pfn(cached(file, 4 + i)));
	cr_assert_eq(uhmm_file_nrpages(file), 8);
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

/* ------------------------------------------------------------------ */
/* truncate                                                            */
/* ------------------------------------------------------------------ */

Test(file, truncate_down_unmaps_and_frees)
{
	struct mm_struct *a = new_mm(), *b = new_mm();
	struct file *file = new_memfd();
	unsigned long pa, pb, free0;

	file_fill(file, 0, 4 * PG, 11);
	pa = map_file(a, 4 * PG, RW, MAP_SHARED, file, 0);
	pb = map_file(b, 4 * PG, PROT_READ, MAP_SHARED, file, 0);
	check_pattern(a, pa, 4 * PG, 11);
	check_pattern(b, pb, 4 * PG, 11);
	cr_assert_eq(folio_ref_count(cached(file, 3)), 3);
	free0 = nr_free();
	cr_assert_eq(uhmm_ftruncate(file, PG + PG / 2), 0);
	cr_assert_eq(nr_free() - free0, 2, "pages 2 and 3 are freed");
	cr_assert_eq(uhmm_file_nrpages(file), 2);
	cr_assert_eq(mm_get_rss(a, MM_SHMEMPAGES), 2);
	cr_assert_eq(mm_get_rss(b, MM_SHMEMPAGES), 2);
	cr_assert_eq(pagemap(a, pa + 2 * PG), 0);
	cr_assert_eq(pagemap(b, pb + 3 * PG), 0);
	cr_assert_eq(read_byte(a, pa + 2 * PG), -EFAULT);
	cr_assert_eq(read_byte(b, pb + 3 * PG), -EFAULT);
	/* Data before the new end is intact; the tail of the last page is zeroed. */
	check_pattern(a, pa, PG + PG / 2, 11);
	check_zero(b, pb + PG + PG / 2, PG / 2);
	file_check(file, 0, PG + PG / 2, 11);
	assert_audit_clean();
	/* Growing again: zeros, not the old bytes. */
	cr_assert_eq(uhmm_ftruncate(file, 4 * PG), 0);
	check_zero(a, pa + PG + PG / 2, 2 * PG + PG / 2);
	file_check_zero(file, PG + PG / 2, 2 * PG + PG / 2);
	check_pattern(b, pb, PG + PG / 2, 11);
	assert_audit_clean();
	mmput(a);
	mmput(b);
	fput(file);
}

Test(file, truncate_to_zero_and_same_size)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr;
	char c = 0x5a;

	file_fill(file, 0, 100, 12);
	addr = map_file(mm, PG, RW, MAP_SHARED, file, 0);
	/* Bytes past EOF in the last page, through the mapping... */
	cr_assert_eq(cpu_write(mm, addr + 200, &c, 1), 0);
	/* ...are zeroed by a truncate to the same size (shmem_setattr()). */
	cr_assert_eq(uhmm_ftruncate(file, 100), 0);
	cr_assert_eq(read_byte(mm, addr + 200), 0);
	check_pattern(mm, addr, 100, 12);
	cr_assert_eq(uhmm_ftruncate(file, 0), 0);
	cr_assert_eq(uhmm_file_nrpages(file), 0);
	cr_assert_eq(read_byte(mm, addr), -EFAULT);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 0);
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

Test(file, truncate_removes_private_cow_pages)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr, free0;

	file_fill(file, 0, 4 * PG, 13);
	addr = map_file(mm, 4 * PG, RW, MAP_PRIVATE, file, 0);
	fill_at(mm, addr, 3 * PG, PG, 14); /* a COW copy of page 3 */
	fill_at(mm, addr, 0, PG, 14);      /* and of page 0 */
	check_at(mm, addr, PG, 2 * PG, 13);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 2);
	free0 = nr_free();
	cr_assert_eq(uhmm_ftruncate(file, 2 * PG), 0);
	/* Linux's truncate_pagecache() zaps private copies past EOF too (even_cows). */
	cr_assert_eq(read_byte(mm, addr + 3 * PG), -EFAULT);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 1);
	cr_assert_eq(nr_free() - free0, 3, "two cache pages and one private copy");
	check_at(mm, addr, 0, PG, 14); /* the copy below EOF stays */
	check_at(mm, addr, PG, PG, 13);
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

/* ------------------------------------------------------------------ */
/* MAP_PRIVATE: copy on write                                          */
/* ------------------------------------------------------------------ */

Test(file, private_cow)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr, cache0;
	uint64_t pm;

	file_fill(file, 0, 4 * PG, 15);
	addr = map_file(mm, 4 * PG, RW, MAP_PRIVATE, file, 0);
	/* A read maps the page-cache page itself, read-only. */
	check_at(mm, addr, 0, PG, 15);
	cache0 = folio_pfn(cached(file, 0));
	pm = pagemap(mm, addr);
	cr_assert_eq(pm & PM_PFRAME_MASK, cache0);
	cr_assert(pm & PM_FILE);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 1);
	cr_assert_eq(folio_ref_count(cached(file, 0)), 2);
	/* A write copies it into an anonymous page (wp_page_copy()). */
	fill_at(mm, addr, 10, 100, 16);
	pm = pagemap(mm, addr);
	cr_assert_neq(pm & PM_PFRAME_MASK, cache0);
	cr_assert(!(pm & PM_FILE));
	cr_assert(folio_test_anon(folio_at(mm, addr)));
	cr_assert(PageAnonExclusive(pfn_to_page(pfn_at(mm, addr))));
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 1);
	cr_assert_eq(folio_ref_count(cached(file, 0)), 1, "the copy dropped its mapping");
	check_at(mm, addr, 0, 10, 15);
	check_at(mm, addr, 10, 100, 16);
	check_at(mm, addr, 110, PG - 110, 15);
	/* A write to a page never read: do_cow_fault() copies straight away. */
	fill_at(mm, addr, PG, 8, 17);
	cr_assert(folio_test_anon(folio_at(mm, addr + PG)));
	cr_assert_eq(folio_mapcount(cached(file, 1)), 0);
	check_at(mm, addr, PG + 8, PG - 8, 15);
	/* The file never changes. */
	file_check(file, 0, 4 * PG, 15);
	/* Page 2 read (mapped from the cache), page 3 untouched. */
	check_at(mm, addr, 2 * PG, PG, 15);
	/* A later pwrite: not seen by the copies, seen by the pages still shared. */
	file_fill(file, 0, 4 * PG, 18);
	check_at(mm, addr, 10, 100, 16);
	check_at(mm, addr, 0, 10, 15);
	check_at(mm, addr, PG, 8, 17);
	check_at(mm, addr, 2 * PG, 2 * PG, 18);
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

Test(file, private_mapping_of_read_only_file)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	struct file *ro;
	unsigned long addr;

	file_fill(file, 0, 2 * PG, 19);
	ro = uhmm_file_reopen(file, O_RDONLY);
	cr_assert(!IS_ERR(ro));
	addr = map_file(mm, 2 * PG, RW, MAP_PRIVATE, ro, 0);
	cr_assert(vma_at(mm, addr)->vm_flags & VM_MAYWRITE, "a private mapping may always write");
	fill_pattern(mm, addr, 2 * PG, 20);
	check_pattern(mm, addr, 2 * PG, 20);
	file_check(file, 0, 2 * PG, 19);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 2);
	/* mprotect to read-only and back is fine too. */
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PG, PROT_READ), 0);
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PG, RW), 0);
	assert_audit_clean();
	mmput(mm);
	fput(ro);
	fput(file);
}

Test(file, shared_mapping_of_read_only_file)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	struct file *ro;
	struct vm_area_struct *vma;
	unsigned long addr;
	char c = 1;

	file_fill(file, 0, 2 * PG, 21);
	ro = uhmm_file_reopen(file, O_RDONLY);
	cr_assert_eq(mm_mmap(mm, 0, 2 * PG, RW, MAP_SHARED, ro, 0), -EACCES);
	cr_assert_eq(mm_mmap(mm, 0, 2 * PG, PROT_WRITE, MAP_SHARED, ro, 0), -EACCES);
	addr = map_file(mm, 2 * PG, PROT_READ, MAP_SHARED, ro, 0);
	vma = vma_at(mm, addr);
	/* do_mmap(): opened read-only, the VMA is VM_MAYSHARE but neither VM_SHARED nor VM_MAYWRITE. */
	cr_assert(vma->vm_flags & VM_MAYSHARE);
	cr_assert(!(vma->vm_flags & (VM_SHARED | VM_MAYWRITE)));
	check_pattern(mm, addr, 2 * PG, 21);
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PG, RW), -EACCES);
	cr_assert_eq(mm_mprotect(mm, addr, PG, PROT_READ | PROT_EXEC), 0);
	cr_assert_eq(mm_mprotect(mm, addr + PG, PG, RW), -EACCES, "after a split too");
	cr_assert_eq(cpu_write(mm, addr, &c, 1), -EFAULT);
	/* The same file opened O_RDWR maps shared and writable. */
	unsigned long rw = map_file(mm, 2 * PG, PROT_READ, MAP_SHARED, file, 0);
	cr_assert_eq(mm_mprotect(mm, rw, 2 * PG, RW), 0);
	cr_assert_eq(cpu_write(mm, rw, &c, 1), 0);
	cr_assert_eq(read_byte(mm, addr), 1, "both map the same page");
	assert_audit_clean();
	mmput(mm);
	fput(ro);
	fput(file);
}

/* ------------------------------------------------------------------ */
/* fork                                                                */
/* ------------------------------------------------------------------ */

Test(file, fork_shared_file)
{
	struct mm_struct *parent = new_mm(), *child;
	struct file *file = new_memfd();
	unsigned long addr;

	cr_assert_eq(uhmm_ftruncate(file, 4 * PG), 0);
	addr = map_file(parent, 4 * PG, RW, MAP_SHARED, file, 0);
	fill_at(parent, addr, 0, PG, 22);
	child = fork_mm(parent);
	/* Shared VMAs are not copied (no anon_vma): the child faults them in. */
	cr_assert_eq(pagemap(child, addr), 0);
	cr_assert_eq(mm_get_rss(child, MM_SHMEMPAGES), 0);
	check_at(child, addr, 0, PG, 22);
	cr_assert_eq(pfn_at(child, addr), pfn_at(parent, addr));
	cr_assert_eq(folio_ref_count(cached(file, 0)), 3, "cache + two mappings");
	cr_assert_eq(folio_mapcount(cached(file, 0)), 2);
	cr_assert(!(pagemap(child, addr) & PM_MMAP_EXCLUSIVE));
	/* Each sees the other's writes. */
	fill_at(child, addr, PG, PG, 23);
	check_at(parent, addr, PG, PG, 23);
	fill_at(parent, addr, 2 * PG, PG, 24);
	check_at(child, addr, 2 * PG, PG, 24);
	file_check(file, PG, PG, 23);
	assert_audit_clean();
	/* The child exits: the parent and the file keep everything. */
	mmput(child);
	check_at(parent, addr, 0, PG, 22);
	check_at(parent, addr, PG, PG, 23);
	cr_assert_eq(folio_ref_count(cached(file, 1)), 2);
	assert_audit_clean();
	mmput(parent);
	file_check(file, 2 * PG, PG, 24);
	fput(file);
}

Test(file, fork_private_file_with_cow_pages)
{
	struct mm_struct *parent = new_mm(), *child;
	struct file *file = new_memfd();
	unsigned long addr, anon_pfn;

	file_fill(file, 0, 3 * PG, 25);
	addr = map_file(parent, 3 * PG, RW, MAP_PRIVATE, file, 0);
	fill_at(parent, addr, 0, PG, 26); /* COW: an anon_vma exists, fork copies entries */
	check_at(parent, addr, PG, PG, 25); /* page 1 maps the page cache */
	anon_pfn = pfn_at(parent, addr);
	child = fork_mm(parent);
	cr_assert_eq(pfn_at(child, addr), anon_pfn, "the anon copy is COW-shared");
	cr_assert_eq(pfn_at(child, addr + PG), folio_pfn(cached(file, 1)));
	cr_assert_eq(folio_mapcount(cached(file, 1)), 2);
	cr_assert_eq(folio_ref_count(cached(file, 1)), 3);
	cr_assert_eq(mm_get_rss(child, MM_ANONPAGES), 1);
	cr_assert_eq(mm_get_rss(child, MM_SHMEMPAGES), 1);
	cr_assert(pagemap(child, addr + PG) & PM_FILE);
	assert_audit_clean();
	/* The child writes both: two private copies; the parent is unchanged. */
	fill_at(child, addr, 0, 2 * PG, 27);
	check_at(parent, addr, 0, PG, 26);
	check_at(parent, addr, PG, PG, 25);
	check_at(child, addr, 0, 2 * PG, 27);
	cr_assert_eq(pfn_at(parent, addr), anon_pfn);
	file_check(file, 0, 3 * PG, 25);
	cr_assert_eq(mm_get_rss(child, MM_ANONPAGES), 2);
	cr_assert_eq(mm_get_rss(child, MM_SHMEMPAGES), 0);
	assert_audit_clean();
	mmput(parent);
	check_at(child, addr, 0, 2 * PG, 27);
	check_at(child, addr, 2 * PG, PG, 25);
	mmput(child);
	fput(file);
}

Test(file, fork_private_anon_and_shared_file)
{
	struct mm_struct *parent = new_mm(), *child;
	struct file *file = new_memfd();
	unsigned long anon, shared;

	cr_assert_eq(uhmm_ftruncate(file, 2 * PG), 0);
	anon = map_anon(parent, 0, 2 * PG, RW, 0);
	shared = map_file(parent, 2 * PG, RW, MAP_SHARED, file, 0);
	fill_pattern(parent, anon, 2 * PG, 28);
	fill_pattern(parent, shared, 2 * PG, 29);
	child = fork_mm(parent);
	fill_at(child, anon, 0, PG, 30);
	fill_at(child, shared, 0, PG, 31);
	check_at(parent, anon, 0, PG, 28);     /* private: copied on write */
	check_at(parent, shared, 0, PG, 31);   /* shared: the child's write shows */
	fill_at(parent, shared, PG, PG, 32);
	check_at(child, shared, PG, PG, 32);
	fill_at(parent, anon, PG, PG, 33);
	check_at(child, anon, PG, PG, 28);
	assert_audit_clean();
	mmput(child);
	mmput(parent);
	file_check(file, 0, PG, 31);
	fput(file);
}

/* ------------------------------------------------------------------ */
/* introspection: smaps, RSS, refcounts, rmap                          */
/* ------------------------------------------------------------------ */

Test(file, smaps_shared_and_private)
{
	struct mm_struct *a = new_mm(), *b = new_mm();
	struct file *file = new_memfd();
	unsigned long pa, pb;
	struct mm_smaps s;

	cr_assert_eq(uhmm_ftruncate(file, 4 * PG), 0);
	pa = map_file(a, 4 * PG, RW, MAP_SHARED, file, 0);
	check_zero(a, pa, 4 * PG);
	s = smaps(a);
	cr_assert_eq(s.rss, 4 * PG);
	cr_assert_eq(s.private_clean, 4 * PG, "mapped once: private, as Linux counts it");
	cr_assert_eq(s.shared_clean + s.shared_dirty + s.private_dirty + s.anonymous, 0);
	pb = map_file(b, 4 * PG, PROT_READ, MAP_SHARED, file, 0);
	check_zero(b, pb, 4 * PG);
	s = smaps(a);
	cr_assert_eq(s.shared_clean, 4 * PG);
	cr_assert_eq(s.private_clean + s.private_dirty + s.shared_dirty, 0);
	/* Written (pwrite dirties the folios): shared and dirty on both sides. */
	file_fill(file, 0, 4 * PG, 34);
	s = smaps(b);
	cr_assert_eq(s.shared_dirty, 4 * PG);
	cr_assert_eq(s.shared_clean, 0);
	cr_assert_eq(smaps(a).shared_dirty, 4 * PG);
	mmput(b);
	cr_assert_eq(smaps(a).private_dirty, 4 * PG);
	mmput(a);
	fput(file);
}

Test(file, rss_counters_ramfs_and_shmem)
{
	struct mm_struct *mm = new_mm();
	struct file *shm = new_memfd(), *ram = new_ramfs();
	unsigned long a, b;

	cr_assert(!inode_is_shmem(ram->f_inode));
	file_fill(shm, 0, 3 * PG, 35);
	file_fill(ram, 0, 5 * PG, 36);
	cr_assert(!folio_test_swapbacked(cached(ram, 0)));
	a = map_file(mm, 3 * PG, PROT_READ, MAP_SHARED, shm, 0);
	b = map_file(mm, 5 * PG, PROT_READ, MAP_PRIVATE, ram, 0);
	check_pattern(mm, a, 3 * PG, 35);
	check_pattern(mm, b, 5 * PG, 36);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 3);
	cr_assert_eq(mm_get_rss(mm, MM_FILEPAGES), 5);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	cr_assert(pagemap(mm, b) & PM_FILE);
	cr_assert(uhmm_kpageflags(pfn_at(mm, a)) & (1ULL << KPF_SWAPBACKED));
	cr_assert(!(uhmm_kpageflags(pfn_at(mm, b)) & (1ULL << KPF_SWAPBACKED)));
	cr_assert(!(uhmm_kpageflags(pfn_at(mm, b)) & (1ULL << KPF_ANON)));
	cr_assert_eq(uhmm_kpagecount(pfn_at(mm, b)), 1);
	cr_assert_eq(mm_mprotect(mm, b, 5 * PG, RW), 0);
	fill_at(mm, b, PG, PG, 37); /* a private copy: file -> anon */
	cr_assert_eq(mm_get_rss(mm, MM_FILEPAGES), 4);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 1);
	assert_audit_clean();
	mm_munmap(mm, a, 3 * PG);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 0);
	mmput(mm);
	fput(shm);
	fput(ram);
}

Test(file, refcounts_and_rmap)
{
	struct mm_struct *a = new_mm(), *b = new_mm();
	struct file *file = new_memfd();
	struct folio_mapping_info info[4];
	unsigned long pa, pb, pc;
	struct folio *folio;

	file_fill(file, 0, 2 * PG, 38);
	pa = map_file(a, 2 * PG, RW, MAP_SHARED, file, 0);
	pb = map_file(b, 2 * PG, PROT_READ, MAP_SHARED, file, 0);
	pc = map_file(b, PG, PROT_READ, MAP_PRIVATE, file, PG);
	check_pattern(a, pa, 2 * PG, 38);
	check_pattern(b, pb, 2 * PG, 38);
	check_at(b, pc - PG, PG, PG, 38);
	folio = cached(file, 1);
	cr_assert_eq(folio_mapcount(folio), 3);
	cr_assert_eq(folio_ref_count(folio), 4);
	cr_assert_eq(folio_rmap_query(folio, info, 4), 3);
	bool seen_a = false, seen_b = false, seen_c = false;
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(info[i].pfn, folio_pfn(folio));
		cr_assert(!info[i].pmd_mapped);
		seen_a |= info[i].mm == a && info[i].address == pa + PG;
		seen_b |= info[i].mm == b && info[i].address == pb + PG;
		seen_c |= info[i].mm == b && info[i].address == pc;
	}
	cr_assert(seen_a && seen_b && seen_c);
	cr_assert_eq(folio_rmap_query(cached(file, 0), NULL, 0), 2);
	mmput(b);
	cr_assert_eq(folio_ref_count(folio), 2);
	cr_assert_eq(folio_rmap_query(folio, info, 4), 1);
	/* Only the file still holds the pages after the last mapping goes. */
	mmput(a);
	cr_assert_eq(folio_ref_count(folio), 1);
	cr_assert_eq(folio_rmap_query(folio, NULL, 0), 0);
	assert_audit_clean();
	fput(file);
}

Test(file, machine_destroy_busy_while_a_file_lives)
{
	struct file *file = new_memfd();
	struct file *empty = new_memfd();

	file_fill(file, 0, PG, 39);
	cr_assert_eq(uhmm_machine_destroy(machine), -EBUSY);
	fput(file);
	cr_assert_eq(uhmm_machine_destroy(machine), -EBUSY, "an empty file counts too");
	fput(empty);
	/* The teardown's destroy succeeds. */
}

Test(file, mapping_keeps_the_file_after_fput)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr, free0 = nr_free();

	file_fill(file, 0, 2 * PG, 40);
	addr = map_file(mm, 2 * PG, RW, MAP_SHARED, file, 0);
	cr_assert_eq(atomic_load(&file->f_count), 2, "the opener's and the VMA's");
	fput(file);
	check_pattern(mm, addr, 2 * PG, 40);
	fill_at(mm, addr, 0, 10, 41);
	check_at(mm, addr, 0, 10, 41);
	assert_audit_clean();
	mm_munmap(mm, addr, 2 * PG);
	cr_assert_eq(nr_free(), free0, "the last VMA closed the file and freed its cache");
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* madvise, mprotect, mremap, populate, GUP                            */
/* ------------------------------------------------------------------ */

Test(file, madvise_dontneed)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long shared, priv;

	file_fill(file, 0, 2 * PG, 42);
	shared = map_file(mm, 2 * PG, RW, MAP_SHARED, file, 0);
	priv = map_file(mm, 2 * PG, RW, MAP_PRIVATE, file, 0);
	fill_at(mm, shared, 0, PG, 43);
	fill_at(mm, priv, PG, PG, 44);
	cr_assert_eq(mm_madvise(mm, shared, 2 * PG, MADV_DONTNEED), 0);
	cr_assert_eq(pagemap(mm, shared), 0);
	check_at(mm, shared, 0, PG, 43); /* the page cache kept it */
	cr_assert_eq(mm_madvise(mm, priv, 2 * PG, MADV_DONTNEED), 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	check_at(mm, priv, PG, PG, 42); /* the copy is gone: the file shows again */
	check_at(mm, priv, 0, PG, 43);
	cr_assert_eq(uhmm_file_nrpages(file), 2);
	cr_assert_eq(mm_madvise(mm, shared, PG, MADV_FREE), -EINVAL);
	cr_assert_eq(mm_madvise(mm, priv, PG, MADV_FREE), -EINVAL);
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

Test(file, madvise_remove_punches_a_hole)
{
	struct mm_struct *a = new_mm(), *b = new_mm();
	struct file *file = new_memfd(), *ram = new_ramfs();
	unsigned long pa, priv, pr, free0;

	file_fill(file, 0, 4 * PG, 45);
	pa = map_file(a, 4 * PG, RW, MAP_SHARED, file, 0);
	priv = map_file(b, 4 * PG, RW, MAP_PRIVATE, file, 0);
	check_pattern(a, pa, 4 * PG, 45);
	check_pattern(b, priv, 4 * PG, 45);
	fill_at(b, priv, PG, PG, 46); /* a private copy of page 1 */
	cr_assert_eq(mm_madvise(b, priv, 4 * PG, MADV_REMOVE), -EACCES);
	free0 = nr_free();
	cr_assert_eq(mm_madvise(a, pa + PG, 2 * PG, MADV_REMOVE), 0);
	cr_assert_eq(nr_free() - free0, 2);
	cr_assert_eq(uhmm_file_nrpages(file), 2);
	cr_assert_eq(uhmm_file_size(file), 4 * PG, "FALLOC_FL_KEEP_SIZE");
	check_zero(a, pa + PG, 2 * PG);
	file_check_zero(file, PG, 2 * PG);
	check_at(a, pa, 0, PG, 45);
	check_at(a, pa, 3 * PG, PG, 45);
	/* A hole punch keeps private copies (even_cows is false); the rest refault. */
	check_at(b, priv, PG, PG, 46);
	check_zero(b, priv + 2 * PG, PG);
	assert_audit_clean();
	/* ramfs cannot punch holes. */
	cr_assert_eq(uhmm_ftruncate(ram, PG), 0);
	pr = map_file(a, PG, RW, MAP_SHARED, ram, 0);
	cr_assert_eq(mm_madvise(a, pr, PG, MADV_REMOVE), -EOPNOTSUPP);
	cr_assert_eq(mm_madvise(a, map_anon(a, 0, PG, RW, 0), PG, MADV_REMOVE), -EINVAL);
	mmput(a);
	mmput(b);
	fput(file);
	fput(ram);
}

Test(file, mprotect_split_and_truncate)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr;

	file_fill(file, 0, 8 * PG, 47);
	addr = map_file(mm, 8 * PG, RW, MAP_SHARED, file, 0);
	check_pattern(mm, addr, 8 * PG, 47);
	cr_assert_eq(mm_mprotect(mm, addr + 2 * PG, 2 * PG, PROT_READ), 0);
	cr_assert_eq(nr_vmas(mm), 3);
	cr_assert_eq(file->f_mapping->nr_mmap, 3);
	cr_assert_eq(vma_at(mm, addr + 2 * PG)->vm_pgoff, 2);
	cr_assert_eq(vma_at(mm, addr + 4 * PG)->vm_pgoff, 4);
	cr_assert_eq(atomic_load(&file->f_count), 4);
	assert_audit_clean();
	cr_assert_eq(uhmm_ftruncate(file, 3 * PG), 0);
	cr_assert_eq(read_byte(mm, addr + 3 * PG), -EFAULT);
	cr_assert_eq(read_byte(mm, addr + 5 * PG), -EFAULT);
	check_pattern(mm, addr, 3 * PG, 47);
	/* Merging back leaves one VMA and one file reference. */
	cr_assert_eq(mm_mprotect(mm, addr + 2 * PG, 2 * PG, RW), 0);
	cr_assert_eq(nr_vmas(mm), 1);
	cr_assert_eq(file->f_mapping->nr_mmap, 1);
	cr_assert_eq(atomic_load(&file->f_count), 2);
	/* Partial munmap of the middle. */
	cr_assert_eq(mm_munmap(mm, addr + PG, PG), 0);
	cr_assert_eq(file->f_mapping->nr_mmap, 2);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 2);
	assert_audit_clean();
	mmput(mm);
	cr_assert_eq(file->f_mapping->nr_mmap, 0);
	cr_assert_eq(atomic_load(&file->f_count), 1);
	fput(file);
}

Test(file, adjacent_mappings_merge_only_when_contiguous)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long base;

	cr_assert_eq(uhmm_ftruncate(file, 8 * PG), 0);
	base = map_file(mm, 4 * PG, RW, MAP_SHARED, file, 0);
	cr_assert_eq(mm_mmap(mm, base + 4 * PG, 2 * PG, RW, MAP_SHARED | MAP_FIXED, file, 4 * PG),
		     (long)(base + 4 * PG));
	cr_assert_eq(nr_vmas(mm), 1, "contiguous file offsets merge");
	cr_assert_eq(file->f_mapping->nr_mmap, 1);
	cr_assert_eq(mm_mmap(mm, base + 6 * PG, PG, RW, MAP_SHARED | MAP_FIXED, file, 0),
		     (long)(base + 6 * PG));
	cr_assert_eq(nr_vmas(mm), 2, "a different offset does not");
	/* MAP_FIXED over part of a file VMA replaces it. */
	map_anon(mm, base + PG, PG, RW, MAP_FIXED);
	cr_assert_eq(nr_vmas(mm), 4);
	cr_assert_eq(file->f_mapping->nr_mmap, 3);
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

Test(file, mremap_moves_file_mapping)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr, moved;
	long ret;

	file_fill(file, 0, 4 * PG, 48);
	addr = map_file(mm, 2 * PG, RW, MAP_SHARED, file, 0);
	check_pattern(mm, addr, 2 * PG, 48);
	map_anon(mm, addr + 2 * PG, PG, RW, MAP_FIXED); /* block growing in place */
	ret = mm_mremap(mm, addr, 2 * PG, 4 * PG, MREMAP_MAYMOVE, 0);
	cr_assert_gt(ret, 0);
	moved = (unsigned long)ret;
	cr_assert_neq(moved, addr);
	check_pattern(mm, moved, 4 * PG, 48);
	cr_assert_eq(file->f_mapping->nr_mmap, 1);
	cr_assert_eq(vma_at(mm, moved)->vm_pgoff, 0);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 4);
	/* Shrinking, then growing in place past EOF: SIGBUS there. */
	cr_assert_eq(mm_mremap(mm, moved, 4 * PG, PG, 0, 0), (long)moved);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 1);
	cr_assert_eq(mm_mremap(mm, moved, PG, 6 * PG, 0, 0), (long)moved);
	check_pattern(mm, moved, 4 * PG, 48);
	cr_assert_eq(read_byte(mm, moved + 5 * PG), -EFAULT);
	assert_audit_clean();
	cr_assert_eq(uhmm_ftruncate(file, PG), 0);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 1);
	mmput(mm);
	fput(file);
}

Test(file, map_populate)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr;

	cr_assert_eq(uhmm_ftruncate(file, 4 * PG), 0);
	addr = map_file(mm, 4 * PG, RW, MAP_SHARED | MAP_POPULATE, file, 0);
	cr_assert_eq(mm_get_rss(mm, MM_SHMEMPAGES), 4);
	cr_assert_eq(uhmm_file_nrpages(file), 4);
	addr = map_file(mm, 4 * PG, RW, MAP_PRIVATE | MAP_POPULATE, file, 0);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 4, "a private writable mapping populates COW copies");
	cr_assert(!(pagemap(mm, addr) & PM_FILE));
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

Test(file, gup_pins_page_cache_pages)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	struct page *pages[2];
	unsigned long addr, priv, free0;
	struct folio *folio;

	file_fill(file, 0, 2 * PG, 49);
	addr = map_file(mm, 2 * PG, RW, MAP_SHARED, file, 0);
	cr_assert_eq(pin_user_pages_fast(mm, addr, 2, FOLL_WRITE | FOLL_LONGTERM, pages), 2);
	folio = page_folio(pages[1]);
	cr_assert_eq(folio, cached(file, 1));
	cr_assert_eq(folio_ref_count(folio), 2 + (int)GUP_PIN_COUNTING_BIAS);
	assert_audit_clean();
	/* Truncate drops the pages from the cache and the page tables; the pins keep them. */
	free0 = nr_free();
	cr_assert_eq(uhmm_ftruncate(file, 0), 0);
	cr_assert_eq(nr_free(), free0);
	cr_assert_eq(folio_ref_count(folio), (int)GUP_PIN_COUNTING_BIAS);
	cr_assert_null(folio->mapping);
	assert_audit_clean();
	unpin_user_pages(pages, 2);
	cr_assert_eq(nr_free() - free0, 2);
	/* FOLL_WRITE on a private file mapping breaks COW first. */
	file_fill(file, 0, PG, 50);
	priv = map_file(mm, PG, RW, MAP_PRIVATE, file, 0);
	cr_assert_eq(pin_user_pages_fast(mm, priv, 1, FOLL_WRITE, pages), 1);
	cr_assert(folio_test_anon(page_folio(pages[0])));
	cr_assert_eq(pfn_at(mm, priv), page_to_pfn(pages[0]));
	unpin_user_page(pages[0]);
	/* Read pins of a private file page: short-term pins the page cache... */
	priv = map_file(mm, 2 * PG, RW, MAP_PRIVATE, file, 0);
	cr_assert_eq(pin_user_pages_fast(mm, priv, 1, 0, pages), 1);
	cr_assert_eq(page_folio(pages[0]), cached(file, 0));
	unpin_user_page(pages[0]);
	/* ...a FOLL_LONGTERM one unshares it first (gup_must_unshare()). */
	cr_assert_eq(pin_user_pages_fast(mm, priv, 1, FOLL_LONGTERM, pages), 1);
	cr_assert(folio_test_anon(page_folio(pages[0])));
	cr_assert_eq(pfn_at(mm, priv), page_to_pfn(pages[0]));
	check_at(mm, priv, 0, PG, 50);
	unpin_user_page(pages[0]);
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

Test(file, mm_dump_names_files_and_page_cache_pages)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd(), *ram = new_ramfs();
	unsigned long shared, priv, rmap;
	char *buf = NULL, line[128];
	size_t len = 0;
	FILE *f;

	file_fill(file, 0, 2 * PG, 51);
	file_fill(ram, 0, PG, 52);
	shared = map_file(mm, 2 * PG, RW, MAP_SHARED, file, 0);
	priv = map_file(mm, 2 * PG, RW, MAP_PRIVATE, file, 0);
	rmap = map_file(mm, PG, PROT_READ, MAP_SHARED, ram, 0);
	check_pattern(mm, shared, 2 * PG, 51);
	check_pattern(mm, rmap, PG, 52);
	fill_at(mm, priv, 0, PG, 53);
	check_at(mm, priv, PG, PG, 51);
	f = open_memstream(&buf, &len);
	cr_assert(f);
	mm_dump(mm, f);
	cr_assert_eq(fclose(f), 0);
	snprintf(line, sizeof(line), "shmem ino %lu", file->f_inode->i_ino);
	cr_assert(strstr(buf, line), "%s", buf);
	snprintf(line, sizeof(line), "file ino %lu", ram->f_inode->i_ino);
	cr_assert(strstr(buf, line), "%s", buf);
	snprintf(line, sizeof(line), "PTE %#lx-%#lx shmem pfn", shared, shared + 2 * PG);
	cr_assert(strstr(buf, line) || strstr(buf, "shmem pfn"), "%s", buf);
	snprintf(line, sizeof(line), "PTE %#lx-%#lx anon pfn", priv, priv + PG);
	cr_assert(strstr(buf, line), "%s", buf);
	cr_assert(strstr(buf, " file pfn "), "%s", buf);
	free(buf);
	mmput(mm);
	fput(file);
	fput(ram);
}

/*
 * free_pgtables() keeps a table that also covers a file VMA (Linux's
 * floor/ceiling): a truncate may be walking it without this mm's mmap_lock.
 */
Test(file, munmap_keeps_page_tables_a_file_vma_shares)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long base = map_plain(mm, 2 * HPAGE_PMD_SIZE), tables;

	cr_assert_eq(uhmm_ftruncate(file, PG), 0);
	cr_assert_eq(mm_munmap(mm, base, 2 * HPAGE_PMD_SIZE), 0);
	cr_assert_eq(mm_mmap(mm, base, PG, RW, MAP_SHARED | MAP_FIXED, file, 0), (long)base);
	map_anon(mm, base + PG, PG, RW, MAP_FIXED);
	fill_at(mm, base, PG, 8, 54); /* only the anonymous page: the PTE table exists */
	tables = smaps(mm).page_tables;
	cr_assert_eq(mm_munmap(mm, base + PG, PG), 0);
	cr_assert_eq(smaps(mm).page_tables, tables, "the PTE table also covers the file VMA");
	assert_audit_clean();
	cr_assert_eq(mm_munmap(mm, base, PG), 0);
	cr_assert_eq(smaps(mm).page_tables, 0UL, "no file VMA left: every table goes");
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

Test(file, allocation_failure_changes_nothing)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	struct fault_attr fail = { .probability = 100, .interval = 1, .times = 1 };
	unsigned long addr, free0;
	char buf[PG];

	cr_assert_eq(uhmm_ftruncate(file, 4 * PG), 0);
	addr = map_file(mm, 4 * PG, RW, MAP_SHARED, file, 0);
	fill_at(mm, addr, 0, 8, 55); /* page tables and page 0 exist */
	free0 = nr_free();
	uhmm_fail_page_alloc(machine, &fail);
	cr_assert_eq(read_byte(mm, addr + PG), -ENOMEM);
	uhmm_fail_page_alloc(machine, NULL);
	cr_assert_eq(nr_free(), free0);
	cr_assert_eq(uhmm_file_nrpages(file), 1);
	fail.times = 1;
	uhmm_fail_page_alloc(machine, &fail);
	memset(buf, 1, sizeof(buf));
	cr_assert_eq(uhmm_pwrite(file, buf, sizeof(buf), 2 * PG), -ENOMEM);
	uhmm_fail_page_alloc(machine, NULL);
	cr_assert_eq(uhmm_file_nrpages(file), 1);
	/* A write that runs out part way writes what it could. */
	fail.times = 1;
	fail.interval = 2;
	uhmm_fail_page_alloc(machine, &fail);
	cr_assert_eq(uhmm_pwrite(file, buf, sizeof(buf), 2 * PG - 10), 10);
	uhmm_fail_page_alloc(machine, NULL);
	cr_assert_eq(uhmm_file_size(file), 4 * PG);
	cr_assert_eq(uhmm_file_nrpages(file), 2);
	/* A private write fault that cannot allocate its copy. */
	unsigned long priv = map_file(mm, PG, RW, MAP_PRIVATE, file, 0);
	cr_assert_eq(read_byte(mm, priv), pattern_byte(55, 0));
	fail.times = 1;
	fail.interval = 1;
	uhmm_fail_page_alloc(machine, &fail);
	cr_assert_eq(cpu_write(mm, priv, buf, 1), -ENOMEM);
	uhmm_fail_page_alloc(machine, NULL);
	cr_assert(pagemap(mm, priv) & PM_FILE, "still the page-cache page");
	assert_audit_clean();
	mmput(mm);
	fput(file);
}

/* The audit sees what the page cache gets wrong. */
Test(file, audit_checks_the_page_cache)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	struct address_space *mapping = file->f_mapping;
	unsigned long addr;
	struct folio *folio;

	file_fill(file, 0, 2 * PG, 56);
	addr = map_file(mm, 2 * PG, RW, MAP_SHARED, file, 0);
	check_pattern(mm, addr, 2 * PG, 56);
	folio = cached(file, 1);
	assert_audit_clean();
	folio_get(folio); /* a reference nobody accounts for */
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	folio_put(folio);
	folio->index = 7; /* cached at the wrong index */
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	folio->index = 1;
	atomic_fetch_add(&mapping->nrpages, 1);
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	atomic_fetch_sub(&mapping->nrpages, 1);
	add_mm_counter(mm, MM_SHMEMPAGES, 1);
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	add_mm_counter(mm, MM_SHMEMPAGES, -1);
	i_size_write(file->f_inode, PG); /* a cached page past EOF */
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	i_size_write(file->f_inode, 2 * PG);
	mapping->nr_mmap++;
	cr_assert_gt(uhmm_audit(machine, NULL), 0);
	mapping->nr_mmap--;
	assert_audit_clean();
	mmput(mm);
	fput(file);
}
