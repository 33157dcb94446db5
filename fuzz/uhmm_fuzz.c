/* SPDX-License-Identifier: MIT */
/*
 * fuzz/uhmm_fuzz.c - the libFuzzer harness: each input is a sequence of
 * operations on one address space and one or two dmirror devices of a
 * 64 MiB machine, checked against a shadow model.  The machine is built
 * once per process and must be back to its clean state (every page free)
 * after each input; UHMM_FUZZ_FRESH=1 builds one per input instead, and
 * UHMM_FUZZ_TRACE=1 prints every operation and its result.
 *
 * Built by `make fuzz` with clang -fsanitize=fuzzer,address,undefined;
 * the meson builds link it with fuzz/replay.c instead, which runs every
 * file of fuzz/corpus through LLVMFuzzerTestOneInput (the "fuzz_replay"
 * test, plain and under ASan+UBSan).
 *
 * The byte format
 * ---------------
 * Byte 0 is a header (FUZZ_HDR_* in fuzz/fuzz_ops.h): THP "always",
 * first device coherent (minor 2) instead of private (minor 0), open a
 * second device (minor 1 or 3), no huge zero page.  Then up to
 * FUZZ_MAX_OPS operations follow, each an opcode byte (taken modulo
 * FOP_NR, enum fuzz_op) and its arguments.  Reading past the end yields
 * zero bytes, so every input is valid.  Arguments:
 *
 *   A (address, 1 mode byte m, then):  m&3 = 0: a page of the window
 *     (u16: page index -32 .. FUZZ_WIN_PAGES+31, so the edges are hit);
 *     1: a 2 MiB boundary of the window (u8); 2: any byte of the window
 *     +-4 KiB (u32, unaligned); 3: a special value chosen by m>>2: 0,
 *     PAGE_SIZE, TASK_SIZE-PAGE_SIZE, TASK_SIZE, 2^47, -PAGE_SIZE, ~0,
 *     or a raw u64.
 *   L (length in bytes, mode byte m): m&3 = 0: 1..16 pages (u8), or for
 *     CPU accesses 1..8192 bytes (u16); 1: 1..FUZZ_WIN_PAGES pages (u16);
 *     2: 1..4 PMDs (u8); 3: special by m>>2: 0, 1, PAGE_SIZE-1,
 *     PAGE_SIZE+1, TASK_SIZE, -PAGE_SIZE, ~0, raw u64.
 *   N (device page count): as L in pages; specials 0, 2^52 (the shift
 *     wraps to 0), 2^52+1, ~0, raw u64, ...
 *   P (prot, 1 byte): p&7 picks NONE, R, RW, W, RX, RWX, X, or a raw u32.
 *   D (device, 1 byte): bit 0 picks the second device (if open), bit 1
 *     passes a NULL buffer.
 *   F (fault_attr, 5 bytes): probability (%101), interval (%8), times
 *     (255 = unlimited), min_order (%10: 9 fails THP/device folios only),
 *     seed.
 *
 *   MMAP A L P flags(u8: FIXED, FIXED_NOREPLACE, POPULATE, NORESERVE,
 *     bit 4: raw u32 flags)        MUNMAP A L        MPROTECT A L P
 *   MREMAP A(old) L(old) L(new) flags(u8: MAYMOVE, FIXED, DONTUNMAP,
 *     bit 3: raw u32) A(new)       MADVISE A L advice(u8 %32 into a table
 *     of every advice value, invalid ones and a raw u32)
 *   CPU_WRITE A L seed(u8; bit 0: memset instead of a pattern)
 *   CPU_READ A L                   ATOMIC kind(u8: add/xchg/cmpxchg) A u32
 *   FORK (a COW child; replaces the previous one)
 *   CHILD_WRITE A L seed           CHILD_READ A L      CHILD_EXIT
 *   TO_DEV D A N  TO_SYS D A N     (HMM_DMIRROR_MIGRATE_TO_*)
 *   DEV_READ D A N                 DEV_WRITE D A N seed
 *   DEV_SNAPSHOT D A N             DEV_RELEASE D
 *   DEV_IOCTL D request(u8: EXCLUSIVE, CHECK_EXCLUSIVE, FLAGS, unknown
 *     numbers, raw u32) A N
 *   FAIL_RAM mode(u8 < 64: clear) F     FAIL_DEV D mode F (bit 7 of
 *     mode: a bad minor)
 *   DROP_LAZYFREE (reclaim MADV_FREE pages)   CHECK (full verify + audit)
 *   SET_THP mode(u8 %3)            MAP_THP pmd(u8) npmds(u8) seed
 *
 * The shadow model
 * ----------------
 * For each page of the window [FUZZ_WIN_BASE, +8 MiB) the model knows
 * whether it is mapped (or does not know), its protection, and its bytes
 * (or does not know them).  Operations whose effect it cannot predict
 * (raw flags, MAP_SHARED, partial failures, failures under injection, a
 * MADV_FREE page after reclaim) make the pages unknown; "wild" pages
 * (shared or aliased) never become known again until remapped.  Every
 * successful read is compared with the model, accesses the model knows
 * must fault must fail, accesses it knows must work must work (or fail
 * with -ENOMEM while RAM allocations are being failed), the VMAs of the
 * window are compared with the model after every failed operation and at
 * every CHECK, and uhmm_audit() + dmirror_audit() run every
 * FUZZ_AUDIT_EVERY operations and at the end.  Teardown clears injection,
 * verifies every known byte, closes the devices (evicting device memory),
 * verifies again, drops the mm and checks that every page of RAM and of
 * every device is free.  Any
 * violation prints a message and abort()s, which libFuzzer records as a
 * crash.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uhmm/dmirror.h>
#include <uhmm/hugetlb.h>
#include <uhmm/uhmm.h>

#include "fuzz_ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WIN_SIZE (FUZZ_WIN_PAGES * PAGE_SIZE)
#define WIN_END (FUZZ_WIN_BASE + WIN_SIZE)
#define BUF_SIZE ((FUZZ_WIN_PAGES + 1024) * PAGE_SIZE)
#define FUZZ_RAM_SIZE (64UL << 20)
#define FUZZ_AUDIT_EVERY 64

/* ---- the input reader ---- */

struct reader {
	const uint8_t *p;
	size_t n, i;
};

static uint8_t u8(struct reader *r) { return r->i < r->n ? r->p[r->i++] : 0; }
static uint16_t u16(struct reader *r) { return (uint16_t)(u8(r) | u8(r) << 8); }
static uint32_t u32(struct reader *r) { return (uint32_t)u16(r) | (uint32_t)u16(r) << 16; }
static uint64_t u64(struct reader *r) { return (uint64_t)u32(r) | (uint64_t)u32(r) << 32; }

static unsigned long special_value(struct reader *r, unsigned int which)
{
	static const unsigned long specials[7] = {
		0, PAGE_SIZE, TASK_SIZE - PAGE_SIZE, TASK_SIZE, 1UL << 47, -PAGE_SIZE, ~0UL,
	};
	return which < 7 ? specials[which] : u64(r);
}

static unsigned long read_addr(struct reader *r)
{
	uint8_t m = u8(r);

	switch (m & 3) {
	case 0:
		return FUZZ_WIN_BASE + ((long)(u16(r) % (FUZZ_WIN_PAGES + 64)) - 32) * (long)PAGE_SIZE;
	case 1:
		return FUZZ_WIN_BASE + (u8(r) % (FUZZ_WIN_PMDS + 1)) * PMD_SIZE;
	case 2:
		return FUZZ_WIN_BASE - PAGE_SIZE + u32(r) % (WIN_SIZE + 2 * PAGE_SIZE);
	default:
		return special_value(r, (m >> 2) & 7);
	}
}

