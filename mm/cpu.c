// SPDX-License-Identifier: MIT
/*
 * mm/cpu.c - the CPU: loads, stores and atomics on an mm that walk the
 * page tables as the MMU does and take the faults a CPU would.
 *
 * An access holds mmap_lock for reading from start to end (so the VMAs it
 * checked stay), and for each page (or 2 MiB leaf) the page-table lock of
 * the entry it uses while it copies: installing any other entry under that
 * lock is therefore a TLB shootdown, after which no CPU touches the old page.
 */
#include <string.h>

#include "internal.h"

/* What to do with the bytes once the walk found them. */
enum cpu_op {
	CPU_READ,
	CPU_WRITE,
	CPU_MEMSET,
	CPU_FETCH_ADD,
	CPU_XCHG,
	CPU_CMPXCHG,
};

struct cpu_access {
	enum cpu_op op;
	void *buf;            /* CPU_READ destination */
	const void *src;      /* CPU_WRITE source */
	int c;                /* CPU_MEMSET byte */
	uint64_t val, expected, result;
};

static bool op_writes(enum cpu_op op)
{
	return op != CPU_READ;
}

/*
 * tlb_walk() - translate @addr like the MMU: find a present entry that
 * allows the access, set its accessed (and dirty) bit and return the bytes
 * with the entry's ptl held in *@ptlp.  *@span is how many bytes the entry
 * maps from @addr on.  Return: NULL when the access must fault.
 */
static char *tlb_walk(struct mm_struct *mm, unsigned long addr, bool write,
		      pthread_mutex_t **ptlp, unsigned long *span)
{
	uint64_t need = _PAGE_PRESENT | (write ? _PAGE_RW : 0);
	pmd_t *pmd = pmd_off(mm, addr);
	pthread_mutex_t *ptl;
	pmd_t pmdval;
	pte_t *pte, pteval;

	if (!pmd)
		return NULL;
	pmdval = pmdp_get(pmd);
	if (pmd_leaf(pmdval)) {
		ptl = pmd_lock(mm, pmd);
		pmdval = pmdp_get(pmd);
		if (!pmd_leaf(pmdval) || (pmd_val(pmdval) & need) != need) {
			spin_unlock(ptl);
			return NULL;
		}
		pmdval = pmd_mkyoung(pmdval);
		if (write)
			pmdval = pmd_mkdirty(pmdval);
		set_pmd(pmd, pmdval);
		*ptlp = ptl;
		*span = PMD_SIZE - (addr & ~PMD_MASK);
		return (char *)page_address(pfn_to_page(pmd_pfn(pmdval))) + (addr & ~PMD_MASK);
	}
	pte = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!pte)
		return NULL;
	pteval = ptep_get(pte);
	if ((pte_val(pteval) & need) != need) {
		spin_unlock(ptl);
		return NULL;
	}
	pteval = pte_mkyoung(pteval);
	if (write)
		pteval = pte_mkdirty(pteval);
	if (pte_val(pteval) != pte_val(ptep_get(pte)))
		set_pte(pte, pteval);
	*ptlp = ptl;
	*span = PAGE_SIZE - offset_in_page(addr);
	return (char *)page_address(pfn_to_page(pte_pfn(pteval))) + offset_in_page(addr);
}

/* Carry out @acc on @n bytes at @kaddr, @done bytes into the access. */
static void cpu_do(struct cpu_access *acc, char *kaddr, size_t done, size_t n)
{
	uint64_t *word = (uint64_t *)(void *)kaddr;

	switch (acc->op) {
	case CPU_READ:
		memcpy((char *)acc->buf + done, kaddr, n);
		break;
	case CPU_WRITE:
		memcpy(kaddr, (const char *)acc->src + done, n);
		break;
	case CPU_MEMSET:
		memset(kaddr, acc->c, n);
		break;
	case CPU_FETCH_ADD:
		acc->result = __atomic_fetch_add(word, acc->val, __ATOMIC_SEQ_CST);
		break;
	case CPU_XCHG:
		acc->result = __atomic_exchange_n(word, acc->val, __ATOMIC_SEQ_CST);
		break;
	case CPU_CMPXCHG:
		acc->result = acc->expected;
		__atomic_compare_exchange_n(word, &acc->result, acc->val, false, __ATOMIC_SEQ_CST,
					    __ATOMIC_SEQ_CST);
		break;
	}
}

