/* SPDX-License-Identifier: MIT */
/*
 * tests/test_differential.c - differential testing of uhmm's CPU side
 * against the Linux kernel this test runs on.
 *
 * The same random sequences of mmap/munmap/mprotect/mremap/madvise, reads,
 * writes and fork run on a uhmm mm and on real memory of this process (a
 * forked child for fork), and after every operation these must agree:
 *  - the return value and errno;
 *  - the bytes read;
 *  - the VMAs (start, end, rwxp/s) of the test window (/proc/self/maps);
 *  - per page of the window: present, swapped, PM_MMAP_EXCLUSIVE, PM_FILE
 *    (/proc/self/pagemap) and the zero page and THP bits of its PFN
 *    (/proc/kpageflags KPF_ZERO_PAGE, KPF_THP; these two are compared only
 *    when /proc/kpageflags is readable and pagemap shows PFNs, i.e. as
 *    root; otherwise the test says so and leaves them out).
 *
 * Addresses: the host reserves a window (WIN_SIZE, PROT_NONE,
 * MAP_NORESERVE) at WIN_FIXED if that is free, else where the kernel puts
 * it; the uhmm mm uses the same addresses (the window is reserved the same
 * way in it), so every address in an operation means the same on both.
 * WIN_FIXED lies far below mmap_base and above ASan's shadow, so the
 * kernel's top-down placement of other mappings (malloc, ASan) never falls
 * into the holes the test makes.  Operations act on the "zone" in the
 * middle of the window; its ends stay PROT_NONE reservation, so ranges
 * that run over the zone's edges meet a mapping, never foreign memory.
 * Every range given to the host either lies in the window or is rejected
 * by the kernel before it changes anything (it wraps around, or lies above
 * TASK_SIZE): host_range_safe() checks this before each system call.
 *
 * Placement by search (mmap without a usable hint, mremap that moves
 * without MREMAP_FIXED) is not determined: the host's address space holds
 * other mappings.  There the test compares only that both searched (the
 * result is outside the window on both), then moves both results to the
 * same free place in the zone with mremap(MREMAP_FIXED) (a logged "fixup"
 * operation whose results are compared too).
 *
 * Host memory is accessed with the real CPU: the access is done only when
 * /proc/self/maps says every page allows it (uhmm's cpu_read/cpu_write
 * check the whole range first and copy nothing otherwise); when it does
 * not, the first page that forbids it is probed with one access of the same
 * kind, which must raise SIGSEGV (caught with sigsetjmp).
 *
 * The host configuration is copied into the uhmm machine:
 * transparent_hugepage/enabled (or hugepages-2048kB/enabled when it is not
 * "inherit") and use_zero_page; an empty hugetlb pool when the host has none.
 *
 * Sequences come from a printed seed (default DIFF_DEFAULT_SEED, the same
 * every run; UHMM_DIFF_SEED=N replays a run, UHMM_DIFF_SEED=random explores;
 * UHMM_DIFF_SEQS and UHMM_DIFF_OPS change the counts, UHMM_DIFF_FIRST
 * starts at a given sequence).  On the first
 * difference the test prints the seed, the sequence, the operation index
 * and the log of the sequence so far, and fails.  Known, explained
 * differences are in allow_list[] below: each entry says why the host may
 * legitimately differ; a difference it covers ends the sequence (the two
 * sides may no longer agree), counted and printed.
 */
#include "helpers.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define DIFF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DIFF_ASAN 1
#endif
#endif

/* Sequences per run and operations per sequence (a few seconds plain and under ASan). */
#ifdef DIFF_ASAN
#define DIFF_DEFAULT_SEQS 12
#else
#define DIFF_DEFAULT_SEQS 30
#endif
#define DIFF_DEFAULT_OPS 100
#define DIFF_DEFAULT_SEED 1UL
#define DIFF_MAX_OPS 4096

#define WIN_FIXED 0x300000000000UL
#define WIN_SIZE (128UL << 20)
#define ZONE_OFF (32UL << 20) /* the zone: where operations act */
#define ZONE_SIZE (48UL << 20)
#define ZONE_EDGE (4UL << 20) /* zone ends that start as reservation */
#define ZONE_PAGES (ZONE_SIZE >> PAGE_SHIFT)
#define ACCESS_MAX (256UL << 10)
#define MAX_SNAP_VMAS 1024
#define MAX_HOST_MAPS 8192
#define LOW_LIMIT 0x10000UL /* below: never mapped on the host (reserve_window checks) */

/* Per-page bits compared. */
#define B_PRESENT 0x01
#define B_SWAP 0x02
#define B_EXCL 0x04
#define B_FILE 0x08
#define B_ZERO 0x10
#define B_THP 0x20

enum diff_kind {
	K_MMAP,
	K_MUNMAP,
	K_MPROTECT,
	K_MREMAP,
	K_MADVISE,
	K_READ,
	K_WRITE,
	K_FORK,
	K_EXIT_CHILD,
	K_SNAPSHOT, /* to the host child: no operation, just the state */
	K_QUIT,	    /* to the host child: exit */
};

static const char *const kind_names[] = {
	[K_MMAP] = "mmap",	   [K_MUNMAP] = "munmap", [K_MPROTECT] = "mprotect",
	[K_MREMAP] = "mremap",	   [K_MADVISE] = "madvise", [K_READ] = "read",
	[K_WRITE] = "write",	   [K_FORK] = "fork",	  [K_EXIT_CHILD] = "exit-child",
	[K_SNAPSHOT] = "snapshot", [K_QUIT] = "quit",
};

/*
 * struct diff_op - one operation.  @addr/@len: the range (mremap: old
 * address and old length); @len2/@addr2: mremap's new length and address;
 * @prot, @flags, @advice: the arguments; @seed: the bytes a write stores.
 */
struct diff_op {
	int kind;
	int target; /* 0: the parent, 1: the forked child */
	bool fixup; /* a normalisation step the harness added */
	unsigned long addr, len, len2, addr2;
	int prot, flags, advice;
	uint32_t seed;
};

struct diff_res {
	long ret;
	int surprise; /* host: the CPU disagreed with /proc/self/maps */
	bool merged;  /* host: a mapping placed by search merged with a neighbour */
	unsigned long data_len;
	uint8_t data[ACCESS_MAX];
};

struct diff_vma {
	unsigned long start, end;
	char perms[5];
	bool stack; /* host: the main thread's [stack] */
};

struct diff_snap {
	unsigned int nr_vmas;
	struct diff_vma vmas[MAX_SNAP_VMAS];
	uint8_t bits[ZONE_PAGES];
};

struct log_entry {
	struct diff_op op;
	long host_ret, uhmm_ret;
};

TestSuite(differential, .fini = machine_teardown);

/* ------------------------------------------------------------------ */
/* The run's state                                                      */
/* ------------------------------------------------------------------ */

static unsigned long win;	      /* the window's start (host and uhmm) */
static unsigned long zone_lo, zone_hi; /* where operations act */
static uint8_t bits_mask;	      /* the page bits this host lets us compare */
static unsigned long long run_seed;
static unsigned int seq_index;
static struct log_entry *oplog;
static unsigned int oplog_nr;
static unsigned long pads_made, snapshot_retries, transient_diffs;
/* Page states seen equal on both sides, summed over all comparisons. */
static unsigned long seen_present, seen_zero, seen_thp, seen_file, ops_failed;
static unsigned long ops_done, fixups_done, allowed_nr, seqs_cut;

static struct mm_struct *umm[2];      /* uhmm: parent, child (or NULL) */
static pid_t host_child;	      /* the host's child, or 0 */
static int child_cmd_fd = -1, child_res_fd = -1;

static struct diff_res hres, ures;
static struct diff_snap hsnap, usnap;

/* Host state, per process (the child reopens pagemap). */
static int pagemap_fd = -1, kpageflags_fd = -1;
static char maps_buf[1 << 20];
static struct diff_vma host_maps[MAX_HOST_MAPS];
static unsigned int host_maps_nr;
static uint64_t pm_buf[ZONE_PAGES];
static uint64_t kpf_buf[512];

/* ------------------------------------------------------------------ */
/* Random numbers                                                       */
/* ------------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static unsigned long rnd_below(unsigned long n)
{
	return n ? (unsigned long)(rnd() % n) : 0;
}

static bool chance(unsigned int percent)
{
	return rnd_below(100) < percent;
}

static unsigned long env_ulong(const char *name, unsigned long def)
{
	const char *s = getenv(name);

	return s && *s ? strtoul(s, NULL, 0) : def;
}

/* ------------------------------------------------------------------ */
/* Logging and failure                                                  */
/* ------------------------------------------------------------------ */

static int format_op(char *buf, size_t size, const struct diff_op *op)
{
	switch (op->kind) {
	case K_MMAP:
		return snprintf(buf, size, "mmap(%#lx, %#lx, prot %#x, flags %#x)", op->addr,
				op->len, op->prot, op->flags);
	case K_MUNMAP:
		return snprintf(buf, size, "munmap(%#lx, %#lx)", op->addr, op->len);
	case K_MPROTECT:
		return snprintf(buf, size, "mprotect(%#lx, %#lx, %#x)", op->addr, op->len,
				op->prot);
	case K_MREMAP:
		return snprintf(buf, size, "mremap(%#lx, %#lx, %#lx, flags %#x, %#lx)", op->addr,
				op->len, op->len2, op->flags, op->addr2);
	case K_MADVISE:
		return snprintf(buf, size, "madvise(%#lx, %#lx, %d)", op->addr, op->len,
				op->advice);
	case K_READ:
	case K_WRITE:
		return snprintf(buf, size, "%s(%#lx, %#lx) seed %u", kind_names[op->kind],
				op->addr, op->len, op->seed);
	default:
		return snprintf(buf, size, "%s", kind_names[op->kind]);
	}
}

