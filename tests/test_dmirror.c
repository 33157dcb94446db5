/* SPDX-License-Identifier: MIT */
/*
 * tests/test_dmirror.c - the dmirror driver (drivers/dmirror.c): every
 * command's argument checks and errno, its counters (cpages, faults, the
 * device's calloc/cfree), the device page table kept coherent by the
 * notifier, FAIL_ALLOC, eviction on RELEASE and on close, module exit, and
 * the driver's audit (every device page back on a free list) after each.
 */
#include <stdlib.h>
#include <string.h>

#include <uhmm/dmirror.h>

#include "helpers.h"

#define NPAGES 1024UL /* hmm-tests' 4 MiB buffer */
#define DEVMEM_PAGES ((256UL << 20) >> PAGE_SHIFT)

static struct dmirror_module *mod;

static void dmirror_setup(void)
{
	machine_setup();
	mod = dmirror_module_init(machine);
	cr_assert(!IS_ERR_OR_NULL(mod), "dmirror_module_init: %ld", PTR_ERR(mod));
}

/* Every test closes its mirrors and drops its mms; then exit and the audits. */
static void dmirror_teardown(void)
{
	if (mod) {
		cr_assert_eq(dmirror_audit(mod, stderr), 0, "the dmirror audit failed");
		cr_assert_eq(dmirror_module_exit(mod), 0);
		mod = NULL;
	}
	machine_teardown();
}

TestSuite(dmirror, .init = dmirror_setup, .fini = dmirror_teardown);

static struct dmirror *open_dev(unsigned int minor, struct mm_struct *mm)
{
	struct dmirror *d = dmirror_open(mod, minor, mm);

	cr_assert(!IS_ERR_OR_NULL(d), "dmirror_open(%u): %ld", minor, PTR_ERR(d));
	return d;
}

static struct dmirror_stats stats(unsigned int minor)
{
	struct dmirror_stats st;

	cr_assert_eq(dmirror_device_stats(mod, minor, &st), 0);
	return st;
}

static void check_buf(const uint8_t *buf, unsigned long len, uint32_t seed)
{
	for (unsigned long i = 0; i < len; i++)
		if (buf[i] != pattern_byte(seed, i))
			cr_assert_fail("byte %#lx is %#x, want %#x", i, buf[i], pattern_byte(seed, i));
}

static void fill_buf(uint8_t *buf, unsigned long len, uint32_t seed)
{
	for (unsigned long i = 0; i < len; i++)
		buf[i] = pattern_byte(seed, i);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	cr_assert(p);
	return p;
}

/* ---- open, close, module exit ---- */

Test(dmirror, open_close_and_bad_minor)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d[DMIRROR_NDEVICES];

	for (unsigned int i = 0; i < DMIRROR_NDEVICES; i++) {
		struct dmirror_stats st = stats(i);

		cr_assert_eq(st.nr_chunks, 1, "dev%u starts with one chunk", i);
		cr_assert_eq(st.nr_pages, DEVMEM_PAGES);
		cr_assert_eq(st.free_pages, DEVMEM_PAGES, "the first chunk is all order-0 pages");
		cr_assert_eq(st.free_folios, 0);
		cr_assert_eq(st.calloc, 0);
		d[i] = open_dev(i, mm);
	}
	cr_assert_eq(atomic_load(&mm->mm_users), 1 + DMIRROR_NDEVICES, "each open mmget()s");
	cr_assert_eq(PTR_ERR(dmirror_open(mod, DMIRROR_NDEVICES, mm)), -ENODEV);
	cr_assert_eq(PTR_ERR(dmirror_open(mod, 99, mm)), -ENODEV);
	cr_assert_eq(dmirror_device_stats(mod, DMIRROR_NDEVICES, &(struct dmirror_stats){0}),
		     -ENODEV);
	for (unsigned int i = 0; i < DMIRROR_NDEVICES; i++)
		dmirror_release(d[i]);
	cr_assert_eq(atomic_load(&mm->mm_users), 1);
	mmput(mm);
}

Test(dmirror, module_exit_with_an_open_device_is_ebusy)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(3, mm);

	cr_assert_eq(dmirror_module_exit(mod), -EBUSY);
	/* Nothing was torn down: the device still works. */
	cr_assert_eq(stats(3).nr_chunks, 1);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_FLAGS, 0x10000, NULL, 1, NULL), 0);
	dmirror_release(d);
	mmput(mm);
	cr_assert_eq(dmirror_audit(mod, stderr), 0);
	cr_assert_eq(dmirror_module_exit(mod), 0);
	mod = NULL;
}

