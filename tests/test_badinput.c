/* SPDX-License-Identifier: MIT */
/*
 * tests/test_badinput.c - bad input to the device-memory entry points
 * (migrate_vma_setup, hmm_range_fault, mmu_interval_notifier_insert,
 * memremap_pages, request_free_mem_region, dmirror_open/ioctl) returns
 * Linux's errno and changes nothing.
 *
 * Like tests/test_errno.c, each row runs on a fresh address space with a
 * known layout and compares before and after the call: the bytes of every
 * present page, the pagemap of the span, smaps_rollup, the RSS counters,
 * the VMA list, the machine's free pages, every dmirror device's memory
 * (dmirror_device_stats()), and the invalidations a whole-mm interval
 * notifier saw.
 *
 * Where uhmm differs from Linux on purpose the row says so.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <uhmm/dmirror.h>

#include "internal.h"
#include "uhmm/hmm.h"
#include "uhmm/memremap.h"
#include "uhmm/migrate.h"

/*
 * The layout, in pages from BASE:
 *   [ 0,  8)  RW, written (seed 1)
 *   [ 8, 12)  read-only, written before mprotect (seed 2)
 *   [12, 16)  hole
 *   [16, 20)  PROT_NONE, written before mprotect (seed 3)
 *   [20, 24)  hole
 *   [24, 28)  RW, never touched
 *   [28, 32)  hole
 *   [32, 36)  MAP_SHARED|MAP_ANONYMOUS (shmem), never touched
 *   [36, 40)  hole
 * and, outside the span, a 2 MiB MAP_HUGETLB VMA at HBASE (written) and a
 * 2-page dmirror_mmap() (VM_MIXEDMAP) VMA wherever mmap puts it.
 */
#define BASE 0x100000000000UL
#define AT(pg) (BASE + (unsigned long)(pg)*PAGE_SIZE)
#define HBASE (BASE + (64UL << 20))
#define SPAN 40
#define RW (PROT_READ | PROT_WRITE)
#define PRIV_ANON (MAP_PRIVATE | MAP_ANONYMOUS)
#define MAX_VMAS 16
#define P PAGE_SIZE
#define N(t) (sizeof(t) / sizeof((t)[0]))

static struct dmirror_module *mod;

/* A second, test-owned device-private range, for fault_page rows. */
static struct resource *res;
static struct dev_pagemap pgmap;
static int nr_folio_free;

static void t_folio_free(struct folio *folio)
{
	(void)folio;
	nr_folio_free++;
}

static vm_fault_t t_migrate_to_ram(struct vm_fault *vmf)
{
	(void)vmf;
	return VM_FAULT_SIGBUS;
}

static const struct dev_pagemap_ops t_ops = {
	.folio_free = t_folio_free,
	.migrate_to_ram = t_migrate_to_ram,
};
static const struct dev_pagemap_ops t_ops_nomigrate = {.folio_free = t_folio_free};
static const struct dev_pagemap_ops t_ops_nofree = {.migrate_to_ram = t_migrate_to_ram};
static int owner_cookie;

static void setup(void)
{
	machine_setup();
	mod = dmirror_module_init(machine);
	cr_assert(!IS_ERR_OR_NULL(mod), "dmirror_module_init: %ld", PTR_ERR(mod));
	res = NULL;
	memset(&pgmap, 0, sizeof(pgmap));
	nr_folio_free = 0;
}

static void teardown(void)
{
	if (pgmap.priv)
		memunmap_pages(&pgmap);
	if (res)
		release_mem_region(res);
	if (mod) {
		cr_assert_eq(dmirror_audit(mod, stderr), 0, "the dmirror audit failed");
		cr_assert_eq(dmirror_module_exit(mod), 0);
		mod = NULL;
	}
	machine_teardown();
}

TestSuite(badinput, .init = setup, .fini = teardown);

static void remap_private(void)
{
	res = request_free_mem_region(128UL << 20, "badinput");
	cr_assert(!IS_ERR_OR_NULL(res), "request_free_mem_region: %ld", PTR_ERR(res));
	pgmap.type = MEMORY_DEVICE_PRIVATE;
	pgmap.ops = &t_ops;
	pgmap.owner = &owner_cookie;
	pgmap.range.start = res->start;
	pgmap.range.end = res->end;
	pgmap.nr_range = 1;
	void *bytes = memremap_pages(&pgmap, machine);
	cr_assert(!IS_ERR_OR_NULL(bytes), "memremap_pages: %ld", PTR_ERR(bytes));
}

/* A whole-mm interval notifier that counts invalidations. */
struct drv {
	struct mmu_interval_notifier sub;
	pthread_mutex_t lock;
	int invalidations;  /* every event but MMU_NOTIFY_MIGRATE */
	int migrate_events; /* MMU_NOTIFY_MIGRATE */
};

static bool drv_invalidate(struct mmu_interval_notifier *sub,
			   const struct mmu_notifier_range *range, unsigned long cur_seq)
{
	struct drv *d = container_of(sub, struct drv, sub);

	pthread_mutex_lock(&d->lock);
	mmu_interval_set_seq(sub, cur_seq);
	if (range->event == MMU_NOTIFY_MIGRATE)
		d->migrate_events++;
	else
		d->invalidations++;
	pthread_mutex_unlock(&d->lock);
	return true;
}

static const struct mmu_interval_notifier_ops drv_ops = {.invalidate = drv_invalidate};
static const struct mmu_interval_notifier_ops null_inval_ops = {.invalidate = NULL};

