/* SPDX-License-Identifier: MIT */
/*
 * mm/pfn_space.h - the process-global PFN space (SPARSEMEM_VMEMMAP).
 *
 * Every PFN of every machine and, later, every device lives in one number
 * space of 2^PFN_SPACE_BITS frames.  Their struct pages form one virtually
 * contiguous array, uhmm_vmemmap, reserved PROT_NONE once per process; a
 * registered range has its part of the array made read-write (zero-filled,
 * so struct pages are initialised lazily) and loses it again when it is
 * unregistered.
 *
 * Ranges are handed out in whole 128 MiB sections (PAGES_PER_SECTION
 * frames), first fit from PFN_SPACE_FIRST_PFN; PFN 0 is never valid.  A
 * section table indexed by pfn >> PFN_SECTION_SHIFT records the range that
 * owns each section, so pfn_valid(), page_address() and page_machine() are
 * O(1).  Implemented in page_alloc.c.
 */
#ifndef UHMM_MM_PFN_SPACE_H
#define UHMM_MM_PFN_SPACE_H

#include "uhmm/machine.h"

#define PFN_SPACE_BITS 26
#define PFN_SPACE_MAX_PFN (1UL << PFN_SPACE_BITS)
#define PFN_SECTION_SHIFT 15
#define PAGES_PER_SECTION (1UL << PFN_SECTION_SHIFT)
#define PFN_SPACE_NR_SECTIONS (PFN_SPACE_MAX_PFN >> PFN_SECTION_SHIFT)
#define PFN_SPACE_FIRST_PFN 0x40000UL

/**
 * struct pfn_range - what the section table knows about a registered range.
 * @start_pfn: first PFN of the range (section aligned).
 * @nr_pages: frames in the range.
 * @bytes: the bytes of @start_pfn (page i lives at @bytes + i * PAGE_SIZE),
 *         or NULL for memory the CPU cannot address.
 * @machine: the machine whose system RAM this is, or NULL (device memory).
 * @owner: an opaque pointer for the registrant (a dev_pagemap), or NULL.
 */
struct pfn_range {
	unsigned long start_pfn;
	unsigned long nr_pages;
	char *bytes;
	struct uhmm_machine *machine;
	void *owner;
};

/**
 * pfn_space_register() - give a new range of PFNs to memory.
 * @nr_pages: frames wanted (at least 1).
 * @bytes: the memory behind the first frame, or NULL.
 * @machine: the owning machine (system RAM) or NULL.
 * @owner: opaque pointer returned by pfn_space_lookup(), or NULL.
 * @start_pfn: where the first PFN of the new range is stored.
 *
 * Takes the global PFN-space mutex.  The struct pages of the range read as
 * zero until written.
 *
 * Return: 0; -EINVAL for a zero or too large @nr_pages; -ENOSPC when no run
 * of free sections is long enough; -ENOMEM when the host refuses to back
 * the struct pages.
 */
int pfn_space_register(unsigned long nr_pages, char *bytes, struct uhmm_machine *machine,
		       void *owner, unsigned long *start_pfn);

/**
 * pfn_space_unregister() - release the range that starts at @start_pfn.
 * @start_pfn: a value pfn_space_register() returned.
 *
 * Takes the global PFN-space mutex.  The range's struct pages are discarded
 * (MADV_DONTNEED, then PROT_NONE) and its sections become free for reuse.
 * Nothing may touch the range's pages any more.
 */
void pfn_space_unregister(unsigned long start_pfn);

/**
 * pfn_space_lookup() - find the registered range that contains @pfn.
 * @pfn: any value.
 * @range: filled in when @pfn is valid; may be NULL.
 *
 * Lock-free.  A lookup may race with the registration or unregistration
 * of other ranges, but not with the unregistration of @pfn's own range (as
 * in Linux, memory must not be torn down under its users).
 *
 * Return: true if @pfn belongs to a registered range.
 */
bool pfn_space_lookup(unsigned long pfn, struct pfn_range *range);

/**
 * pfn_space_attach() - change what a registered range is: its bytes, its
 * machine and its owner (memremap_pages() attaches device memory to a
 * range request_free_mem_region() reserved; memunmap_pages() detaches it
 * with NULLs).
 * @start_pfn: a value pfn_space_register() returned.
 *
 * Takes the global PFN-space mutex.  Return: 0, or -EINVAL when no range
 * starts at @start_pfn.
 */
int pfn_space_attach(unsigned long start_pfn, char *bytes, struct uhmm_machine *machine,
		     void *owner);

/**
 * pfn_space_owner() - the owner of the range that contains @pfn (NULL for
 * system RAM, reserved-only ranges and invalid PFNs).  Lock-free, O(1).
 */
void *pfn_space_owner(unsigned long pfn);

#endif /* UHMM_MM_PFN_SPACE_H */
