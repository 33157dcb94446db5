/* SPDX-License-Identifier: MIT */
/*
 * tests/test_hmm.c - hmm_range_fault(): every output case with its exact
 * bits, request masks and sticky flags, errno, -EBUSY from invalidations
 * (another thread's and the call's own COW), PMD orders, the zero pages,
 * migration entries and device-private pages of this and another owner.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "uhmm/hugetlb.h"
#include "uhmm/memremap.h"
#include "uhmm/migrate.h"

TestSuite(hmm, .init = machine_setup, .fini = machine_teardown);

#define PG PAGE_SIZE
#define V HMM_PFN_VALID
#define W HMM_PFN_WRITE
#define ORDER9 (9UL << HMM_PFN_ORDER_SHIFT)

/* A driver: one interval, a lock, and how many invalidations it saw. */
struct drv {
	struct mmu_interval_notifier sub;
	pthread_mutex_t lock;
	int invalidations;
};

static bool drv_invalidate(struct mmu_interval_notifier *sub,
			   const struct mmu_notifier_range *range, unsigned long cur_seq)
{
	struct drv *d = container_of(sub, struct drv, sub);

	(void)range;
	pthread_mutex_lock(&d->lock);
	mmu_interval_set_seq(sub, cur_seq);
	d->invalidations++;
	pthread_mutex_unlock(&d->lock);
	return true;
}

static const struct mmu_interval_notifier_ops drv_ops = { .invalidate = drv_invalidate };

static struct drv *drv_new(struct mm_struct *mm)
{
	struct drv *d = calloc(1, sizeof(*d));

	cr_assert_not_null(d);
	pthread_mutex_init(&d->lock, NULL);
	cr_assert_eq(mmu_interval_notifier_insert(&d->sub, mm, 0, ~0UL & PAGE_MASK, &drv_ops), 0);
	return d;
}

static void drv_free(struct drv *d)
{
	mmu_interval_notifier_remove(&d->sub);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* One hmm_range_fault() call with a fresh sequence. */
static int fault_once(struct drv *d, unsigned long start, unsigned long npages, unsigned long *pfns,
		      unsigned long default_flags, unsigned long mask, void *owner)
{
	struct hmm_range range = {
		.notifier = &d->sub,
		.start = start,
		.end = start + npages * PG,
		.hmm_pfns = pfns,
		.default_flags = default_flags,
		.pfn_flags_mask = mask,
		.dev_private_owner = owner,
	};
	int ret;

	range.notifier_seq = mmu_interval_read_begin(&d->sub);
	mmap_read_lock(d->sub.mm);
	ret = hmm_range_fault(&range);
	mmap_read_unlock(d->sub.mm);
	return ret;
}

/* The driver loop: retry -EBUSY (a bounded number of times). Returns the last result. */
static int fault_retry(struct drv *d, unsigned long start, unsigned long npages,
		       unsigned long *pfns, unsigned long default_flags, unsigned long mask,
		       void *owner, int *busy)
{
	unsigned long *input = malloc(npages * sizeof(*input));
	int ret;

	cr_assert_not_null(input);
	memcpy(input, pfns, npages * sizeof(*input));
	for (int i = 0; i < 100; i++) {
		ret = fault_once(d, start, npages, pfns, default_flags, mask, owner);
		if (ret != -EBUSY)
			break;
		if (busy)
			(*busy)++;
		memcpy(pfns, input, npages * sizeof(*input));
	}
	free(input);
	return ret;
}

static unsigned long zero_pfn(void)
{
	return machine->zero_pfn;
}

static void expect_pfn(const unsigned long *pfns, unsigned long i, unsigned long want)
{
	cr_assert_eq(pfns[i], want, "hmm_pfns[%lu] = %#lx, wanted %#lx", i, pfns[i], want);
}

/* ------------------------------------------------------------------ */
/* Snapshots without faults                                            */
/* ------------------------------------------------------------------ */

Test(hmm, bad_ranges_are_einval)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long pfns[4] = { 0 };
	struct hmm_range range = { .notifier = &d->sub, .hmm_pfns = pfns };

	range.notifier_seq = mmu_interval_read_begin(&d->sub);
	mmap_read_lock(mm);
	range.start = a;
	range.end = a;
	cr_assert_eq(hmm_range_fault(&range), -EINVAL);
	range.start = a + 1;
	range.end = a + PG;
	cr_assert_eq(hmm_range_fault(&range), -EINVAL);
	range.start = a;
	range.end = a + PG + 8;
	cr_assert_eq(hmm_range_fault(&range), -EINVAL);
	range.start = a + 2 * PG;
	range.end = a;
	cr_assert_eq(hmm_range_fault(&range), -EINVAL);
	mmap_read_unlock(mm);
	drv_free(d);
	mmput(mm);
}

