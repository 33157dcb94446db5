/* SPDX-License-Identifier: MIT */
/*
 * tests/test_migrate.c - migrate_vma_setup/pages/finalize and
 * migrate_device_range/pfns/pages/finalize (mm/migrate_device.c), driven by
 * a small test driver defined here: its own dev_pagemap (device-private or
 * coherent), a free list of device pfns, migrate_to_ram() through
 * migrate_vma with fault_page, and copies with memcpy through
 * page_address().  Every test ends with the audit and the leak check.
 */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "uhmm/gup.h"
#include "uhmm/memremap.h"
#include "uhmm/migrate.h"
#include "uhmm/mmu_notifier.h"

#define DEV_SIZE (128UL << 20)
#define DEV_PAGES 1024UL /* pages the driver hands out */
#define NPG 1024

/* ---- the test driver ---- */

struct tdev {
	struct resource *res;
	struct dev_pagemap pgmap;
	pthread_mutex_t lock;
	unsigned long first_pfn;
	unsigned long free_pfns[DEV_PAGES];
	unsigned long nr_free;
	atomic_int nr_folio_free;
	atomic_int nr_migrate_to_ram;
	atomic_int fail_to_ram; /* migrate_to_ram() refuses (VM_FAULT_SIGBUS) */
	atomic_int bad_free;    /* folio_free() of a folio with references */
};

static struct tdev devs[2];

static struct tdev *page_tdev(const struct page *page)
{
	return container_of(page_pgmap(page), struct tdev, pgmap);
}

static void t_folio_free(struct folio *folio)
{
	struct tdev *d = page_tdev(folio_head(folio));

	if (folio_ref_count(folio) != 0 || folio_test_locked(folio))
		atomic_fetch_add(&d->bad_free, 1); /* checked from the test thread */
	pthread_mutex_lock(&d->lock);
	d->free_pfns[d->nr_free++] = folio_pfn(folio);
	pthread_mutex_unlock(&d->lock);
	atomic_fetch_add(&d->nr_folio_free, 1);
}

/* A locked device page with one reference, or NULL when none is free. */
static struct page *tdev_alloc(struct tdev *d)
{
	struct page *page = NULL;

	pthread_mutex_lock(&d->lock);
	if (d->nr_free)
		page = pfn_to_page(d->free_pfns[--d->nr_free]);
	pthread_mutex_unlock(&d->lock);
	if (page)
		zone_device_page_init(page);
	return page;
}

/* A locked system-RAM page with one reference, or NULL. */
static struct page *ram_alloc(void)
{
	struct folio *folio = folio_alloc(machine, GFP_HIGHUSER_MOVABLE, 0);

	if (!folio)
		return NULL;
	folio_lock(folio);
	return folio_head(folio);
}

/* Copy (or clear, for a hole) every MIGRATE entry of src into a new page. */
static void copy_entries(unsigned long *src, unsigned long *dst, unsigned long npages,
			 struct tdev *to)
{
	for (unsigned long i = 0; i < npages; i++) {
		struct page *spage = migrate_pfn_to_page(src[i]);
		struct page *dpage;

		dst[i] = 0;
		if (!(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		dpage = to ? tdev_alloc(to) : ram_alloc();
		if (!dpage)
			continue; /* allocation failure: the entry does not migrate */
		if (spage)
			memcpy(page_address(dpage), page_address(spage), PAGE_SIZE);
		else
			memset(page_address(dpage), 0, PAGE_SIZE);
		dst[i] = migrate_pfn(page_to_pfn(dpage)) | (src[i] & MIGRATE_PFN_WRITE);
	}
}

static vm_fault_t t_migrate_to_ram(struct vm_fault *vmf)
{
	struct tdev *d = page_tdev(vmf->page);
	unsigned long src = 0, dst = 0;
	struct migrate_vma args = {
		.vma = vmf->vma, .src = &src, .dst = &dst, .start = vmf->address,
		.end = vmf->address + PAGE_SIZE, .pgmap_owner = d,
		.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE, .fault_page = vmf->page,
	};

	atomic_fetch_add(&d->nr_migrate_to_ram, 1);
	if (atomic_load(&d->fail_to_ram))
		return VM_FAULT_SIGBUS;
	if (migrate_vma_setup(&args))
		return VM_FAULT_SIGBUS;
	if (args.cpages) {
		copy_entries(&src, &dst, 1, NULL);
		migrate_vma_pages(&args);
		migrate_vma_finalize(&args);
	}
	return 0;
}

static const struct dev_pagemap_ops t_ops = {
	.folio_free = t_folio_free,
	.migrate_to_ram = t_migrate_to_ram,
};

static void tdev_create(struct tdev *d, enum memory_type type)
{
	void *bytes;

	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	d->res = request_free_mem_region(DEV_SIZE, "test_migrate");
	cr_assert(!IS_ERR_OR_NULL(d->res));
	d->pgmap.type = type;
	d->pgmap.ops = &t_ops;
	d->pgmap.owner = d;
	d->pgmap.range.start = d->res->start;
	d->pgmap.range.end = d->res->end;
	d->pgmap.nr_range = 1;
	bytes = memremap_pages(&d->pgmap, machine);
	cr_assert(!IS_ERR_OR_NULL(bytes));
	d->first_pfn = (unsigned long)(d->res->start >> PAGE_SHIFT);
	for (unsigned long i = 0; i < DEV_PAGES; i++)
		d->free_pfns[i] = d->first_pfn + DEV_PAGES - 1 - i;
	d->nr_free = DEV_PAGES;
}

static void tdev_destroy(struct tdev *d)
{
	if (!d->res)
		return;
	cr_assert_eq(d->nr_free, DEV_PAGES, "device pages still in use: %lu", DEV_PAGES - d->nr_free);
	cr_assert_eq(atomic_load(&d->bad_free), 0);
	memunmap_pages(&d->pgmap);
	release_mem_region(d->res);
	pthread_mutex_destroy(&d->lock);
	d->res = NULL;
}

static void setup(void)
{
	machine_setup();
	memset(devs, 0, sizeof(devs));
}

static void teardown(void)
{
	tdev_destroy(&devs[0]);
	tdev_destroy(&devs[1]);
	machine_teardown();
}

TestSuite(migrate, .init = setup, .fini = teardown);

/* ---- helpers ---- */

struct mig {
	struct migrate_vma args;
	unsigned long src[NPG];
	unsigned long dst[NPG];
};

/* mmap_read_lock and migrate_vma_setup() of [start, start + npages pages). */
static int mig_setup(struct mig *m, struct mm_struct *mm, unsigned long start,
		     unsigned long npages, unsigned long flags, void *owner)
{
	int ret;

	memset(m, 0, sizeof(*m));
	mmap_read_lock(mm);
	m->args.vma = vma_lookup(mm, start);
	m->args.start = start;
	m->args.end = start + npages * PAGE_SIZE;
	m->args.src = m->src;
	m->args.dst = m->dst;
	m->args.flags = flags;
	m->args.pgmap_owner = owner;
	ret = migrate_vma_setup(&m->args);
	if (ret)
		mmap_read_unlock(mm);
	return ret;
}

/* migrate_vma_pages() and migrate_vma_finalize(), then mmap_read_unlock. */
static void mig_finish(struct mig *m)
{
	struct mm_struct *mm = m->args.vma->vm_mm;

	migrate_vma_pages(&m->args);
	migrate_vma_finalize(&m->args);
	mmap_read_unlock(mm);
}

/* A whole migration of a range into @to (NULL: system RAM).  Return: cpages. */
static unsigned long migrate_range(struct mm_struct *mm, unsigned long start, unsigned long npages,
				   unsigned long flags, void *owner, struct tdev *to, struct mig *m)
{
	cr_assert_eq(mig_setup(m, mm, start, npages, flags, owner), 0);
	copy_entries(m->src, m->dst, m->args.npages, to);
	mig_finish(m);
	return m->args.cpages;
}

static unsigned long to_dev(struct mm_struct *mm, unsigned long start, unsigned long npages,
			    struct tdev *d, struct mig *m)
{
	return migrate_range(mm, start, npages, MIGRATE_VMA_SELECT_SYSTEM, d, d, m);
}

static unsigned long to_ram(struct mm_struct *mm, unsigned long start, unsigned long npages,
			    struct tdev *d, struct mig *m)
{
	return migrate_range(mm, start, npages, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, d, NULL, m);
}

/* The raw PTE at @addr (0 when there is no table). */
static pte_t read_pte(struct mm_struct *mm, unsigned long addr)
{
	pmd_t *pmd = pmd_off(mm, addr);
	pthread_mutex_t *ptl;
	pte_t *ptep, pte;

	if (!pmd || pmd_none(pmdp_get(pmd)) || pmd_leaf(pmdp_get(pmd)))
		return __pte(0);
	ptep = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!ptep)
		return __pte(0);
	pte = ptep_get(ptep);
	spin_unlock(ptl);
	return pte;
}

/* The device page a device-private entry at @addr points to (asserts there is one). */
static struct page *dev_page_at(struct mm_struct *mm, unsigned long addr)
{
	pte_t pte = read_pte(mm, addr);
	swp_entry_t entry;

