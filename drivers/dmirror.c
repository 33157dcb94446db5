/* SPDX-License-Identifier: MIT */
/*
 * drivers/dmirror.c - dmirror, uhmm's twin of the kernel's lib/test_hmm.c:
 * a pretend device that mirrors an address space through an interval
 * notifier and hmm_range_fault(), and owns device memory it migrates
 * anonymous memory to and from with migrate_vma_*().
 *
 * Built like a real driver: only the public headers (include/uhmm) are
 * used, never mm/internal.h.
 *
 * Objects:
 *   struct dmirror_module   "the loaded module": DMIRROR_NDEVICES devices.
 *   struct dmirror_device   one /dev/hmm_dmirrorN: its device memory, kept
 *                           in chunks (struct dmirror_chunk), with free
 *                           lists of order-0 pages and of PMD-order folios.
 *   struct dmirror          one open file: a mirror of one mm with its
 *                           device page table (struct dpt) and the
 *                           whole-mm interval notifier that keeps it
 *                           coherent.
 *
 * Differences from test_hmm, on purpose:
 *   - Device pages hold real bytes (page_address() of a device page works,
 *     see uhmm/memremap.h), so the "device" copies with memcpy and no
 *     backing RAM page is allocated next to each device-private page.  The
 *     device page table maps VA >> PAGE_SHIFT to the device page itself
 *     (test_hmm stores the backing page for device-private memory).
 *   - Both memory types come from request_free_mem_region(): uhmm always
 *     provides device-coherent memory (Linux needs the spm_addr_dev*
 *     module parameters for minors 2 and 3).
 *   - The free lists are driver-side stacks of PFNs (test_hmm links free
 *     pages through page->zone_device_data).
 *   - Closing a mirror evicts every chunk of its device back to system RAM,
 *     as the uhmm header documents, so no device page outlives the
 *     dmirror it points to through its zone_device_data.
 *   - HMM_DMIRROR_EXCLUSIVE and HMM_DMIRROR_CHECK_EXCLUSIVE return
 *     -EOPNOTSUPP: uhmm has no device-exclusive entries yet
 *     (make_device_exclusive() comes with a later issue).
 *
 * Lock order (the driver's locks after the core's, see mm/internal.h):
 *   mmap_lock -> folio lock -> dmirror->mutex (the notifier lock: taken by
 *   invalidate(), which the core calls under mmap_lock or a folio lock)
 *   folio lock -> mdevice->devmem_lock (a chunk is added while migration
 *   holds the source folios locked) -> mdevice->lock (the free lists, a
 *   leaf; folio_free() takes it)
 * RELEASE detaches the chunks under devmem_lock and evicts them after
 * dropping it, so eviction's folio locks never nest inside devmem_lock.
 * Eviction, with the evicted folios locked, takes mod->lock (the list of
 * open mirrors) and then each mirror's mutex to drop their entries:
 * folio lock -> mod->lock -> dmirror->mutex.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uhmm/dmirror.h>
#include <uhmm/hmm.h>
#include <uhmm/memremap.h>
#include <uhmm/migrate.h>
#include <uhmm/mm.h>
#include <uhmm/mmu_notifier.h>

/* Device memory is added in chunks of this size (test_hmm's DEVMEM_CHUNK_SIZE). */
#define DEVMEM_CHUNK_SIZE (256UL << 20)
#define DEVMEM_CHUNKS_RESERVE 16

/* Pages handed to one hmm_range_fault() / migrate_vma round. */
#define DMIRROR_FAULT_PAGES 32
#define DMIRROR_MIGRATE_PAGES PTRS_PER_PTE

#define min_ul(a, b) ((a) < (b) ? (a) : (b))

/* ------------------------------------------------------------------ */
/* The device page table: VA >> PAGE_SHIFT -> device-visible page       */
/* ------------------------------------------------------------------ */

/*
 * A radix tree with 9 bits per level, as test_hmm's xarray: four levels
 * cover page indices below 2^36 (every user address, TASK_SIZE is 2^47).
 * An entry is a struct page pointer with its low bits as tags: pages are
 * 64-byte aligned, so the tags (xa_tag_pointer() values) fit.
 */
#define DPT_BITS 9
#define DPT_FANOUT (1UL << DPT_BITS)
#define DPT_LEVELS 4
#define DPT_MAX_INDEX (1UL << (DPT_BITS * DPT_LEVELS))
#define DPT_XA_TAG_ATOMIC 1UL
#define DPT_XA_TAG_WRITE 3UL
#define DPT_TAG_MASK 3UL

struct dpt_node {
	void *slots[DPT_FANOUT];
	unsigned int count; /* non-NULL slots */
};

struct dpt {
	struct dpt_node *root;
	unsigned long nr_entries;
};

static inline struct page *dpt_entry_page(uintptr_t entry)
{
	return (struct page *)(entry & ~DPT_TAG_MASK);
}

static inline unsigned int dpt_slot(unsigned long index, int level)
{
	return (unsigned int)((index >> (DPT_BITS * level)) & (DPT_FANOUT - 1));
}

/* The entry at @index, 0 if none. Needs dmirror->mutex. */
static uintptr_t dpt_load(const struct dpt *pt, unsigned long index)
{
	const struct dpt_node *node = pt->root;

	if (index >= DPT_MAX_INDEX)
		return 0;
	for (int level = DPT_LEVELS - 1; node && level > 0; level--)
		node = node->slots[dpt_slot(index, level)];
	return node ? (uintptr_t)node->slots[dpt_slot(index, 0)] : 0;
}

/* Store @entry (non-zero) at @index. Return: 0 or -ENOMEM. Needs dmirror->mutex. */
static int dpt_store(struct dpt *pt, unsigned long index, uintptr_t entry)
{
	struct dpt_node **slot = &pt->root;

	if (index >= DPT_MAX_INDEX)
		return -EINVAL;
	if (!*slot && !(*slot = calloc(1, sizeof(struct dpt_node))))
		return -ENOMEM;
	for (int level = DPT_LEVELS - 1; level > 0; level--) {
		struct dpt_node *node = *slot;
		unsigned int i = dpt_slot(index, level);

		if (!node->slots[i]) {
			node->slots[i] = calloc(1, sizeof(struct dpt_node));
			if (!node->slots[i])
				return -ENOMEM;
			node->count++;
		}
		slot = (struct dpt_node **)&node->slots[i];
	}
	struct dpt_node *leaf = *slot;
	unsigned int i = dpt_slot(index, 0);

	if (!leaf->slots[i]) {
		leaf->count++;
		pt->nr_entries++;
	}
	leaf->slots[i] = (void *)entry;
	return 0;
}

/*
 * Erase the entries of [first, last] below @node (covering @base at @level),
 * freeing nodes that become empty.  If @match_lo <= @match_hi, only entries
 * whose page's pfn is in that range go.  Return: true if @node is now empty.
 */
static bool dpt_erase_node(struct dpt *pt, struct dpt_node *node, int level, unsigned long base,
			   unsigned long first, unsigned long last, unsigned long match_lo,
			   unsigned long match_hi)
{
	unsigned long span = 1UL << (DPT_BITS * level);
	/* Only the slots [first, last] overlaps: an erase of one page is one path. */
	unsigned long begin = first > base ? (first - base) / span : 0;
	unsigned long end = last - base >= span * (DPT_FANOUT - 1) ? DPT_FANOUT - 1
								   : (last - base) / span;

	for (unsigned long i = begin; i <= end && node->count; i++) {
		unsigned long lo = base + i * span;

		if (!node->slots[i])
			continue;
		if (level == 0) {
			if (match_lo <= match_hi) {
				unsigned long pfn = page_to_pfn(dpt_entry_page((uintptr_t)node->slots[i]));

				if (pfn < match_lo || pfn > match_hi)
					continue;
			}
			node->slots[i] = NULL;
			node->count--;
			pt->nr_entries--;
		} else if (dpt_erase_node(pt, node->slots[i], level - 1, lo, first, last, match_lo,
					  match_hi)) {
			free(node->slots[i]);
			node->slots[i] = NULL;
			node->count--;
		}
	}
	return node->count == 0;
}

/* Erase the entries of indices [first, last]. Needs dmirror->mutex. */
static void dpt_erase_range(struct dpt *pt, unsigned long first, unsigned long last)
{
	if (!pt->root || first >= DPT_MAX_INDEX)
		return;
	if (dpt_erase_node(pt, pt->root, DPT_LEVELS - 1, 0, first, last, 1, 0)) {
		free(pt->root);
		pt->root = NULL;
	}
}

/* Erase every entry that maps a page with a pfn in [lo, hi]. Needs dmirror->mutex. */
static void dpt_erase_pfns(struct dpt *pt, unsigned long lo, unsigned long hi)
{
	if (!pt->root)
		return;
	if (dpt_erase_node(pt, pt->root, DPT_LEVELS - 1, 0, 0, DPT_MAX_INDEX - 1, lo, hi)) {
		free(pt->root);
		pt->root = NULL;
	}
}

static void dpt_destroy(struct dpt *pt)
{
	dpt_erase_range(pt, 0, DPT_MAX_INDEX - 1);
}

/* ------------------------------------------------------------------ */
/* Devices, chunks, mirrors                                            */
/* ------------------------------------------------------------------ */

struct dmirror_device;

