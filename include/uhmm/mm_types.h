/* SPDX-License-Identifier: MIT */
/*
 * uhmm/mm_types.h - struct page, struct folio, struct vm_area_struct and
 * struct mm_struct, laid out the way include/linux/mm_types.h lays them out.
 *
 * A struct page is 64 bytes.  A folio is its head page: struct folio
 * overlays the head page and the two pages after it, so the fields a large
 * folio needs beyond one page (order, entire and large mapcount, pin count,
 * deferred-split list) live in the first and second tail pages, as in Linux.
 */
#ifndef UHMM_MM_TYPES_H
#define UHMM_MM_TYPES_H

#include <pthread.h>

#include "uhmm/types.h"

struct uhmm_machine;
struct mm_struct;
struct anon_vma;
struct file;
struct dev_pagemap;
struct mmu_notifier_subscriptions;

/**
 * enum pageflags - bits of page->flags (and folio->flags).
 *
 * PG_locked is the folio lock (a bit with waiters parked on the machine's
 * folio wait table).  PG_head marks the first page of a large folio;
 * PG_buddy marks the first page of a free block in the buddy allocator (Linux
 * keeps that in page_type; uhmm keeps it here).  PG_anon_exclusive is
 * per-page, like Linux's.
 */
enum pageflags {
	PG_locked,
	PG_referenced,
	PG_uptodate,
	PG_dirty,
	PG_lru,
	PG_head,
	PG_active,
	PG_reserved,
	PG_private,
	PG_writeback,
	PG_swapbacked,
	PG_swapcache,
	PG_anon_exclusive,
	PG_buddy,
	PG_table,
	PG_lazyfree_marker, /* unused: lazyfree is !PG_swapbacked on an anon folio */
	PG_zero,            /* the shared zero page or the huge zero folio */
	PG_hugetlb,         /* a hugetlb pool folio (Linux's PGTY_hugetlb page type), on the head */
	PG_migrate_anon_vma,/* uhmm-only, on the head of a locked source folio: the pfn-based
			     * migration (migrate_device_range/pfns) holds a reference on its
			     * anon_vma, dropped in migrate_device_finalize() */
	__NR_PAGEFLAGS,
};

/* The folio order lives in the low byte of the first tail page's flags. */
#define FOLIO_ORDER_MASK 0xffUL

/**
 * struct page - metadata for one 4 KiB page frame (64 bytes).
 *
 * The first word of the union is lru.next for a head or order-0 page, and
 * compound_head (head pointer | 1) for a tail page, as in Linux.
 */
struct page {
	unsigned long flags;
	union {
		struct { /* anonymous, page-cache and free pages */
			struct list_head lru; /* buddy free list, deferred split */
			void *mapping;        /* anon: anon_vma | PAGE_MAPPING_ANON */
			unsigned long index;  /* page offset within the mapping */
			unsigned long private;/* buddy: order of the free block */
		};
		struct { /* ZONE_DEVICE pages (overlay lru, as in Linux) */
			struct dev_pagemap *pgmap;
			void *zone_device_data;
		};
		struct { /* tail pages of a large folio */
			unsigned long compound_head; /* head | 1 */
		};
		struct { /* page-table pages */
			struct page *pmd_huge_pte;    /* PMD table: deposited PTE tables */
			struct page *pt_deposit_next; /* next deposited PTE table */
			struct mm_struct *pt_mm;
			unsigned long pt_index;    /* level of this table (1 = PTE) */
			pthread_mutex_t *ptl;      /* split page-table lock */
		};
	};
	atomic_int _mapcount; /* -1 based: -1 means no page-table entry maps it */
	atomic_int _refcount;
	unsigned long memcg_data; /* unused by uhmm; keeps the Linux layout */
};

/**
 * struct folio - a head page and the tail-page fields of a large folio.
 *
 * @_large_mapcount: all mappings of a large folio, PTE and PMD, -1 based.
 * @_entire_mapcount: PMD (whole-folio) mappings, -1 based.
 * @_nr_pages_mapped: pages of the folio mapped by at least one PTE.
 * @_pincount: FOLL_PIN references.
 * @_deferred_list: the machine's deferred-split queue (order >= 2 only).
 */
