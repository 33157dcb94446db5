/* SPDX-License-Identifier: MIT */
/*
 * uhmm/pgtable.h - page-table entry encoding (x86-64 shape) and the swap-type
 * entries of include/linux/swapops.h.
 *
 * A present entry has bit 0 set, the PFN in bits 12..51 and protection bits
 * beside it.  A PMD entry with _PAGE_PSE set is a leaf mapping a 2 MiB folio.
 * A non-present, non-zero entry is a swap-type entry: its type sits in bits
 * 58..62 and its offset (a swap slot, or a PFN for migration and device
 * entries) in bits 9..57.  Bit 7 of a swap-type entry is the anon-exclusive
 * marker (_PAGE_SWP_EXCLUSIVE), bit 1 the soft-dirty bit, as on x86.
 */
#ifndef UHMM_PGTABLE_H
#define UHMM_PGTABLE_H

#include "uhmm/types.h"

typedef struct { uint64_t pte; } pte_t;
typedef struct { uint64_t pmd; } pmd_t;
typedef struct { uint64_t pud; } pud_t;
typedef struct { uint64_t pgd; } pgd_t;

#define _PAGE_PRESENT (1ULL << 0)
#define _PAGE_RW (1ULL << 1)
#define _PAGE_USER (1ULL << 2)
#define _PAGE_ACCESSED (1ULL << 5)
#define _PAGE_DIRTY (1ULL << 6)
#define _PAGE_PSE (1ULL << 7)
#define _PAGE_PROTNONE (1ULL << 8) /* present to the OS, inaccessible to the CPU */
#define _PAGE_SPECIAL (1ULL << 9)
#define _PAGE_SOFT_DIRTY (1ULL << 11)
#define _PAGE_NX (1ULL << 63)
#define PTE_PFN_MASK 0x000ffffffffff000ULL
#define _PAGE_TABLE (_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED)

#define _PAGE_SWP_SOFT_DIRTY (1ULL << 1)
#define _PAGE_SWP_EXCLUSIVE (1ULL << 7)
#define SWP_OFFSET_SHIFT 9
#define SWP_OFFSET_BITS 49
#define SWP_TYPE_SHIFT 58
#define MAX_SWAPFILES_SHIFT 5

/* The special swap types, numbered as in include/linux/swap.h. */
#define SWP_DEVICE_NUM 3
#define SWP_MIGRATION_NUM 3
#define SWP_HWPOISON_NUM 1
#define SWP_PTE_MARKER_NUM 1
#define MAX_SWAPFILES                                                             \
	((1 << MAX_SWAPFILES_SHIFT) - SWP_DEVICE_NUM - SWP_MIGRATION_NUM -          \
	 SWP_HWPOISON_NUM - SWP_PTE_MARKER_NUM)
#define SWP_HWPOISON MAX_SWAPFILES
#define SWP_MIGRATION_READ (MAX_SWAPFILES + SWP_HWPOISON_NUM)
#define SWP_MIGRATION_READ_EXCLUSIVE (MAX_SWAPFILES + SWP_HWPOISON_NUM + 1)
#define SWP_MIGRATION_WRITE (MAX_SWAPFILES + SWP_HWPOISON_NUM + 2)
#define SWP_DEVICE_WRITE (MAX_SWAPFILES + SWP_HWPOISON_NUM + SWP_MIGRATION_NUM)
#define SWP_DEVICE_READ (SWP_DEVICE_WRITE + 1)
#define SWP_DEVICE_EXCLUSIVE (SWP_DEVICE_WRITE + 2)
#define SWP_PTE_MARKER (SWP_DEVICE_WRITE + SWP_DEVICE_NUM)

/** swp_entry_t - a swap-type entry as (type << SWP_TYPE_SHIFT | offset). */
typedef struct { uint64_t val; } swp_entry_t;

static inline swp_entry_t swp_entry(unsigned int type, uint64_t offset)
{
	swp_entry_t e = { ((uint64_t)type << SWP_TYPE_SHIFT) |
			  (offset & ((1ULL << SWP_OFFSET_BITS) - 1)) };
	return e;
}
static inline unsigned int swp_type(swp_entry_t e) { return (unsigned int)(e.val >> SWP_TYPE_SHIFT); }
static inline uint64_t swp_offset(swp_entry_t e) { return e.val & ((1ULL << SWP_OFFSET_BITS) - 1); }

