/* SPDX-License-Identifier: MIT */
/*
 * tests/test_errno.c - bad input to every public entry point returns the
 * errno Linux x86-64 returns and changes nothing (DESIGN.md principle 8).
 *
 * Each case runs on a fresh address space with a known layout (data, a
 * read-only part, holes, a PROT_NONE part with data, an untouched part).
 * Before and after the call we compare: the bytes of every mapped page, the
 * pagemap of the whole span, smaps_rollup, the RSS counters, the VMA list
 * and the machine's free page count.
 *
 * The expected values were checked against Linux 6.18 on x86-64.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

/* "errno" is a macro, so the suite has another name. */
TestSuite(bad_input, .init = machine_setup, .fini = machine_teardown);

/*
 * The layout, in pages from BASE:
 *   [ 0,  8)  RW, written (seed 1)
 *   [ 8, 12)  read-only, written before mprotect (seed 2)
 *   [12, 16)  hole
 *   [16, 20)  PROT_NONE, written before mprotect (seed 3)
 *   [20, 24)  hole
 *   [24, 28)  RW, never touched (no page, no page table entry)
 *   [28, 32)  hole
 */
#define BASE 0x100000000000UL /* 16 TiB: far below mmap_base, 2 MiB aligned */
#define AT(pg) (BASE + (unsigned long)(pg)*PAGE_SIZE)
#define SPAN 32
#define RW (PROT_READ | PROT_WRITE)
#define PRIV_ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static struct mm_struct *setup_layout(void)
{
	struct mm_struct *mm = new_mm();
	cr_assert_eq(mm_mmap(mm, AT(0), 12 * PAGE_SIZE, RW, PRIV_ANON | MAP_FIXED, NULL, 0),
		     (long)AT(0));
	fill_pattern(mm, AT(0), 8 * PAGE_SIZE, 1);
	fill_pattern(mm, AT(8), 4 * PAGE_SIZE, 2);
	cr_assert_eq(mm_mprotect(mm, AT(8), 4 * PAGE_SIZE, PROT_READ), 0);
	cr_assert_eq(mm_mmap(mm, AT(16), 4 * PAGE_SIZE, RW, PRIV_ANON | MAP_FIXED, NULL, 0),
		     (long)AT(16));
	fill_pattern(mm, AT(16), 4 * PAGE_SIZE, 3);
	cr_assert_eq(mm_mprotect(mm, AT(16), 4 * PAGE_SIZE, PROT_NONE), 0);
	cr_assert_eq(mm_mmap(mm, AT(24), 4 * PAGE_SIZE, RW, PRIV_ANON | MAP_FIXED, NULL, 0),
		     (long)AT(24));

	/* Sanity of the layout itself, so the cases below mean what they say. */
	cr_assert_eq(mm->mm_mt.nr, 4, "layout has %zu VMAs, want 4", mm->mm_mt.nr);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 16);
	uint64_t pm[SPAN];
	cr_assert_eq(mm_pagemap_read(mm, AT(0), SPAN, pm), 0);
	for (int i = 0; i < SPAN; i++) {
		bool want = i < 12 || (i >= 16 && i < 20);
		cr_assert_eq(!!(pm[i] & PM_PRESENT), want, "layout page %d present=%d", i,
			     !!(pm[i] & PM_PRESENT));
	}
	return mm;
}

/* What a row compares before and after: the span, pages [0, 12) read back through the CPU. */
static const struct snapshot_spec layout_spec = {
	.base = AT(0),
	.npages = SPAN,
	.cpu_read_len = 12 * PAGE_SIZE,
};

enum op {
	OP_MMAP,
	OP_MUNMAP,
	OP_MPROTECT,
	OP_MADVISE,
	OP_READ,
	OP_WRITE,
	OP_MEMSET,
	OP_FETCH_ADD,
	OP_XCHG,
	OP_CMPXCHG,	  /* expected value differs from memory */
	OP_CMPXCHG_MATCH, /* expected value is what memory holds (read first) */
	OP_PAGEMAP,
};

struct bad_call {
	const char *what;
	enum op op;
	unsigned long addr;
	unsigned long len;
	long arg;  /* prot, advice, or the value for atomics */
	int flags; /* mmap flags */
	unsigned long off;
	long want;
};