	cr_assert(is_swap_pte(pte), "no swap entry at %#lx: %#llx", addr,
		  (unsigned long long)pte_val(pte));
	entry = pte_to_swp_entry(pte);
	cr_assert(is_device_private_entry(entry), "not a device-private entry at %#lx", addr);
	return pfn_to_page(swp_offset_pfn(entry));
}

static bool is_ram_pfn(unsigned long pfn)
{
	return pfn_valid(pfn) && !is_zone_device_page(pfn_to_page(pfn)) && !is_zero_pfn(pfn);
}

/* Assert the page at @addr is a present RAM page mapped once, referenced once. */
static void assert_ram_page(struct mm_struct *mm, unsigned long addr)
{
	pte_t pte = read_pte(mm, addr);
	struct page *page;

	cr_assert(pte_present(pte), "addr %#lx not present: %#llx", addr,
		  (unsigned long long)pte_val(pte));
	cr_assert(is_ram_pfn(pte_pfn(pte)), "addr %#lx maps pfn %#lx, not RAM", addr, pte_pfn(pte));
	page = pfn_to_page(pte_pfn(pte));
	cr_assert_eq(page_mapcount(page), 1);
	cr_assert_eq(folio_ref_count(page_folio(page)), 1);
	cr_assert(PageAnonExclusive(page));
}

/* Assert the entry at @addr is a device-private page of @d, mapped once. */
static void assert_dev_page(struct mm_struct *mm, unsigned long addr, struct tdev *d)
{
	struct page *page = dev_page_at(mm, addr);

	cr_assert_eq(page_pgmap(page), &d->pgmap);
	cr_assert_eq(page_mapcount(page), 1);
	cr_assert_eq(folio_ref_count(page_folio(page)), 1);
	cr_assert_not(folio_test_locked(page_folio(page)));
	cr_assert(folio_test_anon(page_folio(page)));
}

/* A private anonymous read-write mapping of @len bytes. */
static unsigned long map_rw(struct mm_struct *mm, unsigned long len)
{
	return map_anon(mm, 0, len, PROT_READ | PROT_WRITE, 0);
}

/* Fill @npages pages from @addr with a pattern, faulting them in. */
static void populate(struct mm_struct *mm, unsigned long addr, unsigned long npages, uint32_t seed)
{
	fill_pattern(mm, addr, npages * PAGE_SIZE, seed);
}

/* ---- argument checks ---- */

/* ARGS() below overrides the defaults it starts from. */
#pragma GCC diagnostic ignored "-Woverride-init"

Test(migrate, setup_einval)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 16 * PAGE_SIZE);
	unsigned long src[16], dst[16];
	struct migrate_vma args;
	struct vm_area_struct *vma;
	struct page *ram;

	populate(mm, addr, 16, 1);
	tdev_create(&devs[0], MEMORY_DEVICE_PRIVATE);
	mmap_read_lock(mm);
	vma = vma_lookup(mm, addr);
	ram = pfn_to_page(pfn_at(mm, addr));
#define ARGS(...)                                                                      \
	(args = (struct migrate_vma){ .vma = vma, .src = src, .dst = dst, .start = addr,   \
				      .end = addr + 16 * PAGE_SIZE,                      \
				      .flags = MIGRATE_VMA_SELECT_SYSTEM, __VA_ARGS__ },  \
	 memset(src, 0xaa, sizeof(src)), migrate_vma_setup(&args))
	cr_assert_eq(ARGS(.vma = NULL), -EINVAL);
	cr_assert_eq(ARGS(.start = addr + PAGE_SIZE, .end = addr + PAGE_SIZE), -EINVAL);
	cr_assert_eq(ARGS(.start = addr + 2 * PAGE_SIZE, .end = addr + PAGE_SIZE), -EINVAL);
	cr_assert_eq(ARGS(.start = addr + PAGE_SIZE, .end = addr + PAGE_SIZE + 100), -EINVAL);
	cr_assert_eq(ARGS(.start = addr - PAGE_SIZE), -EINVAL);
	cr_assert_eq(ARGS(.end = addr + 17 * PAGE_SIZE), -EINVAL);
	cr_assert_eq(ARGS(.start = addr + 16 * PAGE_SIZE, .end = addr + 17 * PAGE_SIZE), -EINVAL);
	cr_assert_eq(ARGS(.src = NULL), -EINVAL);
	cr_assert_eq(ARGS(.dst = NULL), -EINVAL);
	/* fault_page: a RAM page, then an unlocked device-private page. */
	cr_assert_eq(ARGS(.fault_page = ram), -EINVAL);
	cr_assert_eq(ARGS(.fault_page = pfn_to_page(devs[0].first_pfn)), -EINVAL);
	/* VM_SPECIAL and hugetlb VMAs. */
	{
		unsigned long saved = vma->vm_flags;
		unsigned long bad[] = { VM_IO, VM_PFNMAP, VM_MIXEDMAP, VM_DONTEXPAND, VM_HUGETLB };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			vma->vm_flags = saved | bad[i];
			cr_assert_eq(ARGS(), -EINVAL, "vm_flags %#lx", bad[i]);
		}
		vma->vm_flags = saved;
	}
	/* Nothing was touched: src untouched, the pages still mapped. */
	for (int i = 0; i < 16; i++)
		cr_assert_eq(src[i], 0xaaaaaaaaaaaaaaaaUL);
	/* An unaligned start is rounded down, as Linux does. */
	cr_assert_eq(ARGS(.start = addr + 100, .end = addr + PAGE_SIZE + 100), 0);
	cr_assert_eq(args.start, addr);
	cr_assert_eq(args.end, addr + PAGE_SIZE);
	cr_assert_eq(args.npages, 1);
	cr_assert_eq(args.cpages, 1);
	cr_assert_eq(src[0], migrate_pfn(page_to_pfn(ram)) | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE);
	cr_assert_eq(src[1], 0xaaaaaaaaaaaaaaaaUL);
	migrate_vma_pages(&args); /* dst 0: nothing migrates */
	cr_assert_eq(src[0] & MIGRATE_PFN_MIGRATE, 0);
	migrate_vma_finalize(&args);
#undef ARGS
	mmap_read_unlock(mm);
	cr_assert_eq(pfn_at(mm, addr), page_to_pfn(ram));
	check_pattern(mm, addr, 16 * PAGE_SIZE, 1);
	assert_ram_page(mm, addr);
	mmput(mm);
}

/* ---- system RAM to system RAM ---- */

