/* SPDX-License-Identifier: MIT */
/*
 * tests/test_badinput.c - bad input to every public entry point returns the
 * errno Linux returns (uhmm-only APIs: the errno their kernel-doc promises)
 * and changes nothing (DESIGN.md principle 8).
 *
 * Each row runs on a fresh address space with a known layout (below) and
 * compares before and after the call (mm_snapshot_take() of helpers.c and
 * take_counts() here): the bytes of every present page, the pagemap of the
 * span, smaps_rollup, the RSS counters, the VMA list, the machine's free
 * pages and hugetlb pool, every dmirror device's memory
 * (dmirror_device_stats()), the invalidations a whole-mm interval notifier
 * saw, folio_free calls, and the memfd's size, page count and bytes.
 * tests/test_errno.c does the same for mm_mmap/munmap/mprotect/madvise and
 * the CPU on a smaller layout, with the same snapshot helper.
 *
 * Where uhmm differs from Linux on purpose the row says so ("uhmm only"):
 * mostly a NULL pointer, or a call Linux would BUG/oops on, which uhmm
 * answers with -EINVAL (or the documented errno) instead of crashing.
 *
 * Every public entry point, by header.  Classes of bad argument: N NULL,
 * U unaligned, Z zero, O overflowing, R out of range, M unmapped, P wrong
 * protection, F wrong flags, C closed device/file, B busy.  Tables:
 * [E:x] is x_calls in test_errno.c, [x] is x_rows here (or the Test named).
 *
 * uhmm/machine.h
 *   uhmm_machine_create      U Z O R F  [E:uhmm_machine_create_bad_sizes] [machine]
 *   uhmm_machine_destroy     N B        [E:uhmm_machine_destroy_busy_*] [machine]
 *   uhmm_machine_set_thp     N R        [machine] (void: a bad mode is ignored)
 *   uhmm_nr_free_blocks      R          [machine]
 *   uhmm_fail_page_alloc(_count)  N     [machine]
 *   alloc_pages, folio_alloc R          [machine] (order > MAX_PAGE_ORDER: NULL)
 *   split_folio_to_order, __split_unmapped_folio  Z R B  [machine]
 *   pfn_valid, is_zero_pfn   R          [machine] (pfn readers)
 *   uhmm_audit               N          [machine]
 *   no bad input: uhmm_totalram_pages, uhmm_nr_free_pages,
 *     uhmm_nr_reserved_pages, uhmm_zero_pfn (a machine the caller holds);
 *     pfn_to_page, page_to_pfn, page_address, page_machine, page_folio,
 *     folio_page/head/pfn/order/nr_pages/size/next/address, the page-flag
 *     and folio_test_* accessors, folio/page_ref_count, folio_get/ref_add/
 *     try_get/ref_freeze/ref_unfreeze, folio_put(_refs), get_page, put_page,
 *     page/folio_(entire_)mapcount, folio_mapped, folio_test_anon/lazyfree,
 *     folio_lock/trylock/unlock, __free_pages, is_huge_zero_folio: they act
 *     on a page or folio the caller holds a reference to (a wrong one is a
 *     refcount bug Linux VM_BUG_ONs on, with no errno to return).
 * uhmm/fault_inject.h
 *   fault_injector_set, should_fail, fault_injector_count  R  [machine]
 *   (probability above 100 is 100); fault_injector_init/destroy: storage
 *   the caller owns, no bad input.
 * uhmm/mm.h
 *   mm_alloc, mm_fork        N          [mm]
 *   mm_mmap                  N U Z O R M F C  [E:mmap] [E:mm_mmap_both_sharing_types] [mm]
 *                                       [mmap_file] (file modes, offsets, MAP_HUGETLB)
 *   mm_munmap                N U Z O R M      [E:munmap] [mm] [hugetlb]
 *   mm_mprotect              N U Z O R M F    [E:mprotect] [mm] [hugetlb]
 *   mm_madvise               N U Z O R M F    [E:madvise] [mm] [hugetlb] (FREE/REMOVE/COLLAPSE)
 *   mm_mremap                N U Z O R M F    test_mremap.c errno_* tests, [mm] [hugetlb]
 *   cpu_read, cpu_write, cpu_memset  N O M P  [E:cpu_access] [mm] [cpu]
 *   cpu_atomic_*             N U M P    [E:cpu_atomics] [mm] [cpu]
 *   mm_pagemap_read          N U O      [E:mm_pagemap_read] [mm]
 *   uhmm_kpageflags, uhmm_kpagecount  R  [machine] (pfn readers)
 *   mm_smaps_rollup, mm_get_rss, mm_dump  N R  [mm]
 *   folio_rmap_query         N R        [mm]
 *   uhmm_drop_lazyfree       N          [mm]
 *   find_vma, vma_lookup     R M        [mm]
 *   mm_mmap_device           N U Z O F  [device_map] (and driver errors)
 *   vm_insert_page           U R F B    [device_map] (wrong pages, VM_PFNMAP, a PTE there)
 *   no bad input: mmget, mmget_not_zero, mmput, mmgrab, mmdrop (reference
 *     counts the caller holds), mmap_read/write_(un)lock (a lock).
 * uhmm/gup.h
 *   get_user_pages_remote    N Z O M P F  [gup] [mm]
 *   pin_user_pages_remote    N M P F      [gup] [mm]
 *   get_user_pages_fast, pin_user_pages_fast  N O R M P F  [gup] [mm]
 *   get_user_pages_fast_only N O M P F    [gup] [mm]
 *   get_user_page_vma_remote M F          [gup]
 *   no bad input: folio_maybe_dma_pinned, unpin_user_page(s),
 *     unpin_user_pages_dirty_lock (pages a pin call returned: Linux has no
 *     errno for them either).
 * uhmm/fs.h
 *   uhmm_memfd_create, uhmm_ramfs_create  N R  [file] (no flags argument:
 *     uhmm's memfd_create takes none, so MFD_* cannot be wrong)
 *   uhmm_file_reopen         N F        [file]
 *   uhmm_pread, uhmm_pwrite  N O R C    [file] (C: a description not open
 *     for it; a file fput() to zero is freed, like a closed fd's number it
 *     cannot be told from a live one, so no row passes a freed file)
 *   uhmm_ftruncate           N R C      [file]
 *   uhmm_file_size, uhmm_file_nrpages, uhmm_file_folio  N R  [file]
 *   no bad input: get_file, fput (a reference the caller holds).
 * uhmm/hugetlb.h
 *   uhmm_hugetlb_stats       N          [hugetlb]
 *   uhmm_hugetlb_set_nr_hugepages  N R  [hugetlb] (beyond RAM is not an error)
 *   uhmm_hugetlb_set_nr_overcommit_hugepages  N  [hugetlb]
 *   MAP_HUGETLB mm_mmap/munmap/mprotect/madvise/mremap  U F R  [mmap_file] [hugetlb]
 *   no bad input: is_vm_hugetlb_page, huge_page_order(_vma),
 *     huge_page_size(_vma), hstate_vma, folio_test_hugetlb (accessors of a
 *     VMA or folio the caller has).
 * uhmm/memremap.h
 *   request_free_mem_region  Z U O R    [region]
 *   release_mem_region       N B        [remap_call]
 *   memremap_pages           N F R B    [remap] [remap_call]
 *   memunmap_pages           N B (twice, never mapped, pages in use)  [remap_call]
 *   no bad input: page_pgmap, is_zone_device_page, folio_is_zone_device,
 *     is_device_private/coherent_page, folio_is_device_private/coherent,
 *     range_len, resource_size (accessors); zone_device_folio_init,
 *     zone_device_page_init, folio_(set_)zone_device_data (a free device
 *     page of the driver's own pgmap, a precondition Linux does not check).
 * uhmm/migrate.h
 *   migrate_vma_setup        N U Z O R M F  [mig]
 *   migrate_device_range, migrate_device_pfns  Z R M  [remap_call]
 *   migrate_device_pages, migrate_device_finalize  Z  [remap_call] (after
 *     nothing was collected)
 *   no bad input: migrate_vma_pages, migrate_vma_finalize (they act on what
 *     migrate_vma_setup() collected and validated); migrate_pfn,
 *     migrate_pfn_to_page (encoders).
 * uhmm/mmu_notifier.h
 *   mmu_interval_notifier_insert(_locked)  N Z O F  [ins] [mm] [notifier_hmm]
 *   mmu_interval_notifier_remove  N C (never inserted, twice)  [notifier_hmm]
 *   no bad input: mmu_interval_read_begin/read_retry/check_retry/set_seq
 *     (an inserted interval; Linux oopses on another and uhmm has no errno
 *     channel there), mmu_notifier_range_init(_owner),
 *     mmu_notifier_range_blockable, mmu_notifier_invalidate_range_start(
 *     _nonblock)/_end, mmu_notifier_release (called by the mm core on its
 *     own ranges, not by users).  There is no mmu_notifier_register(): uhmm
 *     has interval notifiers only.
 * uhmm/hmm.h
 *   hmm_range_fault          N U Z O M P F C (stale seq, removed notifier)  [hmm] [notifier_hmm]
 *   no bad input: hmm_pfn_to_page, hmm_pfn_to_phys, hmm_pfn_to_map_order
 *     (decoders of an entry hmm_range_fault() wrote).
 * uhmm/dmirror.h
 *   dmirror_module_init, dmirror_module_exit  N B  [dmirror]
 *   dmirror_open             N R        [open] [dmirror]
 *   dmirror_release          N C        [dmirror]
 *   dmirror_ioctl            N U Z O M P F C  [dm] [dmirror]
 *   dmirror_mmap             N Z C      [dmirror]
 *   dmirror_device_stats, dmirror_fail_devmem_alloc(_count)  N R  [dmirror]
 *   dmirror_audit            N          [dmirror]
 * uhmm/pgtable.h, uhmm/types.h, uhmm/mm_types.h: no bad input: the PTE/PMD/
 *   swap-entry encoders and predicates and the list helpers are pure
 *   functions of a value (every value has an answer); mm_types.h declares
 *   types only.
 */
#include "helpers.h"

#include <fcntl.h>
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
 *   [40, 44)  MAP_SHARED of a 4-page memfd (written with seed 5 through
 *             uhmm_pwrite()), its first two pages faulted in by a read
 *   [44, 48)  hole
 * and, outside the span, a 2 MiB MAP_HUGETLB VMA at HBASE (written), a
 * 2-page dmirror_mmap() (VM_MIXEDMAP) VMA and a 2-page VM_IO|VM_PFNMAP
 * device VMA (mm_mmap_device()) wherever mmap puts them.
 */
#define BASE 0x100000000000UL
#define AT(pg) (BASE + (unsigned long)(pg)*PAGE_SIZE)
#define HBASE (BASE + (64UL << 20))
#define SPAN 48
#define FILE_PAGES 4
#define RW (PROT_READ | PROT_WRITE)
#define PRIV_ANON (MAP_PRIVATE | MAP_ANONYMOUS)
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
	unsigned long mixed;	/* the dmirror_mmap() VMA */
	unsigned long pfnmap;	/* the VM_IO|VM_PFNMAP VMA */
	struct file *file;	/* the memfd mapped at AT(40), O_RDWR */
	struct file *file_ro;	/* the same inode, O_RDONLY */
	struct file *file_wo;	/* the same inode, O_WRONLY */
};

/* A driver mmap that makes a VM_IO|VM_PFNMAP VMA and maps nothing (yet). */
static int pfnmap_mmap(struct vm_area_struct *vma, void *priv)
{
	(void)priv;
	vma->vm_flags |= VM_IO | VM_PFNMAP;
	return 0;
}

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
	w->file = new_memfd();
	file_fill(w->file, 0, FILE_PAGES * P, 5);
	cr_assert_eq(mm_mmap(mm, AT(40), FILE_PAGES * P, RW, MAP_SHARED | MAP_FIXED, w->file, 0),
		     (long)AT(40));
	check_at(mm, AT(40), 0, 2 * P, 5);
	w->file_ro = uhmm_file_reopen(w->file, O_RDONLY);
	w->file_wo = uhmm_file_reopen(w->file, O_WRONLY);
	cr_assert(!IS_ERR_OR_NULL(w->file_ro) && !IS_ERR_OR_NULL(w->file_wo));
	long pfnmap = mm_mmap_device(mm, 0, 2 * P, RW, MAP_SHARED, pfnmap_mmap, NULL);
	cr_assert_gt(pfnmap, 0, "mm_mmap_device: %ld", pfnmap);
	w->pfnmap = (unsigned long)pfnmap;

	w->dmirror = dmirror_open(mod, 0, mm);
	cr_assert(!IS_ERR_OR_NULL(w->dmirror), "dmirror_open: %ld", PTR_ERR(w->dmirror));
	long m = dmirror_mmap(w->dmirror, 0, 2 * P, RW, MAP_SHARED);
	cr_assert_gt(m, 0, "dmirror_mmap: %ld", m);
	w->mixed = (unsigned long)m;

	pthread_mutex_init(&w->drv.lock, NULL);
	cr_assert_eq(mmu_interval_notifier_insert(&w->drv.sub, mm, 0, ~0UL & PAGE_MASK, &drv_ops),
		     0);

	cr_assert_eq(mm->mm_mt.nr, 9, "layout has %zu VMAs, want 9", mm->mm_mt.nr);
}