static long run_call(struct mm_struct *mm, const struct bad_call *c)
{
	long ret = 0;
	switch (c->op) {
	case OP_MMAP:
		return mm_mmap(mm, c->addr, c->len, (int)c->arg, c->flags, NULL, c->off);
	case OP_MUNMAP:
		return mm_munmap(mm, c->addr, c->len);
	case OP_MPROTECT:
		return mm_mprotect(mm, c->addr, c->len, (int)c->arg);
	case OP_MADVISE:
		return mm_madvise(mm, c->addr, c->len, (int)c->arg);
	case OP_READ: {
		uint8_t *buf = malloc(c->len);
		cr_assert(buf);
		memset(buf, 0xa5, c->len);
		ret = cpu_read(mm, c->addr, buf, c->len);
		if (ret)
			for (size_t i = 0; i < c->len; i++)
				if (buf[i] != 0xa5) {
					cr_expect_fail("%s: failed read copied byte %zu (%#x)",
						       c->what, i, buf[i]);
					break;
				}
		free(buf);
		return ret;
	}
	case OP_WRITE: {
		uint8_t *buf = malloc(c->len);
		cr_assert(buf);
		memset(buf, 0x5a, c->len);
		ret = cpu_write(mm, c->addr, buf, c->len);
		free(buf);
		return ret;
	}
	case OP_MEMSET:
		return cpu_memset(mm, c->addr, 0x5a, c->len);
	case OP_FETCH_ADD: {
		uint64_t old = 0x1111;
		return cpu_atomic_fetch_add_u64(mm, c->addr, (uint64_t)c->arg, &old);
	}
	case OP_XCHG: {
		uint64_t old = 0x1111;
		return cpu_atomic_xchg_u64(mm, c->addr, (uint64_t)c->arg, &old);
	}
	case OP_CMPXCHG: {
		uint64_t prev = 0, cur = 0;
		/* Pick an expected value that is certainly not in memory. */
		if (cpu_read(mm, c->addr & ~7UL, &cur, sizeof(cur)) == 0)
			cur = ~cur;
		return cpu_atomic_cmpxchg_u64(mm, c->addr, cur, (uint64_t)c->arg, &prev);
	}
	case OP_CMPXCHG_MATCH: {
		uint64_t prev = 0, cur = 0;
		cr_assert_eq(cpu_read(mm, c->addr & ~7UL, &cur, sizeof(cur)), 0, "%s: setup read",
			     c->what);
		return cpu_atomic_cmpxchg_u64(mm, c->addr, cur, (uint64_t)c->arg, &prev);
	}
	case OP_PAGEMAP: {
		uint64_t out[4] = {0x77, 0x77, 0x77, 0x77};
		ret = mm_pagemap_read(mm, c->addr, c->len, out);
		if (ret)
			for (int i = 0; i < 4; i++)
				cr_expect_eq(out[i], 0x77ULL, "%s: failed pagemap wrote entry %d",
					     c->what, i);
		return ret;
	}
	}
	cr_assert_fail("bad op");
	return 0;
}

static void run_table(const struct bad_call *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct bad_call *c = &calls[i];
		struct mm_struct *mm = setup_layout();
		struct mm_snapshot before, after;
		mm_snapshot_take(&before, mm, &layout_spec);
		long ret = run_call(mm, c);
		cr_expect_eq(ret, c->want, "%s: returned %ld, want %ld", c->what, ret, c->want);
		mm_snapshot_take(&after, mm, &layout_spec);
		mm_snapshot_expect_same(c->what, &before, &after);
		mm_snapshot_free(&before);
		mm_snapshot_free(&after);
		/* The data is still the data. */
		check_pattern(mm, AT(0), 8 * PAGE_SIZE, 1);
		check_pattern(mm, AT(8), 4 * PAGE_SIZE, 2);
		mmput(mm);
	}
}

#define N(t) (sizeof(t) / sizeof((t)[0]))
#define P PAGE_SIZE

/* ---- mm_mmap ---- */