struct folio {
	/* page 0 */
	unsigned long flags;
	struct list_head lru;
	void *mapping;
	unsigned long index;
	unsigned long private;
	atomic_int _mapcount;
	atomic_int _refcount;
	unsigned long memcg_data;
	/* page 1 */
	unsigned long _flags_1;
	unsigned long _head_1;
	atomic_int _large_mapcount;
	atomic_int _entire_mapcount;
	atomic_int _nr_pages_mapped;
	atomic_int _pincount;
	unsigned long _folio_pad_1[2];
	atomic_int _mapcount_1; /* page 1's own _mapcount: not a folio field */
	atomic_int _refcount_1;
	unsigned long _memcg_1;
	/* page 2 */
	unsigned long _flags_2;
	unsigned long _head_2;
	struct list_head _deferred_list;
	unsigned long _folio_pad_2[2];
	atomic_int _mapcount_2;
	atomic_int _refcount_2;
	unsigned long _memcg_2;
};

_Static_assert(sizeof(struct page) == 64, "struct page must stay 64 bytes");
_Static_assert(sizeof(struct folio) == 3 * sizeof(struct page),
	       "struct folio overlays three pages");
_Static_assert(offsetof(struct folio, _refcount) == offsetof(struct page, _refcount),
	       "folio/page overlay");
_Static_assert(offsetof(struct folio, _head_1) == sizeof(struct page) +
	       offsetof(struct page, compound_head), "folio/page overlay");
_Static_assert(offsetof(struct folio, _mapcount_1) == sizeof(struct page) +
	       offsetof(struct page, _mapcount), "folio/page overlay");
_Static_assert(offsetof(struct folio, _head_2) == 2 * sizeof(struct page) +
	       offsetof(struct page, compound_head), "folio/page overlay");

#define PAGE_MAPPING_ANON 0x1UL

/* vm_flags, with Linux's values. */
#define VM_NONE 0x00000000UL
#define VM_READ 0x00000001UL
#define VM_WRITE 0x00000002UL
#define VM_EXEC 0x00000004UL
#define VM_SHARED 0x00000008UL
#define VM_MAYREAD 0x00000010UL
#define VM_MAYWRITE 0x00000020UL
#define VM_MAYEXEC 0x00000040UL
#define VM_MAYSHARE 0x00000080UL
#define VM_GROWSDOWN 0x00000100UL
#define VM_PFNMAP 0x00000400UL
#define VM_SEQ_READ 0x00008000UL
#define VM_RAND_READ 0x00010000UL
#define VM_LOCKED 0x00002000UL
#define VM_IO 0x00004000UL
#define VM_DONTCOPY 0x00020000UL
#define VM_DONTEXPAND 0x00040000UL
#define VM_ACCOUNT 0x00100000UL
#define VM_NORESERVE 0x00200000UL
#define VM_HUGETLB 0x00400000UL
#define VM_WIPEONFORK 0x02000000UL
#define VM_DONTDUMP 0x04000000UL
#define VM_MIXEDMAP 0x10000000UL
#define VM_HUGEPAGE 0x20000000UL
#define VM_NOHUGEPAGE 0x40000000UL
#define VM_ACCESS_FLAGS (VM_READ | VM_WRITE | VM_EXEC)

/**
 * struct anon_vma - where the reverse map of anonymous folios starts.
 *
 * An anonymous folio's ->mapping points to the anon_vma of the VMA that
 * first mapped it (tagged PAGE_MAPPING_ANON) and its ->index is the linear
 * page index vma->vm_pgoff + (addr - vm_start) / PAGE_SIZE.  Every VMA that
 * may map the folio is linked to that anon_vma by an anon_vma_chain: VMAs
 * split from one another, and after fork the child's VMAs too.  Forks make
 * a tree of anon_vmas; the root's @rwsem guards every list in the tree.
 *
 * @root: the root of the fork tree (itself for a root).
 * @parent: the anon_vma this one was forked from (itself for a root).
 * @refcount: one for being alive while linked, one per child anon_vma
 *            whose root this is, plus temporary references.
 * @head: the anon_vma_chains of the VMAs linked to this anon_vma.
 * @num_children: anon_vmas forked from this one.
 * @num_active_vmas: VMAs whose ->anon_vma is this one.
 */