static void print_log(void)
{
	char buf[256];

	fprintf(stderr, "differential: seed %llu (UHMM_DIFF_SEED=%llu to replay), sequence %u, "
			"window %#lx, zone [%#lx, %#lx); operations of this sequence:\n",
		run_seed, run_seed, seq_index, win, zone_lo, zone_hi);
	for (unsigned int i = 0; i < oplog_nr; i++) {
		format_op(buf, sizeof(buf), &oplog[i].op);
		fprintf(stderr, "  %4u %s%s%s -> host %ld, uhmm %ld\n", i,
			oplog[i].op.target ? "[child] " : "", oplog[i].op.fixup ? "[fixup] " : "",
			buf, oplog[i].host_ret, oplog[i].uhmm_ret);
	}
}

/*
 * What a difference is about, for the allow list: the operation and the
 * kind of difference, and for page bits which bits and on which page.
 */
enum diff_what { D_RET, D_DATA, D_VMAS, D_BITS, D_HOST_SURPRISE, D_PLACEMENT_MERGE };

struct diff_info {
	enum diff_what what;
	const struct diff_op *op;
	uint8_t host_bits, uhmm_bits;
	unsigned long addr;
};

/*
 * The allow list: differences that are the host's, not uhmm's.  Each
 * entry's comment says why.  A match ends the sequence (counted).
 */
struct allow_entry {
	const char *name;
	bool (*match)(const struct diff_info *d);
};

static unsigned long thp_fallbacks_seen, seq_thp_events;
static long sysfs_long(const char *path, long def);
static unsigned long host_thp_events(void);

/*
 * "host-thp-event": during this sequence the host fell back to 4 KiB pages
 * where it wanted a THP (no free 2 MiB block at that moment: fragmentation,
 * the memory cgroup), failed a collapse allocation, or khugepaged collapsed
 * pages of this process in the background (it scans VM_HUGEPAGE VMAs on its
 * own schedule).  uhmm's machine has free 2 MiB blocks and no khugepaged
 * thread, so from then on the THP state, and what depends on it, may
 * legitimately differ.  Matched only if the host's counters moved since
 * the sequence began.
 */
static bool allow_host_thp_event(const struct diff_info *d)
{
	(void)d;
	if (host_thp_events() == seq_thp_events)
		return false;
	thp_fallbacks_seen++;
	return true;
}

/*
 * "placement-merge": the host placed a mapping by search (top-down below
 * mmap_base, among this process's other mappings) right next to a mapping
 * that is not the test's, and merged it with that neighbour (mmap of
 * anonymous memory gets pgoff = addr >> PAGE_SHIFT, and mremap moving a
 * VMA that never faulted re-bases its pgoff the same way, so both are
 * mergeable with a fresh anonymous neighbour).  The VMA then shares the
 * neighbour's anon_vma, which the test cannot see or reproduce (it shows
 * later, e.g. fork copies zero-page PTEs only of VMAs that have one).
 * uhmm's address space has no foreign neighbours.  The pad mapping
 * (ensure_pad()) makes this rare.
 */
static bool allow_placement_merge(const struct diff_info *d)
{
	return d->what == D_PLACEMENT_MERGE;
}

/* Does [addr, addr + len) of @mm meet a shared (shmem) VMA? */
static bool range_meets_shared(struct mm_struct *mm, unsigned long addr, unsigned long len)
{
	unsigned long end = addr + PAGE_ALIGN(len);
	bool shared = false;

	if (!mm || end < addr)
		return false;
	mmap_read_lock(mm);
	for (size_t i = 0; i < mm->mm_mt.nr && !shared; i++) {
		const struct vm_area_struct *vma = mm->mm_mt.vmas[i];

		shared = vma->vm_start < end && vma->vm_end > addr && (vma->vm_flags & VM_MAYSHARE);
	}
	mmap_read_unlock(mm);
	return shared;
}

/*
 * "shmem-collapse": MADV_COLLAPSE over a range that meets a shared
 * anonymous (shmem) VMA.  Linux accepts it whatever shmem_enabled says
 * (collapse_file() builds a shmem THP in the page cache, and a range that
 * covers no whole PMD is a successful no-op); uhmm does not model large
 * shmem folios (shmem_enabled "never" is all it has) and refuses with
 * -EINVAL.  Not modeled.  The generator rarely produces it (see gen_op()).
 * When both return -EINVAL (a later PMD of the range failed), the host may
 * still have made shmem THPs of the earlier ones, which then show in the
 * page bits (present, file, THP on the host; no THP on uhmm).
 */
static bool allow_shmem_collapse(const struct diff_info *d)
{
	if (d->op->kind != K_MADVISE || d->op->advice != MADV_COLLAPSE)
		return false;
	if (d->what == D_BITS)
		return (d->host_bits & B_THP) && (d->host_bits & B_FILE) && !(d->uhmm_bits & B_THP) &&
		       range_meets_shared(umm[d->op->target], d->addr, PAGE_SIZE);
	return d->what == D_RET && ures.ret == -EINVAL &&
	       range_meets_shared(umm[d->op->target], d->op->addr, d->op->len);
}

/*
 * Destinations, this sequence, of the fixup mremaps that moved a mapping
 * the host had placed by search outside the window (normalize_placement()).
 */
#define MAX_CARRIED 64
static struct {
	unsigned long start, end;
} carried[MAX_CARRIED];
static unsigned int carried_nr;

/*
 * "carried-page-table": uhmm mapped a THP where the host mapped 4 KiB
 * pages, inside a mapping that a fixup mremap moved here from where the
 * host had placed it by search, among this process's other mappings.
 * Linux's move_page_tables() gives the destination a PTE table for every
 * source PMD that has one, empty or not, and the source PMDs out there
 * also cover the neighbours' pages; a fault in a PMD that already has a
 * PTE table never maps a THP (it needs pmd_none()).  uhmm's search
 * placement has no neighbours, so its destination PMDs stay empty.
 * Checked on the host (6.18): moving an unfaulted VMA that was placed by
 * search next to the host's own mappings to a 2 MiB-aligned address gives
 * 4 KiB pages on the first write; one placed by MAP_FIXED in an empty
 * area gives a THP.
 */
static bool allow_carried_page_table(const struct diff_info *d)
{
	if (d->what != D_BITS || !(d->uhmm_bits & B_THP) || (d->host_bits & B_THP))
		return false;
	for (unsigned int i = 0; i < carried_nr; i++)
		if (d->addr >= carried[i].start && d->addr < carried[i].end)
			return true;
	return false;
}

static const struct allow_entry allow_list[] = {
	{ "shmem-collapse", allow_shmem_collapse },
	{ "carried-page-table", allow_carried_page_table },
	{ "placement-merge", allow_placement_merge },
	{ "host-thp-event", allow_host_thp_event },
	{ NULL, NULL },
};

/* Report a difference: allowed (return true, the sequence ends) or fail. */
static bool differ(const struct diff_info *d, const char *fmt, ...)
{
	static char msg[20000];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (const struct allow_entry *a = allow_list; a->name; a++)
		if (a->match(d)) {
			allowed_nr++;
			fprintf(stderr, "differential: allowed (%s): sequence %u op %u: %s\n",
				a->name, seq_index, oplog_nr ? oplog_nr - 1 : 0, msg);
			return true;
		}
	print_log();
	fprintf(stderr, "differential: seed %llu sequence %u op %u: %s\n", run_seed, seq_index,
		oplog_nr ? oplog_nr - 1 : 0, msg);
	cr_assert_fail("differential: seed %llu sequence %u op %u: a difference (see above)",
		       run_seed, seq_index, oplog_nr ? oplog_nr - 1 : 0);
	return true;
}

/* ------------------------------------------------------------------ */
/* The host: safety, memory access, state                               */
/* ------------------------------------------------------------------ */

static bool in_window_ul(unsigned long addr)
{
	return addr >= win && addr < win + WIN_SIZE;
}

static bool in_window(long addr)
{
	return addr >= (long)win && addr < (long)(win + WIN_SIZE);
}

/*
 * host_range_safe() - may [addr, addr + len) be handed to a host system
 * call that changes mappings?  Yes when it lies in the window, when the
 * kernel rejects it first (it wraps around, or rounds to length 0), or
 * when it lies at or above TASK_SIZE, where nothing is mapped.
 */
static bool host_range_safe(unsigned long addr, unsigned long len)
{
	unsigned long alen = PAGE_ALIGN(len);

	if (len && !alen)
		return true; /* rounds to 0: EINVAL everywhere */
	if (addr + alen < addr)
		return true; /* wraps around */
	if (addr >= TASK_SIZE)
		return true;
	if (addr + alen <= LOW_LIMIT)
		return true; /* nothing is mapped there (checked at start) */
	return addr >= win && addr + alen <= win + WIN_SIZE;
}