Test(hmm, snapshot_reports_every_kind_of_entry)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	/* [rw 6 pages][hole 1 page][PROT_NONE 1 page][read-only 2 pages] */
	unsigned long a = map_anon(mm, 0, 10 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long pfns[10];
	uint8_t byte = 7, buf;

	cr_assert_eq(mm_munmap(mm, a + 6 * PG, PG), 0);
	cr_assert_eq(mm_mprotect(mm, a + 7 * PG, PG, PROT_NONE), 0);
	cr_assert_eq(mm_mprotect(mm, a + 8 * PG, 2 * PG, PROT_READ), 0);
	cr_assert_eq(cpu_write(mm, a, &byte, 1), 0);
	cr_assert_eq(cpu_write(mm, a + PG, &byte, 1), 0);
	cr_assert_eq(cpu_read(mm, a + 2 * PG, &buf, 1), 0);  /* zero page */
	cr_assert_eq(cpu_read(mm, a + 9 * PG, &buf, 1), 0);  /* zero page, read-only VMA */
	/* A page write-protected by mprotect and back: present, not writable. */
	cr_assert_eq(cpu_write(mm, a + 3 * PG, &byte, 1), 0);

	memset(pfns, 0, sizeof(pfns));
	d->invalidations = 0;
	cr_assert_eq(fault_retry(d, a, 10, pfns, 0, 0, NULL, NULL), 0);
	expect_pfn(pfns, 0, pfn_at(mm, a) | V | W);
	expect_pfn(pfns, 1, pfn_at(mm, a + PG) | V | W);
	expect_pfn(pfns, 2, zero_pfn() | V);
	expect_pfn(pfns, 3, pfn_at(mm, a + 3 * PG) | V | W);
	expect_pfn(pfns, 4, 0);
	expect_pfn(pfns, 5, 0);
	expect_pfn(pfns, 6, HMM_PFN_ERROR);  /* no VMA */
	expect_pfn(pfns, 7, HMM_PFN_ERROR);  /* no VM_READ */
	expect_pfn(pfns, 8, 0);
	expect_pfn(pfns, 9, zero_pfn() | V);
	cr_assert_eq(hmm_pfn_to_page(pfns[0]), pfn_to_page(pfn_at(mm, a)));
	cr_assert_eq(hmm_pfn_to_phys(pfns[1]), (uint64_t)pfn_at(mm, a + PG) << PAGE_SHIFT);
	cr_assert_eq(hmm_pfn_to_map_order(pfns[0]), 0);
	cr_assert_eq(d->invalidations, 0, "a snapshot invalidated something");
	drv_free(d);
	mmput(mm);
}

Test(hmm, sticky_flags_kept_and_other_input_bits_dropped)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long pfns[5];
	uint8_t byte = 1;

	cr_assert_eq(cpu_write(mm, a, &byte, 1), 0);
	pfns[0] = HMM_PFN_DMA_MAPPED | 0x1234;
	pfns[1] = HMM_PFN_P2PDMA | HMM_PFN_P2PDMA_BUS | HMM_PFN_ERROR | ORDER9 | 0x99;
	pfns[2] = V | W; /* a request the mask drops */
	pfns[3] = ~0UL & ~(V | W);
	pfns[4] = HMM_PFN_DMA_MAPPED;
	cr_assert_eq(fault_retry(d, a, 5, pfns, 0, 0, NULL, NULL), 0);
	expect_pfn(pfns, 0, HMM_PFN_DMA_MAPPED | pfn_at(mm, a) | V | W);
	expect_pfn(pfns, 1, HMM_PFN_P2PDMA | HMM_PFN_P2PDMA_BUS);
	expect_pfn(pfns, 2, 0);
	expect_pfn(pfns, 3, HMM_PFN_INOUT_FLAGS);
	expect_pfn(pfns, 4, HMM_PFN_DMA_MAPPED | HMM_PFN_ERROR); /* past the VMA */
	cr_assert_eq(rss_bytes(mm), PG, "a masked request faulted");
	drv_free(d);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* Faults                                                              */
/* ------------------------------------------------------------------ */

Test(hmm, default_read_fault_maps_zero_pages)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long pfns[4] = { 0 };

	cr_assert_eq(fault_retry(d, a, 4, pfns, HMM_PFN_REQ_FAULT, 0, NULL, NULL), 0);
	for (unsigned long i = 0; i < 4; i++) {
		expect_pfn(pfns, i, zero_pfn() | V);
		cr_assert(pagemap(mm, a + i * PG) & PM_PRESENT);
	}
	cr_assert_eq(rss_bytes(mm), 0, "read faults allocated pages");
	drv_free(d);
	mmput(mm);
}

Test(hmm, write_fault_allocates_and_cow_of_zero_page_is_ebusy_once)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long pfns[4] = { 0 };
	int busy = 0;
	uint8_t buf;

	/* Empty PTEs: write faults allocate, nothing is invalidated. */
	cr_assert_eq(fault_once(d, a, 2, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0, NULL), 0);
	expect_pfn(pfns, 0, pfn_at(mm, a) | V | W);
	expect_pfn(pfns, 1, pfn_at(mm, a + PG) | V | W);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	cr_assert_eq(d->invalidations, 0);

	/* Zero pages: the write fault is a COW, which invalidates the range
	 * the call is mirroring, so the call says -EBUSY; the retry works. */
	cr_assert_eq(cpu_read(mm, a + 2 * PG, &buf, 1), 0);
	cr_assert_eq(cpu_read(mm, a + 3 * PG, &buf, 1), 0);
	memset(pfns, 0, sizeof(pfns));
	cr_assert_eq(fault_once(d, a + 2 * PG, 2, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0,
				NULL),
		     -EBUSY);
	cr_assert_eq(d->invalidations, 2, "one CLEAR per copied zero page");
	cr_assert_eq(fault_retry(d, a + 2 * PG, 2, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0,
				 NULL, &busy),
		     0);
	cr_assert_eq(busy, 0);
	expect_pfn(pfns, 0, pfn_at(mm, a + 2 * PG) | V | W);
	expect_pfn(pfns, 1, pfn_at(mm, a + 3 * PG) | V | W);
	cr_assert_eq(rss_bytes(mm), 4 * PG);
	drv_free(d);
	mmput(mm);
}

