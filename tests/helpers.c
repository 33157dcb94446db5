/* SPDX-License-Identifier: MIT */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

struct uhmm_machine *machine;

void machine_setup_with(const struct uhmm_machine_config *config)
{
	machine = uhmm_machine_create(config);
	cr_assert(!IS_ERR_OR_NULL(machine), "uhmm_machine_create failed: %ld", PTR_ERR(machine));
}

void machine_setup(void)
{
	machine_setup_with(NULL);
}

unsigned long hugetlb_pool_pages(struct uhmm_machine *m)
{
	struct hugetlb_stats hs;
	cr_assert_eq(uhmm_hugetlb_stats(m, &hs), 0);
	return hs.total * HPAGE_PMD_NR;
}

void assert_audit_clean(void)
{
	int violations = uhmm_audit(machine, stderr);
	cr_assert_eq(violations, 0, "the audit found %d violations", violations);
}

void machine_teardown(void)
{
	if (!machine)
		return;
	assert_audit_clean();
	/* The hugetlb pool holds its pages; all of them must be free again. */
	struct hugetlb_stats hs;
	cr_assert_eq(uhmm_hugetlb_stats(machine, &hs), 0);
	cr_assert_eq(hs.free, hs.total, "hugetlb pages in use: %lu free of %lu", hs.free, hs.total);
	cr_assert_eq(hs.rsvd, 0, "%lu hugetlb pages still reserved", hs.rsvd);
	cr_assert_eq(uhmm_nr_free_pages(machine) + uhmm_nr_reserved_pages(machine) +
			     hs.total * HPAGE_PMD_NR,
		     uhmm_totalram_pages(machine),
		     "pages leaked: %lu free + %lu reserved + %lu hugetlb pool of %lu",
		     uhmm_nr_free_pages(machine), uhmm_nr_reserved_pages(machine),
		     hs.total * HPAGE_PMD_NR, uhmm_totalram_pages(machine));
	cr_assert_eq(uhmm_machine_destroy(machine), 0);
	machine = NULL;
}

struct mm_struct *new_mm(void)
{
	struct mm_struct *mm = mm_alloc(machine);
	cr_assert(!IS_ERR_OR_NULL(mm));
	return mm;
}

unsigned long map_anon(struct mm_struct *mm, unsigned long addr, unsigned long len, int prot,
		       int extra_flags)
{
	long ret = mm_mmap(mm, addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, NULL, 0);
	cr_assert(ret > 0, "mm_mmap(%#lx, %#lx) = %ld", addr, len, ret);
	return (unsigned long)ret;
}

unsigned long map_thp(struct mm_struct *mm, unsigned long len)
{
	unsigned long addr = map_anon(mm, 0, len, PROT_READ | PROT_WRITE, 0);
	cr_assert(IS_ALIGNED(addr, PMD_SIZE) || !IS_ALIGNED(len, PMD_SIZE));
	cr_assert_eq(mm_madvise(mm, addr, len, MADV_HUGEPAGE), 0);
	return addr;
}

unsigned long map_plain(struct mm_struct *mm, unsigned long len)
{
	unsigned long addr = map_anon(mm, 0, len, PROT_READ | PROT_WRITE, 0);
	cr_assert(IS_ALIGNED(addr, HPAGE_PMD_SIZE));
	return addr;
}

uint8_t pattern_byte(uint32_t seed, unsigned long off)
{
	uint32_t x = (seed + 1) * 0x9e3779b1u ^ (uint32_t)off * 0x85ebca6bu ^ (uint32_t)(off >> 9);
	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	x ^= x >> 12;
	return (uint8_t)(x ^ (x >> 7));
}

void fill_at(struct mm_struct *mm, unsigned long base, unsigned long off, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);
	cr_assert(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern_byte(seed, off + i);
	cr_assert_eq(cpu_write(mm, base + off, buf, len), 0, "cpu_write(%#lx, %zu)", base + off,
		     len);
	free(buf);
}