static void check_safe(const struct diff_op *op)
{
	bool safe = true;

	switch (op->kind) {
	case K_MMAP:
		if (op->flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
			safe = host_range_safe(op->addr, op->len) || offset_in_page(op->addr);
		break;
	case K_MUNMAP:
		safe = op->fixup || host_range_safe(op->addr, op->len) || offset_in_page(op->addr) ||
		       !op->len;
		break;
	case K_MPROTECT:
	case K_MADVISE:
		safe = host_range_safe(op->addr, op->len) || offset_in_page(op->addr) || !op->len;
		break;
	case K_MREMAP:
		/* A fixup moves what the kernel just placed by search: ours. */
		safe = op->fixup || host_range_safe(op->addr, op->len) || offset_in_page(op->addr);
		if (op->flags & MREMAP_FIXED)
			safe = safe && (host_range_safe(op->addr2, op->len2) ||
					offset_in_page(op->addr2));
		break;
	default:
		break;
	}
	if (!safe) {
		char buf[256];

		format_op(buf, sizeof(buf), op);
		print_log();
		cr_assert_fail("differential: harness bug: unsafe host operation %s", buf);
	}
}

static sigjmp_buf probe_env;
static volatile sig_atomic_t probe_armed;

static void probe_handler(int sig)
{
	if (probe_armed) {
		probe_armed = 0;
		siglongjmp(probe_env, sig);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * host_copy() - copy between @buf and the host's memory at @addr with the
 * CPU.  Return: 0, or -EFAULT if a page faulted (SIGSEGV or SIGBUS).
 * Not instrumented: the addresses are outside what ASan tracks.
 */
__attribute__((no_sanitize("address", "undefined"), noinline)) static int
host_copy(unsigned long addr, uint8_t *buf, unsigned long len, bool write)
{
	volatile uint8_t *p = (volatile uint8_t *)addr;

	int sig = sigsetjmp(probe_env, 1);

	if (sig)
		return sig == SIGBUS ? -EIO : -EFAULT; /* -EIO: SIGBUS, told apart below */
	probe_armed = 1;
	if (write)
		for (unsigned long i = 0; i < len; i++)
			p[i] = buf[i];
	else
		for (unsigned long i = 0; i < len; i++)
			buf[i] = p[i];
	probe_armed = 0;
	return 0;
}

/* Read all of /proc/self/maps into host_maps[]. */
static void host_read_maps(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	size_t used = 0;
	ssize_t n;
	char *line;

	cr_assert(fd >= 0, "open /proc/self/maps: %s", strerror(errno));
	while ((n = read(fd, maps_buf + used, sizeof(maps_buf) - 1 - used)) > 0)
		used += (size_t)n;
	close(fd);
	maps_buf[used] = 0;
	host_maps_nr = 0;
	for (line = maps_buf; *line && host_maps_nr < MAX_HOST_MAPS;) {
		struct diff_vma *v = &host_maps[host_maps_nr++];
		char *end, *nl = strchr(line, '\n');

		v->start = strtoul(line, &end, 16);
		v->end = strtoul(end + 1, &end, 16);
		memcpy(v->perms, end + 1, 4);
		v->perms[4] = 0;
		if (nl)
			*nl = 0;
		v->stack = strstr(end, "[stack]") != NULL;
		if (!nl)
			break;
		line = nl + 1;
	}
}

static const struct diff_vma *host_vma_at(unsigned long addr)
{
	for (unsigned int i = 0; i < host_maps_nr; i++)
		if (host_maps[i].start <= addr && addr < host_maps[i].end)
			return &host_maps[i];
	return NULL;
}

/*
 * The first page of [addr, addr + len) the access may not touch, per
 * /proc/self/maps, as x86 decides: a read needs any of r, w, x (a
 * writable or executable page is readable), a write needs w.
 * Return: the address, or 0 when the whole range is allowed.
 */
static unsigned long host_first_forbidden(unsigned long addr, unsigned long len, bool write)
{
	unsigned long end = addr + len;

	if (end < addr)
		return addr;
	for (unsigned long a = addr; a < end; a = (a & PAGE_MASK) + PAGE_SIZE) {
		const struct diff_vma *v = host_vma_at(a);

		if (!v)
			return a ? a : 1; /* address 0 itself: probe byte 1 */
		if (write ? v->perms[1] != 'w'
			  : v->perms[0] != 'r' && v->perms[1] != 'w' && v->perms[2] != 'x')
			return a ? a : 1;
	}
	return 0;
}

static void fill_data(uint8_t *buf, unsigned long len, uint32_t seed)
{
	for (unsigned long i = 0; i < len; i++)
		buf[i] = pattern_byte(seed, i);
}

static void host_access(const struct diff_op *op, struct diff_res *res)
{
	bool write = op->kind == K_WRITE;
	unsigned long bad;

	host_read_maps();
	bad = host_first_forbidden(op->addr, op->len, write);
	res->data_len = 0;
	if (bad) {
		uint8_t byte = (uint8_t)op->seed;

		res->ret = -EFAULT;
		/* The CPU must agree: one access of the same kind faults. */
		if (host_copy(bad, &byte, 1, write) != -EFAULT)
			res->surprise = 1;
		return;
	}
	if (write)
		fill_data(res->data, op->len, op->seed);
	res->ret = host_copy(op->addr, res->data, op->len, write);
	if (res->ret == -EIO) {
		/* SIGBUS: a page past the end of a shmem object (mremap grew it). */
		res->ret = -EFAULT;
	} else if (res->ret) {
		res->surprise = 2;
	}
	else if (!write)
		res->data_len = op->len;
}

/*
 * After a placement by search: did the new VMA at @addr merge with a
 * neighbour (the VMA holding it is not exactly [addr, addr + len))?
 */
static bool host_placement_merged(long addr, unsigned long len)
{
	const struct diff_vma *v;

	if (addr < 0 || in_window_ul((unsigned long)addr))
		return false;
	host_read_maps();
	v = host_vma_at((unsigned long)addr);
	return !v || v->start != (unsigned long)addr || v->end != (unsigned long)addr + len;
}

static long sys_ret(long r)
{
	return r == -1 ? -errno : r;
}

static void host_exec(const struct diff_op *op, struct diff_res *res)
{
	res->ret = 0;
	res->surprise = 0;
	res->merged = false;
	res->data_len = 0;
	check_safe(op);
	switch (op->kind) {
	case K_MMAP:
		res->ret = sys_ret(syscall(SYS_mmap, op->addr, op->len, op->prot, op->flags, -1, 0));
		if (!(op->flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)))
			res->merged = host_placement_merged(res->ret, PAGE_ALIGN(op->len));
		break;
	case K_MUNMAP:
		res->ret = sys_ret(syscall(SYS_munmap, op->addr, op->len));
		break;
	case K_MPROTECT:
		res->ret = sys_ret(syscall(SYS_mprotect, op->addr, op->len, op->prot));
		break;
	case K_MREMAP:
		res->ret = sys_ret(
			syscall(SYS_mremap, op->addr, op->len, op->len2, op->flags, op->addr2));
		if (!(op->flags & MREMAP_FIXED))
			res->merged = host_placement_merged(res->ret, PAGE_ALIGN(op->len2));
		break;
	case K_MADVISE:
		res->ret = sys_ret(syscall(SYS_madvise, op->addr, op->len, op->advice));
		break;
	case K_READ:
	case K_WRITE:
		host_access(op, res);
		break;
	default:
		break;
	}
}

/* Summarise one pagemap entry and its kpageflags into B_* bits. */
static uint8_t page_bits(uint64_t pm, uint64_t kpf)
{
	uint8_t b = 0;

	if (pm & PM_PRESENT)
		b |= B_PRESENT;
	if (pm & PM_SWAP)
		b |= B_SWAP;
	if (pm & PM_MMAP_EXCLUSIVE)
		b |= B_EXCL;
	if (pm & PM_FILE)
		b |= B_FILE;
	if (kpf & (1ULL << KPF_ZERO_PAGE))
		b |= B_ZERO;
	if (kpf & (1ULL << KPF_THP))
		b |= B_THP;
	return b;
}

static void snap_clip_vma(struct diff_snap *s, unsigned long start, unsigned long end,
			  const char *perms)
{
	struct diff_vma *v;

	if (end <= zone_lo || start >= zone_hi || s->nr_vmas >= MAX_SNAP_VMAS)
		return;
	v = &s->vmas[s->nr_vmas++];
	v->start = start < zone_lo ? zone_lo : start;
	v->end = end > zone_hi ? zone_hi : end;
	memcpy(v->perms, perms, 5);
}

/* The host's state of the zone: its VMAs and every page's bits. */
static void host_snapshot(struct diff_snap *s)
{
	ssize_t n;

	host_read_maps();
	s->nr_vmas = 0;
	for (unsigned int i = 0; i < host_maps_nr; i++)
		snap_clip_vma(s, host_maps[i].start, host_maps[i].end, host_maps[i].perms);
	n = pread(pagemap_fd, pm_buf, sizeof(pm_buf), (off_t)(zone_lo >> PAGE_SHIFT) * 8);
	cr_assert_eq(n, (ssize_t)sizeof(pm_buf), "pread pagemap: %s", strerror(errno));
	for (unsigned long i = 0; i < ZONE_PAGES;) {
		unsigned long pfn = pm_buf[i] & PM_PFRAME_MASK, run = 1;

		if (!(pm_buf[i] & PM_PRESENT) || !pfn || kpageflags_fd < 0) {
			s->bits[i] = page_bits(pm_buf[i], 0);
			i++;
			continue;
		}
		/* A run of pages with consecutive PFNs: one read of kpageflags. */
		while (i + run < ZONE_PAGES && run < 512 && (pm_buf[i + run] & PM_PRESENT) &&
		       (pm_buf[i + run] & PM_PFRAME_MASK) == pfn + run)
			run++;
		n = pread(kpageflags_fd, kpf_buf, run * 8, (off_t)pfn * 8);
		if (n != (ssize_t)(run * 8))
			memset(kpf_buf, 0, run * 8);
		for (unsigned long k = 0; k < run; k++)
			s->bits[i + k] = page_bits(pm_buf[i + k], kpf_buf[k]);
		i += run;
	}
}

/* ------------------------------------------------------------------ */
/* The host's child                                                     */
/* ------------------------------------------------------------------ */

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(3);
		p += n;
		len -= (size_t)n;
	}
}

static bool read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void open_host_proc_files(void)
{
	if (pagemap_fd >= 0)
		close(pagemap_fd);
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	cr_assert(pagemap_fd >= 0, "open /proc/self/pagemap: %s", strerror(errno));
}

/*
 * The child's loop: run each operation and answer with its result, or
 * answer K_SNAPSHOT with the state.
 */
__attribute__((noreturn)) static void host_child_loop(int cmd_fd, int res_fd)
{
	struct diff_op op;

	open_host_proc_files();
	while (read_all(cmd_fd, &op, sizeof(op)) && op.kind != K_QUIT) {
		if (op.kind == K_SNAPSHOT) {
			host_snapshot(&hsnap);
			write_all(res_fd, &hsnap, sizeof(hsnap));
			continue;
		}
		host_exec(&op, &hres);
		write_all(res_fd, &hres, offsetof(struct diff_res, data) + hres.data_len);
	}
	_exit(0);
}

/* Send @op to the host child: its result lands in hres (K_SNAPSHOT: hsnap). */
static void child_request(const struct diff_op *op)
{
	bool ok;

	write_all(child_cmd_fd, op, sizeof(*op));
	if (op->kind == K_SNAPSHOT) {
		ok = read_all(child_res_fd, &hsnap, sizeof(hsnap));
	} else {
		ok = read_all(child_res_fd, &hres, offsetof(struct diff_res, data));
		ok = ok && hres.data_len <= ACCESS_MAX &&
		     read_all(child_res_fd, hres.data, hres.data_len);
	}
	cr_assert(ok, "differential: the host child died");
}