/* One row's world. */
struct world {
	struct mm_struct *mm;
	struct dmirror *dmirror; /* minor 0, device-private */
	struct drv drv;
	unsigned long mixed; /* the dmirror_mmap() VMA */
};

static void setup_world(struct world *w)
{
	struct mm_struct *mm = new_mm();

	memset(w, 0, sizeof(*w));
	w->mm = mm;
	cr_assert_eq(mm_mmap(mm, AT(0), 12 * P, RW, PRIV_ANON | MAP_FIXED, NULL, 0), (long)AT(0));
	fill_pattern(mm, AT(0), 8 * P, 1);
	fill_pattern(mm, AT(8), 4 * P, 2);
	cr_assert_eq(mm_mprotect(mm, AT(8), 4 * P, PROT_READ), 0);
	cr_assert_eq(mm_mmap(mm, AT(16), 4 * P, RW, PRIV_ANON | MAP_FIXED, NULL, 0), (long)AT(16));
	fill_pattern(mm, AT(16), 4 * P, 3);
	cr_assert_eq(mm_mprotect(mm, AT(16), 4 * P, PROT_NONE), 0);
	cr_assert_eq(mm_mmap(mm, AT(24), 4 * P, RW, PRIV_ANON | MAP_FIXED, NULL, 0), (long)AT(24));
	cr_assert_eq(
		mm_mmap(mm, AT(32), 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, NULL, 0),
		(long)AT(32));
	cr_assert_eq(mm_mmap(mm, HBASE, PMD_SIZE, RW, PRIV_ANON | MAP_HUGETLB | MAP_FIXED, NULL, 0),
		     (long)HBASE);
	fill_pattern(mm, HBASE, P, 4);

	w->dmirror = dmirror_open(mod, 0, mm);
	cr_assert(!IS_ERR_OR_NULL(w->dmirror), "dmirror_open: %ld", PTR_ERR(w->dmirror));
	long m = dmirror_mmap(w->dmirror, 0, 2 * P, RW, MAP_SHARED);
	cr_assert_gt(m, 0, "dmirror_mmap: %ld", m);
	w->mixed = (unsigned long)m;

	pthread_mutex_init(&w->drv.lock, NULL);
	cr_assert_eq(mmu_interval_notifier_insert(&w->drv.sub, mm, 0, ~0UL & PAGE_MASK, &drv_ops),
		     0);

	cr_assert_eq(mm->mm_mt.nr, 7, "layout has %zu VMAs, want 7", mm->mm_mt.nr);
}

static void teardown_world(struct world *w)
{
	check_pattern(w->mm, AT(0), 8 * P, 1);
	check_pattern(w->mm, AT(8), 4 * P, 2);
	check_pattern(w->mm, HBASE, P, 4);
	mmu_interval_notifier_remove(&w->drv.sub);
	pthread_mutex_destroy(&w->drv.lock);
	dmirror_release(w->dmirror);
	cr_expect_eq(dmirror_audit(mod, stderr), 0);
	mmput(w->mm);
}

struct snapshot {
	uint64_t pm[SPAN];
	uint8_t *bytes;
	struct mm_smaps smaps;
	long rss[NR_MM_COUNTERS];
	unsigned long free_pages;
	size_t nr_vmas;
	struct {
		unsigned long start, end, flags, pgoff;
	} vma[MAX_VMAS];
	struct dmirror_stats dev[DMIRROR_NDEVICES];
	int invalidations;
	int migrate_events;
	int folio_frees;
};

static void take_snapshot(struct world *w, struct snapshot *s)
{
	struct mm_struct *mm = w->mm;

	memset(s, 0, sizeof(*s));
	s->bytes = calloc(SPAN, P);
	cr_assert(s->bytes);
	cr_assert_eq(mm_pagemap_read(mm, AT(0), SPAN, s->pm), 0);
	for (int i = 0; i < SPAN; i++) {
		if (!(s->pm[i] & PM_PRESENT))
			continue;
		unsigned long pfn = (unsigned long)(s->pm[i] & PM_PFRAME_MASK);
		cr_assert(pfn_valid(pfn), "pagemap of page %d gives pfn %#lx", i, pfn);
		memcpy(s->bytes + (size_t)i * P, page_address(pfn_to_page(pfn)), P);
	}
	cr_assert_eq(mm_smaps_rollup(mm, &s->smaps), 0);
	for (int i = 0; i < NR_MM_COUNTERS; i++)
		s->rss[i] = mm_get_rss(mm, i);
	s->free_pages = uhmm_nr_free_pages(machine);
	s->nr_vmas = mm->mm_mt.nr;
	cr_assert(s->nr_vmas <= MAX_VMAS);
	for (size_t i = 0; i < s->nr_vmas; i++) {
		struct vm_area_struct *v = mm->mm_mt.vmas[i];
		s->vma[i].start = v->vm_start;
		s->vma[i].end = v->vm_end;
		s->vma[i].flags = v->vm_flags;
		s->vma[i].pgoff = v->vm_pgoff;
	}
	for (unsigned int d = 0; d < DMIRROR_NDEVICES; d++)
		cr_assert_eq(dmirror_device_stats(mod, d, &s->dev[d]), 0);
	pthread_mutex_lock(&w->drv.lock);
	s->invalidations = w->drv.invalidations;
	s->migrate_events = w->drv.migrate_events;
	pthread_mutex_unlock(&w->drv.lock);
	s->folio_frees = nr_folio_free;
}