static const struct bad_call mmap_calls[] = {
	{"mmap len 0", OP_MMAP, 0, 0, RW, PRIV_ANON, 0, -EINVAL},
	{"mmap len 0 with a hint", OP_MMAP, AT(40), 0, RW, PRIV_ANON, 0, -EINVAL},
	{"mmap len 0 MAP_FIXED over data", OP_MMAP, AT(0), 0, RW, PRIV_ANON | MAP_FIXED, 0,
	 -EINVAL},
	{"mmap neither private nor shared", OP_MMAP, 0, P, RW, MAP_ANONYMOUS, 0, -EINVAL},
	{"mmap neither private nor shared, MAP_FIXED over data", OP_MMAP, AT(0), 4 * P, RW,
	 MAP_ANONYMOUS | MAP_FIXED, 0, -EINVAL},
	{"mmap MAP_FIXED unaligned", OP_MMAP, AT(0) + 1, P, RW, PRIV_ANON | MAP_FIXED, 0, -EINVAL},
	{"mmap MAP_FIXED unaligned by 2048", OP_MMAP, AT(4) + 2048, P, RW, PRIV_ANON | MAP_FIXED, 0,
	 -EINVAL},
	{"mmap MAP_FIXED_NOREPLACE unaligned", OP_MMAP, AT(40) + 8, P, RW,
	 PRIV_ANON | MAP_FIXED_NOREPLACE, 0, -EINVAL},
	{"mmap MAP_FIXED_NOREPLACE over data", OP_MMAP, AT(0), 8 * P, RW,
	 PRIV_ANON | MAP_FIXED_NOREPLACE, 0, -EEXIST},
	{"mmap MAP_FIXED_NOREPLACE over the tail of RW and the RO part", OP_MMAP, AT(7), 2 * P, RW,
	 PRIV_ANON | MAP_FIXED_NOREPLACE, 0, -EEXIST},
	{"mmap MAP_FIXED_NOREPLACE from a hole into PROT_NONE", OP_MMAP, AT(12), 5 * P, RW,
	 PRIV_ANON | MAP_FIXED_NOREPLACE, 0, -EEXIST},
	{"mmap MAP_FIXED_NOREPLACE from a hole over the untouched part", OP_MMAP, AT(20), 16 * P,
	 RW, PRIV_ANON | MAP_FIXED_NOREPLACE, 0, -EEXIST},
	{"mmap unaligned offset", OP_MMAP, 0, P, RW, PRIV_ANON, 1, -EINVAL},
	{"mmap unaligned offset, MAP_FIXED over data", OP_MMAP, AT(0), 4 * P, RW,
	 PRIV_ANON | MAP_FIXED, 2048, -EINVAL},
	/* PAGE_ALIGN(~0UL) wraps to 0: Linux's "if (!len) return -ENOMEM". */
	{"mmap len ~0", OP_MMAP, 0, ~0UL, RW, PRIV_ANON, 0, -ENOMEM},
	{"mmap len ~0 - PAGE_SIZE + 2", OP_MMAP, 0, ~0UL - P + 2, RW, PRIV_ANON, 0, -ENOMEM},
	{"mmap len ~0 MAP_FIXED over data", OP_MMAP, AT(0), ~0UL, RW, PRIV_ANON | MAP_FIXED, 0,
	 -ENOMEM},
	{"mmap len larger than the address space", OP_MMAP, 0, TASK_SIZE + P, RW, PRIV_ANON, 0,
	 -ENOMEM},
	{"mmap no MAP_ANONYMOUS, no file", OP_MMAP, 0, P, RW, MAP_PRIVATE, 0, -EBADF},
	{"mmap no MAP_ANONYMOUS, no file, MAP_FIXED over data", OP_MMAP, AT(0), 4 * P, RW,
	 MAP_PRIVATE | MAP_FIXED, 0, -EBADF},
	{"mmap MAP_FIXED past TASK_SIZE", OP_MMAP, TASK_SIZE - P, 2 * P, RW, PRIV_ANON | MAP_FIXED,
	 0, -ENOMEM},
	{"mmap MAP_FIXED at TASK_SIZE", OP_MMAP, TASK_SIZE, P, RW, PRIV_ANON | MAP_FIXED, 0,
	 -ENOMEM},
	{"mmap MAP_FIXED over data, running past TASK_SIZE", OP_MMAP, AT(0), TASK_SIZE, RW,
	 PRIV_ANON | MAP_FIXED, 0, -ENOMEM},
	{"mmap MAP_FIXED_NOREPLACE past TASK_SIZE", OP_MMAP, TASK_SIZE - P, 2 * P, RW,
	 PRIV_ANON | MAP_FIXED_NOREPLACE, 0, -ENOMEM},
};