static long host_fork(void)
{
	int cmd[2], res[2];
	pid_t pid;

	cr_assert_eq(pipe2(cmd, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(res, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(cmd[1]);
		close(res[0]);
		host_child_loop(cmd[0], res[1]);
	}
	close(cmd[0]);
	close(res[1]);
	host_child = pid;
	child_cmd_fd = cmd[1];
	child_res_fd = res[0];
	return 0;
}

static void host_child_exit(void)
{
	struct diff_op quit = { .kind = K_QUIT };
	int status;

	write_all(child_cmd_fd, &quit, sizeof(quit));
	close(child_cmd_fd);
	close(child_res_fd);
	cr_assert_eq(waitpid(host_child, &status, 0), host_child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "host child status %#x", status);
	host_child = 0;
	child_cmd_fd = child_res_fd = -1;
}

/* ------------------------------------------------------------------ */
/* uhmm                                                                 */
/* ------------------------------------------------------------------ */

static void uhmm_exec(struct mm_struct *mm, const struct diff_op *op, struct diff_res *res)
{
	res->ret = 0;
	res->surprise = 0;
	res->merged = false;
	res->data_len = 0;
	switch (op->kind) {
	case K_MMAP:
		res->ret = mm_mmap(mm, op->addr, op->len, op->prot, op->flags, NULL, 0);
		break;
	case K_MUNMAP:
		res->ret = mm_munmap(mm, op->addr, op->len);
		break;
	case K_MPROTECT:
		res->ret = mm_mprotect(mm, op->addr, op->len, op->prot);
		break;
	case K_MREMAP:
		res->ret = mm_mremap(mm, op->addr, op->len, op->len2, op->flags, op->addr2);
		break;
	case K_MADVISE:
		res->ret = mm_madvise(mm, op->addr, op->len, op->advice);
		break;
	case K_READ:
		res->ret = cpu_read(mm, op->addr, res->data, op->len);
		if (!res->ret)
			res->data_len = op->len;
		break;
	case K_WRITE:
		fill_data(res->data, op->len, op->seed);
		res->ret = cpu_write(mm, op->addr, res->data, op->len);
		break;
	default:
		break;
	}
}

static void uhmm_snapshot(struct mm_struct *mm, struct diff_snap *s)
{
	static uint64_t entries[ZONE_PAGES];

	s->nr_vmas = 0;
	mmap_read_lock(mm);
	for (size_t i = 0; i < mm->mm_mt.nr; i++) {
		const struct vm_area_struct *vma = mm->mm_mt.vmas[i];
		unsigned long f = vma->vm_flags;
		char perms[5] = {
			f & VM_READ ? 'r' : '-', f & VM_WRITE ? 'w' : '-', f & VM_EXEC ? 'x' : '-',
			f & VM_MAYSHARE ? 's' : 'p', 0,
		};

		snap_clip_vma(s, vma->vm_start, vma->vm_end, perms);
	}
	mmap_read_unlock(mm);
	cr_assert_eq(mm_pagemap_read(mm, zone_lo, ZONE_PAGES, entries), 0);
	for (unsigned long i = 0; i < ZONE_PAGES; i++) {
		uint64_t kpf = 0;

		if ((entries[i] & PM_PRESENT) && !(entries[i] & PM_SWAP))
			kpf = uhmm_kpageflags((unsigned long)(entries[i] & PM_PFRAME_MASK));
		s->bits[i] = page_bits(entries[i], kpf);
	}
}

/* ------------------------------------------------------------------ */
/* Comparison                                                           */
/* ------------------------------------------------------------------ */

static void format_vmas(char *buf, size_t size, const struct diff_snap *s)
{
	size_t used = 0;

	buf[0] = 0;
	for (unsigned int i = 0; i < s->nr_vmas && used + 64 < size; i++)
		used += (size_t)snprintf(buf + used, size - used, " [%#lx-%#lx %s]",
					 s->vmas[i].start, s->vmas[i].end, s->vmas[i].perms);
}

static unsigned long fault_around_pages;

/*
 * Allow-list entry "fault-around", tolerated page by page (the sequence
 * goes on): a read fault on a file or shmem mapping makes Linux map the
 * neighbouring pages that are already in the page cache too
 * (do_fault_around(), fault_around_bytes = 64 KiB); uhmm maps only the
 * page that faulted.  Nothing a program can read differs: the page is in
 * uhmm's page cache, so touching it there maps the same bytes.  Tolerated
 * only for a page the host maps as a file page (PM_FILE), uhmm does not
 * map, and uhmm has in the page cache behind that address.
 */
static bool fault_around_page(struct mm_struct *mm, unsigned long addr, uint8_t h, uint8_t u)
{
	struct vm_area_struct *vma;
	bool cached = false;

	if (!(h & B_PRESENT) || !(h & B_FILE) || (u & B_PRESENT))
		return false;
	mmap_read_lock(mm);
	vma = vma_lookup(mm, addr);
	if (vma && vma->vm_file) {
		unsigned long index = vma->vm_pgoff + ((addr - vma->vm_start) >> PAGE_SHIFT);
		struct folio *folio = filemap_get_folio(vma->vm_file->f_mapping, index);

		if (folio) {
			cached = true;
			folio_put(folio);
		}
	}
	mmap_read_unlock(mm);
	return cached;
}

/* Compare the states; return true if a (allowed) difference ends the sequence. */
static bool compare_snaps(const struct diff_op *op, const char *who, struct mm_struct *mm,
			  bool report)
{
	bool same = hsnap.nr_vmas == usnap.nr_vmas;

	for (unsigned int i = 0; same && i < hsnap.nr_vmas; i++)
		same = hsnap.vmas[i].start == usnap.vmas[i].start &&
		       hsnap.vmas[i].end == usnap.vmas[i].end &&
		       !strcmp(hsnap.vmas[i].perms, usnap.vmas[i].perms);
	if (!same && !report)
		return true;
	if (!same) {
		static char hb[8192], ub[8192];
		struct diff_info d = { .what = D_VMAS, .op = op };

		format_vmas(hb, sizeof(hb), &hsnap);
		format_vmas(ub, sizeof(ub), &usnap);
		return differ(&d, "%s VMAs differ:\n  host:%s\n  uhmm:%s", who, hb, ub);
	}
	for (unsigned long i = 0; i < ZONE_PAGES; i++) {
		uint8_t h = hsnap.bits[i] & bits_mask, u = usnap.bits[i] & bits_mask;

		if (report || h == u) {
			seen_present += (h & u & B_PRESENT) != 0;
			seen_zero += (h & u & B_ZERO) != 0;
			seen_thp += (h & u & B_THP) != 0;
			seen_file += (h & u & B_FILE) != 0;
		}

		if (h != u && fault_around_page(mm, zone_lo + (i << PAGE_SHIFT), h, u)) {
			fault_around_pages++;
			continue;
		}
		/*
		 * Part of "fault-around": fault-around in another mapping of
		 * the same shmem object (a forked child's, or one mremap
		 * duplicated with old_len 0) may map a shmem page twice on the
		 * host (no PM_MMAP_EXCLUSIVE) where uhmm maps it once.
		 */
		if (h != u && (h & u & B_FILE) && (h ^ u) == B_EXCL && !(h & B_EXCL)) {
			fault_around_pages++;
			continue;
		}
		if (h != u && !report)
			return true;
		if (h != u) {
			struct diff_info d = { .what = D_BITS, .op = op, .host_bits = h,
					       .uhmm_bits = u,
					       .addr = zone_lo + (i << PAGE_SHIFT) };
			unsigned long n = 1;

			while (i + n < ZONE_PAGES && (hsnap.bits[i + n] & bits_mask) == h &&
			       (usnap.bits[i + n] & bits_mask) == u)
				n++;
			return differ(&d,
				      "%s page bits differ at %#lx (%lu pages): host %#x, uhmm %#x "
				      "(present 1, swap 2, exclusive 4, file 8, zero 0x10, thp 0x20)",
				      who, d.addr, n, h, u);
		}
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Operations                                                           */
/* ------------------------------------------------------------------ */

static void log_op(const struct diff_op *op)
{
	if (oplog_nr < DIFF_MAX_OPS * 2) {
		oplog[oplog_nr].op = *op;
		oplog[oplog_nr].host_ret = oplog[oplog_nr].uhmm_ret = 0;
		oplog_nr++;
	}
}

static void log_rets(long h, long u)
{
	if (oplog_nr) {
		oplog[oplog_nr - 1].host_ret = h;
		oplog[oplog_nr - 1].uhmm_ret = u;
	}
}

static void ensure_pad(void);

/* May @op place a mapping by search? */
static bool placed_by_search(const struct diff_op *op)
{
	return (op->kind == K_MMAP && !(op->flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))) ||
	       (op->kind == K_MREMAP && !(op->flags & MREMAP_FIXED));
}

/* Run @op on both sides (results in hres/ures; the host child's state in hsnap). */
static void run_on_both(const struct diff_op *op)
{
	log_op(op);
	if (!op->fixup)
		ops_done++;
	uhmm_exec(umm[op->target], op, &ures);
	if (op->target) {
		child_request(op);
	} else {
		if (placed_by_search(op))
			ensure_pad(); /* foreign mappings may have come since */
		host_exec(op, &hres);
	}
	log_rets(hres.ret, ures.ret);
	if (!op->fixup && hres.ret < 0)
		ops_failed++;
}

/* A free, @len-long place in the zone, per uhmm's VMAs (equal to the host's). */
static unsigned long free_spot(struct mm_struct *mm, unsigned long len)
{
	unsigned long align = len >= PMD_SIZE ? PMD_SIZE : PAGE_SIZE;
	unsigned long best = 0;

	mmap_read_lock(mm);
	for (unsigned long a = ALIGN(zone_lo, align); a + len <= zone_hi; a += align) {
		struct vm_area_struct *vma = find_vma(mm, a);

		if (!vma || vma->vm_start >= a + len) {
			best = a;
			break;
		}
		a = ALIGN(vma->vm_end, align) - align;
	}
	mmap_read_unlock(mm);
	return best;
}

static bool compare_states(const struct diff_op *op);

/*
 * The two sides placed a mapping of @len by search, at different
 * addresses outside the window: move both to one free place in the zone
 * (or unmap both when the zone has none).  Return: true if a difference
 * ends the sequence.
 */
static bool normalize_placement(int target, long host_addr, long uhmm_addr, unsigned long len)
{
	unsigned long spot = free_spot(umm[target], len);
	struct diff_op op = { .target = target, .fixup = true, .addr = (unsigned long)host_addr,
			      .len = len };
	long h, u;

	if (spot) {
		op.kind = K_MREMAP;
		op.len2 = len;
		op.flags = MREMAP_MAYMOVE | MREMAP_FIXED;
		op.addr2 = spot;
	} else {
		op.kind = K_MUNMAP;
	}
	/* Each side moves its own mapping: run them one by one. */
	log_op(&op);
	fixups_done++;
	if (target) {
		child_request(&op);
	} else {
		host_exec(&op, &hres);
	}
	h = hres.ret;
	op.addr = (unsigned long)uhmm_addr;
	uhmm_exec(umm[target], &op, &ures);
	u = ures.ret;
	log_rets(h, u);
	if (h != u) {
		struct diff_info d = { .what = D_RET, .op = &op };

		return differ(&d, "fixup %s: host %ld, uhmm %ld", kind_names[op.kind], h, u);
	}
	if (op.kind == K_MREMAP && h >= 0 && carried_nr < MAX_CARRIED) {
		carried[carried_nr].start = spot;
		carried[carried_nr++].end = spot + len;
	}
	return compare_states(&op);
}

/*
 * A new mapping placed by search: unmap it on both sides and map it again,
 * with the same arguments, at one free place in the zone.  (Moving it with
 * mremap, as normalize_placement() does, would keep a pgoff derived from
 * the searched address once MAP_POPULATE faulted it, and that address
 * differs between the two: THP suitability would then differ.)
 */
static bool normalize_mmap(const struct diff_op *orig, long host_addr, long uhmm_addr,
			   unsigned long len)
{
	struct diff_op op = { .kind = K_MUNMAP, .target = orig->target, .fixup = true,
			      .addr = (unsigned long)host_addr, .len = len };
	unsigned long spot;
	long h, u;

	log_op(&op);
	fixups_done++;
	if (op.target)
		child_request(&op);
	else
		host_exec(&op, &hres);
	h = hres.ret;
	op.addr = (unsigned long)uhmm_addr;
	uhmm_exec(umm[op.target], &op, &ures);
	u = ures.ret;
	log_rets(h, u);
	if (h != u) {
		struct diff_info d = { .what = D_RET, .op = &op };

		return differ(&d, "fixup munmap: host %ld, uhmm %ld", h, u);
	}
	spot = free_spot(umm[op.target], len);
	if (!spot)
		return compare_states(&op);
	op = *orig;
	op.fixup = true;
	op.addr = spot;
	op.flags = (op.flags & ~MAP_FIXED_NOREPLACE) | MAP_FIXED;
	run_on_both(&op);
	fixups_done++;
	if (hres.ret != ures.ret) {
		struct diff_info d = { .what = D_RET, .op = &op };

		return differ(&d, "fixup mmap: host %ld, uhmm %ld", hres.ret, ures.ret);
	}
	return compare_states(&op);
}

/* Compare both processes' states after @op. */
static bool compare_states(const struct diff_op *op)
{
	/*
	 * A first difference is looked at again with fresh snapshots: the
	 * host's pages move under us (compaction migrates them, so a PFN read
	 * from pagemap may belong to another folio by the time kpageflags is
	 * read).  Only a difference that is still there counts.
	 */
	for (int pass = 0; pass < 2; pass++) {
		host_snapshot(&hsnap);
		uhmm_snapshot(umm[0], &usnap);
		if (compare_snaps(op, "parent", umm[0], pass == 1)) {
			if (pass == 1)
				return true;
			snapshot_retries++;
			continue;
		}
		if (host_child) {
			struct diff_op snap = { .kind = K_SNAPSHOT, .target = 1 };

			child_request(&snap);
			uhmm_snapshot(umm[1], &usnap);
			if (compare_snaps(op, "child", umm[1], pass == 1)) {
				if (pass == 1)
					return true;
				snapshot_retries++;
				continue;
			}
		}
		if (pass == 1)
			transient_diffs++;
		return false;
	}
	return false;
}

/* Compare the results of @op (in hres/ures). Return: true if the sequence ends. */
static bool compare_results(const struct diff_op *op)
{
	long h = hres.ret, u = ures.ret;
	bool searched = placed_by_search(op);

	if (hres.surprise) {
		struct diff_info d = { .what = D_HOST_SURPRISE, .op = op };

		return differ(&d, "the host CPU disagreed with /proc/self/maps (%s)",
			      hres.surprise == 1 ? "no fault where maps forbid"
						 : "a fault where maps allow");
	}
	if (hres.merged) {
		struct diff_info d = { .what = D_PLACEMENT_MERGE, .op = op };

		return differ(&d, "the host merged a mapping placed by search at %#lx with a "
				  "neighbour", (unsigned long)h);
	}
	if (searched && h >= 0 && u >= 0 && !in_window(h) && !in_window(u)) {
		unsigned long len = PAGE_ALIGN(op->kind == K_MMAP ? op->len : op->len2);

		if (h == u)
			return false;
		if (op->kind == K_MMAP)
			return normalize_mmap(op, h, u, len);
		return normalize_placement(op->target, h, u, len);
	}
	if (h != u) {
		struct diff_info d = { .what = D_RET, .op = op };

		return differ(&d, "%s returned host %ld (%#lx), uhmm %ld (%#lx)",
			      kind_names[op->kind], h, (unsigned long)h, u, (unsigned long)u);
	}
	if (op->kind == K_READ && !h && memcmp(hres.data, ures.data, op->len)) {
		struct diff_info d = { .what = D_DATA, .op = op };
		unsigned long i = 0;

		while (hres.data[i] == ures.data[i])
			i++;
		d.addr = op->addr + i;
		return differ(&d, "read data differ at %#lx: host %#x, uhmm %#x", d.addr,
			      hres.data[i], ures.data[i]);
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Generation                                                           */
/* ------------------------------------------------------------------ */

/* An address in the zone, often at or inside an existing VMA, sometimes 2 MiB aligned. */
static unsigned long pick_zone_addr(struct mm_struct *mm)
{
	unsigned long addr;

	if (chance(70)) {
		unsigned long n = 0, pick;
		struct vm_area_struct *vma = NULL;

		mmap_read_lock(mm);
		for (size_t i = 0; i < mm->mm_mt.nr; i++)
			if (mm->mm_mt.vmas[i]->vm_end > zone_lo && mm->mm_mt.vmas[i]->vm_start < zone_hi)
				n++;
		pick = rnd_below(n);
		for (size_t i = 0; i < mm->mm_mt.nr; i++)
			if (mm->mm_mt.vmas[i]->vm_end > zone_lo &&
			    mm->mm_mt.vmas[i]->vm_start < zone_hi && !pick--) {
				vma = mm->mm_mt.vmas[i];
				break;
			}
		if (vma) {
			unsigned long start = vma->vm_start, end = vma->vm_end;

			switch (rnd_below(4)) {
			case 0:
				addr = start;
				break;
			case 1:
				addr = end;
				break;
			case 2:
				addr = ALIGN(start + rnd_below(end - start), PMD_SIZE);
				break;
			default:
				addr = (start + rnd_below(end - start)) & PAGE_MASK;
				break;
			}
			mmap_read_unlock(mm);
			if (addr < zone_lo)
				addr = zone_lo;
			if (addr >= zone_hi)
				addr = zone_hi - PAGE_SIZE;
			return addr;
		}
		mmap_read_unlock(mm);
	}
	addr = zone_lo + (rnd_below(ZONE_PAGES) << PAGE_SHIFT);
	if (chance(35))
		addr &= PMD_MASK;
	if (addr < zone_lo)
		addr = zone_lo;
	return addr;
}

/* An address no operation may use: unaligned, 0, at or above TASK_SIZE. */
static unsigned long pick_bad_addr(struct mm_struct *mm, bool allow_low)
{
	switch (rnd_below(allow_low ? 5 : 4)) {
	case 0:
	case 1:
		return pick_zone_addr(mm) + 1 + rnd_below(PAGE_SIZE - 1);
	case 2:
		return TASK_SIZE + (rnd_below(4) << PAGE_SHIFT);
	case 3:
		return chance(50) ? 0xffff800000000000UL : (ULONG_MAX & PAGE_MASK);
	default:
		return 0;
	}
}

/* A length for a range from @addr: mostly valid and inside the zone, sometimes bad. */
static unsigned long pick_len(unsigned long addr, bool allow_bad)
{
	unsigned long len;
	unsigned int r = (unsigned int)rnd_below(100);

	if (allow_bad && r >= 90) {
		switch (rnd_below(4)) {
		case 0:
			return 0;
		case 1:
			return ULONG_MAX - rnd_below(PAGE_SIZE); /* rounds up to 0 */
		case 2:
			return (0UL - addr) + ((1 + rnd_below(4)) << PAGE_SHIFT); /* wraps */
		default:
			return ((1 + rnd_below(8)) << PAGE_SHIFT) - 1 - rnd_below(PAGE_SIZE - 1);
		}
	}
	if (r < 50)
		len = (1 + rnd_below(16)) << PAGE_SHIFT;
	else if (r < 70)
		len = (1 + rnd_below(3)) * PMD_SIZE;
	else
		len = (1 + rnd_below(1024)) << PAGE_SHIFT;
	/* Stay in the zone (or, for an address above TASK_SIZE, stay small). */
	if (addr >= zone_lo && addr < zone_hi && addr + len > zone_hi)
		len = zone_hi - (addr & PAGE_MASK);
	else if (addr < zone_lo || addr >= zone_hi)
		len = (1 + rnd_below(4)) << PAGE_SHIFT;
	return len;
}

static int pick_prot(void)
{
	static const int prots[] = {
		PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE,
		PROT_READ,		PROT_NONE,		PROT_WRITE,
		PROT_READ | PROT_EXEC,	PROT_EXEC,
	};

	if (chance(4))
		return chance(50) ? 0x10 /* unknown bit */ : PROT_READ | PROT_GROWSDOWN;
	return prots[rnd_below(sizeof(prots) / sizeof(prots[0]))];
}

static void gen_mmap(struct diff_op *op, struct mm_struct *mm)
{
	unsigned int r = (unsigned int)rnd_below(100);
	int type = chance(20) ? MAP_SHARED : MAP_PRIVATE;

	op->kind = K_MMAP;
	op->prot = pick_prot();
	if (op->prot == 0x10 || op->prot & PROT_GROWSDOWN)
		op->prot = PROT_READ | PROT_WRITE; /* mmap ignores unknown bits: tested by mprotect */
	if (chance(3))
		type = chance(50) ? MAP_SHARED_VALIDATE : 0; /* no or both sharing types */
	op->flags = type | MAP_ANONYMOUS;
	if (chance(15))
		op->flags |= MAP_POPULATE;
	if (chance(10))
		op->flags |= MAP_NORESERVE;
	if (r < 50) {
		op->flags |= MAP_FIXED;
	} else if (r < 65) {
		op->flags |= MAP_FIXED_NOREPLACE;
	} else if (r < 90) {
		op->addr = pick_zone_addr(mm); /* a hint */
		if (chance(10))
			op->addr += 1 + rnd_below(PAGE_SIZE - 1);
	}
	if (op->flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		op->addr = chance(5) ? pick_bad_addr(mm, false) : pick_zone_addr(mm);
	}
	op->len = pick_len(op->addr & PAGE_MASK, true);
	if (!(op->flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && op->len > (8UL << 20) &&
	    PAGE_ALIGN(op->len))
		op->len = 8UL << 20;
}

static const int advices[] = {
	MADV_DONTNEED,	 MADV_DONTNEED,	      MADV_FREE,      MADV_HUGEPAGE,  MADV_HUGEPAGE,
	MADV_HUGEPAGE,	 MADV_NOHUGEPAGE,     MADV_POPULATE_READ, MADV_POPULATE_WRITE,
	MADV_REMOVE,	 MADV_COLLAPSE,	      MADV_COLLAPSE,  MADV_WILLNEED,  MADV_NORMAL,
	MADV_DONTFORK,	 MADV_DOFORK,	      MADV_WIPEONFORK, MADV_KEEPONFORK,
	/* invalid values (not 12/13, KSM; not 26/27, guard regions; not 100/101) */
	5,		 7,		      99,	      -1,
};

static void gen_op(struct diff_op *op)
{
	struct mm_struct *mm;
	unsigned int r;

	memset(op, 0, sizeof(*op));
	op->target = umm[1] && chance(50);
	mm = umm[op->target];
	r = (unsigned int)rnd_below(1000);
	if (r < 15) {
		op->kind = umm[1] ? K_EXIT_CHILD : K_FORK;
		return;
	}
	if (r < 170) {
		gen_mmap(op, mm);
		return;
	}
	op->addr = chance(5) ? pick_bad_addr(mm, true) : pick_zone_addr(mm);
	if (r < 240) {
		op->kind = K_MUNMAP;
		op->len = pick_len(op->addr, true);
	} else if (r < 340) {
		op->kind = K_MPROTECT;
		op->len = pick_len(op->addr, true);
		op->prot = pick_prot();
	} else if (r < 420) {
		op->kind = K_MREMAP;
		op->len = chance(5) ? 0 : pick_len(op->addr, true);
		op->len2 = chance(3) ? 0 : pick_len(op->addr, false);
		switch (rnd_below(10)) {
		case 0:
			op->flags = 0;
			break;
		case 1:
		case 2:
		case 3:
			op->flags = MREMAP_MAYMOVE;
			break;
		case 4:
		case 5:
			op->flags = MREMAP_MAYMOVE | MREMAP_FIXED;
			break;
		case 6:
		case 7:
			op->flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
			op->len2 = op->len;
			break;
		case 8:
			op->flags = MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP;
			op->len2 = op->len;
			break;
		default: /* invalid combinations and bits */
			op->flags = (int)(1 + rnd_below(16)) & ~MREMAP_MAYMOVE;
			break;
		}
		if (op->len2 > (8UL << 20) && !(op->flags & MREMAP_DONTUNMAP))
			op->len2 = 8UL << 20;
		if (op->flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) || chance(10)) {
			op->addr2 = chance(5) ? pick_bad_addr(mm, false) : pick_zone_addr(mm);
			if (op->addr2 >= zone_lo && op->addr2 < zone_hi) {
				/* Keep [addr2, addr2 + len2) in the zone, or above TASK_SIZE. */
				if (!PAGE_ALIGN(op->len2) || PAGE_ALIGN(op->len2) > ZONE_SIZE)
					op->addr2 = TASK_SIZE;
				else if (op->addr2 + PAGE_ALIGN(op->len2) > zone_hi)
					op->addr2 = zone_hi - PAGE_ALIGN(op->len2);
			}
		}
	} else if (r < 560) {
		op->kind = K_MADVISE;
		op->len = pick_len(op->addr, true);
		op->advice = advices[rnd_below(sizeof(advices) / sizeof(advices[0]))];
		/* THP advice: half the time over the whole VMA at @addr. */
		if ((op->advice == MADV_HUGEPAGE || op->advice == MADV_COLLAPSE) && chance(50)) {
			struct vm_area_struct *vma;

			mmap_read_lock(mm);
			vma = vma_lookup(mm, op->addr);
			if (vma && vma->vm_start >= zone_lo && vma->vm_end <= zone_hi) {
				op->addr = vma->vm_start;
				op->len = vma->vm_end - vma->vm_start;
			}
			mmap_read_unlock(mm);
		}
		/* Mostly keep MADV_COLLAPSE off shmem (allow_shmem_collapse()). */
		if (op->advice == MADV_COLLAPSE && chance(90) &&
		    range_meets_shared(mm, op->addr, op->len))
			op->advice = MADV_HUGEPAGE;
	} else {
		op->kind = r < 780 ? K_WRITE : K_READ;
		if (op->addr >= zone_lo && op->addr < zone_hi && chance(40))
			op->addr += rnd_below(PAGE_SIZE);
		op->len = chance(60) ? 1 + rnd_below(64) : 1 + rnd_below(ACCESS_MAX);
		if (op->addr >= zone_lo && op->addr < zone_hi && op->addr + op->len > zone_hi)
			op->len = zone_hi - op->addr;
		else if (op->addr < zone_lo || op->addr >= zone_hi)
			op->len = 1 + rnd_below(64);
		if (!op->len)
			op->len = 1;
		op->seed = (uint32_t)rnd();
	}
}

/* ------------------------------------------------------------------ */
/* Sequences                                                            */
/* ------------------------------------------------------------------ */

static void fork_both(const struct diff_op *op)
{
	struct mm_struct *child;
	long h;

	log_op(op);
	ops_done++;
	child = mm_fork(umm[0]);
	cr_assert(!IS_ERR_OR_NULL(child), "mm_fork: %ld", PTR_ERR(child));
	umm[1] = child;
	h = host_fork();
	cr_assert_eq(h, 0, "host fork: %ld", h);
	log_rets(0, 0);
}

static void exit_child_both(const struct diff_op *op)
{
	if (op)
		log_op(op);
	ops_done++;
	mmput(umm[1]);
	umm[1] = NULL;
	host_child_exit();
	if (op)
		log_rets(0, 0);
}

/*
 * Reset the window on both sides: one PROT_NONE reservation over all of
 * it, then the zone's middle unmapped.
 */
static void reset_window(void)
{
	struct diff_op reserve = { .kind = K_MMAP, .addr = win, .len = WIN_SIZE, .prot = PROT_NONE,
				   .flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
				   .fixup = true };
	struct diff_op hole = { .kind = K_MUNMAP, .addr = zone_lo + ZONE_EDGE,
				.len = ZONE_SIZE - 2 * ZONE_EDGE, .fixup = true };

	run_on_both(&reserve);
	cr_assert_eq(hres.ret, (long)win, "host reserve: %ld", hres.ret);
	cr_assert_eq(ures.ret, (long)win, "uhmm reserve: %ld", ures.ret);
	run_on_both(&hole);
	cr_assert_eq(hres.ret, 0);
	cr_assert_eq(ures.ret, 0);
}

/*
 * Counters the host bumps when it could not make a THP (fault fallback,
 * failed collapse allocation) or when khugepaged collapsed pages behind
 * our back (khugepaged/pages_collapsed; MADV_COLLAPSE does not count there).
 */
static unsigned long host_thp_events(void)
{
	static const char *const names[] = { "thp_fault_fallback ", "thp_fault_fallback_charge ",
					     "thp_collapse_alloc_failed " };
	char buf[16384];
	unsigned long sum = (unsigned long)sysfs_long(
		"/sys/kernel/mm/transparent_hugepage/khugepaged/pages_collapsed", 0);
	int fd = open("/proc/vmstat", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return sum;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return sum;
	buf[n] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *p = strstr(buf, names[i]);

		if (p)
			sum += strtoul(p + strlen(names[i]), NULL, 10);
	}
	return sum;
}

/* The data of every page present on both sides (of the parent) must agree. */
static bool compare_present_data(void)
{
	static uint8_t hpage[PAGE_SIZE], upage[PAGE_SIZE];

	host_snapshot(&hsnap);
	uhmm_snapshot(umm[0], &usnap);
	for (unsigned long i = 0; i < ZONE_PAGES; i++) {
		unsigned long addr = zone_lo + (i << PAGE_SHIFT);

		if (!(hsnap.bits[i] & usnap.bits[i] & B_PRESENT))
			continue;
		if (host_first_forbidden(addr, PAGE_SIZE, false))
			continue;
		if (host_copy(addr, hpage, PAGE_SIZE, false) || cpu_read(umm[0], addr, upage, PAGE_SIZE))
			continue;
		if (memcmp(hpage, upage, PAGE_SIZE)) {
			struct diff_op op = { .kind = K_READ, .addr = addr, .len = PAGE_SIZE };
			struct diff_info d = { .what = D_DATA, .op = &op, .addr = addr };

			return differ(&d, "final check: the page at %#lx differs", addr);
		}
	}
	return false;
}

/*
 * ensure_pad() - keep the host's placements by search away from foreign
 * mappings: fill every gap of up to 64 MiB between this process's mappings
 * above the window (not the one below [stack], which the stack grows into)
 * with a PROT_NONE shared mapping, and put one more right below the lowest
 * of them.  A top-down search then lands right below that pad, which no
 * private mapping can merge with.  Foreign mappings made later (malloc,
 * ASan) can still come between: host_placement_merged() catches that.
 */
static void ensure_pad(void)
{
	const int flags = MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE;
	const unsigned long small_gap = 64UL << 20;
	unsigned int top = 0, low;

	host_read_maps();
	for (unsigned int i = 0; i < host_maps_nr; i++)
		if (host_maps[i].stack)
			top = i;
	if (!top)
		return;
	/* The mmap area: down from below [stack] while the gaps are small. */
	for (low = top - 1; low > 0 && host_maps[low - 1].end >= win + WIN_SIZE &&
			    host_maps[low].start - host_maps[low - 1].end <= small_gap;
	     low--)
		;
	for (unsigned int i = low; i + 1 < top; i++) {
		unsigned long gap = host_maps[i + 1].start - host_maps[i].end;

		if (gap && mmap((void *)host_maps[i].end, gap, PROT_NONE, flags, -1, 0) != MAP_FAILED)
			pads_made++;
	}
	if (strcmp(host_maps[low].perms, "---s") &&
	    mmap((void *)(host_maps[low].start - PAGE_SIZE), PAGE_SIZE, PROT_NONE, flags, -1, 0) !=
		    MAP_FAILED)
		pads_made++;
}

static void run_sequence(unsigned int nops)
{
	oplog_nr = 0;
	seq_thp_events = host_thp_events();
	carried_nr = 0;
	ensure_pad();
	umm[0] = new_mm();
	reset_window();
	for (unsigned int i = 0; i < nops; i++) {
		struct diff_op op;
		bool ended;

		gen_op(&op);
		if (op.kind == K_FORK) {
			fork_both(&op);
			ended = compare_states(&op);
		} else if (op.kind == K_EXIT_CHILD) {
			exit_child_both(&op);
			ended = compare_states(&op);
		} else {
			run_on_both(&op);
			ended = compare_results(&op) || compare_states(&op);
		}
		if (ended) {
			seqs_cut++;
			break;
		}
	}
	if (umm[1])
		exit_child_both(NULL);
	compare_present_data();
	mmput(umm[0]);
	umm[0] = NULL;
	assert_audit_clean();
}

/* ------------------------------------------------------------------ */
/* Host configuration                                                   */
/* ------------------------------------------------------------------ */

/* The [selected] word of a sysfs choice file, or "" if unreadable. */
static void sysfs_choice(const char *path, char *out, size_t size)
{
	char buf[256], *l, *r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	out[0] = 0;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (!l || !r)
		return;
	*r = 0;
	snprintf(out, size, "%s", l + 1);
}

static long sysfs_long(const char *path, long def)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return def;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

static void host_config(struct uhmm_machine_config *cfg)
{
	char mode[32], pmd_mode[32];
	long hugepages = sysfs_long("/proc/sys/vm/nr_hugepages", 0);

	memset(cfg, 0, sizeof(*cfg));
	sysfs_choice("/sys/kernel/mm/transparent_hugepage/enabled", mode, sizeof(mode));
	sysfs_choice("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled", pmd_mode,
		     sizeof(pmd_mode));
	if (pmd_mode[0] && strcmp(pmd_mode, "inherit"))
		snprintf(mode, sizeof(mode), "%s", pmd_mode);
	if (!strcmp(mode, "always"))
		cfg->thp_enabled = THP_ALWAYS;
	else if (!strcmp(mode, "never") || !mode[0])
		cfg->thp_enabled = THP_NEVER;
	else
		cfg->thp_enabled = THP_MADVISE;
	cfg->no_huge_zero_page =
		sysfs_long("/sys/kernel/mm/transparent_hugepage/use_zero_page", 1) == 0;
	cfg->nr_hugepages = hugepages ? (unsigned long)hugepages : UHMM_NO_HUGEPAGES;
	fprintf(stderr, "differential: host THP %s, use_zero_page %d, nr_hugepages %ld\n",
		mode, !cfg->no_huge_zero_page, hugepages);
}

/* Can we see PFNs and their flags?  Root only; else compare fewer bits. */
static void probe_bits_mask(void)
{
	static volatile uint8_t touch[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
	uint64_t pm = 0, kpf = 0;
	bool pfns;

	touch[0] = 1;
	bits_mask = B_PRESENT | B_SWAP | B_EXCL | B_FILE;
	open_host_proc_files();
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	pfns = pread(pagemap_fd, &pm, 8, (off_t)((uintptr_t)touch >> PAGE_SHIFT) * 8) == 8 &&
	       (pm & PM_PFRAME_MASK);
	if (kpageflags_fd >= 0 && pfns &&
	    pread(kpageflags_fd, &kpf, 8, (off_t)(pm & PM_PFRAME_MASK) * 8) == 8) {
		bits_mask |= B_ZERO | B_THP;
	} else {
		fprintf(stderr, "differential: /proc/kpageflags or PFNs in pagemap not readable "
				"(not root?): the zero-page and THP bits are not compared\n");
		if (kpageflags_fd >= 0)
			close(kpageflags_fd);
		kpageflags_fd = -1;
	}
}

/* The window: at WIN_FIXED if free, else where the kernel puts it. */
static void reserve_window(void)
{
	void *p = mmap((void *)WIN_FIXED, WIN_SIZE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED) {
		p = mmap(NULL, WIN_SIZE + PMD_SIZE, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		cr_assert(p != MAP_FAILED, "reserve the window: %s", strerror(errno));
		fprintf(stderr, "differential: %#lx is taken; the window is at %p\n", WIN_FIXED, p);
	}
	win = ALIGN((unsigned long)p, PMD_SIZE);
	host_read_maps();
	cr_assert(host_maps_nr && host_maps[0].start >= LOW_LIMIT,
		  "something is mapped below %#lx", LOW_LIMIT);
	zone_lo = win + ZONE_OFF;
	zone_hi = zone_lo + ZONE_SIZE;
}

Test(differential, random_sequences, .timeout = 300)
{
	struct uhmm_machine_config cfg;
	unsigned long seqs = env_ulong("UHMM_DIFF_SEQS", DIFF_DEFAULT_SEQS);
	const char *seed_env;
	unsigned long nops = env_ulong("UHMM_DIFF_OPS", DIFF_DEFAULT_OPS);
	struct sigaction sa = { .sa_handler = probe_handler }, old_segv, old_bus;
	struct timespec t0, t1;

	if (nops > DIFF_MAX_OPS)
		nops = DIFF_MAX_OPS;
	/*
	 * A fixed default seed, so CI runs the same sequences each time (a
	 * difference a new seed turns up is found by exploring, not by a
	 * CI run failing at random); UHMM_DIFF_SEED=random picks one from
	 * the clock.
	 */
	seed_env = getenv("UHMM_DIFF_SEED");
	if (seed_env && !strcmp(seed_env, "random"))
		run_seed = (unsigned long)time(NULL) ^ (unsigned long)getpid();
	else
		run_seed = env_ulong("UHMM_DIFF_SEED", DIFF_DEFAULT_SEED);
	fprintf(stderr, "differential: seed %llu (UHMM_DIFF_SEED to replay), %lu sequences of "
			"%lu operations\n",
		run_seed, seqs, nops);
	host_config(&cfg);
	machine_setup_with(&cfg);
	probe_bits_mask();
	reserve_window();
	oplog = calloc(DIFF_MAX_OPS * 2, sizeof(*oplog));
	cr_assert(oplog);
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (seq_index = (unsigned int)env_ulong("UHMM_DIFF_FIRST", 0); seq_index < seqs; seq_index++) {
		rng_state = (run_seed + 1) * 0x9E3779B97F4A7C15ULL ^ (seq_index + 1) * 0xD1B54A32D192ED03ULL;
		if (!rng_state)
			rng_state = 1;
		run_sequence((unsigned int)nops);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr,
		"differential: %lu sequences, %lu operations (+%lu fixups) in %.2f s; %lu "
		"sequences cut short (%lu host THP fallbacks/collapses, %lu allowed differences); "
		"%lu fault-around pages tolerated; %lu snapshot differences gone on a second look\n",
		seqs, ops_done, fixups_done,
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, seqs_cut,
		thp_fallbacks_seen, allowed_nr, fault_around_pages, transient_diffs);

	fprintf(stderr,
		"differential: %lu operations failed with an errno on the host; page states "
		"compared equal: %lu present, %lu zero page, %lu THP, %lu shmem\n",
		ops_failed, seen_present, seen_zero, seen_thp, seen_file);
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	munmap((void *)win, WIN_SIZE);
	free(oplog);
	close(pagemap_fd);
	if (kpageflags_fd >= 0)
		close(kpageflags_fd);
}

/* ------------------------------------------------------------------ */
/* Regression tests for what the differential run found                 */
/* ------------------------------------------------------------------ */

/*
 * mprotect() dropping PROT_WRITE from a private anonymous VMA that never
 * faulted also drops its VM_ACCOUNT charge (Linux 6.12+), so it merges
 * with a never-writable neighbour; one that faulted keeps the charge.
 */
Test(differential, mprotect_uncharges_unfaulted_anon, .init = machine_setup)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 2 * PAGE_SIZE, PROT_READ, 0);
	uint8_t byte = 1;

	/* [a, a + 4K) writable (charged), [a + 4K, a + 8K) read-only: two VMAs. */
	cr_assert_eq(mm_mprotect(mm, a, PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(nr_vmas(mm), 2);
	cr_assert_eq(mm_mprotect(mm, a, PAGE_SIZE, PROT_READ), 0);
	cr_assert_eq(nr_vmas(mm), 1, "the uncharged VMA merges with its neighbour");

	/* Faulted first: the charge stays, the VMAs stay apart. */
	cr_assert_eq(mm_mprotect(mm, a, PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(cpu_write(mm, a, &byte, 1), 0);
	cr_assert_eq(mm_mprotect(mm, a, PAGE_SIZE, PROT_READ), 0);
	cr_assert_eq(nr_vmas(mm), 2, "a VMA with an anon_vma keeps VM_ACCOUNT");
	mmput(mm);
}

/*
 * do_mmap() checks MAP_FIXED_NOREPLACE's clash before the sharing type of
 * anonymous memory: a bad type over a mapping is -EEXIST, elsewhere -EINVAL.
 */
Test(differential, mmap_noreplace_clash_before_bad_type, .init = machine_setup)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ, 0);

	cr_assert_eq(mm_mmap(mm, a, PAGE_SIZE, PROT_READ,
			     MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, NULL, 0),
		     -EEXIST);
	cr_assert_eq(mm_mmap(mm, a + 8 * PAGE_SIZE, PAGE_SIZE, PROT_READ,
			     MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, NULL, 0),
		     -EINVAL);
	cr_assert_eq(mm_mmap(mm, a, PAGE_SIZE, PROT_READ, MAP_ANONYMOUS | MAP_FIXED, NULL, 0),
		     -EINVAL);
	cr_assert_eq(nr_vmas(mm), 1);
	mmput(mm);
}

/*
 * MADV_POPULATE_(READ|WRITE): -EINVAL for a VMA that does not allow the
 * access, -ENOMEM at a hole, and nothing after the hole is populated.
 */
Test(differential, madvise_populate_stops_like_linux, .init = machine_setup)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);

	cr_assert_eq(mm_mprotect(mm, a, PAGE_SIZE, PROT_EXEC), 0);
	cr_assert_eq(mm_madvise(mm, a, 2 * PAGE_SIZE, MADV_POPULATE_WRITE), -EINVAL);
	cr_assert_eq(mm_madvise(mm, a, PAGE_SIZE, MADV_POPULATE_READ), -EINVAL);
	cr_assert_eq(mm_mprotect(mm, a, PAGE_SIZE, PROT_NONE), 0);
	cr_assert_eq(mm_madvise(mm, a, PAGE_SIZE, MADV_POPULATE_READ), -EINVAL);
	cr_assert_eq(pagemap(mm, a + PAGE_SIZE) & PM_PRESENT, 0, "nothing populated past -EINVAL");

	/* A hole at a + 2 pages: the page before is populated, the one after not. */
	cr_assert_eq(mm_munmap(mm, a + 2 * PAGE_SIZE, PAGE_SIZE), 0);
	cr_assert_eq(mm_madvise(mm, a + PAGE_SIZE, 3 * PAGE_SIZE, MADV_POPULATE_WRITE), -ENOMEM);
	cr_assert(pagemap(mm, a + PAGE_SIZE) & PM_PRESENT);
	cr_assert_eq(pagemap(mm, a + 3 * PAGE_SIZE) & PM_PRESENT, 0,
		     "Linux stops at the hole: the page after it is not populated");
	mmput(mm);
}

/*
 * An mmap hint is rounded down to a page (x86), a MAP_FIXED_NOREPLACE
 * address is not a hint: unaligned, it is -EINVAL.
 */
Test(differential, mmap_hint_rounds_down, .init = machine_setup)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 16 * PAGE_SIZE, PROT_READ, 0);

	cr_assert_eq(mm_munmap(mm, a, 16 * PAGE_SIZE), 0);
	cr_assert_eq(mm_mmap(mm, a + 0x1801, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			     NULL, 0),
		     (long)(a + 0x1000));
	cr_assert_eq(mm_mmap(mm, 0x100, PAGE_SIZE, PROT_READ,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, NULL, 0),
		     -EINVAL);
	cr_assert_eq(nr_vmas(mm), 1);
	mmput(mm);
}

/*
 * MADV_COLLAPSE is -EINVAL in a VMA that never faulted, in one that cannot
 * hold an aligned 2 MiB range, and over a range inside one PMD; a range
 * that ends where it starts at a PMD boundary is a successful no-op.
 */
Test(differential, madvise_collapse_einval_like_linux, .init = machine_setup)
{
	struct mm_struct *mm = new_mm();
	unsigned long small = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);
	unsigned long big = map_plain(mm, 2 * PMD_SIZE);
	uint8_t byte = 1;

	cr_assert_eq(mm_madvise(mm, big, PMD_SIZE, MADV_COLLAPSE), -EINVAL, "no anon_vma");
	cr_assert_eq(cpu_write(mm, small, &byte, 1), 0);
	cr_assert_eq(cpu_write(mm, big, &byte, 1), 0);
	cr_assert_eq(mm_madvise(mm, small, 4 * PAGE_SIZE, MADV_COLLAPSE), -EINVAL, "small VMA");
	cr_assert_eq(mm_madvise(mm, big + PAGE_SIZE, PAGE_SIZE, MADV_COLLAPSE), -EINVAL,
		     "inside one PMD");
	cr_assert_eq(mm_madvise(mm, big + PAGE_SIZE, PMD_SIZE - PAGE_SIZE, MADV_COLLAPSE), 0);
	cr_assert_eq(mm_madvise(mm, big, PMD_SIZE, MADV_COLLAPSE), 0);
	mmput(mm);
}

/*
 * mprotect(PROT_GROWSDOWN) over a hole that a VMA follows is -EINVAL (the
 * VMA does not grow down), over nothing at all -ENOMEM.
 */
Test(differential, mprotect_growsdown_hole_einval, .init = machine_setup)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 4 * PAGE_SIZE, PROT_READ, 0);

	cr_assert_eq(mm_munmap(mm, a, PAGE_SIZE), 0);
	cr_assert_eq(mm_mprotect(mm, a, 2 * PAGE_SIZE, PROT_READ | PROT_GROWSDOWN), -EINVAL);
	cr_assert_eq(mm_mprotect(mm, a, PAGE_SIZE, PROT_READ | PROT_GROWSDOWN), -ENOMEM);
	cr_assert_eq(mm_mprotect(mm, a, 2 * PAGE_SIZE, PROT_READ | PROT_GROWSUP), -ENOMEM);
	cr_assert_eq(mm_mprotect(mm, a + PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_GROWSUP), -EINVAL);
	mmput(mm);
}