Test(hmm, per_page_requests_through_the_mask)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_plain(mm, PMD_SIZE);
	unsigned long pfns[8] = { 0 };

	/*
	 * An empty PMD is one hole: a request anywhere in it faults all of
	 * the hole the walk covers, as Linux's hmm_vma_walk_hole() does.
	 */
	pfns[5] = HMM_PFN_REQ_FAULT;
	cr_assert_eq(fault_retry(d, a + 16 * PG, 8, pfns, 0, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
				 NULL, NULL),
		     0);
	for (unsigned long i = 0; i < 8; i++)
		expect_pfn(pfns, i, zero_pfn() | V);

	/* With a PTE table, from the requesting page to the end of the walk. */
	memset(pfns, 0, sizeof(pfns));
	pfns[5] = HMM_PFN_REQ_FAULT;
	cr_assert_eq(fault_retry(d, a, 8, pfns, 0, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, NULL, NULL),
		     0);
	for (unsigned long i = 0; i < 5; i++) {
		expect_pfn(pfns, i, 0);
		cr_assert_not(pagemap(mm, a + i * PG) & PM_PRESENT, "page %lu faulted", i);
	}
	for (unsigned long i = 5; i < 8; i++)
		expect_pfn(pfns, i, zero_pfn() | V);
	cr_assert_not(pagemap(mm, a + 8 * PG) & PM_PRESENT, "faulted past the range");

	/* Read for all by default, write for page 2 by mask. */
	memset(pfns, 0, sizeof(pfns));
	pfns[2] = HMM_PFN_REQ_WRITE;
	pfns[1] = HMM_PFN_REQ_FAULT; /* outside the mask: ignored, default applies */
	cr_assert_eq(fault_retry(d, a, 4, pfns, HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, NULL, NULL), 0);
	expect_pfn(pfns, 0, zero_pfn() | V);
	expect_pfn(pfns, 1, zero_pfn() | V);
	expect_pfn(pfns, 2, pfn_at(mm, a + 2 * PG) | V | W);
	/* The write fault covered the rest of the walk, as Linux's does. */
	expect_pfn(pfns, 3, pfn_at(mm, a + 3 * PG) | V | W);
	cr_assert_eq(rss_bytes(mm), 2 * PG);

	/* A second identical call: all there, no fault, no invalidation. */
	d->invalidations = 0;
	memset(pfns, 0, sizeof(pfns));
	pfns[2] = HMM_PFN_REQ_WRITE;
	cr_assert_eq(fault_once(d, a, 4, pfns, HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, NULL), 0);
	cr_assert_eq(d->invalidations, 0);
	cr_assert_eq(rss_bytes(mm), 2 * PG);
	drv_free(d);
	mmput(mm);
}

Test(hmm, errors_eperm_efault_and_partial_output)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_anon(mm, 0, 6 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long pfns[6];

	cr_assert_eq(mm_mprotect(mm, a + 2 * PG, PG, PROT_READ), 0);
	cr_assert_eq(mm_mprotect(mm, a + 3 * PG, PG, PROT_NONE), 0);
	cr_assert_eq(mm_munmap(mm, a + 5 * PG, PG), 0);

	/* Write requested in a read-only VMA. */
	for (int i = 0; i < 6; i++)
		pfns[i] = 0xabc;
	cr_assert_eq(fault_once(d, a, 3, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0, NULL),
		     -EPERM);
	expect_pfn(pfns, 0, pfn_at(mm, a) | V | W);
	expect_pfn(pfns, 1, pfn_at(mm, a + PG) | V | W);
	expect_pfn(pfns, 2, 0xabc); /* still the input */
	cr_assert_not(pagemap(mm, a + 2 * PG) & PM_PRESENT);

	/* Read requested in a PROT_NONE VMA, and past every VMA. */
	cr_assert_eq(fault_once(d, a + 3 * PG, 1, pfns, HMM_PFN_REQ_FAULT, 0, NULL), -EFAULT);
	cr_assert_eq(fault_once(d, a + 5 * PG, 1, pfns, HMM_PFN_REQ_FAULT, 0, NULL), -EFAULT);
	/* The same pages without a request read as ERROR. */
	cr_assert_eq(fault_once(d, a + 3 * PG, 3, pfns, 0, 0, NULL), 0);
	expect_pfn(pfns, 0, HMM_PFN_ERROR);
	expect_pfn(pfns, 1, 0);
	expect_pfn(pfns, 2, HMM_PFN_ERROR);
	/* A request on only the good page of a mixed range succeeds. */
	pfns[0] = 0;
	pfns[1] = HMM_PFN_REQ_FAULT;
	pfns[2] = 0;
	cr_assert_eq(fault_once(d, a + 3 * PG, 3, pfns, 0, HMM_PFN_REQ_FAULT, NULL), 0);
	expect_pfn(pfns, 0, HMM_PFN_ERROR);
	expect_pfn(pfns, 1, zero_pfn() | V);
	expect_pfn(pfns, 2, HMM_PFN_ERROR);
	drv_free(d);
	mmput(mm);
}