static void expect_unchanged(const char *what, const struct snapshot *a, struct snapshot *b)
{
	for (int i = 0; i < SPAN; i++)
		cr_expect_eq(a->pm[i], b->pm[i], "%s: pagemap of page %d changed %#llx -> %#llx",
			     what, i, (unsigned long long)a->pm[i], (unsigned long long)b->pm[i]);
	for (int i = 0; i < SPAN; i++)
		cr_expect(!memcmp(a->bytes + (size_t)i * P, b->bytes + (size_t)i * P, P),
			  "%s: bytes of page %d changed", what, i);
	cr_expect_eq(a->smaps.rss, b->smaps.rss, "%s: smaps rss %lu -> %lu", what, a->smaps.rss,
		     b->smaps.rss);
	cr_expect_eq(a->smaps.anonymous, b->smaps.anonymous, "%s: smaps anonymous", what);
	cr_expect_eq(a->smaps.private_dirty, b->smaps.private_dirty, "%s: private_dirty", what);
	cr_expect_eq(a->smaps.private_clean, b->smaps.private_clean, "%s: private_clean", what);
	cr_expect_eq(a->smaps.swap, b->smaps.swap, "%s: smaps swap", what);
	cr_expect_eq(a->smaps.page_tables, b->smaps.page_tables, "%s: page tables %lu -> %lu", what,
		     a->smaps.page_tables, b->smaps.page_tables);
	for (int i = 0; i < NR_MM_COUNTERS; i++)
		cr_expect_eq(a->rss[i], b->rss[i], "%s: rss counter %d %ld -> %ld", what, i,
			     a->rss[i], b->rss[i]);
	cr_expect_eq(a->free_pages, b->free_pages, "%s: free pages %lu -> %lu", what, a->free_pages,
		     b->free_pages);
	cr_expect_eq(a->nr_vmas, b->nr_vmas, "%s: %zu VMAs -> %zu", what, a->nr_vmas, b->nr_vmas);
	for (size_t i = 0; i < a->nr_vmas && i < b->nr_vmas; i++) {
		cr_expect_eq(a->vma[i].start, b->vma[i].start, "%s: VMA %zu start", what, i);
		cr_expect_eq(a->vma[i].end, b->vma[i].end, "%s: VMA %zu end", what, i);
		cr_expect_eq(a->vma[i].flags, b->vma[i].flags, "%s: VMA %zu flags %#lx -> %#lx",
			     what, i, a->vma[i].flags, b->vma[i].flags);
		cr_expect_eq(a->vma[i].pgoff, b->vma[i].pgoff, "%s: VMA %zu pgoff", what, i);
	}
	for (unsigned int d = 0; d < DMIRROR_NDEVICES; d++) {
		const struct dmirror_stats *x = &a->dev[d], *y = &b->dev[d];
		cr_expect_eq(x->nr_chunks, y->nr_chunks, "%s: device %u chunks %lu -> %lu", what, d,
			     x->nr_chunks, y->nr_chunks);
		cr_expect_eq(x->nr_pages, y->nr_pages, "%s: device %u pages", what, d);
		cr_expect_eq(x->free_pages, y->free_pages, "%s: device %u free pages %lu -> %lu",
			     what, d, x->free_pages, y->free_pages);
		cr_expect_eq(x->free_folios, y->free_folios, "%s: device %u free folios", what, d);
		cr_expect_eq(x->calloc, y->calloc, "%s: device %u calloc %lu -> %lu", what, d,
			     x->calloc, y->calloc);
		cr_expect_eq(x->cfree, y->cfree, "%s: device %u cfree %lu -> %lu", what, d,
			     x->cfree, y->cfree);
	}
	cr_expect_eq(a->invalidations, b->invalidations, "%s: %d invalidations -> %d", what,
		     a->invalidations, b->invalidations);
	cr_expect_eq(a->migrate_events, b->migrate_events, "%s: %d migrate events -> %d", what,
		     a->migrate_events, b->migrate_events);
	cr_expect_eq(a->folio_frees, b->folio_frees, "%s: folio_free called", what);
	free(a->bytes);
	free(b->bytes);
}

/* Run one row: a fresh world, snapshot, the call (which checks its own
 * outputs), snapshot, compare. */
typedef void (*row_fn)(struct world *w, const void *row, const char *what);

static void run_rows(const void *rows, size_t size, size_t n, row_fn fn)
{
	for (size_t i = 0; i < n; i++) {
		const void *row = (const char *)rows + i * size;
		const char *what = *(const char *const *)row; /* every row starts with its name */
		struct world w;
		struct snapshot before, after;

		setup_world(&w);
		take_snapshot(&w, &before);
		fn(&w, row, what);
		take_snapshot(&w, &after);
		expect_unchanged(what, &before, &after);
		teardown_world(&w);
	}
}

/* ---- migrate_vma_setup ---- */

enum mig_vma { MV_NULL, MV_RW, MV_RO, MV_UNTOUCHED, MV_HUGETLB, MV_MIXED };
enum mig_fault { MF_NONE, MF_SYSTEM, MF_DEVICE_UNLOCKED, MF_COHERENT };

struct mig_row {
	const char *what;
	enum mig_vma vma;
	unsigned long start, end; /* absolute; 0 for the VMA's first page(s) */
	bool no_src, no_dst;
	enum mig_fault fault;
	int want;
};

#define MIG_NPAGES 16

static unsigned long mig_vma_addr(struct world *w, enum mig_vma v)
{
	switch (v) {
	case MV_NULL:
	case MV_RW:
		return AT(0);
	case MV_RO:
		return AT(8);
	case MV_UNTOUCHED:
		return AT(24);
	case MV_HUGETLB:
		return HBASE;
	case MV_MIXED:
		return w->mixed;
	}
	return 0;
}

