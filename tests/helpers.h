/* SPDX-License-Identifier: MIT */
/*
 * tests/helpers.h - the fixture every unit test uses: a fresh machine per
 * test, and at teardown the invariant audit and a leak check (after the last
 * mmput, every page of RAM but the reserved zero page is free).
 */
#ifndef UHMM_TESTS_HELPERS_H
#define UHMM_TESTS_HELPERS_H

#include <criterion/criterion.h>
#include <uhmm/uhmm.h>

extern struct uhmm_machine *machine;

/* Build the global machine with @config (NULL for defaults). */
void machine_setup_with(const struct uhmm_machine_config *config);
/* Criterion .init / .fini for the default machine (1 GiB RAM, THP madvise). */
void machine_setup(void);
void machine_teardown(void);
/* Assert that the audit finds nothing (prints what it finds). */
void assert_audit_clean(void);
/* A new mm on the global machine; asserts success. */
struct mm_struct *new_mm(void);
/* mm_mmap() that asserts success and returns the address. */
unsigned long map_anon(struct mm_struct *mm, unsigned long addr, unsigned long len, int prot,
		       int extra_flags);
/* A 2 MiB-aligned anonymous RW mapping of @len with MADV_HUGEPAGE applied. */
unsigned long map_thp(struct mm_struct *mm, unsigned long len);
/* Fill @len bytes at @addr with pattern(seed, offset) via cpu_write. */
void fill_pattern(struct mm_struct *mm, unsigned long addr, size_t len, uint32_t seed);
/* Assert the bytes at @addr hold pattern(seed, offset). */
void check_pattern(struct mm_struct *mm, unsigned long addr, size_t len, uint32_t seed);
/* Assert @len bytes at @addr read as zero. */
void check_zero(struct mm_struct *mm, unsigned long addr, size_t len);
/* The pagemap entry of @addr. */
uint64_t pagemap(struct mm_struct *mm, unsigned long addr);

#endif
