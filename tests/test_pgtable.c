/* SPDX-License-Identifier: MIT */
/*
 * tests/test_pgtable.c - the page-table entry encoding of uhmm/pgtable.h:
 * present PTEs, PMD leaves and table pointers, and every kind of swap-type
 * entry of include/linux/swapops.h.  Pure encoding: no machine is built.
 */
#include <criterion/criterion.h>
#include <uhmm/uhmm.h>

TestSuite(pgtable);

static const unsigned long test_pfns[] = {
	0,	 1,	   2,	       0x1ff,		0x200,		 0x12345,
	0xfffff, 0x100000, 0xdeadbeef, (1UL << 39) + 7, (1UL << 40) - 2, (1UL << 40) - 1,
};
#define NR_TEST_PFNS (sizeof(test_pfns) / sizeof(test_pfns[0]))

static const uint64_t test_offsets[] = {
	1,
	2,
	3,
	0x7f,
	0x80,
	0x1ff,
	0x12345,
	0xabcdef01,
	(1ULL << 40) - 1,
	(1ULL << 48),
	(1ULL << 49) - 2,
	(1ULL << 49) - 1,
};
#define NR_TEST_OFFSETS (sizeof(test_offsets) / sizeof(test_offsets[0]))

/* ---- the numbers of the special swap types (include/linux/swap.h) ---- */

Test(pgtable, swap_type_numbers_match_linux)
{
	cr_assert_eq(MAX_SWAPFILES_SHIFT, 5);
	cr_assert_eq(MAX_SWAPFILES, 24);
	cr_assert_eq(SWP_HWPOISON, 24);
	cr_assert_eq(SWP_MIGRATION_READ, 25);
	cr_assert_eq(SWP_MIGRATION_READ_EXCLUSIVE, 26);
	cr_assert_eq(SWP_MIGRATION_WRITE, 27);
	cr_assert_eq(SWP_DEVICE_WRITE, 28);
	cr_assert_eq(SWP_DEVICE_READ, 29);
	cr_assert_eq(SWP_DEVICE_EXCLUSIVE, 30);
	cr_assert_eq(SWP_PTE_MARKER, 31);
	/* The type field holds exactly 32 types and stays clear of NX (bit 63). */
	cr_assert_eq(SWP_TYPE_SHIFT + MAX_SWAPFILES_SHIFT, 63);
	cr_assert_eq(SWP_OFFSET_SHIFT + SWP_OFFSET_BITS, SWP_TYPE_SHIFT);
}

Test(pgtable, geometry_and_indices)
{
	cr_assert_eq(PAGE_SIZE, 4096UL);
	cr_assert_eq(PMD_SIZE, 2UL << 20);
	cr_assert_eq(PUD_SIZE, 1UL << 30);
	cr_assert_eq(PGDIR_SIZE, 1UL << 39);
	cr_assert_eq(HPAGE_PMD_ORDER, 9);
	cr_assert_eq(HPAGE_PMD_NR, 512UL);
	/* x86-64 TASK_SIZE_MAX with 4-level paging: one guard page below 2^47. */
	cr_assert_eq(TASK_SIZE, 0x7ffffffff000UL);

	unsigned long addr = 3 * PGDIR_SIZE + 5 * PUD_SIZE + 7 * PMD_SIZE + 9 * PAGE_SIZE + 123;
	cr_assert_eq(pgd_index(addr), 3UL);
	cr_assert_eq(pud_index(addr), 5UL);
	cr_assert_eq(pmd_index(addr), 7UL);
	cr_assert_eq(pte_index(addr), 9UL);

	addr = (1UL << 47) - 1;
	cr_assert_eq(pgd_index(addr), 255UL);
	cr_assert_eq(pud_index(addr), 511UL);
	cr_assert_eq(pmd_index(addr), 511UL);
	cr_assert_eq(pte_index(addr), 511UL);
	cr_assert_eq(pte_index(TASK_SIZE - 1), 510UL);
	cr_assert_eq(pte_index(TASK_SIZE), 511UL);

	cr_assert_eq(pgd_index(0), 0UL);
	cr_assert_eq(pte_index(PMD_SIZE), 0UL);
	cr_assert_eq(pmd_index(PUD_SIZE + PMD_SIZE), 1UL);
}