Test(migrate, ram_to_ram)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 64 * PAGE_SIZE);
	unsigned long old[64];
	unsigned long nfree;
	static struct mig m;

	populate(mm, addr, 64, 7);
	for (int i = 0; i < 64; i++)
		old[i] = pfn_at(mm, addr + i * PAGE_SIZE);
	nfree = uhmm_nr_free_pages(machine);

	cr_assert_eq(mig_setup(&m, mm, addr, 64, MIGRATE_VMA_SELECT_SYSTEM, NULL), 0);
	cr_assert_eq(m.args.npages, 64);
	cr_assert_eq(m.args.cpages, 64);
	for (int i = 0; i < 64; i++) {
		struct page *page = pfn_to_page(old[i]);
		pte_t pte = read_pte(mm, addr + i * PAGE_SIZE);

		cr_assert_eq(m.src[i], migrate_pfn(old[i]) | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE);
		cr_assert_eq(m.dst[i], 0);
		/* Locked, unmapped, held by the migration only; a writable migration entry. */
		cr_assert(folio_test_locked(page_folio(page)));
		cr_assert_eq(page_mapcount(page), 0);
		cr_assert_eq(folio_ref_count(page_folio(page)), 1);
		cr_assert(is_swap_pte(pte));
		cr_assert(is_writable_migration_entry(pte_to_swp_entry(pte)));
		cr_assert_eq(swp_offset_pfn(pte_to_swp_entry(pte)), old[i]);
	}
	/* RSS still counts the pages under migration. */
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 64);
	copy_entries(m.src, m.dst, 64, NULL);
	mig_finish(&m);

	for (int i = 0; i < 64; i++) {
		cr_assert(m.src[i] & MIGRATE_PFN_MIGRATE);
		cr_assert_neq(pfn_at(mm, addr + i * PAGE_SIZE), old[i]);
		cr_assert_eq(pfn_at(mm, addr + i * PAGE_SIZE), m.dst[i] >> MIGRATE_PFN_SHIFT);
		assert_ram_page(mm, addr + i * PAGE_SIZE);
		cr_assert(pte_write(read_pte(mm, addr + i * PAGE_SIZE)));
		/* Dirty (through the folio) and soft-dirty survive the migration entry. */
		cr_assert(pte_dirty(read_pte(mm, addr + i * PAGE_SIZE)));
		cr_assert(pagemap(mm, addr + i * PAGE_SIZE) & PM_SOFT_DIRTY);
	}
	/* The old pages were freed: as many pages free as before. */
	cr_assert_eq(uhmm_nr_free_pages(machine), nfree);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 64);
	check_pattern(mm, addr, 64 * PAGE_SIZE, 7);
	assert_audit_clean();
	mmput(mm);
}

Test(migrate, select_flags)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 8 * PAGE_SIZE);
	static struct mig m;

	populate(mm, addr, 8, 3);
	/* No SELECT_SYSTEM: RAM pages are not collected (holes would be). */
	cr_assert_eq(mig_setup(&m, mm, addr, 8, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, NULL), 0);
	cr_assert_eq(m.args.npages, 8);
	cr_assert_eq(m.args.cpages, 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(m.src[i], 0);
	mig_finish(&m);
	check_pattern(mm, addr, 8 * PAGE_SIZE, 3);
	for (int i = 0; i < 8; i++)
		assert_ram_page(mm, addr + i * PAGE_SIZE);
	mmput(mm);
}

/* ---- holes and the zero page ---- */

Test(migrate, holes_and_zero_page_to_ram)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 8 * PAGE_SIZE);
	static struct mig m;
	char buf[16];

	/* Pages 0-1 empty (no table yet for 0..7 until we touch), 2-3 zero page, 4-5 data. */
	cr_assert_eq(cpu_read(mm, addr + 2 * PAGE_SIZE, buf, sizeof(buf)), 0);
	cr_assert_eq(cpu_read(mm, addr + 3 * PAGE_SIZE, buf, sizeof(buf)), 0);
	cr_assert(is_zero_pfn(pte_pfn(read_pte(mm, addr + 2 * PAGE_SIZE))));
	fill_at(mm, addr, 4 * PAGE_SIZE, 2 * PAGE_SIZE, 9);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 2);

	cr_assert_eq(mig_setup(&m, mm, addr, 8, MIGRATE_VMA_SELECT_SYSTEM, NULL), 0);
	cr_assert_eq(m.args.cpages, 8);
	for (int i = 0; i < 8; i++) {
		if (i == 4 || i == 5)
			cr_assert(m.src[i] & MIGRATE_PFN_VALID);
		else
			cr_assert_eq(m.src[i], MIGRATE_PFN_MIGRATE, "entry %d: %#lx", i, m.src[i]);
	}
	/* The zero page stays mapped during the migration. */
	cr_assert(is_zero_pfn(pte_pfn(read_pte(mm, addr + 2 * PAGE_SIZE))));
	copy_entries(m.src, m.dst, 8, NULL);
	mig_finish(&m);
	for (int i = 0; i < 8; i++) {
		cr_assert(m.src[i] & MIGRATE_PFN_MIGRATE, "entry %d did not migrate", i);
		assert_ram_page(mm, addr + i * PAGE_SIZE);
		cr_assert(pte_write(read_pte(mm, addr + i * PAGE_SIZE)));
	}
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 8);
	check_zero(mm, addr, 4 * PAGE_SIZE);
	check_at(mm, addr, 4 * PAGE_SIZE, 2 * PAGE_SIZE, 9);
	check_zero(mm, addr + 6 * PAGE_SIZE, 2 * PAGE_SIZE);
	mmput(mm);
}

Test(migrate, hole_filled_meanwhile_does_not_migrate)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 4 * PAGE_SIZE);
	static struct mig m;

	fill_at(mm, addr, 3 * PAGE_SIZE, PAGE_SIZE, 4); /* makes the PTE table */
	cr_assert_eq(mig_setup(&m, mm, addr, 4, MIGRATE_VMA_SELECT_SYSTEM, NULL), 0);
	cr_assert_eq(m.src[0], MIGRATE_PFN_MIGRATE);
	copy_entries(m.src, m.dst, 4, NULL);
	/* A fault fills page 0 between setup and pages (mmap_lock is shared). */
	fill_at(mm, addr, 0, PAGE_SIZE, 5);
	migrate_vma_pages(&m.args);
	cr_assert_eq(m.src[0] & MIGRATE_PFN_MIGRATE, 0);
	cr_assert(m.src[1] & MIGRATE_PFN_MIGRATE);
	migrate_vma_finalize(&m.args);
	mmap_read_unlock(mm);
	check_at(mm, addr, 0, PAGE_SIZE, 5);
	check_zero(mm, addr + PAGE_SIZE, 2 * PAGE_SIZE);
	check_at(mm, addr, 3 * PAGE_SIZE, PAGE_SIZE, 4);
	for (int i = 0; i < 4; i++)
		assert_ram_page(mm, addr + i * PAGE_SIZE);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 4);
	mmput(mm);
}

Test(migrate, file_vma_holes_not_collected)
{
	struct mm_struct *mm = new_mm();
	struct file *file = new_memfd();
	unsigned long addr;
	static struct mig m;

	cr_assert_eq(uhmm_ftruncate(file, 4 * PAGE_SIZE), 0);
	addr = map_file(mm, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0);
	fill_at(mm, addr, PAGE_SIZE, PAGE_SIZE, 6);
	tdev_create(&devs[0], MEMORY_DEVICE_PRIVATE);
	cr_assert_eq(mig_setup(&m, mm, addr, 4, MIGRATE_VMA_SELECT_SYSTEM, &devs[0]), 0);
	cr_assert_eq(m.src[0], 0);
	cr_assert_eq(m.src[2], 0);
	cr_assert_eq(m.src[3], 0);
	copy_entries(m.src, m.dst, 4, &devs[0]);
	mig_finish(&m);
	/* A page-cache page never goes to device-private memory. */
	cr_assert_eq(m.src[1] & MIGRATE_PFN_MIGRATE, 0);
	cr_assert(pte_present(read_pte(mm, addr + PAGE_SIZE)));
	check_at(mm, addr, PAGE_SIZE, PAGE_SIZE, 6);
	cr_assert_eq(devs[0].nr_free, DEV_PAGES);
	mmput(mm);
	fput(file);
}

/* ---- device-private round trips ---- */

Test(migrate, ram_to_device_private_and_back)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 32 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	unsigned long nfree;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 32, 11);
	nfree = uhmm_nr_free_pages(machine);
	cr_assert_eq(to_dev(mm, addr, 32, d, &m), 32);
	for (int i = 0; i < 32; i++) {
		cr_assert(m.src[i] & MIGRATE_PFN_MIGRATE);
		assert_dev_page(mm, addr + i * PAGE_SIZE, d);
		cr_assert(is_writable_device_private_entry(
			pte_to_swp_entry(read_pte(mm, addr + i * PAGE_SIZE))));
		cr_assert(PageAnonExclusive(dev_page_at(mm, addr + i * PAGE_SIZE)));
	}
	cr_assert_eq(d->nr_free, DEV_PAGES - 32);
	cr_assert_eq(uhmm_nr_free_pages(machine), nfree + 32);
	/* Device-private pages count as anonymous RSS, as in Linux. */
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 32);
	cr_assert(pagemap(mm, addr) & PM_SWAP);
	assert_audit_clean();

	/* Only the pages of the right owner are selected. */
	cr_assert_eq(mig_setup(&m, mm, addr, 32, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, &devs[1]), 0);
	cr_assert_eq(m.args.cpages, 0);
	mig_finish(&m);
	cr_assert_eq(mig_setup(&m, mm, addr, 32, MIGRATE_VMA_SELECT_SYSTEM, d), 0);
	cr_assert_eq(m.args.cpages, 0);
	mig_finish(&m);

	/* Driver-initiated migration back to RAM. */
	cr_assert_eq(to_ram(mm, addr, 32, d, &m), 32);
	for (int i = 0; i < 32; i++)
		assert_ram_page(mm, addr + i * PAGE_SIZE);
	cr_assert_eq(d->nr_free, DEV_PAGES);
	cr_assert_eq(atomic_load(&d->nr_folio_free), 32);
	cr_assert_eq(uhmm_nr_free_pages(machine), nfree);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 32);
	cr_assert_eq(atomic_load(&d->nr_migrate_to_ram), 0);
	check_pattern(mm, addr, 32 * PAGE_SIZE, 11);
	mmput(mm);
}