static void teardown_world(struct world *w)
{
	check_pattern(w->mm, AT(0), 8 * P, 1);
	check_pattern(w->mm, AT(8), 4 * P, 2);
	check_pattern(w->mm, HBASE, P, 4);
	check_at(w->mm, AT(40), 0, FILE_PAGES * P, 5);
	fput(w->file);
	fput(w->file_ro);
	fput(w->file_wo);
	mmu_interval_notifier_remove(&w->drv.sub);
	pthread_mutex_destroy(&w->drv.lock);
	dmirror_release(w->dmirror);
	cr_expect_eq(dmirror_audit(mod, stderr), 0);
	mmput(w->mm);
}

/* What a row compares besides the shared mm_snapshot. */
struct world_counts {
	struct mm_snapshot mm;
	int invalidations;
	int migrate_events;
	int folio_frees;
	loff_t file_size;
	unsigned long file_nrpages;
	uint8_t file_bytes[FILE_PAGES * PAGE_SIZE];
};

static const struct snapshot_spec world_spec = {.base = AT(0), .npages = SPAN};

static void take_counts(struct world *w, struct world_counts *c)
{
	struct snapshot_spec spec = world_spec;

	spec.devices = mod;
	mm_snapshot_take(&c->mm, w->mm, &spec);
	pthread_mutex_lock(&w->drv.lock);
	c->invalidations = w->drv.invalidations;
	c->migrate_events = w->drv.migrate_events;
	pthread_mutex_unlock(&w->drv.lock);
	c->folio_frees = nr_folio_free;
	c->file_size = uhmm_file_size(w->file);
	c->file_nrpages = uhmm_file_nrpages(w->file);
	memset(c->file_bytes, 0, sizeof(c->file_bytes));
	cr_assert_eq(uhmm_pread(w->file, c->file_bytes, sizeof(c->file_bytes), 0),
		     (ssize_t)sizeof(c->file_bytes));
}