Test(bad_input, mm_mmap)
{
	run_table(mmap_calls, N(mmap_calls));
}

/* PRIVATE|SHARED is MAP_SHARED_VALIDATE: an anonymous one is -EINVAL on Linux
 * (do_mmap's anonymous switch only knows MAP_SHARED and MAP_PRIVATE; checked on 6.18). */
static const struct bad_call shared_validate_calls[] = {
	{"mmap both private and shared", OP_MMAP, 0, P, RW,
	 MAP_PRIVATE | MAP_SHARED | MAP_ANONYMOUS, 0, -EINVAL},
	{"mmap both private and shared, MAP_FIXED over data", OP_MMAP, AT(0), 4 * P, RW,
	 MAP_PRIVATE | MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, 0, -EINVAL},
};

Test(bad_input, mm_mmap_both_sharing_types)
{
	run_table(shared_validate_calls, N(shared_validate_calls));
}

/* Linux's mmap ignores prot bits it does not know (only mprotect checks them). */
Test(bad_input, mm_mmap_ignores_unknown_prot_bits)
{
	struct mm_struct *mm = new_mm();
	long a = mm_mmap(mm, 0, P, 0x10, PRIV_ANON, NULL, 0);
	cr_assert(a > 0, "mmap(prot 0x10) = %ld, Linux maps it as PROT_NONE", a);
	uint8_t b;
	cr_assert_eq(cpu_read(mm, (unsigned long)a, &b, 1), -EFAULT);
	long c = mm_mmap(mm, 0, P, RW | 0x10, PRIV_ANON, NULL, 0);
	cr_assert(c > 0, "mmap(prot RW|0x10) = %ld", c);
	uint64_t v = 0x0123456789abcdefULL, r = 0;
	cr_assert_eq(cpu_write(mm, (unsigned long)c, &v, sizeof(v)), 0);
	cr_assert_eq(cpu_read(mm, (unsigned long)c, &r, sizeof(r)), 0);
	cr_assert_eq(r, v);
	mmput(mm);
}

/* ---- mm_munmap ---- */

static const struct bad_call munmap_calls[] = {
	{"munmap unaligned", OP_MUNMAP, AT(0) + 1, P, 0, 0, 0, -EINVAL},
	{"munmap unaligned by 2048", OP_MUNMAP, AT(4) + 2048, 2 * P, 0, 0, 0, -EINVAL},
	{"munmap len 0", OP_MUNMAP, AT(0), 0, 0, 0, 0, -EINVAL},
	{"munmap len ~0", OP_MUNMAP, AT(0), ~0UL, 0, 0, 0, -EINVAL},
	{"munmap addr+len wraps", OP_MUNMAP, AT(0), 0UL - 2 * P, 0, 0, 0, -EINVAL},
	{"munmap past TASK_SIZE", OP_MUNMAP, TASK_SIZE - P, 2 * P, 0, 0, 0, -EINVAL},
	{"munmap at TASK_SIZE", OP_MUNMAP, TASK_SIZE, P, 0, 0, 0, -EINVAL},
	{"munmap at 1 << 47", OP_MUNMAP, 1UL << 47, P, 0, 0, 0, -EINVAL},
	{"munmap at the top of the 64-bit space", OP_MUNMAP, ~0UL & PAGE_MASK, P, 0, 0, 0, -EINVAL},
	{"munmap over data, running past TASK_SIZE", OP_MUNMAP, AT(0), TASK_SIZE, 0, 0, 0, -EINVAL},
	/* Not errors, and nothing there to change. */
	{"munmap of a hole", OP_MUNMAP, AT(12), 4 * P, 0, 0, 0, 0},
	{"munmap of a hole, unaligned length", OP_MUNMAP, AT(20), 4 * P - 100, 0, 0, 0, 0},
	{"munmap of the last page below TASK_SIZE (unmapped)", OP_MUNMAP, TASK_SIZE - P, P, 0, 0, 0,
	 0},
};

Test(bad_input, mm_munmap)
{
	run_table(munmap_calls, N(munmap_calls));
}

/* ---- mm_mprotect ---- */