/*
 * cpu_access() - run @acc over [addr, addr + len).  Checks the whole range
 * against the VMAs first (SIGSEGV copies nothing), then walks and faults
 * page by page.  Return: 0, -EFAULT or -ENOMEM.
 */
static int cpu_access(struct mm_struct *mm, unsigned long addr, size_t len, struct cpu_access *acc)
{
	bool write = op_writes(acc->op);
	unsigned long end = addr + len;
	size_t done = 0;
	int err = 0;

	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (!len)
		return 0;
	if (end < addr || end > TASK_SIZE)
		return -EFAULT;
	pthread_rwlock_rdlock(&mm->mmap_lock);
	for (unsigned long a = addr; a < end;) {
		struct vm_area_struct *vma = vma_lookup(mm, a);

		if (!vma || !(vma->vm_flags & (write ? VM_WRITE : VM_ACCESS_FLAGS))) {
			err = -EFAULT;
			goto out;
		}
		a = vma->vm_end;
	}
	while (done < len) {
		unsigned long a = addr + done;
		pthread_mutex_t *ptl;
		unsigned long span;
		char *kaddr = tlb_walk(mm, a, write, &ptl, &span);
		size_t n;

		if (!kaddr) {
			vm_fault_t ret = handle_mm_fault(vma_lookup(mm, a), a,
							 write ? FAULT_FLAG_WRITE : 0);

			if (ret & VM_FAULT_ERROR) {
				err = vm_fault_to_errno(ret);
				goto out;
			}
			continue;
		}
		n = len - done < span ? len - done : span;
		cpu_do(acc, kaddr, done, n);
		spin_unlock(ptl);
		done += n;
	}
out:
	pthread_rwlock_unlock(&mm->mmap_lock);
	return err;
}

int cpu_read(struct mm_struct *mm, unsigned long addr, void *buf, size_t len)
{
	struct cpu_access acc = { .op = CPU_READ, .buf = buf };

	/* The copy to a NULL buffer faults (copy_to_user): before any page is touched. */
	if (!buf && len)
		return -EFAULT;
	return cpu_access(mm, addr, len, &acc);
}

int cpu_write(struct mm_struct *mm, unsigned long addr, const void *buf, size_t len)
{
	struct cpu_access acc = { .op = CPU_WRITE, .src = buf };

	/* The copy from a NULL buffer faults (copy_from_user): nothing is written. */
	if (!buf && len)
		return -EFAULT;
	return cpu_access(mm, addr, len, &acc);
}

int cpu_memset(struct mm_struct *mm, unsigned long addr, int c, size_t len)
{
	struct cpu_access acc = { .op = CPU_MEMSET, .c = c };

	return cpu_access(mm, addr, len, &acc);
}

/* One naturally aligned 8-byte read-modify-write. */
static int cpu_atomic(struct mm_struct *mm, unsigned long addr, struct cpu_access *acc,
		      uint64_t *out)
{
	int err;

	if (!mm)
		return -EINVAL; /* uhmm only: a NULL mm would oops in Linux */
	if (!IS_ALIGNED(addr, sizeof(uint64_t)))
		return -EINVAL;
	err = cpu_access(mm, addr, sizeof(uint64_t), acc);
	if (!err && out)
		*out = acc->result;
	return err;
}

int cpu_atomic_fetch_add_u64(struct mm_struct *mm, unsigned long addr, uint64_t val, uint64_t *old)
{
	struct cpu_access acc = { .op = CPU_FETCH_ADD, .val = val };

	return cpu_atomic(mm, addr, &acc, old);
}

int cpu_atomic_xchg_u64(struct mm_struct *mm, unsigned long addr, uint64_t val, uint64_t *old)
{
	struct cpu_access acc = { .op = CPU_XCHG, .val = val };

	return cpu_atomic(mm, addr, &acc, old);
}

int cpu_atomic_cmpxchg_u64(struct mm_struct *mm, unsigned long addr, uint64_t expected,
			   uint64_t desired, uint64_t *prev)
{
	struct cpu_access acc = { .op = CPU_CMPXCHG, .val = desired, .expected = expected };

	return cpu_atomic(mm, addr, &acc, prev);
}
