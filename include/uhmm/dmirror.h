/* SPDX-License-Identifier: MIT */
/*
 * uhmm/dmirror.h - dmirror, the reference device driver: uhmm's twin of
 * the kernel's lib/test_hmm.c with its uapi (lib/test_hmm_uapi.h).
 *
 * "Loading the module" on a machine creates DMIRROR_NDEVICES devices:
 * minors 0 and 1 have device-private memory, 2 and 3 device-coherent
 * memory (uhmm always provides it; Linux needs the spm_addr_dev* module
 * parameters).  Opening a device from an address space gives a mirror of
 * that mm: a device page table kept coherent through an interval notifier
 * over the whole address space.  Commands are the test_hmm ioctls with the
 * same struct, numbers, semantics, counters and errno.
 *
 * In the kernel, cmd.ptr is a user pointer into the calling process; here
 * the caller is the host program, so cmd.ptr is a host pointer
 * ((uint64_t)(uintptr_t)buf) to npages * PAGE_SIZE bytes (SNAPSHOT: npages
 * bytes).
 */
#ifndef UHMM_DMIRROR_H
#define UHMM_DMIRROR_H

#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include "uhmm/machine.h"
#include "uhmm/mm_types.h"

#define DMIRROR_NDEVICES 4

/**
 * struct hmm_dmirror_cmd - the argument of every dmirror ioctl.
 * @addr: in: the address in the mirrored mm the device accesses, page aligned.
 * @ptr: in: host buffer the data is copied to or from.
 * @npages: in: pages; for HMM_DMIRROR_FLAGS, the flags value.
 * @cpages: out: pages copied or reported.
 * @faults: out: device fault rounds.
 */
struct hmm_dmirror_cmd {
	uint64_t addr;
	uint64_t ptr;
	uint64_t npages;
	uint64_t cpages;
	uint64_t faults;
};

/* The ioctls (type 'H', all _IOWR with struct hmm_dmirror_cmd). */
#define HMM_DMIRROR_READ _IOWR('H', 0x00, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_WRITE _IOWR('H', 0x01, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_DEV _IOWR('H', 0x02, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_SYS _IOWR('H', 0x03, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_SNAPSHOT _IOWR('H', 0x04, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_EXCLUSIVE _IOWR('H', 0x05, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_CHECK_EXCLUSIVE _IOWR('H', 0x06, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_RELEASE _IOWR('H', 0x07, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_FLAGS _IOWR('H', 0x08, struct hmm_dmirror_cmd)

/* HMM_DMIRROR_FLAGS values. */
#define HMM_DMIRROR_FLAG_FAIL_ALLOC (1ULL << 0)

/* One SNAPSHOT byte per page. */
enum {
	HMM_DMIRROR_PROT_ERROR = 0xFF,
	HMM_DMIRROR_PROT_NONE = 0x00,
	HMM_DMIRROR_PROT_READ = 0x01,
	HMM_DMIRROR_PROT_WRITE = 0x02,
	HMM_DMIRROR_PROT_PMD = 0x04,
	HMM_DMIRROR_PROT_PUD = 0x08,
	HMM_DMIRROR_PROT_ZERO = 0x10,
	HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20,
	HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30,
	HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL = 0x40,
	HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE = 0x50,
};

enum {
	/* 0 is reserved to catch a memory type that was never set */
	HMM_DMIRROR_MEMORY_DEVICE_PRIVATE = 1,
	HMM_DMIRROR_MEMORY_DEVICE_COHERENT = 2,
};

struct dmirror_module;
struct dmirror;

/**
 * dmirror_module_init() - "insmod test_hmm": create the four devices.
 * @machine: the machine whose device memory they get.
 * Return: the module, or ERR_PTR(-ENOMEM) and the like.
 */
struct dmirror_module *dmirror_module_init(struct uhmm_machine *machine);
/**
 * dmirror_module_exit() - "rmmod": evict and free all device memory.
 * Return: 0, or -EBUSY (nothing done) while a device is still open.
 */
int dmirror_module_exit(struct dmirror_module *mod);

