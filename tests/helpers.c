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
	cr_assert_eq(uhmm_nr_free_pages(machine) + uhmm_nr_reserved_pages(machine),
		     uhmm_totalram_pages(machine), "pages leaked: %lu free + %lu reserved of %lu",
		     uhmm_nr_free_pages(machine), uhmm_nr_reserved_pages(machine),
		     uhmm_totalram_pages(machine));
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

static uint8_t pattern_byte(uint32_t seed, size_t off)
{
	uint32_t x = seed * 2654435761u ^ (uint32_t)(off * 40503u) ^ (uint32_t)(off >> 12);
	return (uint8_t)(x ^ (x >> 13) ^ (x >> 21));
}

void fill_pattern(struct mm_struct *mm, unsigned long addr, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);
	cr_assert(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern_byte(seed, i);
	cr_assert_eq(cpu_write(mm, addr, buf, len), 0);
	free(buf);
}

void check_pattern(struct mm_struct *mm, unsigned long addr, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);
	cr_assert(buf);
	cr_assert_eq(cpu_read(mm, addr, buf, len), 0);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pattern_byte(seed, i))
			cr_assert_fail("byte %#lx (addr %#lx) is %#x, want %#x", (unsigned long)i,
				       addr + i, buf[i], pattern_byte(seed, i));
	free(buf);
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