/* ---- present PTEs ---- */

Test(pgtable, pte_none_is_only_zero)
{
	pte_t p = __pte(0);
	cr_assert(pte_none(p));
	cr_assert(!pte_present(p));
	cr_assert(!is_swap_pte(p));
	cr_assert(!pte_none(__pte(_PAGE_PRESENT)));
	cr_assert(!pte_none(pfn_pte(0, _PAGE_PRESENT)));
}

Test(pgtable, pte_pfn_round_trip)
{
	const uint64_t prots[] = {
		_PAGE_PRESENT,
		_PAGE_PRESENT | _PAGE_RW | _PAGE_USER,
		_PAGE_PRESENT | _PAGE_USER | _PAGE_NX,
		_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_NX,
		_PAGE_PROTNONE | _PAGE_USER,
	};
	for (size_t i = 0; i < NR_TEST_PFNS; i++) {
		for (size_t j = 0; j < sizeof(prots) / sizeof(prots[0]); j++) {
			pte_t p = pfn_pte(test_pfns[i], prots[j]);
			cr_assert_eq(pte_pfn(p), test_pfns[i], "pfn %#lx prot %#llx -> %#lx",
				     test_pfns[i], (unsigned long long)prots[j], pte_pfn(p));
			/* The PFN sits in bits 12..51 and nowhere else. */
			cr_assert_eq(pte_val(p) & PTE_PFN_MASK,
				     (uint64_t)test_pfns[i] << PAGE_SHIFT);
			cr_assert_eq(pte_val(p) & ~PTE_PFN_MASK, prots[j]);
			cr_assert(pte_present(p));
			cr_assert(!pte_none(p));
			cr_assert(!is_swap_pte(p));
		}
	}
	/* The largest PFN fills the whole 40-bit field. */
	cr_assert_eq(pte_val(pfn_pte((1UL << 40) - 1, 0)), PTE_PFN_MASK);
}

Test(pgtable, pte_predicates)
{
	unsigned long pfn = 0x12345;
	pte_t p = pfn_pte(pfn, _PAGE_PRESENT | _PAGE_USER);

	cr_assert(pte_present(p));
	cr_assert(!pte_protnone(p));
	cr_assert(!pte_write(p));
	cr_assert(!pte_dirty(p));
	cr_assert(!pte_young(p));
	cr_assert(!pte_special(p));

	pte_t w = pte_mkwrite(p);
	cr_assert(pte_write(w));
	cr_assert_eq(pte_val(w), pte_val(p) | _PAGE_RW);
	cr_assert(!pte_write(pte_wrprotect(w)));
	cr_assert_eq(pte_val(pte_wrprotect(w)), pte_val(p));

	/* x86: pte_mkdirty() also sets the soft-dirty bit; pte_mkclean() keeps it. */
	pte_t d = pte_mkdirty(p);
	cr_assert(pte_dirty(d));
	cr_assert(pte_val(d) & _PAGE_SOFT_DIRTY);
	pte_t c = pte_mkclean(d);
	cr_assert(!pte_dirty(c));
	cr_assert(pte_val(c) & _PAGE_SOFT_DIRTY);
	cr_assert_eq(pte_pfn(c), pfn);

	pte_t y = pte_mkyoung(p);
	cr_assert(pte_young(y));
	cr_assert(!pte_young(pte_mkold(y)));
	cr_assert_eq(pte_val(pte_mkold(y)), pte_val(p));

	pte_t s = pte_mkspecial(p);
	cr_assert(pte_special(s));
	cr_assert(pte_present(s));
	cr_assert_eq(pte_pfn(s), pfn);

	/* Every predicate stays with its own bit. */
	pte_t all = pte_mkspecial(pte_mkyoung(pte_mkdirty(pte_mkwrite(p))));
	cr_assert(pte_write(all) && pte_dirty(all) && pte_young(all) && pte_special(all));
	cr_assert_eq(pte_pfn(all), pfn);
	cr_assert(!pte_write(pte_wrprotect(all)));
	cr_assert(pte_dirty(pte_wrprotect(all)) && pte_young(pte_wrprotect(all)));
	cr_assert(pte_write(pte_mkclean(all)) && pte_young(pte_mkclean(all)));
	cr_assert(pte_write(pte_mkold(all)) && pte_dirty(pte_mkold(all)));
}