static const struct bad_call mprotect_calls[] = {
	{"mprotect unaligned", OP_MPROTECT, AT(0) + 1, P, PROT_READ, 0, 0, -EINVAL},
	/* Linux checks alignment before it looks at the length. */
	{"mprotect unaligned, len 0", OP_MPROTECT, AT(0) + 1, 0, PROT_READ, 0, 0, -EINVAL},
	{"mprotect unknown prot bit 0x10", OP_MPROTECT, AT(0), P, 0x10 | PROT_READ, 0, 0, -EINVAL},
	{"mprotect unknown prot bit 0x20", OP_MPROTECT, AT(0), 8 * P, 0x20, 0, 0, -EINVAL},
	/* PROT_GROWSDOWN on a VMA that is not VM_GROWSDOWN: -EINVAL on Linux. */
	{"mprotect PROT_GROWSDOWN", OP_MPROTECT, AT(0), P, PROT_GROWSDOWN | PROT_READ, 0, 0,
	 -EINVAL},
	{"mprotect PROT_GROWSDOWN|PROT_GROWSUP", OP_MPROTECT, AT(0), P,
	 PROT_GROWSDOWN | PROT_GROWSUP | PROT_READ, 0, 0, -EINVAL},
	{"mprotect len 0", OP_MPROTECT, AT(0), 0, PROT_READ, 0, 0, 0},
	{"mprotect len 0 of a hole", OP_MPROTECT, AT(12), 0, PROT_READ, 0, 0, 0},
	/* Linux returns 0 for len 0 before it validates prot. */
	{"mprotect len 0, unknown prot bit", OP_MPROTECT, AT(0), 0, 0x10, 0, 0, 0},
	{"mprotect of a hole", OP_MPROTECT, AT(12), 4 * P, PROT_READ, 0, 0, -ENOMEM},
	{"mprotect of a hole, unaligned length", OP_MPROTECT, AT(20), 100, PROT_READ, 0, 0,
	 -ENOMEM},
	/* The first VMA starts after @start: Linux fails before changing anything. */
	{"mprotect from a hole into PROT_NONE", OP_MPROTECT, AT(12), 8 * P, PROT_READ, 0, 0,
	 -ENOMEM},
	{"mprotect from a hole over everything after", OP_MPROTECT, AT(12), 20 * P, RW, 0, 0,
	 -ENOMEM},
	/* do_mprotect_pkey: "end = start + len; if (end <= start) return -ENOMEM". */
	{"mprotect len ~0 (wraps)", OP_MPROTECT, AT(0), ~0UL, PROT_READ, 0, 0, -ENOMEM},
	{"mprotect addr+len wraps", OP_MPROTECT, AT(0), 0UL - 2 * P, PROT_READ, 0, 0, -ENOMEM},
	{"mprotect past TASK_SIZE", OP_MPROTECT, TASK_SIZE - P, 2 * P, PROT_READ, 0, 0, -ENOMEM},
	/* Not errors: the protection asked for is the one there. */
	{"mprotect RW part to RW", OP_MPROTECT, AT(0), 8 * P, RW, 0, 0, 0},
	{"mprotect RO part to RO", OP_MPROTECT, AT(8), 4 * P, PROT_READ, 0, 0, 0},
	{"mprotect PROT_NONE part to PROT_NONE", OP_MPROTECT, AT(16), 4 * P, PROT_NONE, 0, 0, 0},
};

Test(bad_input, mm_mprotect)
{
	run_table(mprotect_calls, N(mprotect_calls));
}

/* ---- mm_madvise ---- */