/**
 * dmirror_open() - open /dev/hmm_dmirror@minor from the process @mm.
 * Registers an interval notifier over all of @mm (which is mmget()
 * until release).  Return: the mirror, or ERR_PTR(-ENODEV) for a bad
 * minor, ERR_PTR(-ENOMEM).
 */
struct dmirror *dmirror_open(struct dmirror_module *mod, unsigned int minor, struct mm_struct *mm);
/**
 * dmirror_release() - close: remove the notifier, evict every chunk of
 * the device back to system RAM (as test_hmm does), free the mirror.
 * A handle already released (or NULL) is left alone, as close(2) of a
 * closed fd does nothing (it says -EBADF).
 */
void dmirror_release(struct dmirror *dmirror);
/**
 * dmirror_ioctl() - one command.  @cmd is copied in, handled, and on
 * success copied back (cpages, faults).
 * Return: 0 or a negative errno: -EINVAL (unaligned addr, wrapping range,
 * unknown command), -EFAULT, -EPERM, -ENOENT, -EBUSY, -ENOMEM as test_hmm
 * returns them; -EBADF for a released (closed) or NULL @dmirror, which is
 * not touched, as ioctl(2) of a closed fd.
 */
int dmirror_ioctl(struct dmirror *dmirror, unsigned long request, struct hmm_dmirror_cmd *cmd);
/**
 * dmirror_mmap() - mmap() of the device file into the mirror's mm: a
 * VM_MIXEDMAP VMA whose pages are zeroed driver pages (vm_insert_page).
 * Return: the address or a negative errno, as mm_mmap(); -EBADF for a
 * released (closed) or NULL @dmirror.
 */
long dmirror_mmap(struct dmirror *dmirror, unsigned long addr, unsigned long len, int prot,
		  int flags);

/**
 * struct dmirror_stats - one device's memory, for tests (test_hmm keeps
 * the same counters and prints them in debugfs).
 * @nr_chunks: chunks of device memory.
 * @nr_pages: device pages in them.
 * @free_pages: entries of the order-0 free list.
 * @free_folios: entries of the PMD-order free list (HPAGE_PMD_NR pages each).
 * @calloc: device pages handed out since init.
 * @cfree: device pages given back (folio_free) since init.
 */
struct dmirror_stats {
	unsigned long nr_chunks;
	unsigned long nr_pages;
	unsigned long free_pages;
	unsigned long free_folios;
	unsigned long calloc;
	unsigned long cfree;
};

/**
 * dmirror_device_stats() - fill @st for device @minor.
 * Return: 0, or -ENODEV for a bad minor (or no module), -EINVAL for a NULL @st.
 */
int dmirror_device_stats(struct dmirror_module *mod, unsigned int minor, struct dmirror_stats *st);
/**
 * dmirror_fail_devmem_alloc() - inject failures into device @minor's
 * memory allocator: each allocation of a device page (order 0) or of a
 * PMD-order device folio (order HPAGE_PMD_ORDER) asks should_fail().  A
 * failed allocation is what a full device gives: migration to the device
 * leaves those pages in system memory (the large case falls back to base
 * pages first).
 * @attr: the rule (see uhmm/fault_inject.h), or NULL to stop.
 * Return: 0, or -ENODEV for a bad minor.
 */
int dmirror_fail_devmem_alloc(struct dmirror_module *mod, unsigned int minor,
			      const struct fault_attr *attr);
/** dmirror_fail_devmem_alloc_count() - failures injected since the rule was set. */
unsigned long dmirror_fail_devmem_alloc_count(struct dmirror_module *mod, unsigned int minor);
/** dmirror_fail_devmem_alloc_calls() - eligible allocations since the rule was set. */
unsigned long dmirror_fail_devmem_alloc_calls(struct dmirror_module *mod, unsigned int minor);

/**
 * dmirror_audit() - the driver's own invariants: every free-list entry is
 * a free page (refcount 0) of a chunk of its device, listed once; every
 * other device page is in use; calloc - cfree equals the pages in use.
 * Call while no command runs.  Return: the number of violations, each
 * written to @report when it is not NULL.
 */
int dmirror_audit(struct dmirror_module *mod, FILE *report);

#endif /* UHMM_DMIRROR_H */
