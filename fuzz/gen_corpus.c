/* SPDX-License-Identifier: MIT */
/*
 * fuzz/gen_corpus.c - writes the seed corpus (fuzz/corpus/): small inputs
 * in the byte format of fuzz/uhmm_fuzz.c, each covering one family of
 * operations, so libFuzzer starts from inputs that already map memory,
 * touch it, fork, migrate, mirror and inject failures.
 *
 *   build-plain/fuzz/gen_corpus fuzz/corpus     (or: make fuzz-corpus)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_ops.h"

#define WIN_SIZE_BYTES (FUZZ_WIN_PAGES * 4096UL)

struct in {
	uint8_t b[4096];
	size_t n;
};

static struct in I;
static const char *outdir;
static int files;

static void b(unsigned int v) { I.b[I.n++] = (uint8_t)v; }
static void w16(unsigned int v) { b(v & 0xff); b(v >> 8); }
static void w32(uint32_t v) { w16(v & 0xffff); w16(v >> 16); }
static void w64(uint64_t v) { w32((uint32_t)v); w32((uint32_t)(v >> 32)); }

static void begin(unsigned int hdr) { I.n = 0; b(hdr); }

static void emit(const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%02d-%s", outdir, ++files, name);
	f = fopen(path, "wb");
	if (!f || fwrite(I.b, 1, I.n, f) != I.n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* ---- arguments (see the format in fuzz/uhmm_fuzz.c) ---- */
static void A_page(unsigned int page) { b(0); w16(page + 32); }
static void A_pmd(unsigned int pmd) { b(1); b(pmd); }
static void A_off(unsigned long off) { b(2); w32((uint32_t)(off + 4096)); } /* byte offset in the window */
static void A_special(unsigned int k) { b(3 | k << 2); }
static void A_raw(uint64_t v) { b(3 | 7 << 2); w64(v); }
static void L_pages16(unsigned int n) { b(0); b(n - 1); }	  /* mapping ops: 1..16 pages */
static void L_bytes(unsigned int n) { b(0); w16(n - 1); }	  /* CPU ops: 1..8192 bytes */
static void L_pages(unsigned int n) { b(1); w16(n - 1); }	  /* 1..2048 pages */
static void L_pmds(unsigned int n) { b(2); b(n - 1); }
static void L_special(unsigned int k) { b(3 | k << 2); }
static void N_pages16(unsigned int n) { b(0); b(n - 1); }
static void N_pages(unsigned int n) { b(1); w16(n - 1); }
static void N_pmds(unsigned int n) { b(2); b(n - 1); }
static void N_special(unsigned int k) { b(3 | k << 2); }

enum { P_NONE, P_R, P_RW, P_W, P_RX, P_RWX, P_X, P_RAW };
enum { MF_FIXED = 1, MF_NOREPLACE = 2, MF_POPULATE = 4, MF_NORESERVE = 8, MF_RAW = 16 };

static void op(enum fuzz_op o) { b(o); }

static void mmap_fixed(unsigned int page, unsigned int npages, unsigned int prot)
{
	op(FOP_MMAP); A_page(page); L_pages(npages); b(prot); b(MF_FIXED);
}
static void write_pages(unsigned int page, unsigned int npages, unsigned int seed)
{
	op(FOP_CPU_WRITE); A_page(page); b(1); w16(npages - 1); b(seed & ~1u);
}
static void read_pages(unsigned int page, unsigned int npages)
{
	op(FOP_CPU_READ); A_page(page); b(1); w16(npages - 1);
}
static void child_write(unsigned int page, unsigned int npages, unsigned int seed)
{
	op(FOP_CHILD_WRITE); A_page(page); b(1); w16(npages - 1); b(seed & ~1u);
}
static void child_read(unsigned int page, unsigned int npages)
{
	op(FOP_CHILD_READ); A_page(page); b(1); w16(npages - 1);
}
static void madvise(unsigned int page, unsigned int npages, unsigned int advice_index)
{
	op(FOP_MADVISE); A_page(page); L_pages(npages); b(advice_index);
}
static void dev_op(enum fuzz_op o, unsigned int dev, unsigned int page, unsigned int npages)
{
	op(o); b(dev); A_page(page); N_pages(npages);
}
static void map_thp(unsigned int pmd, unsigned int n, unsigned int seed)
{
	op(FOP_MAP_THP); b(pmd); b(n - 1); b(seed);
}
static void fail_ram(unsigned int prob, unsigned int interval, unsigned int times,
		     unsigned int min_order)
{
	op(FOP_FAIL_RAM); b(0x80); b(prob); b(interval); b(times); b(min_order); b(7);
}
static void fail_ram_clear(void) { op(FOP_FAIL_RAM); b(0); b(0); b(0); b(0); b(0); b(0); }

