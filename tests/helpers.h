/* SPDX-License-Identifier: MIT */
/*
 * tests/helpers.h - the fixture every unit test uses: a fresh machine per
 * test, and at teardown the invariant audit and a leak check (after the last
 * mmput, every page of RAM but the reserved zero page and the free hugetlb
 * pool is free, and no hugetlb page is in use or reserved); and the
 * helpers the suites share (mappings, byte patterns, pagemap and smaps).
 */
#ifndef UHMM_TESTS_HELPERS_H
#define UHMM_TESTS_HELPERS_H

#include <criterion/criterion.h>
#include <uhmm/dmirror.h>
#include <uhmm/uhmm.h>

extern struct uhmm_machine *machine;

/* Build the global machine with @config (NULL for defaults). */
void machine_setup_with(const struct uhmm_machine_config *config);
/* Criterion .init / .fini for the default machine (1 GiB RAM, THP madvise). */
void machine_setup(void);
void machine_teardown(void);
/* Pages of @m's RAM held by its hugetlb pool (HugePages_Total * 512). */
unsigned long hugetlb_pool_pages(struct uhmm_machine *m);
/* Assert that the audit finds nothing (prints what it finds). */
void assert_audit_clean(void);
/* A new mm on the global machine; asserts success. */
struct mm_struct *new_mm(void);
/* mm_mmap() that asserts success and returns the address. */
unsigned long map_anon(struct mm_struct *mm, unsigned long addr, unsigned long len, int prot,
		       int extra_flags);
/* A 2 MiB-aligned anonymous RW mapping of @len with MADV_HUGEPAGE applied. */
unsigned long map_thp(struct mm_struct *mm, unsigned long len);
/* A 2 MiB-aligned anonymous RW mapping of @len without any madvise. */
unsigned long map_plain(struct mm_struct *mm, unsigned long len);
/* The test pattern: the byte at offset @off of a fill with @seed. */
uint8_t pattern_byte(uint32_t seed, unsigned long off);
/* Fill [base+off, base+off+len) with pattern_byte(seed, offset from @base) via cpu_write. */
void fill_at(struct mm_struct *mm, unsigned long base, unsigned long off, size_t len,
	     uint32_t seed);
/* Assert [base+off, base+off+len) holds pattern_byte(seed, offset from @base). */
void check_at(struct mm_struct *mm, unsigned long base, unsigned long off, size_t len,
	      uint32_t seed);
/* fill_at() with @addr as the base: @len bytes of pattern_byte(seed, offset from @addr). */
void fill_pattern(struct mm_struct *mm, unsigned long addr, size_t len, uint32_t seed);
/* check_at() with @addr as the base: assert the bytes fill_pattern() wrote. */
void check_pattern(struct mm_struct *mm, unsigned long addr, size_t len, uint32_t seed);
/* Assert @len bytes at @addr read as zero. */
void check_zero(struct mm_struct *mm, unsigned long addr, size_t len);
/* The pagemap entry of @addr. */
uint64_t pagemap(struct mm_struct *mm, unsigned long addr);
/* The PFN mapped at @addr; asserts the pagemap entry is present. */
unsigned long pfn_at(struct mm_struct *mm, unsigned long addr);
/* The folio of the page mapped at @addr; asserts it is present. */
struct folio *folio_at(struct mm_struct *mm, unsigned long addr);
/* mm_smaps_rollup() that asserts success (fields it leaves unset read all ones). */
struct mm_smaps smaps(struct mm_struct *mm);
/* The Rss of @mm in bytes (smaps_rollup). */
unsigned long rss_bytes(struct mm_struct *mm);
/* The AnonHugePages of @mm in bytes (smaps_rollup). */
unsigned long anon_huge(struct mm_struct *mm);
/* The number of VMAs of @mm. */
size_t nr_vmas(struct mm_struct *mm);

/**
 * dmirror_cmd() - hmm-tests' hmm_dmirror_cmd(): one dmirror ioctl @req on
 * [@addr, @addr + @npages pages) with @buf.  cpages and faults start as
 * 0xdead and 0xbeef, so a caller sees whether the driver set them; @out
 * (may be NULL) gets the command as the driver left it.
 * Return: the ioctl's result.
 */
int dmirror_cmd(struct dmirror *d, unsigned long req, unsigned long addr, void *buf,
		unsigned long npages, struct hmm_dmirror_cmd *out);

/* ---- snapshots: "bad input changed nothing" (test_errno.c, test_badinput.c) ---- */
/**
 * struct snapshot_spec - what mm_snapshot_take() records besides the
 * whole-mm state (smaps_rollup, RSS counters, VMA list, free pages, the
 * hugetlb pool).
 * @base: first page of the span whose pagemap and page bytes are recorded.
 * @npages: pages of that span.
 * @cpu_read_len: bytes from @base also read through cpu_read() (0: none);
 *                the caller keeps them readable.
 * @devices: a dmirror module whose device stats are recorded, or NULL.
 */
struct snapshot_spec {
	unsigned long base;
	unsigned long npages;
	size_t cpu_read_len;
	struct dmirror_module *devices;
};

/** struct vma_state - the fields of one VMA a snapshot compares. */
struct vma_state {
	unsigned long start, end, flags, pgoff;
};

/** struct mm_snapshot - an mm's and the global machine's observable state. */
struct mm_snapshot {
	struct snapshot_spec spec;
	uint64_t *pagemap;  /* spec.npages entries */
	uint8_t *bytes;	    /* spec.npages pages: each present page's bytes, else zeros */
	uint8_t *cpu_bytes; /* spec.cpu_read_len bytes read through the CPU */
	struct mm_smaps smaps;
	long rss[NR_MM_COUNTERS];
	unsigned long free_pages;
	struct hugetlb_stats hugetlb;
	size_t nr_vmas;
	struct vma_state *vmas;
	struct dmirror_stats dev[DMIRROR_NDEVICES];
};

/* Record @mm's state as @spec says (asserts that every read works). */
void mm_snapshot_take(struct mm_snapshot *s, struct mm_struct *mm, const struct snapshot_spec *spec);
/* cr_expect (so every row of a table reports) that @b shows what @a did; @what names the row. */
void mm_snapshot_expect_same(const char *what, const struct mm_snapshot *a,
			     const struct mm_snapshot *b);
/* Free what mm_snapshot_take() allocated. */
void mm_snapshot_free(struct mm_snapshot *s);

/* ---- files (uhmm/fs.h) ---- */
/* uhmm_memfd_create() / uhmm_ramfs_create() on the global machine; assert success. */
struct file *new_memfd(void);
struct file *new_ramfs(void);
/* mm_mmap() of @file that asserts success and returns the address. */
unsigned long map_file(struct mm_struct *mm, unsigned long len, int prot, int flags,
		       struct file *file, unsigned long off);
/* pwrite @len bytes of pattern_byte(seed, file offset) at @pos; asserts it all went. */
void file_fill(struct file *file, loff_t pos, size_t len, uint32_t seed);
/* Assert pread of [@pos, @pos + @len) returns all of it, as file_fill() wrote it. */
void file_check(struct file *file, loff_t pos, size_t len, uint32_t seed);
/* Assert pread of [@pos, @pos + @len) returns all of it, zeros. */
void file_check_zero(struct file *file, loff_t pos, size_t len);

#endif