static unsigned long read_len(struct reader *r, bool bytes)
{
	static const unsigned long specials[7] = {
		0, 1, PAGE_SIZE - 1, PAGE_SIZE + 1, TASK_SIZE, -PAGE_SIZE, ~0UL,
	};
	uint8_t m = u8(r);
	unsigned int which = (m >> 2) & 7;

	switch (m & 3) {
	case 0:
		return bytes ? 1 + u16(r) % 8192UL : (1 + u8(r) % 16UL) * PAGE_SIZE;
	case 1:
		return (1 + u16(r) % FUZZ_WIN_PAGES) * PAGE_SIZE;
	case 2:
		return (1 + u8(r) % 4) * PMD_SIZE;
	default:
		return which < 7 ? specials[which] : u64(r);
	}
}

static uint64_t read_npages(struct reader *r)
{
	static const uint64_t specials[7] = {
		0, 1UL << 52, (1UL << 52) + 1, ~0UL, FUZZ_WIN_PAGES + 1, 1UL << 35, 511,
	};
	uint8_t m = u8(r);
	unsigned int which = (m >> 2) & 7;

	switch (m & 3) {
	case 0:
		return 1 + u8(r) % 16;
	case 1:
		return 1 + u16(r) % FUZZ_WIN_PAGES;
	case 2:
		return 512 * (1 + u8(r) % 4);
	default:
		return which < 7 ? specials[which] : u64(r);
	}
}

static int read_prot(struct reader *r, bool *raw)
{
	static const int prots[7] = {
		PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_WRITE,
		PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC, PROT_EXEC,
	};
	uint8_t p = u8(r) & 7;

	*raw = p == 7;
	return p < 7 ? prots[p] : (int)u32(r);
}

/* ---- the shadow model ---- */

enum { M_NO, M_YES, M_UNK };
#define P_UNK 0x80

/**
 * struct spage - what the model knows about one page of the window.
 * @map: M_NO, M_YES or M_UNK.
 * @prot: PROT_* when @map is M_YES, or P_UNK.
 * @known: @data (NULL: zeros) is what the page holds.
 * @wild: shared or aliased memory: never known until mapped afresh.
 * @lazy: MADV_FREE was asked since the last CPU write.
 * @forkfl: fork advice (DONTFORK, WIPEONFORK...) may apply to it.
 * @data: the page's bytes, or NULL for zeros.
 */
struct spage {
	uint8_t map, prot;
	bool known, wild, lazy, forkfl;
	uint8_t *data;
};

struct shadow {
	struct spage pg[FUZZ_WIN_PAGES];
};

struct fuzz {
	struct uhmm_machine *machine;
	struct dmirror_module *mod;
	struct mm_struct *mm, *child;
	struct dmirror *dev[2];
	unsigned int minor[2];
	unsigned int ndev;
	struct shadow sh, csh;
	bool inject_ram, low_ram;
	unsigned int which;
	unsigned int audits;
	unsigned long op_index;
	int op;
};

static uint8_t *buf, *buf2;
/*
 * The machines (one per no_huge_zero_page setting) and their dmirror
 * modules outlive an input: building them (64 MiB of RAM, four devices of
 * 256 MiB) and tearing them down took half of each run.  Each input ends
 * with teardown()'s checks: every page of RAM and of every device free, no
 * failure injection left, the audits clean; so the next input starts from
 * what a fresh machine is, up to which free page comes first.
 * UHMM_FUZZ_FRESH=1 in the environment builds a fresh machine per input.
 */
static struct uhmm_machine *machines[2];
static struct dmirror_module *modules[2];
static const uint8_t zero_page[PAGE_SIZE];
static struct fuzz F;

/* UHMM_FUZZ_TRACE=1 in the environment prints each operation and its result. */
static bool trace;

static void __attribute__((format(printf, 1, 2))) trace_op(const char *fmt, ...)
{
	va_list ap;

	if (!trace)
		return;
	fprintf(stderr, "  [%lu] ", F.op_index);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void __attribute__((noreturn, format(printf, 1, 2))) fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "uhmm_fuzz: operation %lu (opcode %d): ", F.op_index, F.op);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static struct spage *spage_of(struct shadow *sh, unsigned long addr)
{
	if (addr < FUZZ_WIN_BASE || addr >= WIN_END)
		return NULL;
	return &sh->pg[(addr - FUZZ_WIN_BASE) >> PAGE_SHIFT];
}

/* The page range [*first, *last) of the window that [addr, addr + len) touches. */
static bool win_pages(unsigned long addr, unsigned long len, unsigned long *first,
		      unsigned long *last)
{
	unsigned long end = addr + len;

	if (len == 0)
		return false;
	if (end < addr)
		end = addr < WIN_END ? WIN_END : addr; /* wraps: up to the window's end */
	if (end <= FUZZ_WIN_BASE || addr >= WIN_END)
		return false;
	if (addr < FUZZ_WIN_BASE)
		addr = FUZZ_WIN_BASE;
	if (end > WIN_END)
		end = WIN_END;
	*first = (addr - FUZZ_WIN_BASE) >> PAGE_SHIFT;
	*last = (end - FUZZ_WIN_BASE + PAGE_SIZE - 1) >> PAGE_SHIFT;
	return *first < *last;
}

static uint8_t spage_byte(const struct spage *sp, unsigned long off)
{
	return sp->data ? sp->data[off] : 0;
}

static void spage_set_zero(struct spage *sp)
{
	free(sp->data);
	sp->data = NULL;
	sp->known = !sp->wild;
	sp->lazy = false;
}

static void spage_forget(struct spage *sp)
{
	free(sp->data);
	sp->data = NULL;
	sp->known = false;
}

static void spage_unmap(struct spage *sp)
{
	spage_forget(sp);
	sp->map = M_NO;
	sp->prot = 0;
	sp->wild = sp->lazy = sp->forkfl = false;
	sp->known = true;
}

/* A fresh private anonymous mapping: zeros. */
static void spage_fresh(struct spage *sp, int prot)
{
	spage_forget(sp);
	sp->map = M_YES;
	sp->prot = (uint8_t)prot;
	sp->wild = sp->lazy = sp->forkfl = false;
	sp->known = true;
}

/* Mapping and contents unknown: after an operation the model cannot predict. */
static void spage_unknown(struct spage *sp, bool wild)
{
	spage_forget(sp);
	sp->map = M_UNK;
	sp->prot = P_UNK;
	sp->wild = sp->wild || wild;
	sp->forkfl = true;
}

static void range_apply(struct shadow *sh, unsigned long addr, unsigned long len,
			void (*fn)(struct spage *sp))
{
	unsigned long first, last;

	if (!win_pages(addr, len, &first, &last))
		return;
	for (unsigned long i = first; i < last; i++)
		fn(&sh->pg[i]);
}

static void spage_unknown_tame(struct spage *sp) { spage_unknown(sp, false); }
static void spage_unknown_wild(struct spage *sp) { spage_unknown(sp, true); }
static void spage_contents_unknown(struct spage *sp) { spage_forget(sp); }

static void shadow_free(struct shadow *sh)
{
	for (unsigned long i = 0; i < FUZZ_WIN_PAGES; i++)
		free(sh->pg[i].data);
	memset(sh, 0, sizeof(*sh));
}

static void shadow_init(struct shadow *sh)
{
	for (unsigned long i = 0; i < FUZZ_WIN_PAGES; i++)
		sh->pg[i] = (struct spage){ .map = M_NO, .known = true };
}

static uint8_t pattern(unsigned int seed, unsigned long addr)
{
	uint32_t x = (uint32_t)addr * 2654435761u + (seed + 1) * 40503u + (uint32_t)(addr >> 12);
	return (uint8_t)(x >> 24 ^ x >> 8);
}