Test(dmirror, release_after_the_last_mmput_tears_the_mm_down)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long addr = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);

	fill_pattern(mm, addr, 4 * PAGE_SIZE, 1);
	mmput(mm); /* the mirror's reference keeps the mm alive */
	cr_assert_eq(atomic_load(&mm->mm_users), 1);
	check_pattern(mm, addr, 4 * PAGE_SIZE, 1);
	dmirror_release(d); /* drops the last user: the pages go */
}

/* ---- argument checks ---- */

Test(dmirror, ioctl_argument_checks)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long addr = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint8_t buf[4 * PAGE_SIZE];
	struct hmm_dmirror_cmd cmd;
	static const unsigned long reqs[] = {
		HMM_DMIRROR_READ,     HMM_DMIRROR_WRITE,     HMM_DMIRROR_MIGRATE_TO_DEV,
		HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_EXCLUSIVE,
		HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_RELEASE, HMM_DMIRROR_FLAGS,
	};

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		/* Unaligned address. */
		cr_assert_eq(dmirror_cmd(d, reqs[i], addr + 1, buf, 1, &cmd), -EINVAL);
		cr_assert_eq(cmd.cpages, 0xdead, "a failed command copies nothing back");
		cr_assert_eq(cmd.faults, 0xbeef);
		/* Empty range. */
		cr_assert_eq(dmirror_cmd(d, reqs[i], addr, buf, 0, NULL), -EINVAL);
		/* A range that wraps around the address space. */
		cr_assert_eq(dmirror_cmd(d, reqs[i], -PAGE_SIZE, buf, 2, NULL), -EINVAL);
		cr_assert_eq(dmirror_cmd(d, reqs[i], addr, buf, -1UL, NULL), -EINVAL);
	}
	/* Unknown commands. */
	cr_assert_eq(dmirror_cmd(d, _IOWR('H', 0x09, struct hmm_dmirror_cmd), addr, buf, 1, NULL), -EINVAL);
	cr_assert_eq(dmirror_cmd(d, _IOWR('H', 0x0a, struct hmm_dmirror_cmd), addr, buf, 1, NULL), -EINVAL);
	cr_assert_eq(dmirror_cmd(d, _IOR('H', 0x00, struct hmm_dmirror_cmd), addr, buf, 1, NULL), -EINVAL);
	cr_assert_eq(dmirror_cmd(d, 0, addr, buf, 1, NULL), -EINVAL);
	/* No device-exclusive entries in uhmm yet. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_EXCLUSIVE, addr, buf, 1, NULL), -EOPNOTSUPP);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_CHECK_EXCLUSIVE, addr, buf, 1, NULL), -EOPNOTSUPP);
	/* A NULL command, a NULL buffer. */
	cr_assert_eq(dmirror_ioctl(d, HMM_DMIRROR_READ, NULL), -EFAULT);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, NULL, 1, NULL), -EFAULT);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_WRITE, addr, NULL, 1, NULL), -EFAULT);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_SNAPSHOT, addr, NULL, 1, NULL), -EFAULT);
	/* FLAGS and RELEASE succeed and zero the counters. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_FLAGS, addr, NULL, 1, &cmd), 0);
	cr_assert_eq(cmd.cpages, 0);
	cr_assert_eq(cmd.faults, 0);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_FLAGS, addr, NULL, 0, NULL), -EINVAL,
		     "npages 0 fails the range check even for FLAGS, as in test_hmm");
	dmirror_release(d);
	mmput(mm);
}

/* ---- READ / WRITE ---- */

