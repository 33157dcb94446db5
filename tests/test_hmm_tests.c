/* SPDX-License-Identifier: MIT */
/*
 * tests/test_hmm_tests.c - the kernel's HMM selftests
 * (tools/testing/selftests/mm/hmm-tests.c) ported to uhmm.
 *
 * Every case of the `hmm` fixture (35) and of the `hmm2` fixture (3) runs
 * in both variants, with the kernel's steps, constants and assertions:
 *
 *   suite hmm_device_private     the process opens /dev/hmm_dmirror0
 *   suite hmm_device_coherent    /dev/hmm_dmirror2
 *   suite hmm2_device_private    /dev/hmm_dmirror0 and /dev/hmm_dmirror1
 *   suite hmm2_device_coherent   /dev/hmm_dmirror2 and /dev/hmm_dmirror3
 *
 * so `hmm.hmm_device_private.migrate` of the kernel's TAP output is test
 * `migrate` of suite `hmm_device_private` here.  uhmm always has coherent
 * device memory, so the coherent variants run where the kernel would skip
 * them for want of the spm_addr_dev* module parameters.
 *
 * How the kernel test's environment maps onto uhmm:
 *   - the test process is an mm (self->mm) on a fresh machine per test; its
 *     loads and stores are cpu_read()/cpu_write() (whole ranges at a time:
 *     the kernel's word loops touch the same pages in the same order);
 *   - "insmod test_hmm" is dmirror_module_init(), open()/close() of
 *     /dev/hmm_dmirrorN are dmirror_open()/dmirror_release(), ioctl() is
 *     dmirror_ioctl(), mmap() of the device file is dmirror_mmap();
 *     cmd.ptr is a host buffer (the kernel test's malloc'ed mirror);
 *   - fork() is mm_fork(): the child is an mm this test drives directly,
 *     its _exit() (or SIGTERM) is mmput(), and waitpid() is implicit;
 *   - O_TMPFILE files are uhmm_memfd_create() files;
 *   - the gup_test debugfs ioctls of hmm_gup_test are the GUP calls they
 *     wrap (get_user_pages, get_user_pages_fast, pin_user_pages_fast and
 *     pin_user_pages with FOLL_LONGTERM);
 *   - /proc/self/pagemap is mm_pagemap_read();
 *   - pthreads where the kernel test uses them (anon_teardown).
 *
 * A case skips only where it needs a capability a later issue builds, and
 * only when that capability is found missing at run time (so it passes by
 * itself once the capability lands): device-private PMD entries (THP
 * migration of device memory) and device-exclusive entries
 * (HMM_DMIRROR_EXCLUSIVE returning -EOPNOTSUPP).  Such a case first runs
 * and checks everything else, cleans up, and skips last.
 */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "uhmm/dmirror.h"
#include "uhmm/gup.h"

/*
 * The hugetlb cases (anon_write_hugetlbfs, compound) need MAP_HUGETLB from
 * the hugetlb pool (uhmm/hugetlb.h); they build once that header exists.
 */
#ifndef HMM_TESTS_HUGETLB
#ifdef UHMM_HUGETLB_H
#define HMM_TESTS_HUGETLB 1
#else
#define HMM_TESTS_HUGETLB 0
#endif
#endif

/* The kernel test's constants. */
#define TWOMEG (1UL << 21)
#define HMM_BUFFER_SIZE (1024UL << 12)
#define NTIMES 10
#define ONEKB (1UL << 10)
#define ONEMEG (1UL << 20)

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

#define HMM_COHERENCE_DEVICE_ONE 2

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HMM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HMM_SANITIZED 1
#endif
#endif
#ifndef HMM_SANITIZED
#define HMM_SANITIZED 0
#endif

/* The fixture: the kernel's FIXTURE(hmm) and FIXTURE(hmm2) in one. */
struct hmm_fixture {
	struct dmirror_module *mod; /* test_hmm, loaded on this machine */
	struct mm_struct *mm;       /* the test process */
	struct dmirror *fd;         /* hmm: the open device */
	struct dmirror *fd0, *fd1;  /* hmm2: the two open devices */
	unsigned long page_size;
	unsigned int page_shift;
};

/* FIXTURE_VARIANT(hmm) / FIXTURE_VARIANT(hmm2). */
struct hmm_variant {
	unsigned int device_number;
	unsigned int device_number0, device_number1;
};

static struct hmm_fixture fixture;
static struct hmm_fixture *const self = &fixture;
static const struct hmm_variant *variant;

static const struct hmm_variant hmm_device_private_variant = { .device_number = 0 };
static const struct hmm_variant hmm_device_coherent_variant = { .device_number = 2 };
static const struct hmm_variant hmm2_device_private_variant = { .device_number0 = 0,
								.device_number1 = 1 };
static const struct hmm_variant hmm2_device_coherent_variant = { .device_number0 = 2,
								 .device_number1 = 3 };

/*
 * struct hmm_buffer - the kernel test's buffer: @ptr is the address in the
 * process, @mirror the host buffer the device reads into or writes from,
 * @file the file behind a file mapping (the kernel's buffer->fd).
 */
struct hmm_buffer {
	unsigned long ptr;
	void *mirror;
	unsigned long size;
	struct file *file;
	uint64_t cpages;
	uint64_t faults;
};

static bool hmm_is_coherent_type(unsigned int dev_num)
{
	return dev_num >= HMM_COHERENCE_DEVICE_ONE;
}

/* open("/dev/hmm_dmirror%d") from the process @mm. */
static struct dmirror *hmm_open_mm(struct mm_struct *mm, unsigned int unit)
{
	struct dmirror *d = dmirror_open(self->mod, unit, mm);

	cr_assert(!IS_ERR_OR_NULL(d), "open /dev/hmm_dmirror%u: %ld", unit, PTR_ERR(d));
	return d;
}

static void hmm_fixture_setup(void)
{
	machine_setup();
	memset(self, 0, sizeof(*self));
	self->page_size = PAGE_SIZE;
	self->page_shift = PAGE_SHIFT;
	self->mm = new_mm();
	self->mod = dmirror_module_init(machine);
	cr_assert(!IS_ERR_OR_NULL(self->mod), "dmirror_module_init: %ld", PTR_ERR(self->mod));
}

static void hmm_setup(const struct hmm_variant *v)
{
	variant = v;
	hmm_fixture_setup();
	self->fd = hmm_open_mm(self->mm, variant->device_number);
}

static void hmm2_setup(const struct hmm_variant *v)
{
	variant = v;
	hmm_fixture_setup();
	self->fd0 = hmm_open_mm(self->mm, variant->device_number0);
	self->fd1 = hmm_open_mm(self->mm, variant->device_number1);
}

static void hmm_setup_private(void)
{
	hmm_setup(&hmm_device_private_variant);
}

static void hmm_setup_coherent(void)
{
	hmm_setup(&hmm_device_coherent_variant);
}

static void hmm2_setup_private(void)
{
	hmm2_setup(&hmm2_device_private_variant);
}

static void hmm2_setup_coherent(void)
{
	hmm2_setup(&hmm2_device_coherent_variant);
}

/* FIXTURE_TEARDOWN: close the devices; the process exits; rmmod. */
static void hmm_teardown(void)
{
	if (self->fd)
		dmirror_release(self->fd);
	if (self->fd0)
		dmirror_release(self->fd0);
	if (self->fd1)
		dmirror_release(self->fd1);
	if (self->mm)
		mmput(self->mm);
	if (self->mod) {
		int violations = dmirror_audit(self->mod, stderr);

		cr_assert_eq(violations, 0, "dmirror_audit found %d violations", violations);
		cr_assert_eq(dmirror_module_exit(self->mod), 0, "rmmod test_hmm");
	}
	memset(self, 0, sizeof(*self));
	variant = NULL;
	machine_teardown();
}

/*
 * hmm_skip() - skip the running test: Criterion leaves a skipped test
 * without running .fini, so tear the fixture down (audit and leak check
 * included) first; the TSan runner's .fini then finds nothing left to do.
 */
#define hmm_skip(...)                                                                      \
	do {                                                                               \
		hmm_teardown();                                                            \
		cr_skip_test(__VA_ARGS__);                                                 \
	} while (0)

TestSuite(hmm_device_private, .init = hmm_setup_private, .fini = hmm_teardown);
TestSuite(hmm_device_coherent, .init = hmm_setup_coherent, .fini = hmm_teardown);
TestSuite(hmm2_device_private, .init = hmm2_setup_private, .fini = hmm_teardown);
TestSuite(hmm2_device_coherent, .init = hmm2_setup_coherent, .fini = hmm_teardown);

/* TEST_F(hmm, name): the body runs once per variant. */
#define HMM_TEST(name)                                                                     \
	static void hmm_test_##name(void);                                                 \
	Test(hmm_device_private, name)                                                     \
	{                                                                                  \
		hmm_test_##name();                                                         \
	}                                                                                  \
	Test(hmm_device_coherent, name)                                                    \
	{                                                                                  \
		hmm_test_##name();                                                         \
	}                                                                                  \
	static void hmm_test_##name(void)