/* Store @len bytes of @src at @addr in the model (the access succeeded). */
static void shadow_store(struct shadow *sh, unsigned long addr, const uint8_t *src,
			 unsigned long len, bool cpu)
{
	for (unsigned long done = 0; done < len;) {
		unsigned long a = addr + done, off = a & ~PAGE_MASK;
		unsigned long n = PAGE_SIZE - off < len - done ? PAGE_SIZE - off : len - done;
		struct spage *sp = spage_of(sh, a);

		if (sp && sp->map == M_YES && !sp->wild && (sp->known || n == PAGE_SIZE)) {
			if (!sp->data) {
				sp->data = calloc(1, PAGE_SIZE);
				if (!sp->data)
					fuzz_fail("out of host memory");
			}
			memcpy(sp->data + off, src + done, n);
			sp->known = true;
		} else if (sp) {
			spage_forget(sp);
		}
		if (sp && cpu)
			sp->lazy = false;
		done += n;
	}
}

/* Compare @len bytes read at @addr with the model. */
static void shadow_check(struct shadow *sh, unsigned long addr, const uint8_t *got,
			 unsigned long len, const char *what)
{
	for (unsigned long done = 0; done < len;) {
		unsigned long a = addr + done, off = a & ~PAGE_MASK;
		unsigned long n = PAGE_SIZE - off < len - done ? PAGE_SIZE - off : len - done;
		struct spage *sp = spage_of(sh, a);

		if (sp && sp->known && sp->map == M_YES &&
		    memcmp(got + done, sp->data ? sp->data + off : zero_page, n)) {
			for (unsigned long k = 0; k < n; k++)
				if (got[done + k] != spage_byte(sp, off + k))
					fuzz_fail("%s: byte at %#lx is %#x, the model says %#x", what,
						  a + k, got[done + k], spage_byte(sp, off + k));
		}
		done += n;
	}
}

enum expect { E_OK, E_FAULT, E_ANY };

/*
 * What an access of [@addr, @addr + @len) with @write (else read) must
 * return, as far as the model knows: E_FAULT when some page is unmapped or
 * lacks the permission, E_OK when every page is known to allow it.
 */
static enum expect access_expect(struct shadow *sh, unsigned long addr, unsigned long len,
				 bool write)
{
	enum expect e = E_OK;

	if (len == 0)
		return E_ANY;
	if (addr + len < addr || addr + len > TASK_SIZE)
		return E_FAULT;
	for (unsigned long a = addr & PAGE_MASK; a < addr + len; a += PAGE_SIZE) {
		struct spage *sp = spage_of(sh, a);

		if (!sp || sp->map == M_UNK || (sp->map == M_YES && sp->prot == P_UNK)) {
			e = E_ANY;
			continue;
		}
		if (sp->map == M_NO)
			return E_FAULT;
		if (write ? !(sp->prot & PROT_WRITE) : !(sp->prot & (PROT_READ | PROT_WRITE | PROT_EXEC)))
			return E_FAULT;
		if (!write && !(sp->prot & PROT_READ))
			e = E_ANY; /* write- or exec-only: x86 may still read */
	}
	return e;
}

/*
 * An allocation may fail: RAM failures are being injected, or RAM is
 * nearly full (a huge MAP_POPULATE mapping fills it with page tables).
 */
#define FUZZ_LOW_RAM_PAGES 4096UL
static bool may_oom(void)
{
	return F.inject_ram || F.low_ram || uhmm_nr_free_pages(F.machine) < FUZZ_LOW_RAM_PAGES;
}

static void expect_result(enum expect e, long ret, const char *what, unsigned long addr,
			  unsigned long len)
{
	if (e == E_FAULT && ret != -EFAULT)
		fuzz_fail("%s(%#lx, %#lx) = %ld, the model expects -EFAULT", what, addr, len, ret);
	if (e == E_OK && ret != 0 && !(may_oom() && ret == -ENOMEM))
		fuzz_fail("%s(%#lx, %#lx) = %ld, the model expects success", what, addr, len, ret);
}

/* Compare the VMAs of the window with the model. */
static void check_vmas(struct mm_struct *mm, struct shadow *sh, const char *who)
{
	mmap_read_lock(mm);
	for (unsigned long i = 0; i < FUZZ_WIN_PAGES; i++) {
		unsigned long a = FUZZ_WIN_BASE + i * PAGE_SIZE;
		struct spage *sp = &sh->pg[i];
		struct vm_area_struct *vma;
		bool mapped;

		if (sp->map == M_UNK)
			continue;
		vma = find_vma(mm, a);
		mapped = vma && vma->vm_start <= a;
		if (mapped != (sp->map == M_YES)) {
			mmap_read_unlock(mm);
			fuzz_fail("%s: page %#lx is %s, the model says %s", who, a,
				  mapped ? "mapped" : "unmapped", mapped ? "unmapped" : "mapped");
		}
		if (mapped && sp->prot != P_UNK &&
		    (vma->vm_flags & (VM_READ | VM_WRITE | VM_EXEC)) != sp->prot) {
			unsigned long flags = vma->vm_flags;

			mmap_read_unlock(mm);
			fuzz_fail("%s: page %#lx has vm_flags %#lx, the model says prot %#x", who, a,
				  flags, sp->prot);
		}
	}
	mmap_read_unlock(mm);
}

/* Read back every known, readable page of the window and compare. */
static void verify_all(struct mm_struct *mm, struct shadow *sh, const char *who)
{
	check_vmas(mm, sh, who);
	for (unsigned long i = 0; i < FUZZ_WIN_PAGES; i++) {
		unsigned long a = FUZZ_WIN_BASE + i * PAGE_SIZE;
		struct spage *sp = &sh->pg[i];
		int ret;

		if (sp->map != M_YES || !sp->known || sp->prot == P_UNK || !(sp->prot & PROT_READ))
			continue;
		ret = cpu_read(mm, a, buf2, PAGE_SIZE);
		if (ret == -ENOMEM && may_oom())
			continue;
		if (ret)
			fuzz_fail("%s: cpu_read(%#lx) of a readable page = %d", who, a, ret);
		shadow_check(sh, a, buf2, PAGE_SIZE, who);
	}
}

static void audit(void)
{
	int v;

	F.audits++;
	v = uhmm_audit(F.machine, stderr);

	if (v)
		fuzz_fail("uhmm_audit found %d violations", v);
	v = dmirror_audit(F.mod, stderr);
	if (v)
		fuzz_fail("dmirror_audit found %d violations", v);
}

/* ---- the operations ---- */

static void op_mmap(struct reader *r)
{
	unsigned long addr = read_addr(r), len = read_len(r, false);
	bool raw_prot;
	int prot = read_prot(r, &raw_prot);
	uint8_t f = u8(r);
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	bool raw = f & 0x10;
	long ret;

	if (raw)
		flags = (int)u32(r);
	else
		flags |= (f & 1 ? MAP_FIXED : 0) | (f & 2 ? MAP_FIXED_NOREPLACE : 0) |
			 (f & 4 ? MAP_POPULATE : 0) | (f & 8 ? MAP_NORESERVE : 0);
	ret = mm_mmap(F.mm, addr, len, prot, flags, NULL, 0);
	trace_op("mmap(%#lx, %#lx, %#x, %#x) = %#lx", addr, len, prot, flags, ret);
	if (ret < 0 && ret >= -4095) {
		if (may_oom() && ret == -ENOMEM)
			range_apply(&F.sh, addr, len, spage_unknown_tame);
		else
			check_vmas(F.mm, &F.sh, "after a failed mmap");
		return;
	}
	if (raw || raw_prot) {
		/* MAP_SHARED, MAP_HUGETLB, odd bits: no prediction, maybe shared. */
		range_apply(&F.sh, (unsigned long)ret, ALIGN(len, PMD_SIZE), spage_unknown_wild);
		return;
	}
	if ((unsigned long)ret >= WIN_END || (unsigned long)ret + len <= FUZZ_WIN_BASE) {
		/* Placed outside the window: give it back. */
		if (mm_munmap(F.mm, (unsigned long)ret, len))
			fuzz_fail("munmap of a fresh mapping at %#lx failed", (unsigned long)ret);
		return;
	}
	{
		unsigned long first, last;

		if (win_pages((unsigned long)ret, PAGE_ALIGN(len), &first, &last))
			for (unsigned long i = first; i < last; i++)
				spage_fresh(&F.sh.pg[i], prot);
	}
}