Test(dmirror, read_faults_once_then_hits_the_device_page_table)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long size = NPAGES * PAGE_SIZE;
	unsigned long addr = map_anon(mm, 0, size, PROT_READ | PROT_WRITE, 0);
	uint8_t *buf = xmalloc(size), one;
	struct hmm_dmirror_cmd cmd;

	/* hmm-tests anon_read: pages 0 and 1 untouched, the rest written. */
	fill_at(mm, addr, 2 * PAGE_SIZE, size - 2 * PAGE_SIZE, 7);
	cr_assert_eq(mm_mprotect(mm, addr, size, PROT_READ), 0);
	cr_assert_eq(cpu_read(mm, addr + PAGE_SIZE, &one, 1), 0); /* the zero page */
	memset(buf, 0xa5, size);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.cpages, NPAGES);
	cr_assert_eq(cmd.faults, 1);
	for (unsigned long i = 0; i < 2 * PAGE_SIZE; i++)
		cr_assert_eq(buf[i], 0, "byte %#lx", i);
	for (unsigned long i = 2 * PAGE_SIZE; i < size; i++)
		cr_assert_eq(buf[i], pattern_byte(7, i), "byte %#lx", i);
	/* Page 0 was pte_none: faulting it for READ maps the zero page. */
	cr_assert(uhmm_kpageflags(pfn_at(mm, addr)) & (1ULL << KPF_ZERO_PAGE));

	/* Everything is in the device page table now: no fault round. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.cpages, NPAGES);
	cr_assert_eq(cmd.faults, 0);
	free(buf);
	dmirror_release(d);
	mmput(mm);
}

Test(dmirror, read_of_prot_none_or_a_hole_is_efault_and_copies_nothing)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long addr = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint8_t buf[4 * PAGE_SIZE];
	struct hmm_dmirror_cmd cmd;

	fill_pattern(mm, addr, sizeof(buf), 3);
	cr_assert_eq(mm_mprotect(mm, addr, sizeof(buf), PROT_NONE), 0);
	memset(buf, 0x5a, sizeof(buf));
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 4, &cmd), -EFAULT);
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0x5a, "nothing copied out on failure");
	cr_assert_eq(mm_mprotect(mm, addr, sizeof(buf), PROT_READ | PROT_WRITE), 0);
	check_pattern(mm, addr, sizeof(buf), 3);

	/* A hole in the middle: the pages before it are read, then -EFAULT. */
	cr_assert_eq(mm_munmap(mm, addr + 2 * PAGE_SIZE, PAGE_SIZE), 0);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 4, &cmd), -EFAULT);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_WRITE, addr, buf, 4, &cmd), -EFAULT);
	/* Nothing mapped at all. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, 0x10000, buf, 1, &cmd), -EFAULT);
	dmirror_release(d);
	mmput(mm);
}

Test(dmirror, write_stores_through_the_device)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long size = NPAGES * PAGE_SIZE;
	unsigned long addr = map_anon(mm, 0, size, PROT_READ | PROT_WRITE, 0);
	uint8_t *buf = xmalloc(size);
	struct hmm_dmirror_cmd cmd;

	fill_buf(buf, size, 11);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_WRITE, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.cpages, NPAGES);
	cr_assert_eq(cmd.faults, 1);
	check_pattern(mm, addr, size, 11);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)NPAGES, "the write faults populated it");
	/* Again: write-tagged entries, no fault. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_WRITE, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.faults, 0);
	free(buf);
	dmirror_release(d);
	mmput(mm);
}

Test(dmirror, write_to_a_read_only_vma_is_eperm)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long size = NPAGES * PAGE_SIZE;
	unsigned long addr = map_anon(mm, 0, size, PROT_READ, 0);
	uint8_t *buf = xmalloc(size);
	struct hmm_dmirror_cmd cmd;

	/* hmm-tests anon_write_prot. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 1, &cmd), 0);
	cr_assert_eq(cmd.cpages, 1);
	cr_assert_eq(cmd.faults, 1);
	fill_buf(buf, size, 5);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_WRITE, addr, buf, NPAGES, &cmd), -EPERM);
	check_zero(mm, addr, size);
	/* The read-tagged entry of page 0 does not allow a write either. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_WRITE, addr, buf, 1, &cmd), -EPERM);
	cr_assert_eq(mm_mprotect(mm, addr, size, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_WRITE, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.cpages, NPAGES);
	cr_assert_eq(cmd.faults, 1);
	check_pattern(mm, addr, size, 5);
	free(buf);
	dmirror_release(d);
	mmput(mm);
}

/* ---- the notifier keeps the device page table coherent ---- */

Test(dmirror, munmap_erases_device_entries)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long addr = map_anon(mm, 0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint8_t buf[8 * PAGE_SIZE];
	struct hmm_dmirror_cmd cmd;

	fill_pattern(mm, addr, sizeof(buf), 1);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 8, &cmd), 0);
	cr_assert_eq(cmd.faults, 1);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 8, &cmd), 0);
	cr_assert_eq(cmd.faults, 0);

	/* Unmapping pages 2..3 frees them: the device must forget them. */
	cr_assert_eq(mm_munmap(mm, addr + 2 * PAGE_SIZE, 2 * PAGE_SIZE), 0);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 8, &cmd), -EFAULT);
	/* Pages 0..1 still mapped in the device: read without a fault. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 2, &cmd), 0);
	cr_assert_eq(cmd.faults, 0);
	/* New memory at the same place: faulted again, the new bytes. */
	cr_assert_eq(mm_mmap(mm, addr + 2 * PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, NULL, 0),
		     (long)(addr + 2 * PAGE_SIZE));
	fill_at(mm, addr, 2 * PAGE_SIZE, 2 * PAGE_SIZE, 9);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr + 2 * PAGE_SIZE, buf, 2, &cmd), 0);
	cr_assert_eq(cmd.faults, 1);
	for (unsigned long i = 0; i < 2 * PAGE_SIZE; i++)
		cr_assert_eq(buf[i], pattern_byte(9, 2 * PAGE_SIZE + i));
	dmirror_release(d);
	mmput(mm);
}