Test(pgtable, pte_protnone)
{
	unsigned long pfn = (1UL << 40) - 1;
	pte_t n = pfn_pte(pfn, _PAGE_PROTNONE | _PAGE_USER | _PAGE_ACCESSED);

	/* PROT_NONE: present to the OS, not to the CPU. */
	cr_assert(pte_present(n));
	cr_assert(pte_protnone(n));
	cr_assert(!pte_write(n));
	cr_assert(!pte_none(n));
	cr_assert(!is_swap_pte(n));
	cr_assert_eq(pte_pfn(n), pfn);

	/* A really present entry is not protnone, even with the bit set beside it. */
	cr_assert(!pte_protnone(pfn_pte(pfn, _PAGE_PRESENT)));
	cr_assert(!pte_protnone(pfn_pte(pfn, _PAGE_PRESENT | _PAGE_PROTNONE)));
}

Test(pgtable, pte_modify_keeps_pfn_dirty_young)
{
	for (size_t i = 0; i < NR_TEST_PFNS; i++) {
		unsigned long pfn = test_pfns[i];
		pte_t p = pte_mkyoung(
			pte_mkdirty(pfn_pte(pfn, _PAGE_PRESENT | _PAGE_RW | _PAGE_USER)));

		/* To read-only. */
		pte_t r = pte_modify(p, _PAGE_PRESENT | _PAGE_USER | _PAGE_NX);
		cr_assert_eq(pte_pfn(r), pfn);
		cr_assert(pte_present(r));
		cr_assert(!pte_write(r));
		cr_assert(pte_dirty(r));
		cr_assert(pte_young(r));
		cr_assert(pte_val(r) & _PAGE_SOFT_DIRTY);
		cr_assert(pte_val(r) & _PAGE_NX);

		/* To PROT_NONE. */
		pte_t n = pte_modify(p, _PAGE_PROTNONE | _PAGE_USER);
		cr_assert_eq(pte_pfn(n), pfn);
		cr_assert(pte_protnone(n));
		cr_assert(pte_present(n));
		cr_assert(!pte_write(n));
		cr_assert(pte_dirty(n) && pte_young(n));

		/* And back: the protection comes from the new prot only (NX gone). */
		pte_t b = pte_modify(n, _PAGE_PRESENT | _PAGE_RW | _PAGE_USER);
		cr_assert_eq(pte_pfn(b), pfn);
		cr_assert(!pte_protnone(b));
		cr_assert(pte_write(b));
		cr_assert(pte_dirty(b) && pte_young(b));
		cr_assert(!(pte_val(b) & _PAGE_NX));
		cr_assert_eq(pte_val(b), pte_val(p));
	}

	/* A clean, old entry stays clean and old; special survives. */
	pte_t q = pte_mkspecial(pfn_pte(7, _PAGE_PRESENT | _PAGE_RW));
	pte_t m = pte_modify(q, _PAGE_PRESENT);
	cr_assert(!pte_dirty(m) && !pte_young(m));
	cr_assert(pte_special(m));
	cr_assert(!pte_write(m));
	cr_assert_eq(pte_pfn(m), 7UL);
}