struct anon_vma {
	struct anon_vma *root;
	struct anon_vma *parent;
	atomic_int refcount;
	pthread_rwlock_t rwsem;
	struct list_head head;
	int num_children;
	int num_active_vmas;
};

/**
 * struct anon_vma_chain - links one VMA to one anon_vma.
 * @same_vma: on vma->anon_vma_chain (protected by mmap_lock).
 * @same_anon_vma: on anon_vma->head (protected by the root's rwsem).
 */
struct anon_vma_chain {
	struct vm_area_struct *vma;
	struct anon_vma *anon_vma;
	struct list_head same_vma;
	struct list_head same_anon_vma;
};

/**
 * struct vm_area_struct - one mapping of an address space.
 *
 * Protected by the owning mm's mmap_lock: readers may look, only writers
 * change fields or the tree.  A VMA that maps a file is also on the file's
 * i_mmap list; its vm_start, vm_end and vm_pgoff change only with that
 * list's i_mmap_rwsem also held for writing, so reverse-map walks of the
 * file (truncate) may read them under i_mmap_rwsem alone.
 */
struct vm_area_struct {
	unsigned long vm_start;
	unsigned long vm_end;
	struct mm_struct *vm_mm;
	unsigned long vm_flags;
	unsigned long vm_pgoff;
	struct anon_vma *anon_vma;        /* where new anon folios point */
	struct list_head anon_vma_chain;  /* every anon_vma this VMA is linked to */
	struct file *vm_file;             /* the mapped file (a reference), or NULL */
	struct list_head shared;          /* on vm_file's i_mmap (under its i_mmap_rwsem) */
	const struct vm_operations_struct *vm_ops;
	void *vm_private_data;
};

/* The RSS counters of an mm, as in Linux. */
enum {
	MM_FILEPAGES,
	MM_ANONPAGES,
	MM_SWAPENTS,
	MM_SHMEMPAGES,
	NR_MM_COUNTERS
};

/* mm->flags bits. */
#define MMF_HUGE_ZERO_PAGE 0

/**
 * struct vma_tree - the VMAs of an mm, ordered by address.
 *
 * A sorted array searched by bisection: the kernel uses a maple tree; the
 * observable behaviour (find_vma, ordered iteration) is the same.
 */
struct vma_tree {
	struct vm_area_struct **vmas;
	size_t nr;
	size_t capacity;
};

/**
 * struct mm_struct - an address space.
 *
 * @mmap_lock: the rwlock of Linux; readers fault and access, writers change
 *             the VMA tree and free page tables.
 * @page_table_lock: populates PGD and PUD entries.
 * @mm_users: users of the address space (mmget/mmput); the last mmput tears
 *            it down.
 * @mm_count: references to the struct (mmgrab/mmdrop).
 */
struct mm_struct {
	struct uhmm_machine *machine;
	uint64_t *pgd;
	pthread_rwlock_t mmap_lock;
	pthread_mutex_t page_table_lock;
	atomic_int mm_users;
	atomic_int mm_count;
	struct vma_tree mm_mt;
	unsigned long mmap_base;
	unsigned long task_size;
	atomic_long rss_stat[NR_MM_COUNTERS];
	atomic_long pgtables_bytes;
	atomic_ulong flags;
	struct list_head mmlist; /* on the machine's list of mms */
	unsigned long nr_file_vmas; /* VMAs with a vm_file (under mmap_lock) */
	/* Interval notifiers (mm/mmu_notifier.c): NULL until the first insert;
	 * published with release semantics, freed by the last mmdrop(). */
	struct mmu_notifier_subscriptions *notifier_subscriptions;
};

#endif /* UHMM_MM_TYPES_H */