/* TEST_F_TIMEOUT(hmm, name, seconds). */
#define HMM_TEST_TIMEOUT(name, seconds)                                                    \
	static void hmm_test_##name(void);                                                 \
	Test(hmm_device_private, name, .timeout = (seconds))                               \
	{                                                                                  \
		hmm_test_##name();                                                         \
	}                                                                                  \
	Test(hmm_device_coherent, name, .timeout = (seconds))                              \
	{                                                                                  \
		hmm_test_##name();                                                         \
	}                                                                                  \
	static void hmm_test_##name(void)

/* TEST_F(hmm2, name). */
#define HMM2_TEST(name)                                                                    \
	static void hmm2_test_##name(void);                                                \
	Test(hmm2_device_private, name)                                                    \
	{                                                                                  \
		hmm2_test_##name();                                                        \
	}                                                                                  \
	Test(hmm2_device_coherent, name)                                                   \
	{                                                                                  \
		hmm2_test_##name();                                                        \
	}                                                                                  \
	static void hmm2_test_##name(void)

/* ------------------------------------------------------------------ */
/* The kernel test's helpers                                          */
/* ------------------------------------------------------------------ */

/*
 * hmm_dmirror_cmd() - one ioctl on a device for @npages pages of @buffer:
 * cmd.addr = buffer->ptr, cmd.ptr = buffer->mirror; retried on -EINTR.
 * Return: 0 (and buffer->cpages, buffer->faults set) or the negative errno.
 */
static int hmm_dmirror_cmd(struct dmirror *fd, unsigned long request, struct hmm_buffer *buffer,
			   unsigned long npages)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = buffer->ptr;
	cmd.ptr = (uint64_t)(uintptr_t)buffer->mirror;
	cmd.npages = npages;
	for (;;) {
		ret = dmirror_ioctl(fd, request, &cmd);
		if (ret == 0)
			break;
		if (ret == -EINTR)
			continue;
		return ret;
	}
	buffer->cpages = cmd.cpages;
	buffer->faults = cmd.faults;
	return 0;
}

static int hmm_migrate_sys_to_dev(struct dmirror *fd, struct hmm_buffer *buffer,
				  unsigned long npages)
{
	return hmm_dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages);
}

static int hmm_migrate_dev_to_sys(struct dmirror *fd, struct hmm_buffer *buffer,
				  unsigned long npages)
{
	return hmm_dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, npages);
}

/*
 * A buffer whose mirror holds @mirror_size bytes; the kernel leaves the
 * mirror uninitialized, here it is poisoned so that a device that copies
 * nothing cannot pass a check by chance.
 */
static struct hmm_buffer *hmm_buffer_alloc(unsigned long size, unsigned long mirror_size)
{
	struct hmm_buffer *buffer = calloc(1, sizeof(*buffer));

	cr_assert_not_null(buffer);
	buffer->size = size;
	buffer->mirror = malloc(mirror_size);
	cr_assert_not_null(buffer->mirror);
	memset(buffer->mirror, 0xa5, mirror_size);
	return buffer;
}

/* mmap() in the process: asserts it did not return MAP_FAILED. */
static unsigned long hmm_mmap(unsigned long len, int prot, int flags, struct file *file)
{
	long ret = mm_mmap(self->mm, 0, len, prot, flags, file, 0);

	cr_assert_gt(ret, 0, "mmap(%#lx, prot %#x, flags %#x) = %ld", len, prot, flags, ret);
	return (unsigned long)ret;
}

/* munmap(buffer->ptr, buffer->size), free the mirror (and close the file). */
static void hmm_buffer_free(struct hmm_buffer *buffer)
{
	if (!buffer)
		return;
	if (buffer->ptr)
		cr_assert_eq(mm_munmap(self->mm, buffer->ptr, buffer->size), 0);
	if (buffer->file)
		fput(buffer->file);
	free(buffer->mirror);
	free(buffer);
}

/* hmm_create_file(): an O_TMPFILE file of @size bytes. */
static struct file *hmm_create_file(unsigned long size)
{
	struct file *file = new_memfd();

	cr_assert_eq(uhmm_ftruncate(file, (loff_t)size), 0);
	return file;
}

/* read_pmd_pagesize() */
static unsigned long read_pmd_pagesize(void)
{
	return HPAGE_PMD_SIZE;
}

/* ---- the int patterns: ptr[i] = mul * i + add ---- */

static int *ints_alloc(size_t n)
{
	int *v = malloc(n * sizeof(int) + 1);

	cr_assert_not_null(v);
	return v;
}

/* for (i = from; i < to; ++i) p[i] = mul * i + add; on the host. */
static void ints_store(void *p, size_t from, size_t to, int mul, int add)
{
	int *v = p;

	for (size_t i = from; i < to; i++)
		v[i] = mul * (int)i + add;
}

/* for (i = from; i < to; ++i) ASSERT_EQ(p[i], mul * i + add); on the host. */
static void ints_check(const void *p, size_t from, size_t to, int mul, int add, const char *what)
{
	const int *v = p;

	for (size_t i = from; i < to; i++)
		if (v[i] != mul * (int)i + add)
			cr_assert_fail("%s[%zu] = %d, want %d", what, i, v[i], mul * (int)i + add);
}

/* The process stores ptr[i] = mul * i + add for i in [from, to). */
static void cpu_store_ints(struct mm_struct *mm, unsigned long ptr, size_t from, size_t to,
			   int mul, int add)
{
	int *v;
	int ret;

	if (from >= to)
		return;
	v = ints_alloc(to - from);

	for (size_t i = from; i < to; i++)
		v[i - from] = mul * (int)i + add;
	ret = cpu_write(mm, ptr + from * sizeof(int), v, (to - from) * sizeof(int));
	cr_assert_eq(ret, 0, "store to %#lx: %d", ptr + from * sizeof(int), ret);
	free(v);
}

/* The process loads ptr[i] for i in [from, to) and asserts mul * i + add. */
static void cpu_check_ints(struct mm_struct *mm, unsigned long ptr, size_t from, size_t to,
			   int mul, int add)
{
	int *v;
	int ret;

	if (from >= to)
		return;
	v = ints_alloc(to - from);

	ret = cpu_read(mm, ptr + from * sizeof(int), v, (to - from) * sizeof(int));
	cr_assert_eq(ret, 0, "load from %#lx: %d", ptr + from * sizeof(int), ret);
	for (size_t i = from; i < to; i++)
		if (v[i - from] != mul * (int)i + add)
			cr_assert_fail("ptr[%zu] = %d, want %d", i, v[i - from], mul * (int)i + add);
	free(v);
}

/* One int load by the process: *(int *)addr. */
static int cpu_load_int(struct mm_struct *mm, unsigned long addr)
{
	int val = 0x5a5a5a5a;
	int ret = cpu_read(mm, addr, &val, sizeof(val));

	cr_assert_eq(ret, 0, "load from %#lx: %d", addr, ret);
	return val;
}

/* One int store by the process: *(int *)addr = val. */
static void cpu_store_int(struct mm_struct *mm, unsigned long addr, int val)
{
	int ret = cpu_write(mm, addr, &val, sizeof(val));

	cr_assert_eq(ret, 0, "store to %#lx: %d", addr, ret);
}

/* fork(): the child as an mm of its own. */
static struct mm_struct *hmm_fork(void)
{
	struct mm_struct *child = mm_fork(self->mm);

	cr_assert(!IS_ERR_OR_NULL(child), "fork: %ld", PTR_ERR(child));
	return child;
}

/* ------------------------------------------------------------------ */
/* TEST_F(hmm, ...)                                                   */
/* ------------------------------------------------------------------ */

/* Open and close the device: the fixture does both. */
HMM_TEST(open_close)
{
	cr_assert_not_null(self->fd);
}

/* Read private anonymous memory. */
HMM_TEST(anon_read)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret, val;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory but leave the first two pages zero. */
	cpu_store_ints(self->mm, buffer->ptr, 2 * self->page_size / sizeof(int), size / sizeof(int),
		       1, 0);

	/* Set buffer permission to read-only. */
	ret = mm_mprotect(self->mm, buffer->ptr, size, PROT_READ);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Populate the CPU page table with a special zero page. */
	val = cpu_load_int(self->mm, buffer->ptr + self->page_size);
	cr_assert_eq(val, 0);

	/* Simulate a device reading system memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_READ, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, 2 * self->page_size / sizeof(int), 0, 0, "mirror");
	ints_check(buffer->mirror, 2 * self->page_size / sizeof(int), size / sizeof(int), 1, 0,
		   "mirror");

	hmm_buffer_free(buffer);
}

/* Read private anonymous memory which has been protected with mprotect() PROT_NONE. */
HMM_TEST(anon_read_prot)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Initialize mirror buffer so we can verify it isn't written. */
	ints_store(buffer->mirror, 0, size / sizeof(int), -1, 0);

	/* Protect buffer from reading. */
	ret = mm_mprotect(self->mm, buffer->ptr, size, PROT_NONE);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Simulate a device reading system memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_READ, buffer, npages);
	cr_assert_eq(ret, -EFAULT, "ret = %d", ret);

	/* Allow CPU to read the buffer so we can check it. */
	ret = mm_mprotect(self->mm, buffer->ptr, size, PROT_READ);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), -1, 0, "mirror");

	hmm_buffer_free(buffer);
}