static void mig_call(struct world *w, const void *r, const char *what)
{
	const struct mig_row *row = r;
	unsigned long src[MIG_NPAGES], dst[MIG_NPAGES];
	unsigned long where = mig_vma_addr(w, row->vma);
	struct page *fault_page = NULL;

	for (int i = 0; i < MIG_NPAGES; i++)
		src[i] = dst[i] = 0x5a5a5a5a;
	if (row->fault == MF_SYSTEM) {
		fault_page = pfn_to_page(pfn_at(w->mm, AT(0)));
	} else if (row->fault == MF_DEVICE_UNLOCKED) {
		/* A device-private page in use (refcount 1), but not locked. */
		fault_page = pfn_to_page((unsigned long)(pgmap.range.start >> PAGE_SHIFT));
		zone_device_page_init(fault_page);
		folio_unlock(page_folio(fault_page));
	}

	struct migrate_vma args = {
		.src = row->no_src ? NULL : src,
		.dst = row->no_dst ? NULL : dst,
		.start = row->start ? row->start : where,
		.end = row->end ? row->end : where + P,
		.pgmap_owner = &owner_cookie,
		.flags = MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page = fault_page,
		.cpages = 0x77,
		.npages = 0x77,
	};
	mmap_read_lock(w->mm);
	if (row->vma != MV_NULL)
		args.vma = vma_lookup(w->mm, where);
	if (row->vma != MV_NULL)
		cr_assert_not_null(args.vma, "%s: no VMA at %#lx", what, where);
	int ret = migrate_vma_setup(&args);
	mmap_read_unlock(w->mm);

	cr_expect_eq(ret, row->want, "%s: returned %d, want %d", what, ret, row->want);
	/* Linux checks everything before it clears src[] or the counters. */
	for (int i = 0; i < MIG_NPAGES; i++) {
		cr_expect_eq(src[i], 0x5a5a5a5aUL, "%s: src[%d] = %#lx", what, i, src[i]);
		cr_expect_eq(dst[i], 0x5a5a5a5aUL, "%s: dst[%d] = %#lx", what, i, dst[i]);
	}
	cr_expect_eq(args.cpages, 0x77UL, "%s: cpages written", what);
	cr_expect_eq(args.npages, 0x77UL, "%s: npages written", what);
	if (row->fault == MF_DEVICE_UNLOCKED) {
		cr_expect_eq(folio_ref_count(page_folio(fault_page)), 1, "%s: fault_page ref",
			     what);
		cr_expect(!folio_test_locked(page_folio(fault_page)), "%s: fault_page locked",
			  what);
		folio_put(page_folio(fault_page)); /* back to the pgmap: one folio_free */
		nr_folio_free--;
	}
}

static const struct mig_row mig_rows[] = {
	{"migrate: NULL vma", MV_NULL, 0, 0, false, false, MF_NONE, -EINVAL},
	{"migrate: NULL src", MV_RW, 0, 0, true, false, MF_NONE, -EINVAL},
	{"migrate: NULL dst", MV_RW, 0, 0, false, true, MF_NONE, -EINVAL},
	{"migrate: NULL src and dst", MV_RW, 0, 0, true, true, MF_NONE, -EINVAL},
	/*
	 * Linux takes the page count before it rounds start and end down to
	 * pages: less than a page between them is nr_pages 0, -EINVAL.
	 * (Linux also leaves the rounded start/end in args on this error;
	 * uhmm leaves them as given.)
	 */
	{"migrate: unaligned start, less than a page", MV_RW, AT(0) + 1, AT(1), false, false,
	 MF_NONE, -EINVAL},
	{"migrate: unaligned end, less than a page", MV_RW, AT(0), AT(0) + P - 1, false, false,
	 MF_NONE, -EINVAL},
	{"migrate: start == end", MV_RW, AT(2), AT(2), false, false, MF_NONE, -EINVAL},
	{"migrate: start > end", MV_RW, AT(3), AT(2), false, false, MF_NONE, -EINVAL},
	{"migrate: end runs into the next VMA", MV_RW, AT(4), AT(10), false, false, MF_NONE,
	 -EINVAL},
	{"migrate: start before the VMA", MV_RO, AT(6), AT(10), false, false, MF_NONE, -EINVAL},
	{"migrate: range in another VMA", MV_RW, AT(24), AT(26), false, false, MF_NONE, -EINVAL},
	{"migrate: range in a hole past the VMA", MV_RO, AT(12), AT(14), false, false, MF_NONE,
	 -EINVAL},
	{"migrate: range at the VMA's end", MV_RW, AT(8), AT(9), false, false, MF_NONE, -EINVAL},
	{"migrate: hugetlb VMA", MV_HUGETLB, 0, 0, false, false, MF_NONE, -EINVAL},
	{"migrate: VM_MIXEDMAP VMA (dmirror_mmap)", MV_MIXED, 0, 0, false, false, MF_NONE, -EINVAL},
	{"migrate: fault_page is system RAM", MV_RW, 0, 0, false, false, MF_SYSTEM, -EINVAL},
	{"migrate: fault_page device-private but unlocked", MV_RW, 0, 0, false, false,
	 MF_DEVICE_UNLOCKED, -EINVAL},
	{"migrate: untouched VMA, NULL src", MV_UNTOUCHED, 0, 0, true, false, MF_NONE, -EINVAL},
};

Test(badinput, migrate_vma_setup)
{
	remap_private();
	run_rows(mig_rows, sizeof(mig_rows[0]), N(mig_rows), mig_call);
}

/* ---- hmm_range_fault ---- */