Test(migrate, cpu_fault_uses_migrate_to_ram_with_fault_page)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 8 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 8, 12);
	cr_assert_eq(to_dev(mm, addr, 8, d, &m), 8);
	/* A CPU read of page 3 faults it back through migrate_to_ram(). */
	check_at(mm, addr, 3 * PAGE_SIZE, PAGE_SIZE, 12);
	cr_assert_eq(atomic_load(&d->nr_migrate_to_ram), 1);
	assert_ram_page(mm, addr + 3 * PAGE_SIZE);
	cr_assert(pte_write(read_pte(mm, addr + 3 * PAGE_SIZE)));
	assert_dev_page(mm, addr + 2 * PAGE_SIZE, d);
	assert_dev_page(mm, addr + 4 * PAGE_SIZE, d);
	cr_assert_eq(d->nr_free, DEV_PAGES - 7);
	cr_assert_eq(atomic_load(&d->nr_folio_free), 1);
	assert_audit_clean();
	/* A write to the others brings each back. */
	for (int i = 0; i < 8; i++)
		fill_at(mm, addr, i * PAGE_SIZE, 64, 13);
	cr_assert_eq(atomic_load(&d->nr_migrate_to_ram), 8);
	cr_assert_eq(d->nr_free, DEV_PAGES);
	for (int i = 0; i < 8; i++) {
		assert_ram_page(mm, addr + i * PAGE_SIZE);
		check_at(mm, addr, i * PAGE_SIZE, 64, 13);
		check_at(mm, addr, i * PAGE_SIZE + 64, PAGE_SIZE - 64, 12);
	}
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 8);
	mmput(mm);
}

Test(migrate, holes_to_device_private)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 4 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	char buf[8];

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	cr_assert_eq(cpu_read(mm, addr + PAGE_SIZE, buf, sizeof(buf)), 0); /* zero page */
	cr_assert_eq(to_dev(mm, addr, 4, d, &m), 4);
	for (int i = 0; i < 4; i++)
		assert_dev_page(mm, addr + i * PAGE_SIZE, d);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 4);
	assert_audit_clean();
	check_zero(mm, addr, 4 * PAGE_SIZE);
	cr_assert_eq(atomic_load(&d->nr_migrate_to_ram), 4);
	cr_assert_eq(d->nr_free, DEV_PAGES);
	mmput(mm);
}

Test(migrate, munmap_frees_device_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 16 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 16, 14);
	cr_assert_eq(to_dev(mm, addr, 16, d, &m), 16);
	cr_assert_eq(mm_munmap(mm, addr, 8 * PAGE_SIZE), 0);
	cr_assert_eq(d->nr_free, DEV_PAGES - 8);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 8);
	mmput(mm);
	cr_assert_eq(d->nr_free, DEV_PAGES);
	cr_assert_eq(atomic_load(&d->nr_migrate_to_ram), 0);
}

/* ---- device-coherent memory ---- */

Test(migrate, ram_to_coherent_and_back)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 8 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;

	tdev_create(d, MEMORY_DEVICE_COHERENT);
	populate(mm, addr, 8, 15);
	cr_assert_eq(to_dev(mm, addr, 8, d, &m), 8);
	for (int i = 0; i < 8; i++) {
		pte_t pte = read_pte(mm, addr + i * PAGE_SIZE);
		struct page *page;

		cr_assert(pte_present(pte));
		page = pfn_to_page(pte_pfn(pte));
		cr_assert(is_device_coherent_page(page));
		cr_assert_eq(page_mapcount(page), 1);
		cr_assert_eq(folio_ref_count(page_folio(page)), 1);
	}
	assert_audit_clean();
	/* The CPU reads and writes coherent memory in place. */
	check_pattern(mm, addr, 8 * PAGE_SIZE, 15);
	fill_at(mm, addr, 0, 100, 16);
	cr_assert(is_device_coherent_page(pfn_to_page(pfn_at(mm, addr))));
	/* Only SELECT_DEVICE_COHERENT with the owner collects them. */
	cr_assert_eq(mig_setup(&m, mm, addr, 8, MIGRATE_VMA_SELECT_SYSTEM, d), 0);
	cr_assert_eq(m.args.cpages, 0);
	mig_finish(&m);
	cr_assert_eq(migrate_range(mm, addr, 8, MIGRATE_VMA_SELECT_DEVICE_COHERENT, &devs[1], NULL,
				   &m), 0);
	cr_assert_eq(migrate_range(mm, addr, 8, MIGRATE_VMA_SELECT_DEVICE_COHERENT, d, NULL, &m), 8);
	for (int i = 0; i < 8; i++)
		assert_ram_page(mm, addr + i * PAGE_SIZE);
	cr_assert_eq(d->nr_free, DEV_PAGES);
	check_at(mm, addr, 0, 100, 16);
	check_at(mm, addr, 100, 8 * PAGE_SIZE - 100, 15);
	mmput(mm);
}

/* ---- failure paths ---- */

Test(migrate, allocation_failure_restores)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 16 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	unsigned long old[16];

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 16, 17);
	for (int i = 0; i < 16; i++)
		old[i] = pfn_at(mm, addr + i * PAGE_SIZE);
	d->nr_free = 5; /* the device has 5 pages left */
	cr_assert_eq(to_dev(mm, addr, 16, d, &m), 16);
	for (int i = 0; i < 16; i++) {
		if (i < 5) {
			cr_assert(m.src[i] & MIGRATE_PFN_MIGRATE);
			assert_dev_page(mm, addr + i * PAGE_SIZE, d);
		} else {
			cr_assert_eq(m.dst[i], 0);
			cr_assert_eq(m.src[i] & MIGRATE_PFN_MIGRATE, 0);
			cr_assert_eq(pfn_at(mm, addr + i * PAGE_SIZE), old[i]);
			assert_ram_page(mm, addr + i * PAGE_SIZE);
			cr_assert(pte_write(read_pte(mm, addr + i * PAGE_SIZE)));
		}
	}
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 16);
	assert_audit_clean();
	check_pattern(mm, addr, 16 * PAGE_SIZE, 17);
	cr_assert_eq(d->nr_free, 5);
	d->nr_free = DEV_PAGES;
	mmput(mm);
}

Test(migrate, driver_refuses_some_pages)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 8 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 8, 18);
	cr_assert_eq(mig_setup(&m, mm, addr, 8, MIGRATE_VMA_SELECT_SYSTEM, d), 0);
	cr_assert_eq(m.args.cpages, 8);
	copy_entries(m.src, m.dst, 8, d);
	/* The driver changes its mind about the odd pages: it frees what it allocated. */
	for (int i = 1; i < 8; i += 2) {
		struct folio *folio = page_folio(migrate_pfn_to_page(m.dst[i]));

		m.dst[i] = 0;
		folio_unlock(folio);
		folio_put(folio);
	}
	mig_finish(&m);
	for (int i = 0; i < 8; i++) {
		if (i & 1)
			assert_ram_page(mm, addr + i * PAGE_SIZE);
		else
			assert_dev_page(mm, addr + i * PAGE_SIZE, d);
	}
	cr_assert_eq(d->nr_free, DEV_PAGES - 4);
	assert_audit_clean();
	check_pattern(mm, addr, 8 * PAGE_SIZE, 18);
	mmput(mm);
	cr_assert_eq(d->nr_free, DEV_PAGES);
}