/* Write private anonymous memory. */
HMM_TEST(anon_write)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize data that the device will write to buffer->ptr. */
	ints_store(buffer->mirror, 0, size / sizeof(int), 1, 0);

	/* Simulate a device writing system memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_WRITE, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what the device wrote. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	hmm_buffer_free(buffer);
}

/* Write private anonymous memory which has been protected with mprotect() PROT_READ. */
HMM_TEST(anon_write_prot)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Simulate a device reading a zero page of memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_READ, buffer, 1);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, 1, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Initialize data that the device will write to buffer->ptr. */
	ints_store(buffer->mirror, 0, size / sizeof(int), 1, 0);

	/* Simulate a device writing system memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_WRITE, buffer, npages);
	cr_assert_eq(ret, -EPERM, "ret = %d", ret);

	/* Check what the device wrote. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 0, 0);

	/* Now allow writing and see that the zero page is replaced. */
	ret = mm_mprotect(self->mm, buffer->ptr, size, PROT_WRITE | PROT_READ);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Simulate a device writing system memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_WRITE, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what the device wrote. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	hmm_buffer_free(buffer);
}

/*
 * Check that a device writing an anonymous private mapping will copy-on-write
 * if a child process inherits the mapping.
 *
 * Also verifies after fork() memory the device can be read by child.
 */
HMM_TEST(anon_write_child)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long map, old_ptr;
	int ret, use_thp, migrate;

	for (migrate = 0; migrate < 2; ++migrate) {
		for (use_thp = 0; use_thp < 2; ++use_thp) {
			struct mm_struct *child;
			struct dmirror *child_fd;

			npages = ALIGN(use_thp ? read_pmd_pagesize() : HMM_BUFFER_SIZE,
				       self->page_size) >>
				 self->page_shift;
			cr_assert(npages);
			size = npages << self->page_shift;

			buffer = hmm_buffer_alloc(size * 2, size);
			buffer->ptr = hmm_mmap(size * 2, PROT_READ | PROT_WRITE,
					       MAP_PRIVATE | MAP_ANONYMOUS, NULL);
			old_ptr = buffer->ptr;
			if (use_thp) {
				map = ALIGN(buffer->ptr, size);
				ret = mm_madvise(self->mm, map, size, MADV_HUGEPAGE);
				cr_assert_eq(ret, 0, "ret = %d", ret);
				buffer->ptr = map;
			}

			/* Initialize buffer->ptr so we can tell if it is written. */
			cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

			/* Initialize data that the device will write to buffer->ptr. */
			ints_store(buffer->mirror, 0, size / sizeof(int), -1, 0);

			if (migrate) {
				ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
				cr_assert_eq(ret, 0, "ret = %d", ret);
				cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
			}

			child = hmm_fork();

			/* The child: check that we see the parent's values. */
			cpu_check_ints(child, buffer->ptr, 0, size / sizeof(int), 1, 0);
			if (!migrate)
				ints_check(buffer->mirror, 0, size / sizeof(int), -1, 0, "mirror");

			/* The child process needs its own mirror to its own mm. */
			child_fd = hmm_open_mm(child, 0);

			/* Simulate a device writing system memory. */
			ret = hmm_dmirror_cmd(child_fd, HMM_DMIRROR_WRITE, buffer, npages);
			cr_assert_eq(ret, 0, "ret = %d", ret);
			cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
			cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

			/* Check what the device wrote. */
			if (!migrate)
				cpu_check_ints(child, buffer->ptr, 0, size / sizeof(int), -1, 0);

			/* close(child_fd); exit(0); and the parent's waitpid(). */
			dmirror_release(child_fd);
			mmput(child);

			/* The parent: check that its buffer did not change. */
			cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

			buffer->ptr = old_ptr;
			hmm_buffer_free(buffer);
		}
	}
}

/*
 * Check that a device writing an anonymous shared mapping will not copy-on-write
 * if a child process inherits the mapping.
 */
HMM_TEST(anon_write_child_shared)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	struct mm_struct *child;
	struct dmirror *child_fd;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, NULL);

	/* Initialize buffer->ptr so we can tell if it is written. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Initialize data that the device will write to buffer->ptr. */
	ints_store(buffer->mirror, 0, size / sizeof(int), -1, 0);

	child = hmm_fork();

	/* The child: check that we see the parent's values. */
	cpu_check_ints(child, buffer->ptr, 0, size / sizeof(int), 1, 0);
	ints_check(buffer->mirror, 0, size / sizeof(int), -1, 0, "mirror");

	/* The child process needs its own mirror to its own mm. */
	child_fd = hmm_open_mm(child, 0);

	/* Simulate a device writing system memory. */
	ret = hmm_dmirror_cmd(child_fd, HMM_DMIRROR_WRITE, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what the device wrote. */
	cpu_check_ints(child, buffer->ptr, 0, size / sizeof(int), -1, 0);

	dmirror_release(child_fd);
	mmput(child);

	/* The parent: check that its buffer did change. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), -1, 0);

	hmm_buffer_free(buffer);
}

/* Write private anonymous huge page. */
HMM_TEST(anon_write_huge)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long map, old_ptr;
	int ret;

	size = 2 * read_pmd_pagesize();

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	size /= 2;
	npages = size >> self->page_shift;
	map = ALIGN(buffer->ptr, size);
	ret = mm_madvise(self->mm, map, size, MADV_HUGEPAGE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	old_ptr = buffer->ptr;
	buffer->ptr = map;

	/* Initialize data that the device will write to buffer->ptr. */
	ints_store(buffer->mirror, 0, size / sizeof(int), 1, 0);

	/* Simulate a device writing system memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_WRITE, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what the device wrote. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	buffer->ptr = old_ptr;
	hmm_buffer_free(buffer);
}

#if HMM_TESTS_HUGETLB
/* default_huge_page_size(): Hugepagesize of /proc/meminfo. */
static unsigned long default_huge_page_size(void)
{
	struct hugetlb_stats st;

	cr_assert_eq(uhmm_hugetlb_stats(machine, &st), 0);
	return st.hugepagesize;
}

/*
 * hugetlb_setup_default(): what the kernel test's
 * HUGETLB_SETUP_DEFAULT_PAGES(1) does before the tests run: make sure at
 * least @nr default-size huge pages are free in the pool.
 */
static void hugetlb_setup_default(unsigned long nr)
{
	struct hugetlb_stats st;

	cr_assert_eq(uhmm_hugetlb_stats(machine, &st), 0);
	if (st.free - st.rsvd < nr)
		uhmm_hugetlb_set_nr_hugepages(machine, st.nr_hugepages + nr - (st.free - st.rsvd));
	cr_assert_eq(uhmm_hugetlb_stats(machine, &st), 0);
	cr_assert_geq(st.free - st.rsvd, nr, "not enough huge pages");
}

/* Write huge TLBFS page. */
HMM_TEST(anon_write_hugetlbfs)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size, default_hsize;
	long ptr;
	int ret;

	hugetlb_setup_default(1);
	default_hsize = default_huge_page_size();
	size = ALIGN(TWOMEG, default_hsize);
	npages = size >> self->page_shift;

	ptr = mm_mmap(self->mm, 0, size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, NULL, 0);
	cr_assert_gt(ptr, 0, "MAP_HUGETLB from the pool: %ld", ptr);

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = (unsigned long)ptr;

	/* Initialize data that the device will write to buffer->ptr. */
	ints_store(buffer->mirror, 0, size / sizeof(int), 1, 0);

	/* Simulate a device writing system memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_WRITE, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what the device wrote. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	hmm_buffer_free(buffer);
}
#endif

/* Read mmap'ed file memory. */
HMM_TEST(file_read)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	ssize_t len;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->file = hmm_create_file(size);

	/* Write initial contents of the file. */
	ints_store(buffer->mirror, 0, size / sizeof(int), 1, 0);
	len = uhmm_pwrite(buffer->file, buffer->mirror, size, 0);
	cr_assert_eq(len, (ssize_t)size);
	memset(buffer->mirror, 0, size);

	buffer->ptr = hmm_mmap(size, PROT_READ, MAP_SHARED, buffer->file);

	/* Simulate a device reading system memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_READ, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	hmm_buffer_free(buffer);
}

/* Write mmap'ed file memory. */
HMM_TEST(file_write)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	ssize_t len;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->file = hmm_create_file(size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED, buffer->file);

	/* Initialize data that the device will write to buffer->ptr. */
	ints_store(buffer->mirror, 0, size / sizeof(int), 1, 0);

	/* Simulate a device writing system memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_WRITE, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what the device wrote. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Check that the device also wrote the file. */
	len = uhmm_pread(buffer->file, buffer->mirror, size, 0);
	cr_assert_eq(len, (ssize_t)size);
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "file");

	hmm_buffer_free(buffer);
}