/* ---- PTEs ---- */
static inline pte_t __pte(uint64_t v) { pte_t p = { v }; return p; }
static inline uint64_t pte_val(pte_t p) { return p.pte; }
static inline bool pte_none(pte_t p) { return p.pte == 0; }
/** pte_present() - maps a page, possibly PROT_NONE (x86: PRESENT or PROTNONE). */
static inline bool pte_present(pte_t p) { return p.pte & (_PAGE_PRESENT | _PAGE_PROTNONE); }
static inline bool pte_protnone(pte_t p) { return (p.pte & (_PAGE_PRESENT | _PAGE_PROTNONE)) == _PAGE_PROTNONE; }
static inline bool pte_write(pte_t p) { return p.pte & _PAGE_RW; }
static inline bool pte_dirty(pte_t p) { return p.pte & _PAGE_DIRTY; }
static inline bool pte_young(pte_t p) { return p.pte & _PAGE_ACCESSED; }
static inline bool pte_special(pte_t p) { return p.pte & _PAGE_SPECIAL; }
static inline unsigned long pte_pfn(pte_t p) { return (unsigned long)((p.pte & PTE_PFN_MASK) >> PAGE_SHIFT); }
static inline pte_t pfn_pte(unsigned long pfn, uint64_t prot)
{
	return __pte(((uint64_t)pfn << PAGE_SHIFT) | prot);
}
static inline pte_t pte_mkwrite(pte_t p) { return __pte(p.pte | _PAGE_RW); }
static inline pte_t pte_wrprotect(pte_t p) { return __pte(p.pte & ~_PAGE_RW); }
static inline pte_t pte_mkdirty(pte_t p) { return __pte(p.pte | _PAGE_DIRTY | _PAGE_SOFT_DIRTY); }
static inline pte_t pte_mkclean(pte_t p) { return __pte(p.pte & ~_PAGE_DIRTY); }
static inline pte_t pte_mkyoung(pte_t p) { return __pte(p.pte | _PAGE_ACCESSED); }
static inline pte_t pte_mkold(pte_t p) { return __pte(p.pte & ~_PAGE_ACCESSED); }
static inline pte_t pte_mkspecial(pte_t p) { return __pte(p.pte | _PAGE_SPECIAL); }
/** pte_modify() - keep PFN, dirty, young and special bits; take protection from @prot. */
static inline pte_t pte_modify(pte_t p, uint64_t prot)
{
	uint64_t keep = PTE_PFN_MASK | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_SPECIAL |
			_PAGE_SOFT_DIRTY | _PAGE_PSE;
	return __pte((p.pte & keep) | (prot & ~keep));
}

/** is_swap_pte() - a non-present entry that is not empty. */
static inline bool is_swap_pte(pte_t p) { return !pte_none(p) && !pte_present(p); }
static inline swp_entry_t pte_to_swp_entry(pte_t p)
{
	swp_entry_t e = { p.pte & ~(_PAGE_SWP_EXCLUSIVE | _PAGE_SWP_SOFT_DIRTY) };
	e.val = ((e.val >> SWP_TYPE_SHIFT) << SWP_TYPE_SHIFT) |
		((e.val >> SWP_OFFSET_SHIFT) & ((1ULL << SWP_OFFSET_BITS) - 1));
	return e;
}
static inline pte_t swp_entry_to_pte(swp_entry_t e)
{
	return __pte(((uint64_t)swp_type(e) << SWP_TYPE_SHIFT) |
		     (swp_offset(e) << SWP_OFFSET_SHIFT));
}
static inline bool pte_swp_exclusive(pte_t p) { return p.pte & _PAGE_SWP_EXCLUSIVE; }
static inline pte_t pte_swp_mkexclusive(pte_t p) { return __pte(p.pte | _PAGE_SWP_EXCLUSIVE); }
static inline pte_t pte_swp_clear_exclusive(pte_t p) { return __pte(p.pte & ~_PAGE_SWP_EXCLUSIVE); }
static inline bool pte_swp_soft_dirty(pte_t p) { return p.pte & _PAGE_SWP_SOFT_DIRTY; }
static inline pte_t pte_swp_mksoft_dirty(pte_t p) { return __pte(p.pte | _PAGE_SWP_SOFT_DIRTY); }