Test(migrate, reference_taken_before_commit)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 4 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	struct folio *folio;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 4, 19);
	cr_assert_eq(mig_setup(&m, mm, addr, 4, MIGRATE_VMA_SELECT_SYSTEM, d), 0);
	copy_entries(m.src, m.dst, 4, d);
	/* Someone takes a reference on page 2 after setup: it cannot be committed. */
	folio = page_folio(migrate_pfn_to_page(m.src[2]));
	folio_get(folio);
	migrate_vma_pages(&m.args);
	cr_assert_eq(m.src[2] & MIGRATE_PFN_MIGRATE, 0);
	cr_assert(m.src[1] & MIGRATE_PFN_MIGRATE);
	migrate_vma_finalize(&m.args);
	mmap_read_unlock(mm);
	cr_assert_eq(folio_ref_count(folio), 2);
	folio_put(folio);
	assert_ram_page(mm, addr + 2 * PAGE_SIZE);
	assert_dev_page(mm, addr + 1 * PAGE_SIZE, d);
	cr_assert_eq(d->nr_free, DEV_PAGES - 3); /* the refused destination went back */
	check_pattern(mm, addr, 4 * PAGE_SIZE, 19);
	mmput(mm);
}

Test(migrate, pinned_page_not_migrated)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 4 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	struct page *pinned;
	unsigned long pfn;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 4, 20);
	mmap_read_lock(mm);
	cr_assert_eq(pin_user_pages_remote(mm, addr + PAGE_SIZE, 1, FOLL_WRITE, &pinned, NULL), 1);
	mmap_read_unlock(mm);
	pfn = page_to_pfn(pinned);
	cr_assert_eq(to_dev(mm, addr, 4, d, &m), 3);
	cr_assert_eq(m.src[1], 0);
	cr_assert_eq(pfn_at(mm, addr + PAGE_SIZE), pfn);
	cr_assert_eq(page_mapcount(pinned), 1);
	cr_assert_eq(folio_ref_count(page_folio(pinned)), 1 + GUP_PIN_COUNTING_BIAS);
	cr_assert(PageAnonExclusive(pinned));
	cr_assert_not(folio_test_locked(page_folio(pinned)));
	assert_dev_page(mm, addr, d);
	assert_dev_page(mm, addr + 2 * PAGE_SIZE, d);
	assert_audit_clean();
	unpin_user_page(pinned);
	assert_ram_page(mm, addr + PAGE_SIZE);
	check_pattern(mm, addr, 4 * PAGE_SIZE, 20);
	mmput(mm);
}

Test(migrate, gup_reference_fails_the_refcount_check)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 4 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	struct page *page;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 4, 21);
	mmap_read_lock(mm);
	cr_assert_eq(get_user_pages_remote(mm, addr + 3 * PAGE_SIZE, 1, 0, &page, NULL), 1);
	mmap_read_unlock(mm);
	/* Collected, but refcount - 1 > mapcount after unmap: restored in setup. */
	cr_assert_eq(mig_setup(&m, mm, addr, 4, MIGRATE_VMA_SELECT_SYSTEM, d), 0);
	cr_assert_eq(m.args.cpages, 3);
	cr_assert_eq(m.src[3], 0);
	cr_assert_not(folio_test_locked(page_folio(page)));
	cr_assert(pte_present(read_pte(mm, addr + 3 * PAGE_SIZE)));
	copy_entries(m.src, m.dst, 4, d);
	mig_finish(&m);
	cr_assert_eq(pfn_at(mm, addr + 3 * PAGE_SIZE), page_to_pfn(page));
	cr_assert_eq(folio_ref_count(page_folio(page)), 2);
	cr_assert_eq(page_mapcount(page), 1);
	put_page(page);
	assert_ram_page(mm, addr + 3 * PAGE_SIZE);
	assert_dev_page(mm, addr, d);
	check_pattern(mm, addr, 4 * PAGE_SIZE, 21);
	mmput(mm);
}

Test(migrate, migrate_to_ram_failure_is_sigbus)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 2 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	char buf[8];

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 2, 22);
	cr_assert_eq(to_dev(mm, addr, 2, d, &m), 2);
	atomic_store(&d->fail_to_ram, 1);
	cr_assert_eq(cpu_read(mm, addr, buf, sizeof(buf)), -EFAULT);
	assert_dev_page(mm, addr, d);
	atomic_store(&d->fail_to_ram, 0);
	check_pattern(mm, addr, 2 * PAGE_SIZE, 22);
	mmput(mm);
}

/* ---- fork: a page mapped in two mms ---- */

Test(migrate, fork_shared_page_unmapped_from_both)
{
	struct mm_struct *mm = new_mm(), *child;
	unsigned long addr = map_rw(mm, 4 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	unsigned long pfn;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 4, 23);
	pfn = pfn_at(mm, addr);
	child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	cr_assert_eq(pfn_at(child, addr), pfn);
	cr_assert_eq(page_mapcount(pfn_to_page(pfn)), 2);

	/* RAM to RAM: try_to_migrate() takes the child's mapping too. */
	cr_assert_eq(mig_setup(&m, mm, addr, 4, MIGRATE_VMA_SELECT_SYSTEM, NULL), 0);
	cr_assert_eq(m.args.cpages, 4);
	cr_assert_eq(m.src[0], migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE); /* read-only: COW */
	cr_assert(is_readable_migration_entry(pte_to_swp_entry(read_pte(mm, addr))));
	cr_assert(is_swap_pte(read_pte(child, addr)));
	cr_assert(is_migration_entry(pte_to_swp_entry(read_pte(child, addr))));
	cr_assert_eq(page_mapcount(pfn_to_page(pfn)), 0);
	copy_entries(m.src, m.dst, 4, NULL);
	mig_finish(&m);
	for (int i = 0; i < 4; i++) {
		unsigned long npfn = m.dst[i] >> MIGRATE_PFN_SHIFT;
		struct page *page = pfn_to_page(npfn);

		cr_assert_eq(pfn_at(mm, addr + i * PAGE_SIZE), npfn);
		cr_assert_eq(pfn_at(child, addr + i * PAGE_SIZE), npfn);
		cr_assert_eq(page_mapcount(page), 2);
		cr_assert_eq(folio_ref_count(page_folio(page)), 2);
		cr_assert_not(PageAnonExclusive(page));
		cr_assert_not(pte_write(read_pte(mm, addr + i * PAGE_SIZE)));
	}
	assert_audit_clean();

	/* RAM to device-private: both mms get device-private entries. */
	cr_assert_eq(to_dev(mm, addr, 4, d, &m), 4);
	for (int i = 0; i < 4; i++) {
		struct page *page = dev_page_at(mm, addr + i * PAGE_SIZE);

		cr_assert_eq(dev_page_at(child, addr + i * PAGE_SIZE), page);
		cr_assert_eq(page_mapcount(page), 2);
		cr_assert_eq(folio_ref_count(page_folio(page)), 2);
	}
	cr_assert_eq(mm_get_rss(child, MM_ANONPAGES), 4);
	assert_audit_clean();

	/* The child's write brings its page back and copies it. */
	fill_at(child, addr, 0, 32, 24);
	check_at(child, addr, 0, 32, 24);
	check_at(mm, addr, 0, PAGE_SIZE, 23);
	check_at(child, addr, 32, 4 * PAGE_SIZE - 32, 23);
	mmput(child);
	check_pattern(mm, addr, 4 * PAGE_SIZE, 23);
	mmput(mm);
	cr_assert_eq(d->nr_free, DEV_PAGES);
}

/* ---- eviction by pfn ---- */

Test(migrate, device_range_eviction)
{
	struct mm_struct *mm = new_mm(), *child;
	unsigned long addr = map_rw(mm, 16 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	static unsigned long src[DEV_PAGES], dst[DEV_PAGES];
	unsigned long collected = 0;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 16, 25);
	cr_assert_eq(to_dev(mm, addr, 16, d, &m), 16);
	child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));

	/* Evict the whole device: every page in use comes back to RAM. */
	cr_assert_eq(migrate_device_range(src, d->first_pfn, DEV_PAGES), 0);
	for (unsigned long i = 0; i < DEV_PAGES; i++) {
		if (!src[i])
			continue;
		collected++;
		cr_assert_eq(src[i], migrate_pfn(d->first_pfn + i) | MIGRATE_PFN_MIGRATE);
		cr_assert(folio_test_locked(page_folio(migrate_pfn_to_page(src[i]))));
	}
	cr_assert_eq(collected, 16);
	for (int i = 0; i < 16; i++) {
		cr_assert(is_migration_entry(pte_to_swp_entry(read_pte(mm, addr + i * PAGE_SIZE))));
		cr_assert(is_migration_entry(pte_to_swp_entry(read_pte(child, addr + i * PAGE_SIZE))));
	}
	copy_entries(src, dst, DEV_PAGES, NULL);
	migrate_device_pages(src, dst, DEV_PAGES);
	migrate_device_finalize(src, dst, DEV_PAGES);
	cr_assert_eq(d->nr_free, DEV_PAGES);
	cr_assert_eq(atomic_load(&d->nr_migrate_to_ram), 0);
	for (int i = 0; i < 16; i++) {
		unsigned long pfn = pfn_at(mm, addr + i * PAGE_SIZE);

		cr_assert(is_ram_pfn(pfn));
		cr_assert_eq(pfn_at(child, addr + i * PAGE_SIZE), pfn);
		cr_assert_eq(page_mapcount(pfn_to_page(pfn)), 2);
	}
	assert_audit_clean();
	check_pattern(child, addr, 16 * PAGE_SIZE, 25);
	mmput(child);
	check_pattern(mm, addr, 16 * PAGE_SIZE, 25);
	mmput(mm);
}