Test(dmirror, mprotect_and_dontneed_erase_device_entries)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(1, mm);
	unsigned long addr = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint8_t buf[4 * PAGE_SIZE];
	struct hmm_dmirror_cmd cmd;

	fill_buf(buf, sizeof(buf), 4);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_WRITE, addr, buf, 4, &cmd), 0);
	cr_assert_eq(cmd.faults, 1);
	/* Write-protecting the VMA drops the device's write entries. */
	cr_assert_eq(mm_mprotect(mm, addr, sizeof(buf), PROT_READ), 0);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_WRITE, addr, buf, 4, &cmd), -EPERM);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 4, &cmd), 0);
	cr_assert_eq(cmd.faults, 1, "mprotect invalidated the entries");
	check_buf(buf, sizeof(buf), 4);
	cr_assert_eq(mm_mprotect(mm, addr, sizeof(buf), PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 4, &cmd), 0);
	cr_assert_eq(cmd.faults, 1);
	/* MADV_DONTNEED frees the pages: the device reads the zero page after a new fault. */
	cr_assert_eq(mm_madvise(mm, addr, sizeof(buf), MADV_DONTNEED), 0);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 4, &cmd), 0);
	cr_assert_eq(cmd.faults, 1);
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0);
	dmirror_release(d);
	mmput(mm);
}

Test(dmirror, mirrors_of_two_devices_are_independent)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d0 = open_dev(0, mm), *d1 = open_dev(1, mm);
	unsigned long addr = map_anon(mm, 0, 6 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint8_t buf[6 * PAGE_SIZE];
	struct hmm_dmirror_cmd cmd;

	fill_pattern(mm, addr, sizeof(buf), 8);
	cr_assert_eq(mm_mprotect(mm, addr, sizeof(buf), PROT_READ), 0);
	cr_assert_eq(dmirror_cmd(d0, HMM_DMIRROR_READ, addr, buf, 6, &cmd), 0);
	cr_assert_eq(cmd.faults, 1);
	cr_assert_eq(dmirror_cmd(d1, HMM_DMIRROR_READ, addr, buf, 6, &cmd), 0);
	cr_assert_eq(cmd.faults, 1, "d1 has its own device page table");
	check_buf(buf, sizeof(buf), 8);
	dmirror_release(d0);
	cr_assert_eq(dmirror_cmd(d1, HMM_DMIRROR_READ, addr, buf, 6, &cmd), 0);
	cr_assert_eq(cmd.faults, 0);
	dmirror_release(d1);
	mmput(mm);
}

/* ---- migration ---- */

static void check_snapshot(struct dmirror *d, unsigned long addr, unsigned long npages,
			   uint8_t want)
{
	uint8_t *m = xmalloc(npages);
	struct hmm_dmirror_cmd cmd;

	memset(m, 0xee, npages);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_SNAPSHOT, addr, m, npages, &cmd), 0);
	cr_assert_eq(cmd.cpages, npages);
	for (unsigned long i = 0; i < npages; i++)
		cr_assert_eq(m[i], want, "snapshot[%lu] = %#x, want %#x", i, m[i], want);
	free(m);
}