/* ---- PMDs ---- */

Test(pgtable, pmd_leaf_vs_table)
{
	for (size_t i = 0; i < NR_TEST_PFNS; i++) {
		/* Huge PFNs are 512-aligned; the encoding doesn't care, check both. */
		unsigned long pfn = test_pfns[i];
		pmd_t leaf = pfn_pmd(pfn, _PAGE_PRESENT | _PAGE_RW | _PAGE_USER);
		cr_assert(pmd_leaf(leaf));
		cr_assert(pmd_trans_huge(leaf));
		cr_assert(pmd_present(leaf));
		cr_assert(!pmd_none(leaf));
		cr_assert(!is_swap_pmd(leaf));
		cr_assert(!is_pmd_migration_entry(leaf));
		cr_assert(!is_pmd_device_private_entry(leaf));
		cr_assert(pmd_write(leaf));
		cr_assert_eq(pmd_pfn(leaf), pfn);
		cr_assert(pmd_val(leaf) & _PAGE_PSE);

		/* A table pointer: present, not a leaf. */
		pmd_t table = __pmd(((uint64_t)pfn << PAGE_SHIFT) | _PAGE_TABLE);
		cr_assert(pmd_present(table));
		cr_assert(!pmd_leaf(table));
		cr_assert(!pmd_trans_huge(table));
		cr_assert(!is_swap_pmd(table));
		cr_assert(!is_pmd_migration_entry(table));
		cr_assert_eq(pmd_pfn(table), pfn);

		pud_t pud = __pud(((uint64_t)pfn << PAGE_SHIFT) | _PAGE_TABLE);
		cr_assert(!pud_none(pud));
		cr_assert_eq(pud_pfn(pud), pfn);
		pgd_t pgd = __pgd(((uint64_t)pfn << PAGE_SHIFT) | _PAGE_TABLE | _PAGE_NX);
		cr_assert(!pgd_none(pgd));
		cr_assert_eq(pgd_pfn(pgd), pfn);
	}
	cr_assert(pmd_none(__pmd(0)));
	cr_assert(!pmd_present(__pmd(0)));
	cr_assert(!pmd_leaf(__pmd(0)));
	cr_assert(!is_swap_pmd(__pmd(0)));
	cr_assert(pud_none(__pud(0)));
	cr_assert(pgd_none(__pgd(0)));
}

Test(pgtable, pmd_predicates_and_modify)
{
	unsigned long pfn = 0x200 * 77;
	pmd_t p = pfn_pmd(pfn, _PAGE_PRESENT | _PAGE_USER);
	cr_assert(!pmd_write(p) && !pmd_dirty(p) && !pmd_young(p));
	cr_assert(pmd_write(pmd_mkwrite(p)));
	cr_assert(!pmd_write(pmd_wrprotect(pmd_mkwrite(p))));
	pmd_t d = pmd_mkdirty(p);
	cr_assert(pmd_dirty(d));
	cr_assert(pmd_val(d) & _PAGE_SOFT_DIRTY);
	cr_assert(!pmd_dirty(pmd_mkclean(d)));
	cr_assert(pmd_young(pmd_mkyoung(p)));
	cr_assert(!pmd_young(pmd_mkold(pmd_mkyoung(p))));

	/* pmd_modify keeps PFN, dirty, young and the leaf bit. */
	pmd_t full = pmd_mkyoung(pmd_mkdirty(pmd_mkwrite(p)));
	pmd_t n = pmd_modify(full, _PAGE_PROTNONE | _PAGE_USER);
	cr_assert(pmd_protnone(n));
	cr_assert(pmd_present(n));
	cr_assert(pmd_leaf(n), "a PROT_NONE THP is still a leaf");
	cr_assert(!pmd_write(n));
	cr_assert(pmd_dirty(n) && pmd_young(n));
	cr_assert_eq(pmd_pfn(n), pfn);
	cr_assert(!is_swap_pmd(n));

	pmd_t r = pmd_modify(n, _PAGE_PRESENT | _PAGE_RW | _PAGE_USER);
	cr_assert(!pmd_protnone(r));
	cr_assert(pmd_leaf(r) && pmd_write(r) && pmd_dirty(r) && pmd_young(r));
	cr_assert_eq(pmd_val(r), pmd_val(full));
}