void check_at(struct mm_struct *mm, unsigned long base, unsigned long off, size_t len,
	      uint32_t seed)
{
	uint8_t *buf = malloc(len);
	cr_assert(buf);
	cr_assert_eq(cpu_read(mm, base + off, buf, len), 0);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pattern_byte(seed, off + i))
			cr_assert_fail("byte at %#lx (+%#lx) is %#x, want %#x", base + off + i,
				       off + i, buf[i], pattern_byte(seed, off + i));
	free(buf);
}

void fill_pattern(struct mm_struct *mm, unsigned long addr, size_t len, uint32_t seed)
{
	fill_at(mm, addr, 0, len, seed);
}

void check_pattern(struct mm_struct *mm, unsigned long addr, size_t len, uint32_t seed)
{
	check_at(mm, addr, 0, len, seed);
}

void check_zero(struct mm_struct *mm, unsigned long addr, size_t len)
{
	uint8_t *buf = malloc(len);
	cr_assert(buf);
	memset(buf, 0xa5, len);
	cr_assert_eq(cpu_read(mm, addr, buf, len), 0);
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			cr_assert_fail("byte at %#lx is %#x, want 0", addr + i, buf[i]);
	free(buf);
}

uint64_t pagemap(struct mm_struct *mm, unsigned long addr)
{
	uint64_t e = 0;
	cr_assert_eq(mm_pagemap_read(mm, addr & PAGE_MASK, 1, &e), 0);
	return e;
}

unsigned long pfn_at(struct mm_struct *mm, unsigned long addr)
{
	uint64_t e = pagemap(mm, addr);
	cr_assert(e & PM_PRESENT, "pagemap(%#lx) = %#llx is not present", addr,
		  (unsigned long long)e);
	return (unsigned long)(e & PM_PFRAME_MASK);
}

struct folio *folio_at(struct mm_struct *mm, unsigned long addr)
{
	return page_folio(pfn_to_page(pfn_at(mm, addr)));
}

struct mm_smaps smaps(struct mm_struct *mm)
{
	struct mm_smaps s;
	memset(&s, 0xff, sizeof(s));
	cr_assert_eq(mm_smaps_rollup(mm, &s), 0);
	return s;
}

unsigned long rss_bytes(struct mm_struct *mm)
{
	return smaps(mm).rss;
}

unsigned long anon_huge(struct mm_struct *mm)
{
	return smaps(mm).anon_huge_pages;
}

size_t nr_vmas(struct mm_struct *mm)
{
	return mm->mm_mt.nr;
}

struct file *new_memfd(void)
{
	struct file *file = uhmm_memfd_create(machine, "test");
	cr_assert(!IS_ERR_OR_NULL(file), "uhmm_memfd_create: %ld", PTR_ERR(file));
	return file;
}

struct file *new_ramfs(void)
{
	struct file *file = uhmm_ramfs_create(machine, "test");
	cr_assert(!IS_ERR_OR_NULL(file), "uhmm_ramfs_create: %ld", PTR_ERR(file));
	return file;
}

unsigned long map_file(struct mm_struct *mm, unsigned long len, int prot, int flags,
		       struct file *file, unsigned long off)
{
	long ret = mm_mmap(mm, 0, len, prot, flags, file, off);
	cr_assert(ret > 0, "mm_mmap(file, %#lx, off %#lx) = %ld", len, off, ret);
	return (unsigned long)ret;
}

void file_fill(struct file *file, loff_t pos, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);
	cr_assert(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern_byte(seed, (unsigned long)pos + i);
	cr_assert_eq(uhmm_pwrite(file, buf, len, pos), (ssize_t)len);
	free(buf);
}

void file_check(struct file *file, loff_t pos, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);
	cr_assert(buf);
	cr_assert_eq(uhmm_pread(file, buf, len, pos), (ssize_t)len);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pattern_byte(seed, (unsigned long)pos + i))
			cr_assert_fail("file byte %#llx is %#x, want %#x",
				       (unsigned long long)pos + i, buf[i],
				       pattern_byte(seed, (unsigned long)pos + i));
	free(buf);
}