struct hmm_row {
	const char *what;
	unsigned long start, end;
	unsigned long default_flags;
	bool stale_seq;
	int want;
	bool check_error; /* want 0: every entry is HMM_PFN_ERROR */
};

#define HMM_NPAGES 16
#define REQ HMM_PFN_REQ_FAULT
#define REQW (HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)

static void hmm_call(struct world *w, const void *r, const char *what)
{
	const struct hmm_row *row = r;
	unsigned long pfns[HMM_NPAGES];
	unsigned long npages = row->end > row->start ? (row->end - row->start) >> PAGE_SHIFT : 0;

	cr_assert(npages <= HMM_NPAGES);
	for (int i = 0; i < HMM_NPAGES; i++)
		pfns[i] = 0x5a;
	struct hmm_range range = {
		.notifier = &w->drv.sub,
		.start = row->start,
		.end = row->end,
		.hmm_pfns = pfns,
		.default_flags = row->default_flags,
		.pfn_flags_mask = 0,
	};
	range.notifier_seq = mmu_interval_read_begin(&w->drv.sub);
	if (row->stale_seq)
		range.notifier_seq -= 2; /* what an earlier read_begin() returned */
	mmap_read_lock(w->mm);
	int ret = hmm_range_fault(&range);
	mmap_read_unlock(w->mm);

	cr_expect_eq(ret, row->want, "%s: returned %d, want %d", what, ret, row->want);
	if (row->want == -EINVAL || row->want == -EBUSY)
		for (int i = 0; i < HMM_NPAGES; i++)
			cr_expect_eq(pfns[i], 0x5aUL, "%s: hmm_pfns[%d] = %#lx written", what, i,
				     pfns[i]);
	if (row->check_error)
		for (unsigned long i = 0; i < npages; i++)
			cr_expect_eq(pfns[i], HMM_PFN_ERROR, "%s: hmm_pfns[%lu] = %#lx, want ERROR",
				     what, i, pfns[i]);
}

static const struct hmm_row hmm_rows[] = {
	{"hmm: empty range", AT(0), AT(0), REQ, false, -EINVAL, false},
	{"hmm: end before start", AT(2), AT(0), REQ, false, -EINVAL, false},
	/* uhmm documents -EINVAL for unaligned ranges (Linux's walk does not check). */
	{"hmm: unaligned start", AT(0) + 8, AT(2), REQ, false, -EINVAL, false},
	{"hmm: unaligned end", AT(0), AT(2) - 8, REQ, false, -EINVAL, false},
	{"hmm: stale notifier_seq", AT(0), AT(8), REQ, true, -EBUSY, false},
	{"hmm: stale notifier_seq, no request", AT(0), AT(4), 0, true, -EBUSY, false},
	{"hmm: no VMA, fault requested", AT(12), AT(16), REQ, false, -EFAULT, false},
	{"hmm: no VMA, no fault", AT(12), AT(16), 0, false, 0, true},
	{"hmm: no VMA past the span, fault requested", AT(36), AT(40), REQ, false, -EFAULT, false},
	{"hmm: PROT_NONE, fault requested", AT(16), AT(20), REQ, false, -EFAULT, false},
	{"hmm: PROT_NONE, write requested", AT(16), AT(20), REQW, false, -EFAULT, false},
	{"hmm: PROT_NONE, no fault", AT(16), AT(20), 0, false, 0, true},
	{"hmm: write on a read-only VMA", AT(8), AT(12), REQW, false, -EPERM, false},
	{"hmm: RO then a hole, read fault", AT(10), AT(14), REQ, false, -EFAULT, false},
	{"hmm: RW over RO into a hole, read fault", AT(6), AT(14), REQ, false, -EFAULT, false},
	{"hmm: a hole into PROT_NONE, read fault", AT(14), AT(18), REQ, false, -EFAULT, false},
};

Test(badinput, hmm_range_fault)
{
	run_rows(hmm_rows, sizeof(hmm_rows[0]), N(hmm_rows), hmm_call);
}

/* ---- mmu_interval_notifier_insert ---- */

enum ops_kind { OPS_OK, OPS_NULL, OPS_NULL_INVALIDATE };

struct ins_row {
	const char *what;
	unsigned long start, length;
	enum ops_kind ops;
	bool locked;
	int want;
};

static void ins_call(struct world *w, const void *r, const char *what)
{
	const struct ins_row *row = r;
	const struct mmu_interval_notifier_ops *ops = row->ops == OPS_OK     ? &drv_ops
						      : row->ops == OPS_NULL ? NULL
									     : &null_inval_ops;
	struct mmu_interval_notifier sub;
	int ret;

	memset(&sub, 0, sizeof(sub));
	if (row->locked) {
		mmap_write_lock(w->mm);
		ret = mmu_interval_notifier_insert_locked(&sub, w->mm, row->start, row->length,
							  ops);
		mmap_write_unlock(w->mm);
	} else {
		ret = mmu_interval_notifier_insert(&sub, w->mm, row->start, row->length, ops);
	}
	cr_expect_eq(ret, row->want, "%s: returned %d, want %d", what, ret, row->want);
	if (ret == 0) {
		mmu_interval_notifier_remove(&sub);
		return;
	}
	/* Not linked, no mm reference taken (the leak check would see it). */
	cr_expect(!sub.in_tree, "%s: linked", what);
	/* An invalidation still reaches only the real interval, once. */
	pthread_mutex_lock(&w->drv.lock);
	int before = w->drv.invalidations;
	pthread_mutex_unlock(&w->drv.lock);
	cr_expect_eq(mm_madvise(w->mm, AT(24), 4 * P, MADV_DONTNEED), 0);
	pthread_mutex_lock(&w->drv.lock);
	cr_expect_eq(w->drv.invalidations, before + 1, "%s: %d invalidations of the probe", what,
		     w->drv.invalidations - before);
	w->drv.invalidations = before; /* the probe's own */
	pthread_mutex_unlock(&w->drv.lock);
}