static void op_munmap(struct reader *r)
{
	unsigned long addr = read_addr(r), len = read_len(r, false);
	int ret = mm_munmap(F.mm, addr, len);

	trace_op("munmap(%#lx, %#lx) = %d", addr, len, ret);

	if (ret == 0) {
		range_apply(&F.sh, addr, PAGE_ALIGN(len), spage_unmap);
	} else if (may_oom() && ret == -ENOMEM) {
		range_apply(&F.sh, addr, len, spage_unknown_tame);
	} else {
		if (ret != -EINVAL)
			fuzz_fail("munmap(%#lx, %#lx) = %d", addr, len, ret);
		check_vmas(F.mm, &F.sh, "after a failed munmap");
	}
}

static int g_prot;
static void spage_set_prot(struct spage *sp)
{
	if (sp->map == M_YES)
		sp->prot = (uint8_t)g_prot;
}
static void spage_prot_unknown(struct spage *sp)
{
	if (sp->map != M_NO)
		sp->prot = P_UNK;
}

static void op_mprotect(struct reader *r)
{
	unsigned long addr = read_addr(r), len = read_len(r, false);
	bool raw;
	int prot = read_prot(r, &raw);
	int ret = mm_mprotect(F.mm, addr, len, prot);
	unsigned long first, last;

	trace_op("mprotect(%#lx, %#lx, %#x) = %d", addr, len, prot, ret);

	if (ret == 0) {
		if (win_pages(addr, PAGE_ALIGN(len), &first, &last))
			for (unsigned long i = first; i < last; i++)
				if (F.sh.pg[i].map == M_NO)
					fuzz_fail("mprotect(%#lx, %#lx) succeeded over the hole at %#lx",
						  addr, len, FUZZ_WIN_BASE + i * PAGE_SIZE);
		g_prot = raw ? P_UNK : prot;
		range_apply(&F.sh, addr, PAGE_ALIGN(len), spage_set_prot);
	} else if (ret == -ENOMEM) {
		/* Linux changes the VMAs before the hole. */
		range_apply(&F.sh, addr, PAGE_ALIGN(len), spage_prot_unknown);
	} else {
		check_vmas(F.mm, &F.sh, "after a failed mprotect");
	}
}

static void op_mremap(struct reader *r)
{
	unsigned long old_addr = read_addr(r), old_len = read_len(r, false);
	unsigned long new_len = read_len(r, false);
	uint8_t f = u8(r);
	int flags = f & 7;
	unsigned long new_addr;
	long ret;

	if (f & 8)
		flags = (int)u32(r);
	new_addr = read_addr(r);
	ret = mm_mremap(F.mm, old_addr, old_len, new_len, flags, new_addr);
	trace_op("mremap(%#lx, %#lx, %#lx, %#x, %#lx) = %#lx", old_addr, old_len, new_len, flags,
	      new_addr, ret);
	if (ret < 0 && ret >= -4095) {
		if (may_oom() && ret == -ENOMEM) {
			range_apply(&F.sh, old_addr, old_len, spage_unknown_tame);
			range_apply(&F.sh, new_addr, new_len, spage_unknown_tame);
		} else {
			check_vmas(F.mm, &F.sh, "after a failed mremap");
		}
		return;
	}
	{
		unsigned long dst = (unsigned long)ret;
		unsigned long olen = PAGE_ALIGN(old_len), nlen = PAGE_ALIGN(new_len);
		unsigned long moved = olen < nlen ? olen : nlen;
		struct spage *tmp;
		struct spage *sp0 = spage_of(&F.sh, old_addr);
		uint8_t tail_prot = sp0 && sp0->map == M_YES ? sp0->prot : P_UNK;
		bool tail_known = sp0 && sp0->map == M_YES && !sp0->forkfl && tail_prot != P_UNK;

		if ((flags & ~7) || old_len == 0) {
			/* Odd flags or a duplicate of a shared mapping: aliases. */
			range_apply(&F.sh, old_addr, olen, spage_unknown_wild);
			range_apply(&F.sh, dst, nlen, spage_unknown_wild);
			return;
		}
		if (dst == old_addr) {
			if (nlen < olen)
				range_apply(&F.sh, old_addr + nlen, olen - nlen, spage_unmap);
			for (unsigned long a = old_addr + olen; a < old_addr + nlen; a += PAGE_SIZE) {
				struct spage *sp = spage_of(&F.sh, a);
				if (!sp)
					continue;
				if (tail_known)
					spage_fresh(sp, tail_prot);
				else
					spage_unknown(sp, false);
			}
			return;
		}
		tmp = calloc(moved >> PAGE_SHIFT, sizeof(*tmp));
		if (!tmp)
			fuzz_fail("out of host memory");
		for (unsigned long i = 0; i < moved >> PAGE_SHIFT; i++) {
			struct spage *sp = spage_of(&F.sh, old_addr + i * PAGE_SIZE);
			if (sp) {
				tmp[i] = *sp;
				sp->data = NULL;
				sp->known = false;
			} else {
				tmp[i] = (struct spage){ .map = M_UNK, .prot = P_UNK, .wild = true };
			}
		}
		for (unsigned long a = old_addr; a < old_addr + olen; a += PAGE_SIZE) {
			struct spage *sp = spage_of(&F.sh, a);
			if (!sp)
				continue;
			if (flags & MREMAP_DONTUNMAP) {
				if (sp->map == M_YES)
					spage_set_zero(sp); /* stays mapped, emptied */
				else if (sp->map == M_UNK)
					spage_unknown(sp, false);
			} else {
				spage_unmap(sp);
			}
		}
		for (unsigned long i = 0; i < nlen >> PAGE_SHIFT; i++) {
			struct spage *sp = spage_of(&F.sh, dst + i * PAGE_SIZE);
			if (!sp) {
				if (i < moved >> PAGE_SHIFT)
					free(tmp[i].data);
				continue;
			}
			if (i < moved >> PAGE_SHIFT && tmp[i].map == M_NO)
				continue; /* a gap between source VMAs: the destination keeps its own */
			if (i < moved >> PAGE_SHIFT && tmp[i].map == M_UNK) {
				free(tmp[i].data);
				spage_unknown(sp, tmp[i].wild);
				continue;
			}
			spage_forget(sp);
			if (i < moved >> PAGE_SHIFT)
				*sp = tmp[i];
			else if (tail_known)
				spage_fresh(sp, tail_prot);
			else
				spage_unknown(sp, false);
		}
		free(tmp);
	}
}

static const int advices[32] = {
	MADV_NORMAL,	  MADV_RANDOM,	    MADV_SEQUENTIAL, MADV_WILLNEED,  MADV_DONTNEED,
	MADV_FREE,	  MADV_REMOVE,	    MADV_DONTFORK,   MADV_DOFORK,    MADV_HUGEPAGE,
	MADV_NOHUGEPAGE,  MADV_DONTDUMP,    MADV_DODUMP,     18 /* WIPEONFORK */,
	19 /* KEEPONFORK */, 20 /* COLD */, 21 /* PAGEOUT */, 22 /* POPULATE_READ */,
	23 /* POPULATE_WRITE */, 24 /* DONTNEED_LOCKED */, MADV_COLLAPSE, MADV_DONTNEED,
	MADV_FREE,	  MADV_HUGEPAGE,    MADV_COLLAPSE,   5,		     6,
	7,		  12,		    26,		     -1,	     0 /* raw */,
};