Test(migrate, device_pfns_eviction_partial)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 8 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	unsigned long src[3], dst[3];

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 8, 26);
	cr_assert_eq(to_dev(mm, addr, 8, d, &m), 8);
	/* Pages 1 and 6, and a free device pfn. */
	src[0] = page_to_pfn(dev_page_at(mm, addr + PAGE_SIZE));
	src[1] = page_to_pfn(dev_page_at(mm, addr + 6 * PAGE_SIZE));
	src[2] = d->first_pfn + DEV_PAGES - 1 - 100;
	cr_assert_eq(folio_ref_count(page_folio(pfn_to_page(src[2]))), 0);
	cr_assert_eq(migrate_device_pfns(src, 3), 0);
	cr_assert(src[0] & MIGRATE_PFN_MIGRATE);
	cr_assert(src[1] & MIGRATE_PFN_MIGRATE);
	cr_assert_eq(src[2], 0);
	copy_entries(src, dst, 3, NULL);
	migrate_device_pages(src, dst, 3);
	migrate_device_finalize(src, dst, 3);
	assert_ram_page(mm, addr + PAGE_SIZE);
	assert_ram_page(mm, addr + 6 * PAGE_SIZE);
	assert_dev_page(mm, addr, d);
	cr_assert_eq(d->nr_free, DEV_PAGES - 6);
	assert_audit_clean();
	check_pattern(mm, addr, 8 * PAGE_SIZE, 26);
	mmput(mm);
}

/*
 * Collect every page of @d (16 in use, mapped at @addr of @mm) with
 * migrate_device_range(); each collected folio is locked and holds a
 * reference on its anon_vma (PG_migrate_anon_vma) across the eviction.
 */
static void evict_collect(struct tdev *d, unsigned long *src)
{
	unsigned long collected = 0;

	cr_assert_eq(migrate_device_range(src, d->first_pfn, DEV_PAGES), 0);
	for (unsigned long i = 0; i < DEV_PAGES; i++) {
		struct page *page = migrate_pfn_to_page(src[i]);

		if (!page)
			continue;
		collected++;
		cr_assert(folio_test_locked(page_folio(page)));
		cr_assert(test_page_flag(page, PG_migrate_anon_vma), "pfn %#lx", page_to_pfn(page));
		cr_assert_not(folio_mapped(page_folio(page)));
	}
	cr_assert_eq(collected, 16);
}

/* After finalize no device page keeps the flag, the lock or a bad free. */
static void assert_evict_done(struct tdev *d)
{
	cr_assert_eq(d->nr_free, DEV_PAGES);
	cr_assert_eq(atomic_load(&d->bad_free), 0);
	for (unsigned long i = 0; i < DEV_PAGES; i++) {
		struct page *page = pfn_to_page(d->first_pfn + i);

		cr_assert_not(test_page_flag(page, PG_migrate_anon_vma));
		cr_assert_not(folio_test_locked(page_folio(page)));
	}
}

/*
 * The mm exits between collection and finalize: its exit zaps the migration
 * entries and frees its VMAs; only the eviction's reference keeps the
 * anon_vma alive for remove_migration_ptes() (ASan catches a freed walk).
 * Every device page returns to the driver, every RAM destination is freed.
 */
Test(migrate, device_range_eviction_mm_exits_before_finalize)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 16 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	static unsigned long src[DEV_PAGES], dst[DEV_PAGES];
	unsigned long free_pages;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 16, 27);
	cr_assert_eq(to_dev(mm, addr, 16, d, &m), 16);
	evict_collect(d, src);
	mmput(mm); /* the last user: exit_mmap() while the entries are migration entries */
	cr_assert_eq(d->nr_free, DEV_PAGES - 16); /* the eviction still holds them */
	free_pages = uhmm_nr_free_pages(machine);
	copy_entries(src, dst, DEV_PAGES, NULL);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_pages - 16);
	migrate_device_pages(src, dst, DEV_PAGES);
	migrate_device_finalize(src, dst, DEV_PAGES);
	assert_evict_done(d);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_pages);
	assert_audit_clean();
}

/*
 * Half the range is unmapped between collection and finalize: those
 * entries' destinations are freed, the other half is mapped to RAM.
 */
Test(migrate, device_range_eviction_munmap_before_finalize)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 16 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	static unsigned long src[DEV_PAGES], dst[DEV_PAGES];
	unsigned long free_pages;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 16, 28);
	cr_assert_eq(to_dev(mm, addr, 16, d, &m), 16);
	evict_collect(d, src);
	cr_assert_eq(mm_munmap(mm, addr, 8 * PAGE_SIZE), 0);
	cr_assert_eq(mm_get_rss(mm, MM_SWAPENTS) + mm_get_rss(mm, MM_ANONPAGES), 8);
	free_pages = uhmm_nr_free_pages(machine);
	copy_entries(src, dst, DEV_PAGES, NULL);
	migrate_device_pages(src, dst, DEV_PAGES);
	migrate_device_finalize(src, dst, DEV_PAGES);
	assert_evict_done(d);
	cr_assert_eq(uhmm_nr_free_pages(machine), free_pages - 8);
	for (int i = 8; i < 16; i++)
		assert_ram_page(mm, addr + i * PAGE_SIZE);
	check_at(mm, addr, 8 * PAGE_SIZE, 8 * PAGE_SIZE, 28);
	assert_audit_clean();
	/* A full unmap too, with the mm alive: nothing is left to map. */
	cr_assert_eq(to_dev(mm, addr + 8 * PAGE_SIZE, 8, d, &m), 8);
	cr_assert_eq(migrate_device_range(src, d->first_pfn, DEV_PAGES), 0);
	cr_assert_eq(mm_munmap(mm, addr + 8 * PAGE_SIZE, 8 * PAGE_SIZE), 0);
	copy_entries(src, dst, DEV_PAGES, NULL);
	migrate_device_pages(src, dst, DEV_PAGES);
	migrate_device_finalize(src, dst, DEV_PAGES);
	assert_evict_done(d);
	assert_audit_clean();
	mmput(mm);
}

/* ---- THP: collected by splitting ---- */

Test(migrate, thp_is_split_then_migrated)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, PMD_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, HPAGE_PMD_NR, 27);
	cr_assert_eq(anon_huge(mm), PMD_SIZE);
	/* Part of the THP, with SELECT_COMPOUND: still split, 4 KiB entries. */
	cr_assert_eq(migrate_range(mm, addr + 16 * PAGE_SIZE, 32,
				   MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND, d, d, &m),
		     32);
	for (int i = 0; i < 32; i++)
		cr_assert_eq(m.src[i] & MIGRATE_PFN_COMPOUND, 0);
	cr_assert_eq(anon_huge(mm), 0);
	assert_dev_page(mm, addr + 16 * PAGE_SIZE, d);
	assert_ram_page(mm, addr); /* split into order-0 folios */
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), HPAGE_PMD_NR);
	assert_audit_clean();
	check_pattern(mm, addr, PMD_SIZE, 27);
	cr_assert_eq(d->nr_free, DEV_PAGES);
	mmput(mm);
}

Test(migrate, huge_zero_page_is_a_hole)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, PMD_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	char buf[8];

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	cr_assert_eq(cpu_read(mm, addr, buf, sizeof(buf)), 0);
	cr_assert(pagemap(mm, addr) & PM_PRESENT);
	cr_assert_eq(migrate_range(mm, addr, 4, MIGRATE_VMA_SELECT_SYSTEM, d, d, &m), 4);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(m.src[i] & MIGRATE_PFN_VALID, 0);
		assert_dev_page(mm, addr + i * PAGE_SIZE, d);
	}
	cr_assert(is_zero_pfn(pte_pfn(read_pte(mm, addr + 4 * PAGE_SIZE))));
	assert_audit_clean();
	check_zero(mm, addr, 8 * PAGE_SIZE);
	mmput(mm);
}