static const struct ins_row ins_rows[] = {
	{"insert: length 0", AT(0), 0, OPS_OK, false, -EOVERFLOW},
	{"insert: wraps", ~0UL & PAGE_MASK, 2 * P, OPS_OK, false, -EOVERFLOW},
	{"insert: wraps by one byte", 2, ~0UL, OPS_OK, false, -EOVERFLOW},
	{"insert: length ~0 from page 1", P, ~0UL, OPS_OK, false, -EOVERFLOW},
	{"insert_locked: length 0", AT(0), 0, OPS_OK, true, -EOVERFLOW},
	{"insert_locked: wraps", AT(0), ~0UL, OPS_OK, true, -EOVERFLOW},
	/* uhmm only: Linux accepts these and oopses at the first invalidation. */
	{"insert: NULL ops", AT(0), P, OPS_NULL, false, -EINVAL},
	{"insert: NULL ops->invalidate", AT(0), P, OPS_NULL_INVALIDATE, false, -EINVAL},
	{"insert_locked: NULL ops", AT(0), P, OPS_NULL, true, -EINVAL},
	/* The edge that is allowed, so the rows above mean something. */
	{"insert: 0..ULONG_MAX is allowed", 0, ~0UL, OPS_OK, false, 0},
};

/*
 * A second mmu_interval_notifier_remove() of the same interval is a
 * use-after-free in Linux too (the interval's mm reference is gone);
 * uhmm does not detect it, so there is no row for it.
 */
Test(badinput, mmu_interval_notifier_insert)
{
	run_rows(ins_rows, sizeof(ins_rows[0]), N(ins_rows), ins_call);
}

/* ---- memremap_pages / request_free_mem_region ---- */

enum pgmap_bad {
	PB_TYPE_0,
	PB_TYPE_FS_DAX,
	PB_TYPE_GENERIC,
	PB_TYPE_P2PDMA,
	PB_TYPE_HUGE,
	PB_OPS_NULL,
	PB_NO_FOLIO_FREE,
	PB_PRIVATE_NO_MIGRATE,
	PB_COHERENT_NO_FOLIO_FREE,
	PB_OWNER_NULL,
	PB_COHERENT_OWNER_NULL,
	PB_NR_RANGE_0,
	PB_NR_RANGE_2,
	PB_RANGE_SHORT,
	PB_RANGE_LATE_START,
	PB_RANGE_LONG,
	PB_RANGE_SYSTEM_RAM,
	PB_ALREADY_MAPPED,
};

struct remap_row {
	const char *what;
	enum pgmap_bad bad;
	int want;
};

static void remap_call(struct world *w, const void *r, const char *what)
{
	const struct remap_row *row = r;
	struct resource *rr = request_free_mem_region(128UL << 20, "bad");
	struct dev_pagemap pm;

	(void)w;
	cr_assert(!IS_ERR_OR_NULL(rr), "%s: request_free_mem_region: %ld", what, PTR_ERR(rr));
	memset(&pm, 0, sizeof(pm));
	pm.type = MEMORY_DEVICE_PRIVATE;
	pm.ops = &t_ops;
	pm.owner = &owner_cookie;
	pm.range.start = rr->start;
	pm.range.end = rr->end;
	pm.nr_range = 1;
	switch (row->bad) {
	case PB_TYPE_0:
		pm.type = 0;
		break;
	case PB_TYPE_FS_DAX:
		pm.type = MEMORY_DEVICE_FS_DAX;
		break;
	case PB_TYPE_GENERIC:
		pm.type = MEMORY_DEVICE_GENERIC;
		break;
	case PB_TYPE_P2PDMA:
		pm.type = MEMORY_DEVICE_PCI_P2PDMA;
		break;
	case PB_TYPE_HUGE:
		pm.type = (enum memory_type)1000;
		break;
	case PB_OPS_NULL:
		pm.ops = NULL;
		break;
	case PB_NO_FOLIO_FREE:
		pm.ops = &t_ops_nofree;
		break;
	case PB_PRIVATE_NO_MIGRATE:
		pm.ops = &t_ops_nomigrate;
		break;
	case PB_COHERENT_NO_FOLIO_FREE:
		pm.type = MEMORY_DEVICE_COHERENT;
		pm.ops = &t_ops_nofree;
		break;
	case PB_OWNER_NULL:
		pm.owner = NULL;
		break;
	case PB_COHERENT_OWNER_NULL:
		pm.type = MEMORY_DEVICE_COHERENT;
		pm.owner = NULL;
		break;
	case PB_NR_RANGE_0:
		pm.nr_range = 0;
		break;
	case PB_NR_RANGE_2:
		pm.nr_range = 2;
		break;
	case PB_RANGE_SHORT:
		pm.range.end -= P;
		break;
	case PB_RANGE_LATE_START:
		pm.range.start += P;
		break;
	case PB_RANGE_LONG:
		pm.range.end += P;
		break;
	case PB_RANGE_SYSTEM_RAM:
		pm.range.start = 0;
		pm.range.end = (128UL << 20) - 1;
		break;
	case PB_ALREADY_MAPPED:
		pm.range = pgmap.range;
		break;
	}
	void *ret = memremap_pages(&pm, machine);
	cr_expect_eq(PTR_ERR(ret), (long)row->want, "%s: returned %ld, want %d", what, PTR_ERR(ret),
		     row->want);
	cr_expect_null(pm.machine, "%s: pgmap->machine set", what);
	cr_expect_null(pm.bytes, "%s: pgmap->bytes set", what);
	cr_expect_null(pm.priv, "%s: pgmap->priv set", what);
	if (!IS_ERR_OR_NULL(ret))
		memunmap_pages(&pm);
	release_mem_region(rr);
}