static void spage_dontneed(struct spage *sp)
{
	if (sp->map == M_YES)
		spage_set_zero(sp);
	else if (sp->map == M_UNK)
		spage_forget(sp);
}
static void spage_lazy(struct spage *sp) { sp->lazy = true; }
static void spage_forkfl(struct spage *sp) { sp->forkfl = true; }

static void op_madvise(struct reader *r)
{
	unsigned long addr = read_addr(r), len = read_len(r, false);
	uint8_t a = u8(r) % 32;
	int advice = a == 31 ? (int)u32(r) : advices[a];
	int ret = mm_madvise(F.mm, addr, len, advice);

	trace_op("madvise(%#lx, %#lx, %d) = %d", addr, len, advice, ret);

	switch (advice) {
	case MADV_DONTNEED:
	case 24:
		if (ret == 0 || ret == -ENOMEM)
			range_apply(&F.sh, addr, PAGE_ALIGN(len), spage_dontneed);
		if (ret && ret != -EINVAL)
			range_apply(&F.sh, addr, len, spage_contents_unknown);
		break;
	case MADV_FREE:
		range_apply(&F.sh, addr, len, spage_lazy);
		break;
	case MADV_REMOVE:
		if (ret == 0)
			range_apply(&F.sh, addr, len, spage_contents_unknown);
		break;
	case MADV_DONTFORK:
	case MADV_DOFORK:
	case 18:
	case 19:
		range_apply(&F.sh, addr, len, spage_forkfl);
		break;
	case MADV_NORMAL:
	case MADV_RANDOM:
	case MADV_SEQUENTIAL:
	case MADV_WILLNEED:
	case MADV_HUGEPAGE:
	case MADV_NOHUGEPAGE:
	case MADV_DONTDUMP:
	case MADV_DODUMP:
	case 20:
	case 21:
	case 22:
	case 23:
	case MADV_COLLAPSE:
		break;
	default:
		if (ret != -EINVAL)
			fuzz_fail("madvise(%#lx, %#lx, %d) with an invalid advice = %d", addr, len,
				  advice, ret);
		break;
	}
	if (ret)
		check_vmas(F.mm, &F.sh, "after a failed madvise");
}

static void cpu_write_op(struct mm_struct *mm, struct shadow *sh, struct reader *r,
			 const char *who)
{
	unsigned long addr = read_addr(r), len = read_len(r, true);
	uint8_t seed = u8(r);
	enum expect e;
	int ret;

	if (addr + len >= addr && addr + len <= TASK_SIZE && len > BUF_SIZE)
		len = BUF_SIZE;
	e = access_expect(sh, addr, len, true);
	if (len <= BUF_SIZE) {
		for (unsigned long i = 0; i < len; i++)
			buf[i] = seed & 1 ? seed : pattern(seed, addr + i);
	}
	if (seed & 1)
		ret = cpu_memset(mm, addr, seed, len);
	else
		ret = cpu_write(mm, addr, buf, len);
	trace_op("%s(%#lx, %#lx, seed %u) = %d", who, addr, len, seed, ret);
	expect_result(e, ret, who, addr, len);
	if (ret == 0 && len <= BUF_SIZE)
		shadow_store(sh, addr, buf, len, true);
	else if (ret && ret != -EFAULT)
		range_apply(sh, addr, len, spage_contents_unknown);
	else if (ret == -EFAULT && e == E_ANY)
		range_apply(sh, addr, len, spage_contents_unknown); /* SIGBUS part way */
}

static void cpu_read_op(struct mm_struct *mm, struct shadow *sh, struct reader *r,
			const char *who)
{
	unsigned long addr = read_addr(r), len = read_len(r, true);
	enum expect e;
	int ret;

	if (addr + len >= addr && addr + len <= TASK_SIZE && len > BUF_SIZE)
		len = BUF_SIZE;
	e = access_expect(sh, addr, len, false);
	ret = cpu_read(mm, addr, buf, len);
	trace_op("%s(%#lx, %#lx) = %d", who, addr, len, ret);
	expect_result(e, ret, who, addr, len);
	if (ret == 0)
		shadow_check(sh, addr, buf, len, who);
}

static void op_atomic(struct reader *r)
{
	uint8_t kind = u8(r) % 3;
	unsigned long addr = read_addr(r);
	uint64_t val = u32(r) * 0x100000001ULL, old = 0, want = 0;
	enum expect e = access_expect(&F.sh, addr, 8, true);
	struct spage *sp = spage_of(&F.sh, addr);
	bool known = sp && sp->known && sp->map == M_YES && (addr & 7) == 0;
	int ret;

	if (e == E_OK && !(sp->prot & PROT_READ))
		e = E_ANY;
	if (known)
		for (int i = 0; i < 8; i++)
			want |= (uint64_t)spage_byte(sp, (addr & ~PAGE_MASK) + i) << (8 * i);
	switch (kind) {
	case 0:
		ret = cpu_atomic_fetch_add_u64(F.mm, addr, val, &old);
		break;
	case 1:
		ret = cpu_atomic_xchg_u64(F.mm, addr, val, &old);
		break;
	default:
		ret = cpu_atomic_cmpxchg_u64(F.mm, addr, val & 1 ? want : val, val + 1, &old);
		break;
	}
	if (addr & 7) {
		if (ret != -EINVAL)
			fuzz_fail("atomic at unaligned %#lx = %d", addr, ret);
		return;
	}
	expect_result(e, ret, "atomic", addr, 8);
	if (ret) {
		if (ret != -EFAULT)
			range_apply(&F.sh, addr, 8, spage_contents_unknown);
		return;
	}
	if (known && old != want)
		fuzz_fail("atomic at %#lx found %#llx, the model says %#llx", addr,
			  (unsigned long long)old, (unsigned long long)want);
	{
		uint64_t next = kind == 0 ? old + val : kind == 1 ? val
					 : (old == (val & 1 ? want : val) ? val + 1 : old);
		uint8_t bytes[8];

		for (int i = 0; i < 8; i++)
			bytes[i] = (uint8_t)(next >> (8 * i));
		shadow_store(&F.sh, addr, bytes, 8, true);
	}
}

static void child_exit(void)
{
	if (!F.child)
		return;
	mmput(F.child);
	F.child = NULL;
	shadow_free(&F.csh);
}

static void op_fork(void)
{
	struct mm_struct *child;

	child_exit();
	child = mm_fork(F.mm);
	if (IS_ERR_OR_NULL(child)) {
		if (may_oom() && PTR_ERR(child) == -ENOMEM)
			return;
		fuzz_fail("mm_fork = %ld", PTR_ERR(child));
	}
	F.child = child;
	for (unsigned long i = 0; i < FUZZ_WIN_PAGES; i++) {
		struct spage *p = &F.sh.pg[i], *c = &F.csh.pg[i];

		*c = *p;
		c->data = NULL;
		if (p->forkfl && p->map != M_NO) {
			spage_unknown(c, false);
		} else if (p->data) {
			c->data = malloc(PAGE_SIZE);
			if (!c->data)
				fuzz_fail("out of host memory");
			memcpy(c->data, p->data, PAGE_SIZE);
		}
	}
}

static struct dmirror *read_dev(struct reader *r, unsigned int *idx, bool *null_ptr)
{
	uint8_t d = u8(r);

	*idx = (d & 1) && F.ndev > 1 ? 1 : 0;
	*null_ptr = (d & 6) == 6;
	return F.dev[*idx];
}

/* Keep the bytes a command may copy inside buf: (npages << PAGE_SHIFT) wraps or fits. */
static uint64_t clamp_npages(unsigned long addr, uint64_t npages)
{
	unsigned long bytes = npages << PAGE_SHIFT;

	if (addr >= addr + bytes)
		return npages; /* -EINVAL before anything is copied */
	if (bytes > BUF_SIZE)
		return BUF_SIZE >> PAGE_SHIFT;
	return npages;
}