static void expect_same_counts(const char *what, struct world_counts *a, struct world_counts *b)
{
	mm_snapshot_expect_same(what, &a->mm, &b->mm);
	cr_expect_eq(a->invalidations, b->invalidations, "%s: %d invalidations -> %d", what,
		     a->invalidations, b->invalidations);
	cr_expect_eq(a->migrate_events, b->migrate_events, "%s: %d migrate events -> %d", what,
		     a->migrate_events, b->migrate_events);
	cr_expect_eq(a->folio_frees, b->folio_frees, "%s: folio_free called", what);
	cr_expect_eq(a->file_size, b->file_size, "%s: file size %lld -> %lld", what,
		     (long long)a->file_size, (long long)b->file_size);
	cr_expect_eq(a->file_nrpages, b->file_nrpages, "%s: file pages %lu -> %lu", what,
		     a->file_nrpages, b->file_nrpages);
	cr_expect(!memcmp(a->file_bytes, b->file_bytes, sizeof(a->file_bytes)),
		  "%s: file bytes changed", what);
	mm_snapshot_free(&a->mm);
	mm_snapshot_free(&b->mm);
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
		static struct world_counts before, after;

		setup_world(&w);
		take_counts(&w, &before);
		fn(&w, row, what);
		take_counts(&w, &after);
		expect_same_counts(what, &before, &after);
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

/* ------------------------------------------------------------------ */
/* One row shape for every other entry point: {name, call, args, want} */
/* ------------------------------------------------------------------ */

struct call_row;
typedef long (*call_fn)(struct world *w, const struct call_row *row);

/* A call and the errno (or value) it must return; a..d are its arguments. */
struct call_row {
	const char *what;
	call_fn call;
	unsigned long a, b, c, d;
	long want;
};

static void call_one(struct world *w, const void *r, const char *what)
{
	const struct call_row *row = r;
	long ret = row->call(w, row);

	cr_expect_eq(ret, row->want, "%s: returned %ld (%#lx), want %ld", what, ret,
		     (unsigned long)ret, row->want);
}

#define RUN_CALLS(table) run_rows(table, sizeof(table[0]), N(table), call_one)

/* ERR_PTR() results as the errno, anything else as 0 (after @release). */
static long ptr_result(void *ptr, void (*release)(void *))
{
	if (IS_ERR_OR_NULL(ptr))
		return ptr ? PTR_ERR(ptr) : -1;
	if (release)
		release(ptr);
	return 0;
}

/* ---- uhmm/machine.h ---- */

static long c_machine_create(struct world *w, const struct call_row *row)
{
	struct uhmm_machine_config cfg = {
		.ram_size = row->a,
		.thp_enabled = (enum thp_mode)row->b,
		.nr_hugepages = UHMM_NO_HUGEPAGES,
	};
	struct uhmm_machine *m = uhmm_machine_create(&cfg);

	(void)w;
	if (!IS_ERR_OR_NULL(m))
		cr_expect_eq(uhmm_machine_destroy(m), 0);
	return IS_ERR_OR_NULL(m) ? PTR_ERR(m) : 0;
}

static long c_machine_destroy(struct world *w, const struct call_row *row)
{
	(void)w;
	return uhmm_machine_destroy(row->a ? NULL : machine);
}

/* A bad THP mode is ignored, as Linux's enabled_store() refuses it. */
static long c_machine_set_thp(struct world *w, const struct call_row *row)
{
	enum thp_mode before = atomic_load(&machine->thp_enabled);

	(void)w;
	uhmm_machine_set_thp(row->a ? NULL : machine, (enum thp_mode)row->b);
	return atomic_load(&machine->thp_enabled) == before ? 0 : -1;
}

/* alloc_pages()/folio_alloc() of a bad order: NULL (0 here), nothing taken. */
static long c_alloc_order(struct world *w, const struct call_row *row)
{
	(void)w;
	if (row->a) {
		struct folio *folio = folio_alloc(machine, __GFP_COMP, (unsigned int)row->b);
		if (folio)
			folio_put(folio);
		return folio != NULL;
	}
	struct page *page = alloc_pages(machine, 0, (unsigned int)row->b);
	if (page)
		__free_pages(page, (unsigned int)row->b);
	return page != NULL;
}

static long c_nr_free_blocks(struct world *w, const struct call_row *row)
{
	(void)w;
	return (long)uhmm_nr_free_blocks(machine, (unsigned int)row->a);
}

enum split_bad { SPLIT_ORDER0, SPLIT_SAME_ORDER, SPLIT_HIGHER_ORDER, SPLIT_EXTRA_REF, SPLIT_UNFROZEN };

/* split_folio_to_order() / __split_unmapped_folio() of a folio it must not split. */
static long c_split(struct world *w, const struct call_row *row)
{
	unsigned int order = row->a == SPLIT_ORDER0 ? 0 : 4;
	struct folio *folio = folio_alloc(machine, __GFP_COMP | __GFP_ZERO, order);
	unsigned int new_order = row->a == SPLIT_SAME_ORDER	    ? order
				 : row->a == SPLIT_HIGHER_ORDER ? order + 1
								: 0;
	long ret;

	(void)w;
	cr_assert_not_null(folio);
	folio_lock(folio);
	if (row->a == SPLIT_EXTRA_REF)
		folio_get(folio);
	if (row->a == SPLIT_UNFROZEN)
		ret = __split_unmapped_folio(folio, new_order);
	else
		ret = split_folio_to_order(folio, new_order);
	cr_expect_eq(folio_order(folio), order, "still of order %u", order);
	cr_expect(folio_test_locked(folio));
	folio_unlock(folio);
	if (row->a == SPLIT_EXTRA_REF)
		folio_put(folio);
	cr_expect_eq(folio_ref_count(folio), 1);
	folio_put(folio);
	return ret;
}

/* The pfn readers on a pfn no machine or device has: "no page", nothing else. */
static long c_pfn_readers(struct world *w, const struct call_row *row)
{
	unsigned long pfn = row->a;

	(void)w;
	cr_expect(!pfn_valid(pfn), "pfn %#lx valid", pfn);
	cr_expect(!is_zero_pfn(pfn), "pfn %#lx is a zero page", pfn);
	cr_expect_eq(uhmm_kpageflags(pfn), 1ULL << KPF_NOPAGE, "kpageflags(%#lx)", pfn);
	return uhmm_kpagecount(pfn);
}

static long c_fail_page_alloc(struct world *w, const struct call_row *row)
{
	(void)w;
	/* NULL machine: ignored (void); the count of a NULL machine is 0. */
	uhmm_fail_page_alloc(NULL, NULL);
	return (long)uhmm_fail_page_alloc_count(NULL) + (long)row->a;
}

/* A probability above 100 counts as 100 (fault_inject.h); min_order still filters. */
static long c_fault_injector(struct world *w, const struct call_row *row)
{
	struct fault_injector fi;
	struct fault_attr attr = {.probability = (unsigned int)row->a, .times = -1, .min_order = 2};
	long failed = 0;

	(void)w;
	fault_injector_init(&fi);
	fault_injector_set(&fi, &attr);
	for (int i = 0; i < 10; i++)
		failed += should_fail(&fi, 2) + should_fail(&fi, 1) * 100;
	cr_expect_eq(fault_injector_count(&fi), (unsigned long)failed);
	fault_injector_set(&fi, NULL);
	cr_expect(!should_fail(&fi, 5), "a cleared rule still fails calls");
	fault_injector_destroy(&fi);
	return failed;
}

static long c_audit_null(struct world *w, const struct call_row *row)
{
	(void)w;
	(void)row;
	return uhmm_audit(NULL, NULL);
}

static const struct call_row machine_rows[] = {
	{"machine_create: 1 MiB", c_machine_create, 1UL << 20, THP_MADVISE, 0, 0, -EINVAL},
	{"machine_create: 2 MiB + 4 KiB", c_machine_create, (2UL << 20) + P, THP_MADVISE, 0, 0,
	 -EINVAL},
	{"machine_create: ~0", c_machine_create, ~0UL, THP_MADVISE, 0, 0, -EINVAL},
	{"machine_create: 2^62 bytes", c_machine_create, 1UL << 62, THP_MADVISE, 0, 0, -EINVAL},
	/* transparent_hugepage/enabled takes always/madvise/never: anything else -EINVAL. */
	{"machine_create: thp mode 3", c_machine_create, 2UL << 20, 3, 0, 0, -EINVAL},
	{"machine_create: thp mode -1", c_machine_create, 2UL << 20, ~0UL, 0, 0, -EINVAL},
	{"machine_create: the smallest machine works", c_machine_create, 2UL << 20, THP_NEVER, 0, 0,
	 0},
	{"machine_destroy: busy (mms, files, device memory)", c_machine_destroy, 0, 0, 0, 0,
	 -EBUSY},
	{"machine_destroy: NULL is a no-op", c_machine_destroy, 1, 0, 0, 0, 0},
	{"machine_set_thp: mode 3 ignored", c_machine_set_thp, 0, 3, 0, 0, 0},
	{"machine_set_thp: mode -1 ignored", c_machine_set_thp, 0, ~0UL, 0, 0, 0},
	{"machine_set_thp: NULL machine ignored", c_machine_set_thp, 1, THP_ALWAYS, 0, 0, 0},
	/* __alloc_pages(): "if (WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER, gfp)) return NULL". */
	{"alloc_pages: order MAX_PAGE_ORDER + 1", c_alloc_order, 0, MAX_PAGE_ORDER + 1, 0, 0, 0},
	{"alloc_pages: order 63", c_alloc_order, 0, 63, 0, 0, 0},
	{"alloc_pages: order ~0", c_alloc_order, 0, ~0U, 0, 0, 0},
	{"folio_alloc: order MAX_PAGE_ORDER + 1", c_alloc_order, 1, MAX_PAGE_ORDER + 1, 0, 0, 0},
	{"folio_alloc: order 64", c_alloc_order, 1, 64, 0, 0, 0},
	{"nr_free_blocks: order MAX_PAGE_ORDER + 1", c_nr_free_blocks, MAX_PAGE_ORDER + 1, 0, 0, 0,
	 0},
	{"nr_free_blocks: order ~0", c_nr_free_blocks, ~0U, 0, 0, 0, 0},
	{"split_folio_to_order: order-0 folio", c_split, SPLIT_ORDER0, 0, 0, 0, -EINVAL},
	{"split_folio_to_order: new order == order", c_split, SPLIT_SAME_ORDER, 0, 0, 0, -EINVAL},
	{"split_folio_to_order: new order > order", c_split, SPLIT_HIGHER_ORDER, 0, 0, 0, -EINVAL},
	/* can_split_folio(): another reference than the caller's. */
	{"split_folio_to_order: extra reference", c_split, SPLIT_EXTRA_REF, 0, 0, 0, -EBUSY},
	{"__split_unmapped_folio: refcount not frozen", c_split, SPLIT_UNFROZEN, 0, 0, 0, -EBUSY},
	/* /proc/kpagecount of a pfn without a page reads 0. */
	{"pfn readers: pfn ~0", c_pfn_readers, ~0UL, 0, 0, 0, 0},
	{"pfn readers: pfn 2^40 - 1", c_pfn_readers, (1UL << 40) - 1, 0, 0, 0, 0},
	{"pfn readers: pfn 2^52", c_pfn_readers, 1UL << 52, 0, 0, 0, 0},
	{"fail_page_alloc: NULL machine ignored", c_fail_page_alloc, 0, 0, 0, 0, 0},
	{"audit: NULL machine", c_audit_null, 0, 0, 0, 0, -EINVAL},
	{"fault_injector: probability 1000 is 100", c_fault_injector, 1000, 0, 0, 0, 10},
	{"fault_injector: probability ~0 is 100", c_fault_injector, ~0U, 0, 0, 0, 10},
};

Test(badinput, machine_h)
{
	RUN_CALLS(machine_rows);
}

/* ---- uhmm/mm.h: lifecycle, readers, NULL mm, device mmap, vm_insert_page ---- */

static void release_mm(void *mm)
{
	mmput(mm);
}

static long c_mm_alloc_null(struct world *w, const struct call_row *row)
{
	(void)w;
	(void)row;
	return ptr_result(mm_alloc(NULL), release_mm);
}

static long c_mm_fork_null(struct world *w, const struct call_row *row)
{
	(void)w;
	(void)row;
	return ptr_result(mm_fork(NULL), release_mm);
}

enum null_mm_call {
	NM_MMAP,
	NM_MUNMAP,
	NM_MPROTECT,
	NM_MADVISE,
	NM_MREMAP,
	NM_READ,
	NM_WRITE,
	NM_MEMSET,
	NM_FETCH_ADD,
	NM_XCHG,
	NM_CMPXCHG,
	NM_PAGEMAP,
	NM_SMAPS,
	NM_RSS,
	NM_MMAP_DEVICE,
	NM_GUP_REMOTE,
	NM_PIN_REMOTE,
	NM_GUP_FAST,
	NM_PIN_FAST,
	NM_GUP_FAST_ONLY,
	NM_NOTIFIER_INSERT,
	NM_NOTIFIER_INSERT_LOCKED,
};

/*
 * A NULL mm: Linux has no such call (current->mm or an mm a driver got from
 * a task is never NULL) and would oops; uhmm returns -EINVAL instead.
 */
static long c_null_mm(struct world *w, const struct call_row *row)
{
	uint8_t buf[16] = {0};
	uint64_t v = 0, pm[2] = {0};
	struct mm_smaps sm;
	struct page *pages[2] = {NULL, NULL};
	struct mmu_interval_notifier sub;

	(void)w;
	memset(&sub, 0, sizeof(sub));
	switch ((enum null_mm_call)row->a) {
	case NM_MMAP:
		return mm_mmap(NULL, 0, P, RW, PRIV_ANON, NULL, 0);
	case NM_MUNMAP:
		return mm_munmap(NULL, AT(0), P);
	case NM_MPROTECT:
		return mm_mprotect(NULL, AT(0), P, PROT_READ);
	case NM_MADVISE:
		return mm_madvise(NULL, AT(0), P, MADV_DONTNEED);
	case NM_MREMAP:
		return mm_mremap(NULL, AT(0), P, 2 * P, MREMAP_MAYMOVE, 0);
	case NM_READ:
		return cpu_read(NULL, AT(0), buf, sizeof(buf));
	case NM_WRITE:
		return cpu_write(NULL, AT(0), buf, sizeof(buf));
	case NM_MEMSET:
		return cpu_memset(NULL, AT(0), 0, sizeof(buf));
	case NM_FETCH_ADD:
		return cpu_atomic_fetch_add_u64(NULL, AT(0), 1, &v);
	case NM_XCHG:
		return cpu_atomic_xchg_u64(NULL, AT(0), 1, &v);
	case NM_CMPXCHG:
		return cpu_atomic_cmpxchg_u64(NULL, AT(0), 0, 1, &v);
	case NM_PAGEMAP:
		return mm_pagemap_read(NULL, AT(0), 2, pm);
	case NM_SMAPS:
		return mm_smaps_rollup(NULL, &sm);
	case NM_RSS:
		return mm_get_rss(NULL, MM_ANONPAGES);
	case NM_MMAP_DEVICE:
		return mm_mmap_device(NULL, 0, P, RW, MAP_SHARED, pfnmap_mmap, NULL);
	case NM_GUP_REMOTE:
		return get_user_pages_remote(NULL, AT(0), 1, 0, pages, NULL);
	case NM_PIN_REMOTE:
		return pin_user_pages_remote(NULL, AT(0), 1, 0, pages, NULL);
	case NM_GUP_FAST:
		return get_user_pages_fast(NULL, AT(0), 1, 0, pages);
	case NM_PIN_FAST:
		return pin_user_pages_fast(NULL, AT(0), 1, 0, pages);
	case NM_GUP_FAST_ONLY:
		return get_user_pages_fast_only(NULL, AT(0), 1, 0, pages);
	case NM_NOTIFIER_INSERT:
		return mmu_interval_notifier_insert(&sub, NULL, AT(0), P, &drv_ops);
	case NM_NOTIFIER_INSERT_LOCKED:
		return mmu_interval_notifier_insert_locked(&sub, NULL, AT(0), P, &drv_ops);
	}
	cr_assert_fail("bad row");
	return 0;
}

/* mm_smaps_rollup(), mm_get_rss(), mm_pagemap_read() and friends with bad outputs. */
enum reader_bad {
	RB_SMAPS_NULL,
	RB_RSS_NEG,
	RB_RSS_PAST,
	RB_PAGEMAP_NULL,
	RB_PAGEMAP_HUGE,
	RB_DUMP_NULL,
	RB_RMAP_NULL_OUT,
	RB_RMAP_NEG_MAX,
	RB_LAZYFREE_NULL,
	RB_FIND_VMA,
};

static long c_readers(struct world *w, const struct call_row *row)
{
	struct folio_mapping_info info[2];

	switch ((enum reader_bad)row->a) {
	case RB_SMAPS_NULL:
		return mm_smaps_rollup(w->mm, NULL);
	case RB_RSS_NEG:
		return mm_get_rss(w->mm, -1);
	case RB_RSS_PAST:
		return mm_get_rss(w->mm, NR_MM_COUNTERS);
	case RB_PAGEMAP_NULL:
		return mm_pagemap_read(w->mm, AT(0), 4, NULL);
	case RB_PAGEMAP_HUGE: {
		uint64_t out[2] = {0x77, 0x77};
		long ret = mm_pagemap_read(w->mm, AT(0), ~0UL / 8, out);
		cr_expect(out[0] == 0x77 && out[1] == 0x77, "pagemap wrote on an error");
		return ret;
	}
	case RB_DUMP_NULL:
		mm_dump(NULL, stderr);
		mm_dump(w->mm, NULL);
		return 0;
	case RB_RMAP_NULL_OUT:
		return folio_rmap_query(folio_at(w->mm, AT(0)), NULL, 2);
	case RB_RMAP_NEG_MAX:
		return folio_rmap_query(folio_at(w->mm, AT(0)), info, -1);
	case RB_LAZYFREE_NULL:
		return (long)uhmm_drop_lazyfree(NULL);
	case RB_FIND_VMA: {
		/* Addresses with no VMA at or after them, or none containing them: NULL. */
		mmap_read_lock(w->mm);
		long found = (find_vma(w->mm, TASK_SIZE) != NULL) + (find_vma(w->mm, ~0UL) != NULL) +
			     (vma_lookup(w->mm, AT(12)) != NULL) + (vma_lookup(w->mm, ~0UL) != NULL);
		mmap_read_unlock(w->mm);
		return found;
	}
	}
	cr_assert_fail("bad row");
	return 0;
}

static const struct call_row mm_rows[] = {
	/* uhmm only: mm_alloc() of no machine, mm_fork() of no mm (Linux has neither). */
	{"mm_alloc: NULL machine", c_mm_alloc_null, 0, 0, 0, 0, -EINVAL},
	{"mm_fork: NULL mm", c_mm_fork_null, 0, 0, 0, 0, -EINVAL},
	{"mm_mmap: NULL mm", c_null_mm, NM_MMAP, 0, 0, 0, -EINVAL},
	{"mm_munmap: NULL mm", c_null_mm, NM_MUNMAP, 0, 0, 0, -EINVAL},
	{"mm_mprotect: NULL mm", c_null_mm, NM_MPROTECT, 0, 0, 0, -EINVAL},
	{"mm_madvise: NULL mm", c_null_mm, NM_MADVISE, 0, 0, 0, -EINVAL},
	{"mm_mremap: NULL mm", c_null_mm, NM_MREMAP, 0, 0, 0, -EINVAL},
	{"cpu_read: NULL mm", c_null_mm, NM_READ, 0, 0, 0, -EINVAL},
	{"cpu_write: NULL mm", c_null_mm, NM_WRITE, 0, 0, 0, -EINVAL},
	{"cpu_memset: NULL mm", c_null_mm, NM_MEMSET, 0, 0, 0, -EINVAL},
	{"cpu_atomic_fetch_add_u64: NULL mm", c_null_mm, NM_FETCH_ADD, 0, 0, 0, -EINVAL},
	{"cpu_atomic_xchg_u64: NULL mm", c_null_mm, NM_XCHG, 0, 0, 0, -EINVAL},
	{"cpu_atomic_cmpxchg_u64: NULL mm", c_null_mm, NM_CMPXCHG, 0, 0, 0, -EINVAL},
	{"mm_pagemap_read: NULL mm", c_null_mm, NM_PAGEMAP, 0, 0, 0, -EINVAL},
	{"mm_smaps_rollup: NULL mm", c_null_mm, NM_SMAPS, 0, 0, 0, -EINVAL},
	{"mm_get_rss: NULL mm", c_null_mm, NM_RSS, 0, 0, 0, -EINVAL},
	{"mm_mmap_device: NULL mm", c_null_mm, NM_MMAP_DEVICE, 0, 0, 0, -EINVAL},
	{"get_user_pages_remote: NULL mm", c_null_mm, NM_GUP_REMOTE, 0, 0, 0, -EINVAL},
	{"pin_user_pages_remote: NULL mm", c_null_mm, NM_PIN_REMOTE, 0, 0, 0, -EINVAL},
	{"get_user_pages_fast: NULL mm", c_null_mm, NM_GUP_FAST, 0, 0, 0, -EINVAL},
	{"pin_user_pages_fast: NULL mm", c_null_mm, NM_PIN_FAST, 0, 0, 0, -EINVAL},
	{"get_user_pages_fast_only: NULL mm", c_null_mm, NM_GUP_FAST_ONLY, 0, 0, 0, -EINVAL},
	{"mmu_interval_notifier_insert: NULL mm", c_null_mm, NM_NOTIFIER_INSERT, 0, 0, 0, -EINVAL},
	{"mmu_interval_notifier_insert_locked: NULL mm", c_null_mm, NM_NOTIFIER_INSERT_LOCKED, 0, 0,
	 0, -EINVAL},
	{"mm_smaps_rollup: NULL out", c_readers, RB_SMAPS_NULL, 0, 0, 0, -EINVAL},
	{"mm_get_rss: member -1", c_readers, RB_RSS_NEG, 0, 0, 0, -EINVAL},
	{"mm_get_rss: member NR_MM_COUNTERS", c_readers, RB_RSS_PAST, 0, 0, 0, -EINVAL},
	{"mm_pagemap_read: NULL out", c_readers, RB_PAGEMAP_NULL, 0, 0, 0, -EINVAL},
	{"mm_pagemap_read: npages larger than the address space", c_readers, RB_PAGEMAP_HUGE, 0, 0,
	 0, -EINVAL},
	{"mm_dump: NULL mm or NULL out is a no-op", c_readers, RB_DUMP_NULL, 0, 0, 0, 0},
	{"folio_rmap_query: NULL out with max 2", c_readers, RB_RMAP_NULL_OUT, 0, 0, 0, -EINVAL},
	{"folio_rmap_query: max -1", c_readers, RB_RMAP_NEG_MAX, 0, 0, 0, -EINVAL},
	{"uhmm_drop_lazyfree: NULL machine", c_readers, RB_LAZYFREE_NULL, 0, 0, 0, 0},
	{"find_vma/vma_lookup: past TASK_SIZE, in a hole, at ~0", c_readers, RB_FIND_VMA, 0, 0, 0,
	 0},
};

Test(badinput, mm_h)
{
	RUN_CALLS(mm_rows);
}

/* ---- uhmm/mm.h: the CPU with a NULL host buffer (copy_{to,from}_user: -EFAULT) ---- */

enum cpu_buf_call { CB_READ, CB_WRITE, CB_READ_LEN0, CB_WRITE_LEN0, CB_FETCH_ADD_NULL_OLD, CB_CMPXCHG_NULL_PREV };

static long c_cpu_buf(struct world *w, const struct call_row *row)
{
	unsigned long addr = row->b;

	switch ((enum cpu_buf_call)row->a) {
	case CB_READ:
		return cpu_read(w->mm, addr, NULL, row->c);
	case CB_WRITE:
		return cpu_write(w->mm, addr, NULL, row->c);
	case CB_READ_LEN0:
		return cpu_read(w->mm, addr, NULL, 0);
	case CB_WRITE_LEN0:
		return cpu_write(w->mm, addr, NULL, 0);
	case CB_FETCH_ADD_NULL_OLD:
		return cpu_atomic_fetch_add_u64(w->mm, addr, 1, NULL);
	case CB_CMPXCHG_NULL_PREV: {
		uint64_t cur = 0;
		cr_assert_eq(cpu_read(w->mm, addr, &cur, sizeof(cur)), 0);
		return cpu_atomic_cmpxchg_u64(w->mm, addr, cur, cur + 1, NULL);
	}
	}
	cr_assert_fail("bad row");
	return 0;
}

static const struct call_row cpu_rows[] = {
	/* A NULL buffer faults in the copy: -EFAULT, before any page is touched. */
	{"cpu_read: NULL buffer over data", c_cpu_buf, CB_READ, AT(0), 16, 0, -EFAULT},
	{"cpu_read: NULL buffer over the untouched part", c_cpu_buf, CB_READ, AT(24), P, 0,
	 -EFAULT},
	{"cpu_read: NULL buffer over the shmem part", c_cpu_buf, CB_READ, AT(32), P, 0, -EFAULT},
	{"cpu_write: NULL buffer over data", c_cpu_buf, CB_WRITE, AT(0), 16, 0, -EFAULT},
	{"cpu_write: NULL buffer over the untouched part", c_cpu_buf, CB_WRITE, AT(24), P, 0,
	 -EFAULT},
	{"cpu_write: NULL buffer over the file", c_cpu_buf, CB_WRITE, AT(40), P, 0, -EFAULT},
	{"cpu_write: NULL buffer over a read-only part", c_cpu_buf, CB_WRITE, AT(8), 8, 0,
	 -EFAULT},
	/* Zero bytes never fault, whatever the pointers. */
	{"cpu_read: NULL buffer, length 0, in a hole", c_cpu_buf, CB_READ_LEN0, AT(12), 0, 0, 0},
	{"cpu_write: NULL buffer, length 0, read-only", c_cpu_buf, CB_WRITE_LEN0, AT(8), 0, 0, 0},
	/* @old/@prev NULL is allowed; unaligned and no permission still fail first. */
	{"fetch_add: NULL old, unaligned", c_cpu_buf, CB_FETCH_ADD_NULL_OLD, AT(0) + 4, 0, 0,
	 -EINVAL},
	{"fetch_add: NULL old, read-only", c_cpu_buf, CB_FETCH_ADD_NULL_OLD, AT(8), 0, 0, -EFAULT},
	{"cmpxchg: NULL prev, read-only", c_cpu_buf, CB_CMPXCHG_NULL_PREV, AT(8), 0, 0, -EFAULT},
};

Test(badinput, cpu_null_buffer)
{
	RUN_CALLS(cpu_rows);
}

/* ---- uhmm/mm.h: mm_mmap() of files and MAP_HUGETLB ---- */

enum map_file { MF_ANON, MF_RW, MF_RO, MF_WO };

static struct file *row_file(struct world *w, unsigned long which)
{
	return which == MF_RW ? w->file : which == MF_RO ? w->file_ro : which == MF_WO ? w->file_wo : NULL;
}

/*
 * mm_mmap(@a = which file (low 4 bits) | the offset in bytes, @b = addr, @c = len,
 * @d = flags | prot << 32); a mapping that works is unmapped again (return 0).
 */
static long c_mmap(struct world *w, const struct call_row *row)
{
	int flags = (int)(row->d & 0xffffffffUL);
	int prot = (int)(row->d >> 32);
	long ret = mm_mmap(w->mm, row->b, row->c, prot, flags, row_file(w, row->a & 0xf),
			   row->a & ~0xfUL);

	if (ret > 0 || ret < -4095) {
		cr_expect_eq(mm_munmap(w->mm, (unsigned long)ret, row->c), 0);
		return 0;
	}
	return ret;
}

#define MMAP_ARGS(flags, prot) ((unsigned long)(unsigned int)(flags) | (unsigned long)(prot) << 32)

static const struct call_row mmap_file_rows[] = {
	/* do_mmap(): MAP_SHARED needs FMODE_READ, and FMODE_WRITE for PROT_WRITE: -EACCES. */
	{"mmap: shared RW of an O_RDONLY file", c_mmap, MF_RO, 0, P, MMAP_ARGS(MAP_SHARED, RW),
	 -EACCES},
	{"mmap: shared RW of an O_RDONLY file, MAP_FIXED over data", c_mmap, MF_RO, AT(0), P,
	 MMAP_ARGS(MAP_SHARED | MAP_FIXED, RW), -EACCES},
	{"mmap: shared read of an O_WRONLY file", c_mmap, MF_WO, 0, P,
	 MMAP_ARGS(MAP_SHARED, PROT_READ), -EACCES},
	{"mmap: private of an O_WRONLY file", c_mmap, MF_WO, 0, P,
	 MMAP_ARGS(MAP_PRIVATE, PROT_READ), -EACCES},
	/* x86 sys_mmap(): "if (off & ~PAGE_MASK) return -EINVAL". */
	{"mmap: file offset not page aligned", c_mmap, MF_RW | 0x10, 0, P,
	 MMAP_ARGS(MAP_SHARED, RW), -EINVAL},
	{"mmap: file offset not page aligned, MAP_FIXED over data", c_mmap, MF_RW | 0x800, AT(0),
	 P, MMAP_ARGS(MAP_SHARED | MAP_FIXED, RW), -EINVAL},
	/* file_mmap_ok(): offset + length past MAX_LFS_FILESIZE is -EOVERFLOW. */
	{"mmap: file offset 2^63", c_mmap, MF_RW | (1UL << 63), 0, P, MMAP_ARGS(MAP_SHARED, RW),
	 -EOVERFLOW},
	{"mmap: file offset at the top of the 64-bit space", c_mmap, MF_RW | (~0UL & PAGE_MASK), 0,
	 2 * P, MMAP_ARGS(MAP_SHARED, RW), -EOVERFLOW},
	{"mmap: file offset + length just past MAX_LFS_FILESIZE", c_mmap,
	 MF_RW | ((unsigned long)MAX_LFS_FILESIZE & PAGE_MASK), 0, 2 * P,
	 MMAP_ARGS(MAP_SHARED, RW), -EOVERFLOW},
	{"mmap: private file offset 2^63, MAP_FIXED over data", c_mmap, MF_RW | (1UL << 63), AT(0),
	 P, MMAP_ARGS(MAP_PRIVATE | MAP_FIXED, RW), -EOVERFLOW},
	/* MAP_SHARED_VALIDATE with a flag Linux does not know: -EOPNOTSUPP. */
	{"mmap: MAP_SHARED_VALIDATE with an unknown flag", c_mmap, MF_RW, 0, P,
	 MMAP_ARGS(MAP_SHARED_VALIDATE | 0x800000, RW), -EOPNOTSUPP},
	{"mmap: MAP_HUGETLB of a memfd", c_mmap, MF_RW, 0, PMD_SIZE,
	 MMAP_ARGS(MAP_SHARED | MAP_HUGETLB, RW), -EINVAL},
	/* hugetlb_get_unmapped_area(): a fixed address must be huge-page aligned. */
	{"mmap: MAP_HUGETLB|MAP_FIXED unaligned (4 KiB)", c_mmap, MF_ANON, HBASE + PMD_SIZE + P,
	 PMD_SIZE, MMAP_ARGS(PRIV_ANON | MAP_HUGETLB | MAP_FIXED, RW), -EINVAL},
	{"mmap: MAP_HUGETLB|MAP_FIXED unaligned over the hugetlb VMA", c_mmap, MF_ANON, HBASE + P,
	 PMD_SIZE, MMAP_ARGS(PRIV_ANON | MAP_HUGETLB | MAP_FIXED, RW), -EINVAL},
	{"mmap: MAP_HUGETLB|MAP_FIXED unaligned over data", c_mmap, MF_ANON, AT(1), PMD_SIZE,
	 MMAP_ARGS(PRIV_ANON | MAP_HUGETLB | MAP_FIXED, RW), -EINVAL},
	/* Only the 2 MiB hstate exists: MAP_HUGE_1GB finds no hstate, -EINVAL. */
	{"mmap: MAP_HUGETLB|MAP_HUGE_1GB", c_mmap, MF_ANON, 0, 1UL << 30,
	 MMAP_ARGS(PRIV_ANON | MAP_HUGETLB | MAP_HUGE_1GB, RW), -EINVAL},
	{"mmap: MAP_HUGETLB with a huge size of 2^31", c_mmap, MF_ANON, 0, PMD_SIZE,
	 MMAP_ARGS(PRIV_ANON | MAP_HUGETLB | (31 << MAP_HUGE_SHIFT), RW), -EINVAL},
	/* The pool cannot reserve 1 GiB: -ENOMEM, nothing reserved. */
	{"mmap: MAP_HUGETLB larger than the pool", c_mmap, MF_ANON, 0, 1UL << 30,
	 MMAP_ARGS(PRIV_ANON | MAP_HUGETLB, RW), -ENOMEM},
	{"mmap: MAP_HUGETLB|MAP_SHARED larger than the pool", c_mmap, MF_ANON, 0, 1UL << 30,
	 MMAP_ARGS(MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, RW), -ENOMEM},
};

Test(badinput, mmap_file_and_hugetlb)
{
	RUN_CALLS(mmap_file_rows);
}

/* ---- uhmm/gup.h ---- */

enum gup_call { G_REMOTE, G_REMOTE_NO_PAGES, G_REMOTE_LOCKED0, G_PIN_REMOTE, G_PIN_REMOTE_NO_PAGES, G_FAST, G_FAST_NO_PAGES, G_PIN_FAST, G_FAST_ONLY, G_VMA_REMOTE };

#define GUP_MAX 8

/*
 * One GUP call: @a = which, @b = address (0: the pfnmap VMA, 1: the mixed one),
 * @c = nr_pages, @d = gup_flags.  Whatever it takes is given back (a
 * positive return) so that the snapshot compares the world as it was.
 */
static long c_gup(struct world *w, const struct call_row *row)
{
	struct page *pages[GUP_MAX];
	unsigned long addr = row->b == 0 ? w->pfnmap : row->b == 1 ? w->mixed : row->b;
	unsigned int flags = (unsigned int)row->d;
	int locked = 0;
	long ret = 0;
	bool pin = row->a == G_PIN_REMOTE || row->a == G_PIN_FAST;

	cr_assert((long)row->c <= GUP_MAX);
	for (int i = 0; i < GUP_MAX; i++)
		pages[i] = (struct page *)0x5a;
	switch ((enum gup_call)row->a) {
	case G_REMOTE:
	case G_REMOTE_NO_PAGES:
	case G_REMOTE_LOCKED0:
		mmap_read_lock(w->mm);
		ret = get_user_pages_remote(w->mm, addr, row->c, flags,
					    row->a == G_REMOTE_NO_PAGES ? NULL : pages,
					    row->a == G_REMOTE_LOCKED0 ? &locked : NULL);
		mmap_read_unlock(w->mm);
		break;
	case G_PIN_REMOTE:
	case G_PIN_REMOTE_NO_PAGES:
		mmap_read_lock(w->mm);
		ret = pin_user_pages_remote(w->mm, addr, row->c, flags,
					    row->a == G_PIN_REMOTE_NO_PAGES ? NULL : pages, NULL);
		mmap_read_unlock(w->mm);
		break;
	case G_FAST:
	case G_FAST_NO_PAGES:
		ret = get_user_pages_fast(w->mm, addr, (int)row->c, flags,
					  row->a == G_FAST_NO_PAGES ? NULL : pages);
		break;
	case G_PIN_FAST:
		ret = pin_user_pages_fast(w->mm, addr, (int)row->c, flags, pages);
		break;
	case G_FAST_ONLY:
		ret = get_user_pages_fast_only(w->mm, addr, (int)row->c, flags, pages);
		break;
	case G_VMA_REMOTE: {
		struct vm_area_struct *vma = (struct vm_area_struct *)0x5a;
		struct page *page;

		mmap_read_lock(w->mm);
		page = get_user_page_vma_remote(w->mm, addr, flags, &vma);
		mmap_read_unlock(w->mm);
		if (!IS_ERR_OR_NULL(page)) {
			if (!is_zero_pfn(page_to_pfn(page)))
				put_page(page);
			return 1;
		}
		cr_expect_eq(vma, (struct vm_area_struct *)0x5a, "*vmap written on an error");
		return PTR_ERR(page);
	}
	}
	for (long i = 0; i < ret; i++) {
		if (pin)
			unpin_user_page(pages[i]);
		else if (!is_zero_pfn(page_to_pfn(pages[i])))
			put_page(pages[i]);
	}
	if (ret <= 0)
		for (int i = 0; i < GUP_MAX; i++)
			cr_expect_eq(pages[i], (struct page *)0x5a, "pages[%d] written on an error", i);
	return ret;
}

static const struct call_row gup_rows[] = {
	/* is_valid_gup_args(): internal flags, FOLL_GET|FOLL_PIN, LONGTERM without PIN... -EINVAL. */
	{"gup_remote: FOLL_PIN from the caller", c_gup, G_REMOTE, AT(0), 1, FOLL_PIN, -EINVAL},
	{"gup_remote: FOLL_FAST_ONLY from the caller", c_gup, G_REMOTE, AT(0), 1, FOLL_FAST_ONLY,
	 -EINVAL},
	{"gup_remote: FOLL_GET|FOLL_PIN", c_gup, G_REMOTE, AT(0), 1, FOLL_GET | FOLL_PIN, -EINVAL},
	{"gup_remote: FOLL_LONGTERM without a pin", c_gup, G_REMOTE, AT(0), 1, FOLL_LONGTERM,
	 -EINVAL},
	{"gup_remote: FOLL_GET with NULL pages", c_gup, G_REMOTE_NO_PAGES, AT(0), 1, FOLL_GET,
	 -EINVAL},
	{"gup_remote: *locked 0", c_gup, G_REMOTE_LOCKED0, AT(0), 1, 0, -EINVAL},
	{"gup_remote: an undefined flag bit", c_gup, G_REMOTE, AT(0), 1, 0x40000000, -EINVAL},
	{"gup_remote: nr_pages 0 in a hole", c_gup, G_REMOTE, AT(12), 0, 0, 0},
	/* check_vma_flags() and the walk: -EFAULT at the first page. */
	{"gup_remote: a hole", c_gup, G_REMOTE, AT(12), 2, 0, -EFAULT},
	{"gup_remote: a hole past the span", c_gup, G_REMOTE, AT(44), 1, 0, -EFAULT},
	{"gup_remote: PROT_NONE", c_gup, G_REMOTE, AT(16), 2, 0, -EFAULT},
	/* Linux lets this through (VM_MAYREAD); uhmm cannot yet, as gup.h says: -EFAULT. */
	{"gup_remote: FOLL_FORCE read of PROT_NONE", c_gup, G_REMOTE, AT(16), 1, FOLL_FORCE,
	 -EFAULT},
	{"gup_remote: write to read-only", c_gup, G_REMOTE, AT(8), 2, FOLL_WRITE, -EFAULT},
	{"gup_remote: VM_IO|VM_PFNMAP", c_gup, G_REMOTE, 0, 1, 0, -EFAULT},
	{"gup_remote: VM_IO|VM_PFNMAP, no pages", c_gup, G_REMOTE_NO_PAGES, 0, 1, 0, -EFAULT},
	{"gup_remote: FOLL_ANON on shmem", c_gup, G_REMOTE, AT(32), 1, FOLL_ANON, -EFAULT},
	{"gup_remote: FOLL_ANON on a file", c_gup, G_REMOTE, AT(40), 1, FOLL_ANON, -EFAULT},
	{"gup_remote: FOLL_NOFAULT on the untouched part", c_gup, G_REMOTE, AT(24), 1,
	 FOLL_NOFAULT, -EFAULT},
	{"gup_remote: FOLL_DUMP on the untouched part", c_gup, G_REMOTE, AT(24), 1, FOLL_DUMP,
	 -EFAULT},
	{"gup_remote: at TASK_SIZE", c_gup, G_REMOTE, TASK_SIZE, 1, 0, -EFAULT},
	/* pin_user_pages_remote(): Linux returns 0 for FOLL_GET; uhmm -EINVAL (gup.h). */
	{"pin_remote: FOLL_GET", c_gup, G_PIN_REMOTE, AT(0), 1, FOLL_GET, -EINVAL},
	{"pin_remote: FOLL_PIN from the caller", c_gup, G_PIN_REMOTE, AT(0), 1, FOLL_PIN, -EINVAL},
	{"pin_remote: NULL pages", c_gup, G_PIN_REMOTE_NO_PAGES, AT(0), 1, 0, -EINVAL},
	{"pin_remote: FOLL_LONGTERM|FOLL_PCI_P2PDMA", c_gup, G_PIN_REMOTE, AT(0), 1,
	 FOLL_LONGTERM | FOLL_PCI_P2PDMA, -EINVAL},
	{"pin_remote: a hole", c_gup, G_PIN_REMOTE, AT(20), 1, FOLL_LONGTERM, -EFAULT},
	{"pin_remote: VM_IO|VM_PFNMAP", c_gup, G_PIN_REMOTE, 0, 1, FOLL_LONGTERM, -EFAULT},
	{"pin_remote: write to read-only", c_gup, G_PIN_REMOTE, AT(8), 1, FOLL_WRITE, -EFAULT},
	/* gup_fast_fallback(): flags outside the fast set, wrap (-EOVERFLOW), past TASK_SIZE. */
	{"gup_fast: FOLL_DUMP", c_gup, G_FAST, AT(0), 1, FOLL_DUMP, -EINVAL},
	{"gup_fast: FOLL_ANON", c_gup, G_FAST, AT(0), 1, FOLL_ANON, -EINVAL},
	{"gup_fast: FOLL_PIN", c_gup, G_FAST, AT(0), 1, FOLL_PIN, -EINVAL},
	{"gup_fast: FOLL_LONGTERM", c_gup, G_FAST, AT(0), 1, FOLL_LONGTERM, -EINVAL},
	{"gup_fast: NULL pages", c_gup, G_FAST_NO_PAGES, AT(0), 1, 0, -EINVAL},
	{"gup_fast: wraps", c_gup, G_FAST, ~0UL & PAGE_MASK, 2, 0, -EOVERFLOW},
	{"gup_fast: ends past TASK_SIZE", c_gup, G_FAST, TASK_SIZE - P, 2, 0, -EFAULT},
	{"gup_fast: nr_pages -1 (wraps)", c_gup, G_FAST, AT(0), (unsigned long)-1L, 0, -EOVERFLOW},
	{"gup_fast: a hole", c_gup, G_FAST, AT(28), 1, 0, -EFAULT},
	{"gup_fast: VM_IO|VM_PFNMAP", c_gup, G_FAST, 0, 2, 0, -EFAULT},
	{"gup_fast: write to PROT_NONE", c_gup, G_FAST, AT(16), 1, FOLL_WRITE, -EFAULT},
	{"pin_fast: FOLL_GET", c_gup, G_PIN_FAST, AT(0), 1, FOLL_GET, -EINVAL},
	{"pin_fast: FOLL_LONGTERM|FOLL_PCI_P2PDMA", c_gup, G_PIN_FAST, AT(0), 1,
	 FOLL_LONGTERM | FOLL_PCI_P2PDMA, -EINVAL},
	{"pin_fast: wraps", c_gup, G_PIN_FAST, ~0UL & PAGE_MASK, 4, FOLL_LONGTERM, -EOVERFLOW},
	{"pin_fast: VM_IO|VM_PFNMAP", c_gup, G_PIN_FAST, 0, 1, FOLL_LONGTERM, -EFAULT},
	{"pin_fast: write to read-only", c_gup, G_PIN_FAST, AT(9), 1, FOLL_WRITE | FOLL_LONGTERM,
	 -EFAULT},
	/* The fast-only walk never faults and reports how far it got: 0 here. */
	{"gup_fast_only: the untouched part", c_gup, G_FAST_ONLY, AT(24), 2, 0, 0},
	{"gup_fast_only: a hole", c_gup, G_FAST_ONLY, AT(12), 1, 0, 0},
	{"gup_fast_only: write to read-only", c_gup, G_FAST_ONLY, AT(8), 1, FOLL_WRITE, 0},
	{"gup_fast_only: FOLL_PIN", c_gup, G_FAST_ONLY, AT(0), 1, FOLL_PIN, -EINVAL},
	{"gup_fast_only: wraps", c_gup, G_FAST_ONLY, ~0UL & PAGE_MASK, 2, 0, -EOVERFLOW},
	{"gup_vma_remote: a hole", c_gup, G_VMA_REMOTE, AT(12), 0, 0, -EFAULT},
	{"gup_vma_remote: VM_IO|VM_PFNMAP", c_gup, G_VMA_REMOTE, 0, 0, 0, -EFAULT},
	{"gup_vma_remote: FOLL_PIN", c_gup, G_VMA_REMOTE, AT(0), 0, FOLL_PIN, -EINVAL},
	{"gup_vma_remote: FOLL_LONGTERM", c_gup, G_VMA_REMOTE, AT(0), 0, FOLL_LONGTERM, -EINVAL},
};

Test(badinput, gup_h)
{
	RUN_CALLS(gup_rows);
}

/* ---- uhmm/fs.h ---- */

static void release_file(void *file)
{
	fput(file);
}

enum file_create { FC_MEMFD, FC_RAMFS };

/* uhmm_memfd_create()/uhmm_ramfs_create(@a, machine NULL if @b, name of @c bytes or NULL). */
static long c_file_create(struct world *w, const struct call_row *row)
{
	char name[MFD_NAME_MAX_LEN + 8];
	struct uhmm_machine *m = row->b ? NULL : machine;
	const char *n = row->c == ~0UL ? NULL : name;

	(void)w;
	cr_assert(row->c == ~0UL || row->c < sizeof(name));
	if (n) {
		memset(name, 'x', sizeof(name));
		name[row->c] = '\0';
	}
	if (row->a == FC_MEMFD)
		return ptr_result(uhmm_memfd_create(m, n), release_file);
	return ptr_result(uhmm_ramfs_create(m, n), release_file);
}

static long c_file_reopen(struct world *w, const struct call_row *row)
{
	return ptr_result(uhmm_file_reopen(row->a ? NULL : w->file, (int)row->b), release_file);
}

enum file_io { FIO_PREAD, FIO_PWRITE, FIO_FTRUNCATE, FIO_SIZE, FIO_NRPAGES, FIO_FOLIO };
enum file_which { FW_RW, FW_RO, FW_WO, FW_NULL };

#define IO_BUF (FILE_PAGES * PAGE_SIZE) /* a whole file: even a wrong read fits */

/* An I/O call on file @a (enum file_which): @b = op, @c = pos/length, @d = count (~0: NULL buffer). */
static long c_file_io(struct world *w, const struct call_row *row)
{
	struct file *f = row->a == FW_RW ? w->file : row->a == FW_RO ? w->file_ro : row->a == FW_WO ? w->file_wo : NULL;
	static uint8_t buf[IO_BUF];
	bool null_buf = row->d == ~0UL;
	size_t count = null_buf ? P : row->d;
	loff_t pos = (loff_t)row->c;
	long ret;

	memset(buf, 0xa5, sizeof(buf));
	switch ((enum file_io)row->b) {
	case FIO_PREAD:
		ret = uhmm_pread(f, null_buf ? NULL : buf, count, pos);
		if (ret <= 0)
			for (size_t i = 0; i < sizeof(buf); i++)
				if (buf[i] != 0xa5) {
					cr_expect_fail("failed pread wrote byte %zu", i);
					break;
				}
		return ret;
	case FIO_PWRITE:
		return uhmm_pwrite(f, null_buf ? NULL : buf, count, pos);
	case FIO_FTRUNCATE:
		return uhmm_ftruncate(f, pos);
	case FIO_SIZE:
		return uhmm_file_size(f);
	case FIO_NRPAGES:
		return (long)uhmm_file_nrpages(f);
	case FIO_FOLIO:
		return uhmm_file_folio(f, row->c) != NULL;
	}
	cr_assert_fail("bad row");
	return 0;
}

#define LLMAX 0x7fffffffffffffffUL
#define LLMIN 0x8000000000000000UL

static const struct call_row file_rows[] = {
	/* memfd_create(2): strncpy_from_user of a NULL name faults; too long is -EINVAL. */
	{"memfd_create: NULL name", c_file_create, FC_MEMFD, 0, ~0UL, 0, -EFAULT},
	{"memfd_create: name of 250 bytes", c_file_create, FC_MEMFD, 0, MFD_NAME_MAX_LEN + 1, 0,
	 -EINVAL},
	{"memfd_create: name of 249 bytes works", c_file_create, FC_MEMFD, 0, MFD_NAME_MAX_LEN, 0,
	 0},
	{"memfd_create: NULL machine", c_file_create, FC_MEMFD, 1, 4, 0, -EINVAL},
	{"ramfs_create: NULL name", c_file_create, FC_RAMFS, 0, ~0UL, 0, -EFAULT},
	{"ramfs_create: name of 250 bytes", c_file_create, FC_RAMFS, 0, MFD_NAME_MAX_LEN + 1, 0,
	 -EINVAL},
	{"ramfs_create: NULL machine", c_file_create, FC_RAMFS, 1, 4, 0, -EINVAL},
	{"file_reopen: NULL file", c_file_reopen, 1, O_RDWR, 0, 0, -EBADF},
	{"file_reopen: O_ACCMODE (3)", c_file_reopen, 0, O_ACCMODE, 0, 0, -EINVAL},
	{"file_reopen: O_CREAT", c_file_reopen, 0, O_RDWR | O_CREAT, 0, 0, -EINVAL},
	{"file_reopen: O_TRUNC", c_file_reopen, 0, O_RDWR | O_TRUNC, 0, 0, -EINVAL},
	{"file_reopen: -1", c_file_reopen, 0, ~0UL, 0, 0, -EINVAL},
	/* ksys_pread64(): "if (pos < 0) return -EINVAL" before the fd is looked at. */
	{"pread: negative pos", c_file_io, FW_RW, FIO_PREAD, ~0UL, P, -EINVAL},
	{"pread: pos LLONG_MIN", c_file_io, FW_RW, FIO_PREAD, LLMIN, P, -EINVAL},
	{"pread: negative pos on an O_WRONLY file", c_file_io, FW_WO, FIO_PREAD, ~0UL, P, -EINVAL},
	{"pread: O_WRONLY file", c_file_io, FW_WO, FIO_PREAD, 0, P, -EBADF},
	{"pread: NULL file", c_file_io, FW_NULL, FIO_PREAD, 0, P, -EBADF},
	{"pread: NULL buffer", c_file_io, FW_RW, FIO_PREAD, 0, ~0UL, -EFAULT},
	/* Nothing to copy past the end: Linux returns 0 without touching the buffer. */
	{"pread: NULL buffer past the end of the file", c_file_io, FW_RW, FIO_PREAD, 100 * P, ~0UL,
	 0},
	/* rw_verify_area(): pos + count past LLONG_MAX is -EINVAL. */
	{"pread: pos + count overflows loff_t", c_file_io, FW_RW, FIO_PREAD, LLMAX - 10, 100,
	 -EINVAL},
	/* vfs_read(): access_ok(buf, count) fails for a count the address space cannot hold. */
	{"pread: count ~0", c_file_io, FW_RW, FIO_PREAD, 0, ~0UL - 1, -EFAULT},
	{"pread: count LLONG_MAX + 1", c_file_io, FW_RW, FIO_PREAD, 0, LLMIN, -EFAULT},
	{"pread: count 0 on an O_WRONLY file", c_file_io, FW_WO, FIO_PREAD, 0, 0, -EBADF},
	{"pwrite: negative pos", c_file_io, FW_RW, FIO_PWRITE, ~0UL, P, -EINVAL},
	{"pwrite: negative pos on an O_RDONLY file", c_file_io, FW_RO, FIO_PWRITE, ~0UL, P,
	 -EINVAL},
	{"pwrite: O_RDONLY file", c_file_io, FW_RO, FIO_PWRITE, 0, P, -EBADF},
	{"pwrite: NULL file", c_file_io, FW_NULL, FIO_PWRITE, 0, P, -EBADF},
	{"pwrite: NULL buffer", c_file_io, FW_RW, FIO_PWRITE, 0, ~0UL, -EFAULT},
	{"pwrite: NULL buffer past the end of the file", c_file_io, FW_RW, FIO_PWRITE, 100 * P,
	 ~0UL, -EFAULT},
	{"pwrite: pos + count overflows loff_t", c_file_io, FW_RW, FIO_PWRITE, LLMAX - 10, 100,
	 -EINVAL},
	{"pwrite: pos LLONG_MAX", c_file_io, FW_RW, FIO_PWRITE, LLMAX, 1, -EINVAL},
	{"pwrite: count ~0", c_file_io, FW_RW, FIO_PWRITE, 0, ~0UL - 1, -EFAULT},
	{"pwrite: count 0 at a negative pos", c_file_io, FW_RW, FIO_PWRITE, ~0UL, 0, -EINVAL},
	{"pwrite: count 0 on an O_RDONLY file", c_file_io, FW_RO, FIO_PWRITE, 0, 0, -EBADF},
	{"ftruncate: -1", c_file_io, FW_RW, FIO_FTRUNCATE, ~0UL, 0, -EINVAL},
	{"ftruncate: LLONG_MIN", c_file_io, FW_RW, FIO_FTRUNCATE, LLMIN, 0, -EINVAL},
	/* do_ftruncate(): a file not open for writing is -EINVAL, not -EBADF. */
	{"ftruncate: O_RDONLY file", c_file_io, FW_RO, FIO_FTRUNCATE, 0, 0, -EINVAL},
	{"ftruncate: O_RDONLY file, same size", c_file_io, FW_RO, FIO_FTRUNCATE, FILE_PAGES * P, 0,
	 -EINVAL},
	{"ftruncate: NULL file", c_file_io, FW_NULL, FIO_FTRUNCATE, 0, 0, -EBADF},
	{"file_size: NULL file", c_file_io, FW_NULL, FIO_SIZE, 0, 0, -EBADF},
	{"file_nrpages: NULL file", c_file_io, FW_NULL, FIO_NRPAGES, 0, 0, 0},
	{"file_folio: NULL file", c_file_io, FW_NULL, FIO_FOLIO, 0, 0, 0},
	{"file_folio: index ~0", c_file_io, FW_RW, FIO_FOLIO, ~0UL, 0, 0},
	{"file_folio: index past the end", c_file_io, FW_RW, FIO_FOLIO, FILE_PAGES, 0, 0},
};

Test(badinput, fs_h)
{
	RUN_CALLS(file_rows);
}

/* ---- uhmm/hugetlb.h, and the mapping calls on hugetlb, shmem and file VMAs ---- */

static long c_hugetlb_stats(struct world *w, const struct call_row *row)
{
	struct hugetlb_stats st;

	(void)w;
	return uhmm_hugetlb_stats(row->a ? NULL : machine, row->b ? NULL : &st);
}

/*
 * vm.nr_hugepages beyond RAM is not an error in Linux: the pool grows as
 * far as the buddy allocator gives 2 MiB blocks and the write succeeds.
 * The row checks the size reached is what RAM allows, then writes the old
 * size back, so the snapshot sees the world as it was.
 */
static long c_set_nr_hugepages(struct world *w, const struct call_row *row)
{
	struct hugetlb_stats st;
	long reached;

	(void)w;
	if (row->a)
		return uhmm_hugetlb_set_nr_hugepages(NULL, row->b);
	cr_assert_eq(uhmm_hugetlb_stats(machine, &st), 0);
	reached = uhmm_hugetlb_set_nr_hugepages(machine, row->b);
	cr_expect_gt(reached, (long)st.nr_hugepages, "the pool did not grow");
	cr_expect_leq((unsigned long)reached * HPAGE_PMD_NR, uhmm_totalram_pages(machine));
	cr_expect_eq(uhmm_hugetlb_set_nr_hugepages(machine, st.nr_hugepages),
		     (long)st.nr_hugepages);
	return 0;
}

static long c_set_overcommit_null(struct world *w, const struct call_row *row)
{
	(void)w;
	uhmm_hugetlb_set_nr_overcommit_hugepages(NULL, row->a);
	return 0;
}

enum vma_call { VC_MUNMAP, VC_MPROTECT, VC_MADVISE, VC_MREMAP };

/* @a = call, @b = addr, @c = len, @d = prot / advice / new_len (mremap, MREMAP_MAYMOVE). */
static long c_vma(struct world *w, const struct call_row *row)
{
	unsigned long addr = row->b ? row->b : w->pfnmap; /* 0: the VM_PFNMAP VMA */

	switch ((enum vma_call)row->a) {
	case VC_MUNMAP:
		return mm_munmap(w->mm, addr, row->c);
	case VC_MPROTECT:
		return mm_mprotect(w->mm, addr, row->c, (int)row->d);
	case VC_MADVISE:
		return mm_madvise(w->mm, addr, row->c, (int)row->d);
	case VC_MREMAP:
		return mm_mremap(w->mm, addr, row->c, row->d, MREMAP_MAYMOVE, 0);
	}
	cr_assert_fail("bad row");
	return 0;
}

#define HB(off) (HBASE + (off))

static const struct call_row hugetlb_rows[] = {
	{"hugetlb_stats: NULL machine", c_hugetlb_stats, 1, 0, 0, 0, -EINVAL},
	{"hugetlb_stats: NULL out", c_hugetlb_stats, 0, 1, 0, 0, -EINVAL},
	{"set_nr_hugepages: ~0 (beyond RAM: grows as far as it can)", c_set_nr_hugepages, 0, ~0UL,
	 0, 0, 0},
	{"set_nr_hugepages: 2^40 (beyond RAM)", c_set_nr_hugepages, 0, 1UL << 40, 0, 0, 0},
	{"set_nr_hugepages: NULL machine", c_set_nr_hugepages, 1, 4, 0, 0, -EINVAL},
	{"set_nr_overcommit_hugepages: NULL machine ignored", c_set_overcommit_null, 4, 0, 0, 0, 0},
	/* hugetlb_split(): a VMA of 2 MiB pages cannot be split off a 2 MiB boundary. */
	{"munmap: a 4 KiB page of the hugetlb VMA", c_vma, VC_MUNMAP, HB(P), P, 0, -EINVAL},
	{"munmap: the hugetlb VMA's first 4 KiB", c_vma, VC_MUNMAP, HB(0), P, 0, -EINVAL},
	{"mprotect: the hugetlb VMA's first 4 KiB", c_vma, VC_MPROTECT, HB(0), P, PROT_READ,
	 -EINVAL},
	{"mprotect: a 4 KiB page inside the hugetlb VMA", c_vma, VC_MPROTECT, HB(64 * P), P,
	 PROT_READ, -EINVAL},
	/* madvise_dontneed_free_valid_vma(): a hugetlb start off a 2 MiB boundary is -EINVAL. */
	{"madvise: DONTNEED at a 4 KiB offset of hugetlb", c_vma, VC_MADVISE, HB(P), P,
	 MADV_DONTNEED, -EINVAL},
	/* madvise_free_single_vma(): MADV_FREE only on anonymous VMAs. */
	{"madvise: MADV_FREE on hugetlb", c_vma, VC_MADVISE, HB(0), PMD_SIZE, MADV_FREE,
	 -EINVAL},
	{"madvise: MADV_FREE on shmem", c_vma, VC_MADVISE, AT(32), 4 * P, MADV_FREE, -EINVAL},
	{"madvise: MADV_FREE on a file", c_vma, VC_MADVISE, AT(40), 4 * P, MADV_FREE, -EINVAL},
	/* madvise_remove(): a private mapping is -EACCES; anonymous memory has no file: -EINVAL. */
	{"madvise: MADV_REMOVE on private anonymous memory", c_vma, VC_MADVISE, AT(0), 4 * P,
	 MADV_REMOVE, -EINVAL},
	{"madvise: MADV_REMOVE on a read-only private part", c_vma, VC_MADVISE, AT(8), 4 * P,
	 MADV_REMOVE, -EINVAL},
	{"madvise: MADV_COLLAPSE on shmem", c_vma, VC_MADVISE, AT(32), 4 * P, MADV_COLLAPSE,
	 -EINVAL},
	{"madvise: MADV_COLLAPSE on a file", c_vma, VC_MADVISE, AT(40), 4 * P, MADV_COLLAPSE,
	 -EINVAL},
	/* mremap of hugetlb: a huge-page aligned address, and no growing (-EINVAL). */
	{"mremap: hugetlb at a 4 KiB offset", c_vma, VC_MREMAP, HB(P), P, 2 * P, -EINVAL},
	{"mremap: grow hugetlb to 4 MiB", c_vma, VC_MREMAP, HB(0), PMD_SIZE, 2 * PMD_SIZE,
	 -EINVAL},
	{"mremap: grow hugetlb by 4 KiB (rounds to 4 MiB)", c_vma, VC_MREMAP, HB(0), PMD_SIZE,
	 PMD_SIZE + P, -EINVAL},
	/* vma_to_resize(): no VMA, or the old range leaves its VMA: -EFAULT. */
	{"mremap: a hole", c_vma, VC_MREMAP, AT(12), P, 2 * P, -EFAULT},
	{"mremap: from RW over into RO", c_vma, VC_MREMAP, AT(6), 4 * P, 8 * P, -EFAULT},
	/* (An unresized or shrunk range is not checked against its VMA: Linux returns addr.) */
	{"mremap: grow PROT_NONE from past its end", c_vma, VC_MREMAP, AT(16), 8 * P, 12 * P,
	 -EFAULT},
	/* VM_DONTEXPAND (device VMAs) cannot grow: -EFAULT. */
	{"mremap: grow the VM_PFNMAP device VMA", c_vma, VC_MREMAP, 0, 2 * P, 4 * P, -EFAULT},
};

Test(badinput, hugetlb_h)
{
	RUN_CALLS(hugetlb_rows);
}

/* ---- uhmm/mm.h: mm_mmap_device() and vm_insert_page() ---- */

enum insert_bad {
	VI_NONE,
	VI_PAST_END,
	VI_BELOW_START,
	VI_UNALIGNED,
	VI_FREE_PAGE,
	VI_ANON_PAGE,
	VI_PAGECACHE_PAGE,
	VI_LARGE_FOLIO,
	VI_ZERO_PAGE,
	VI_PFNMAP,
	VI_TWICE,
	VI_DRIVER_ERROR,
};

struct insert_case {
	struct world *w;
	struct page *anon; /* a page of AT(0), looked up before mmap_lock is taken */
	enum insert_bad bad;
	int ret; /* what vm_insert_page() returned */
};

/* A driver mmap that makes one bad vm_insert_page() and fails with its error. */
static int bad_insert_mmap(struct vm_area_struct *vma, void *priv)
{
	struct insert_case *ic = priv;
	unsigned long addr = vma->vm_start;
	struct folio *large = NULL;
	struct page *page = alloc_pages(machine, __GFP_ZERO, 0);
	struct page *own = page;
	int refs;

	cr_assert_not_null(page);
	switch (ic->bad) {
	case VI_NONE:
	case VI_TWICE:
		break;
	case VI_DRIVER_ERROR:
		__free_pages(page, 0);
		return -EIO;
	case VI_PAST_END:
		addr = vma->vm_end;
		break;
	case VI_BELOW_START:
		addr = vma->vm_start - P;
		break;
	case VI_UNALIGNED:
		addr = vma->vm_start + 8;
		break;
	case VI_FREE_PAGE:
		/* A page nobody holds: its refcount is 0. */
		page = alloc_pages(machine, 0, 0);
		__free_pages(page, 0);
		break;
	case VI_ANON_PAGE:
		page = ic->anon;
		break;
	case VI_PAGECACHE_PAGE:
		page = folio_page(uhmm_file_folio(ic->w->file, 0), 0);
		break;
	case VI_LARGE_FOLIO:
		large = folio_alloc(machine, __GFP_COMP | __GFP_ZERO, 2);
		cr_assert_not_null(large);
		page = folio_page(large, 0);
		break;
	case VI_ZERO_PAGE:
		page = pfn_to_page(uhmm_zero_pfn(machine));
		break;
	case VI_PFNMAP:
		vma->vm_flags |= VM_PFNMAP | VM_IO;
		break;
	}
	refs = page_ref_count(page);
	if (ic->bad == VI_TWICE) {
		cr_assert_eq(vm_insert_page(vma, addr, page), 0);
		refs = page_ref_count(page);
	}
	ic->ret = vm_insert_page(vma, addr, page);
	cr_expect_eq(page_ref_count(page), refs, "vm_insert_page changed the refcount");
	if (large)
		folio_put(large);
	__free_pages(own, 0); /* the PTE holds its own reference where one was made */
	return ic->ret ? ic->ret : -EIO;
}

/* vm_insert_page() of bad case @a: the mmap fails with what it returned, and is undone. */
static long c_vm_insert_page(struct world *w, const struct call_row *row)
{
	struct insert_case ic = {
		.w = w,
		.anon = pfn_to_page(pfn_at(w->mm, AT(0))),
		.bad = (enum insert_bad)row->a,
		.ret = 1,
	};
	int before = w->drv.invalidations;
	long ret = mm_mmap_device(w->mm, 0, 2 * P, RW, MAP_SHARED, bad_insert_mmap, &ic);

	/*
	 * The failed mmap's unmap_region() tells the notifiers of the new
	 * range, as in Linux: one invalidation that changes nothing.
	 */
	pthread_mutex_lock(&w->drv.lock);
	cr_expect_eq(w->drv.invalidations, before + 1, "%d invalidations of the failed mmap",
		     w->drv.invalidations - before);
	w->drv.invalidations = before;
	pthread_mutex_unlock(&w->drv.lock);
	if (ic.bad != VI_DRIVER_ERROR)
		cr_expect_eq(ret, ic.ret, "mm_mmap_device returned %ld, the driver %d", ret, ic.ret);
	return ret;
}

/* mm_mmap_device(@b = addr, @c = len, @d = flags), with @a = 1 for no driver mmap. */
static long c_mmap_device(struct world *w, const struct call_row *row)
{
	long ret = mm_mmap_device(w->mm, row->b, row->c, RW, (int)row->d,
				  row->a ? NULL : pfnmap_mmap, NULL);

	if (ret > 0 || ret < -4095) {
		cr_expect_eq(mm_munmap(w->mm, (unsigned long)ret, row->c), 0);
		return 0;
	}
	return ret;
}

static const struct call_row device_map_rows[] = {
	/* do_mmap(): a file without ->mmap is -ENODEV. */
	{"mmap_device: no driver mmap", c_mmap_device, 1, 0, P, MAP_SHARED, -ENODEV},
	{"mmap_device: length 0", c_mmap_device, 0, 0, 0, MAP_SHARED, -EINVAL},
	{"mmap_device: length ~0", c_mmap_device, 0, 0, ~0UL, MAP_SHARED, -ENOMEM},
	{"mmap_device: no sharing type", c_mmap_device, 0, 0, P, 0, -EINVAL},
	/* uhmm only: a device mapping cannot be anonymous (Linux would ignore the fd). */
	{"mmap_device: MAP_ANONYMOUS", c_mmap_device, 0, 0, P, MAP_SHARED | MAP_ANONYMOUS, -EINVAL},
	{"mmap_device: MAP_FIXED unaligned", c_mmap_device, 0, AT(12) + 8, P,
	 MAP_SHARED | MAP_FIXED, -EINVAL},
	{"mmap_device: MAP_FIXED past TASK_SIZE", c_mmap_device, 0, TASK_SIZE - P, 2 * P,
	 MAP_SHARED | MAP_FIXED, -ENOMEM},
	{"mmap_device: MAP_FIXED_NOREPLACE over data", c_mmap_device, 0, AT(0), 4 * P,
	 MAP_SHARED | MAP_FIXED_NOREPLACE, -EEXIST},
	{"mmap_device: the driver fails", c_vm_insert_page, VI_DRIVER_ERROR, 0, 0, 0, -EIO},
	/* insert_page(): outside the VMA is -EFAULT. */
	{"vm_insert_page: at vm_end", c_vm_insert_page, VI_PAST_END, 0, 0, 0, -EFAULT},
	{"vm_insert_page: below vm_start", c_vm_insert_page, VI_BELOW_START, 0, 0, 0, -EFAULT},
	/* uhmm only: Linux maps the page at an unaligned address's page; uhmm wants it aligned. */
	{"vm_insert_page: unaligned address", c_vm_insert_page, VI_UNALIGNED, 0, 0, 0, -EFAULT},
	/* validate_page_before_insert(): no reference, anonymous or the zero page: -EINVAL. */
	{"vm_insert_page: a free page", c_vm_insert_page, VI_FREE_PAGE, 0, 0, 0, -EINVAL},
	{"vm_insert_page: an anonymous page", c_vm_insert_page, VI_ANON_PAGE, 0, 0, 0, -EINVAL},
	{"vm_insert_page: the zero page", c_vm_insert_page, VI_ZERO_PAGE, 0, 0, 0, -EINVAL},
	/* uhmm only (vm_insert_page's kernel-doc): page-cache pages and large folios. */
	{"vm_insert_page: a page-cache page", c_vm_insert_page, VI_PAGECACHE_PAGE, 0, 0, 0,
	 -EINVAL},
	{"vm_insert_page: a large folio", c_vm_insert_page, VI_LARGE_FOLIO, 0, 0, 0, -EINVAL},
	/* Linux: BUG_ON(vma->vm_flags & VM_PFNMAP); uhmm: -EINVAL. */
	{"vm_insert_page: a VM_PFNMAP VMA", c_vm_insert_page, VI_PFNMAP, 0, 0, 0, -EINVAL},
	/* insert_page_into_pte_locked(): a PTE already there is -EBUSY. */
	{"vm_insert_page: twice at one address", c_vm_insert_page, VI_TWICE, 0, 0, 0, -EBUSY},
};

Test(badinput, device_mmap)
{
	RUN_CALLS(device_map_rows);
}

/* ---- uhmm/memremap.h and uhmm/migrate.h (the device side) ---- */

enum remap_call { RC_NULL_PGMAP, RC_NULL_MACHINE, RC_UNMAP_TWICE, RC_UNMAP_NEVER_MAPPED, RC_UNMAP_NULL, RC_UNMAP_BUSY, RC_RELEASE_NULL, RC_RELEASE_MAPPED };

/* A fresh, valid device-private pgmap over a new 128 MiB region. */
static struct resource *fresh_pgmap(struct dev_pagemap *pm)
{
	struct resource *r = request_free_mem_region(128UL << 20, "badinput2");

	cr_assert(!IS_ERR_OR_NULL(r));
	memset(pm, 0, sizeof(*pm));
	pm->type = MEMORY_DEVICE_PRIVATE;
	pm->ops = &t_ops;
	pm->owner = &owner_cookie;
	pm->range.start = r->start;
	pm->range.end = r->end;
	pm->nr_range = 1;
	return r;
}

static long c_remap(struct world *w, const struct call_row *row)
{
	struct dev_pagemap pm;
	struct resource *r;
	long ret = 0;

	(void)w;
	switch ((enum remap_call)row->a) {
	case RC_NULL_PGMAP:
		return PTR_ERR(memremap_pages(NULL, machine));
	case RC_NULL_MACHINE:
		r = fresh_pgmap(&pm);
		ret = PTR_ERR(memremap_pages(&pm, NULL));
		release_mem_region(r);
		return ret;
	case RC_UNMAP_TWICE:
		r = fresh_pgmap(&pm);
		cr_assert(!IS_ERR_OR_NULL(memremap_pages(&pm, machine)));
		memunmap_pages(&pm);
		memunmap_pages(&pm); /* warns, changes nothing */
		cr_expect_null(pm.priv);
		release_mem_region(r);
		return 0;
	case RC_UNMAP_NEVER_MAPPED:
		r = fresh_pgmap(&pm);
		memunmap_pages(&pm);
		release_mem_region(r);
		return 0;
	case RC_UNMAP_NULL:
		memunmap_pages(NULL);
		return 0;
	case RC_UNMAP_BUSY: {
		/* A page still in use: the range stays mapped, nothing is freed under it. */
		r = fresh_pgmap(&pm);
		cr_assert(!IS_ERR_OR_NULL(memremap_pages(&pm, machine)));
		struct page *page = pfn_to_page((unsigned long)(pm.range.start >> PAGE_SHIFT));
		zone_device_page_init(page);
		memunmap_pages(&pm);
		cr_expect_not_null(pm.priv, "a busy range was unmapped");
		cr_expect_eq(page_ref_count(page), 1);
		folio_unlock(page_folio(page));
		put_page(page); /* folio_free: one call */
		nr_folio_free--;
		memunmap_pages(&pm);
		cr_expect_null(pm.priv);
		release_mem_region(r);
		return 0;
	}
	case RC_RELEASE_NULL:
		release_mem_region(NULL);
		return 0;
	case RC_RELEASE_MAPPED:
		/* release_mem_region() of a range still memremapped warns and keeps it. */
		r = fresh_pgmap(&pm);
		cr_assert(!IS_ERR_OR_NULL(memremap_pages(&pm, machine)));
		release_mem_region(r);
		cr_expect(pfn_valid((unsigned long)(pm.range.start >> PAGE_SHIFT)));
		memunmap_pages(&pm);
		release_mem_region(r);
		return 0;
	}
	cr_assert_fail("bad row");
	return 0;
}

enum devmig_pfns { DM_NO_PAGE, DM_FREE_DEVICE, DM_RESERVED_UNMAPPED, DM_FREE_RAM, DM_NONE, DM_PFNS_MIXED };

#define DM_N 4

/* migrate_device_range()/_pfns() of pfns it cannot collect: every entry 0, then the protocol ends. */
static long c_devmig(struct world *w, const struct call_row *row)
{
	unsigned long src[DM_N], dst[DM_N] = {0};
	unsigned long start = 0, npages = DM_N;
	struct resource *r = NULL;
	int ret;

	(void)w;
	for (int i = 0; i < DM_N; i++)
		src[i] = 0x5a;
	switch ((enum devmig_pfns)row->a) {
	case DM_NO_PAGE:
		start = 1UL << 50;
		break;
	case DM_FREE_DEVICE:
		start = (unsigned long)(pgmap.range.start >> PAGE_SHIFT) + 16;
		break;
	case DM_RESERVED_UNMAPPED:
		r = request_free_mem_region(128UL << 20, "reserved");
		cr_assert(!IS_ERR_OR_NULL(r));
		start = (unsigned long)(r->start >> PAGE_SHIFT);
		break;
	case DM_FREE_RAM: {
		struct page *page = alloc_pages(machine, 0, 0);
		cr_assert_not_null(page);
		start = page_to_pfn(page);
		__free_pages(page, 0);
		npages = 1;
		break;
	}
	case DM_NONE:
		npages = 0;
		break;
	case DM_PFNS_MIXED:
		src[0] = ~0UL;
		src[1] = 1UL << 45;
		src[2] = (unsigned long)(pgmap.range.start >> PAGE_SHIFT);
		src[3] = (unsigned long)(pgmap.range.end >> PAGE_SHIFT);
		break;
	}
	if (row->a == DM_PFNS_MIXED)
		ret = migrate_device_pfns(src, npages);
	else
		ret = migrate_device_range(src, start, npages);
	for (unsigned long i = 0; i < npages; i++)
		cr_expect_eq(src[i], 0UL, "src[%lu] = %#lx: a pfn was collected", i, src[i]);
	for (unsigned long i = npages; i < DM_N; i++)
		cr_expect_eq(src[i], 0x5aUL, "src[%lu] written past npages", i);
	migrate_device_pages(src, dst, npages);
	migrate_device_finalize(src, dst, npages);
	if (r)
		release_mem_region(r);
	return ret;
}

static const struct call_row remap_call_rows[] = {
	/* uhmm only: Linux oopses on a NULL pgmap; memremap_pages() documents -EINVAL. */
	{"memremap_pages: NULL pgmap", c_remap, RC_NULL_PGMAP, 0, 0, 0, -EINVAL},
	{"memremap_pages: NULL machine", c_remap, RC_NULL_MACHINE, 0, 0, 0, -EINVAL},
	/* Linux's memunmap_pages() twice is a use-after-free; uhmm warns and does nothing. */
	{"memunmap_pages: twice", c_remap, RC_UNMAP_TWICE, 0, 0, 0, 0},
	{"memunmap_pages: never memremapped", c_remap, RC_UNMAP_NEVER_MAPPED, 0, 0, 0, 0},
	{"memunmap_pages: NULL", c_remap, RC_UNMAP_NULL, 0, 0, 0, 0},
	{"memunmap_pages: a page still in use", c_remap, RC_UNMAP_BUSY, 0, 0, 0, 0},
	{"release_mem_region: NULL", c_remap, RC_RELEASE_NULL, 0, 0, 0, 0},
	{"release_mem_region: still memremapped", c_remap, RC_RELEASE_MAPPED, 0, 0, 0, 0},
	{"migrate_device_range: pfns without pages", c_devmig, DM_NO_PAGE, 0, 0, 0, 0},
	{"migrate_device_range: free device pages", c_devmig, DM_FREE_DEVICE, 0, 0, 0, 0},
	{"migrate_device_range: reserved, never memremapped", c_devmig, DM_RESERVED_UNMAPPED, 0, 0,
	 0, 0},
	{"migrate_device_range: a free RAM page", c_devmig, DM_FREE_RAM, 0, 0, 0, 0},
	{"migrate_device_range: npages 0", c_devmig, DM_NONE, 0, 0, 0, 0},
	{"migrate_device_pfns: invalid and free pfns", c_devmig, DM_PFNS_MIXED, 0, 0, 0, 0},
};

Test(badinput, memremap_and_migrate_device)
{
	remap_private();
	RUN_CALLS(remap_call_rows);
}

/* ---- uhmm/mmu_notifier.h and uhmm/hmm.h ---- */

enum notif_call { NC_REMOVE_NEVER, NC_REMOVE_TWICE, NC_REMOVE_NULL, NC_INSERT_NULL_SUB };

static long c_notifier(struct world *w, const struct call_row *row)
{
	struct mmu_interval_notifier sub;
	long ret = 0;

	memset(&sub, 0, sizeof(sub));
	switch ((enum notif_call)row->a) {
	case NC_REMOVE_NEVER:
		mmu_interval_notifier_remove(&sub);
		break;
	case NC_REMOVE_TWICE:
		cr_assert_eq(mmu_interval_notifier_insert(&sub, w->mm, AT(0), 4 * P, &drv_ops), 0);
		mmu_interval_notifier_remove(&sub);
		mmu_interval_notifier_remove(&sub);
		break;
	case NC_REMOVE_NULL:
		mmu_interval_notifier_remove(NULL);
		break;
	case NC_INSERT_NULL_SUB:
		ret = mmu_interval_notifier_insert(NULL, w->mm, AT(0), P, &drv_ops);
		break;
	}
	/* The world's interval still sees one invalidation per change. */
	pthread_mutex_lock(&w->drv.lock);
	int before = w->drv.invalidations;
	pthread_mutex_unlock(&w->drv.lock);
	cr_expect_eq(mm_madvise(w->mm, AT(24), 4 * P, MADV_DONTNEED), 0);
	pthread_mutex_lock(&w->drv.lock);
	cr_expect_eq(w->drv.invalidations, before + 1);
	w->drv.invalidations = before;
	pthread_mutex_unlock(&w->drv.lock);
	return ret;
}

enum hmm_bad { HB_NULL_RANGE, HB_NULL_NOTIFIER, HB_NULL_PFNS, HB_REMOVED_NOTIFIER, HB_PFNMAP_REQ, HB_PFNMAP_NOREQ, HB_PAST_TASK_SIZE, HB_MASK_REQ_HOLE };

static long c_hmm(struct world *w, const struct call_row *row)
{
	unsigned long pfns[2] = {0, 0};
	struct mmu_interval_notifier removed;
	struct hmm_range range = {
		.notifier = &w->drv.sub,
		.start = AT(0),
		.end = AT(2),
		.hmm_pfns = pfns,
		.default_flags = HMM_PFN_REQ_FAULT,
	};
	long ret;

	memset(&removed, 0, sizeof(removed));
	switch ((enum hmm_bad)row->a) {
	case HB_NULL_RANGE:
		return hmm_range_fault(NULL);
	case HB_NULL_NOTIFIER:
		range.notifier = NULL;
		break;
	case HB_NULL_PFNS:
		range.hmm_pfns = NULL;
		break;
	case HB_REMOVED_NOTIFIER:
		cr_assert_eq(mmu_interval_notifier_insert(&removed, w->mm, AT(0), P, &drv_ops), 0);
		mmu_interval_notifier_remove(&removed);
		range.notifier = &removed;
		break;
	case HB_PFNMAP_REQ:
	case HB_PFNMAP_NOREQ:
		range.start = w->pfnmap;
		range.end = w->pfnmap + 2 * P;
		if (row->a == HB_PFNMAP_NOREQ)
			range.default_flags = 0;
		break;
	case HB_PAST_TASK_SIZE:
		range.start = TASK_SIZE;
		range.end = TASK_SIZE + 2 * P;
		break;
	case HB_MASK_REQ_HOLE:
		/* No default request; the per-entry input asks for a fault in a hole. */
		range.start = AT(12);
		range.end = AT(14);
		range.default_flags = 0;
		range.pfn_flags_mask = HMM_PFN_REQ_FAULT;
		pfns[1] = HMM_PFN_REQ_FAULT;
		break;
	}
	if (range.notifier && range.notifier->mm)
		range.notifier_seq = mmu_interval_read_begin(range.notifier);
	mmap_read_lock(w->mm);
	ret = hmm_range_fault(&range);
	mmap_read_unlock(w->mm);
	if (row->a == HB_PFNMAP_NOREQ)
		for (int i = 0; i < 2; i++)
			cr_expect_eq(pfns[i], HMM_PFN_ERROR, "pfns[%d] = %#lx", i, pfns[i]);
	return ret;
}

static const struct call_row notifier_hmm_rows[] = {
	/* uhmm only: Linux oopses on these; uhmm leaves everything alone. */
	{"notifier_remove: never inserted", c_notifier, NC_REMOVE_NEVER, 0, 0, 0, 0},
	{"notifier_remove: twice", c_notifier, NC_REMOVE_TWICE, 0, 0, 0, 0},
	{"notifier_remove: NULL", c_notifier, NC_REMOVE_NULL, 0, 0, 0, 0},
	{"notifier_insert: NULL interval", c_notifier, NC_INSERT_NULL_SUB, 0, 0, 0, -EINVAL},
	{"hmm_range_fault: NULL range", c_hmm, HB_NULL_RANGE, 0, 0, 0, -EINVAL},
	{"hmm_range_fault: NULL notifier", c_hmm, HB_NULL_NOTIFIER, 0, 0, 0, -EINVAL},
	{"hmm_range_fault: NULL hmm_pfns", c_hmm, HB_NULL_PFNS, 0, 0, 0, -EINVAL},
	{"hmm_range_fault: a removed notifier", c_hmm, HB_REMOVED_NOTIFIER, 0, 0, 0, -EINVAL},
	/* hmm_vma_walk_test(): VM_IO|VM_PFNMAP is -EFAULT when a fault is asked for... */
	{"hmm_range_fault: VM_PFNMAP, fault requested", c_hmm, HB_PFNMAP_REQ, 0, 0, 0, -EFAULT},
	/* ...and HMM_PFN_ERROR entries otherwise. */
	{"hmm_range_fault: VM_PFNMAP, no request", c_hmm, HB_PFNMAP_NOREQ, 0, 0, 0, 0},
	{"hmm_range_fault: past TASK_SIZE, fault requested", c_hmm, HB_PAST_TASK_SIZE, 0, 0, 0,
	 -EFAULT},
	{"hmm_range_fault: a per-entry request in a hole", c_hmm, HB_MASK_REQ_HOLE, 0, 0, 0,
	 -EFAULT},
};

Test(badinput, notifier_and_hmm)
{
	RUN_CALLS(notifier_hmm_rows);
}

/* ---- uhmm/dmirror.h: a closed device, and the module calls ---- */

enum dm_bad {
	DB_IOCTL_CLOSED,
	DB_MMAP_CLOSED,
	DB_RELEASE_CLOSED,
	DB_IOCTL_NULL,
	DB_IOCTL_NULL_CMD,
	DB_MMAP_NULL,
	DB_MMAP_LEN0,
	DB_MMAP_NOREPLACE,
	DB_EXIT_BUSY,
	DB_EXIT_NULL,
	DB_INIT_NULL,
	DB_OPEN_NULL_MOD,
	DB_OPEN_NULL_MM,
	DB_STATS_MINOR,
	DB_STATS_NULL,
	DB_FAIL_MINOR,
	DB_FAIL_NULL_MOD,
	DB_FAIL_COUNT_MINOR,
	DB_AUDIT_NULL,
};

static void release_module(void *m)
{
	cr_expect_eq(dmirror_module_exit(m), 0);
}

static long c_dmirror(struct world *w, const struct call_row *row)
{
	struct hmm_dmirror_cmd cmd = {.addr = AT(0), .npages = 1};
	struct fault_attr always = {.probability = 100, .times = -1};
	struct dmirror_stats st;
	struct dmirror *closed = NULL;
	uint8_t buf[P];

	cmd.ptr = (uint64_t)(uintptr_t)buf;
	if (row->a <= DB_RELEASE_CLOSED) {
		/* A handle that was open and has been released: a closed fd. */
		closed = dmirror_open(mod, 1, w->mm);
		cr_assert(!IS_ERR_OR_NULL(closed));
		dmirror_release(closed);
	}
	switch ((enum dm_bad)row->a) {
	case DB_IOCTL_CLOSED:
		return dmirror_ioctl(closed, row->b, &cmd);
	case DB_MMAP_CLOSED:
		return dmirror_mmap(closed, 0, P, RW, MAP_SHARED);
	case DB_RELEASE_CLOSED:
		dmirror_release(closed);
		return 0;
	case DB_IOCTL_NULL:
		return dmirror_ioctl(NULL, HMM_DMIRROR_READ, &cmd);
	case DB_IOCTL_NULL_CMD:
		return dmirror_ioctl(w->dmirror, HMM_DMIRROR_READ, NULL);
	case DB_MMAP_NULL:
		return dmirror_mmap(NULL, 0, P, RW, MAP_SHARED);
	case DB_MMAP_LEN0:
		return dmirror_mmap(w->dmirror, 0, 0, RW, MAP_SHARED);
	case DB_MMAP_NOREPLACE:
		return dmirror_mmap(w->dmirror, AT(0), P, RW, MAP_SHARED | MAP_FIXED_NOREPLACE);
	case DB_EXIT_BUSY:
		return dmirror_module_exit(mod);
	case DB_EXIT_NULL:
		return dmirror_module_exit(NULL);
	case DB_INIT_NULL:
		return ptr_result(dmirror_module_init(NULL), release_module);
	case DB_OPEN_NULL_MOD:
		return PTR_ERR(dmirror_open(NULL, 0, w->mm));
	case DB_OPEN_NULL_MM:
		return PTR_ERR(dmirror_open(mod, 0, NULL));
	case DB_STATS_MINOR:
		return dmirror_device_stats(mod, (unsigned int)row->b, &st);
	case DB_STATS_NULL:
		return dmirror_device_stats(mod, 0, NULL);
	case DB_FAIL_MINOR:
		return dmirror_fail_devmem_alloc(mod, (unsigned int)row->b, &always);
	case DB_FAIL_NULL_MOD:
		return dmirror_fail_devmem_alloc(NULL, 0, &always);
	case DB_FAIL_COUNT_MINOR:
		return (long)dmirror_fail_devmem_alloc_count(mod, (unsigned int)row->b);
	case DB_AUDIT_NULL:
		return dmirror_audit(NULL, NULL);
	}
	cr_assert_fail("bad row");
	return 0;
}

static const struct call_row dmirror_rows[] = {
	/* A released mirror is a closed fd: ioctl(2)/mmap(2) say -EBADF, close(2) does nothing. */
	{"ioctl READ on a closed device", c_dmirror, DB_IOCTL_CLOSED, HMM_DMIRROR_READ, 0, 0,
	 -EBADF},
	{"ioctl MIGRATE_TO_DEV on a closed device", c_dmirror, DB_IOCTL_CLOSED,
	 HMM_DMIRROR_MIGRATE_TO_DEV, 0, 0, -EBADF},
	{"ioctl RELEASE on a closed device", c_dmirror, DB_IOCTL_CLOSED, HMM_DMIRROR_RELEASE, 0, 0,
	 -EBADF},
	{"mmap of a closed device", c_dmirror, DB_MMAP_CLOSED, 0, 0, 0, -EBADF},
	{"release of a closed device", c_dmirror, DB_RELEASE_CLOSED, 0, 0, 0, 0},
	{"ioctl on NULL", c_dmirror, DB_IOCTL_NULL, 0, 0, 0, -EBADF},
	/* copy_from_user() of the command faults. */
	{"ioctl with a NULL command", c_dmirror, DB_IOCTL_NULL_CMD, 0, 0, 0, -EFAULT},
	{"mmap of NULL", c_dmirror, DB_MMAP_NULL, 0, 0, 0, -EBADF},
	{"mmap length 0", c_dmirror, DB_MMAP_LEN0, 0, 0, 0, -EINVAL},
	{"mmap MAP_FIXED_NOREPLACE over data", c_dmirror, DB_MMAP_NOREPLACE, 0, 0, 0, -EEXIST},
	/* rmmod of a module in use: -EBUSY (delete_module's refcount check), nothing done. */
	{"module_exit while a device is open", c_dmirror, DB_EXIT_BUSY, 0, 0, 0, -EBUSY},
	{"module_exit NULL", c_dmirror, DB_EXIT_NULL, 0, 0, 0, -EINVAL},
	{"module_init NULL machine", c_dmirror, DB_INIT_NULL, 0, 0, 0, -EINVAL},
	{"open NULL module", c_dmirror, DB_OPEN_NULL_MOD, 0, 0, 0, -ENODEV},
	{"open NULL mm", c_dmirror, DB_OPEN_NULL_MM, 0, 0, 0, -ENODEV},
	{"device_stats minor 4", c_dmirror, DB_STATS_MINOR, DMIRROR_NDEVICES, 0, 0, -ENODEV},
	{"device_stats minor ~0", c_dmirror, DB_STATS_MINOR, ~0U, 0, 0, -ENODEV},
	{"device_stats NULL out", c_dmirror, DB_STATS_NULL, 0, 0, 0, -EINVAL},
	{"fail_devmem_alloc minor 4", c_dmirror, DB_FAIL_MINOR, DMIRROR_NDEVICES, 0, 0, -ENODEV},
	{"fail_devmem_alloc minor ~0", c_dmirror, DB_FAIL_MINOR, ~0U, 0, 0, -ENODEV},
	{"fail_devmem_alloc NULL module", c_dmirror, DB_FAIL_NULL_MOD, 0, 0, 0, -ENODEV},
	{"fail_devmem_alloc_count minor 4", c_dmirror, DB_FAIL_COUNT_MINOR, DMIRROR_NDEVICES, 0, 0,
	 0},
	/* A missing module reports itself as one violation. */
	{"audit NULL module", c_dmirror, DB_AUDIT_NULL, 0, 0, 0, 1},
};

Test(badinput, dmirror_h)
{
	RUN_CALLS(dmirror_rows);
}