static const struct remap_row remap_rows[] = {
	{"memremap: type 0", PB_TYPE_0, -EINVAL},
	{"memremap: MEMORY_DEVICE_FS_DAX", PB_TYPE_FS_DAX, -EINVAL},
	{"memremap: MEMORY_DEVICE_GENERIC", PB_TYPE_GENERIC, -EINVAL},
	{"memremap: MEMORY_DEVICE_PCI_P2PDMA", PB_TYPE_P2PDMA, -EINVAL},
	{"memremap: type 1000", PB_TYPE_HUGE, -EINVAL},
	{"memremap: NULL ops", PB_OPS_NULL, -EINVAL},
	{"memremap: private without folio_free", PB_NO_FOLIO_FREE, -EINVAL},
	{"memremap: private without migrate_to_ram", PB_PRIVATE_NO_MIGRATE, -EINVAL},
	{"memremap: coherent without folio_free", PB_COHERENT_NO_FOLIO_FREE, -EINVAL},
	{"memremap: private without owner", PB_OWNER_NULL, -EINVAL},
	{"memremap: coherent without owner", PB_COHERENT_OWNER_NULL, -EINVAL},
	/* uhmm only supports nr_range 1 (Linux takes several ranges). */
	{"memremap: nr_range 0", PB_NR_RANGE_0, -EINVAL},
	{"memremap: nr_range 2", PB_NR_RANGE_2, -EINVAL},
	{"memremap: range one page short of the reservation", PB_RANGE_SHORT, -EINVAL},
	{"memremap: range starting a page into the reservation", PB_RANGE_LATE_START, -EINVAL},
	{"memremap: range a page past the reservation", PB_RANGE_LONG, -EINVAL},
	{"memremap: range of system RAM", PB_RANGE_SYSTEM_RAM, -EINVAL},
	{"memremap: range already memremapped", PB_ALREADY_MAPPED, -EINVAL},
};

Test(badinput, memremap_pages)
{
	remap_private();
	run_rows(remap_rows, sizeof(remap_rows[0]), N(remap_rows), remap_call);
}

struct region_row {
	const char *what;
	unsigned long size;
	long want;
};

static void region_call(struct world *w, const void *r, const char *what)
{
	const struct region_row *row = r;

	(void)w;
	/* Where a good request lands, before and after: nothing was reserved. */
	struct resource *a = request_free_mem_region(P, "probe");
	cr_assert(!IS_ERR_OR_NULL(a));
	uint64_t where = a->start;
	release_mem_region(a);

	struct resource *got = request_free_mem_region(row->size, "bad");
	cr_expect_eq(PTR_ERR(got), row->want, "%s: returned %ld, want %ld", what, PTR_ERR(got),
		     row->want);
	if (!IS_ERR_OR_NULL(got))
		release_mem_region(got);

	a = request_free_mem_region(P, "probe");
	cr_assert(!IS_ERR_OR_NULL(a));
	cr_expect_eq(a->start, where, "%s: the free space moved", what);
	release_mem_region(a);
}

static const struct region_row region_rows[] = {
	{"region: size 0", 0, -EINVAL},
	{"region: size 1", 1, -EINVAL},
	{"region: size a page + 1", P + 1, -EINVAL},
	{"region: size a page - 1", P - 1, -EINVAL},
	{"region: size ~0", ~0UL, -EINVAL},
	{"region: size 2^50 (no room)", 1UL << 50, -ERANGE},
};

Test(badinput, request_free_mem_region)
{
	run_rows(region_rows, sizeof(region_rows[0]), N(region_rows), region_call);
}

/* ---- dmirror_open / dmirror_ioctl ---- */

struct dm_row {
	const char *what;
	unsigned long request;
	unsigned long addr;
	unsigned long npages;
	int want;
	bool collects; /* reaches migrate_vma_setup(): MIGRATE events, as in Linux */
};

#define DM_BUF_PAGES 8

static void dm_call(struct world *w, const void *r, const char *what)
{
	const struct dm_row *row = r;
	uint8_t *buf = malloc(DM_BUF_PAGES * P);

	cr_assert(buf);
	memset(buf, 0xa5, DM_BUF_PAGES * P);
	struct hmm_dmirror_cmd cmd = {
		.addr = row->addr,
		.ptr = (uint64_t)(uintptr_t)buf,
		.npages = row->npages,
		.cpages = 0xdead,
		.faults = 0xbeef,
	};
	pthread_mutex_lock(&w->drv.lock);
	int mig_before = w->drv.migrate_events;
	pthread_mutex_unlock(&w->drv.lock);
	int ret = dmirror_ioctl(w->dmirror, row->request, &cmd);

	if (row->collects) {
		/* The collect walk brackets itself with MMU_NOTIFY_MIGRATE: not a change. */
		pthread_mutex_lock(&w->drv.lock);
		cr_expect_gt(w->drv.migrate_events, mig_before, "%s: no MIGRATE event", what);
		w->drv.migrate_events = mig_before;
		pthread_mutex_unlock(&w->drv.lock);
	}
	cr_expect_eq(ret, row->want, "%s: returned %d, want %d", what, ret, row->want);
	/* test_hmm copies the command back only on success. */
	cr_expect_eq(cmd.addr, row->addr, "%s: addr written", what);
	cr_expect_eq(cmd.npages, row->npages, "%s: npages written", what);
	cr_expect_eq(cmd.cpages, 0xdeadULL, "%s: cpages written (%#llx)", what,
		     (unsigned long long)cmd.cpages);
	cr_expect_eq(cmd.faults, 0xbeefULL, "%s: faults written", what);
	for (size_t i = 0; i < DM_BUF_PAGES * P; i++)
		if (buf[i] != 0xa5) {
			cr_expect_fail("%s: buffer byte %zu written (%#x)", what, i, buf[i]);
			break;
		}
	free(buf);
}