/* ---- swap-type entries ---- */

/* Every kind predicate, evaluated for an entry. */
struct kinds {
	bool non_swap, migration, mig_write, mig_read, mig_read_excl;
	bool devpriv, devpriv_write, devexcl, pfn;
};

static struct kinds kinds_of(swp_entry_t e)
{
	struct kinds k = {
		.non_swap = non_swap_entry(e),
		.migration = is_migration_entry(e),
		.mig_write = is_writable_migration_entry(e),
		.mig_read = is_readable_migration_entry(e),
		.mig_read_excl = is_readable_exclusive_migration_entry(e),
		.devpriv = is_device_private_entry(e),
		.devpriv_write = is_writable_device_private_entry(e),
		.devexcl = is_device_exclusive_entry(e),
		.pfn = is_pfn_swap_entry(e),
	};
	return k;
}

static struct kinds expected_kinds(unsigned int type)
{
	struct kinds k = {
		.non_swap = type >= 24,
		.migration = type == 25 || type == 26 || type == 27,
		.mig_write = type == 27,
		.mig_read = type == 25,
		.mig_read_excl = type == 26,
		.devpriv = type == 28 || type == 29,
		.devpriv_write = type == 28,
		.devexcl = type == 30,
		/* Linux: migration, device-private, device-exclusive and hwpoison carry a PFN. */
		.pfn = type >= 24 && type <= 30,
	};
	return k;
}

static void assert_kinds(swp_entry_t e, unsigned int type, const char *what)
{
	struct kinds got = kinds_of(e), want = expected_kinds(type);
	cr_assert_eq(got.non_swap, want.non_swap, "%s type %u: non_swap_entry", what, type);
	cr_assert_eq(got.migration, want.migration, "%s type %u: is_migration_entry", what, type);
	cr_assert_eq(got.mig_write, want.mig_write, "%s type %u: is_writable_migration_entry", what,
		     type);
	cr_assert_eq(got.mig_read, want.mig_read, "%s type %u: is_readable_migration_entry", what,
		     type);
	cr_assert_eq(got.mig_read_excl, want.mig_read_excl,
		     "%s type %u: is_readable_exclusive_migration_entry", what, type);
	cr_assert_eq(got.devpriv, want.devpriv, "%s type %u: is_device_private_entry", what, type);
	cr_assert_eq(got.devpriv_write, want.devpriv_write,
		     "%s type %u: is_writable_device_private_entry", what, type);
	cr_assert_eq(got.devexcl, want.devexcl, "%s type %u: is_device_exclusive_entry", what,
		     type);
	cr_assert_eq(got.pfn, want.pfn, "%s type %u: is_pfn_swap_entry", what, type);
}

/* The pte of an entry: non-empty, not present, and decodes back to the entry. */
static pte_t check_pte_round_trip(swp_entry_t e, unsigned int type, uint64_t offset)
{
	cr_assert_eq(swp_type(e), type);
	cr_assert_eq(swp_offset(e), offset);
	pte_t p = swp_entry_to_pte(e);
	cr_assert(!pte_none(p), "type %u offset %#llx encodes as pte_none", type,
		  (unsigned long long)offset);
	cr_assert(!pte_present(p), "type %u offset %#llx encodes as present (%#llx)", type,
		  (unsigned long long)offset, (unsigned long long)pte_val(p));
	cr_assert(is_swap_pte(p));
	cr_assert(!pte_swp_exclusive(p), "fresh entry carries the exclusive bit");
	cr_assert(!pte_swp_soft_dirty(p), "fresh entry carries the soft-dirty bit");
	/* The layout the header documents: type in 58..62, offset in 9..57, NX clear. */
	cr_assert_eq(pte_val(p), ((uint64_t)type << SWP_TYPE_SHIFT) | (offset << SWP_OFFSET_SHIFT));
	swp_entry_t back = pte_to_swp_entry(p);
	cr_assert_eq(back.val, e.val);
	cr_assert_eq(swp_type(back), type);
	cr_assert_eq(swp_offset(back), offset);
	return p;
}

