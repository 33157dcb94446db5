/* SPDX-License-Identifier: MIT */
/*
 * uhmm/types.h - basic types shared by every uhmm header: page geometry,
 * list heads, error pointers and allocation flags, with Linux's names.
 */
#ifndef UHMM_TYPES_H
#define UHMM_TYPES_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
#define PMD_SHIFT 21
#define PMD_SIZE (1UL << PMD_SHIFT)
#define PMD_MASK (~(PMD_SIZE - 1))
#define PUD_SHIFT 30
#define PUD_SIZE (1UL << PUD_SHIFT)
#define PUD_MASK (~(PUD_SIZE - 1))
#define PGDIR_SHIFT 39
#define PGDIR_SIZE (1UL << PGDIR_SHIFT)
#define PGDIR_MASK (~(PGDIR_SIZE - 1))
#define PTRS_PER_PTE 512
#define PTRS_PER_PMD 512
#define PTRS_PER_PUD 512
#define PTRS_PER_PGD 512

#define HPAGE_PMD_SHIFT PMD_SHIFT
#define HPAGE_PMD_SIZE PMD_SIZE
#define HPAGE_PMD_MASK PMD_MASK
#define HPAGE_PMD_ORDER (HPAGE_PMD_SHIFT - PAGE_SHIFT)
#define HPAGE_PMD_NR (1UL << HPAGE_PMD_ORDER)

/** MAX_PAGE_ORDER - the largest order the buddy allocator hands out (2 MiB). */
#define MAX_PAGE_ORDER 9
#define NR_PAGE_ORDERS (MAX_PAGE_ORDER + 1)

/** TASK_SIZE - the end of the user address space (x86-64, 4-level paging). */
#define TASK_SIZE ((1UL << 47) - PAGE_SIZE)

#define ALIGN(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a) - 1)) == 0)
#define PAGE_ALIGN(x) ALIGN(x, PAGE_SIZE)
#define offset_in_page(p) ((unsigned long)(p) & ~PAGE_MASK)

/* Error pointers, as in include/linux/err.h. */
#define MAX_ERRNO 4095
#define IS_ERR_VALUE(x) ((unsigned long)(void *)(x) >= (unsigned long)-MAX_ERRNO)
static inline void *ERR_PTR(long error) { return (void *)error; }
static inline long PTR_ERR(const void *ptr) { return (long)ptr; }
static inline bool IS_ERR(const void *ptr) { return IS_ERR_VALUE((unsigned long)ptr); }
static inline bool IS_ERR_OR_NULL(const void *ptr) { return !ptr || IS_ERR(ptr); }

/* Doubly linked lists, as in include/linux/list.h. */
struct list_head {
	struct list_head *next, *prev;
};

#define LIST_HEAD_INIT(name) { &(name), &(name) }
static inline void INIT_LIST_HEAD(struct list_head *list)
{
	list->next = list;
	list->prev = list;
}
/*
 * List links are stored with relaxed atomics: a list_head's first word is
 * also a tail page's compound_head, which lock-free readers (page_folio()
 * in /proc/kpageflags-style walkers) load while the buddy allocator relinks
 * free pages under its lock.
 */
#define __list_set(field, value) __atomic_store_n(&(field), (value), __ATOMIC_RELAXED)

static inline void __list_add(struct list_head *entry, struct list_head *prev,
			      struct list_head *next)
{
	__list_set(next->prev, entry);
	__list_set(entry->next, next);
	__list_set(entry->prev, prev);
	__list_set(prev->next, entry);
}
static inline void list_add(struct list_head *entry, struct list_head *head)
{
	__list_add(entry, head, head->next);
}
static inline void list_add_tail(struct list_head *entry, struct list_head *head)
{
	__list_add(entry, head->prev, head);
}
static inline void list_del_init(struct list_head *entry)
{
	__list_set(entry->next->prev, entry->prev);
	__list_set(entry->prev->next, entry->next);
	__list_set(entry->next, entry);
	__list_set(entry->prev, entry);
}
static inline bool list_empty(const struct list_head *head) { return head->next == head; }
static inline bool list_is_singular(const struct list_head *head)
{
	return !list_empty(head) && head->next == head->prev;
}

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(head, type, member) list_entry((head)->next, type, member)
#define list_for_each_entry(pos, head, member)                                     \
	for (pos = list_entry((head)->next, __typeof__(*pos), member);            \
	     &pos->member != (head);                                               \
	     pos = list_entry(pos->member.next, __typeof__(*pos), member))
#define list_for_each_entry_safe(pos, n, head, member)                             \
	for (pos = list_entry((head)->next, __typeof__(*pos), member),            \
	    n = list_entry(pos->member.next, __typeof__(*pos), member);            \
	     &pos->member != (head);                                               \
	     pos = n, n = list_entry(n->member.next, __typeof__(*n), member))

/*
 * Allocation flags.  Only the bits uhmm acts on exist; the composite names
 * are kept so driver code reads like kernel code.
 */
typedef unsigned int gfp_t;
#define __GFP_ZERO 0x1u    /* return zeroed memory */
#define __GFP_COMP 0x2u    /* build a compound page (a large folio) */
#define __GFP_NOWARN 0x4u  /* accepted, no effect */
#define __GFP_NORETRY 0x8u /* accepted, no effect */
#define __GFP_NOFAIL 0x10u /* never chosen by fail-injection */
#define GFP_KERNEL 0u
#define GFP_HIGHUSER_MOVABLE 0u
#define GFP_TRANSHUGE (__GFP_COMP | __GFP_NOWARN | __GFP_NORETRY)

#endif /* UHMM_TYPES_H */