Test(hmm, pfnmap_and_io_vmas_are_errors)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_anon(mm, 0, 2 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long pfns[2] = { 0 };
	struct vm_area_struct *vma;
	uint8_t byte = 1;

	cr_assert_eq(cpu_write(mm, a, &byte, 1), 0);
	/* No mapping call makes these flags: set them as a driver's mmap would. */
	mmap_write_lock(mm);
	vma = find_vma(mm, a);
	vma->vm_flags |= VM_PFNMAP;
	mmap_write_unlock(mm);
	cr_assert_eq(fault_once(d, a, 2, pfns, 0, 0, NULL), 0);
	expect_pfn(pfns, 0, HMM_PFN_ERROR);
	expect_pfn(pfns, 1, HMM_PFN_ERROR);
	cr_assert_eq(fault_once(d, a, 2, pfns, HMM_PFN_REQ_FAULT, 0, NULL), -EFAULT);
	mmap_write_lock(mm);
	vma->vm_flags = (vma->vm_flags & ~VM_PFNMAP) | VM_IO;
	mmap_write_unlock(mm);
	cr_assert_eq(fault_once(d, a, 1, pfns, HMM_PFN_REQ_FAULT, 0, NULL), -EFAULT);
	mmap_write_lock(mm);
	vma->vm_flags &= ~VM_IO;
	mmap_write_unlock(mm);
	cr_assert_eq(fault_once(d, a, 1, pfns, 0, 0, NULL), 0);
	expect_pfn(pfns, 0, pfn_at(mm, a) | V | W);
	drv_free(d);
	mmput(mm);
}

Test(hmm, shared_file_pages)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	struct file *f = new_memfd();
	unsigned long a, r;
	unsigned long pfns[2] = { 0 };

	cr_assert_eq(uhmm_ftruncate(f, 2 * PG), 0);
	file_fill(f, 0, 2 * PG, 3);
	a = map_file(mm, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	r = map_file(mm, 2 * PG, PROT_READ, MAP_SHARED, f, 0);
	cr_assert_eq(fault_retry(d, a, 2, pfns, HMM_PFN_REQ_FAULT, 0, NULL, NULL), 0);
	/* A read fault of a shared page maps it read-only (write notify aside). */
	cr_assert_eq(hmm_pfn_to_page(pfns[0]), folio_page(uhmm_file_folio(f, 0), 0));
	cr_assert(pfns[0] & V);
	cr_assert_eq(fault_retry(d, a, 2, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0, NULL, NULL),
		     0);
	expect_pfn(pfns, 0, folio_pfn(uhmm_file_folio(f, 0)) | V | W);
	expect_pfn(pfns, 1, folio_pfn(uhmm_file_folio(f, 1)) | V | W);
	cr_assert_eq(fault_retry(d, r, 2, pfns, HMM_PFN_REQ_FAULT, 0, NULL, NULL), 0);
	expect_pfn(pfns, 0, folio_pfn(uhmm_file_folio(f, 0)) | V);
	cr_assert_eq(fault_once(d, r, 2, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0, NULL),
		     -EPERM);
	drv_free(d);
	mmput(mm);
	fput(f);
}

/* ------------------------------------------------------------------ */
/* Huge mappings                                                       */
/* ------------------------------------------------------------------ */

Test(hmm, thp_pages_carry_order_9)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_thp(mm, PMD_SIZE);
	unsigned long *pfns = calloc(HPAGE_PMD_NR, sizeof(*pfns));
	unsigned long base;

	fill_pattern(mm, a, PG, 1);
	cr_assert_eq(anon_huge(mm), PMD_SIZE);
	base = pfn_at(mm, a);
	cr_assert_eq(fault_retry(d, a, HPAGE_PMD_NR, pfns, 0, 0, NULL, NULL), 0);
	for (unsigned long i = 0; i < HPAGE_PMD_NR; i++)
		expect_pfn(pfns, i, (base + i) | V | W | ORDER9);
	cr_assert_eq(hmm_pfn_to_map_order(pfns[17]), 9);
	/* A range inside the PMD: the order still says 9 (the mapping extends past it). */
	memset(pfns, 0, 3 * sizeof(*pfns));
	cr_assert_eq(fault_retry(d, a + 100 * PG, 3, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0,
				 NULL, NULL),
		     0);
	for (unsigned long i = 0; i < 3; i++)
		expect_pfn(pfns, i, (base + 100 + i) | V | W | ORDER9);
	cr_assert_eq(d->invalidations, 0);
	cr_assert_eq(anon_huge(mm), PMD_SIZE);
	free(pfns);
	drv_free(d);
	mmput(mm);
}

Test(hmm, huge_zero_page_then_write_request_gets_thp)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_thp(mm, PMD_SIZE);
	unsigned long pfns[4] = { 0 };
	unsigned long hz;
	int busy = 0;

	cr_assert_eq(fault_retry(d, a + 4 * PG, 2, pfns, HMM_PFN_REQ_FAULT, 0, NULL, NULL), 0);
	hz = pfns[0] & ~HMM_PFN_FLAGS;
	cr_assert(is_huge_zero_pfn(machine, hz), "a read fault of a THP range maps the huge zero page");
	expect_pfn(pfns, 0, hz | V | ORDER9);
	expect_pfn(pfns, 1, (hz + 1) | V | ORDER9);
	cr_assert_eq(hz - 4, folio_pfn(machine->huge_zero_folio));

	/*
	 * A write request: the huge zero PMD is replaced by a new THP (one
	 * CLEAR of the PMD), as Linux 6.13+ does.
	 */
	memset(pfns, 0, sizeof(pfns));
	cr_assert_eq(fault_retry(d, a + 4 * PG, 1, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0,
				 NULL, &busy),
		     0);
	cr_assert_eq(busy, 1, "the new THP invalidated the range once");
	expect_pfn(pfns, 0, pfn_at(mm, a + 4 * PG) | V | W | ORDER9);
	memset(pfns, 0, sizeof(pfns));
	cr_assert_eq(fault_retry(d, a + 3 * PG, 3, pfns, 0, 0, NULL, NULL), 0);
	expect_pfn(pfns, 0, pfn_at(mm, a + 3 * PG) | V | W | ORDER9);
	expect_pfn(pfns, 1, pfn_at(mm, a + 4 * PG) | V | W | ORDER9);
	expect_pfn(pfns, 2, pfn_at(mm, a + 5 * PG) | V | W | ORDER9);
	cr_assert_eq(pfn_at(mm, a + 5 * PG), pfn_at(mm, a + 3 * PG) + 2);
	cr_assert_eq(rss_bytes(mm), PMD_SIZE);
	drv_free(d);
	mmput(mm);
}