Test(pgtable, swap_entries_every_type_round_trip)
{
	for (unsigned int type = 0; type < (1u << MAX_SWAPFILES_SHIFT); type++) {
		for (size_t i = 0; i < NR_TEST_OFFSETS; i++) {
			uint64_t off = test_offsets[i];
			swp_entry_t e = swp_entry(type, off);
			check_pte_round_trip(e, type, off);
			assert_kinds(e, type, "swp_entry");
			assert_kinds(pte_to_swp_entry(swp_entry_to_pte(e)), type, "decoded");
		}
		/* Offset 0 is a real value for every PFN-carrying type (pfn 0).  Swap
		 * type 0 offset 0 is the swap header, never an entry (as in Linux). */
		if (type > 0)
			check_pte_round_trip(swp_entry(type, 0), type, 0);
	}
}

Test(pgtable, swap_entries_for_swapfiles)
{
	for (unsigned int type = 0; type < MAX_SWAPFILES; type++) {
		swp_entry_t e = swp_entry(type, 0x1234 + type);
		cr_assert(!non_swap_entry(e), "type %u is a swap file", type);
		cr_assert(!is_pfn_swap_entry(e));
		cr_assert(!is_migration_entry(e));
		cr_assert(!is_device_private_entry(e));
		cr_assert(!is_device_exclusive_entry(e));
	}
	/* The marker type is not a swap file and carries no PFN. */
	swp_entry_t m = swp_entry(SWP_PTE_MARKER, 1);
	cr_assert(non_swap_entry(m));
	cr_assert(!is_pfn_swap_entry(m));
	/* Hardware poison carries the PFN of the poisoned page. */
	swp_entry_t hw = swp_entry(SWP_HWPOISON, 0x54321);
	cr_assert(non_swap_entry(hw));
	cr_assert(is_pfn_swap_entry(hw));
	cr_assert_eq(swp_offset_pfn(hw), 0x54321UL);
	cr_assert(!is_migration_entry(hw) && !is_device_private_entry(hw) &&
		  !is_device_exclusive_entry(hw));
}

typedef swp_entry_t (*make_fn)(unsigned long pfn);

static const struct {
	const char *name;
	make_fn make;
	unsigned int type;
} makers[] = {
	{"migration read", make_readable_migration_entry, SWP_MIGRATION_READ},
	{"migration read-exclusive", make_readable_exclusive_migration_entry,
	 SWP_MIGRATION_READ_EXCLUSIVE},
	{"migration write", make_writable_migration_entry, SWP_MIGRATION_WRITE},
	{"device-private read", make_readable_device_private_entry, SWP_DEVICE_READ},
	{"device-private write", make_writable_device_private_entry, SWP_DEVICE_WRITE},
	{"device-exclusive", make_device_exclusive_entry, SWP_DEVICE_EXCLUSIVE},
};
#define NR_MAKERS (sizeof(makers) / sizeof(makers[0]))