/* ---- swap-type entry kinds (include/linux/swapops.h) ---- */
static inline bool non_swap_entry(swp_entry_t e) { return swp_type(e) >= MAX_SWAPFILES; }
static inline bool is_migration_entry(swp_entry_t e)
{
	unsigned int t = swp_type(e);
	return t == SWP_MIGRATION_READ || t == SWP_MIGRATION_READ_EXCLUSIVE ||
	       t == SWP_MIGRATION_WRITE;
}
static inline bool is_writable_migration_entry(swp_entry_t e) { return swp_type(e) == SWP_MIGRATION_WRITE; }
static inline bool is_readable_migration_entry(swp_entry_t e) { return swp_type(e) == SWP_MIGRATION_READ; }
static inline bool is_readable_exclusive_migration_entry(swp_entry_t e)
{
	return swp_type(e) == SWP_MIGRATION_READ_EXCLUSIVE;
}
static inline swp_entry_t make_readable_migration_entry(unsigned long pfn) { return swp_entry(SWP_MIGRATION_READ, pfn); }
static inline swp_entry_t make_readable_exclusive_migration_entry(unsigned long pfn)
{
	return swp_entry(SWP_MIGRATION_READ_EXCLUSIVE, pfn);
}
static inline swp_entry_t make_writable_migration_entry(unsigned long pfn) { return swp_entry(SWP_MIGRATION_WRITE, pfn); }

static inline bool is_device_private_entry(swp_entry_t e)
{
	return swp_type(e) == SWP_DEVICE_READ || swp_type(e) == SWP_DEVICE_WRITE;
}
static inline bool is_writable_device_private_entry(swp_entry_t e) { return swp_type(e) == SWP_DEVICE_WRITE; }
static inline swp_entry_t make_readable_device_private_entry(unsigned long pfn) { return swp_entry(SWP_DEVICE_READ, pfn); }
static inline swp_entry_t make_writable_device_private_entry(unsigned long pfn) { return swp_entry(SWP_DEVICE_WRITE, pfn); }
static inline bool is_device_exclusive_entry(swp_entry_t e) { return swp_type(e) == SWP_DEVICE_EXCLUSIVE; }
static inline swp_entry_t make_device_exclusive_entry(unsigned long pfn) { return swp_entry(SWP_DEVICE_EXCLUSIVE, pfn); }

/** is_pfn_swap_entry() - the entry's offset is a PFN (migration, device, hwpoison). */
static inline bool is_pfn_swap_entry(swp_entry_t e)
{
	return is_migration_entry(e) || is_device_private_entry(e) ||
	       is_device_exclusive_entry(e) || swp_type(e) == SWP_HWPOISON;
}
static inline unsigned long swp_offset_pfn(swp_entry_t e) { return (unsigned long)swp_offset(e); }