static void nozero_setup(void)
{
	struct uhmm_machine_config cfg = { .no_huge_zero_page = true };

	machine_setup_with(&cfg);
}

TestSuite(hmm_nozero, .init = nozero_setup, .fini = machine_teardown);

/*
 * With the huge zero page off, a read fault in a read-only THP range
 * allocates a THP; it must be mapped read-only (maybe_pmd_mkwrite()), so a
 * write request fails -EPERM and the CPU cannot write either.  Found by
 * the fuzzer: uhmm mapped it writable and a device WRITE went through a
 * PROT_READ|PROT_EXEC mapping.
 */
Test(hmm_nozero, read_fault_in_readonly_vma_maps_readonly_thp)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_anon(mm, 0, PMD_SIZE, PROT_READ | PROT_EXEC, 0);
	unsigned long pfns[4] = { 0 };
	uint8_t byte = 1;

	cr_assert(IS_ALIGNED(a, PMD_SIZE));
	cr_assert_eq(mm_madvise(mm, a, PMD_SIZE, MADV_HUGEPAGE), 0);
	check_zero(mm, a, PMD_SIZE);
	cr_assert_eq(anon_huge(mm), PMD_SIZE, "a read with no huge zero page maps a THP");
	cr_assert_eq(fault_retry(d, a, 4, pfns, HMM_PFN_REQ_FAULT, 0, NULL, NULL), 0);
	for (unsigned long i = 0; i < 4; i++)
		expect_pfn(pfns, i, (pfn_at(mm, a) + i) | V | ORDER9);
	memset(pfns, 0, sizeof(pfns));
	cr_assert_eq(fault_retry(d, a, 4, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0, NULL,
				 NULL),
		     -EPERM);
	cr_assert_eq(cpu_write(mm, a + 5, &byte, 1), -EFAULT);
	check_zero(mm, a, PMD_SIZE);
	drv_free(d);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* Invalidations                                                       */
/* ------------------------------------------------------------------ */

struct invalidator {
	struct mm_struct *mm;
	unsigned long addr;
};

static void *dontneed_thread(void *arg)
{
	struct invalidator *inv = arg;

	mm_madvise(inv->mm, inv->addr, PG, MADV_DONTNEED);
	return NULL;
}

Test(hmm, ebusy_after_a_concurrent_invalidation)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long pfns[4] = { 1, 2, 3, 4 };
	struct invalidator inv = { mm, a + PG };
	struct hmm_range range = {
		.notifier = &d->sub, .start = a, .end = a + 4 * PG, .hmm_pfns = pfns,
	};
	pthread_t t;

	fill_pattern(mm, a, 4 * PG, 2);
	range.notifier_seq = mmu_interval_read_begin(&d->sub);
	cr_assert_eq(pthread_create(&t, NULL, dontneed_thread, &inv), 0);
	pthread_join(t, NULL);
	mmap_read_lock(mm);
	cr_assert_eq(hmm_range_fault(&range), -EBUSY);
	mmap_read_unlock(mm);
	for (unsigned long i = 0; i < 4; i++)
		expect_pfn(pfns, i, i + 1); /* nothing written */
	/* The driver's read_retry agrees, and a new sequence works. */
	cr_assert(mmu_interval_read_retry(&d->sub, range.notifier_seq));
	range.notifier_seq = mmu_interval_read_begin(&d->sub);
	mmap_read_lock(mm);
	cr_assert_eq(hmm_range_fault(&range), 0);
	mmap_read_unlock(mm);
	cr_assert_not(mmu_interval_read_retry(&d->sub, range.notifier_seq));
	expect_pfn(pfns, 0, pfn_at(mm, a) | V | W);
	expect_pfn(pfns, 1, 0);
	drv_free(d);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* Migration entries and device-private pages                          */
/* ------------------------------------------------------------------ */

#define DEV_PAGES 64 /* pages migrate_vma moves at most per call */
#define DEV_REGION (2 * HPAGE_PMD_NR) /* room for one aligned order-9 folio */

static int dev_owner, other_owner;
static struct resource *dev_res;
static struct dev_pagemap dev_pgmap;
static atomic_int dev_freed;
static int nr_migrate_to_ram, nr_pmd_migrate_to_ram;

/* Move the locked @src (mapped through the reverse map) into the locked @dst. */
static void move_folio(struct folio *src, struct folio *dst)
{
	try_to_migrate(src, 0);
	cr_assert_not(folio_mapped(src));
	memcpy(folio_address(dst), folio_address(src), folio_size(src));
	cr_assert_eq(folio_migrate_mapping(NULL, dst, src, 0), 0);
	folio_migrate_flags(dst, src);
	remove_migration_ptes(src, dst, 0);
}

static void dev_folio_free(struct folio *folio)
{
	(void)folio;
	atomic_fetch_add(&dev_freed, 1);
}