/**
 * struct dmirror_chunk - one range of device memory.
 * @pagemap: its dev_pagemap (owner: the device).
 * @res: the physical range from request_free_mem_region().
 * @mdevice: the device.
 * @remove: being removed: folio_free() does not put its pages back on the
 *          free lists.
 */
struct dmirror_chunk {
	struct dev_pagemap pagemap;
	struct resource *res;
	struct dmirror_device *mdevice;
	_Atomic bool remove;
};

/* A stack of PFNs: one free list. */
struct pfn_stack {
	unsigned long *pfns;
	size_t nr;
	size_t cap;
};

/**
 * struct dmirror_device - one /dev/hmm_dmirror<minor>.
 * @devmem_lock: the chunk array.
 * @lock: the free lists and counters.
 * @free_pages: free order-0 pages.
 * @free_folios: free PMD-order folios (from chunks added for a large
 *               allocation).
 * @calloc: pages handed out; @cfree: pages given back (test_hmm's).
 */
struct dmirror_device {
	struct dmirror_module *mod;
	unsigned int minor;
	int zone_device_type;

	pthread_mutex_t devmem_lock;
	unsigned int devmem_capacity;
	unsigned int devmem_count;
	struct dmirror_chunk **devmem_chunks;

	pthread_mutex_t lock;
	struct pfn_stack free_pages;
	struct pfn_stack free_folios;
	unsigned long calloc;
	unsigned long cfree;

	struct fault_injector fail_devmem_alloc;
};

/**
 * struct dmirror_module - the loaded "module".
 * @lock: @mirrors (the open files) and @nr_open.
 */
struct dmirror_module {
	struct uhmm_machine *machine;
	struct dmirror_device devices[DMIRROR_NDEVICES];
	pthread_mutex_t lock;
	struct dmirror *mirrors[64];
	int nr_open;
	struct dmirror **more_mirrors; /* beyond the first 64 opens */
	int nr_more;
};

/**
 * struct dmirror - one open file: a mirror of @mm.
 * @mutex: the notifier lock: guards @pt against invalidate().
 * @flags: HMM_DMIRROR_FLAG_* (FAIL_ALLOC is one-shot).
 */
struct dmirror {
	struct dmirror_device *mdevice;
	struct mm_struct *mm;
	struct mmu_interval_notifier notifier;
	pthread_mutex_t mutex;
	struct dpt pt;
	_Atomic uint64_t flags;
	struct dmirror *next_open; /* on open_mirrors */
};

/*
 * Every open mirror of the process, as the fd table knows every open file:
 * a handle that is not on the list was released (or never opened), and
 * dmirror_ioctl(), dmirror_mmap() and dmirror_release() refuse it with
 * -EBADF, as fdget() of a closed fd does, without touching its memory.
 * (Like an fd number, a released handle may be reused by a later open.)
 */
static pthread_mutex_t open_mirrors_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dmirror *open_mirrors;

/* Is @dmirror open?  Compares pointers only: a released one is never read. */
static bool dmirror_is_open(const struct dmirror *dmirror)
{
	bool found = false;

	pthread_mutex_lock(&open_mirrors_lock);
	for (struct dmirror *d = open_mirrors; d && !found; d = d->next_open)
		found = d == dmirror;
	pthread_mutex_unlock(&open_mirrors_lock);
	return found;
}

/* Take @dmirror off the open list; false if it was not on it (a double close). */
static bool dmirror_close_handle(struct dmirror *dmirror)
{
	bool found = false;

	pthread_mutex_lock(&open_mirrors_lock);
	for (struct dmirror **link = &open_mirrors; *link; link = &(*link)->next_open)
		if (*link == dmirror) {
			*link = dmirror->next_open;
			found = true;
			break;
		}
	pthread_mutex_unlock(&open_mirrors_lock);
	return found;
}

static struct dmirror_chunk *dmirror_page_to_chunk(struct page *page)
{
	return container_of(page_pgmap(page), struct dmirror_chunk, pagemap);
}

static struct dmirror_device *dmirror_page_to_device(struct page *page)
{
	return dmirror_page_to_chunk(page)->mdevice;
}