/*
 * MADV_COLLAPSE collapses read-only pages (mprotect, or write-protected by
 * fork) as Linux 6.18 does; the new PMD is writable only in a VM_WRITE VMA.
 */
Test(differential, madvise_collapse_read_only_pages, .init = machine_setup)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_plain(mm, 2 * PMD_SIZE);
	struct mm_struct *child;
	uint8_t byte = 7;

	fill_pattern(mm, a, 3 * PAGE_SIZE, 1);
	cr_assert_eq(mm_mprotect(mm, a, PMD_SIZE, PROT_READ), 0);
	cr_assert_eq(mm_madvise(mm, a, PMD_SIZE, MADV_COLLAPSE), 0);
	cr_assert_eq(anon_huge(mm), PMD_SIZE);
	check_pattern(mm, a, 3 * PAGE_SIZE, 1);
	cr_assert_eq(cpu_write(mm, a, &byte, 1), -EFAULT, "the collapsed PMD stays read-only");

	/* Written, then write-protected by fork: collapsed in the parent only. */
	fill_pattern(mm, a + PMD_SIZE, 5 * PAGE_SIZE, 2);
	child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	cr_assert_eq(mm_madvise(mm, a + PMD_SIZE, PMD_SIZE, MADV_COLLAPSE), 0);
	check_pattern(mm, a + PMD_SIZE, 5 * PAGE_SIZE, 2);
	check_pattern(child, a + PMD_SIZE, 5 * PAGE_SIZE, 2);
	cr_assert_eq(cpu_write(mm, a + PMD_SIZE, &byte, 1), 0);
	check_pattern(child, a + PMD_SIZE, 5 * PAGE_SIZE, 2);
	assert_audit_clean();
	mmput(child);
	mmput(mm);
}