static int dev_cmd(struct dmirror *dm, unsigned long request, unsigned long addr,
		   uint64_t npages, void *ptr, struct hmm_dmirror_cmd *cmd)
{
	int ret;

	*cmd = (struct hmm_dmirror_cmd){ .addr = addr, .ptr = (uint64_t)(uintptr_t)ptr,
					 .npages = npages };
	ret = dmirror_ioctl(dm, request, cmd);
	trace_op("dmirror ioctl %#lx(%#lx, %#llx pages, ptr %p) = %d", request, addr,
	      (unsigned long long)npages, ptr, ret);
	return ret;
}

static void op_migrate(struct reader *r, bool to_dev)
{
	unsigned int idx;
	bool null_ptr;
	struct dmirror *dm = read_dev(r, &idx, &null_ptr);
	unsigned long addr = read_addr(r);
	uint64_t npages = clamp_npages(addr, read_npages(r));
	struct hmm_dmirror_cmd cmd;
	int ret;

	ret = dev_cmd(dm, to_dev ? HMM_DMIRROR_MIGRATE_TO_DEV : HMM_DMIRROR_MIGRATE_TO_SYS, addr,
		      npages, buf, &cmd);
	/* Migration never changes what the CPU reads; later reads check it. */
	if (ret == 0 && cmd.cpages > npages)
		fuzz_fail("migrate of %llu pages reports %llu", (unsigned long long)npages,
			  (unsigned long long)cmd.cpages);
	if (ret)
		check_vmas(F.mm, &F.sh, "after a failed migration");
}

/* What a device access of whole pages must return (E_ANY for bad arguments). */
static enum expect dev_expect(unsigned long addr, uint64_t npages, bool write, bool null_ptr)
{
	unsigned long end = addr + (npages << PAGE_SHIFT);
	enum expect e = E_OK;

	if ((addr & ~PAGE_MASK) || addr >= end || null_ptr)
		return E_FAULT; /* must fail */
	for (unsigned long a = addr; a < end; a += PAGE_SIZE) {
		struct spage *sp = spage_of(&F.sh, a);

		if (!sp || sp->map == M_UNK || sp->prot == P_UNK) {
			e = E_ANY;
			continue;
		}
		if (sp->map == M_NO || !(sp->prot & (PROT_READ | PROT_WRITE | PROT_EXEC)))
			return E_FAULT;
		if (write && !(sp->prot & PROT_WRITE))
			return E_FAULT;
		if (!(sp->prot & PROT_READ))
			e = E_ANY;
	}
	return e;
}

/*
 * Does [@addr, @addr + @npages pages) hold a page of @dm's own device that
 * is mapped read-only (a device-private entry made read-only by fork)?
 * hmm_range_fault() reports such a page without faulting it, so
 * test_hmm's dmirror_do_fault() cannot get write access and returns
 * -EFAULT (with a WARN in Linux); the model does not track where pages
 * are, so it asks SNAPSHOT, which changes nothing.
 */
static bool own_readonly_private_page(struct dmirror *dm, unsigned long addr, uint64_t npages)
{
	static uint8_t snap[FUZZ_WIN_PAGES + 1024];
	struct hmm_dmirror_cmd cmd;

	if (npages > FUZZ_WIN_PAGES + 1024 ||
	    dev_cmd(dm, HMM_DMIRROR_SNAPSHOT, addr, npages, snap, &cmd))
		return false;
	for (uint64_t i = 0; i < npages; i++)
		if ((snap[i] & 0xF0) == HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL &&
		    !(snap[i] & HMM_DMIRROR_PROT_WRITE))
			return true;
	return false;
}

static void dev_expect_result(enum expect e, int ret, const char *what, unsigned long addr,
			      uint64_t npages)
{
	if (e == E_FAULT && ret == 0)
		fuzz_fail("%s(%#lx, %llu pages) succeeded, the model expects a failure", what, addr,
			  (unsigned long long)npages);
	if (e == E_OK && ret != 0 && !may_oom())
		fuzz_fail("%s(%#lx, %llu pages) = %d, the model expects success", what, addr,
			  (unsigned long long)npages, ret);
}

static void op_dev_read(struct reader *r)
{
	unsigned int idx;
	bool null_ptr;
	struct dmirror *dm = read_dev(r, &idx, &null_ptr);
	unsigned long addr = read_addr(r);
	uint64_t npages = clamp_npages(addr, read_npages(r));
	enum expect e = dev_expect(addr, npages, false, null_ptr);
	struct hmm_dmirror_cmd cmd;
	int ret = dev_cmd(dm, HMM_DMIRROR_READ, addr, npages, null_ptr ? NULL : buf, &cmd);

	dev_expect_result(e, ret, "dmirror READ", addr, npages);
	if (ret == 0) {
		if (cmd.cpages != npages)
			fuzz_fail("dmirror READ of %llu pages copied %llu",
				  (unsigned long long)npages, (unsigned long long)cmd.cpages);
		shadow_check(&F.sh, addr, buf, npages << PAGE_SHIFT, "dmirror READ");
	}
}

static void op_dev_write(struct reader *r)
{
	unsigned int idx;
	bool null_ptr;
	struct dmirror *dm = read_dev(r, &idx, &null_ptr);
	unsigned long addr = read_addr(r);
	uint64_t npages = clamp_npages(addr, read_npages(r));
	uint8_t seed = u8(r);
	enum expect e = dev_expect(addr, npages, true, null_ptr);
	unsigned long bytes = npages << PAGE_SHIFT;
	struct hmm_dmirror_cmd cmd;
	int ret;

	if (addr < addr + bytes)
		for (unsigned long i = 0; i < bytes; i++)
			buf[i] = pattern(seed, addr + i);
	ret = dev_cmd(dm, HMM_DMIRROR_WRITE, addr, npages, null_ptr ? NULL : buf, &cmd);
	if (e == E_OK && ret == -EFAULT && own_readonly_private_page(dm, addr, npages))
		e = E_ANY;
	dev_expect_result(e, ret, "dmirror WRITE", addr, npages);
	if (ret == 0)
		shadow_store(&F.sh, addr, buf, bytes, false);
	else if (!(addr & ~PAGE_MASK) && addr < addr + bytes && !null_ptr)
		range_apply(&F.sh, addr, bytes, spage_contents_unknown); /* a prefix written */
}

static void op_dev_snapshot(struct reader *r)
{
	unsigned int idx;
	bool null_ptr;
	struct dmirror *dm = read_dev(r, &idx, &null_ptr);
	unsigned long addr = read_addr(r);
	uint64_t npages = clamp_npages(addr, read_npages(r));
	struct hmm_dmirror_cmd cmd;
	int ret = dev_cmd(dm, HMM_DMIRROR_SNAPSHOT, addr, npages, null_ptr ? NULL : buf, &cmd);

	if (ret)
		return;
	if (null_ptr)
		fuzz_fail("dmirror SNAPSHOT to a NULL buffer succeeded");
	/* The range is addr + (npages << PAGE_SHIFT): high bits of npages drop out. */
	npages = (npages << PAGE_SHIFT) >> PAGE_SHIFT;
	for (uint64_t i = 0; i < npages; i++) {
		struct spage *sp = spage_of(&F.sh, addr + i * PAGE_SIZE);
		uint8_t v = buf[i];

		if (!sp || sp->map == M_UNK)
			continue;
		if (sp->map == M_NO && v != HMM_DMIRROR_PROT_ERROR && v != HMM_DMIRROR_PROT_NONE)
			fuzz_fail("SNAPSHOT of unmapped %#lx is %#x", addr + i * PAGE_SIZE, v);
		if (sp->map == M_YES && sp->prot != P_UNK && !(sp->prot & PROT_WRITE) &&
		    v != HMM_DMIRROR_PROT_ERROR && (v & HMM_DMIRROR_PROT_WRITE))
			fuzz_fail("SNAPSHOT of read-only %#lx is %#x", addr + i * PAGE_SIZE, v);
	}
}