Test(pgtable, pfn_entry_constructors)
{
	for (size_t k = 0; k < NR_MAKERS; k++) {
		for (size_t i = 0; i < NR_TEST_PFNS; i++) {
			unsigned long pfn = test_pfns[i];
			swp_entry_t e = makers[k].make(pfn);
			cr_assert_eq(swp_type(e), makers[k].type, "%s: type %u", makers[k].name,
				     swp_type(e));
			cr_assert_eq(swp_offset_pfn(e), pfn, "%s: pfn %#lx -> %#lx", makers[k].name,
				     pfn, swp_offset_pfn(e));
			cr_assert(is_pfn_swap_entry(e), "%s", makers[k].name);
			cr_assert(non_swap_entry(e), "%s", makers[k].name);
			assert_kinds(e, makers[k].type, makers[k].name);

			pte_t p = swp_entry_to_pte(e);
			cr_assert(!pte_none(p) && !pte_present(p) && is_swap_pte(p), "%s",
				  makers[k].name);
			swp_entry_t back = pte_to_swp_entry(p);
			cr_assert_eq(back.val, e.val, "%s", makers[k].name);
			cr_assert_eq(swp_offset_pfn(back), pfn);
			assert_kinds(back, makers[k].type, makers[k].name);
		}
	}
}

Test(pgtable, exclusive_and_soft_dirty_bits)
{
	for (unsigned int type = 0; type < (1u << MAX_SWAPFILES_SHIFT); type++) {
		for (size_t i = 0; i < NR_TEST_OFFSETS; i++) {
			uint64_t off = test_offsets[i];
			swp_entry_t e = swp_entry(type, off);
			pte_t p = swp_entry_to_pte(e);

			pte_t x = pte_swp_mkexclusive(p);
			cr_assert(pte_swp_exclusive(x));
			cr_assert(!pte_swp_soft_dirty(x));
			cr_assert(is_swap_pte(x) && !pte_present(x) && !pte_none(x));
			cr_assert_eq(pte_to_swp_entry(x).val, e.val,
				     "exclusive bit disturbs type %u off %#llx", type,
				     (unsigned long long)off);
			assert_kinds(pte_to_swp_entry(x), type, "exclusive");
			cr_assert_eq(pte_val(pte_swp_clear_exclusive(x)), pte_val(p));

			pte_t s = pte_swp_mksoft_dirty(p);
			cr_assert(pte_swp_soft_dirty(s));
			cr_assert(!pte_swp_exclusive(s));
			cr_assert(is_swap_pte(s) && !pte_present(s));
			cr_assert_eq(pte_to_swp_entry(s).val, e.val,
				     "soft-dirty disturbs type %u off %#llx", type,
				     (unsigned long long)off);

			pte_t both = pte_swp_mksoft_dirty(pte_swp_mkexclusive(p));
			cr_assert(pte_swp_soft_dirty(both) && pte_swp_exclusive(both));
			cr_assert(is_swap_pte(both) && !pte_present(both));
			cr_assert_eq(pte_to_swp_entry(both).val, e.val);
			cr_assert_eq(swp_type(pte_to_swp_entry(both)), type);
			cr_assert_eq(swp_offset(pte_to_swp_entry(both)), off);
			pte_t cleared = pte_swp_clear_exclusive(both);
			cr_assert(!pte_swp_exclusive(cleared) && pte_swp_soft_dirty(cleared));
			cr_assert_eq(pte_to_swp_entry(cleared).val, e.val);

			/* The bits sit where the header says: 7 and 1. */
			cr_assert_eq(pte_val(x) ^ pte_val(p), 1ULL << 7);
			cr_assert_eq(pte_val(s) ^ pte_val(p), 1ULL << 1);
		}
	}
}