/* The CPU (or hmm_range_fault() for another owner) touched a device page: copy it back. */
static vm_fault_t dev_migrate_to_ram(struct vm_fault *vmf)
{
	unsigned long src = 0, dst = 0;
	struct migrate_vma args = {
		.vma = vmf->vma, .src = &src, .dst = &dst,
		.start = vmf->address & PAGE_MASK, .end = (vmf->address & PAGE_MASK) + PG,
		.pgmap_owner = &dev_owner, .flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page = vmf->page,
	};
	struct folio *folio, *dfolio = page_folio(vmf->page);

	nr_migrate_to_ram++;
	if (folio_test_large(dfolio)) {
		/* A PMD entry: the whole folio back, by the core's own steps. */
		nr_pmd_migrate_to_ram++;
		folio = folio_alloc(machine, GFP_HIGHUSER_MOVABLE, folio_order(dfolio));
		if (!folio)
			return VM_FAULT_OOM;
		folio_lock(folio);
		move_folio(dfolio, folio);
		folio_unlock(folio);
		folio_put(folio);
		return 0;
	}
	if (migrate_vma_setup(&args))
		return VM_FAULT_SIGBUS;
	if (src & MIGRATE_PFN_MIGRATE) {
		folio = folio_alloc(machine, GFP_HIGHUSER_MOVABLE, 0);
		if (!folio)
			return VM_FAULT_OOM;
		folio_lock(folio);
		memcpy(folio_address(folio), page_address(migrate_pfn_to_page(src)), PG);
		dst = migrate_pfn(folio_pfn(folio));
	}
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
	return 0;
}

static const struct dev_pagemap_ops dev_ops = {
	.folio_free = dev_folio_free,
	.migrate_to_ram = dev_migrate_to_ram,
};

static void dev_setup(void)
{
	void *bytes;

	nr_migrate_to_ram = nr_pmd_migrate_to_ram = 0;
	atomic_store(&dev_freed, 0);
	dev_res = request_free_mem_region(DEV_REGION * PG, "hmm-test");
	cr_assert(!IS_ERR_OR_NULL(dev_res));
	memset(&dev_pgmap, 0, sizeof(dev_pgmap));
	dev_pgmap.type = MEMORY_DEVICE_PRIVATE;
	dev_pgmap.ops = &dev_ops;
	dev_pgmap.owner = &dev_owner;
	dev_pgmap.range.start = dev_res->start;
	dev_pgmap.range.end = dev_res->end;
	dev_pgmap.nr_range = 1;
	bytes = memremap_pages(&dev_pgmap, machine);
	cr_assert(!IS_ERR_OR_NULL(bytes));
}

static void dev_teardown(void)
{
	memunmap_pages(&dev_pgmap);
	release_mem_region(dev_res);
}

static unsigned long dev_pfn(unsigned long i)
{
	return (unsigned long)(dev_res->start >> PAGE_SHIFT) + i;
}

/* Migrate [a, a + n pages) of @mm (one VMA) to device pages first..first+n-1. */
static void migrate_to_device(struct mm_struct *mm, unsigned long a, unsigned long n,
			      unsigned long first)
{
	unsigned long src[DEV_PAGES] = { 0 }, dst[DEV_PAGES] = { 0 };
	struct migrate_vma args = {
		.src = src, .dst = dst, .start = a, .end = a + n * PG,
		.pgmap_owner = &dev_owner, .flags = MIGRATE_VMA_SELECT_SYSTEM,
	};

	mmap_read_lock(mm);
	args.vma = find_vma(mm, a);
	cr_assert_eq(migrate_vma_setup(&args), 0);
	cr_assert_eq(args.cpages, n);
	for (unsigned long i = 0; i < n; i++) {
		struct page *dpage = pfn_to_page(dev_pfn(first + i));
		struct page *spage = migrate_pfn_to_page(src[i]);

		cr_assert(src[i] & MIGRATE_PFN_MIGRATE);
		zone_device_page_init(dpage);
		if (spage)
			memcpy(page_address(dpage), page_address(spage), PG);
		else
			memset(page_address(dpage), 0, PG);
		dst[i] = migrate_pfn(dev_pfn(first + i));
		if (src[i] & MIGRATE_PFN_WRITE)
			dst[i] |= MIGRATE_PFN_WRITE;
	}
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
	mmap_read_unlock(mm);
}