static void op_dev_ioctl(struct reader *r)
{
	static const unsigned long requests[8] = {
		HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_FLAGS,
		HMM_DMIRROR_FLAGS,     _IOWR('H', 0x09, struct hmm_dmirror_cmd),
		0,		       ~0UL, 0 /* raw */,
	};
	unsigned int idx;
	bool null_ptr;
	struct dmirror *dm = read_dev(r, &idx, &null_ptr);
	uint8_t which = u8(r) & 7;
	unsigned long request = which == 7 ? u32(r) : requests[which];
	unsigned long addr = read_addr(r);
	uint64_t npages = clamp_npages(addr, read_npages(r));
	struct hmm_dmirror_cmd cmd;
	int ret;

	switch (request) {
	case HMM_DMIRROR_READ:
	case HMM_DMIRROR_WRITE:
	case HMM_DMIRROR_MIGRATE_TO_DEV:
	case HMM_DMIRROR_MIGRATE_TO_SYS:
	case HMM_DMIRROR_SNAPSHOT:
	case HMM_DMIRROR_RELEASE:
		return; /* the dedicated operations cover these */
	case HMM_DMIRROR_FLAGS:
		/* The range check applies to FLAGS too (npages is the value): 0 is -EINVAL, as in test_hmm. */
		npages = which == 3 ? 0 : HMM_DMIRROR_FLAG_FAIL_ALLOC;
		addr = FUZZ_WIN_BASE;
		break;
	default:
		break;
	}
	ret = dev_cmd(dm, request, addr, npages, buf, &cmd);
	if (request == HMM_DMIRROR_FLAGS && ret != (npages ? 0 : -EINVAL))
		fuzz_fail("HMM_DMIRROR_FLAGS = %d", ret);
	if ((request == HMM_DMIRROR_EXCLUSIVE || request == HMM_DMIRROR_CHECK_EXCLUSIVE) &&
	    ret == 0)
		fuzz_fail("EXCLUSIVE succeeded but uhmm has no device-exclusive entries");
	if (request != HMM_DMIRROR_FLAGS && request != HMM_DMIRROR_EXCLUSIVE &&
	    request != HMM_DMIRROR_CHECK_EXCLUSIVE && ret != -EINVAL)
		fuzz_fail("unknown dmirror ioctl %#lx = %d", request, ret);
}

static void read_attr(struct reader *r, struct fault_attr *attr)
{
	uint8_t times;

	attr->probability = u8(r) % 101;
	attr->interval = u8(r) % 8;
	times = u8(r);
	attr->times = times == 255 ? -1 : times;
	attr->min_order = u8(r) % 10;
	attr->seed = u8(r);
}

static void op_fail_ram(struct reader *r)
{
	uint8_t mode = u8(r);
	struct fault_attr attr;

	read_attr(r, &attr);
	if (mode < 64) {
		uhmm_fail_page_alloc(F.machine, NULL);
		F.inject_ram = false;
	} else {
		uhmm_fail_page_alloc(F.machine, &attr);
		F.inject_ram = true;
	}
}

static void op_fail_dev(struct reader *r)
{
	unsigned int idx;
	bool null_ptr;
	uint8_t mode;
	struct fault_attr attr;
	unsigned int minor;
	int ret;

	read_dev(r, &idx, &null_ptr);
	mode = u8(r);
	read_attr(r, &attr);
	minor = mode & 0x80 ? DMIRROR_NDEVICES + mode % 8u : F.minor[idx];
	ret = dmirror_fail_devmem_alloc(F.mod, minor, mode & 0x40 ? &attr : NULL);
	if (ret != (minor < DMIRROR_NDEVICES ? 0 : -ENODEV))
		fuzz_fail("dmirror_fail_devmem_alloc(%u) = %d", minor, ret);
}

static void drop_lazy(struct shadow *sh)
{
	for (unsigned long i = 0; i < FUZZ_WIN_PAGES; i++)
		if (sh->pg[i].lazy)
			spage_forget(&sh->pg[i]);
}

static void op_map_thp(struct reader *r)
{
	unsigned long pmd = u8(r) % FUZZ_WIN_PMDS, n = 1 + u8(r) % 2;
	uint8_t seed = u8(r);
	unsigned long addr = FUZZ_WIN_BASE + pmd * PMD_SIZE, len;
	long ret;

	if (pmd + n > FUZZ_WIN_PMDS)
		n = FUZZ_WIN_PMDS - pmd;
	len = n * PMD_SIZE;
	ret = mm_mmap(F.mm, addr, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, NULL, 0);
	if (ret < 0 && ret >= -4095) {
		if (!may_oom())
			fuzz_fail("mmap of the THP region at %#lx = %ld", addr, ret);
		range_apply(&F.sh, addr, len, spage_unknown_tame);
		return;
	}
	range_apply(&F.sh, addr, len, spage_unmap);
	g_prot = PROT_READ | PROT_WRITE;
	for (unsigned long a = addr; a < addr + len; a += PAGE_SIZE)
		spage_fresh(spage_of(&F.sh, a), PROT_READ | PROT_WRITE);
	if (mm_madvise(F.mm, addr, len, MADV_HUGEPAGE))
		fuzz_fail("MADV_HUGEPAGE on %#lx failed", addr);
	for (unsigned long i = 0; i < len; i++)
		buf[i] = pattern(seed, addr + i);
	ret = cpu_write(F.mm, addr, buf, len);
	if (ret == 0)
		shadow_store(&F.sh, addr, buf, len, true);
	else if (may_oom() && ret == -ENOMEM)
		range_apply(&F.sh, addr, len, spage_contents_unknown);
	else
		fuzz_fail("cpu_write of the THP region at %#lx = %ld", addr, ret);
}

/* Verify everything; the audit (a walk of every page) at most twice an input. */
static void full_check(bool always_audit)
{
	verify_all(F.mm, &F.sh, "verify");
	if (F.child)
		verify_all(F.child, &F.csh, "verify child");
	if (always_audit || F.audits < 2)
		audit();
}

/* Is there free RAM for every page device @minor has in use (with a margin)? */
static bool evict_fits(unsigned int minor)
{
	struct dmirror_stats st;

	if (dmirror_device_stats(F.mod, minor, &st))
		fuzz_fail("dmirror_device_stats(%u) failed", minor);
	return uhmm_nr_free_pages(F.machine) > st.calloc - st.cfree + 64;
}