/*
 * A read fault that maps the huge zero folio prepares the VMA's anon_vma
 * (Linux's vmf_anon_prepare() comes first), so fork copies the huge zero
 * PMD into the child.
 */
Test(differential, huge_zero_read_prepares_anon_vma, .init = machine_setup)
{
	struct mm_struct *mm = new_mm(), *child;
	unsigned long a = map_thp(mm, PMD_SIZE);
	uint8_t byte = 0xff;

	cr_assert_eq(cpu_read(mm, a + 5, &byte, 1), 0);
	cr_assert_eq(byte, 0);
	cr_assert(is_huge_zero_pfn(machine, pfn_at(mm, a)), "the huge zero folio is mapped");
	child = mm_fork(mm);
	cr_assert(!IS_ERR_OR_NULL(child));
	cr_assert(pagemap(child, a) & PM_PRESENT, "fork copied the huge zero PMD");
	cr_assert(is_huge_zero_pfn(machine, pfn_at(child, a)));
	mmput(child);
	mmput(mm);
}

/*
 * Two neighbouring VMAs that differ only in protection share one anon_vma
 * when the second faults (find_mergeable_anon_vma()), so making their
 * protections equal merges them, as in Linux.
 */
Test(differential, neighbours_share_anon_vma_and_merge, .init = machine_setup)
{
	struct mm_struct *mm = new_mm();
	unsigned long a = map_anon(mm, 0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, 0);

	cr_assert_eq(mm_mprotect(mm, a, 4 * PAGE_SIZE, PROT_WRITE), 0);
	cr_assert_eq(nr_vmas(mm), 2);
	fill_pattern(mm, a, 8 * PAGE_SIZE, 3); /* faults in both VMAs */
	cr_assert_eq(mm_mprotect(mm, a + 4 * PAGE_SIZE, 4 * PAGE_SIZE, PROT_WRITE), 0);
	cr_assert_eq(nr_vmas(mm), 1, "one anon_vma: the VMAs merged");
	cr_assert_eq(mm_mprotect(mm, a, 8 * PAGE_SIZE, PROT_READ), 0);
	check_pattern(mm, a, 8 * PAGE_SIZE, 3);
	mmput(mm);
}