static void migrate_round_trip(unsigned int minor, uint8_t local)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(minor, mm);
	unsigned long size = NPAGES * PAGE_SIZE;
	unsigned long addr = map_anon(mm, 0, size, PROT_READ | PROT_WRITE, 0);
	uint8_t *buf = xmalloc(size);
	struct hmm_dmirror_cmd cmd;
	struct dmirror_stats st;

	cr_assert_eq(mm_madvise(mm, addr, size, MADV_NOHUGEPAGE), 0);
	fill_pattern(mm, addr, size, 2);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.cpages, NPAGES);
	check_buf(buf, size, 2);
	st = stats(minor);
	cr_assert_eq(st.calloc - st.cfree, NPAGES, "every page is on the device");
	cr_assert_eq(st.free_pages, DEVMEM_PAGES - NPAGES);
	check_snapshot(d, addr, NPAGES, local | HMM_DMIRROR_PROT_WRITE);
	if (local == HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL) {
		uint64_t e = pagemap(mm, addr);

		cr_assert(e & PM_SWAP, "a device-private entry reads as swap: %#llx",
			  (unsigned long long)e);
		cr_assert(!(e & PM_PRESENT));
	}
	/* The device reads its own memory without faulting. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.faults, 0);
	check_buf(buf, size, 2);
	/* Migrating again finds nothing in system memory, and still reads it all. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.cpages, NPAGES);
	cr_assert_eq(stats(minor).calloc, st.calloc);

	/* Back to system memory. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_SYS, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.cpages, NPAGES);
	st = stats(minor);
	cr_assert_eq(st.calloc, st.cfree, "every device page is free again");
	cr_assert_eq(st.free_pages, DEVMEM_PAGES);
	check_snapshot(d, addr, NPAGES, HMM_DMIRROR_PROT_WRITE);
	check_pattern(mm, addr, size, 2);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), (long)NPAGES);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_SYS, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.cpages, 0, "nothing left on the device");
	free(buf);
	dmirror_release(d);
	mmput(mm);
}

Test(dmirror, migrate_private_to_device_and_back)
{
	migrate_round_trip(0, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL);
}

Test(dmirror, migrate_coherent_to_device_and_back)
{
	migrate_round_trip(2, HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL);
}

Test(dmirror, cpu_fault_on_device_private_memory_migrates_one_page_back)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long addr = map_anon(mm, 0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint8_t buf[8 * PAGE_SIZE], byte;
	struct hmm_dmirror_cmd cmd;
	uint8_t m[8];

	fill_pattern(mm, addr, sizeof(buf), 6);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, 8, &cmd), 0);
	cr_assert_eq(cmd.cpages, 8);
	cr_assert_eq(cpu_read(mm, addr + 3 * PAGE_SIZE + 5, &byte, 1), 0);
	cr_assert_eq(byte, pattern_byte(6, 3 * PAGE_SIZE + 5));
	cr_assert_eq(stats(0).calloc - stats(0).cfree, 7, "one page came back");
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_SNAPSHOT, addr, m, 8, &cmd), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(m[i], i == 3 ? HMM_DMIRROR_PROT_WRITE
					  : HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE,
			     "m[%d] = %#x", i, m[i]);
	/* The device reads page 3 again from system memory: a fault round. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, 8, &cmd), 0);
	cr_assert_eq(cmd.faults, 1);
	check_buf(buf, sizeof(buf), 6);
	check_pattern(mm, addr, sizeof(buf), 6);
	cr_assert_eq(stats(0).calloc, stats(0).cfree);
	dmirror_release(d);
	mmput(mm);
}

Test(dmirror, migrate_argument_errors)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d0 = open_dev(0, mm), *d1 = open_dev(1, mm);
	unsigned long addr = map_anon(mm, 0, 6 * PAGE_SIZE, PROT_NONE, 0);
	uint8_t buf[6 * PAGE_SIZE];
	struct hmm_dmirror_cmd cmd;
	unsigned long shared;

	/* hmm-tests migrate_mixed. */
	cr_assert_eq(dmirror_cmd(d1, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, 6, &cmd), -EINVAL,
		     "PROT_NONE: no VM_READ");
	cr_assert_eq(mm_munmap(mm, addr + PAGE_SIZE, PAGE_SIZE), 0);
	cr_assert_eq(dmirror_cmd(d1, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, 3, &cmd), -EINVAL, "a hole");
	cr_assert_eq(dmirror_cmd(d1, HMM_DMIRROR_MIGRATE_TO_SYS, addr + PAGE_SIZE, buf, 1, &cmd), -EINVAL);
	cr_assert_eq(mm_mprotect(mm, addr + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ), 0);
	cr_assert_eq(cpu_read(mm, addr + 2 * PAGE_SIZE, buf, 1), 0);
	cr_assert_eq(mm_mprotect(mm, addr + 3 * PAGE_SIZE, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	fill_at(mm, addr, 3 * PAGE_SIZE, 3 * PAGE_SIZE, 12);
	cr_assert_eq(mm_mprotect(mm, addr + 3 * PAGE_SIZE, PAGE_SIZE, PROT_READ), 0);
	cr_assert_eq(dmirror_cmd(d1, HMM_DMIRROR_MIGRATE_TO_DEV, addr + 2 * PAGE_SIZE, buf, 4, &cmd), 0);
	cr_assert_eq(cmd.cpages, 4);
	cr_assert_eq(dmirror_cmd(d0, HMM_DMIRROR_MIGRATE_TO_DEV, addr + 5 * PAGE_SIZE, buf, 1, &cmd),
		     -ENOENT, "another device's page is not selected");
	cr_assert_eq(stats(0).calloc, 0);

	/* Shared anonymous memory does not migrate. */
	shared = (unsigned long)mm_mmap(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, NULL, 0);
	cr_assert(IS_ALIGNED(shared, PAGE_SIZE) && (long)shared > 0);
	fill_pattern(mm, shared, 4 * PAGE_SIZE, 18);
	memset(buf, 0x3c, sizeof(buf));
	cr_assert_eq(dmirror_cmd(d0, HMM_DMIRROR_MIGRATE_TO_DEV, shared, buf, 4, &cmd), -ENOENT);
	for (size_t i = 0; i < 4 * PAGE_SIZE; i++)
		cr_assert_eq(buf[i], 0x3c, "nothing read back on failure");
	cr_assert_eq(stats(0).calloc - stats(0).cfree, 0);
	dmirror_release(d0);
	dmirror_release(d1);
	check_at(mm, addr, 3 * PAGE_SIZE, 3 * PAGE_SIZE, 12);
	mmput(mm);
}

Test(dmirror, fail_alloc_is_one_shot)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint8_t buf[2 * PAGE_SIZE];
	struct hmm_dmirror_cmd cmd;

	fill_pattern(mm, addr, sizeof(buf), 13);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_FLAGS, addr, NULL, HMM_DMIRROR_FLAG_FAIL_ALLOC, &cmd), 0);
	/* The first device allocation fails: page 0 stays in system memory. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, 2, &cmd), -ENOENT);
	cr_assert_eq(stats(0).calloc, 1, "only page 1 migrated");
	cr_assert(pagemap(mm, addr) & PM_PRESENT);
	cr_assert(pagemap(mm, addr + PAGE_SIZE) & PM_SWAP);
	/* The flag is gone: page 0 migrates now. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, 2, &cmd), 0);
	cr_assert_eq(cmd.cpages, 2);
	check_buf(buf, sizeof(buf), 13);
	cr_assert_eq(stats(0).calloc, 2);
	check_pattern(mm, addr, sizeof(buf), 13);
	dmirror_release(d);
	mmput(mm);
}

Test(dmirror, release_ioctl_evicts_and_frees_every_chunk)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long size = NPAGES * PAGE_SIZE;
	unsigned long addr = map_anon(mm, 0, size, PROT_READ | PROT_WRITE, 0);
	uint8_t *buf = xmalloc(size);
	struct hmm_dmirror_cmd cmd;
	struct dmirror_stats st;

	fill_pattern(mm, addr, size, 14);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.cpages, NPAGES);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_RELEASE, addr, buf, NPAGES, &cmd), 0);
	st = stats(0);
	cr_assert_eq(st.nr_chunks, 0);
	cr_assert_eq(st.free_pages, 0);
	cr_assert_eq(st.calloc, st.cfree, "eviction freed every device page");
	/* Everything is back in system memory (hmm-tests migrate_release). */
	for (unsigned long i = 0; i < NPAGES; i++)
		cr_assert(pagemap(mm, addr + i * PAGE_SIZE) & PM_PRESENT);
	check_pattern(mm, addr, size, 14);
	/* The device's page table forgot the device pages: READ faults again. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_READ, addr, buf, NPAGES, &cmd), 0);
	cr_assert_eq(cmd.faults, 1);
	check_buf(buf, size, 14);
	/* The device grows a new chunk when it needs memory again. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, 4, &cmd), 0);
	cr_assert_eq(cmd.cpages, 4);
	cr_assert_eq(stats(0).nr_chunks, 1);
	free(buf);
	dmirror_release(d);
	mmput(mm);
}

Test(dmirror, close_evicts_the_device_memory)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(1, mm);
	unsigned long addr = map_anon(mm, 0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint8_t buf[16 * PAGE_SIZE];
	struct hmm_dmirror_cmd cmd;
	struct dmirror_stats st;

	fill_pattern(mm, addr, sizeof(buf), 15);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, 16, &cmd), 0);
	dmirror_release(d);
	st = stats(1);
	cr_assert_eq(st.nr_chunks, 1, "close keeps the chunks");
	cr_assert_eq(st.free_pages, DEVMEM_PAGES);
	cr_assert_eq(st.calloc, 16);
	cr_assert_eq(st.cfree, 16);
	for (int i = 0; i < 16; i++)
		cr_assert(pagemap(mm, addr + (unsigned long)i * PAGE_SIZE) & PM_PRESENT);
	check_pattern(mm, addr, sizeof(buf), 15);
	mmput(mm);
}

Test(dmirror, exit_of_the_mm_frees_device_memory)
{
	struct mm_struct *mm = new_mm(), *other = new_mm();
	struct dmirror *d = open_dev(0, mm), *keep = open_dev(0, other);
	unsigned long addr = map_anon(mm, 0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint8_t buf[16 * PAGE_SIZE];
	struct hmm_dmirror_cmd cmd;

	fill_pattern(mm, addr, sizeof(buf), 16);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, 16, &cmd), 0);
	/* Closing keep (same device) evicts d's pages too: nothing stays on the device. */
	dmirror_release(keep);
	mmput(other);
	cr_assert_eq(stats(0).calloc, stats(0).cfree);
	check_pattern(mm, addr, sizeof(buf), 16);
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, 16, &cmd), 0);
	mmput(mm);       /* the mirror still holds a user reference */
	dmirror_release(d); /* evicts, then the last mmput zaps the RAM pages */
	cr_assert_eq(stats(0).calloc, stats(0).cfree);
}