static const struct bad_call madvise_calls[] = {
	{"madvise unaligned", OP_MADVISE, AT(0) + 1, P, MADV_DONTNEED, 0, 0, -EINVAL},
	{"madvise unaligned, len 0", OP_MADVISE, AT(0) + 1, 0, MADV_DONTNEED, 0, 0, -EINVAL},
	{"madvise unknown advice 12345", OP_MADVISE, AT(0), 8 * P, 12345, 0, 0, -EINVAL},
	{"madvise advice -1", OP_MADVISE, AT(0), 8 * P, -1, 0, 0, -EINVAL},
	/* Linux validates the advice before it looks at the length. */
	{"madvise unknown advice, len 0", OP_MADVISE, AT(0), 0, 12345, 0, 0, -EINVAL},
	{"madvise MADV_DONTNEED len 0", OP_MADVISE, AT(0), 0, MADV_DONTNEED, 0, 0, 0},
	{"madvise MADV_DONTNEED len 0 of a hole", OP_MADVISE, AT(12), 0, MADV_DONTNEED, 0, 0, 0},
	/* PAGE_ALIGN(len) wraps to 0 for a non-zero len, or end < start: -EINVAL. */
	{"madvise len ~0", OP_MADVISE, AT(0), ~0UL, MADV_DONTNEED, 0, 0, -EINVAL},
	{"madvise addr+len wraps", OP_MADVISE, AT(0), 0UL - 2 * P, MADV_DONTNEED, 0, 0, -EINVAL},
	{"madvise MADV_DONTNEED on a hole", OP_MADVISE, AT(12), 4 * P, MADV_DONTNEED, 0, 0,
	 -ENOMEM},
	{"madvise MADV_DONTNEED on a hole, unaligned len", OP_MADVISE, AT(20), 5, MADV_DONTNEED, 0,
	 0, -ENOMEM},
	{"madvise MADV_DONTNEED past TASK_SIZE", OP_MADVISE, TASK_SIZE - P, 2 * P, MADV_DONTNEED, 0,
	 0, -ENOMEM},
	{"madvise MADV_FREE on a hole", OP_MADVISE, AT(28), 4 * P, MADV_FREE, 0, 0, -ENOMEM},
	{"madvise MADV_HUGEPAGE on a hole", OP_MADVISE, AT(12), 4 * P, MADV_HUGEPAGE, 0, 0,
	 -ENOMEM},
	{"madvise MADV_NOHUGEPAGE on a hole", OP_MADVISE, AT(20), 4 * P, MADV_NOHUGEPAGE, 0, 0,
	 -ENOMEM},
	{"madvise MADV_WILLNEED on a hole", OP_MADVISE, AT(12), 4 * P, MADV_WILLNEED, 0, 0,
	 -ENOMEM},
	{"madvise MADV_NORMAL on a hole", OP_MADVISE, AT(12), 4 * P, MADV_NORMAL, 0, 0, -ENOMEM},
	{"madvise MADV_COLLAPSE on a hole", OP_MADVISE, AT(12), 4 * P, MADV_COLLAPSE, 0, 0,
	 -ENOMEM},
	/* Not errors, no visible effect on anonymous memory. */
	{"madvise MADV_WILLNEED on data", OP_MADVISE, AT(0), 12 * P, MADV_WILLNEED, 0, 0, 0},
	{"madvise MADV_NORMAL on data", OP_MADVISE, AT(0), 12 * P, MADV_NORMAL, 0, 0, 0},
};

Test(bad_input, mm_madvise)
{
	run_table(madvise_calls, N(madvise_calls));
}

/* ---- the CPU ---- */