/* ---- a CPU fault racing with a migration ---- */

struct racer {
	struct mm_struct *mm;
	unsigned long addr;
	atomic_int started, done;
	int ret;
	char buf[PAGE_SIZE];
};

static void *racer_read(void *arg)
{
	struct racer *r = arg;

	atomic_store(&r->started, 1);
	r->ret = cpu_read(r->mm, r->addr, r->buf, PAGE_SIZE);
	atomic_store(&r->done, 1);
	return NULL;
}

Test(migrate, cpu_fault_waits_for_finalize)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 4 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	static struct racer r;
	pthread_t thread;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 4, 28);
	cr_assert_eq(mig_setup(&m, mm, addr, 4, MIGRATE_VMA_SELECT_SYSTEM, d), 0);
	cr_assert_eq(m.args.cpages, 4);
	memset(&r, 0, sizeof(r));
	r.mm = mm;
	r.addr = addr + PAGE_SIZE;
	cr_assert_eq(pthread_create(&thread, NULL, racer_read, &r), 0);
	while (!atomic_load(&r.started))
		sched_yield();
	for (int i = 0; i < 100; i++)
		sched_yield();
	/* The reader cannot get past the migration entry while the page is locked. */
	cr_assert_not(atomic_load(&r.done));
	copy_entries(m.src, m.dst, 4, d);
	cr_assert_not(atomic_load(&r.done));
	migrate_vma_pages(&m.args);
	migrate_vma_finalize(&m.args);
	mmap_read_unlock(mm);
	pthread_join(thread, NULL);
	cr_assert_eq(r.ret, 0);
	for (unsigned long i = 0; i < PAGE_SIZE; i++)
		cr_assert_eq((uint8_t)r.buf[i], pattern_byte(28, PAGE_SIZE + i));
	/*
	 * The reader found the device page and brought it back.  More than one
	 * call is possible: finalize unlocks a destination before dropping
	 * the driver's reference, so a fault that gets in between finds one
	 * reference too many in folio_migrate_mapping(), restores, and retries.
	 */
	cr_assert_geq(atomic_load(&d->nr_migrate_to_ram), 1);
	assert_ram_page(mm, addr + PAGE_SIZE);
	assert_dev_page(mm, addr, d);
	check_pattern(mm, addr, 4 * PAGE_SIZE, 28);
	mmput(mm);
}

/* Many threads faulting device pages back while another migrates them out again. */
struct churn {
	struct mm_struct *mm;
	unsigned long addr;
	int npages;
	atomic_int stop;
	atomic_int errors; /* reads that failed or returned wrong bytes */
};

static void *churn_reader(void *arg)
{
	struct churn *c = arg;
	uint8_t buf[64];

	while (!atomic_load(&c->stop))
		for (int i = 0; i < c->npages; i++) {
			if (cpu_read(c->mm, c->addr + i * PAGE_SIZE + 64, buf, sizeof(buf))) {
				atomic_fetch_add(&c->errors, 1);
				continue;
			}
			for (int j = 0; j < 64; j++)
				if (buf[j] != pattern_byte(29, (unsigned long)i * PAGE_SIZE + 64 + j))
					atomic_fetch_add(&c->errors, 1);
		}
	return NULL;
}

Test(migrate, concurrent_faults_and_migrations)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 16 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	static struct churn c;
	pthread_t threads[2];

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 16, 29);
	c = (struct churn){ .mm = mm, .addr = addr, .npages = 16 };
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&threads[i], NULL, churn_reader, &c), 0);
	for (int round = 0; round < 50; round++)
		to_dev(mm, addr, 16, d, &m);
	atomic_store(&c.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
	cr_assert_eq(atomic_load(&c.errors), 0);
	assert_audit_clean();
	check_pattern(mm, addr, 16 * PAGE_SIZE, 29);
	mmput(mm);
	cr_assert_eq(d->nr_free, DEV_PAGES);
}

/* ---- the MMU_NOTIFY_MIGRATE invalidation ---- */

struct mig_rec {
	struct mmu_interval_notifier sub;
	int calls;
	struct mmu_notifier_range last;
};

static bool mig_rec_invalidate(struct mmu_interval_notifier *sub,
			       const struct mmu_notifier_range *range, unsigned long cur_seq)
{
	struct mig_rec *r = container_of(sub, struct mig_rec, sub);

	mmu_interval_set_seq(sub, cur_seq);
	r->calls++;
	r->last = *range;
	return true;
}

static const struct mmu_interval_notifier_ops mig_rec_ops = { .invalidate = mig_rec_invalidate };

Test(migrate, notifier_sees_migrate_with_owner)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 8 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	static struct mig_rec r;
	unsigned long seq;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 4, 30); /* pages 4-7 stay holes */
	memset(&r, 0, sizeof(r));
	cr_assert_eq(mmu_interval_notifier_insert(&r.sub, mm, addr, 8 * PAGE_SIZE, &mig_rec_ops), 0);
	seq = mmu_interval_read_begin(&r.sub);
	cr_assert_eq(mig_setup(&m, mm, addr, 8, MIGRATE_VMA_SELECT_SYSTEM, d), 0);
	/* Collection ran inside one MMU_NOTIFY_MIGRATE invalidation owned by the device. */
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(r.last.event, MMU_NOTIFY_MIGRATE);
	cr_assert_eq(r.last.owner, d);
	cr_assert_eq(r.last.mm, mm);
	cr_assert_eq(r.last.start, addr);
	cr_assert_eq(r.last.end, addr + 8 * PAGE_SIZE);
	cr_assert(mmu_interval_read_retry(&r.sub, seq));
	copy_entries(m.src, m.dst, 8, d);
	migrate_vma_pages(&m.args);
	/* Inserting into the holes is another MIGRATE invalidation, from the first hole. */
	cr_assert_eq(r.calls, 2);
	cr_assert_eq(r.last.event, MMU_NOTIFY_MIGRATE);
	cr_assert_eq(r.last.owner, d);
	cr_assert_eq(r.last.start, addr + 4 * PAGE_SIZE);
	cr_assert_eq(r.last.end, addr + 8 * PAGE_SIZE);
	migrate_vma_finalize(&m.args);
	mmap_read_unlock(mm);
	for (int i = 0; i < 8; i++)
		assert_dev_page(mm, addr + i * PAGE_SIZE, d);
	/* Back to RAM: the device faults nothing in, so no further collection here. */
	cr_assert_eq(to_ram(mm, addr, 8, d, &m), 8);
	cr_assert_eq(r.calls, 3);
	cr_assert_eq(r.last.event, MMU_NOTIFY_MIGRATE);
	mmu_interval_notifier_remove(&r.sub);
	check_at(mm, addr, 0, 4 * PAGE_SIZE, 30);
	check_zero(mm, addr + 4 * PAGE_SIZE, 4 * PAGE_SIZE);
	mmput(mm);
}

/* ---- entry kinds ---- */