/* Migrate anonymous memory to device private memory. */
HMM_TEST(migrate)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	hmm_buffer_free(buffer);
}

/* Migrate private file-backed memory (copy-on-write anonymous pages) to the device. */
HMM_TEST(migrate_file_private)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->file = hmm_create_file(size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE, buffer->file);

	/* Initialize buffer in system memory: the writes COW the file pages. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	hmm_buffer_free(buffer);
}

/*
 * Migrate anonymous memory to device private memory and fault some of it back
 * to system memory, then try migrating the resulting mix of system and device
 * private memory to the device.
 */
HMM_TEST(migrate_fault)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	/* Fault half the pages back to system memory and check them. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / (2 * sizeof(int)), 1, 0);

	/* Migrate memory to the device again. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	hmm_buffer_free(buffer);
}

/* Migrate to the device, then release the device memory: it is evicted to RAM. */
HMM_TEST(migrate_release)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	/* Release device memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_RELEASE, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Fault pages back to system memory and check them. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / (2 * sizeof(int)), 1, 0);

	hmm_buffer_free(buffer);
}

/* Migrate anonymous shared memory to device private memory. */
HMM_TEST(migrate_shared)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, NULL);

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, -ENOENT, "ret = %d", ret);

	hmm_buffer_free(buffer);
}

/* Migrate anonymous memory to device memory and back to system memory, NTIMES. */
HMM_TEST(migrate_multiple)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long c;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	for (c = 0; c < NTIMES; c++) {
		buffer = hmm_buffer_alloc(size, size);
		buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				       NULL);

		/* Initialize buffer in system memory. */
		cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

		/* Migrate memory to device. */
		ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
		cr_assert_eq(ret, 0, "ret = %d", ret);
		cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

		/* Check what the device read. */
		ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

		/* Migrate back to system memory and check them. */
		if (hmm_is_coherent_type(variant->device_number)) {
			ret = hmm_migrate_dev_to_sys(self->fd, buffer, npages);
			cr_assert_eq(ret, 0, "ret = %d", ret);
			cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
		}

		cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

		hmm_buffer_free(buffer);
	}
}

/* Read anonymous memory multiple times. */
HMM_TEST(anon_read_multiple)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long c;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	for (c = 0; c < NTIMES; c++) {
		buffer = hmm_buffer_alloc(size, size);
		buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				       NULL);

		/* Initialize buffer in system memory. */
		cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, (int)c);

		/* Simulate a device reading system memory. */
		ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_READ, buffer, npages);
		cr_assert_eq(ret, 0, "ret = %d", ret);
		cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
		cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

		/* Check what the device read. */
		ints_check(buffer->mirror, 0, size / sizeof(int), 1, (int)c, "mirror");

		hmm_buffer_free(buffer);
	}
}

struct unmap_arg {
	unsigned long ptr, size;
	unsigned int seed;
};

/* Delay for a bit and then unmap the second half of the buffer while it is being read. */
static void *unmap_buffer(void *p)
{
	struct unmap_arg *arg = p;
	struct timespec ts = { 0, (long)(rand_r(&arg->seed) % 32000) };

	nanosleep(&ts, NULL);
	if (mm_munmap(self->mm, arg->ptr + arg->size / 2, arg->size / 2))
		return (void *)1;
	return NULL;
}

/* Read anonymous memory while it is being unmapped. */
HMM_TEST(anon_teardown)
{
	unsigned long npages, size;
	unsigned long c;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	for (c = 0; c < NTIMES; ++c) {
		struct hmm_buffer *buffer;
		struct unmap_arg arg;
		pthread_t thread;
		void *tret;
		int rc;

		buffer = hmm_buffer_alloc(size, size);
		buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				       NULL);

		/* Initialize buffer in system memory. */
		cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, (int)c);

		arg.ptr = buffer->ptr;
		arg.size = buffer->size;
		arg.seed = (unsigned int)c * 2654435761u + 1;
		rc = pthread_create(&thread, NULL, unmap_buffer, &arg);
		cr_assert_eq(rc, 0);

		/* Simulate a device reading system memory. */
		rc = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_READ, buffer, npages);
		if (rc == 0) {
			cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
			cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

			/* Check what the device read. */
			ints_check(buffer->mirror, 0, size / sizeof(int), 1, (int)c, "mirror");
		} else {
			/* The kernel test tolerates any error; a hole is -EFAULT. */
			cr_assert_eq(rc, -EFAULT, "READ racing munmap: %d", rc);
		}

		pthread_join(thread, &tret);
		cr_assert_null(tret, "munmap of the second half failed");
		hmm_buffer_free(buffer);
	}
}

/* Test memory snapshot without faulting in pages accessed by the device. */
HMM_TEST(mixedmap)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned char *m;
	long ptr;
	int ret;

	npages = 1;
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, npages);

	/* Reserve a range of addresses: mmap() of the device file itself. */
	ptr = dmirror_mmap(self->fd, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	cr_assert_gt(ptr, 0, "mmap of /dev/hmm_dmirror%u: %ld", variant->device_number, ptr);
	buffer->ptr = (unsigned long)ptr;

	/* Simulate a device snapshotting CPU pagetables. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device saw. */
	m = buffer->mirror;
	cr_assert_eq(m[0], HMM_DMIRROR_PROT_READ);

	hmm_buffer_free(buffer);
}

#if HMM_TESTS_HUGETLB
/* Test the hmm_range_fault() HMM_PFN_PMD flag for large pages that use a PMD/PUD mapping. */
HMM_TEST(compound)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size, default_hsize;
	unsigned char *m;
	int huge_level;
	unsigned long i;
	long ptr;
	int ret;

	/* Skip test if we can't allocate a hugetlbfs page. */
	hugetlb_setup_default(1);
	default_hsize = default_huge_page_size();
	size = ALIGN(TWOMEG, default_hsize);
	npages = size >> self->page_shift;

	ptr = mm_mmap(self->mm, 0, size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, NULL, 0);
	cr_assert_gt(ptr, 0, "MAP_HUGETLB from the pool: %ld", ptr);

	buffer = hmm_buffer_alloc(size, npages);
	buffer->ptr = (unsigned long)ptr;

	/* Initialize the pages the device will snapshot in buffer->ptr. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Simulate a device snapshotting CPU pagetables. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device saw: one level (PMD or PUD) for all of it. */
	m = buffer->mirror;
	huge_level = m[0] & (HMM_DMIRROR_PROT_PMD | HMM_DMIRROR_PROT_PUD);
	cr_assert(huge_level == HMM_DMIRROR_PROT_PMD || huge_level == HMM_DMIRROR_PROT_PUD,
		  "m[0] = %#x", m[0]);
	for (i = 0; i < npages; ++i)
		cr_assert_eq(m[i], HMM_DMIRROR_PROT_WRITE | huge_level, "m[%lu] = %#x", i, m[i]);

	/* Make the region read-only. */
	ret = mm_mprotect(self->mm, buffer->ptr, size, PROT_READ);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Simulate a device snapshotting CPU pagetables. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device saw. */
	m = buffer->mirror;
	for (i = 0; i < npages; ++i)
		cr_assert_eq(m[i], HMM_DMIRROR_PROT_READ | huge_level, "m[%lu] = %#x", i, m[i]);

	hmm_buffer_free(buffer);
}
#endif

#define EXCLUSIVE_MISSING                                                                  \
	"device-exclusive entries (make_device_exclusive) are not built yet: "               \
	"HMM_DMIRROR_EXCLUSIVE returns -EOPNOTSUPP"

/* Basic check of exclusive faulting. */
HMM_TEST(exclusive)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Map memory exclusively for device access. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages);
	if (ret == -EOPNOTSUPP) {
		hmm_buffer_free(buffer);
		hmm_skip(EXCLUSIVE_MISSING);
	}
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	/* Fault pages back to system memory and check them: ASSERT_EQ(ptr[i]++, i). */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 1);
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 1);

	/* Check atomic access revoked. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_CHECK_EXCLUSIVE, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	hmm_buffer_free(buffer);
}

HMM_TEST(exclusive_mprotect)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Map memory exclusively for device access. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages);
	if (ret == -EOPNOTSUPP) {
		hmm_buffer_free(buffer);
		hmm_skip(EXCLUSIVE_MISSING);
	}
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	ret = mm_mprotect(self->mm, buffer->ptr, size, PROT_READ);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Simulate a device writing system memory. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_WRITE, buffer, npages);
	cr_assert_eq(ret, -EPERM, "ret = %d", ret);

	hmm_buffer_free(buffer);
}

/* Check copy-on-write works. */
HMM_TEST(exclusive_cow)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	struct mm_struct *child;
	int ret;

	npages = ALIGN(HMM_BUFFER_SIZE, self->page_size) >> self->page_shift;
	cr_assert(npages);
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Map memory exclusively for device access. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages);
	if (ret == -EOPNOTSUPP) {
		hmm_buffer_free(buffer);
		hmm_skip(EXCLUSIVE_MISSING);
	}
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	child = hmm_fork();

	/* The child: ASSERT_EQ(ptr[i]++, i) and then ptr[i] == i + 1; exit(0). */
	cpu_check_ints(child, buffer->ptr, 0, size / sizeof(int), 1, 0);
	cpu_store_ints(child, buffer->ptr, 0, size / sizeof(int), 1, 1);
	cpu_check_ints(child, buffer->ptr, 0, size / sizeof(int), 1, 1);
	mmput(child);

	/* The parent does the same on its own copy. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 1);
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 1);

	hmm_buffer_free(buffer);
}

/* The gup_test ioctls (mm/gup_test.c) hmm_gup_test uses, as the GUP calls they make. */
enum gup_test_cmd {
	GUP_BASIC_TEST,         /* get_user_pages(), then put_page() */
	GUP_FAST_BENCHMARK,     /* get_user_pages_fast(), then put_page() */
	PIN_FAST_BENCHMARK,     /* pin_user_pages_fast(), then unpin_user_pages() */
	PIN_LONGTERM_BENCHMARK, /* pin_user_pages(FOLL_LONGTERM), then unpin_user_pages() */
};