#define HMM_DMIRROR_BAD_NR _IOWR('H', 0x09, struct hmm_dmirror_cmd)

static const struct dm_row dm_rows[] = {
	{"ioctl READ unaligned addr", HMM_DMIRROR_READ, AT(0) + 8, 1, -EINVAL, false},
	{"ioctl WRITE unaligned addr", HMM_DMIRROR_WRITE, AT(0) + 2048, 1, -EINVAL, false},
	{"ioctl MIGRATE_TO_DEV unaligned addr", HMM_DMIRROR_MIGRATE_TO_DEV, AT(0) + 1, 1, -EINVAL,
	 false},
	{"ioctl SNAPSHOT unaligned addr", HMM_DMIRROR_SNAPSHOT, AT(0) + 1, 1, -EINVAL, false},
	{"ioctl READ npages 0", HMM_DMIRROR_READ, AT(0), 0, -EINVAL, false},
	{"ioctl MIGRATE_TO_SYS npages 0", HMM_DMIRROR_MIGRATE_TO_SYS, AT(0), 0, -EINVAL, false},
	{"ioctl READ addr+npages wraps", HMM_DMIRROR_READ, AT(0), ~0UL >> PAGE_SHIFT, -EINVAL,
	 false},
	{"ioctl WRITE npages << PAGE_SHIFT wraps to 0", HMM_DMIRROR_WRITE, AT(0),
	 1UL << (64 - PAGE_SHIFT), -EINVAL, false},
	{"ioctl MIGRATE_TO_DEV wraps", HMM_DMIRROR_MIGRATE_TO_DEV, ~0UL & PAGE_MASK, 2, -EINVAL,
	 false},
	{"ioctl unknown request 0x09", HMM_DMIRROR_BAD_NR, AT(0), 1, -EINVAL, false},
	{"ioctl unknown request 0", 0, AT(0), 1, -EINVAL, false},
	{"ioctl unknown request, other type", _IOWR('G', 0x00, struct hmm_dmirror_cmd), AT(0), 1,
	 -EINVAL, false},
	{"ioctl READ a hole", HMM_DMIRROR_READ, AT(12), 4, -EFAULT, false},
	{"ioctl READ RO into a hole", HMM_DMIRROR_READ, AT(10), 4, -EFAULT, false},
	{"ioctl READ PROT_NONE", HMM_DMIRROR_READ, AT(16), 4, -EFAULT, false},
	{"ioctl READ past TASK_SIZE", HMM_DMIRROR_READ, TASK_SIZE - P, 2, -EFAULT, false},
	{"ioctl WRITE a hole", HMM_DMIRROR_WRITE, AT(12), 4, -EFAULT, false},
	{"ioctl WRITE PROT_NONE", HMM_DMIRROR_WRITE, AT(16), 4, -EFAULT, false},
	{"ioctl WRITE read-only", HMM_DMIRROR_WRITE, AT(8), 4, -EPERM, false},
	{"ioctl MIGRATE_TO_DEV a hole", HMM_DMIRROR_MIGRATE_TO_DEV, AT(12), 4, -EINVAL, false},
	{"ioctl MIGRATE_TO_DEV PROT_NONE", HMM_DMIRROR_MIGRATE_TO_DEV, AT(16), 4, -EINVAL, false},
	{"ioctl MIGRATE_TO_DEV shmem", HMM_DMIRROR_MIGRATE_TO_DEV, AT(32), 4, -ENOENT, true},
	{"ioctl MIGRATE_TO_SYS a hole", HMM_DMIRROR_MIGRATE_TO_SYS, AT(20), 4, -EINVAL, false},
	{"ioctl MIGRATE_TO_SYS PROT_NONE", HMM_DMIRROR_MIGRATE_TO_SYS, AT(16), 4, -EINVAL, false},
};

Test(badinput, dmirror_ioctl)
{
	run_rows(dm_rows, sizeof(dm_rows[0]), N(dm_rows), dm_call);
}

struct open_row {
	const char *what;
	unsigned int minor;
	bool no_mm;
	long want;
};

static void open_call(struct world *w, const void *r, const char *what)
{
	const struct open_row *row = r;
	struct dmirror *d = dmirror_open(mod, row->minor, row->no_mm ? NULL : w->mm);

	cr_expect_eq(PTR_ERR(d), row->want, "%s: returned %ld, want %ld", what, PTR_ERR(d),
		     row->want);
	if (!IS_ERR_OR_NULL(d))
		dmirror_release(d);
}

static const struct open_row open_rows[] = {
	{"open minor 4", DMIRROR_NDEVICES, false, -ENODEV},
	{"open minor 255", 255, false, -ENODEV},
	{"open minor ~0", ~0U, false, -ENODEV},
};

Test(badinput, dmirror_open)
{
	run_rows(open_rows, sizeof(open_rows[0]), N(open_rows), open_call);
	/* A closed module is busy no more: teardown's exit must succeed. */
}