static const struct bad_call cpu_calls[] = {
	{"read a hole", OP_READ, AT(12), 8, 0, 0, 0, -EFAULT},
	{"read a hole at its last byte", OP_READ, AT(16) - 1, 1, 0, 0, 0, -EFAULT},
	{"read PROT_NONE", OP_READ, AT(16), 8, 0, 0, 0, -EFAULT},
	{"read PROT_NONE, whole part", OP_READ, AT(16), 4 * P, 0, 0, 0, -EFAULT},
	{"read from RO into a hole", OP_READ, AT(11), 2 * P, 0, 0, 0, -EFAULT},
	{"read from RO into a hole, one byte over", OP_READ, AT(12) - 8, 9, 0, 0, 0, -EFAULT},
	{"read from RW over RO into a hole", OP_READ, AT(0), 13 * P, 0, 0, 0, -EFAULT},
	{"read from a hole into PROT_NONE", OP_READ, AT(15), 2 * P, 0, 0, 0, -EFAULT},
	{"read from the untouched part into a hole", OP_READ, AT(26), 3 * P, 0, 0, 0, -EFAULT},
	{"read from a hole into the untouched part", OP_READ, AT(23), 2 * P, 0, 0, 0, -EFAULT},
	{"read at the top of the user space", OP_READ, TASK_SIZE - 8, 16, 0, 0, 0, -EFAULT},
	{"read that wraps around the address space", OP_READ, ~0UL - 7, 16, 0, 0, 0, -EFAULT},
	{"write a hole", OP_WRITE, AT(12), 8, 0, 0, 0, -EFAULT},
	{"write PROT_NONE", OP_WRITE, AT(16), 8, 0, 0, 0, -EFAULT},
	{"write read-only", OP_WRITE, AT(8), 8, 0, 0, 0, -EFAULT},
	{"write read-only, last byte", OP_WRITE, AT(12) - 1, 1, 0, 0, 0, -EFAULT},
	{"write from RW into RO", OP_WRITE, AT(8) - 16, 32, 0, 0, 0, -EFAULT},
	{"write all of RW and one byte of RO", OP_WRITE, AT(0), 8 * P + 1, 0, 0, 0, -EFAULT},
	{"write from RW over RO into a hole", OP_WRITE, AT(0), 14 * P, 0, 0, 0, -EFAULT},
	{"write from the untouched part into a hole", OP_WRITE, AT(27), 2 * P, 0, 0, 0, -EFAULT},
	{"write from a hole into the untouched part", OP_WRITE, AT(23), 2 * P, 0, 0, 0, -EFAULT},
	{"write from a hole into PROT_NONE", OP_WRITE, AT(15), P + 8, 0, 0, 0, -EFAULT},
	{"write at the top of the user space", OP_WRITE, TASK_SIZE - 8, 16, 0, 0, 0, -EFAULT},
	{"write that wraps around the address space", OP_WRITE, ~0UL - 7, 16, 0, 0, 0, -EFAULT},
	{"memset a hole", OP_MEMSET, AT(12), 8, 0, 0, 0, -EFAULT},
	{"memset read-only", OP_MEMSET, AT(8), P, 0, 0, 0, -EFAULT},
	{"memset PROT_NONE", OP_MEMSET, AT(16), P, 0, 0, 0, -EFAULT},
	{"memset from RW into RO", OP_MEMSET, AT(7), 2 * P, 0, 0, 0, -EFAULT},
	{"memset from the untouched part into a hole", OP_MEMSET, AT(24), 5 * P, 0, 0, 0, -EFAULT},
};

Test(bad_input, cpu_access)
{
	run_table(cpu_calls, N(cpu_calls));
}

static const struct bad_call atomic_calls[] = {
	{"fetch_add unaligned (+4)", OP_FETCH_ADD, AT(0) + 4, 0, 1, 0, 0, -EINVAL},
	{"fetch_add unaligned (+1)", OP_FETCH_ADD, AT(1) + 1, 0, 1, 0, 0, -EINVAL},
	{"fetch_add unaligned in a hole", OP_FETCH_ADD, AT(12) + 4, 0, 1, 0, 0, -EINVAL},
	{"fetch_add unaligned in the untouched part", OP_FETCH_ADD, AT(24) + 2, 0, 1, 0, 0,
	 -EINVAL},
	{"fetch_add a hole", OP_FETCH_ADD, AT(12), 0, 1, 0, 0, -EFAULT},
	{"fetch_add read-only", OP_FETCH_ADD, AT(8), 0, 1, 0, 0, -EFAULT},
	{"fetch_add PROT_NONE", OP_FETCH_ADD, AT(16), 0, 1, 0, 0, -EFAULT},
	{"xchg unaligned", OP_XCHG, AT(0) + 4, 0, 1, 0, 0, -EINVAL},
	{"xchg a hole", OP_XCHG, AT(20), 0, 1, 0, 0, -EFAULT},
	{"xchg read-only", OP_XCHG, AT(11) + 8, 0, 1, 0, 0, -EFAULT},
	{"xchg PROT_NONE", OP_XCHG, AT(19), 0, 1, 0, 0, -EFAULT},
	{"cmpxchg unaligned", OP_CMPXCHG, AT(0) + 6, 0, 1, 0, 0, -EINVAL},
	{"cmpxchg a hole", OP_CMPXCHG, AT(28), 0, 1, 0, 0, -EFAULT},
	/* A locked cmpxchg needs write permission even when the compare fails. */
	{"cmpxchg read-only, compare fails", OP_CMPXCHG, AT(8), 0, 1, 0, 0, -EFAULT},
	{"cmpxchg read-only, compare would succeed", OP_CMPXCHG_MATCH, AT(9), 0, 1, 0, 0, -EFAULT},
	{"cmpxchg PROT_NONE", OP_CMPXCHG, AT(16) + 64, 0, 1, 0, 0, -EFAULT},
	{"cmpxchg RW unaligned, compare would succeed", OP_CMPXCHG_MATCH, AT(2) + 4, 0, 1, 0, 0,
	 -EINVAL},
};