static int pfn_stack_push(struct pfn_stack *s, unsigned long pfn)
{
	if (s->nr == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		unsigned long *p = realloc(s->pfns, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->pfns = p;
		s->cap = cap;
	}
	s->pfns[s->nr++] = pfn;
	return 0;
}

/* One-shot HMM_DMIRROR_FLAG_FAIL_ALLOC: true (and cleared) if it was set. */
static bool dmirror_fail_alloc(struct dmirror *dmirror)
{
	if (!dmirror)
		return false;
	return atomic_fetch_and(&dmirror->flags, ~HMM_DMIRROR_FLAG_FAIL_ALLOC) &
	       HMM_DMIRROR_FLAG_FAIL_ALLOC;
}

/* ------------------------------------------------------------------ */
/* Device memory                                                       */
/* ------------------------------------------------------------------ */

static void dmirror_devmem_free(struct folio *folio);
static vm_fault_t dmirror_devmem_fault(struct vm_fault *vmf);
static void dmirror_devmem_folio_split(struct folio *head, struct folio *tail);

static const struct dev_pagemap_ops dmirror_devmem_ops = {
	.folio_free = dmirror_devmem_free,
	.migrate_to_ram = dmirror_devmem_fault,
	.folio_split = dmirror_devmem_folio_split,
};

/* Pop a free folio of the wanted size. Needs mdevice->lock. */
static struct page *dmirror_pop_free(struct dmirror_device *mdevice, bool is_large)
{
	struct pfn_stack *s = is_large ? &mdevice->free_folios : &mdevice->free_pages;

	if (!s->nr)
		return NULL;
	mdevice->calloc += is_large ? HPAGE_PMD_NR : 1;
	return pfn_to_page(s->pfns[--s->nr]);
}

/*
 * Add a chunk of device memory to @mdevice; its pages go on the free list
 * of the kind asked for (@is_large: PMD-order folios).  With @ppage, one of
 * them is taken at once and returned there.
 * Return: 0, or -ENOMEM / the error of request_free_mem_region() or
 * memremap_pages().
 */
static int dmirror_allocate_chunk(struct dmirror_device *mdevice, struct page **ppage,
				  bool is_large)
{
	struct uhmm_machine *machine = mdevice->mod->machine;
	struct dmirror_chunk *devmem;
	struct resource *res;
	unsigned long pfn, pfn_first, pfn_last;
	void *ptr;
	int ret = -ENOMEM;

	devmem = calloc(1, sizeof(*devmem));
	if (!devmem)
		return -ENOMEM;
	res = request_free_mem_region(DEVMEM_CHUNK_SIZE, "hmm_dmirror");
	if (IS_ERR(res)) {
		ret = (int)PTR_ERR(res);
		goto err_devmem;
	}
	devmem->res = res;
	devmem->pagemap.type = mdevice->zone_device_type == HMM_DMIRROR_MEMORY_DEVICE_PRIVATE
				       ? MEMORY_DEVICE_PRIVATE
				       : MEMORY_DEVICE_COHERENT;
	devmem->pagemap.range.start = res->start;
	devmem->pagemap.range.end = res->end;
	devmem->pagemap.nr_range = 1;
	devmem->pagemap.ops = &dmirror_devmem_ops;
	devmem->pagemap.owner = mdevice;
	devmem->mdevice = mdevice;

	pthread_mutex_lock(&mdevice->devmem_lock);
	if (mdevice->devmem_count == mdevice->devmem_capacity) {
		unsigned int new_capacity = mdevice->devmem_capacity + DEVMEM_CHUNKS_RESERVE;
		struct dmirror_chunk **new_chunks =
			realloc(mdevice->devmem_chunks, sizeof(*new_chunks) * new_capacity);

		if (!new_chunks)
			goto err_release;
		mdevice->devmem_capacity = new_capacity;
		mdevice->devmem_chunks = new_chunks;
	}
	ptr = memremap_pages(&devmem->pagemap, machine);
	if (IS_ERR_OR_NULL(ptr)) {
		ret = ptr ? (int)PTR_ERR(ptr) : -EFAULT;
		goto err_release;
	}

	pfn_first = devmem->pagemap.range.start >> PAGE_SHIFT;
	pfn_last = pfn_first + (range_len(&devmem->pagemap.range) >> PAGE_SHIFT);

	pthread_mutex_lock(&mdevice->lock);
	/* Pushed from the top so that pops hand out the lowest pfn first. */
	ret = 0;
	if (is_large) {
		for (pfn = ALIGN_DOWN(pfn_last, HPAGE_PMD_NR); pfn >= ALIGN(pfn_first, HPAGE_PMD_NR) + HPAGE_PMD_NR && !ret;)
			ret = pfn_stack_push(&mdevice->free_folios, pfn -= HPAGE_PMD_NR);
	} else {
		for (pfn = pfn_last; pfn > pfn_first && !ret;)
			ret = pfn_stack_push(&mdevice->free_pages, --pfn);
	}
	if (ret) {
		/* Forget the pages pushed so far: none is handed out yet. */
		struct pfn_stack *s = is_large ? &mdevice->free_folios : &mdevice->free_pages;

		while (s->nr && s->pfns[s->nr - 1] >= pfn_first && s->pfns[s->nr - 1] < pfn_last)
			s->nr--;
		pthread_mutex_unlock(&mdevice->lock);
		memunmap_pages(&devmem->pagemap);
		goto err_release;
	}
	mdevice->devmem_chunks[mdevice->devmem_count++] = devmem;
	if (ppage)
		*ppage = dmirror_pop_free(mdevice, is_large);
	pthread_mutex_unlock(&mdevice->lock);
	pthread_mutex_unlock(&mdevice->devmem_lock);
	return 0;

err_release:
	pthread_mutex_unlock(&mdevice->devmem_lock);
	release_mem_region(res);
err_devmem:
	free(devmem);
	return ret;
}

/*
 * Take a free device folio (PMD order if @is_large) for @dmirror, adding a
 * chunk when the free list is empty.  Return: the folio, initialized and
 * locked with one reference, or NULL.
 */
static struct folio *dmirror_devmem_alloc(struct dmirror *dmirror, bool is_large)
{
	struct dmirror_device *mdevice = dmirror->mdevice;
	struct page *dpage;
	struct folio *folio;

	if (should_fail(&mdevice->fail_devmem_alloc, is_large ? HPAGE_PMD_ORDER : 0))
		return NULL;
	pthread_mutex_lock(&mdevice->lock);
	dpage = dmirror_pop_free(mdevice, is_large);
	pthread_mutex_unlock(&mdevice->lock);
	if (!dpage && dmirror_allocate_chunk(mdevice, &dpage, is_large))
		return NULL;
	if (!dpage)
		return NULL;
	folio = page_folio(dpage);
	zone_device_folio_init(folio, page_pgmap(dpage), is_large ? HPAGE_PMD_ORDER : 0);
	folio_set_zone_device_data(folio, dmirror);
	return folio;
}

/* dev_pagemap_ops.folio_free: the last reference went; the page is ours again. */
static void dmirror_devmem_free(struct folio *folio)
{
	struct page *page = folio_head(folio);
	struct dmirror_chunk *chunk = dmirror_page_to_chunk(page);
	struct dmirror_device *mdevice = chunk->mdevice;
	unsigned long nr = folio_nr_pages(folio);

	pthread_mutex_lock(&mdevice->lock);
	mdevice->cfree += nr;
	if (!atomic_load(&chunk->remove)) {
		int ret = pfn_stack_push(nr > 1 ? &mdevice->free_folios : &mdevice->free_pages,
					 page_to_pfn(page));
		if (ret)
			fprintf(stderr, "dmirror: lost free device page %#lx (-ENOMEM)\n",
				page_to_pfn(page));
	}
	pthread_mutex_unlock(&mdevice->lock);
}

/*
 * dev_pagemap_ops.folio_split: a large device folio is being split; each
 * new folio keeps the dmirror that allocated it (test_hmm also splits its
 * backing folio here; uhmm has none).
 */
static void dmirror_devmem_folio_split(struct folio *head, struct folio *tail)
{
	if (tail)
		folio_set_zone_device_data(tail, folio_zone_device_data(head));
}

static unsigned long dmirror_select_device(struct dmirror *dmirror)
{
	return dmirror->mdevice->zone_device_type == HMM_DMIRROR_MEMORY_DEVICE_PRIVATE
		       ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE
		       : MIGRATE_VMA_SELECT_DEVICE_COHERENT;
}

/* ------------------------------------------------------------------ */
/* The notifier                                                        */
/* ------------------------------------------------------------------ */

/* Drop the device's mappings of [start, end). Needs dmirror->mutex. */
static void dmirror_do_update(struct dmirror *dmirror, unsigned long start, unsigned long end)
{
	if (start >= end)
		return;
	dpt_erase_range(&dmirror->pt, start >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT);
}

static bool dmirror_interval_invalidate(struct mmu_interval_notifier *mni,
					const struct mmu_notifier_range *range,
					unsigned long cur_seq)
{
	struct dmirror *dmirror = container_of(mni, struct dmirror, notifier);

	/*
	 * Our own migrations keep the device page table valid: the driver
	 * rewrites the entries itself once the pages have moved.
	 */
	if (range->event == MMU_NOTIFY_MIGRATE && range->owner == dmirror->mdevice)
		return true;

	if (mmu_notifier_range_blockable(range))
		pthread_mutex_lock(&dmirror->mutex);
	else if (pthread_mutex_trylock(&dmirror->mutex))
		return false;

	mmu_interval_set_seq(mni, cur_seq);
	dmirror_do_update(dmirror, range->start, range->end);

	pthread_mutex_unlock(&dmirror->mutex);
	return true;
}

static const struct mmu_interval_notifier_ops dmirror_min_ops = {
	.invalidate = dmirror_interval_invalidate,
};

/* ------------------------------------------------------------------ */
/* READ / WRITE through hmm_range_fault()                              */
/* ------------------------------------------------------------------ */

/* copy_to_user()/copy_from_user() of the host buffer: -EFAULT for NULL. */
static int copy_to_user(uint64_t uptr, const void *src, size_t n)
{
	if (!uptr)
		return -EFAULT;
	memcpy((void *)(uintptr_t)uptr, src, n);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Program the device page table from a faulted range. Needs dmirror->mutex. */
static int dmirror_do_fault(struct dmirror *dmirror, struct hmm_range *range)
{
	unsigned long *pfns = range->hmm_pfns;

	for (unsigned long addr = range->start; addr < range->end; addr += PAGE_SIZE, pfns++) {
		uintptr_t entry;
		int ret;

		/* Since we asked for hmm_range_fault() to populate pages, it
		 * shouldn't return an error entry on success. */
		if (*pfns & HMM_PFN_ERROR || !(*pfns & HMM_PFN_VALID))
			return -EFAULT;
		entry = (uintptr_t)hmm_pfn_to_page(*pfns);
		if (*pfns & HMM_PFN_WRITE)
			entry |= DPT_XA_TAG_WRITE;
		else if (range->default_flags & HMM_PFN_REQ_WRITE)
			return -EFAULT;
		ret = dpt_store(&dmirror->pt, addr >> PAGE_SHIFT, entry);
		if (ret)
			return ret;
	}
	return 0;
}

/* hmm_range_fault() with the retry protocol; programs the device on success. */
static int dmirror_range_fault(struct dmirror *dmirror, struct hmm_range *range)
{
	struct mm_struct *mm = dmirror->mm;
	uint64_t timeout = now_ms() + HMM_RANGE_DEFAULT_TIMEOUT;
	int ret;

	for (;;) {
		if (now_ms() > timeout)
			return -EBUSY;
		range->notifier_seq = mmu_interval_read_begin(range->notifier);
		mmap_read_lock(mm);
		ret = hmm_range_fault(range);
		mmap_read_unlock(mm);
		if (ret) {
			if (ret == -EBUSY)
				continue;
			return ret;
		}
		pthread_mutex_lock(&dmirror->mutex);
		if (mmu_interval_read_retry(range->notifier, range->notifier_seq)) {
			pthread_mutex_unlock(&dmirror->mutex);
			continue;
		}
		break;
	}
	ret = dmirror_do_fault(dmirror, range);
	pthread_mutex_unlock(&dmirror->mutex);
	return ret;
}

/* Fault [start, end) into the device page table, DMIRROR_FAULT_PAGES at a time. */
static int dmirror_fault(struct dmirror *dmirror, unsigned long start, unsigned long end,
			 bool write)
{
	unsigned long pfns[DMIRROR_FAULT_PAGES] = {0};
	struct hmm_range range = {
		.notifier = &dmirror->notifier,
		.hmm_pfns = pfns,
		.pfn_flags_mask = 0,
		.default_flags = HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
		.dev_private_owner = dmirror->mdevice,
	};
	int ret = 0;

	for (unsigned long addr = start; addr < end; addr = range.end) {
		range.start = addr;
		range.end = min_ul(addr + (DMIRROR_FAULT_PAGES << PAGE_SHIFT), end);
		ret = dmirror_range_fault(dmirror, &range);
		if (ret)
			break;
	}
	return ret;
}

/*
 * The first page of [start, end) the device cannot access (no entry, or,
 * with @write, no write entry); @end when it can access them all.
 * Needs dmirror->mutex.
 */
static unsigned long dmirror_first_missing(struct dmirror *dmirror, unsigned long start,
					   unsigned long end, bool write)
{
	for (unsigned long addr = start; addr < end; addr += PAGE_SIZE) {
		uintptr_t entry = dpt_load(&dmirror->pt, addr >> PAGE_SHIFT);

		if (!entry || (write && (entry & DPT_TAG_MASK) != DPT_XA_TAG_WRITE))
			return addr;
	}
	return end;
}

/*
 * Copy [start, end), all of it device-mapped, to the caller's buffer.
 * Needs dmirror->mutex.  test_hmm copies into a bounce buffer page by page
 * as it goes and copies that out at the end; uhmm checks that the whole
 * range is mapped first and then copies straight into the caller's buffer,
 * which leaves the buffer untouched on failure just the same, without a
 * second copy (a host bounce buffer costs first-touch faults).
 */
static int dmirror_do_read(struct dmirror *dmirror, unsigned long start, unsigned long end,
			   uint64_t uptr)
{
	char *ptr = (char *)(uintptr_t)uptr;

	if (!uptr)
		return -EFAULT;
	for (unsigned long addr = start; addr < end; addr += PAGE_SIZE, ptr += PAGE_SIZE) {
		struct page *page = dpt_entry_page(dpt_load(&dmirror->pt, addr >> PAGE_SHIFT));

		memcpy(ptr, page_address(page), PAGE_SIZE);
	}
	return 0;
}

static int dmirror_read(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	unsigned long start = cmd->addr, end = start + (cmd->npages << PAGE_SHIFT);
	int ret;

	if (!mmget_not_zero(dmirror->mm))
		return -EINVAL;
	for (;;) {
		unsigned long missing;

		pthread_mutex_lock(&dmirror->mutex);
		missing = dmirror_first_missing(dmirror, cmd->addr, end, false);
		if (missing == end) {
			ret = dmirror_do_read(dmirror, cmd->addr, end, cmd->ptr);
			pthread_mutex_unlock(&dmirror->mutex);
			break;
		}
		pthread_mutex_unlock(&dmirror->mutex);
		start = missing;
		ret = dmirror_fault(dmirror, start, end, false);
		if (ret)
			break;
		cmd->faults++;
	}
	if (ret == 0)
		cmd->cpages = cmd->npages;
	mmput(dmirror->mm);
	return ret;
}

/*
 * Copy the caller's buffer into write-mapped device pages, stopping with
 * -ENOENT at the first page that is not (the pages before it are written,
 * as in test_hmm).  Needs dmirror->mutex.
 */
static int dmirror_do_write(struct dmirror *dmirror, unsigned long start, unsigned long end,
			    struct hmm_dmirror_cmd *cmd)
{
	const char *ptr = (const char *)(uintptr_t)cmd->ptr + (start - cmd->addr);

	for (unsigned long addr = start; addr < end; addr += PAGE_SIZE, ptr += PAGE_SIZE) {
		uintptr_t entry = dpt_load(&dmirror->pt, addr >> PAGE_SHIFT);
		struct page *page = dpt_entry_page(entry);

		if (!page || (entry & DPT_TAG_MASK) != DPT_XA_TAG_WRITE)
			return -ENOENT;
		memcpy(page_address(page), ptr, PAGE_SIZE);
		cmd->cpages++;
	}
	return 0;
}

static int dmirror_write(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	unsigned long start = cmd->addr, end = start + (cmd->npages << PAGE_SHIFT);
	int ret;

	if (!cmd->ptr)
		return -EFAULT; /* copy_from_user() of the whole buffer fails first */
	if (!mmget_not_zero(dmirror->mm))
		return -EINVAL;
	for (;;) {
		pthread_mutex_lock(&dmirror->mutex);
		ret = dmirror_do_write(dmirror, start, end, cmd);
		pthread_mutex_unlock(&dmirror->mutex);
		if (ret != -ENOENT)
			break;
		start = cmd->addr + (cmd->cpages << PAGE_SHIFT);
		ret = dmirror_fault(dmirror, start, end, true);
		if (ret)
			break;
		cmd->faults++;
	}
	mmput(dmirror->mm);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Migration: system -> device                                         */
/* ------------------------------------------------------------------ */

/* Copy (or clear, for a NULL @spage) @nr pages into @dpage. */
static void dmirror_copy_pages(struct page *dpage, struct page *spage, unsigned long nr)
{
	for (unsigned long j = 0; j < nr; j++) {
		if (spage)
			memcpy(page_address(dpage + j), page_address(spage + j), PAGE_SIZE);
		else
			memset(page_address(dpage + j), 0, PAGE_SIZE);
	}
}

static void dmirror_migrate_alloc_and_copy(struct migrate_vma *args, struct dmirror *dmirror)
{
	const unsigned long *src = args->src;
	unsigned long *dst = args->dst;

	for (unsigned long i = 0; i < args->npages;) {
		struct page *spage = migrate_pfn_to_page(src[i]);
		bool is_large = src[i] & MIGRATE_PFN_COMPOUND;
		unsigned long nr = is_large ? HPAGE_PMD_NR : 1;
		unsigned long write = 0;
		struct folio *dfolio;

		if (!(src[i] & MIGRATE_PFN_MIGRATE)) {
			i++;
			continue;
		}
		if (spage && is_zone_device_page(spage)) {
			/* SELECT_SYSTEM never collects device pages. */
			fprintf(stderr, "dmirror: device page %#lx collected from system memory\n",
				page_to_pfn(spage));
			i += nr;
			continue;
		}
		if ((src[i] & MIGRATE_PFN_WRITE) || (!spage && (args->vma->vm_flags & VM_WRITE)))
			write = MIGRATE_PFN_WRITE;

		dfolio = dmirror_fail_alloc(dmirror) ? NULL : dmirror_devmem_alloc(dmirror, is_large);
		if (dfolio) {
			dmirror_copy_pages(folio_head(dfolio), spage, nr);
			dst[i] = migrate_pfn(folio_pfn(dfolio)) | write |
				 (is_large ? MIGRATE_PFN_COMPOUND : 0);
			i += nr;
			continue;
		}
		if (!is_large) {
			i++; /* dst[i] stays 0: this page stays in system memory */
			continue;
		}
		/*
		 * No PMD-order device folio: fall back to base pages.  The core
		 * splits the source folio (or hole) when migrate_vma_pages()
		 * meets a compound src with a non-compound dst.
		 */
		for (unsigned long j = 0; j < nr; j++) {
			dfolio = dmirror_devmem_alloc(dmirror, false);
			if (!dfolio)
				break;
			dmirror_copy_pages(folio_head(dfolio), spage ? spage + j : NULL, 1);
			dst[i + j] = migrate_pfn(folio_pfn(dfolio)) | write;
		}
		i += nr;
	}
}

/* After migrate_vma_pages(): map what moved into the device page table. */
static int dmirror_migrate_finalize_and_map(struct migrate_vma *args, struct dmirror *dmirror)
{
	unsigned long start = args->start;
	int ret = 0;

	pthread_mutex_lock(&dmirror->mutex);
	for (unsigned long i = 0; i < args->npages && !ret; i++) {
		struct page *dpage = migrate_pfn_to_page(args->dst[i]);
		unsigned long nr;

		if (!dpage || !(args->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		nr = folio_nr_pages(page_folio(dpage));
		for (unsigned long j = 0; j < nr && !ret; j++) {
			uintptr_t entry = (uintptr_t)(dpage + j);

			if (args->dst[i] & MIGRATE_PFN_WRITE)
				entry |= DPT_XA_TAG_WRITE;
			ret = dpt_store(&dmirror->pt, (start >> PAGE_SHIFT) + i + j, entry);
		}
		i += nr - 1;
	}
	pthread_mutex_unlock(&dmirror->mutex);
	return ret;
}

static int dmirror_migrate_to_device(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	unsigned long start = cmd->addr, end = start + (cmd->npages << PAGE_SHIFT);
	struct mm_struct *mm = dmirror->mm;
	unsigned long *src_pfns, *dst_pfns;
	int ret = 0;

	if (!mmget_not_zero(mm))
		return -EINVAL;
	src_pfns = calloc(DMIRROR_MIGRATE_PAGES, sizeof(*src_pfns));
	dst_pfns = calloc(DMIRROR_MIGRATE_PAGES, sizeof(*dst_pfns));
	if (!src_pfns || !dst_pfns) {
		ret = -ENOMEM;
		goto out_free;
	}

	mmap_read_lock(mm);
	for (unsigned long addr = start, next; addr < end; addr = next) {
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		struct migrate_vma args = {0};

		if (!vma || !(vma->vm_flags & VM_READ)) {
			ret = -EINVAL;
			break;
		}
		next = min_ul(end, addr + (DMIRROR_MIGRATE_PAGES << PAGE_SHIFT));
		if (next > vma->vm_end)
			next = vma->vm_end;

		memset(dst_pfns, 0, DMIRROR_MIGRATE_PAGES * sizeof(*dst_pfns));
		args.vma = vma;
		args.src = src_pfns;
		args.dst = dst_pfns;
		args.start = addr;
		args.end = next;
		args.pgmap_owner = dmirror->mdevice;
		args.flags = MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND;
		ret = migrate_vma_setup(&args);
		if (ret)
			break;
		dmirror_migrate_alloc_and_copy(&args, dmirror);
		migrate_vma_pages(&args);
		ret = dmirror_migrate_finalize_and_map(&args, dmirror);
		migrate_vma_finalize(&args);
		if (ret)
			break;
	}
	mmap_read_unlock(mm);
	if (ret)
		goto out_free;

	/* Return the migrated data for verification, read through the device. */
	pthread_mutex_lock(&dmirror->mutex);
	cmd->cpages = (dmirror_first_missing(dmirror, start, end, false) - start) >> PAGE_SHIFT;
	if (cmd->cpages == cmd->npages)
		ret = dmirror_do_read(dmirror, start, end, cmd->ptr);
	else
		ret = -ENOENT;
	pthread_mutex_unlock(&dmirror->mutex);
out_free:
	free(src_pfns);
	free(dst_pfns);
	mmput(mm);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Migration: device -> system                                         */
/* ------------------------------------------------------------------ */

/*
 * Allocate RAM for each migrating device folio, copy, and drop the device
 * mapping of the pages.  Used by MIGRATE_TO_SYS and by the CPU fault path.
 * Return: 0 or VM_FAULT_OOM (the entries left without dst stay on the device).
 */
static vm_fault_t dmirror_devmem_fault_alloc_and_copy(struct migrate_vma *args,
						      struct dmirror *dmirror)
{
	struct uhmm_machine *machine = args->vma->vm_mm->machine;
	const unsigned long *src = args->src;
	unsigned long *dst = args->dst;
	unsigned long start = args->start;

	for (unsigned long i = 0; i < args->npages;) {
		struct page *spage = migrate_pfn_to_page(src[i]);
		struct folio *dfolio = NULL;
		unsigned int order;
		unsigned long nr, write;

		if (!spage || !(src[i] & MIGRATE_PFN_MIGRATE)) {
			i++;
			continue;
		}
		order = folio_order(page_folio(spage));
		nr = 1UL << order;
		write = src[i] & MIGRATE_PFN_WRITE;

		if (order && !dmirror_fail_alloc(dmirror))
			dfolio = folio_alloc(machine, GFP_HIGHUSER_MOVABLE | GFP_TRANSHUGE, order);
		if (!order || dfolio) {
			if (!dfolio)
				dfolio = folio_alloc(machine, GFP_HIGHUSER_MOVABLE, 0);
			if (!dfolio)
				return VM_FAULT_OOM;
			folio_lock(dfolio);
			dmirror_copy_pages(folio_head(dfolio), spage, nr);
			dst[i] = migrate_pfn(folio_pfn(dfolio)) | write |
				 (order ? MIGRATE_PFN_COMPOUND : 0);
		} else {
			/*
			 * No large folio: base pages; migrate_vma_pages()
			 * splits the device folio for a non-compound dst.
			 */
			for (unsigned long j = 0; j < nr; j++) {
				dfolio = folio_alloc(machine, GFP_HIGHUSER_MOVABLE, 0);
				if (!dfolio)
					return VM_FAULT_OOM;
				folio_lock(dfolio);
				dmirror_copy_pages(folio_head(dfolio), spage + j, 1);
				dst[i + j] = migrate_pfn(folio_pfn(dfolio)) | write;
			}
		}
		if (dmirror) {
			pthread_mutex_lock(&dmirror->mutex);
			dmirror_do_update(dmirror, start + (i << PAGE_SHIFT),
					  start + ((i + nr) << PAGE_SHIFT));
			pthread_mutex_unlock(&dmirror->mutex);
		}
		i += nr;
	}
	return 0;
}

/* Pages of @args that moved: entries still VALID and MIGRATE after migrate_vma_pages(). */
static unsigned long dmirror_successful_migrated_pages(struct migrate_vma *args)
{
	unsigned long cpages = 0;

	for (unsigned long i = 0; i < args->npages; i++) {
		if ((args->src[i] & MIGRATE_PFN_VALID) && (args->src[i] & MIGRATE_PFN_MIGRATE))
			cpages += (args->src[i] & MIGRATE_PFN_COMPOUND) ? HPAGE_PMD_NR : 1;
	}
	return cpages;
}

static int dmirror_migrate_to_system(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	unsigned long start = cmd->addr, end = start + (cmd->npages << PAGE_SHIFT);
	struct mm_struct *mm = dmirror->mm;
	unsigned long *src_pfns, *dst_pfns;
	int ret = 0;

	if (!mmget_not_zero(mm))
		return -EINVAL;
	src_pfns = calloc(DMIRROR_MIGRATE_PAGES, sizeof(*src_pfns));
	dst_pfns = calloc(DMIRROR_MIGRATE_PAGES, sizeof(*dst_pfns));
	if (!src_pfns || !dst_pfns) {
		ret = -ENOMEM;
		goto out_free;
	}

	cmd->cpages = 0;
	mmap_read_lock(mm);
	for (unsigned long addr = start, next; addr < end; addr = next) {
		struct vm_area_struct *vma = vma_lookup(mm, addr);
		struct migrate_vma args = {0};

		if (!vma || !(vma->vm_flags & VM_READ)) {
			ret = -EINVAL;
			break;
		}
		next = min_ul(end, addr + (DMIRROR_MIGRATE_PAGES << PAGE_SHIFT));
		if (next > vma->vm_end)
			next = vma->vm_end;

		memset(dst_pfns, 0, DMIRROR_MIGRATE_PAGES * sizeof(*dst_pfns));
		args.vma = vma;
		args.src = src_pfns;
		args.dst = dst_pfns;
		args.start = addr;
		args.end = next;
		args.pgmap_owner = dmirror->mdevice;
		args.flags = dmirror_select_device(dmirror) | MIGRATE_VMA_SELECT_COMPOUND;
		ret = migrate_vma_setup(&args);
		if (ret)
			break;
		/*
		 * As test_hmm: a page whose system page could not be allocated
		 * stays on the device and is not counted in cpages; the call
		 * still returns 0 and goes on with the next batch.
		 */
		dmirror_devmem_fault_alloc_and_copy(&args, dmirror);
		migrate_vma_pages(&args);
		cmd->cpages += dmirror_successful_migrated_pages(&args);
		migrate_vma_finalize(&args);
	}
	mmap_read_unlock(mm);
out_free:
	free(src_pfns);
	free(dst_pfns);
	mmput(mm);
	return ret;
}

/*
 * dev_pagemap_ops.migrate_to_ram: the CPU touched a device-private page.
 * A fault through a PTE migrates one page (the folio may be partly mapped);
 * one through a device-private PMD (vmf->pte == NULL) the whole folio.
 */
static vm_fault_t dmirror_devmem_fault(struct vm_fault *vmf)
{
	struct folio *folio = page_folio(vmf->page);
	/* The mirror that allocated the page (NULL for a page split off without the callback). */
	struct dmirror *dmirror = folio_zone_device_data(folio);
	struct dmirror_device *mdevice = dmirror_page_to_device(vmf->page);
	unsigned int order = vmf->pte ? 0 : folio_order(folio);
	unsigned long nr = 1UL << order;
	unsigned long *src_pfns, *dst_pfns;
	struct migrate_vma args = {0};
	vm_fault_t ret;

	src_pfns = calloc(nr, sizeof(*src_pfns));
	dst_pfns = calloc(nr, sizeof(*dst_pfns));
	if (!src_pfns || !dst_pfns) {
		ret = VM_FAULT_OOM;
		goto out;
	}
	args.vma = vmf->vma;
	args.start = ALIGN_DOWN(vmf->address, PAGE_SIZE << order);
	args.end = args.start + (PAGE_SIZE << order);
	args.src = src_pfns;
	args.dst = dst_pfns;
	args.pgmap_owner = mdevice;
	args.flags = (mdevice->zone_device_type == HMM_DMIRROR_MEMORY_DEVICE_PRIVATE
			      ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE
			      : MIGRATE_VMA_SELECT_DEVICE_COHERENT) |
		     (order ? MIGRATE_VMA_SELECT_COMPOUND : 0);
	args.fault_page = vmf->page;
	if (migrate_vma_setup(&args)) {
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	/* The device page table entries are dropped by the copy. */
	ret = dmirror_devmem_fault_alloc_and_copy(&args, dmirror);
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
out:
	free(src_pfns);
	free(dst_pfns);
	return ret;
}

/* ------------------------------------------------------------------ */
/* SNAPSHOT                                                            */
/* ------------------------------------------------------------------ */

/* A temporary interval notifier over one snapshot chunk. */
struct dmirror_interval {
	struct mmu_interval_notifier notifier;
	pthread_mutex_t lock;
};

static bool dmirror_snapshot_invalidate(struct mmu_interval_notifier *mni,
					const struct mmu_notifier_range *range,
					unsigned long cur_seq)
{
	struct dmirror_interval *dmi = container_of(mni, struct dmirror_interval, notifier);

	if (mmu_notifier_range_blockable(range))
		pthread_mutex_lock(&dmi->lock);
	else if (pthread_mutex_trylock(&dmi->lock))
		return false;
	mmu_interval_set_seq(mni, cur_seq);
	pthread_mutex_unlock(&dmi->lock);
	return true;
}

static const struct mmu_interval_notifier_ops dmirror_mrn_ops = {
	.invalidate = dmirror_snapshot_invalidate,
};

/* The HMM_DMIRROR_PROT_* byte of one hmm_pfns[] entry. */
static void dmirror_mkentry(struct dmirror *dmirror, struct hmm_range *range, unsigned char *perm,
			    unsigned long entry)
{
	struct page *page;
	unsigned int order;

	(void)range;
	if (entry & HMM_PFN_ERROR) {
		*perm = HMM_DMIRROR_PROT_ERROR;
		return;
	}
	if (!(entry & HMM_PFN_VALID)) {
		*perm = HMM_DMIRROR_PROT_NONE;
		return;
	}
	page = hmm_pfn_to_page(entry);
	if (is_device_private_page(page)) {
		/* Is the page migrated to this device or some other? */
		if (dmirror->mdevice == dmirror_page_to_device(page))
			*perm = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
		else
			*perm = HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
	} else if (is_device_coherent_page(page)) {
		if (dmirror->mdevice == dmirror_page_to_device(page))
			*perm = HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL;
		else
			*perm = HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE;
	} else if (is_zero_pfn(page_to_pfn(page))) {
		*perm = HMM_DMIRROR_PROT_ZERO;
	} else {
		*perm = HMM_DMIRROR_PROT_NONE;
	}
	if (entry & HMM_PFN_WRITE)
		*perm |= HMM_DMIRROR_PROT_WRITE;
	else
		*perm |= HMM_DMIRROR_PROT_READ;
	order = hmm_pfn_to_map_order(entry);
	if (order + PAGE_SHIFT == PMD_SHIFT)
		*perm |= HMM_DMIRROR_PROT_PMD;
	else if (order + PAGE_SHIFT == PUD_SHIFT)
		*perm |= HMM_DMIRROR_PROT_PUD;
}

static int dmirror_range_snapshot(struct dmirror *dmirror, struct hmm_range *range,
				  unsigned char *perm)
{
	struct mm_struct *mm = dmirror->mm;
	struct dmirror_interval notifier = {0};
	uint64_t timeout = now_ms() + HMM_RANGE_DEFAULT_TIMEOUT;
	int ret;

	pthread_mutex_init(&notifier.lock, NULL);
	ret = mmu_interval_notifier_insert(&notifier.notifier, mm, range->start,
					   range->end - range->start, &dmirror_mrn_ops);
	if (ret) {
		pthread_mutex_destroy(&notifier.lock);
		return ret;
	}
	range->notifier = &notifier.notifier;

	for (;;) {
		if (now_ms() > timeout) {
			ret = -EBUSY;
			goto out;
		}
		range->notifier_seq = mmu_interval_read_begin(range->notifier);
		mmap_read_lock(mm);
		ret = hmm_range_fault(range);
		mmap_read_unlock(mm);
		if (ret) {
			if (ret == -EBUSY)
				continue;
			goto out;
		}
		pthread_mutex_lock(&notifier.lock);
		if (mmu_interval_read_retry(range->notifier, range->notifier_seq)) {
			pthread_mutex_unlock(&notifier.lock);
			continue;
		}
		break;
	}
	for (unsigned long i = 0; i < (range->end - range->start) >> PAGE_SHIFT; i++)
		dmirror_mkentry(dmirror, range, perm + i, range->hmm_pfns[i]);
	pthread_mutex_unlock(&notifier.lock);
out:
	mmu_interval_notifier_remove(range->notifier);
	pthread_mutex_destroy(&notifier.lock);
	return ret;
}

static int dmirror_snapshot(struct dmirror *dmirror, struct hmm_dmirror_cmd *cmd)
{
	unsigned long start = cmd->addr, end = start + (cmd->npages << PAGE_SHIFT);
	unsigned long pfns[DMIRROR_FAULT_PAGES] = {0};
	unsigned char perm[DMIRROR_FAULT_PAGES];
	struct hmm_range range = {
		.hmm_pfns = pfns,
		.dev_private_owner = dmirror->mdevice,
	};
	int ret = 0;

	if (!cmd->ptr)
		return -EFAULT;
	if (!mmget_not_zero(dmirror->mm))
		return -EINVAL;
	/*
	 * Register a temporary notifier to detect invalidations even if it
	 * overlaps with other mmu_interval_notifiers.
	 */
	for (unsigned long addr = start, next; addr < end; addr = next) {
		unsigned long n;

		next = min_ul(addr + (DMIRROR_FAULT_PAGES << PAGE_SHIFT), end);
		range.start = addr;
		range.end = next;
		ret = dmirror_range_snapshot(dmirror, &range, perm);
		if (ret)
			break;
		n = (range.end - range.start) >> PAGE_SHIFT;
		ret = copy_to_user(cmd->ptr + cmd->cpages, perm, n);
		if (ret)
			break;
		cmd->cpages += n;
	}
	mmput(dmirror->mm);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Eviction and chunk removal                                          */
/* ------------------------------------------------------------------ */

/* Drop every open mirror's mappings of device pfns [lo, hi] of @mdevice. */
static void dmirror_forget_pfns(struct dmirror_device *mdevice, unsigned long lo, unsigned long hi)
{
	struct dmirror_module *mod = mdevice->mod;

	pthread_mutex_lock(&mod->lock);
	for (int i = 0; i < mod->nr_open; i++) {
		struct dmirror *dmirror = i < 64 ? mod->mirrors[i] : mod->more_mirrors[i - 64];

		if (dmirror->mdevice != mdevice)
			continue;
		pthread_mutex_lock(&dmirror->mutex);
		dpt_erase_pfns(&dmirror->pt, lo, hi);
		pthread_mutex_unlock(&dmirror->mutex);
	}
	pthread_mutex_unlock(&mod->lock);
}

/*
 * Migrate every in-use page of @chunk back to system RAM, whoever maps it:
 * migrate_device_range() collects and unmaps them through the reverse map.
 */
static void dmirror_device_evict_chunk(struct dmirror_chunk *chunk)
{
	struct uhmm_machine *machine = chunk->mdevice->mod->machine;
	unsigned long start_pfn = chunk->pagemap.range.start >> PAGE_SHIFT;
	unsigned long npages = range_len(&chunk->pagemap.range) >> PAGE_SHIFT;
	unsigned long *src_pfns, *dst_pfns;

	src_pfns = calloc(npages, sizeof(*src_pfns));
	dst_pfns = calloc(npages, sizeof(*dst_pfns));
	if (!src_pfns || !dst_pfns) {
		/* Linux uses __GFP_NOFAIL here. */
		fprintf(stderr, "dmirror: out of memory evicting a chunk\n");
		abort();
	}

	migrate_device_range(src_pfns, start_pfn, npages);
	dmirror_forget_pfns(chunk->mdevice, start_pfn, start_pfn + npages - 1);
	for (unsigned long i = 0; i < npages; i++) {
		struct page *spage = migrate_pfn_to_page(src_pfns[i]);
		struct folio *dfolio;
		unsigned int order;

		if (!spage || !(src_pfns[i] & MIGRATE_PFN_MIGRATE))
			continue;
		order = folio_order(page_folio(spage));
		dfolio = folio_alloc(machine, GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL |
					      (order ? GFP_TRANSHUGE : 0), order);
		if (!dfolio) {
			fprintf(stderr, "dmirror: out of memory evicting device page %#lx\n",
				page_to_pfn(spage));
			abort();
		}
		folio_lock(dfolio);
		dmirror_copy_pages(folio_head(dfolio), spage, 1UL << order);
		dst_pfns[i] = migrate_pfn(folio_pfn(dfolio)) | (order ? MIGRATE_PFN_COMPOUND : 0);
	}
	migrate_device_pages(src_pfns, dst_pfns, npages);
	migrate_device_finalize(src_pfns, dst_pfns, npages);
	free(src_pfns);
	free(dst_pfns);
}

/* Evict every chunk of @mdevice, keeping the chunks (close of a mirror). */
static void dmirror_device_evict(struct dmirror_device *mdevice)
{
	struct dmirror_chunk **chunks;
	unsigned int count;

	pthread_mutex_lock(&mdevice->devmem_lock);
	count = mdevice->devmem_count;
	chunks = malloc(sizeof(*chunks) * (count ? count : 1));
	if (chunks && count) /* memcpy() from NULL is undefined even for 0 bytes */
		memcpy(chunks, mdevice->devmem_chunks, sizeof(*chunks) * count);
	pthread_mutex_unlock(&mdevice->devmem_lock);
	if (!chunks)
		abort();
	/* Chunks are only freed by RELEASE and module exit, not concurrently with a close. */
	for (unsigned int i = 0; i < count; i++)
		dmirror_device_evict_chunk(chunks[i]);
	free(chunks);
}

/* HMM_DMIRROR_RELEASE: evict and free every chunk of @mdevice. */
static void dmirror_device_remove_chunks(struct dmirror_device *mdevice)
{
	struct dmirror_chunk **chunks;
	unsigned int count;

	pthread_mutex_lock(&mdevice->devmem_lock);
	chunks = mdevice->devmem_chunks;
	count = mdevice->devmem_count;
	mdevice->devmem_chunks = NULL;
	mdevice->devmem_count = 0;
	mdevice->devmem_capacity = 0;
	pthread_mutex_lock(&mdevice->lock);
	for (unsigned int i = 0; i < count; i++)
		atomic_store(&chunks[i]->remove, true);
	/* Every free page belongs to a chunk going away. */
	mdevice->free_pages.nr = 0;
	mdevice->free_folios.nr = 0;
	pthread_mutex_unlock(&mdevice->lock);
	pthread_mutex_unlock(&mdevice->devmem_lock);

	for (unsigned int i = 0; i < count; i++) {
		struct dmirror_chunk *devmem = chunks[i];

		dmirror_device_evict_chunk(devmem);
		memunmap_pages(&devmem->pagemap);
		release_mem_region(devmem->res);
		free(devmem);
	}
	free(chunks);
}

/* ------------------------------------------------------------------ */
/* The file operations                                                 */
/* ------------------------------------------------------------------ */

/**
 * dmirror_ioctl() - one command on an open mirror.
 * @dmirror: the mirror (from dmirror_open()).
 * @request: HMM_DMIRROR_*.
 * @cmd: the argument, copied in, and out again on success.
 *
 * Takes the mirror's mm's mmap_lock (read) and the driver's locks as the
 * command needs; call without any.
 * Return: 0 or a negative errno, as test_hmm: -EINVAL (unaligned addr,
 * empty or wrapping range, unknown command, an unmapped or unreadable VMA
 * for the migrations), -EFAULT, -EPERM, -ENOENT, -EBUSY, -ENOMEM,
 * -EOPNOTSUPP (EXCLUSIVE, CHECK_EXCLUSIVE: no device-exclusive entries yet).
 */
int dmirror_ioctl(struct dmirror *dmirror, unsigned long request, struct hmm_dmirror_cmd *ucmd)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	if (!dmirror_is_open(dmirror))
		return -EBADF; /* a closed (or NULL) handle, as ioctl(2) of a closed fd */
	if (!ucmd)
		return -EFAULT;
	cmd = *ucmd;
	if (cmd.addr & ~PAGE_MASK)
		return -EINVAL;
	if (cmd.addr >= (cmd.addr + (cmd.npages << PAGE_SHIFT)))
		return -EINVAL;
	cmd.cpages = 0;
	cmd.faults = 0;

	switch (request) {
	case HMM_DMIRROR_READ:
		ret = dmirror_read(dmirror, &cmd);
		break;
	case HMM_DMIRROR_WRITE:
		ret = dmirror_write(dmirror, &cmd);
		break;
	case HMM_DMIRROR_MIGRATE_TO_DEV:
		ret = dmirror_migrate_to_device(dmirror, &cmd);
		break;
	case HMM_DMIRROR_MIGRATE_TO_SYS:
		ret = dmirror_migrate_to_system(dmirror, &cmd);
		break;
	case HMM_DMIRROR_EXCLUSIVE:
	case HMM_DMIRROR_CHECK_EXCLUSIVE:
		/* uhmm: make_device_exclusive() does not exist yet. */
		ret = -EOPNOTSUPP;
		break;
	case HMM_DMIRROR_SNAPSHOT:
		ret = dmirror_snapshot(dmirror, &cmd);
		break;
	case HMM_DMIRROR_RELEASE:
		dmirror_device_remove_chunks(dmirror->mdevice);
		ret = 0;
		break;
	case HMM_DMIRROR_FLAGS:
		atomic_store(&dmirror->flags, cmd.npages);
		ret = 0;
		break;
	default:
		return -EINVAL;
	}
	if (ret)
		return ret;
	*ucmd = cmd;
	return 0;
}

static int dmirror_track(struct dmirror_module *mod, struct dmirror *dmirror)
{
	pthread_mutex_lock(&mod->lock);
	if (mod->nr_open >= 64) {
		struct dmirror **more = realloc(mod->more_mirrors,
						sizeof(*more) * (size_t)(mod->nr_open - 63));

		if (!more) {
			pthread_mutex_unlock(&mod->lock);
			return -ENOMEM;
		}
		mod->more_mirrors = more;
		more[mod->nr_open - 64] = dmirror;
	} else {
		mod->mirrors[mod->nr_open] = dmirror;
	}
	mod->nr_open++;
	pthread_mutex_unlock(&mod->lock);
	return 0;
}

static void dmirror_untrack(struct dmirror_module *mod, struct dmirror *dmirror)
{
	pthread_mutex_lock(&mod->lock);
	for (int i = 0; i < mod->nr_open; i++) {
		struct dmirror **slot = i < 64 ? &mod->mirrors[i] : &mod->more_mirrors[i - 64];
		int last = mod->nr_open - 1;

		if (*slot != dmirror)
			continue;
		*slot = last < 64 ? mod->mirrors[last] : mod->more_mirrors[last - 64];
		mod->nr_open--;
		break;
	}
	pthread_mutex_unlock(&mod->lock);
}

/**
 * dmirror_open() - open /dev/hmm_dmirror<@minor> from the process @mm.
 * @mod: the module.
 * @minor: 0..DMIRROR_NDEVICES-1.
 * @mm: a live address space; takes a user reference until release, and
 *      registers an interval notifier over all of it (no locks held).
 * Return: the mirror, or ERR_PTR(-ENODEV) for a bad minor or missing
 * module/mm, ERR_PTR(-ENOMEM).
 */
struct dmirror *dmirror_open(struct dmirror_module *mod, unsigned int minor, struct mm_struct *mm)
{
	struct dmirror *dmirror;
	int ret;

	if (!mod || minor >= DMIRROR_NDEVICES || !mm)
		return ERR_PTR(-ENODEV);
	if (!mmget_not_zero(mm))
		return ERR_PTR(-EINVAL);
	dmirror = calloc(1, sizeof(*dmirror));
	if (!dmirror) {
		mmput(mm);
		return ERR_PTR(-ENOMEM);
	}
	dmirror->mdevice = &mod->devices[minor];
	dmirror->mm = mm;
	pthread_mutex_init(&dmirror->mutex, NULL);
	ret = mmu_interval_notifier_insert(&dmirror->notifier, mm, 0, ULONG_MAX & PAGE_MASK,
					   &dmirror_min_ops);
	if (ret)
		goto err;
	ret = dmirror_track(mod, dmirror);
	if (ret) {
		mmu_interval_notifier_remove(&dmirror->notifier);
		goto err;
	}
	pthread_mutex_lock(&open_mirrors_lock);
	dmirror->next_open = open_mirrors;
	open_mirrors = dmirror;
	pthread_mutex_unlock(&open_mirrors_lock);
	return dmirror;
err:
	pthread_mutex_destroy(&dmirror->mutex);
	free(dmirror);
	mmput(mm);
	return ERR_PTR(ret);
}

/**
 * dmirror_release() - close: remove the notifier, evict every chunk of the
 * device back to system RAM, free the mirror and drop its mm reference.
 * Call without locks; @dmirror must not be used concurrently.
 */
void dmirror_release(struct dmirror *dmirror)
{
	struct dmirror_device *mdevice;

	if (IS_ERR_OR_NULL(dmirror) || !dmirror_close_handle(dmirror))
		return; /* closing a closed handle: close(2) says -EBADF, and does nothing */
	mdevice = dmirror->mdevice;
	mmu_interval_notifier_remove(&dmirror->notifier);
	dmirror_device_evict(mdevice);
	dmirror_untrack(mdevice->mod, dmirror);
	pthread_mutex_lock(&dmirror->mutex);
	dpt_destroy(&dmirror->pt);
	pthread_mutex_unlock(&dmirror->mutex);
	pthread_mutex_destroy(&dmirror->mutex);
	mmput(dmirror->mm);
	free(dmirror);
}

/* The driver's f_op->mmap: zeroed driver pages in every page of the VMA. */
static int dmirror_fops_mmap(struct vm_area_struct *vma, void *priv)
{
	struct dmirror *dmirror = priv;

	for (unsigned long addr = vma->vm_start; addr < vma->vm_end; addr += PAGE_SIZE) {
		struct page *page = alloc_pages(dmirror->mdevice->mod->machine, GFP_KERNEL | __GFP_ZERO, 0);
		int ret;

		if (!page)
			return -ENOMEM;
		ret = vm_insert_page(vma, addr, page);
		if (ret) {
			__free_pages(page, 0);
			return ret;
		}
		put_page(page); /* the mapping holds the page now */
	}
	return 0;
}

/**
 * dmirror_mmap() - mmap() of the device file into the mirror's mm: a
 * VM_MIXEDMAP VMA whose pages are zeroed driver pages (vm_insert_page()),
 * freed when unmapped.  Takes the mm's mmap_lock for writing.
 * Return: the address, or a negative errno as mm_mmap_device().
 */
long dmirror_mmap(struct dmirror *dmirror, unsigned long addr, unsigned long len, int prot,
		  int flags)
{
	if (!dmirror_is_open(dmirror))
		return -EBADF; /* mmap(2) of a closed fd */
	return mm_mmap_device(dmirror->mm, addr, len, prot, flags, dmirror_fops_mmap, dmirror);
}

/* ------------------------------------------------------------------ */
/* Module init / exit                                                  */
/* ------------------------------------------------------------------ */

static int dmirror_device_init(struct dmirror_device *mdevice)
{
	pthread_mutex_init(&mdevice->devmem_lock, NULL);
	pthread_mutex_init(&mdevice->lock, NULL);
	fault_injector_init(&mdevice->fail_devmem_alloc);
	/* Build a list of free ZONE_DEVICE struct pages */
	return dmirror_allocate_chunk(mdevice, NULL, false);
}

static void dmirror_device_remove(struct dmirror_device *mdevice)
{
	dmirror_device_remove_chunks(mdevice);
	free(mdevice->free_pages.pfns);
	free(mdevice->free_folios.pfns);
	pthread_mutex_destroy(&mdevice->devmem_lock);
	pthread_mutex_destroy(&mdevice->lock);
	fault_injector_destroy(&mdevice->fail_devmem_alloc);
}

/**
 * dmirror_module_init() - "insmod test_hmm": create the DMIRROR_NDEVICES
 * devices (0, 1 device-private, 2, 3 device-coherent), each with a first
 * chunk of device memory.
 * Return: the module, or ERR_PTR(-EINVAL) without a machine,
 * ERR_PTR(-ENOMEM) or the error of memremap_pages().
 */
struct dmirror_module *dmirror_module_init(struct uhmm_machine *machine)
{
	struct dmirror_module *mod;
	int ret = 0;
	unsigned int id;

	if (IS_ERR_OR_NULL(machine))
		return ERR_PTR(-EINVAL);
	mod = calloc(1, sizeof(*mod));
	if (!mod)
		return ERR_PTR(-ENOMEM);
	mod->machine = machine;
	pthread_mutex_init(&mod->lock, NULL);
	for (id = 0; id < DMIRROR_NDEVICES; id++) {
		struct dmirror_device *mdevice = &mod->devices[id];

		mdevice->mod = mod;
		mdevice->minor = id;
		mdevice->zone_device_type = id < 2 ? HMM_DMIRROR_MEMORY_DEVICE_PRIVATE
						   : HMM_DMIRROR_MEMORY_DEVICE_COHERENT;
		ret = dmirror_device_init(mdevice);
		if (ret) {
			pthread_mutex_destroy(&mdevice->devmem_lock);
			pthread_mutex_destroy(&mdevice->lock);
			break;
		}
	}
	if (ret) {
		while (id--)
			dmirror_device_remove(&mod->devices[id]);
		pthread_mutex_destroy(&mod->lock);
		free(mod);
		return ERR_PTR(ret);
	}
	return mod;
}

/**
 * dmirror_module_exit() - "rmmod test_hmm": evict and free all device memory.
 * Return: 0, or -EBUSY (nothing done) while a device is still open.
 */
int dmirror_module_exit(struct dmirror_module *mod)
{
	if (IS_ERR_OR_NULL(mod))
		return -EINVAL;
	pthread_mutex_lock(&mod->lock);
	if (mod->nr_open) {
		pthread_mutex_unlock(&mod->lock);
		return -EBUSY;
	}
	pthread_mutex_unlock(&mod->lock);
	for (unsigned int id = 0; id < DMIRROR_NDEVICES; id++)
		dmirror_device_remove(&mod->devices[id]);
	pthread_mutex_destroy(&mod->lock);
	free(mod->more_mirrors);
	free(mod);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Introspection: the driver's part of the audit                       */
/* ------------------------------------------------------------------ */

/**
 * dmirror_device_stats() - a device's memory counters.
 * Takes the device's locks.  Return: 0, or -ENODEV for a bad minor.
 */
int dmirror_device_stats(struct dmirror_module *mod, unsigned int minor, struct dmirror_stats *st)
{
	struct dmirror_device *mdevice;

	if (IS_ERR_OR_NULL(mod) || minor >= DMIRROR_NDEVICES)
		return -ENODEV;
	if (!st)
		return -EINVAL;
	mdevice = &mod->devices[minor];
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&mdevice->devmem_lock);
	st->nr_chunks = mdevice->devmem_count;
	for (unsigned int i = 0; i < mdevice->devmem_count; i++)
		st->nr_pages += range_len(&mdevice->devmem_chunks[i]->pagemap.range) >> PAGE_SHIFT;
	pthread_mutex_lock(&mdevice->lock);
	st->free_pages = mdevice->free_pages.nr;
	st->free_folios = mdevice->free_folios.nr;
	st->calloc = mdevice->calloc;
	st->cfree = mdevice->cfree;
	pthread_mutex_unlock(&mdevice->lock);
	pthread_mutex_unlock(&mdevice->devmem_lock);
	return 0;
}

/**
 * dmirror_fail_devmem_alloc() - set or clear failure injection for device
 * @minor's memory allocator (order 0 and PMD-order device folios).
 * Takes the injector's lock.  Return: 0, or -ENODEV for a bad minor.
 */
int dmirror_fail_devmem_alloc(struct dmirror_module *mod, unsigned int minor,
			      const struct fault_attr *attr)
{
	if (IS_ERR_OR_NULL(mod) || minor >= DMIRROR_NDEVICES)
		return -ENODEV;
	fault_injector_set(&mod->devices[minor].fail_devmem_alloc, attr);
	return 0;
}

/**
 * dmirror_fail_devmem_alloc_count() - failures injected into device
 * @minor's allocator since its rule was set; 0 for a bad minor.  Lock-free.
 */
unsigned long dmirror_fail_devmem_alloc_count(struct dmirror_module *mod, unsigned int minor)
{
	if (IS_ERR_OR_NULL(mod) || minor >= DMIRROR_NDEVICES)
		return 0;
	return fault_injector_count(&mod->devices[minor].fail_devmem_alloc);
}

/**
 * dmirror_fail_devmem_alloc_calls() - allocations device @minor's rule has
 * counted as eligible since it was set; 0 for a bad minor.  Takes the
 * injector's lock.
 */
unsigned long dmirror_fail_devmem_alloc_calls(struct dmirror_module *mod, unsigned int minor)
{
	if (IS_ERR_OR_NULL(mod) || minor >= DMIRROR_NDEVICES)
		return 0;
	return fault_injector_calls(&mod->devices[minor].fail_devmem_alloc);
}

struct dmirror_audit {
	FILE *report;
	int violations;
};

static void __attribute__((format(printf, 2, 3))) dmirror_violation(struct dmirror_audit *a,
								     const char *fmt, ...)
{
	va_list ap;

	a->violations++;
	if (!a->report)
		return;
	fprintf(a->report, "dmirror audit: ");
	va_start(ap, fmt);
	vfprintf(a->report, fmt, ap);
	va_end(ap);
	fputc('\n', a->report);
}

/* Find the chunk of @mdevice holding @pfn; its index in *@idx. Needs devmem_lock. */
static struct dmirror_chunk *dmirror_pfn_chunk(struct dmirror_device *mdevice, unsigned long pfn,
					       unsigned long *idx)
{
	for (unsigned int i = 0; i < mdevice->devmem_count; i++) {
		struct dmirror_chunk *c = mdevice->devmem_chunks[i];
		unsigned long first = c->pagemap.range.start >> PAGE_SHIFT;

		if (pfn >= first && pfn < first + (range_len(&c->pagemap.range) >> PAGE_SHIFT)) {
			*idx = i;
			return c;
		}
	}
	return NULL;
}

static void dmirror_audit_free_list(struct dmirror_audit *a, struct dmirror_device *mdevice,
				    const struct pfn_stack *s, unsigned long nr, uint8_t **seen)
{
	for (size_t k = 0; k < s->nr; k++) {
		unsigned long pfn = s->pfns[k], idx;
		struct dmirror_chunk *c = dmirror_pfn_chunk(mdevice, pfn, &idx);
		unsigned long off;

		if (!c || !IS_ALIGNED(pfn, nr)) {
			dmirror_violation(a, "dev%u: free pfn %#lx not in a chunk or misaligned",
					  mdevice->minor, pfn);
			continue;
		}
		off = pfn - (c->pagemap.range.start >> PAGE_SHIFT);
		for (unsigned long j = 0; j < nr; j++) {
			if (seen[idx][off + j])
				dmirror_violation(a, "dev%u: pfn %#lx on the free lists twice",
						  mdevice->minor, pfn + j);
			seen[idx][off + j] = 1;
		}
		if (page_ref_count(pfn_to_page(pfn)))
			dmirror_violation(a, "dev%u: free pfn %#lx has refcount %d", mdevice->minor,
					  pfn, page_ref_count(pfn_to_page(pfn)));
	}
}

/**
 * dmirror_audit() - check the driver's device memory: every free-list
 * entry is a free page (refcount 0) of one of the device's chunks, listed
 * once; every other page is in use (its folio has a reference); and
 * calloc - cfree equals the pages in use.  Call while no command runs.
 * Return: the number of violations, each written to @report if not NULL.
 */
int dmirror_audit(struct dmirror_module *mod, FILE *report)
{
	struct dmirror_audit a = {.report = report};

	if (IS_ERR_OR_NULL(mod))
		return 1;
	for (unsigned int id = 0; id < DMIRROR_NDEVICES; id++) {
		struct dmirror_device *mdevice = &mod->devices[id];
		unsigned long in_use = 0;
		uint8_t **seen;

		pthread_mutex_lock(&mdevice->devmem_lock);
		pthread_mutex_lock(&mdevice->lock);
		seen = calloc(mdevice->devmem_count + 1, sizeof(*seen));
		for (unsigned int i = 0; seen && i < mdevice->devmem_count; i++) {
			seen[i] = calloc(range_len(&mdevice->devmem_chunks[i]->pagemap.range) >>
						 PAGE_SHIFT,
					 1);
			if (!seen[i]) {
				for (unsigned int j = 0; j < i; j++)
					free(seen[j]);
				free(seen);
				seen = NULL;
			}
		}
		if (!seen) {
			dmirror_violation(&a, "out of memory");
			goto unlock;
		}
		dmirror_audit_free_list(&a, mdevice, &mdevice->free_pages, 1, seen);
		dmirror_audit_free_list(&a, mdevice, &mdevice->free_folios, HPAGE_PMD_NR, seen);
		for (unsigned int i = 0; i < mdevice->devmem_count; i++) {
			struct dmirror_chunk *c = mdevice->devmem_chunks[i];
			unsigned long first = c->pagemap.range.start >> PAGE_SHIFT;
			unsigned long n = range_len(&c->pagemap.range) >> PAGE_SHIFT;

			if (page_pgmap(pfn_to_page(first)) != &c->pagemap)
				dmirror_violation(&a, "dev%u: chunk %u not memremapped", id, i);
			for (unsigned long off = 0; off < n; off++) {
				if (seen[i][off])
					continue;
				if (folio_ref_count(page_folio(pfn_to_page(first + off))) > 0)
					in_use++;
				else
					dmirror_violation(&a, "dev%u: pfn %#lx free but on no free list",
							  id, first + off);
			}
			free(seen[i]);
		}
		free(seen);
		if (mdevice->calloc - mdevice->cfree != in_use)
			dmirror_violation(&a, "dev%u: calloc %lu - cfree %lu != %lu pages in use", id,
					  mdevice->calloc, mdevice->cfree, in_use);
unlock:
		pthread_mutex_unlock(&mdevice->lock);
		pthread_mutex_unlock(&mdevice->devmem_lock);
	}
	return a.violations;
}