void file_check_zero(struct file *file, loff_t pos, size_t len)
{
	uint8_t *buf = malloc(len);
	cr_assert(buf);
	memset(buf, 0xa5, len);
	cr_assert_eq(uhmm_pread(file, buf, len, pos), (ssize_t)len);
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			cr_assert_fail("file byte %#llx is %#x, want 0", (unsigned long long)pos + i,
				       buf[i]);
	free(buf);
}

void mm_snapshot_take(struct mm_snapshot *s, struct mm_struct *mm, const struct snapshot_spec *spec)
{
	memset(s, 0, sizeof(*s));
	s->spec = *spec;
	s->pagemap = calloc(spec->npages ? spec->npages : 1, sizeof(*s->pagemap));
	s->bytes = calloc(spec->npages ? spec->npages : 1, PAGE_SIZE);
	s->cpu_bytes = calloc(spec->cpu_read_len ? spec->cpu_read_len : 1, 1);
	cr_assert(s->pagemap && s->bytes && s->cpu_bytes);
	cr_assert_eq(mm_pagemap_read(mm, spec->base, spec->npages, s->pagemap), 0);
	for (unsigned long i = 0; i < spec->npages; i++) {
		if (!(s->pagemap[i] & PM_PRESENT))
			continue;
		unsigned long pfn = (unsigned long)(s->pagemap[i] & PM_PFRAME_MASK);
		cr_assert(pfn_valid(pfn), "pagemap of page %lu gives pfn %#lx", i, pfn);
		memcpy(s->bytes + i * PAGE_SIZE, page_address(pfn_to_page(pfn)), PAGE_SIZE);
	}
	if (spec->cpu_read_len)
		cr_assert_eq(cpu_read(mm, spec->base, s->cpu_bytes, spec->cpu_read_len), 0);
	cr_assert_eq(mm_smaps_rollup(mm, &s->smaps), 0);
	for (int i = 0; i < NR_MM_COUNTERS; i++)
		s->rss[i] = mm_get_rss(mm, i);
	s->free_pages = uhmm_nr_free_pages(machine);
	cr_assert_eq(uhmm_hugetlb_stats(machine, &s->hugetlb), 0);
	mmap_read_lock(mm);
	s->nr_vmas = mm->mm_mt.nr;
	s->vmas = calloc(s->nr_vmas ? s->nr_vmas : 1, sizeof(*s->vmas));
	cr_assert(s->vmas);
	for (size_t i = 0; i < s->nr_vmas; i++) {
		const struct vm_area_struct *v = mm->mm_mt.vmas[i];
		s->vmas[i] = (struct vma_state){v->vm_start, v->vm_end, v->vm_flags, v->vm_pgoff};
	}
	mmap_read_unlock(mm);
	for (unsigned int d = 0; spec->devices && d < DMIRROR_NDEVICES; d++)
		cr_assert_eq(dmirror_device_stats(spec->devices, d, &s->dev[d]), 0);
}

void mm_snapshot_free(struct mm_snapshot *s)
{
	free(s->pagemap);
	free(s->bytes);
	free(s->cpu_bytes);
	free(s->vmas);
	memset(s, 0, sizeof(*s));
}

/* Print every field of two struct mm_smaps that differ (all are unsigned long). */
static void report_smaps_diff(const char *what, const struct mm_smaps *a, const struct mm_smaps *b)
{
	static const char *const names[] = {
		"rss",		 "anonymous",	 "anon_huge_pages", "private_clean",
		"private_dirty", "shared_clean", "shared_dirty",    "swap",
		"lazy_free",	 "page_tables",	 "shared_hugetlb",  "private_hugetlb",
	};
	const unsigned long *x = (const unsigned long *)a, *y = (const unsigned long *)b;

	_Static_assert(sizeof(names) / sizeof(names[0]) * sizeof(unsigned long) ==
			       sizeof(struct mm_smaps),
		       "a name for every field of struct mm_smaps");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_expect_eq(x[i], y[i], "%s: smaps %s %lu -> %lu", what, names[i], x[i], y[i]);
}