Test(bad_input, cpu_atomics)
{
	run_table(atomic_calls, N(atomic_calls));
}

/* ---- introspection ---- */

static const struct bad_call pagemap_calls[] = {
	{"pagemap unaligned (+1)", OP_PAGEMAP, AT(0) + 1, 1, 0, 0, 0, -EINVAL},
	{"pagemap unaligned (+4095)", OP_PAGEMAP, AT(1) - 1, 4, 0, 0, 0, -EINVAL},
	{"pagemap unaligned in a hole", OP_PAGEMAP, AT(12) + 8, 2, 0, 0, 0, -EINVAL},
};

Test(bad_input, mm_pagemap_read)
{
	run_table(pagemap_calls, N(pagemap_calls));
}

/* ---- machines ---- */

Test(bad_input, uhmm_machine_create_bad_sizes)
{
	static const unsigned long bad[] = {
		PAGE_SIZE, /* not a multiple of 2 MiB */
		1UL << 20, /* 1 MiB */
		3UL << 20, /* 3 MiB */
		(2UL << 20) + PAGE_SIZE,
		(64UL << 20) - 1,
		~0UL,		 /* not a multiple, and too large */
		~0UL & PMD_MASK, /* a multiple, far too large */
		1UL << 62,	 /* 2^50 pages: more than 40-bit PFNs can number */
	};
	unsigned long free_before = uhmm_nr_free_pages(machine);
	for (size_t i = 0; i < N(bad); i++) {
		struct uhmm_machine_config cfg = {.ram_size = bad[i], .thp_enabled = THP_MADVISE};
		struct uhmm_machine *m = uhmm_machine_create(&cfg);
		cr_expect_eq(PTR_ERR(m), -EINVAL, "ram_size %#lx: got %ld, want -EINVAL", bad[i],
			     PTR_ERR(m));
		if (!IS_ERR_OR_NULL(m))
			cr_expect_eq(uhmm_machine_destroy(m), 0);
	}
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);

	/* The smallest good size works, so the rejections above mean something. */
	struct uhmm_machine_config ok = {.ram_size = 2UL << 20};
	struct uhmm_machine *m = uhmm_machine_create(&ok);
	cr_assert(!IS_ERR_OR_NULL(m), "2 MiB machine: %ld", PTR_ERR(m));
	cr_assert_eq(uhmm_totalram_pages(m), 512UL);
	cr_assert_eq(uhmm_machine_destroy(m), 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
}

Test(bad_input, uhmm_machine_destroy_busy_with_mm)
{
	struct mm_struct *mm = new_mm();
	/* An empty address space is enough to keep the machine alive. */
	cr_assert_eq(uhmm_machine_destroy(machine), -EBUSY);

	unsigned long a = map_anon(mm, 0, 4 * P, RW, 0);
	fill_pattern(mm, a, 4 * P, 9);
	unsigned long free_before = uhmm_nr_free_pages(machine);
	long rss_before = mm_get_rss(mm, MM_ANONPAGES);
	uint64_t pm_before = pagemap(mm, a);

	cr_assert_eq(uhmm_machine_destroy(machine), -EBUSY);

	/* Nothing was freed: the mm still works and holds its data. */
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), rss_before);
	cr_assert_eq(pagemap(mm, a), pm_before);
	check_pattern(mm, a, 4 * P, 9);
	unsigned long b = map_anon(mm, 0, 2 * P, RW, 0);
	fill_pattern(mm, b, 2 * P, 10);
	check_pattern(mm, b, 2 * P, 10);
	assert_audit_clean();
	mmput(mm);
}

Test(bad_input, uhmm_machine_destroy_busy_with_page)
{
	unsigned long free_before = uhmm_nr_free_pages(machine);
	struct page *page = alloc_pages(machine, __GFP_ZERO, 0);
	cr_assert_not_null(page);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before - 1);
	cr_assert_eq(uhmm_machine_destroy(machine), -EBUSY);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before - 1);
	__free_pages(page, 0);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_before);
}