/* advice table indexes (advices[] in fuzz/uhmm_fuzz.c) */
enum { AD_NORMAL, AD_RANDOM, AD_SEQ, AD_WILLNEED, AD_DONTNEED, AD_FREE, AD_REMOVE, AD_DONTFORK,
       AD_DOFORK, AD_HUGEPAGE, AD_NOHUGEPAGE, AD_DONTDUMP, AD_DODUMP, AD_WIPEONFORK,
       AD_KEEPONFORK, AD_COLD, AD_PAGEOUT, AD_POP_READ, AD_POP_WRITE, AD_DONTNEED_LOCKED,
       AD_COLLAPSE, AD_RAW = 31 };

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];

	begin(0); /* map, write, read, unmap, read faults */
	mmap_fixed(0, 16, P_RW); write_pages(0, 16, 2); read_pages(0, 16);
	op(FOP_MUNMAP); A_page(4); L_pages16(4); read_pages(0, 16); read_pages(0, 4);
	emit("mmap-basic");

	begin(0); /* FIXED_NOREPLACE over a mapping, a hint, POPULATE, NORESERVE */
	mmap_fixed(100, 8, P_RW);
	op(FOP_MMAP); A_page(104); L_pages16(8); b(P_RW); b(MF_NOREPLACE);
	op(FOP_MMAP); A_page(300); L_pages16(8); b(P_R); b(0);
	op(FOP_MMAP); A_page(400); L_pages16(8); b(P_RW); b(MF_FIXED | MF_POPULATE);
	op(FOP_MMAP); A_page(500); L_pages16(8); b(P_RW); b(MF_FIXED | MF_NORESERVE);
	read_pages(400, 8); write_pages(500, 8, 4); read_pages(300, 8);
	emit("mmap-flags");

	begin(0); /* bad mmaps: zero length, unaligned fixed, huge, past TASK_SIZE */
	op(FOP_MMAP); A_page(0); L_special(0); b(P_RW); b(MF_FIXED);
	op(FOP_MMAP); A_off(5); L_pages16(1); b(P_RW); b(MF_FIXED);
	op(FOP_MMAP); A_page(0); L_special(6); b(P_RW); b(MF_FIXED);
	op(FOP_MMAP); A_special(2); L_pages(4); b(P_RW); b(MF_FIXED);
	op(FOP_MMAP); A_special(5); L_pages(4); b(P_RW); b(MF_FIXED);
	op(FOP_MMAP); A_page(0); L_pages(4); b(P_RAW); w32(0x7fffffff); b(MF_FIXED);
	emit("mmap-bad");

	begin(0); /* raw flags: MAP_SHARED | MAP_ANONYMOUS, then fork and write both sides */
	op(FOP_MMAP); A_page(64); L_pages16(16); b(P_RW); b(MF_RAW); w32(0x21 | 0x10);
	write_pages(64, 16, 6); op(FOP_FORK); child_write(64, 4, 8); read_pages(64, 16);
	op(FOP_MUNMAP); A_page(64); L_pages16(16);
	emit("mmap-shared");

	begin(0); /* mprotect: RO, NONE, back, over a hole, bad prot */
	mmap_fixed(0, 32, P_RW); write_pages(0, 32, 10);
	op(FOP_MPROTECT); A_page(8); L_pages16(8); b(P_R);
	write_pages(8, 1, 12); read_pages(0, 32);
	op(FOP_MPROTECT); A_page(16); L_pages16(4); b(P_NONE); read_pages(14, 4);
	op(FOP_MPROTECT); A_page(0); L_pages(64); b(P_RW);
	op(FOP_MPROTECT); A_page(0); L_pages(8); b(P_RAW); w32(0x1000);
	op(FOP_MPROTECT); A_off(7); L_pages16(1); b(P_R);
	op(FOP_MPROTECT); A_page(0); L_pages(16); b(P_W); write_pages(0, 2, 14); read_pages(0, 2);
	op(FOP_CHECK);
	emit("mprotect");

	begin(0); /* mremap: shrink, grow in place, move, fixed, dontunmap */
	mmap_fixed(0, 16, P_RW); write_pages(0, 16, 16);
	op(FOP_MREMAP); A_page(0); L_pages(16); L_pages(8); b(0); A_page(0);
	op(FOP_MREMAP); A_page(0); L_pages(8); L_pages(12); b(0); A_page(0);
	read_pages(0, 12);
	op(FOP_MREMAP); A_page(0); L_pages(12); L_pages(12); b(1 | 2); A_page(600);
	read_pages(600, 12); read_pages(0, 1);
	op(FOP_MREMAP); A_page(600); L_pages(12); L_pages(12); b(1 | 2 | 4); A_page(1000);
	read_pages(600, 12); read_pages(1000, 12);
	op(FOP_MREMAP); A_page(1000); L_pages(12); L_pages(40); b(1); A_page(0);
	op(FOP_CHECK);
	emit("mremap");

	begin(0); /* bad mremaps */
	mmap_fixed(0, 8, P_RW);
	op(FOP_MREMAP); A_page(0); L_special(0); L_pages(8); b(1); A_page(0);
	op(FOP_MREMAP); A_off(3); L_pages(8); L_pages(8); b(1); A_page(0);
	op(FOP_MREMAP); A_page(0); L_pages(8); L_pages(8); b(2); A_page(100);
	op(FOP_MREMAP); A_page(0); L_pages(8); L_pages(16); b(1 | 4); A_page(100);
	op(FOP_MREMAP); A_page(0); L_pages(8); L_pages(8); b(1 | 2); A_page(4);
	op(FOP_MREMAP); A_page(0); L_pages(8); L_pages(8); b(8); w32(0x80); A_page(200);
	op(FOP_MREMAP); A_page(300); L_pages(8); L_pages(8); b(1); A_page(0);
	emit("mremap-bad");

	begin(0); /* DONTNEED and DONTNEED_LOCKED zero; FREE + reclaim */
	mmap_fixed(0, 32, P_RW); write_pages(0, 32, 18);
	madvise(4, 4, AD_DONTNEED); read_pages(0, 32);
	madvise(12, 4, AD_DONTNEED_LOCKED); read_pages(8, 16);
	madvise(16, 8, AD_FREE); write_pages(18, 1, 20); op(FOP_DROP_LAZYFREE);
	read_pages(16, 8); write_pages(16, 8, 22); read_pages(16, 8);
	emit("madvise-zap");

	begin(0); /* every advice value on a mapping, and over a hole */
	mmap_fixed(0, 16, P_RW); write_pages(0, 16, 24);
	for (unsigned int a = 0; a < 31; a++)
		madvise(2, 8, a);
	madvise(0, 64, AD_DONTNEED); madvise(0, 64, AD_WILLNEED);
	op(FOP_MADVISE); A_page(0); L_pages(4); b(AD_RAW); w32(0xdead);
	op(FOP_MADVISE); A_off(9); L_pages(4); b(AD_NORMAL);
	read_pages(0, 16);
	emit("madvise-all");

	begin(0); /* unaligned byte accesses across pages, memset */
	mmap_fixed(0, 8, P_RW);
	op(FOP_CPU_WRITE); A_off(4090); L_bytes(20); b(30);
	op(FOP_CPU_WRITE); A_off(8000); L_bytes(5000); b(33);
	op(FOP_CPU_READ); A_off(4000); L_bytes(8192);
	op(FOP_CPU_READ); A_off(8 * 4096 - 4); L_bytes(8);
	op(FOP_CPU_WRITE); A_special(3); L_bytes(16); b(2);
	op(FOP_CPU_READ); A_special(6); L_special(1);
	op(FOP_CPU_READ); A_page(0); L_special(6);
	emit("cpu-access");

	begin(0); /* atomics: add, xchg, cmpxchg (hit and miss), unaligned, read-only */
	mmap_fixed(0, 4, P_RW); write_pages(0, 4, 36);
	op(FOP_ATOMIC); b(0); A_page(0); w32(5);
	op(FOP_ATOMIC); b(1); A_off(8); w32(7);
	op(FOP_ATOMIC); b(2); A_off(16); w32(9);
	op(FOP_ATOMIC); b(2); A_off(16); w32(8);
	op(FOP_ATOMIC); b(0); A_off(13); w32(1);
	op(FOP_MPROTECT); A_page(2); L_pages16(1); b(P_R);
	op(FOP_ATOMIC); b(0); A_page(2); w32(1);
	op(FOP_ATOMIC); b(0); A_page(3000); w32(1);
	read_pages(0, 4);
	emit("atomic");

	begin(0); /* fork: COW both ways, child exit */
	mmap_fixed(0, 16, P_RW); write_pages(0, 16, 40);
	op(FOP_FORK); child_read(0, 16); child_write(0, 4, 42); write_pages(2, 4, 44);
	child_read(0, 16); read_pages(0, 16); op(FOP_CHECK); op(FOP_CHILD_EXIT); read_pages(0, 16);
	emit("fork-cow");

	begin(0); /* fork advice: DONTFORK, WIPEONFORK, and back */
	mmap_fixed(0, 8, P_RW); mmap_fixed(16, 8, P_RW); mmap_fixed(32, 8, P_RW);
	write_pages(0, 40, 46);
	madvise(0, 8, AD_DONTFORK); madvise(16, 8, AD_WIPEONFORK); madvise(32, 8, AD_DONTFORK);
	madvise(32, 8, AD_DOFORK);
	op(FOP_FORK); child_read(0, 8); child_read(16, 8); child_read(32, 8);
	child_write(16, 2, 48); op(FOP_CHECK); op(FOP_FORK); op(FOP_CHILD_EXIT);
	emit("fork-advice");

	begin(0); /* THP: map, partial unmap and mprotect (split), reads */
	map_thp(0, 2, 50); read_pages(0, 1024);
	op(FOP_MUNMAP); A_page(10); L_pages16(3);
	op(FOP_MPROTECT); A_page(600); L_pages(20); b(P_R);
	read_pages(0, 1024); madvise(512, 512, AD_COLLAPSE); op(FOP_CHECK);
	emit("thp-split");

	begin(FUZZ_HDR_THP_ALWAYS); /* THP always: faults, fork, DONTNEED of part, COLLAPSE */
	op(FOP_MMAP); A_pmd(1); L_pmds(1); b(P_RW); b(MF_FIXED);
	write_pages(512, 1, 52); read_pages(512, 512); op(FOP_FORK);
	child_write(700, 1, 54); write_pages(512, 2, 56); child_read(512, 512);
	madvise(512, 16, AD_DONTNEED); madvise(512, 512, AD_COLLAPSE); read_pages(512, 512);
	emit("thp-fork");

	begin(FUZZ_HDR_THP_ALWAYS | FUZZ_HDR_NO_ZERO_PAGE); /* THP read faults, mremap a PMD */
	op(FOP_MMAP); A_pmd(0); L_pmds(2); b(P_RW); b(MF_FIXED);
	read_pages(0, 1024); write_pages(0, 1, 58);
	op(FOP_MREMAP); A_pmd(0); L_pmds(1); L_pmds(1); b(1 | 2); A_pmd(2);
	read_pages(1024, 512); op(FOP_SET_THP); b(2);
	op(FOP_MREMAP); A_pmd(2); L_pmds(1); L_pmds(1); b(1 | 2 | 4); A_pmd(3);
	read_pages(1024, 1024); op(FOP_CHECK);
	emit("thp-mremap");

	begin(0); /* migrate to the device and back; CPU faults pages back */
	mmap_fixed(0, 32, P_RW); write_pages(0, 32, 60);
	dev_op(FOP_TO_DEV, 0, 0, 32); read_pages(0, 4); write_pages(8, 4, 62);
	dev_op(FOP_TO_SYS, 0, 16, 8); op(FOP_CHECK); read_pages(0, 32);
	emit("migrate");

	begin(0); /* migrate THPs (large device folios) and split them */
	map_thp(0, 2, 64); op(FOP_TO_DEV); b(0); A_pmd(0); N_pmds(2); read_pages(3, 1);
	op(FOP_MUNMAP); A_page(600); L_pages16(2); dev_op(FOP_TO_SYS, 0, 512, 512);
	op(FOP_FORK); child_write(100, 1, 66); dev_op(FOP_TO_SYS, 0, 0, 512); op(FOP_CHECK);
	emit("migrate-thp");

	begin(FUZZ_HDR_SECOND_DEV); /* device read and write, COW, snapshot, two devices */
	mmap_fixed(0, 16, P_RW); write_pages(0, 16, 68);
	dev_op(FOP_DEV_READ, 0, 0, 16);
	op(FOP_DEV_WRITE); b(1); A_page(4); N_pages(4); b(70);
	read_pages(0, 16); op(FOP_FORK);
	op(FOP_DEV_WRITE); b(0); A_page(0); N_pages(2); b(72);
	child_read(0, 16); dev_op(FOP_DEV_SNAPSHOT, 0, 0, 16); dev_op(FOP_DEV_SNAPSHOT, 1, 0, 32);
	dev_op(FOP_TO_DEV, 1, 0, 8); dev_op(FOP_DEV_READ, 0, 0, 16); dev_op(FOP_TO_DEV, 0, 0, 8);
	dev_op(FOP_DEV_SNAPSHOT, 1, 0, 16);
	emit("device-rw");

	begin(FUZZ_HDR_COHERENT | FUZZ_HDR_SECOND_DEV); /* device-coherent memory */
	mmap_fixed(0, 16, P_RW); write_pages(0, 16, 74);
	dev_op(FOP_TO_DEV, 0, 0, 16); read_pages(0, 16); write_pages(4, 2, 76);
	op(FOP_FORK); child_write(0, 1, 78); dev_op(FOP_TO_DEV, 1, 8, 8);
	dev_op(FOP_DEV_SNAPSHOT, 0, 0, 16); op(FOP_DEV_WRITE); b(1); A_page(8); N_pages(8); b(80);
	op(FOP_CHECK);
	emit("coherent");

	begin(0); /* RELEASE with pages on the device */
	map_thp(0, 1, 82); mmap_fixed(600, 8, P_RW); write_pages(600, 8, 84);
	dev_op(FOP_TO_DEV, 0, 0, 512); dev_op(FOP_TO_DEV, 0, 600, 8);
	op(FOP_DEV_RELEASE); b(0); read_pages(0, 512); read_pages(600, 8);
	dev_op(FOP_TO_DEV, 0, 0, 512); op(FOP_DEV_RELEASE); b(0);
	emit("release");

	begin(0); /* bad device commands: unaligned, wrapping, NULL buffer, unmapped, read-only */
	mmap_fixed(0, 8, P_R);
	op(FOP_DEV_READ); b(0); A_off(5); N_pages16(1);
	op(FOP_DEV_READ); b(0); A_page(0); N_special(1);
	op(FOP_DEV_READ); b(0); A_page(0); N_special(2);
	op(FOP_DEV_READ); b(0); A_page(0); N_special(3);
	op(FOP_DEV_READ); b(6); A_page(0); N_pages16(2);
	op(FOP_DEV_WRITE); b(6); A_page(0); N_pages16(2); b(1);
	op(FOP_DEV_WRITE); b(0); A_page(0); N_pages16(2); b(1);
	op(FOP_DEV_READ); b(0); A_page(100); N_pages16(2);
	op(FOP_TO_DEV); b(0); A_page(100); N_pages16(2);
	op(FOP_TO_DEV); b(0); A_special(5); N_special(3);
	op(FOP_DEV_SNAPSHOT); b(0); A_page(0); N_special(0);
	op(FOP_DEV_SNAPSHOT); b(6); A_page(0); N_pages16(4);
	dev_op(FOP_DEV_SNAPSHOT, 0, 0, 64);
	emit("device-bad");

	begin(0); /* other ioctls: EXCLUSIVE, FLAGS (FAIL_ALLOC), unknown numbers */
	mmap_fixed(0, 8, P_RW); write_pages(0, 8, 86);
	for (unsigned int k = 0; k < 8; k++) {
		op(FOP_DEV_IOCTL); b(0); b(k);
		if (k == 7)
			w32(0x4848);
		A_page(0); N_pages16(8);
		if (k == 2)
			dev_op(FOP_TO_DEV, 0, 0, 8);
	}
	dev_op(FOP_TO_DEV, 0, 0, 8); read_pages(0, 8);
	emit("device-ioctl");

	begin(0); /* RAM allocation failures: faults, writes, fork, THP, device */
	mmap_fixed(0, 64, P_RW); write_pages(0, 8, 88); fail_ram(30, 1, 255, 0);
	write_pages(0, 64, 90); read_pages(0, 64); op(FOP_FORK); child_write(0, 8, 92);
	map_thp(2, 1, 94); dev_op(FOP_TO_DEV, 0, 0, 64); read_pages(0, 64);
	dev_op(FOP_DEV_WRITE, 0, 0, 8); b(96); fail_ram_clear(); op(FOP_CHECK);
	emit("fail-ram");

	begin(FUZZ_HDR_THP_ALWAYS); /* large-folio failures only: THP falls back */
	fail_ram(100, 1, 255, 9); map_thp(0, 2, 98); read_pages(0, 1024);
	dev_op(FOP_TO_DEV, 0, 0, 1024); read_pages(0, 1024); fail_ram_clear();
	emit("fail-thp");

	begin(0); /* the Nth allocation fails */
	mmap_fixed(0, 32, P_RW); fail_ram(100, 5, 1, 0); write_pages(0, 32, 100);
	op(FOP_FORK); child_write(0, 32, 102); read_pages(0, 32); op(FOP_CHECK);
	emit("fail-nth");

	begin(FUZZ_HDR_SECOND_DEV); /* device memory allocation failures */
	map_thp(0, 1, 104); mmap_fixed(600, 16, P_RW); write_pages(600, 16, 106);
	op(FOP_FAIL_DEV); b(0); b(0x40); b(50); b(1); b(255); b(0); b(3);
	dev_op(FOP_TO_DEV, 0, 0, 512); dev_op(FOP_TO_DEV, 0, 600, 16);
	op(FOP_FAIL_DEV); b(1); b(0x40); b(100); b(1); b(255); b(9); b(3);
	dev_op(FOP_TO_DEV, 1, 0, 512);
	op(FOP_FAIL_DEV); b(0); b(0xc0); b(100); b(1); b(255); b(0); b(3);
	op(FOP_FAIL_DEV); b(0); b(0); b(0); b(0); b(0); b(0); b(0);
	read_pages(0, 512); op(FOP_CHECK);
	emit("fail-dev");

	begin(0); /* unmapping and remapping pages that live on the device */
	mmap_fixed(0, 32, P_RW); write_pages(0, 32, 108); dev_op(FOP_TO_DEV, 0, 0, 32);
	op(FOP_MUNMAP); A_page(4); L_pages16(4);
	op(FOP_MPROTECT); A_page(8); L_pages16(4); b(P_R);
	madvise(12, 4, AD_DONTNEED);
	op(FOP_MREMAP); A_page(16); L_pages(8); L_pages(8); b(1 | 2); A_page(200);
	madvise(24, 4, AD_FREE); op(FOP_DROP_LAZYFREE);
	op(FOP_FORK); child_read(0, 32); op(FOP_CHECK);
	emit("device-vma-ops");

	begin(0); /* the window's edges and outside it */
	mmap_fixed(FUZZ_WIN_PAGES - 4, 8, P_RW);
	op(FOP_MMAP); A_page(0); L_pages16(4); b(P_RW); b(MF_FIXED);
	write_pages(FUZZ_WIN_PAGES - 4, 4, 110);
	op(FOP_CPU_WRITE); b(0); w16(0); L_pages16(2); b(112);
	op(FOP_MUNMAP); A_raw(0); L_special(4);
	op(FOP_CHECK);
	emit("window-edges");

	begin(0); /* a long mixed sequence */
	map_thp(0, 1, 114); mmap_fixed(600, 64, P_RW); write_pages(600, 64, 116);
	op(FOP_FORK); dev_op(FOP_TO_DEV, 0, 0, 512); dev_op(FOP_TO_DEV, 0, 600, 64);
	child_write(610, 4, 118); write_pages(620, 4, 120);
	op(FOP_MREMAP); A_page(600); L_pages(64); L_pages(128); b(1); A_page(0);
	madvise(0, 600, AD_DONTNEED); dev_op(FOP_DEV_READ, 0, 0, 16);
	op(FOP_ATOMIC); b(0); A_page(1); w32(3);
	fail_ram(20, 1, 255, 0); op(FOP_FORK); child_read(0, 64); fail_ram_clear();
	op(FOP_CHILD_EXIT); op(FOP_CHECK);
	emit("mixed");

	begin(0); /* RAM full (MAP_POPULATE outside the window) with pages on the device */
	mmap_fixed(0, 512, P_RW); write_pages(0, 512, 122); dev_op(FOP_TO_DEV, 0, 0, 512);
	op(FOP_MMAP); A_raw(0x40000000); L_pages(2048); b(P_RW); b(MF_FIXED | MF_POPULATE);
	for (unsigned int k = 0; k < 6; k++) {
		op(FOP_MMAP); A_raw(0x40000000 + (k + 1) * 0x800000UL); L_pages(2048); b(P_RW);
		b(MF_FIXED | MF_POPULATE);
	}
	op(FOP_DEV_RELEASE); b(0); read_pages(0, 512); write_pages(0, 4, 124);
	map_thp(2, 1, 126); op(FOP_FORK); child_write(0, 8, 128); op(FOP_CHECK);
	emit("ram-full");

	printf("gen_corpus: %d inputs written to %s\n", files, outdir);
	return 0;
}