/* ---- PMDs ---- */
static inline pmd_t __pmd(uint64_t v) { pmd_t p = { v }; return p; }
static inline uint64_t pmd_val(pmd_t p) { return p.pmd; }
static inline bool pmd_none(pmd_t p) { return p.pmd == 0; }
static inline bool pmd_present(pmd_t p) { return p.pmd & (_PAGE_PRESENT | _PAGE_PROTNONE); }
static inline bool pmd_protnone(pmd_t p) { return (p.pmd & (_PAGE_PRESENT | _PAGE_PROTNONE)) == _PAGE_PROTNONE; }
/** pmd_leaf() - a present PMD that maps a 2 MiB folio rather than a PTE table. */
static inline bool pmd_leaf(pmd_t p) { return pmd_present(p) && (p.pmd & _PAGE_PSE); }
static inline bool pmd_trans_huge(pmd_t p) { return pmd_leaf(p); }
static inline bool pmd_write(pmd_t p) { return p.pmd & _PAGE_RW; }
static inline bool pmd_dirty(pmd_t p) { return p.pmd & _PAGE_DIRTY; }
static inline bool pmd_young(pmd_t p) { return p.pmd & _PAGE_ACCESSED; }
static inline unsigned long pmd_pfn(pmd_t p) { return (unsigned long)((p.pmd & PTE_PFN_MASK) >> PAGE_SHIFT); }
static inline pmd_t pfn_pmd(unsigned long pfn, uint64_t prot)
{
	return __pmd(((uint64_t)pfn << PAGE_SHIFT) | prot | _PAGE_PSE);
}
static inline pmd_t pmd_mkwrite(pmd_t p) { return __pmd(p.pmd | _PAGE_RW); }
static inline pmd_t pmd_wrprotect(pmd_t p) { return __pmd(p.pmd & ~_PAGE_RW); }
static inline pmd_t pmd_mkdirty(pmd_t p) { return __pmd(p.pmd | _PAGE_DIRTY | _PAGE_SOFT_DIRTY); }
static inline pmd_t pmd_mkclean(pmd_t p) { return __pmd(p.pmd & ~_PAGE_DIRTY); }
static inline pmd_t pmd_mkyoung(pmd_t p) { return __pmd(p.pmd | _PAGE_ACCESSED); }
static inline pmd_t pmd_mkold(pmd_t p) { return __pmd(p.pmd & ~_PAGE_ACCESSED); }
static inline pmd_t pmd_modify(pmd_t p, uint64_t prot)
{
	uint64_t keep = PTE_PFN_MASK | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_SPECIAL |
			_PAGE_SOFT_DIRTY | _PAGE_PSE;
	return __pmd((p.pmd & keep) | (prot & ~keep));
}
/** is_swap_pmd() - a non-present PMD that is not empty (migration or device-private). */
static inline bool is_swap_pmd(pmd_t p) { return !pmd_none(p) && !pmd_present(p); }
static inline swp_entry_t pmd_to_swp_entry(pmd_t p) { return pte_to_swp_entry(__pte(p.pmd)); }
static inline pmd_t swp_entry_to_pmd(swp_entry_t e) { return __pmd(swp_entry_to_pte(e).pte); }
static inline bool is_pmd_migration_entry(pmd_t p)
{
	return is_swap_pmd(p) && is_migration_entry(pmd_to_swp_entry(p));
}
static inline bool is_pmd_device_private_entry(pmd_t p)
{
	return is_swap_pmd(p) && is_device_private_entry(pmd_to_swp_entry(p));
}
static inline bool pmd_swp_exclusive(pmd_t p) { return p.pmd & _PAGE_SWP_EXCLUSIVE; }

/* ---- PUD and PGD: table pointers only ---- */
static inline pud_t __pud(uint64_t v) { pud_t p = { v }; return p; }
static inline bool pud_none(pud_t p) { return p.pud == 0; }
static inline unsigned long pud_pfn(pud_t p) { return (unsigned long)((p.pud & PTE_PFN_MASK) >> PAGE_SHIFT); }
static inline pgd_t __pgd(uint64_t v) { pgd_t p = { v }; return p; }
static inline bool pgd_none(pgd_t p) { return p.pgd == 0; }
static inline unsigned long pgd_pfn(pgd_t p) { return (unsigned long)((p.pgd & PTE_PFN_MASK) >> PAGE_SHIFT); }

static inline unsigned long pgd_index(unsigned long addr) { return (addr >> PGDIR_SHIFT) & (PTRS_PER_PGD - 1); }
static inline unsigned long pud_index(unsigned long addr) { return (addr >> PUD_SHIFT) & (PTRS_PER_PUD - 1); }
static inline unsigned long pmd_index(unsigned long addr) { return (addr >> PMD_SHIFT) & (PTRS_PER_PMD - 1); }
static inline unsigned long pte_index(unsigned long addr) { return (addr >> PAGE_SHIFT) & (PTRS_PER_PTE - 1); }


#endif /* UHMM_PGTABLE_H */
