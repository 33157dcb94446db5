/* SPDX-License-Identifier: MIT */
/*
 * mm/page_alloc.h - what folio.c and page_alloc.c share about the buddy
 * allocator and nobody else needs.
 */
#ifndef UHMM_MM_PAGE_ALLOC_H
#define UHMM_MM_PAGE_ALLOC_H

#include "internal.h"

/**
 * free_one_page() - put a block of 2^@order pages back on the free lists.
 * @machine: the machine that owns the block.
 * @page: the first page, aligned to @order inside the machine.
 * @order: 0..MAX_PAGE_ORDER.
 *
 * The caller has finished with every page: no references, no mappings, no
 * compound state, and every page's flags cleared.  Takes machine->zone_lock
 * and merges the block with free buddies.
 */
void free_one_page(struct uhmm_machine *machine, struct page *page, unsigned int order);

#endif /* UHMM_MM_PAGE_ALLOC_H */