static void run_op(struct reader *r, int op)
{
	F.op = op;
	trace_op("op %d", op);
	switch (op) {
	case FOP_MMAP:
		op_mmap(r);
		break;
	case FOP_MUNMAP:
		op_munmap(r);
		break;
	case FOP_MPROTECT:
		op_mprotect(r);
		break;
	case FOP_MREMAP:
		op_mremap(r);
		break;
	case FOP_MADVISE:
		op_madvise(r);
		break;
	case FOP_CPU_WRITE:
		cpu_write_op(F.mm, &F.sh, r, "cpu_write");
		break;
	case FOP_CPU_READ:
		cpu_read_op(F.mm, &F.sh, r, "cpu_read");
		break;
	case FOP_ATOMIC:
		op_atomic(r);
		break;
	case FOP_FORK:
		op_fork();
		break;
	case FOP_CHILD_WRITE:
		if (F.child)
			cpu_write_op(F.child, &F.csh, r, "child cpu_write");
		break;
	case FOP_CHILD_READ:
		if (F.child)
			cpu_read_op(F.child, &F.csh, r, "child cpu_read");
		break;
	case FOP_CHILD_EXIT:
		child_exit();
		break;
	case FOP_TO_DEV:
	case FOP_TO_SYS:
		op_migrate(r, op == FOP_TO_DEV);
		break;
	case FOP_DEV_READ:
		op_dev_read(r);
		break;
	case FOP_DEV_WRITE:
		op_dev_write(r);
		break;
	case FOP_DEV_SNAPSHOT:
		op_dev_snapshot(r);
		break;
	case FOP_DEV_RELEASE: {
		unsigned int idx;
		bool null_ptr;
		struct dmirror *dm = read_dev(r, &idx, &null_ptr);
		struct hmm_dmirror_cmd cmd;
		int ret;

		/*
		 * Eviction must get RAM for every device page in use (Linux:
		 * __GFP_NOFAIL, and the OOM killer if need be; uhmm has no OOM
		 * killer, dmirror abort()s): skip it when RAM may not hold them.
		 */
		if (!evict_fits(F.minor[idx]))
			break;
		ret = dev_cmd(dm, HMM_DMIRROR_RELEASE, 0, 0, NULL, &cmd);

		/* test_hmm checks the range first: npages 0 is -EINVAL there too. */
		(void)ret;
		ret = dev_cmd(dm, HMM_DMIRROR_RELEASE, FUZZ_WIN_BASE, 1, NULL, &cmd);
		if (ret)
			fuzz_fail("dmirror RELEASE = %d", ret);
		break;
	}
	case FOP_DEV_IOCTL:
		op_dev_ioctl(r);
		break;
	case FOP_FAIL_RAM:
		op_fail_ram(r);
		break;
	case FOP_FAIL_DEV:
		op_fail_dev(r);
		break;
	case FOP_DROP_LAZYFREE:
		uhmm_drop_lazyfree(F.machine);
		drop_lazy(&F.sh);
		if (F.child)
			drop_lazy(&F.csh);
		break;
	case FOP_CHECK:
		full_check(false);
		break;
	case FOP_SET_THP:
		uhmm_machine_set_thp(F.machine, (enum thp_mode)(u8(r) % 3));
		break;
	case FOP_MAP_THP:
		op_map_thp(r);
		break;
	default:
		break;
	}
}

static void setup(uint8_t hdr)
{
	struct uhmm_machine_config config = {
		.ram_size = FUZZ_RAM_SIZE,
		.thp_enabled = hdr & FUZZ_HDR_THP_ALWAYS ? THP_ALWAYS : THP_MADVISE,
		.no_huge_zero_page = hdr & FUZZ_HDR_NO_ZERO_PAGE,
		.nr_hugepages = UHMM_NO_HUGEPAGES,
	};

	if (!buf) {
		buf = malloc(BUF_SIZE);
		buf2 = malloc(PAGE_SIZE);
		if (!buf || !buf2)
			fuzz_fail("out of host memory");
	}
	memset(&F, 0, sizeof(F));
	F.which = config.no_huge_zero_page;
	if (!machines[F.which]) {
		machines[F.which] = uhmm_machine_create(&config);
		if (IS_ERR_OR_NULL(machines[F.which]))
			fuzz_fail("uhmm_machine_create = %ld", PTR_ERR(machines[F.which]));
		modules[F.which] = dmirror_module_init(machines[F.which]);
		if (IS_ERR_OR_NULL(modules[F.which]))
			fuzz_fail("dmirror_module_init = %ld", PTR_ERR(modules[F.which]));
	}
	F.machine = machines[F.which];
	F.mod = modules[F.which];
	uhmm_machine_set_thp(F.machine, config.thp_enabled);
	F.mm = mm_alloc(F.machine);
	if (IS_ERR_OR_NULL(F.mm))
		fuzz_fail("mm_alloc = %ld", PTR_ERR(F.mm));
	F.minor[0] = hdr & FUZZ_HDR_COHERENT ? 2 : 0;
	F.minor[1] = F.minor[0] + 1;
	F.ndev = hdr & FUZZ_HDR_SECOND_DEV ? 2 : 1;
	for (unsigned int i = 0; i < F.ndev; i++) {
		F.dev[i] = dmirror_open(F.mod, F.minor[i], F.mm);
		if (IS_ERR_OR_NULL(F.dev[i]))
			fuzz_fail("dmirror_open(%u) = %ld", F.minor[i], PTR_ERR(F.dev[i]));
	}
	shadow_init(&F.sh);
}

static void teardown(void)
{
	struct uhmm_machine *machine = F.machine;
	unsigned long free_pages, reserved, total;
	int ret;

	F.op = -1;
	uhmm_fail_page_alloc(machine, NULL);
	F.inject_ram = false;
	for (unsigned int i = 0; i < F.ndev; i++)
		dmirror_fail_devmem_alloc(F.mod, F.minor[i], NULL);
	full_check(true);
	child_exit();
	/*
	 * Unmap what lies outside the window (the model does not track it; a
	 * huge MAP_POPULATE mapping there can fill RAM with page tables), so
	 * that closing the devices finds RAM for every device page.
	 */
	if (mm_munmap(F.mm, PAGE_SIZE, FUZZ_WIN_BASE - PAGE_SIZE) ||
	    mm_munmap(F.mm, WIN_END, TASK_SIZE - WIN_END))
		fuzz_fail("munmap outside the window failed");
	for (unsigned int i = 0; i < F.ndev; i++)
		if (!evict_fits(F.minor[i]))
			fuzz_fail("RAM cannot hold device %u's pages: %lu free", F.minor[i],
				  uhmm_nr_free_pages(machine));
	for (unsigned int i = 0; i < F.ndev; i++)
		dmirror_release(F.dev[i]);
	/* Closing evicted every device page to RAM: the bytes must have come along. */
	verify_all(F.mm, &F.sh, "verify after close");
	mmput(F.mm);
	/* Every page free (the audit with the mappings ran above). */
	free_pages = uhmm_nr_free_pages(machine);
	reserved = uhmm_nr_reserved_pages(machine);
	total = uhmm_totalram_pages(machine);
	if (free_pages + reserved != total)
		fuzz_fail("pages leaked: %lu free + %lu reserved of %lu", free_pages, reserved,
			  total);
	for (unsigned int minor = 0; minor < DMIRROR_NDEVICES; minor++) {
		struct dmirror_stats st;

		dmirror_fail_devmem_alloc(F.mod, minor, NULL);
		if (dmirror_device_stats(F.mod, minor, &st))
			fuzz_fail("dmirror_device_stats(%u) failed", minor);
		if (st.free_pages + st.free_folios * HPAGE_PMD_NR != st.nr_pages ||
		    st.calloc != st.cfree)
			fuzz_fail("device %u: %lu pages + %lu folios free of %lu, %lu allocated, %lu freed",
				  minor, st.free_pages, st.free_folios, st.nr_pages, st.calloc,
				  st.cfree);
	}
	if (getenv("UHMM_FUZZ_FRESH")) {
		ret = dmirror_module_exit(F.mod);
		if (ret)
			fuzz_fail("dmirror_module_exit = %d", ret);
		ret = uhmm_machine_destroy(machine);
		if (ret)
			fuzz_fail("uhmm_machine_destroy = %d", ret);
		machines[F.which] = NULL;
		modules[F.which] = NULL;
	}
	shadow_free(&F.sh);
	memset(&F, 0, sizeof(F));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reader r = { .p = data, .n = size };

	trace = getenv("UHMM_FUZZ_TRACE") != NULL;

	setup(u8(&r));
	for (F.op_index = 0; F.op_index < FUZZ_MAX_OPS && r.i < r.n; F.op_index++) {
		F.low_ram = uhmm_nr_free_pages(F.machine) < FUZZ_LOW_RAM_PAGES;
		run_op(&r, u8(&r) % FOP_NR);
		if ((F.op_index + 1) % FUZZ_AUDIT_EVERY == 0)
			audit();
	}
	teardown();
	return 0;
}
