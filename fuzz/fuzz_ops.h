/* SPDX-License-Identifier: MIT */
/*
 * fuzz/fuzz_ops.h - the operation codes of the fuzz input format, shared
 * by the harness (fuzz/uhmm_fuzz.c, which documents the byte format) and
 * the seed-corpus generator (fuzz/gen_corpus.c).
 */
#ifndef UHMM_FUZZ_OPS_H
#define UHMM_FUZZ_OPS_H

/* The tracked window of the address space: 8 MiB, 2 MiB aligned. */
#define FUZZ_WIN_BASE 0x10000000UL
#define FUZZ_WIN_PAGES 2048UL
#define FUZZ_WIN_PMDS (FUZZ_WIN_PAGES / 512)

/* An input runs at most this many operations. */
#define FUZZ_MAX_OPS 400

/* Header byte bits. */
#define FUZZ_HDR_THP_ALWAYS 0x01   /* THP "always" instead of "madvise" */
#define FUZZ_HDR_COHERENT 0x02     /* first device is minor 2 (coherent), else 0 */
#define FUZZ_HDR_SECOND_DEV 0x04   /* open a second device (minor 1 or 3) */
#define FUZZ_HDR_NO_ZERO_PAGE 0x08 /* no huge zero page */

enum fuzz_op {
	FOP_MMAP,
	FOP_MUNMAP,
	FOP_MPROTECT,
	FOP_MREMAP,
	FOP_MADVISE,
	FOP_CPU_WRITE,
	FOP_CPU_READ,
	FOP_ATOMIC,
	FOP_FORK,
	FOP_CHILD_WRITE,
	FOP_CHILD_READ,
	FOP_CHILD_EXIT,
	FOP_TO_DEV,
	FOP_TO_SYS,
	FOP_DEV_READ,
	FOP_DEV_WRITE,
	FOP_DEV_SNAPSHOT,
	FOP_DEV_RELEASE,
	FOP_DEV_IOCTL,
	FOP_FAIL_RAM,
	FOP_FAIL_DEV,
	FOP_DROP_LAZYFREE,
	FOP_CHECK,
	FOP_SET_THP,
	FOP_MAP_THP,
	FOP_NR,
};

#endif /* UHMM_FUZZ_OPS_H */