/* gup_test_exec(): the ioctl with gup_flags FOLL_WRITE | @flags over @npages pages. */
static int gup_test_exec(struct mm_struct *mm, unsigned long addr, enum gup_test_cmd cmd,
			 int npages, unsigned int flags)
{
	unsigned int gup_flags = FOLL_WRITE | flags;
	struct page **pages = calloc((size_t)npages, sizeof(*pages));
	long nr = -EINVAL;

	cr_assert_not_null(pages);
	switch (cmd) {
	case GUP_BASIC_TEST:
		mmap_read_lock(mm);
		nr = get_user_pages_remote(mm, addr, (unsigned long)npages, gup_flags, pages, NULL);
		mmap_read_unlock(mm);
		break;
	case GUP_FAST_BENCHMARK:
		nr = get_user_pages_fast(mm, addr, npages, gup_flags, pages);
		break;
	case PIN_FAST_BENCHMARK:
		nr = pin_user_pages_fast(mm, addr, npages, gup_flags, pages);
		break;
	case PIN_LONGTERM_BENCHMARK:
		mmap_read_lock(mm);
		nr = pin_user_pages_remote(mm, addr, (unsigned long)npages,
					   gup_flags | FOLL_LONGTERM, pages, NULL);
		mmap_read_unlock(mm);
		break;
	}
	if (nr < 0) {
		free(pages);
		return (int)nr;
	}
	for (long i = 0; i < nr; i++) {
		if (cmd == GUP_BASIC_TEST || cmd == GUP_FAST_BENCHMARK)
			put_page(pages[i]);
		else
			unpin_user_page(pages[i]);
	}
	free(pages);
	return nr == npages ? 0 : -EFAULT;
}

/*
 * Test get user device pages through gup_test. Setting PIN_LONGTERM flag.
 * This should trigger a migration back to system memory for both, private
 * and coherent type pages.
 * This test makes use of gup_test module. Make sure GUP_TEST_CONFIG is added
 * to your configuration before you run it.
 */
HMM_TEST(hmm_gup_test)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned char *m;
	int ret;

	npages = 4;
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	cr_assert_eq(gup_test_exec(self->mm, buffer->ptr, GUP_BASIC_TEST, 1, 0), 0);
	cr_assert_eq(gup_test_exec(self->mm, buffer->ptr + 1 * self->page_size, GUP_FAST_BENCHMARK,
				   1, 0),
		     0);
	cr_assert_eq(gup_test_exec(self->mm, buffer->ptr + 2 * self->page_size, PIN_FAST_BENCHMARK,
				   1, FOLL_LONGTERM),
		     0);
	cr_assert_eq(gup_test_exec(self->mm, buffer->ptr + 3 * self->page_size,
				   PIN_LONGTERM_BENCHMARK, 1, 0),
		     0);

	/* Take snapshot to CPU pagetables */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	m = buffer->mirror;
	if (hmm_is_coherent_type(variant->device_number)) {
		cr_assert_eq(m[0], HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE,
			     "m[0] = %#x", m[0]);
		cr_assert_eq(m[1], HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE,
			     "m[1] = %#x", m[1]);
	} else {
		cr_assert_eq(m[0], HMM_DMIRROR_PROT_WRITE, "m[0] = %#x", m[0]);
		cr_assert_eq(m[1], HMM_DMIRROR_PROT_WRITE, "m[1] = %#x", m[1]);
	}
	cr_assert_eq(m[2], HMM_DMIRROR_PROT_WRITE, "m[2] = %#x", m[2]);
	cr_assert_eq(m[3], HMM_DMIRROR_PROT_WRITE, "m[3] = %#x", m[3]);
	/* Check again the content on the pages. Make sure there's no corrupted data. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	hmm_buffer_free(buffer);
}

/*
 * Test copy-on-write in device pages.
 * In case of writing to COW private page(s), a page fault will migrate pages
 * back to system memory first. Then, these pages will be duplicated. In case
 * of COW device coherent type, pages are duplicated directly from device
 * memory.
 */
HMM_TEST(hmm_cow_in_device)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	struct mm_struct *child;
	unsigned char *m;
	unsigned long i;
	int ret;

	npages = 4;
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* The child spins until the parent kills it. */
	child = hmm_fork();

	/*
	 * Parent process writes to COW pages(s) and gets a new copy in system.
	 * In case of device private pages, this write causes a migration to
	 * system mem first.
	 */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Terminate child and wait. */
	mmput(child);

	/* Take snapshot to CPU pagetables */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	m = buffer->mirror;
	for (i = 0; i < npages; i++)
		cr_assert_eq(m[i], HMM_DMIRROR_PROT_WRITE, "m[%lu] = %#x", i, m[i]);

	hmm_buffer_free(buffer);
}

/* Migrate private anonymous huge empty page. */
HMM_TEST(migrate_anon_huge_empty)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long map, old_ptr;
	int ret;

	size = read_pmd_pagesize();

	buffer = hmm_buffer_alloc(2 * size, size);
	memset(buffer->mirror, 0xFF, size);

	buffer->ptr = hmm_mmap(2 * size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	npages = size >> self->page_shift;
	map = ALIGN(buffer->ptr, size);
	ret = mm_madvise(self->mm, map, size, MADV_HUGEPAGE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	old_ptr = buffer->ptr;
	buffer->ptr = map;

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 0, 0, "mirror");

	buffer->ptr = old_ptr;
	hmm_buffer_free(buffer);
}