Test(migrate, read_only_exclusive_page_stays_exclusive)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 2 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	pte_t pte;
	unsigned long pfn;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 2, 31);
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PAGE_SIZE, PROT_READ), 0);
	cr_assert_eq(mig_setup(&m, mm, addr, 2, MIGRATE_VMA_SELECT_SYSTEM, d), 0);
	/* Not writable, but exclusive: a readable-exclusive migration entry. */
	cr_assert_eq(m.src[0] & MIGRATE_PFN_WRITE, 0);
	pte = read_pte(mm, addr);
	cr_assert(is_readable_exclusive_migration_entry(pte_to_swp_entry(pte)));
	copy_entries(m.src, m.dst, 2, d);
	mig_finish(&m);
	cr_assert_eq(m.dst[0] & MIGRATE_PFN_WRITE, 0);
	pte = read_pte(mm, addr);
	cr_assert(is_device_private_entry(pte_to_swp_entry(pte)));
	cr_assert_not(is_writable_device_private_entry(pte_to_swp_entry(pte)));
	cr_assert(PageAnonExclusive(dev_page_at(mm, addr)));
	assert_audit_clean();
	cr_assert_eq(to_ram(mm, addr, 2, d, &m), 2);
	pte = read_pte(mm, addr);
	cr_assert(pte_present(pte));
	cr_assert_not(pte_write(pte));
	cr_assert(PageAnonExclusive(pfn_to_page(pte_pfn(pte))));
	pfn = pte_pfn(pte);
	/* Exclusive, so a write after mprotect reuses the page instead of copying. */
	cr_assert_eq(mm_mprotect(mm, addr, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	fill_at(mm, addr, 0, 16, 32);
	cr_assert_eq(pfn_at(mm, addr), pfn);
	check_at(mm, addr, 0, 16, 32);
	check_at(mm, addr, 16, 2 * PAGE_SIZE - 16, 31);
	mmput(mm);
}

Test(migrate, device_to_device)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 8 * PAGE_SIZE);
	static struct mig m;

	tdev_create(&devs[0], MEMORY_DEVICE_PRIVATE);
	tdev_create(&devs[1], MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, 8, 33);
	cr_assert_eq(to_dev(mm, addr, 8, &devs[0], &m), 8);
	/* Device 0's pages, selected by its owner, into device 1's memory. */
	cr_assert_eq(migrate_range(mm, addr, 8, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, &devs[0],
				   &devs[1], &m), 8);
	for (int i = 0; i < 8; i++)
		assert_dev_page(mm, addr + i * PAGE_SIZE, &devs[1]);
	cr_assert_eq(devs[0].nr_free, DEV_PAGES);
	cr_assert_eq(devs[1].nr_free, DEV_PAGES - 8);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 8);
	assert_audit_clean();
	check_pattern(mm, addr, 8 * PAGE_SIZE, 33);
	cr_assert_eq(atomic_load(&devs[1].nr_migrate_to_ram), 8);
	mmput(mm);
}

Test(migrate, thp_shared_with_child_is_split_through_rmap)
{
	struct mm_struct *mm = new_mm(), *child;
	unsigned long addr = map_thp(mm, PMD_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	unsigned long nfree;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, HPAGE_PMD_NR, 34);
	child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	cr_assert_eq(anon_huge(child), PMD_SIZE);
	nfree = uhmm_nr_free_pages(machine);
	/* The THP is mapped by the child's PMD too: only a full split can free its pages. */
	cr_assert_eq(to_dev(mm, addr + 16 * PAGE_SIZE, 8, d, &m), 8);
	cr_assert_eq(anon_huge(mm), 0);
	cr_assert_eq(anon_huge(child), 0);
	for (int i = 0; i < 8; i++) {
		struct page *page = dev_page_at(mm, addr + (16 + i) * PAGE_SIZE);

		cr_assert_eq(dev_page_at(child, addr + (16 + i) * PAGE_SIZE), page);
		cr_assert_eq(page_mapcount(page), 2);
		cr_assert_eq(folio_ref_count(page_folio(page)), 2);
	}
	/* The rest are order-0 pages shared by both. */
	{
		struct page *page = pfn_to_page(pfn_at(mm, addr));

		cr_assert_not(folio_test_large(page_folio(page)));
		cr_assert_eq(pfn_at(child, addr), page_to_pfn(page));
		cr_assert_eq(page_mapcount(page), 2);
	}
	/* The 8 migrated RAM pages were freed (the splits used the deposited tables). */
	cr_assert_eq(uhmm_nr_free_pages(machine), nfree + 8);
	cr_assert_eq(mm_get_rss(child, MM_ANONPAGES), HPAGE_PMD_NR);
	assert_audit_clean();
	check_pattern(child, addr, PMD_SIZE, 34);
	mmput(child);
	check_pattern(mm, addr, PMD_SIZE, 34);
	mmput(mm);
	cr_assert_eq(d->nr_free, DEV_PAGES);
}

Test(migrate, pinned_thp_is_not_split)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_thp(mm, PMD_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	struct page *pinned;
	struct folio *folio;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	populate(mm, addr, HPAGE_PMD_NR, 35);
	mmap_read_lock(mm);
	cr_assert_eq(pin_user_pages_remote(mm, addr + 100 * PAGE_SIZE, 1, FOLL_WRITE, &pinned, NULL),
		     1);
	mmap_read_unlock(mm);
	folio = page_folio(pinned);
	cr_assert(folio_test_large(folio));
	/* The PMD is split, but the pinned folio cannot be: nothing is collected. */
	cr_assert_eq(to_dev(mm, addr, 8, d, &m), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(m.src[i], 0);
	cr_assert_eq(page_folio(pinned), folio);
	cr_assert(folio_test_large(folio));
	cr_assert_eq(folio_mapcount(folio), HPAGE_PMD_NR);
	cr_assert_not(folio_test_locked(folio));
	cr_assert_eq(d->nr_free, DEV_PAGES);
	assert_audit_clean();
	unpin_user_page(pinned);
	check_pattern(mm, addr, PMD_SIZE, 35);
	mmput(mm);
}

/* ---- insertion into an untouched VMA ---- */

Test(migrate, untouched_vma_gets_tables_and_anon_vma)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 4 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	mmap_read_lock(mm);
	cr_assert_null(vma_lookup(mm, addr)->anon_vma);
	cr_assert_null(pmd_off(mm, addr));
	mmap_read_unlock(mm);
	cr_assert_eq(to_dev(mm, addr, 4, d, &m), 4);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(m.src[i], MIGRATE_PFN_MIGRATE);
		assert_dev_page(mm, addr + i * PAGE_SIZE, d);
	}
	mmap_read_lock(mm);
	cr_assert_not_null(vma_lookup(mm, addr)->anon_vma);
	mmap_read_unlock(mm);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 4);
	assert_audit_clean();
	check_zero(mm, addr, 4 * PAGE_SIZE);
	mmput(mm);
}

Test(migrate, insertion_fails_without_page_tables)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 4 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	struct fault_attr attr = { .probability = 100, .interval = 1, .times = -1 };

	tdev_create(d, MEMORY_DEVICE_PRIVATE);
	cr_assert_eq(mig_setup(&m, mm, addr, 4, MIGRATE_VMA_SELECT_SYSTEM, d), 0);
	cr_assert_eq(m.args.cpages, 4);
	copy_entries(m.src, m.dst, 4, d);
	/* No RAM for the page tables: no hole can be filled. */
	uhmm_fail_page_alloc(machine, &attr);
	migrate_vma_pages(&m.args);
	uhmm_fail_page_alloc(machine, NULL);
	cr_assert_gt(uhmm_fail_page_alloc_count(machine), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(m.src[i] & MIGRATE_PFN_MIGRATE, 0);
	migrate_vma_finalize(&m.args);
	mmap_read_unlock(mm);
	/* The driver's pages went back to it; nothing is mapped. */
	cr_assert_eq(d->nr_free, DEV_PAGES);
	cr_assert_eq(atomic_load(&d->nr_folio_free), 4);
	cr_assert_eq(mm_get_rss(mm, MM_ANONPAGES), 0);
	cr_assert_eq(pagemap(mm, addr) & (PM_PRESENT | PM_SWAP), 0);
	assert_audit_clean();
	check_zero(mm, addr, 4 * PAGE_SIZE);
	mmput(mm);
}

Test(migrate, coherent_range_eviction)
{
	struct mm_struct *mm = new_mm();
	unsigned long addr = map_rw(mm, 8 * PAGE_SIZE);
	struct tdev *d = &devs[0];
	static struct mig m;
	static unsigned long src[DEV_PAGES], dst[DEV_PAGES];

	tdev_create(d, MEMORY_DEVICE_COHERENT);
	populate(mm, addr, 8, 36);
	cr_assert_eq(to_dev(mm, addr, 8, d, &m), 8);
	/* Coherent pages are mapped by present PTEs: the reverse map unmaps them. */
	cr_assert_eq(migrate_device_range(src, d->first_pfn, DEV_PAGES), 0);
	for (int i = 0; i < 8; i++)
		cr_assert(is_migration_entry(pte_to_swp_entry(read_pte(mm, addr + i * PAGE_SIZE))));
	copy_entries(src, dst, DEV_PAGES, NULL);
	migrate_device_pages(src, dst, DEV_PAGES);
	migrate_device_finalize(src, dst, DEV_PAGES);
	for (int i = 0; i < 8; i++) {
		assert_ram_page(mm, addr + i * PAGE_SIZE);
		cr_assert(pte_write(read_pte(mm, addr + i * PAGE_SIZE)));
	}
	cr_assert_eq(d->nr_free, DEV_PAGES);
	assert_audit_clean();
	check_pattern(mm, addr, 8 * PAGE_SIZE, 36);
	mmput(mm);
}