/* Bring device pages of [a, a + n pages) (one VMA) back to system RAM. */
static void migrate_to_system(struct mm_struct *mm, unsigned long a, unsigned long n)
{
	unsigned long src[DEV_PAGES] = { 0 }, dst[DEV_PAGES] = { 0 };
	struct migrate_vma args = {
		.src = src, .dst = dst, .start = a, .end = a + n * PG,
		.pgmap_owner = &dev_owner, .flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
	};

	mmap_read_lock(mm);
	args.vma = find_vma(mm, a);
	cr_assert_eq(migrate_vma_setup(&args), 0);
	for (unsigned long i = 0; i < n; i++) {
		struct page *spage = migrate_pfn_to_page(src[i]);
		struct folio *folio;

		if (!(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		folio = folio_alloc(machine, GFP_HIGHUSER_MOVABLE, 0);
		cr_assert_not_null(folio);
		folio_lock(folio);
		memcpy(folio_address(folio), page_address(spage), PG);
		dst[i] = migrate_pfn(folio_pfn(folio));
	}
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
	mmap_read_unlock(mm);
}


Test(hmm, device_private_pages_by_owner)
{
	struct mm_struct *mm;
	struct drv *d;
	unsigned long a, pfns[4];
	uint8_t byte;
	int busy;

	dev_setup();
	mm = new_mm();
	d = drv_new(mm);
	a = map_anon(mm, 0, 4 * PG, PROT_READ | PROT_WRITE, 0);
	fill_pattern(mm, a, 3 * PG, 4);
	cr_assert_eq(mm_mprotect(mm, a + 2 * PG, 2 * PG, PROT_READ), 0);
	migrate_to_device(mm, a, 2, 0);
	migrate_to_device(mm, a + 2 * PG, 2, 2);
	cr_assert(pagemap(mm, a) & PM_SWAP, "not a device-private entry");

	/* Our pages: reported as they are, no fault, no migration back. */
	memset(pfns, 0, sizeof(pfns));
	cr_assert_eq(fault_retry(d, a, 4, pfns, HMM_PFN_REQ_FAULT, 0, &dev_owner, NULL), 0);
	expect_pfn(pfns, 0, dev_pfn(0) | V | W);
	expect_pfn(pfns, 1, dev_pfn(1) | V | W);
	expect_pfn(pfns, 2, dev_pfn(2) | V); /* read-only VMA: a readable entry */
	expect_pfn(pfns, 3, dev_pfn(3) | V);
	cr_assert(is_device_private_page(hmm_pfn_to_page(pfns[0])));
	cr_assert(pagemap(mm, a) & PM_SWAP, "an owned page was faulted back");

	/* Someone else's (or no owner): 0 when nothing is asked. */
	memset(pfns, 0, sizeof(pfns));
	cr_assert_eq(fault_retry(d, a, 4, pfns, 0, 0, &other_owner, NULL), 0);
	for (unsigned long i = 0; i < 4; i++)
		expect_pfn(pfns, i, 0);
	cr_assert_eq(fault_retry(d, a, 4, pfns, 0, 0, NULL, NULL), 0);
	expect_pfn(pfns, 0, 0);
	cr_assert_eq(nr_migrate_to_ram, 0);

	/* Someone else asks for page 1: it faults back to RAM through migrate_to_ram. */
	memset(pfns, 0, sizeof(pfns));
	pfns[1] = HMM_PFN_REQ_FAULT;
	busy = 0;
	cr_assert_eq(fault_retry(d, a, 2, pfns, 0, HMM_PFN_REQ_FAULT, &other_owner, &busy), 0);
	cr_assert_eq(nr_migrate_to_ram, 1);
	cr_assert_eq(busy, 1, "the migration back invalidated the range");
	expect_pfn(pfns, 0, 0);
	expect_pfn(pfns, 1, pfn_at(mm, a + PG) | V | W);
	cr_assert_not(is_zone_device_page(pfn_to_page(pfn_at(mm, a + PG))));
	cr_assert_eq(atomic_load(&dev_freed), 1);
	check_at(mm, a, PG, PG, 4); /* the bytes came back too */

	/* A write request on our own read-only device page: reported as is. */
	memset(pfns, 0, sizeof(pfns));
	cr_assert_eq(fault_retry(d, a + 2 * PG, 1, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, 0,
				 &dev_owner, NULL),
		     0);
	expect_pfn(pfns, 0, dev_pfn(2) | V);
	cr_assert_eq(nr_migrate_to_ram, 1);

	migrate_to_system(mm, a, 2);
	migrate_to_system(mm, a + 2 * PG, 2);
	cr_assert(pagemap(mm, a) & PM_PRESENT);
	check_pattern(mm, a, 2 * PG, 4);
	cr_assert_eq(cpu_read(mm, a + 2 * PG, &byte, 1), 0);
	cr_assert_eq(byte, pattern_byte(4, 2 * PG));
	cr_assert_eq(cpu_read(mm, a + 3 * PG, &byte, 1), 0);
	cr_assert_eq(byte, 0);
	drv_free(d);
	mmput(mm);
	dev_teardown();
}

struct waiter {
	struct drv *d;
	unsigned long a;
	unsigned long pfns[2];
	atomic_int started, done;
	atomic_int *finalized;
	int finalized_seen;
	int ret;
};

static void *hmm_waiter(void *arg)
{
	struct waiter *w = arg;

	atomic_store(&w->started, 1);
	w->ret = fault_retry(w->d, w->a, 2, w->pfns, HMM_PFN_REQ_FAULT, 0, NULL, NULL);
	w->finalized_seen = atomic_load(w->finalized);
	atomic_store(&w->done, 1);
	return NULL;
}

Test(hmm, migration_entries_read_as_zero_or_wait)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	unsigned long a = map_anon(mm, 0, 2 * PG, PROT_READ | PROT_WRITE, 0);
	unsigned long src[2] = { 0 }, dst[2] = { 0 }, pfns[2], old;
	struct migrate_vma args = {
		.src = src, .dst = dst, .start = a, .end = a + 2 * PG,
		.pgmap_owner = &dev_owner, .flags = MIGRATE_VMA_SELECT_SYSTEM,
	};
	atomic_int finalized = 0;
	struct waiter w = { .d = d, .a = a, .finalized = &finalized };
	pthread_t t;

	fill_pattern(mm, a, 2 * PG, 5);
	old = pfn_at(mm, a);
	mmap_read_lock(mm);
	args.vma = find_vma(mm, a);
	cr_assert_eq(migrate_vma_setup(&args), 0);
	mmap_read_unlock(mm);
	cr_assert_eq(args.cpages, 2);

	/* Migration entries, nothing asked: 0. */
	pfns[0] = pfns[1] = 0;
	cr_assert_eq(fault_retry(d, a, 2, pfns, 0, 0, NULL, NULL), 0);
	expect_pfn(pfns, 0, 0);
	expect_pfn(pfns, 1, 0);

	/* A fault request waits for the migration to end. */
	cr_assert_eq(pthread_create(&t, NULL, hmm_waiter, &w), 0);
	while (!atomic_load(&w.started))
		usleep(100);
	usleep(20000);
	cr_assert_not(atomic_load(&w.done), "hmm_range_fault went past a migration entry");
	/* Abort the migration (no destinations): the old pages come back. */
	atomic_store(&finalized, 1);
	mmap_read_lock(mm);
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
	mmap_read_unlock(mm);
	pthread_join(t, NULL);
	cr_assert(w.finalized_seen);
	cr_assert_eq(w.ret, 0);
	expect_pfn(w.pfns, 0, old | V | W);
	check_pattern(mm, a, 2 * PG, 5);
	drv_free(d);
	mmput(mm);
}

/* ------------------------------------------------------------------ */
/* hugetlb                                                             */
/* ------------------------------------------------------------------ */

Test(hmm, hugetlb_pages_carry_huge_page_order)
{
	struct mm_struct *mm = new_mm();
	struct drv *d = drv_new(mm);
	long a = mm_mmap(mm, 0, 2 * HPAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, NULL, 0);
	unsigned long *pfns = calloc(2 * HPAGE_PMD_NR, sizeof(*pfns));
	unsigned long base;

	cr_assert_gt(a, 0, "MAP_HUGETLB: %ld", a);
	/* Nothing faulted yet: 0, and a fault request faults a huge page. */
	cr_assert_eq(fault_retry(d, (unsigned long)a, 2 * HPAGE_PMD_NR, pfns, 0, 0, NULL, NULL), 0);
	expect_pfn(pfns, 0, 0);
	pfns[HPAGE_PMD_NR + 3] = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	cr_assert_eq(fault_retry(d, (unsigned long)a, 2 * HPAGE_PMD_NR, pfns, 0,
				 HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE, NULL, NULL),
		     0);
	expect_pfn(pfns, 0, 0);
	base = pfn_at(mm, (unsigned long)a + HPAGE_SIZE);
	cr_assert(folio_test_hugetlb(page_folio(pfn_to_page(base))));
	for (unsigned long i = 0; i < HPAGE_PMD_NR; i++)
		expect_pfn(pfns, HPAGE_PMD_NR + i,
			   (base + i) | V | W | ((unsigned long)HUGETLB_PAGE_ORDER << HMM_PFN_ORDER_SHIFT));
	cr_assert_eq(hmm_pfn_to_map_order(pfns[HPAGE_PMD_NR]), HUGETLB_PAGE_ORDER);
	free(pfns);
	drv_free(d);
	mmput(mm);
}

Test(hmm, device_private_pmd_entries)
{
	struct mm_struct *mm;
	struct drv *d;
	unsigned long a, first, *pfns = calloc(HPAGE_PMD_NR, sizeof(*pfns));
	struct folio *src, *dev;
	int busy = 0;

	dev_setup();
	mm = new_mm();
	d = drv_new(mm);
	a = map_thp(mm, PMD_SIZE);
	fill_pattern(mm, a, PMD_SIZE, 12);
	src = folio_at(mm, a);
	cr_assert_eq(folio_order(src), HPAGE_PMD_ORDER);

	/* The THP moves whole to an order-9 device folio: one PMD entry. */
	first = ALIGN(dev_pfn(0), HPAGE_PMD_NR) - dev_pfn(0);
	dev = (struct folio *)(void *)pfn_to_page(dev_pfn(first));
	mmap_read_lock(mm);
	folio_get(src);
	folio_lock(src);
	zone_device_folio_init(dev, &dev_pgmap, HPAGE_PMD_ORDER);
	move_folio(src, dev);
	folio_unlock(src);
	folio_unlock(dev);
	folio_put(dev);
	folio_put(src);
	mmap_read_unlock(mm);
	cr_assert(is_pmd_device_private_entry(pmdp_get(pmd_off(mm, a))));

	/* Ours: every page VALID | WRITE | order 9, no fault. */
	cr_assert_eq(fault_retry(d, a, HPAGE_PMD_NR, pfns, HMM_PFN_REQ_FAULT, 0, &dev_owner, NULL), 0);
	for (unsigned long i = 0; i < HPAGE_PMD_NR; i++)
		expect_pfn(pfns, i, (folio_pfn(dev) + i) | V | W | ORDER9);
	/* A range inside it. */
	memset(pfns, 0, 2 * sizeof(*pfns));
	cr_assert_eq(fault_retry(d, a + 200 * PG, 2, pfns, 0, 0, &dev_owner, NULL), 0);
	expect_pfn(pfns, 0, (folio_pfn(dev) + 200) | V | W | ORDER9);
	expect_pfn(pfns, 1, (folio_pfn(dev) + 201) | V | W | ORDER9);
	cr_assert_eq(nr_migrate_to_ram, 0);

	/* Not ours, nothing asked: 0.  Asked: the whole folio faults back. */
	cr_assert_eq(fault_retry(d, a, 2, pfns, 0, 0, &other_owner, NULL), 0);
	expect_pfn(pfns, 0, 0);
	expect_pfn(pfns, 1, 0);
	memset(pfns, 0, 2 * sizeof(*pfns));
	cr_assert_eq(fault_retry(d, a + 7 * PG, 1, pfns, HMM_PFN_REQ_FAULT, 0, &other_owner, &busy),
		     0);
	cr_assert_eq(nr_pmd_migrate_to_ram, 1);
	cr_assert_geq(busy, 1);
	cr_assert_not(is_zone_device_page(pfn_to_page(pfns[0] & ~HMM_PFN_FLAGS)));
	cr_assert(pfns[0] & V);
	cr_assert_eq(pfns[0] & ~HMM_PFN_FLAGS, pfn_at(mm, a + 7 * PG));
	check_pattern(mm, a, PMD_SIZE, 12);
	free(pfns);
	drv_free(d);
	mmput(mm);
	dev_teardown();
}