/* Migrate private anonymous huge zero page. */
HMM_TEST(migrate_anon_huge_zero)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long map, old_ptr;
	int ret, val;

	size = read_pmd_pagesize();

	buffer = hmm_buffer_alloc(2 * size, size);
	memset(buffer->mirror, 0xFF, size);

	buffer->ptr = hmm_mmap(2 * size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	npages = size >> self->page_shift;
	map = ALIGN(buffer->ptr, size);
	ret = mm_madvise(self->mm, map, size, MADV_HUGEPAGE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	old_ptr = buffer->ptr;
	buffer->ptr = map;

	/* Initialize a read-only zero huge page. */
	val = cpu_load_int(self->mm, buffer->ptr);
	cr_assert_eq(val, 0);

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 0, 0, "mirror");

	/* Fault pages back to system memory and check them. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 0, 0);

	buffer->ptr = old_ptr;
	hmm_buffer_free(buffer);
}

/* Migrate private anonymous huge page and free. */
HMM_TEST(migrate_anon_huge_free)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long map, old_ptr;
	int ret;

	size = read_pmd_pagesize();

	buffer = hmm_buffer_alloc(2 * size, size);
	memset(buffer->mirror, 0xFF, size);

	buffer->ptr = hmm_mmap(2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	npages = size >> self->page_shift;
	map = ALIGN(buffer->ptr, size);
	ret = mm_madvise(self->mm, map, size, MADV_HUGEPAGE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	old_ptr = buffer->ptr;
	buffer->ptr = map;

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	/* Try freeing it. */
	ret = mm_madvise(self->mm, map, size, MADV_FREE);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	buffer->ptr = old_ptr;
	hmm_buffer_free(buffer);
}

/*
 * hmm_device_thp_missing() - probe whether @fd's device lacks THP
 * migration of device memory: migrate a scratch PMD-aligned THP to it and
 * snapshot it.  With the capability the device sees one PMD-mapped folio
 * (HMM_DMIRROR_PROT_PMD); without it, 512 base pages.  A case runs this
 * only where a step that needs the capability failed, to tell a missing
 * capability (skip) from a bug (fail).
 */
static bool hmm_device_thp_missing(struct dmirror *fd)
{
	unsigned long size = read_pmd_pagesize();
	unsigned long npages = size >> self->page_shift;
	struct hmm_buffer *probe = hmm_buffer_alloc(2 * size, size);
	unsigned char *m = probe->mirror;
	unsigned long old_ptr;
	bool missing;
	int ret;

	old_ptr = hmm_mmap(2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);
	probe->ptr = ALIGN(old_ptr, size);
	cr_assert_eq(mm_madvise(self->mm, probe->ptr, size, MADV_HUGEPAGE), 0);
	cpu_store_ints(self->mm, probe->ptr, 0, size / sizeof(int), 1, 0);
	ret = hmm_migrate_sys_to_dev(fd, probe, npages);
	cr_assert_eq(ret, 0, "probe: migrate a THP to the device: %d", ret);
	ret = hmm_dmirror_cmd(fd, HMM_DMIRROR_SNAPSHOT, probe, npages);
	cr_assert_eq(ret, 0, "probe: snapshot: %d", ret);
	missing = !(m[0] & HMM_DMIRROR_PROT_PMD);
	probe->ptr = old_ptr;
	hmm_buffer_free(probe);
	return missing;
}

#define DEVICE_THP_MISSING                                                                 \
	"THP migration of device memory (device-private PMD entries) is not built yet: "     \
	"SNAPSHOT reports the migrated THP without HMM_DMIRROR_PROT_PMD"

/* Migrate private anonymous huge page and fault back to sysmem. */
HMM_TEST(migrate_anon_huge_fault)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long map, old_ptr;
	bool no_device_pmd = false;
	unsigned long i;
	int ret;

	size = read_pmd_pagesize();

	buffer = hmm_buffer_alloc(2 * size, size);
	memset(buffer->mirror, 0xFF, size);

	buffer->ptr = hmm_mmap(2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	npages = size >> self->page_shift;
	map = ALIGN(buffer->ptr, size);
	ret = mm_madvise(self->mm, map, size, MADV_HUGEPAGE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	old_ptr = buffer->ptr;
	buffer->ptr = map;

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Make sure the region is a THP. */
	ret = mm_madvise(self->mm, map, size, MADV_COLLAPSE);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Migrate memory to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	if (!hmm_is_coherent_type(variant->device_number)) {
		const unsigned char want = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL |
					   HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD;
		unsigned char *m = buffer->mirror;
		uint64_t *entries = calloc(npages, sizeof(*entries));

		/* Snapshot: the device sees its own THP, mapped by a PMD. */
		ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
		cr_assert_eq(ret, 0, "ret = %d", ret);
		cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
		for (i = 0; i < npages; i++) {
			if (m[i] == (want & ~HMM_DMIRROR_PROT_PMD)) {
				/* 4 KiB device-private entries: no device THP. */
				no_device_pmd = true;
				continue;
			}
			cr_assert_eq(m[i], want, "m[%lu] = %#x", i, m[i]);
		}
		cr_assert(!no_device_pmd || m[0] == (want & ~HMM_DMIRROR_PROT_PMD));

		/* /proc/self/pagemap: a swap entry (device private), not present. */
		cr_assert_not_null(entries);
		cr_assert_eq(mm_pagemap_read(self->mm, buffer->ptr, npages, entries), 0);
		for (i = 0; i < npages; i++) {
			cr_assert(entries[i] & PM_SWAP, "pagemap[%lu] = %#llx", i,
				  (unsigned long long)entries[i]);
			cr_assert_not(entries[i] & PM_PRESENT, "pagemap[%lu] = %#llx", i,
				      (unsigned long long)entries[i]);
		}
		free(entries);
	}

	/* Fault pages back to system memory and check them. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	buffer->ptr = old_ptr;
	hmm_buffer_free(buffer);

	if (no_device_pmd)
		hmm_skip(DEVICE_THP_MISSING);
}

/* Migrate memory and fault back to sysmem after partially unmapping. */
HMM_TEST(migrate_partial_unmap_fault)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size = read_pmd_pagesize();
	unsigned long map, old_ptr;
	unsigned long offsets[] = { 0, 512 * ONEKB, ONEMEG };
	unsigned long j;
	int ret, use_thp;

	for (use_thp = 0; use_thp < 2; ++use_thp) {
		for (j = 0; j < ARRAY_SIZE(offsets); ++j) {
			unsigned long offset = offsets[j];

			buffer = hmm_buffer_alloc(2 * size, size);
			memset(buffer->mirror, 0xFF, size);

			buffer->ptr = hmm_mmap(2 * size, PROT_READ | PROT_WRITE,
					       MAP_PRIVATE | MAP_ANONYMOUS, NULL);

			npages = size >> self->page_shift;
			map = ALIGN(buffer->ptr, size);
			ret = mm_madvise(self->mm, map, size,
					 use_thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
			cr_assert_eq(ret, 0, "ret = %d", ret);
			old_ptr = buffer->ptr;
			buffer->ptr = map;

			/* Initialize buffer in system memory. */
			cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

			/* Migrate memory to device. */
			ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
			cr_assert_eq(ret, 0, "ret = %d", ret);
			cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

			/* Check what the device read. */
			ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

			ret = mm_munmap(self->mm, buffer->ptr + offset, ONEMEG);
			cr_assert_eq(ret, 0, "ret = %d", ret);

			/* Fault pages back to system memory and check the ones still mapped. */
			cpu_check_ints(self->mm, buffer->ptr, 0, offset / sizeof(int), 1, 0);
			cpu_check_ints(self->mm, buffer->ptr, (offset + ONEMEG) / sizeof(int),
				       size / sizeof(int), 1, 0);

			buffer->ptr = old_ptr;
			hmm_buffer_free(buffer);
		}
	}
}

/* Migrate memory and fault back to sysmem after mremap() of it, before or after migrating. */
HMM_TEST(migrate_remap_fault)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size = read_pmd_pagesize();
	unsigned long map, old_ptr;
	unsigned long offsets[] = { 0, 512 * ONEKB, ONEMEG };
	unsigned long j;
	int ret, use_thp, dont_unmap, before;

	for (before = 0; before < 2; ++before) {
		for (dont_unmap = 0; dont_unmap < 2; ++dont_unmap) {
			for (use_thp = 0; use_thp < 2; ++use_thp) {
				for (j = 0; j < ARRAY_SIZE(offsets); ++j) {
					int remap_flags = MREMAP_FIXED | MREMAP_MAYMOVE;
					unsigned long offset = offsets[j];
					long new_ptr;

					if (dont_unmap)
						remap_flags |= MREMAP_DONTUNMAP;

					buffer = hmm_buffer_alloc(8 * size, size);
					memset(buffer->mirror, 0xFF, size);

					buffer->ptr = hmm_mmap(buffer->size,
							       PROT_READ | PROT_WRITE,
							       MAP_PRIVATE | MAP_ANONYMOUS, NULL);

					npages = size >> self->page_shift;
					map = ALIGN(buffer->ptr, size);
					ret = mm_madvise(self->mm, map, size,
							 use_thp ? MADV_HUGEPAGE
								 : MADV_NOHUGEPAGE);
					cr_assert_eq(ret, 0, "ret = %d", ret);
					old_ptr = buffer->ptr;
					ret = mm_munmap(self->mm, map + size, size * 2);
					cr_assert_eq(ret, 0, "ret = %d", ret);
					buffer->ptr = map;

					/* Initialize buffer in system memory. */
					cpu_store_ints(self->mm, buffer->ptr, 0,
						       size / sizeof(int), 1, 0);

					if (before) {
						new_ptr = mm_mremap(self->mm, map, size, size,
								    remap_flags,
								    map + size + offset);
						cr_assert_gt(new_ptr, 0, "mremap: %ld", new_ptr);
						buffer->ptr = (unsigned long)new_ptr;
					}

					/* Migrate memory to device. */
					ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
					cr_assert_eq(ret, 0,
						     "before %d dont_unmap %d use_thp %d offset %#lx: "
						     "ret = %d",
						     before, dont_unmap, use_thp, offset, ret);
					cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

					/* Check what the device read. */
					ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0,
						   "mirror");

					if (!before) {
						new_ptr = mm_mremap(self->mm, map, size, size,
								    remap_flags,
								    map + size + offset);
						cr_assert_gt(new_ptr, 0, "mremap: %ld", new_ptr);
						buffer->ptr = (unsigned long)new_ptr;
					}

					/* Fault pages back to system memory and check them. */
					cpu_check_ints(self->mm, buffer->ptr, 0,
						       size / sizeof(int), 1, 0);

					ret = mm_munmap(self->mm, buffer->ptr, size);
					cr_assert_eq(ret, 0, "ret = %d", ret);

					buffer->ptr = old_ptr;
					hmm_buffer_free(buffer);
				}
			}
		}
	}
}

#define DEVICE_THP_FAIL_ALLOC_MISSING                                                      \
	"THP migration of device memory is not built yet: with a base-page source, "         \
	"HMM_DMIRROR_FLAG_FAIL_ALLOC fails one page, so MIGRATE_TO_DEV returns -ENOENT"

/* Migrate private anonymous huge page with allocation errors. */
HMM_TEST(migrate_anon_huge_err)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long map, old_ptr;
	bool thp_missing = false;
	int ret;

	size = read_pmd_pagesize();

	buffer = hmm_buffer_alloc(2 * size, 2 * size);
	memset(buffer->mirror, 0xFF, 2 * size);

	old_ptr = hmm_mmap(2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	npages = size >> self->page_shift;
	map = ALIGN(old_ptr, size);
	ret = mm_madvise(self->mm, map, size, MADV_HUGEPAGE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	buffer->ptr = map;

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Migrate memory to device but force a THP allocation error. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	if (ret == -ENOENT && hmm_device_thp_missing(self->fd)) {
		/*
		 * No THP migration: the source came as 512 base pages, the
		 * failed allocation left the first in RAM (as test_hmm does
		 * for a base page), so not all of the range is on the device.
		 */
		thp_missing = true;
	} else {
		cr_assert_eq(ret, 0, "ret = %d", ret);
		cr_assert_eq(buffer->cpages, npages, "cpages = %llu",
			     (unsigned long long)buffer->cpages);

		/* Check what the device read. */
		ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");
	}

	/* Try faulting back a single (PAGE_SIZE) page. */
	cr_assert_eq(cpu_load_int(self->mm, buffer->ptr + 2048 * sizeof(int)), 2048);

	/* unmap and remap the region to reset things. */
	ret = mm_munmap(self->mm, old_ptr, 2 * size);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	old_ptr = hmm_mmap(2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);
	map = ALIGN(old_ptr, size);
	ret = mm_madvise(self->mm, map, size, MADV_HUGEPAGE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	buffer->ptr = map;

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Migrate THP to device. */
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/*
	 * Force an allocation error when faulting back a THP resident in the
	 * device.
	 */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	ret = hmm_migrate_dev_to_sys(self->fd, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(cpu_load_int(self->mm, buffer->ptr + 2048 * sizeof(int)), 2048);

	buffer->ptr = old_ptr;
	hmm_buffer_free(buffer);

	if (thp_missing)
		hmm_skip(DEVICE_THP_FAIL_ALLOC_MISSING);
}

/* Migrate private anonymous huge zero page with allocation errors. */
HMM_TEST(migrate_anon_huge_zero_err)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long map, old_ptr;
	bool thp_missing = false;
	int ret;

	size = read_pmd_pagesize();

	buffer = hmm_buffer_alloc(2 * size, 2 * size);
	memset(buffer->mirror, 0xFF, 2 * size);

	old_ptr = hmm_mmap(2 * size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	npages = size >> self->page_shift;
	map = ALIGN(old_ptr, size);
	ret = mm_madvise(self->mm, map, size, MADV_HUGEPAGE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	buffer->ptr = map;

	/* Migrate memory to device but force a THP allocation error. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	if (ret == -ENOENT && hmm_device_thp_missing(self->fd)) {
		/* No THP migration: the hole came as 512 base pages (see migrate_anon_huge_err). */
		thp_missing = true;
	} else {
		cr_assert_eq(ret, 0, "ret = %d", ret);
		cr_assert_eq(buffer->cpages, npages, "cpages = %llu",
			     (unsigned long long)buffer->cpages);

		/* Check what the device read. */
		ints_check(buffer->mirror, 0, size / sizeof(int), 0, 0, "mirror");
	}

	/* Try faulting back a single (PAGE_SIZE) page. */
	cr_assert_eq(cpu_load_int(self->mm, buffer->ptr + 2048 * sizeof(int)), 0);

	/* unmap and remap the region to reset things. */
	ret = mm_munmap(self->mm, old_ptr, 2 * size);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	old_ptr = hmm_mmap(2 * size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, NULL);
	map = ALIGN(old_ptr, size);
	ret = mm_madvise(self->mm, map, size, MADV_HUGEPAGE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	buffer->ptr = map;

	/*
	 * Initialize buffer in system memory (zero THP page).  The kernel test
	 * reads through its pointer to the old mapping, which the new mmap()
	 * reuses there; the intent is a read of the new one.
	 */
	cr_assert_eq(cpu_load_int(self->mm, buffer->ptr), 0);

	/* Migrate memory to device but force a THP allocation error. */
	ret = hmm_dmirror_cmd(self->fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	ret = hmm_migrate_sys_to_dev(self->fd, buffer, npages);
	if (ret == -ENOENT && hmm_device_thp_missing(self->fd)) {
		thp_missing = true;
	} else {
		cr_assert_eq(ret, 0, "ret = %d", ret);
		cr_assert_eq(buffer->cpages, npages, "cpages = %llu",
			     (unsigned long long)buffer->cpages);
	}

	/* Fault the device memory back and check it. */
	cpu_check_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 0, 0);

	buffer->ptr = old_ptr;
	hmm_buffer_free(buffer);

	if (thp_missing)
		hmm_skip(DEVICE_THP_FAIL_ALLOC_MISSING);
}

struct benchmark_results {
	double sys_to_dev_time;
	double dev_to_sys_time;
	double throughput_s2d;
	double throughput_d2s;
};

static double get_time_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* One benchmark run: warm up, then @iterations timed round trips of @buffer_size bytes. */
static int run_migration_benchmark(struct dmirror *fd, int use_thp, size_t buffer_size,
				   int iterations, struct benchmark_results *results)
{
	struct hmm_buffer *buffer;
	unsigned long npages = buffer_size >> self->page_shift;
	double start, s2d_total = 0, d2s_total = 0;
	int ret, i;

	buffer = hmm_buffer_alloc(buffer_size, buffer_size);
	buffer->ptr = hmm_mmap(buffer_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       NULL);

	ret = mm_madvise(self->mm, buffer->ptr, buffer_size,
			 use_thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	if (ret) {
		hmm_buffer_free(buffer);
		return ret;
	}

	/* Touch every page: ptr[i] = i & 0xFF. */
	ints_store(buffer->mirror, 0, buffer_size / sizeof(int), 1, 0);
	for (i = 0; i < (int)(buffer_size / sizeof(int)); i++)
		((int *)buffer->mirror)[i] &= 0xFF;
	ret = cpu_write(self->mm, buffer->ptr, buffer->mirror, buffer_size);
	if (ret) {
		hmm_buffer_free(buffer);
		return ret;
	}

	/* Warm up. */
	ret = hmm_migrate_sys_to_dev(fd, buffer, npages);
	if (!ret)
		ret = hmm_migrate_dev_to_sys(fd, buffer, npages);
	for (i = 0; !ret && i < iterations; i++) {
		start = get_time_ms();
		ret = hmm_migrate_sys_to_dev(fd, buffer, npages);
		s2d_total += get_time_ms() - start;
		if (ret)
			break;
		start = get_time_ms();
		ret = hmm_migrate_dev_to_sys(fd, buffer, npages);
		d2s_total += get_time_ms() - start;
	}
	hmm_buffer_free(buffer);
	if (ret)
		return ret;

	results->sys_to_dev_time = s2d_total / iterations;
	results->dev_to_sys_time = d2s_total / iterations;
	results->throughput_s2d = ((double)buffer_size / (1024.0 * 1024 * 1024)) /
				  (results->sys_to_dev_time / 1000.0);
	results->throughput_d2s = ((double)buffer_size / (1024.0 * 1024 * 1024)) /
				  (results->dev_to_sys_time / 1000.0);
	return 0;
}

static double improvement(double base, double thp)
{
	return base > 0 ? (base - thp) / base * 100.0 : 0.0;
}

static void print_benchmark_results(const char *test_name, size_t buffer_size,
				    const struct benchmark_results *thp,
				    const struct benchmark_results *regular)
{
	printf("%-22s %8zu KiB | THP %9.3f ms %7.2f GB/s | 4K %9.3f ms %7.2f GB/s | %6.1f%%\n",
	       test_name, buffer_size >> 10, thp->sys_to_dev_time, thp->throughput_s2d,
	       regular->sys_to_dev_time, regular->throughput_s2d,
	       improvement(regular->sys_to_dev_time, thp->sys_to_dev_time));
}

/*
 * Benchmark THP migration against 4 KiB migration; asserts only that each
 * migration succeeds.  Under a sanitizer the largest sizes are left out.
 */
HMM_TEST_TIMEOUT(benchmark_thp_migration, 300)
{
	struct benchmark_results thp_results, regular_results;
	size_t thp_size = read_pmd_pagesize();
	size_t max_size = HMM_SANITIZED ? 4 * thp_size : 128 * thp_size;
	int iterations = 5;
	size_t test_sizes[] = { thp_size / 4, thp_size / 2, thp_size,       thp_size * 2,
				thp_size * 4, thp_size * 8, thp_size * 128 };
	size_t i;

	printf("\nHMM THP migration benchmark (%s device, %d iterations)\n",
	       hmm_is_coherent_type(variant->device_number) ? "coherent" : "private",
	       iterations);
	printf("%-22s %12s | %-31s | %-30s | %s\n", "direction", "size", "THP: time, throughput",
	       "4K: time, throughput", "THP improvement");

	for (i = 0; i < ARRAY_SIZE(test_sizes); i++) {
		size_t size = test_sizes[i];
		struct benchmark_results tmp;
		int ret;

		if (size > max_size || size > (size_t)INT32_MAX)
			continue;

		/* Test THP migration. */
		ret = run_migration_benchmark(self->fd, 1, size, iterations, &thp_results);
		cr_assert_eq(ret, 0, "THP run of %zu bytes: %d", size, ret);

		/* Test regular migration. */
		ret = run_migration_benchmark(self->fd, 0, size, iterations, &regular_results);
		cr_assert_eq(ret, 0, "4K run of %zu bytes: %d", size, ret);

		print_benchmark_results("System to device", size, &thp_results, &regular_results);
		tmp = thp_results;
		tmp.sys_to_dev_time = thp_results.dev_to_sys_time;
		tmp.throughput_s2d = thp_results.throughput_d2s;
		regular_results.sys_to_dev_time = regular_results.dev_to_sys_time;
		regular_results.throughput_s2d = regular_results.throughput_d2s;
		print_benchmark_results("Device to system", size, &tmp, &regular_results);
	}
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* TEST_F(hmm2, ...)                                                  */
/* ------------------------------------------------------------------ */

/*
 * Migrate a range holding every kind of page (PROT_NONE, a hole, the zero
 * page, read-only and read-write pages) to device 1, then try to migrate
 * one of device 1's pages to device 0.
 */
HMM2_TEST(migrate_mixed)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned long p;
	int ret, val;

	npages = 6;
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);

	/* Reserve a range of addresses. */
	buffer->ptr = hmm_mmap(size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);
	p = buffer->ptr;

	/* Migrating a protected area should be an error. */
	ret = hmm_migrate_sys_to_dev(self->fd1, buffer, npages);
	cr_assert_eq(ret, -EINVAL, "ret = %d", ret);

	/* Punch a hole after the first page address. */
	ret = mm_munmap(self->mm, buffer->ptr + self->page_size, self->page_size);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* We expect an error if the vma doesn't cover the range. */
	ret = hmm_migrate_sys_to_dev(self->fd1, buffer, 3);
	cr_assert_eq(ret, -EINVAL, "ret = %d", ret);

	/* Page 2 will be a read-only zero page. */
	ret = mm_mprotect(self->mm, buffer->ptr + 2 * self->page_size, self->page_size, PROT_READ);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	val = cpu_load_int(self->mm, buffer->ptr + 2 * self->page_size) + 3;
	cr_assert_eq(val, 3);

	/* Page 3 will be read-only. */
	ret = mm_mprotect(self->mm, buffer->ptr + 3 * self->page_size, self->page_size,
			  PROT_READ | PROT_WRITE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cpu_store_int(self->mm, buffer->ptr + 3 * self->page_size, val);
	ret = mm_mprotect(self->mm, buffer->ptr + 3 * self->page_size, self->page_size, PROT_READ);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Page 4-5 will be read-write. */
	ret = mm_mprotect(self->mm, buffer->ptr + 4 * self->page_size, 2 * self->page_size,
			  PROT_READ | PROT_WRITE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cpu_store_int(self->mm, buffer->ptr + 4 * self->page_size, val);
	cpu_store_int(self->mm, buffer->ptr + 5 * self->page_size, val);

	/* Now try to migrate pages 2-5 to device 1. */
	buffer->ptr = p + 2 * self->page_size;
	ret = hmm_migrate_sys_to_dev(self->fd1, buffer, 4);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, 4, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Page 5 won't be migrated to device 0 because it's on device 1. */
	buffer->ptr = p + 5 * self->page_size;
	ret = hmm_migrate_sys_to_dev(self->fd0, buffer, 1);
	cr_assert_eq(ret, -ENOENT, "ret = %d", ret);

	buffer->ptr = p;
	hmm_buffer_free(buffer);
}

/* Simulate a device snapshotting CPU pagetables of every kind of entry. */
HMM2_TEST(snapshot)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	unsigned char *m;
	unsigned long p;
	int ret, val;

	npages = 7;
	size = npages << self->page_shift;

	/*
	 * The kernel test mallocs npages bytes, which the single-page
	 * migrations below overrun (MIGRATE_TO_DEV copies a page back into
	 * the mirror); the mirror here holds the pages.
	 */
	buffer = hmm_buffer_alloc(size, size);

	/* Reserve a range of addresses. */
	buffer->ptr = hmm_mmap(size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);
	p = buffer->ptr;

	/* Punch a hole after the first page address. */
	ret = mm_munmap(self->mm, buffer->ptr + self->page_size, self->page_size);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Page 2 will be read-only zero page. */
	ret = mm_mprotect(self->mm, buffer->ptr + 2 * self->page_size, self->page_size, PROT_READ);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	val = cpu_load_int(self->mm, buffer->ptr + 2 * self->page_size) + 3;
	cr_assert_eq(val, 3);

	/* Page 3 will be read-only. */
	ret = mm_mprotect(self->mm, buffer->ptr + 3 * self->page_size, self->page_size,
			  PROT_READ | PROT_WRITE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cpu_store_int(self->mm, buffer->ptr + 3 * self->page_size, val);
	ret = mm_mprotect(self->mm, buffer->ptr + 3 * self->page_size, self->page_size, PROT_READ);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Page 4-6 will be read-write. */
	ret = mm_mprotect(self->mm, buffer->ptr + 4 * self->page_size, 3 * self->page_size,
			  PROT_READ | PROT_WRITE);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cpu_store_int(self->mm, buffer->ptr + 4 * self->page_size, val);

	/* Page 5 will be migrated to device 0. */
	buffer->ptr = p + 5 * self->page_size;
	ret = hmm_migrate_sys_to_dev(self->fd0, buffer, 1);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, 1, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Page 6 will be migrated to device 1. */
	buffer->ptr = p + 6 * self->page_size;
	ret = hmm_migrate_sys_to_dev(self->fd1, buffer, 1);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, 1, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Simulate a device snapshotting CPU pagetables. */
	buffer->ptr = p;
	ret = hmm_dmirror_cmd(self->fd0, HMM_DMIRROR_SNAPSHOT, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	/* Check what the device saw. */
	m = buffer->mirror;
	cr_assert_eq(m[0], HMM_DMIRROR_PROT_ERROR, "m[0] = %#x", m[0]);
	cr_assert_eq(m[1], HMM_DMIRROR_PROT_ERROR, "m[1] = %#x", m[1]);
	cr_assert_eq(m[2], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ, "m[2] = %#x", m[2]);
	cr_assert_eq(m[3], HMM_DMIRROR_PROT_READ, "m[3] = %#x", m[3]);
	cr_assert_eq(m[4], HMM_DMIRROR_PROT_WRITE, "m[4] = %#x", m[4]);
	if (!hmm_is_coherent_type(variant->device_number0)) {
		cr_assert_eq(m[5], HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE,
			     "m[5] = %#x", m[5]);
		cr_assert_eq(m[6], HMM_DMIRROR_PROT_NONE, "m[6] = %#x", m[6]);
	} else if (variant->device_number0 == HMM_COHERENCE_DEVICE_ONE) {
		cr_assert_eq(m[5], HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE,
			     "m[5] = %#x", m[5]);
		cr_assert_eq(m[6], HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | HMM_DMIRROR_PROT_WRITE,
			     "m[6] = %#x", m[6]);
	} else {
		cr_assert_eq(m[5], HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | HMM_DMIRROR_PROT_WRITE,
			     "m[5] = %#x", m[5]);
		cr_assert_eq(m[6], HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE,
			     "m[6] = %#x", m[6]);
	}

	hmm_buffer_free(buffer);
}

/* Test two devices reading the same memory (double mapped). */
HMM2_TEST(double_map)
{
	struct hmm_buffer *buffer;
	unsigned long npages, size;
	int ret;

	npages = 6;
	size = npages << self->page_shift;

	buffer = hmm_buffer_alloc(size, size);

	/* Reserve a range of addresses. */
	buffer->ptr = hmm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL);

	/* Initialize buffer in system memory. */
	cpu_store_ints(self->mm, buffer->ptr, 0, size / sizeof(int), 1, 0);

	/* Make region read-only. */
	ret = mm_mprotect(self->mm, buffer->ptr, size, PROT_READ);
	cr_assert_eq(ret, 0, "ret = %d", ret);

	/* Simulate device 0 reading system memory. */
	ret = hmm_dmirror_cmd(self->fd0, HMM_DMIRROR_READ, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	/* Simulate device 1 reading system memory. */
	ret = hmm_dmirror_cmd(self->fd1, HMM_DMIRROR_READ, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what the device read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	/* Migrate pages to device 1 and try to read from device 0. */
	ret = hmm_migrate_sys_to_dev(self->fd1, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);

	ret = hmm_dmirror_cmd(self->fd0, HMM_DMIRROR_READ, buffer, npages);
	cr_assert_eq(ret, 0, "ret = %d", ret);
	cr_assert_eq(buffer->cpages, npages, "cpages = %llu", (unsigned long long)buffer->cpages);
	cr_assert_eq(buffer->faults, 1, "faults = %llu", (unsigned long long)buffer->faults);

	/* Check what device 0 read. */
	ints_check(buffer->mirror, 0, size / sizeof(int), 1, 0, "mirror");

	hmm_buffer_free(buffer);
}