Test(pgtable, offset_bits_do_not_leak)
{
	/* A maximal offset must not spill into the type or the flag bits. */
	uint64_t max_off = (1ULL << SWP_OFFSET_BITS) - 1;
	for (unsigned int type = 0; type < 32; type++) {
		pte_t p = swp_entry_to_pte(swp_entry(type, max_off));
		cr_assert_eq(pte_val(p) & ((1ULL << SWP_OFFSET_SHIFT) - 1), 0ULL);
		cr_assert_eq(pte_val(p) >> SWP_TYPE_SHIFT, (uint64_t)type);
		cr_assert(!(pte_val(p) & _PAGE_PRESENT));
		cr_assert(!(pte_val(p) & _PAGE_PROTNONE));
		cr_assert(!(pte_val(p) & _PAGE_NX));
	}
	/* swp_entry() keeps only the offset bits it has room for. */
	swp_entry_t e = swp_entry(SWP_MIGRATION_WRITE, (1ULL << SWP_OFFSET_BITS) | 5);
	cr_assert_eq(swp_type(e), (unsigned int)SWP_MIGRATION_WRITE);
	cr_assert_eq(swp_offset(e), 5ULL);
}

/* ---- PMD-level swap entries ---- */

Test(pgtable, pmd_migration_and_device_private_entries)
{
	for (size_t k = 0; k < NR_MAKERS; k++) {
		for (size_t i = 0; i < NR_TEST_PFNS; i++) {
			unsigned long pfn = test_pfns[i] & ~(HPAGE_PMD_NR - 1);
			swp_entry_t e = makers[k].make(pfn);
			pmd_t p = swp_entry_to_pmd(e);
			unsigned int t = makers[k].type;
			bool mig = t == SWP_MIGRATION_READ || t == SWP_MIGRATION_READ_EXCLUSIVE ||
				   t == SWP_MIGRATION_WRITE;
			bool dev = t == SWP_DEVICE_READ || t == SWP_DEVICE_WRITE;

			cr_assert(!pmd_none(p), "%s", makers[k].name);
			cr_assert(!pmd_present(p), "%s", makers[k].name);
			cr_assert(!pmd_leaf(p) && !pmd_trans_huge(p), "%s", makers[k].name);
			cr_assert(is_swap_pmd(p), "%s", makers[k].name);
			cr_assert_eq(is_pmd_migration_entry(p), mig, "%s", makers[k].name);
			cr_assert_eq(is_pmd_device_private_entry(p), dev, "%s", makers[k].name);
			cr_assert(!pmd_swp_exclusive(p));
			swp_entry_t back = pmd_to_swp_entry(p);
			cr_assert_eq(back.val, e.val, "%s", makers[k].name);
			cr_assert_eq(swp_offset_pfn(back), pfn);

			/* The exclusive marker is bit 7, which is _PAGE_PSE in a present
			 * PMD: it must not turn the entry into a leaf. */
			pmd_t x = __pmd(pmd_val(p) | _PAGE_SWP_EXCLUSIVE);
			cr_assert(pmd_swp_exclusive(x));
			cr_assert(!pmd_present(x), "%s: exclusive swap PMD reads as present",
				  makers[k].name);
			cr_assert(!pmd_leaf(x), "%s: exclusive swap PMD reads as a leaf",
				  makers[k].name);
			cr_assert(is_swap_pmd(x));
			cr_assert_eq(is_pmd_migration_entry(x), mig);
			cr_assert_eq(is_pmd_device_private_entry(x), dev);
			cr_assert_eq(pmd_to_swp_entry(x).val, e.val);
		}
	}
	/* An ordinary swap entry at PMD level is neither kind. */
	pmd_t s = swp_entry_to_pmd(swp_entry(3, 0x777));
	cr_assert(is_swap_pmd(s));
	cr_assert(!is_pmd_migration_entry(s));
	cr_assert(!is_pmd_device_private_entry(s));
	/* A present leaf is neither either. */
	pmd_t leaf = pfn_pmd(0x400, _PAGE_PRESENT | _PAGE_RW);
	cr_assert(!is_pmd_migration_entry(leaf) && !is_pmd_device_private_entry(leaf));
	/* Nor is an empty PMD. */
	cr_assert(!is_pmd_migration_entry(__pmd(0)) && !is_pmd_device_private_entry(__pmd(0)));
}