/* ---- SNAPSHOT ---- */

Test(dmirror, snapshot_reports_every_kind_of_entry)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d0 = open_dev(0, mm), *d1 = open_dev(1, mm);
	unsigned long addr = map_anon(mm, 0, 7 * PAGE_SIZE, PROT_NONE, 0);
	uint8_t m[7], byte = 0;
	struct hmm_dmirror_cmd cmd;
	uint8_t buf[PAGE_SIZE];

	/* hmm-tests hmm2 snapshot. */
	cr_assert_eq(mm_munmap(mm, addr + PAGE_SIZE, PAGE_SIZE), 0);
	cr_assert_eq(mm_mprotect(mm, addr + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ), 0);
	cr_assert_eq(cpu_read(mm, addr + 2 * PAGE_SIZE, &byte, 1), 0);
	cr_assert_eq(mm_mprotect(mm, addr + 3 * PAGE_SIZE, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(cpu_write(mm, addr + 3 * PAGE_SIZE, &byte, 1), 0);
	cr_assert_eq(mm_mprotect(mm, addr + 3 * PAGE_SIZE, PAGE_SIZE, PROT_READ), 0);
	cr_assert_eq(cpu_write(mm, addr + 4 * PAGE_SIZE, &byte, 1), 0);
	cr_assert_eq(dmirror_cmd(d0, HMM_DMIRROR_MIGRATE_TO_DEV, addr + 5 * PAGE_SIZE, buf, 1, &cmd), 0);
	cr_assert_eq(cmd.cpages, 1);
	cr_assert_eq(dmirror_cmd(d1, HMM_DMIRROR_MIGRATE_TO_DEV, addr + 6 * PAGE_SIZE, buf, 1, &cmd), 0);
	cr_assert_eq(cmd.cpages, 1);
	memset(m, 0xee, sizeof(m));
	cr_assert_eq(dmirror_cmd(d0, HMM_DMIRROR_SNAPSHOT, addr, m, 7, &cmd), 0);
	cr_assert_eq(cmd.cpages, 7);
	cr_assert_eq(m[0], HMM_DMIRROR_PROT_ERROR);
	cr_assert_eq(m[1], HMM_DMIRROR_PROT_ERROR);
	cr_assert_eq(m[2], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
	cr_assert_eq(m[3], HMM_DMIRROR_PROT_READ);
	cr_assert_eq(m[4], HMM_DMIRROR_PROT_WRITE);
	cr_assert_eq(m[5], HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE);
	cr_assert_eq(m[6], HMM_DMIRROR_PROT_NONE, "another device's private page is not reported");
	/* A snapshot never faults: page 6 is still on device 1. */
	cr_assert(pagemap(mm, addr + 6 * PAGE_SIZE) & PM_SWAP);
	dmirror_release(d0);
	dmirror_release(d1);
	mmput(mm);
}

Test(dmirror, snapshot_of_coherent_memory_reports_local_and_remote)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d2 = open_dev(2, mm), *d3 = open_dev(3, mm);
	unsigned long addr = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	uint8_t m[2], buf[PAGE_SIZE];
	struct hmm_dmirror_cmd cmd;

	fill_pattern(mm, addr, 2 * PAGE_SIZE, 17);
	cr_assert_eq(dmirror_cmd(d2, HMM_DMIRROR_MIGRATE_TO_DEV, addr, buf, 1, &cmd), 0);
	cr_assert_eq(dmirror_cmd(d3, HMM_DMIRROR_MIGRATE_TO_DEV, addr + PAGE_SIZE, buf, 1, &cmd), 0);
	cr_assert_eq(dmirror_cmd(d2, HMM_DMIRROR_SNAPSHOT, addr, m, 2, &cmd), 0);
	cr_assert_eq(m[0], HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE);
	cr_assert_eq(m[1], HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | HMM_DMIRROR_PROT_WRITE);
	/* The CPU reads coherent memory in place: nothing moves. */
	check_pattern(mm, addr, 2 * PAGE_SIZE, 17);
	cr_assert_eq(stats(2).calloc - stats(2).cfree, 1);
	dmirror_release(d2);
	dmirror_release(d3);
	check_pattern(mm, addr, 2 * PAGE_SIZE, 17);
	mmput(mm);
}

/* ---- mmap of the device ---- */

Test(dmirror, mmap_of_the_device_maps_zeroed_driver_pages)
{
	struct mm_struct *mm = new_mm();
	struct dmirror *d = open_dev(0, mm);
	unsigned long free_before = uhmm_nr_free_pages(machine);
	long addr = dmirror_mmap(d, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	struct vm_area_struct *vma;
	struct hmm_dmirror_cmd cmd;
	struct folio *folio;
	uint8_t m[2], byte = 1;

	cr_assert_gt(addr, 0, "dmirror_mmap: %ld", addr);
	mmap_read_lock(mm);
	vma = vma_lookup(mm, (unsigned long)addr);
	cr_assert(vma);
	cr_assert(vma->vm_flags & VM_MIXEDMAP);
	mmap_read_unlock(mm);
	cr_assert_geq(free_before - uhmm_nr_free_pages(machine), 2, "two driver pages");
	folio = folio_at(mm, (unsigned long)addr);
	cr_assert_eq(folio_ref_count(folio), 1, "only the mapping holds the page");
	cr_assert_eq(folio_mapcount(folio), 1);
	cr_assert(!folio_test_anon(folio));
	cr_assert_eq(mm_get_rss(mm, MM_FILEPAGES), 2);
	check_zero(mm, (unsigned long)addr, 2 * PAGE_SIZE);
	/* hmm-tests mixedmap: a private mapping is read-only in the page table. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_SNAPSHOT, (unsigned long)addr, m, 2, &cmd), 0);
	cr_assert_eq(cmd.cpages, 2);
	cr_assert_eq(m[0], HMM_DMIRROR_PROT_READ);
	cr_assert_eq(m[1], HMM_DMIRROR_PROT_READ);
	assert_audit_clean();
	/* A CPU write copies the driver page into an anonymous one. */
	cr_assert_eq(cpu_write(mm, (unsigned long)addr, &byte, 1), 0);
	cr_assert(folio_test_anon(folio_at(mm, (unsigned long)addr)));
	cr_assert_eq(mm_get_rss(mm, MM_FILEPAGES), 1);
	/* Device mappings are not migratable: migrate_vma_setup() refuses VM_SPECIAL. */
	cr_assert_eq(dmirror_cmd(d, HMM_DMIRROR_MIGRATE_TO_DEV, (unsigned long)addr + PAGE_SIZE, m, 1,
			  &cmd),
		     -EINVAL);
	/* Shared and bad requests. */
	cr_assert_eq(dmirror_mmap(d, 0, 0, PROT_READ, MAP_SHARED), -EINVAL);
	cr_assert_eq(dmirror_mmap(d, 0, PAGE_SIZE, PROT_READ, MAP_SHARED | MAP_ANONYMOUS), -EINVAL);
	cr_assert_eq(dmirror_mmap(d, 0x10001, PAGE_SIZE, PROT_READ, MAP_SHARED | MAP_FIXED), -EINVAL);
	folio = folio_at(mm, (unsigned long)addr + PAGE_SIZE);
	cr_assert_eq(mm_munmap(mm, (unsigned long)addr, 2 * PAGE_SIZE), 0);
	cr_assert_eq(folio_ref_count(folio), 0, "unmapping freed the driver page");
	dmirror_release(d);
	mmput(mm);
}