void mm_snapshot_expect_same(const char *what, const struct mm_snapshot *a,
			     const struct mm_snapshot *b)
{
	cr_assert_eq(a->spec.npages, b->spec.npages);
	for (unsigned long i = 0; i < a->spec.npages; i++) {
		cr_expect_eq(a->pagemap[i], b->pagemap[i],
			     "%s: pagemap of page %lu changed %#llx -> %#llx", what, i,
			     (unsigned long long)a->pagemap[i], (unsigned long long)b->pagemap[i]);
		cr_expect(!memcmp(a->bytes + i * PAGE_SIZE, b->bytes + i * PAGE_SIZE, PAGE_SIZE),
			  "%s: bytes of page %lu changed", what, i);
	}
	cr_expect(!memcmp(a->cpu_bytes, b->cpu_bytes, a->spec.cpu_read_len),
		  "%s: data read back changed", what);
	report_smaps_diff(what, &a->smaps, &b->smaps);
	for (int i = 0; i < NR_MM_COUNTERS; i++)
		cr_expect_eq(a->rss[i], b->rss[i], "%s: rss counter %d %ld -> %ld", what, i,
			     a->rss[i], b->rss[i]);
	cr_expect_eq(a->free_pages, b->free_pages, "%s: free pages %lu -> %lu", what,
		     a->free_pages, b->free_pages);
	cr_expect(!memcmp(&a->hugetlb, &b->hugetlb, sizeof(a->hugetlb)),
		  "%s: hugetlb pool total/free/rsvd/surp %lu/%lu/%lu/%lu -> %lu/%lu/%lu/%lu", what,
		  a->hugetlb.total, a->hugetlb.free, a->hugetlb.rsvd, a->hugetlb.surp,
		  b->hugetlb.total, b->hugetlb.free, b->hugetlb.rsvd, b->hugetlb.surp);
	cr_expect_eq(a->nr_vmas, b->nr_vmas, "%s: %zu VMAs -> %zu", what, a->nr_vmas, b->nr_vmas);
	for (size_t i = 0; i < a->nr_vmas && i < b->nr_vmas; i++)
		cr_expect(!memcmp(&a->vmas[i], &b->vmas[i], sizeof(a->vmas[i])),
			  "%s: VMA %zu [%#lx, %#lx) flags %#lx pgoff %#lx -> [%#lx, %#lx) flags "
			  "%#lx pgoff %#lx",
			  what, i, a->vmas[i].start, a->vmas[i].end, a->vmas[i].flags,
			  a->vmas[i].pgoff, b->vmas[i].start, b->vmas[i].end, b->vmas[i].flags,
			  b->vmas[i].pgoff);
	for (unsigned int d = 0; a->spec.devices && d < DMIRROR_NDEVICES; d++) {
		cr_expect(!memcmp(&a->dev[d], &b->dev[d], sizeof(a->dev[d])),
			  "%s: device %u: chunks %lu pages %lu free %lu/%lu calloc %lu cfree %lu -> "
			  "chunks %lu pages %lu free %lu/%lu calloc %lu cfree %lu",
			  what, d, a->dev[d].nr_chunks, a->dev[d].nr_pages, a->dev[d].free_pages,
			  a->dev[d].free_folios, a->dev[d].calloc, a->dev[d].cfree,
			  b->dev[d].nr_chunks, b->dev[d].nr_pages, b->dev[d].free_pages,
			  b->dev[d].free_folios, b->dev[d].calloc, b->dev[d].cfree);
	}
}

int dmirror_cmd(struct dmirror *d, unsigned long req, unsigned long addr, void *buf,
		unsigned long npages, struct hmm_dmirror_cmd *out)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = addr,
		.ptr = (uint64_t)(uintptr_t)buf,
		.npages = npages,
		.cpages = 0xdead,
		.faults = 0xbeef,
	};
	int ret = dmirror_ioctl(d, req, &cmd);

	if (out)
		*out = cmd;
	return ret;
}
