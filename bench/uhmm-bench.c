/* SPDX-License-Identifier: MIT */
/*
 * bench/uhmm-bench.c - the main uhmm benchmark (`make bench`).
 *
 * Measures anonymous page-fault and fork throughput on a uhmm machine and
 * puts host memset()/memcpy() of the same bytes beside them:
 *
 *   (a) 4 KiB faults: mm_mmap() an anonymous RW region (no MADV_HUGEPAGE) and
 *       touch every 4 KiB page with a 1-byte cpu_write(); each fault
 *       allocates and zeroes one 4 KiB page.
 *   (b) 2 MiB faults: the same with MADV_HUGEPAGE; each fault allocates and
 *       zeroes one 2 MiB THP, the other 511 touches per THP hit the mapping.
 *
 * Baselines on the same number of bytes, in the same run:
 *   - memset() of a freshly mmap'ed host buffer (first touch: the host kernel
 *     faults and zeroes its pages; MADV_NOHUGEPAGE beside (a), MADV_HUGEPAGE
 *     beside (b), so the host does the same kind of fault);
 *   - memset() of an already-touched host buffer (pure store bandwidth).
 *
 * Every case runs one untimed warm-up repetition (it also makes the host
 * back the machine's RAM arena, which uhmm reserves with MAP_NORESERVE),
 * then --reps timed repetitions; the table shows best and median.  Each
 * repetition maps a fresh region and unmaps it afterwards; the munmap()
 * itself is reported as its own row.
 *
 * Fork of the same number of bytes (issue 3), with memcpy() beside it:
 *
 *   (c) fork, 4 KiB-mapped: a fresh mm with the region fully populated by
 *       4 KiB pages (every page tagged: its first and last 8 bytes hold
 *       values derived from its index), then mm_fork(); the child's entries
 *       are copied and both sides write-protected, no page is copied.
 *   (d) fork, THP-mapped: the same region with MADV_HUGEPAGE, checked to be
 *       mapped by 2 MiB THPs only (smaps anon_huge_pages == size) before
 *       every fork; a PMD stays a PMD in the child.
 *
 * Each rep times mm_fork() alone, then the child's mmput() on its own (the
 * child never wrote: it drops its references, no page is freed), and, on a
 * second freshly populated parent, mm_fork() plus one 8-byte cpu_write() by
 * the child to every 4 KiB page (full copy-on-write: every page is copied;
 * a THP's PMD is split in the child first, as in Linux).  The first timed rep
 * also checks, untimed, that the child reads the parent's tags on every page,
 * that both map the same PFNs, and that after the child's writes the child
 * has its own pages with its new data while the parent still reads its own.
 * Baseline: memcpy() of the same bytes between two host buffers that are
 * already touched (MADV_NOHUGEPAGE beside (c), MADV_HUGEPAGE beside (d)).
 *
 * Migration of 4 KiB pages through the dmirror driver (issue 4), with
 * memcpy() beside it:
 *
 *   (e) for 512 KiB, 1, 2, 4, 8, 16 and 256 MiB: an anonymous RW region
 *       with MADV_NOHUGEPAGE, every page written (untimed), a mirror of
 *       /dev/hmm_dmirror0 (device-private memory) open on it; each rep
 *       times HMM_DMIRROR_MIGRATE_TO_DEV of the whole region (migrate_vma
 *       in 512-page chunks, then, as test_hmm does, a read-back of every
 *       page through the device page table into the caller's buffer) and
 *       then HMM_DMIRROR_MIGRATE_TO_SYS (migrate_vma back, copying into
 *       newly allocated RAM pages).  The first timed rep also checks,
 *       untimed, the bytes read back, that the pages became device-private
 *       entries, and that the CPU reads the original bytes afterwards.
 *       Baseline: memcpy() of the same bytes between two already-touched
 *       host buffers (MADV_NOHUGEPAGE).  Small sizes get more reps (the
 *       same total bytes as --reps reps of 16 MiB, at most 200).
 *
 * Results are rows {name, bytes, faults, seconds[]} printed by one printer,
 * and comparisons {row, baseline} printed as ratios, so later benchmarks
 * (migration, ...) add rows without touching the printer.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <uhmm/dmirror.h>
#include <uhmm/uhmm.h>

#define MiB (1UL << 20)
#define GiB (1UL << 30)
#define MAX_REPS 1000
#define MAX_ROWS 64
#define MAX_CMPS 64

/* ------------------------------------------------------------------ */
/* Result rows and their printer                                       */
/* ------------------------------------------------------------------ */

/**
 * struct bench_row - one measured operation.
 * @name: what was measured.
 * @group: the section it is printed under.
 * @bytes: bytes the operation covers (for GiB/s).
 * @faults: faults one repetition takes (0: not a fault benchmark).
 * @nr: repetitions recorded in @sec.
 * @sec: seconds of each timed repetition.
 */
struct bench_row {
	const char *name;
	const char *group;
	unsigned long bytes;
	unsigned long faults;
	int nr;
	double *sec;
};

/** struct bench_cmp - "@row takes X times as long as @base". */
struct bench_cmp {
	int row;
	int base;
};

static struct bench_row rows[MAX_ROWS];
static int nr_rows;
static struct bench_cmp cmps[MAX_CMPS];
static int nr_cmps;

static int row_add(const char *group, const char *name, unsigned long bytes, unsigned long faults,
		   int reps)
{
	struct bench_row *r;

	if (nr_rows == MAX_ROWS) {
		fprintf(stderr, "uhmm-bench: too many rows\n");
		exit(2);
	}
	r = &rows[nr_rows];
	r->group = group;
	r->name = name;
	r->bytes = bytes;
	r->faults = faults;
	r->nr = 0;
	r->sec = calloc((size_t)reps, sizeof(double));
	if (!r->sec) {
		perror("calloc");
		exit(2);
	}
	return nr_rows++;
}

static void row_record(int row, double seconds)
{
	rows[row].sec[rows[row].nr++] = seconds;
}

static void cmp_add(int row, int base)
{
	if (nr_cmps < MAX_CMPS)
		cmps[nr_cmps++] = (struct bench_cmp){row, base};
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double row_best(const struct bench_row *r)
{
	double best = r->sec[0];

	for (int i = 1; i < r->nr; i++)
		if (r->sec[i] < best)
			best = r->sec[i];
	return best;
}

static double row_avg(const struct bench_row *r)
{
	double sum = 0;

	for (int i = 0; i < r->nr; i++)
		sum += r->sec[i];
	return sum / r->nr;
}

static double row_median(const struct bench_row *r)
{
	double *s = malloc((size_t)r->nr * sizeof(double));
	double m;

	if (!s)
		return r->sec[0];
	memcpy(s, r->sec, (size_t)r->nr * sizeof(double));
	qsort(s, (size_t)r->nr, sizeof(double), cmp_double);
	m = r->nr % 2 ? s[r->nr / 2] : (s[r->nr / 2 - 1] + s[r->nr / 2]) / 2;
	free(s);
	return m;
}

static void fmt_bytes(char *buf, size_t n, unsigned long bytes)
{
	if (bytes >= GiB && bytes % GiB == 0)
		snprintf(buf, n, "%lu GiB", bytes / GiB);
	else if (bytes >= MiB && bytes % MiB == 0)
		snprintf(buf, n, "%lu MiB", bytes / MiB);
	else
		snprintf(buf, n, "%lu KiB", bytes >> 10);
}

static void print_table(void)
{
	const char *group = NULL;

	printf("\n%-36s %9s %8s %10s %10s %10s %8s %8s %12s\n", "case", "bytes", "faults",
	       "best ms", "median ms", "avg ms", "GiB/s", "GiB/s", "faults/s");
	printf("%-36s %9s %8s %10s %10s %10s %8s %8s %12s\n", "", "", "", "", "", "", "(best)",
	       "(median)", "(best)");
	for (int i = 0; i < nr_rows; i++) {
		const struct bench_row *r = &rows[i];
		double best, med;
		char bytes[32], faults[32], fps[32];

		if (!r->nr)
			continue;
		if (!group || strcmp(group, r->group)) {
			group = r->group;
			printf("-- %s\n", group);
		}
		best = row_best(r);
		med = row_median(r);
		fmt_bytes(bytes, sizeof(bytes), r->bytes);
		if (r->faults) {
			snprintf(faults, sizeof(faults), "%lu", r->faults);
			snprintf(fps, sizeof(fps), "%.0f", (double)r->faults / best);
		} else {
			snprintf(faults, sizeof(faults), "-");
			snprintf(fps, sizeof(fps), "-");
		}
		printf("%-36s %9s %8s %10.3f %10.3f %10.3f %8.2f %8.2f %12s\n", r->name, bytes, faults,
		       best * 1e3, med * 1e3, row_avg(r) * 1e3, (double)r->bytes / best / GiB,
		       (double)r->bytes / med / GiB, fps);
	}

	if (!nr_cmps)
		return;
	printf("\nratios (time of the case / time of the baseline; > 1 means uhmm is slower):\n");
	for (int i = 0; i < nr_cmps; i++) {
		const struct bench_row *r = &rows[cmps[i].row], *b = &rows[cmps[i].base];

		if (!r->nr || !b->nr)
			continue;
		printf("  %-30s / %-34s %7.2fx best  %7.2fx median  %7.2fx avg\n", r->name, b->name,
		       row_best(r) / row_best(b), row_median(r) / row_median(b),
		       row_avg(r) / row_avg(b));
	}
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keep the compiler from dropping stores into a buffer it never reads. */
static void clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static void read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "r");

	snprintf(buf, n, "unknown");
	if (!f)
		return;
	if (fgets(buf, (int)n, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

static void cpu_model(char *buf, size_t n)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(buf, n, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && colon) {
			colon++;
			while (*colon == ' ' || *colon == '\t')
				colon++;
			colon[strcspn(colon, "\n")] = 0;
			snprintf(buf, n, "%s", colon);
			break;
		}
	}
	fclose(f);
}

static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "uhmm-bench: FAILED: " __VA_ARGS__);                       \
			fputc('\n', stderr);                                                       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* ------------------------------------------------------------------ */
/* The uhmm fault benchmark                                            */
/* ------------------------------------------------------------------ */

struct fault_case {
	const char *group;
	const char *name;
	const char *unmap_name;
	bool thp;
	unsigned long fault_size; /* bytes one fault populates */
};

/* Touch one byte in every 4 KiB page of [addr, addr + size). */
static int touch_pages(struct mm_struct *mm, unsigned long addr, unsigned long size)
{
	static const uint8_t one = 1;

	for (unsigned long off = 0; off < size; off += PAGE_SIZE) {
		int ret = cpu_write(mm, addr + off, &one, 1);

		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Read back a few bytes: the first byte of a touched page is 1, every other
 * byte (the rest of the page, zeroed by the fault) is 0.
 */
static void verify_contents(struct mm_struct *mm, unsigned long addr, unsigned long size,
			    const char *name)
{
	unsigned long pages = size / PAGE_SIZE;
	unsigned long sample[] = {0, 1, pages / 3, pages / 2, pages - 2, pages - 1};

	for (size_t i = 0; i < sizeof(sample) / sizeof(sample[0]); i++) {
		unsigned long page = sample[i] < pages ? sample[i] : pages - 1;
		unsigned long base = addr + page * PAGE_SIZE;
		uint8_t b[3] = {0xa5, 0xa5, 0xa5};
		int ret;

		ret = cpu_read(mm, base, &b[0], 1);
		ret = ret ? ret : cpu_read(mm, base + 1, &b[1], 1);
		ret = ret ? ret : cpu_read(mm, base + PAGE_SIZE - 1, &b[2], 1);
		CHECK(ret == 0, "%s: cpu_read at %#lx returned %d", name, base, ret);
		CHECK(b[0] == 1 && b[1] == 0 && b[2] == 0,
		      "%s: page %lu reads %u,%u,%u; want 1,0,0", name, page, b[0], b[1], b[2]);
	}
}

/*
 * Check how the region is mapped: smaps_rollup totals, and pagemap +
 * kpageflags on the first page.  Returns true when every byte is mapped by
 * THPs (anon_huge_pages == size).
 */
static bool verify_mapping(struct mm_struct *mm, unsigned long addr, unsigned long size,
			   const struct fault_case *c)
{
	struct mm_smaps sm;
	uint64_t pm[2] = {0, 0};
	uint64_t kpf;
	unsigned long pfn;
	int ret;

	memset(&sm, 0, sizeof(sm));
	ret = mm_smaps_rollup(mm, &sm);
	CHECK(ret == 0, "%s: mm_smaps_rollup returned %d", c->name, ret);
	CHECK(sm.rss == size && sm.anonymous == size, "%s: smaps rss %lu anonymous %lu, want %lu",
	      c->name, sm.rss, sm.anonymous, size);
	CHECK(mm_get_rss(mm, MM_ANONPAGES) == (long)(size / PAGE_SIZE),
	      "%s: MM_ANONPAGES %ld, want %lu", c->name, mm_get_rss(mm, MM_ANONPAGES),
	      size / PAGE_SIZE);

	ret = mm_pagemap_read(mm, addr, 2, pm);
	CHECK(ret == 0, "%s: mm_pagemap_read returned %d", c->name, ret);
	CHECK((pm[0] & PM_PRESENT) && (pm[1] & PM_PRESENT), "%s: pagemap %#llx %#llx not present",
	      c->name, (unsigned long long)pm[0], (unsigned long long)pm[1]);
	pfn = (unsigned long)(pm[0] & PM_PFRAME_MASK);
	kpf = uhmm_kpageflags(pfn);

	if (c->thp) {
		CHECK(sm.anon_huge_pages == size, "%s: anon_huge_pages %lu, want %lu", c->name,
		      sm.anon_huge_pages, size);
		CHECK(kpf & (1ULL << KPF_THP), "%s: first page (pfn %#lx) lacks KPF_THP", c->name,
		      pfn);
		CHECK((pm[1] & PM_PFRAME_MASK) == pfn + 1, "%s: PFNs of a THP not consecutive",
		      c->name);
	} else {
		CHECK(sm.anon_huge_pages == 0, "%s: anon_huge_pages %lu, want 0", c->name,
		      sm.anon_huge_pages);
		CHECK(!(kpf & (1ULL << KPF_THP)), "%s: first page (pfn %#lx) is a THP", c->name,
		      pfn);
	}
	printf("  %-30s smaps: rss %lu MiB, anon_huge_pages %lu MiB -> %s\n", c->name, sm.rss / MiB,
	       sm.anon_huge_pages / MiB,
	       sm.anon_huge_pages == size ? "every byte mapped by 2 MiB THPs"
	       : sm.anon_huge_pages == 0  ? "every byte mapped by 4 KiB pages"
					  : "MIXED mapping");
	return sm.anon_huge_pages == size;
}

static int run_fault_case(struct uhmm_machine *machine, const struct fault_case *c,
			  unsigned long size, int reps)
{
	unsigned long faults = size / c->fault_size;
	int row = row_add(c->group, c->name, size, faults, reps);
	int unmap_row = row_add(c->group, c->unmap_name, size, 0, reps);

	for (int rep = -1; rep < reps; rep++) {
		struct mm_struct *mm = mm_alloc(machine);
		unsigned long addr;
		double t0, t1, t2;
		long ret;

		if (IS_ERR_OR_NULL(mm)) {
			fprintf(stderr, "uhmm-bench: mm_alloc failed: %ld\n", PTR_ERR(mm));
			return -1;
		}
		ret = mm_mmap(mm, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			      NULL, 0);
		if (ret < 0) {
			fprintf(stderr, "uhmm-bench: mm_mmap(%lu) failed: %ld\n", size, ret);
			mmput(mm);
			return -1;
		}
		addr = (unsigned long)ret;
		if (c->thp) {
			ret = mm_madvise(mm, addr, size, MADV_HUGEPAGE);
			if (ret) {
				fprintf(stderr, "uhmm-bench: MADV_HUGEPAGE failed: %ld\n", ret);
				mmput(mm);
				return -1;
			}
		}

		t0 = now();
		ret = touch_pages(mm, addr, size);
		t1 = now();
		if (ret) {
			fprintf(stderr, "uhmm-bench: %s: cpu_write failed: %ld\n", c->name, ret);
			mmput(mm);
			return -1;
		}
		if (rep == 0) {
			verify_contents(mm, addr, size, c->name);
			verify_mapping(mm, addr, size, c);
		}
		/* The checks above are not timed; the munmap is, on its own. */
		t2 = now();
		ret = mm_munmap(mm, addr, size);
		t2 = now() - t2;
		CHECK(ret == 0, "%s: mm_munmap returned %ld", c->name, ret);
		mmput(mm);
		if (rep >= 0) {
			row_record(row, t1 - t0);
			row_record(unmap_row, t2);
		}
	}
	return row;
}

/* ------------------------------------------------------------------ */
/* Host baselines                                                      */
/* ------------------------------------------------------------------ */

/* AnonHugePages of the whole process, in bytes (0 if unknown). */
static unsigned long host_anon_huge_bytes(void)
{
	char line[256];
	unsigned long kib = 0;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %lu kB", &kib) == 1)
			break;
	fclose(f);
	return kib << 10;
}

/*
 * memset of a freshly mmap'ed host buffer: the host takes the faults.  The
 * warm-up repetition looks at AnonHugePages to learn whether the host really
 * used THPs, so the fault count is the host's.
 */
static int run_host_first_touch(const char *group, const char *name, unsigned long size, bool thp,
				int reps)
{
	int row = row_add(group, name, size, size / PAGE_SIZE, reps);
	unsigned long map_len = size + (thp ? HPAGE_PMD_SIZE : 0);

	for (int rep = -1; rep < reps; rep++) {
		char *raw = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);
		char *buf;
		double t0, t1;

		if (raw == MAP_FAILED) {
			perror("mmap");
			return -1;
		}
		buf = thp ? (char *)ALIGN((uintptr_t)raw, HPAGE_PMD_SIZE) : raw;
		/* Advice only: a host without THP support just ignores it. */
		(void)madvise(buf, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		unsigned long huge_before = rep < 0 ? host_anon_huge_bytes() : 0;
		t0 = now();
		memset(buf, rep + 2, size);
		clobber(buf);
		t1 = now();
		if (rep < 0) {
			unsigned long huge = host_anon_huge_bytes() - huge_before;

			if (huge > size)
				huge = size;
			rows[row].faults = huge / HPAGE_PMD_SIZE + (size - huge) / PAGE_SIZE;
			printf("  %-30s host AnonHugePages +%lu MiB -> %s\n", name, huge / MiB,
			       huge == size ? "host used 2 MiB THPs"
			       : huge == 0  ? "host used 4 KiB pages"
					    : "host mixed THPs and 4 KiB pages");
		}
		munmap(raw, map_len);
		if (rep >= 0)
			row_record(row, t1 - t0);
	}
	return row;
}

/* memset of a buffer whose pages the host already backs: store bandwidth. */
static int run_host_warm(const char *group, const char *name, unsigned long size, int reps)
{
	int row = row_add(group, name, size, 0, reps);
	char *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED) {
		perror("mmap");
		return -1;
	}
	for (int rep = -1; rep < reps; rep++) {
		double t0 = now(), t1;

		memset(buf, rep + 2, size);
		clobber(buf);
		t1 = now();
		if (rep >= 0)
			row_record(row, t1 - t0);
	}
	munmap(buf, size);
	return row;
}

/*
 * memcpy between two host buffers that are already touched (both backed by
 * THPs with @thp if the host has them, else by 4 KiB pages).
 */
static int run_host_memcpy(const char *group, const char *name, unsigned long size, bool thp,
			   int reps)
{
	int row = row_add(group, name, size, 0, reps);
	unsigned long map_len = size + HPAGE_PMD_SIZE;
	unsigned long huge_before = host_anon_huge_bytes(), huge;
	char *raw[2], *buf[2];

	for (int i = 0; i < 2; i++) {
		raw[i] = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			      -1, 0);
		if (raw[i] == MAP_FAILED) {
			perror("mmap");
			if (i)
				munmap(raw[0], map_len);
			return -1;
		}
		buf[i] = (char *)ALIGN((uintptr_t)raw[i], HPAGE_PMD_SIZE);
		(void)madvise(buf[i], size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		memset(buf[i], i + 1, size);
		clobber(buf[i]);
	}
	huge = host_anon_huge_bytes() - huge_before;
	printf("  %-30s host AnonHugePages +%lu MiB for the two buffers\n", name, huge / MiB);
	for (int rep = -1; rep < reps; rep++) {
		double t0, t1;

		buf[0][0] = (char)rep; /* the source changes between reps */
		t0 = now();
		memcpy(buf[1], buf[0], size);
		clobber(buf[1]);
		t1 = now();
		if (rep >= 0)
			row_record(row, t1 - t0);
	}
	CHECK(buf[1][0] == (char)(reps - 1) && buf[1][size - 1] == 1, "%s: the copy differs", name);
	munmap(raw[0], map_len);
	munmap(raw[1], map_len);
	return row;
}

/* ------------------------------------------------------------------ */
/* The uhmm fork benchmark                                             */
/* ------------------------------------------------------------------ */

struct fork_case {
	const char *group;
	const char *label;	/* prefix of the check lines */
	const char *fork_name;	/* mm_fork() alone */
	const char *mmput_name; /* the child's mmput(), no writes */
	const char *cow_name;	/* mm_fork() + the child writes every page */
	bool thp;
};

#define TAG_END_XOR 0x5a5a5a5a5a5a5a5aULL

/* The parent's tag of page @page: its first 8 bytes; its last 8 are ^ TAG_END_XOR. */
static uint64_t page_tag(unsigned long page)
{
	return 0x75686d6d00000000ULL | page; /* "uhmm" */
}

/*
 * A fresh mm with an anonymous RW region of @size (MADV_HUGEPAGE if @thp),
 * every 4 KiB page populated and tagged.  Return: the mm, or NULL (printed).
 */
static struct mm_struct *make_parent(struct uhmm_machine *machine, unsigned long size, bool thp,
				     unsigned long *addrp)
{
	struct mm_struct *mm = mm_alloc(machine);
	unsigned long addr;
	long ret;

	if (IS_ERR_OR_NULL(mm)) {
		fprintf(stderr, "uhmm-bench: mm_alloc failed: %ld\n", PTR_ERR(mm));
		return NULL;
	}
	ret = mm_mmap(mm, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL, 0);
	if (ret < 0) {
		fprintf(stderr, "uhmm-bench: mm_mmap(%lu) failed: %ld\n", size, ret);
		mmput(mm);
		return NULL;
	}
	addr = (unsigned long)ret;
	ret = thp ? mm_madvise(mm, addr, size, MADV_HUGEPAGE) : 0;
	if (ret) {
		fprintf(stderr, "uhmm-bench: MADV_HUGEPAGE failed: %ld\n", ret);
		mmput(mm);
		return NULL;
	}
	for (unsigned long page = 0; page < size / PAGE_SIZE && !ret; page++) {
		uint64_t head = page_tag(page), tail = head ^ TAG_END_XOR;
		unsigned long base = addr + page * PAGE_SIZE;

		ret = cpu_write(mm, base, &head, sizeof(head));
		ret = ret ? ret
			  : cpu_write(mm, base + PAGE_SIZE - sizeof(tail), &tail, sizeof(tail));
	}
	if (ret) {
		fprintf(stderr, "uhmm-bench: populating the parent failed: %ld\n", ret);
		mmput(mm);
		return NULL;
	}
	*addrp = addr;
	return mm;
}

/*
 * Read the first and last 8 bytes of every page and count the pages that do
 * not hold the parent's tags (@cow_written: the first 8 bytes hold the
 * complement, what the child wrote).
 */
static unsigned long count_bad_pages(struct mm_struct *mm, unsigned long addr, unsigned long size,
				     bool cow_written)
{
	unsigned long bad = 0;

	for (unsigned long page = 0; page < size / PAGE_SIZE; page++) {
		unsigned long base = addr + page * PAGE_SIZE;
		uint64_t head = 0, tail = 0, want = page_tag(page);
		int ret;

		ret = cpu_read(mm, base, &head, sizeof(head));
		ret = ret ? ret
			  : cpu_read(mm, base + PAGE_SIZE - sizeof(tail), &tail, sizeof(tail));
		if (ret || head != (cow_written ? ~want : want) || tail != (want ^ TAG_END_XOR))
			bad++;
	}
	return bad;
}

/* smaps before a fork: every byte mapped, by THPs only (@thp) or by none. */
static bool parent_as_expected(struct mm_struct *mm, unsigned long size, bool thp)
{
	struct mm_smaps sm;

	memset(&sm, 0, sizeof(sm));
	return mm_smaps_rollup(mm, &sm) == 0 && sm.rss == size && sm.anonymous == size &&
	       sm.anon_huge_pages == (thp ? size : 0);
}

/*
 * Compare the pagemap entries of parent and child at a few pages: after the
 * fork both map the same PFN and neither maps it exclusively; after the
 * child's COW writes (@cow) the PFNs differ and each side's is exclusive.
 */
static void check_sharing(struct mm_struct *parent, struct mm_struct *child, unsigned long addr,
			  unsigned long size, bool cow, const char *name)
{
	unsigned long pages = size / PAGE_SIZE;
	unsigned long sample[] = {0, 1, pages / 2, pages - 1};

	for (size_t i = 0; i < sizeof(sample) / sizeof(sample[0]); i++) {
		unsigned long va = addr + sample[i] * PAGE_SIZE;
		uint64_t p = 0, c = 0;
		int ret = mm_pagemap_read(parent, va, 1, &p);

		ret = ret ? ret : mm_pagemap_read(child, va, 1, &c);
		CHECK(ret == 0 && (p & PM_PRESENT) && (c & PM_PRESENT),
		      "%s: page %lu: pagemap %d, parent %#llx, child %#llx", name, sample[i], ret,
		      (unsigned long long)p, (unsigned long long)c);
		if (!cow)
			CHECK((p & PM_PFRAME_MASK) == (c & PM_PFRAME_MASK) &&
				      !(p & PM_MMAP_EXCLUSIVE) && !(c & PM_MMAP_EXCLUSIVE),
			      "%s: page %lu after fork: parent %#llx, child %#llx; want the same "
			      "PFN, shared",
			      name, sample[i], (unsigned long long)p, (unsigned long long)c);
		else
			CHECK((p & PM_PFRAME_MASK) != (c & PM_PFRAME_MASK) &&
				      (p & PM_MMAP_EXCLUSIVE) && (c & PM_MMAP_EXCLUSIVE),
			      "%s: page %lu after COW: parent %#llx, child %#llx; want distinct "
			      "PFNs, each exclusive",
			      name, sample[i], (unsigned long long)p, (unsigned long long)c);
	}
}

/* Checks of the first timed rep, right after mm_fork() (untimed). */
static void check_after_fork(const struct fork_case *c, struct mm_struct *parent,
			     struct mm_struct *child, unsigned long addr, unsigned long size)
{
	char name[64];
	unsigned long bad = count_bad_pages(child, addr, size, false);

	snprintf(name, sizeof(name), "%s: child after fork", c->label);
	CHECK(bad == 0, "%s: %lu of %lu pages do not read the parent's data", name, bad,
	      size / PAGE_SIZE);
	verify_mapping(child, addr, size, &(struct fault_case){.name = name, .thp = c->thp});
	check_sharing(parent, child, addr, size, false, name);
	printf("  %-30s reads the parent's data on %lu of %lu pages, same PFNs\n", name,
	       size / PAGE_SIZE - bad, size / PAGE_SIZE);
}

/* Checks of the first timed rep, after the child's COW writes (untimed). */
static void check_after_cow(const struct fork_case *c, struct mm_struct *parent,
			    struct mm_struct *child, unsigned long addr, unsigned long size)
{
	char cname[64], pname[64];
	unsigned long cbad = count_bad_pages(child, addr, size, true);
	unsigned long pbad = count_bad_pages(parent, addr, size, false);

	snprintf(cname, sizeof(cname), "%s: child after COW", c->label);
	snprintf(pname, sizeof(pname), "%s: parent after COW", c->label);
	CHECK(cbad == 0, "%s: %lu of %lu pages do not hold the child's writes", cname, cbad,
	      size / PAGE_SIZE);
	CHECK(pbad == 0, "%s: %lu of %lu pages changed under the child's writes", pname, pbad,
	      size / PAGE_SIZE);
	/* Every page of the child is now its own 4 KiB copy; the parent is as it was. */
	verify_mapping(child, addr, size, &(struct fault_case){.name = cname, .thp = false});
	verify_mapping(parent, addr, size, &(struct fault_case){.name = pname, .thp = c->thp});
	check_sharing(parent, child, addr, size, true, cname);
	printf("  %-30s child has its writes on %lu of %lu pages, parent unchanged on %lu\n", cname,
	       size / PAGE_SIZE - cbad, size / PAGE_SIZE, size / PAGE_SIZE - pbad);
}

/* The child stores the complement of the parent's tag into every page. */
static int cow_write_pages(struct mm_struct *mm, unsigned long addr, unsigned long size)
{
	for (unsigned long page = 0; page < size / PAGE_SIZE; page++) {
		uint64_t v = ~page_tag(page);
		int ret = cpu_write(mm, addr + page * PAGE_SIZE, &v, sizeof(v));

		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Returns the mm_fork() row; *@mmput_row and *@cow_row get the other two.
 * Each rep forks two freshly populated parents: one for mm_fork() + the
 * child's mmput(), one for mm_fork() + the child's COW writes.
 */
static int run_fork_case(struct uhmm_machine *machine, const struct fork_case *c,
			 unsigned long size, int reps, int *mmput_row, int *cow_row)
{
	int row = row_add(c->group, c->fork_name, size, 0, reps);

	*mmput_row = row_add(c->group, c->mmput_name, size, 0, reps);
	*cow_row = row_add(c->group, c->cow_name, size, size / PAGE_SIZE, reps);
	for (int rep = -1; rep < reps; rep++) {
		struct mm_struct *parent, *child;
		unsigned long addr;
		double t0, t1, t2, t3;
		char name[64];
		int ret;

		/* mm_fork() alone, then the child's mmput() alone. */
		parent = make_parent(machine, size, c->thp, &addr);
		if (!parent)
			return -1;
		CHECK(parent_as_expected(parent, size, c->thp),
		      "%s: rep %d: parent not fully mapped by %s before the fork", c->label, rep,
		      c->thp ? "THPs" : "4 KiB pages");
		if (rep == 0) {
			snprintf(name, sizeof(name), "%s: parent before fork", c->label);
			verify_mapping(parent, addr, size,
				       &(struct fault_case){.name = name, .thp = c->thp});
		}
		t0 = now();
		child = mm_fork(parent);
		t1 = now();
		if (IS_ERR_OR_NULL(child)) {
			fprintf(stderr, "uhmm-bench: %s: mm_fork failed: %ld\n", c->label,
				PTR_ERR(child));
			mmput(parent);
			return -1;
		}
		if (rep == 0)
			check_after_fork(c, parent, child, addr, size);
		t2 = now();
		mmput(child);
		t3 = now();
		mmput(parent);
		if (rep >= 0) {
			row_record(row, t1 - t0);
			row_record(*mmput_row, t3 - t2);
		}

		/* mm_fork() + the child writes every page. */
		parent = make_parent(machine, size, c->thp, &addr);
		if (!parent)
			return -1;
		CHECK(parent_as_expected(parent, size, c->thp),
		      "%s: rep %d: parent not fully mapped by %s before the fork", c->label, rep,
		      c->thp ? "THPs" : "4 KiB pages");
		t0 = now();
		child = mm_fork(parent);
		ret = IS_ERR_OR_NULL(child) ? -1 : cow_write_pages(child, addr, size);
		t1 = now();
		if (IS_ERR_OR_NULL(child) || ret) {
			fprintf(stderr,
				"uhmm-bench: %s: mm_fork or the child's writes failed: %ld\n",
				c->label, IS_ERR_OR_NULL(child) ? PTR_ERR(child) : (long)ret);
			if (!IS_ERR_OR_NULL(child))
				mmput(child);
			mmput(parent);
			return -1;
		}
		if (rep == 0)
			check_after_cow(c, parent, child, addr, size);
		mmput(child);
		mmput(parent);
		if (rep >= 0)
			row_record(*cow_row, t1 - t0);
	}
	return row;
}

/* ------------------------------------------------------------------ */
/* The dmirror migration benchmark                                     */
/* ------------------------------------------------------------------ */

#define MIGRATE_GROUP                                                                           \
	"(e) migration of 4 KiB pages through dmirror0 (device-private), MADV_NOHUGEPAGE"

/* A row name that lives as long as the table. */
static const char *row_name(const char *what, unsigned long size)
{
	char bytes[32], *name;

	fmt_bytes(bytes, sizeof(bytes), size);
	if (asprintf(&name, "%s %s", what, bytes) < 0) {
		perror("asprintf");
		exit(2);
	}
	return name;
}

static int dmirror_migrate(struct dmirror *d, unsigned long req, unsigned long addr,
			   void *buf, unsigned long npages, unsigned long *cpages)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = addr,
		.ptr = (uint64_t)(uintptr_t)buf,
		.npages = npages,
	};
	int ret = dmirror_ioctl(d, req, &cmd);

	*cpages = cmd.cpages;
	return ret;
}

/* The checks of the first timed rep (untimed): after MIGRATE_TO_DEV, after MIGRATE_TO_SYS. */
static void check_migrated(struct mm_struct *mm, unsigned long addr, unsigned long size,
			   const uint8_t *buf, bool on_device, const char *name)
{
	unsigned long pages = size / PAGE_SIZE;
	unsigned long sample[] = {0, 1, pages / 3, pages / 2, pages - 1};

	for (size_t i = 0; i < sizeof(sample) / sizeof(sample[0]); i++) {
		unsigned long page = sample[i] < pages ? sample[i] : pages - 1;
		uint64_t pm = 0;
		uint8_t b[2] = {0, 0};

		CHECK(mm_pagemap_read(mm, addr + page * PAGE_SIZE, 1, &pm) == 0,
		      "%s: pagemap failed", name);
		if (on_device) {
			CHECK((pm & PM_SWAP) && !(pm & PM_PRESENT),
			      "%s: page %lu is not a device-private entry (pagemap %#llx)", name,
			      page, (unsigned long long)pm);
			CHECK(buf[page * PAGE_SIZE] == (uint8_t)page &&
				      buf[page * PAGE_SIZE + PAGE_SIZE - 1] == (uint8_t)~page,
			      "%s: the device read back the wrong bytes of page %lu", name, page);
		} else {
			CHECK(pm & PM_PRESENT, "%s: page %lu not back in RAM (pagemap %#llx)", name,
			      page, (unsigned long long)pm);
			CHECK(cpu_read(mm, addr + page * PAGE_SIZE, &b[0], 1) == 0 &&
				      cpu_read(mm, addr + page * PAGE_SIZE + PAGE_SIZE - 1, &b[1],
					       1) == 0,
			      "%s: cpu_read failed", name);
			CHECK(b[0] == (uint8_t)page && b[1] == (uint8_t)~page,
			      "%s: page %lu reads %#x..%#x after the round trip", name, page, b[0],
			      b[1]);
		}
	}
}

/*
 * One size: a fresh mm with the region written (each page's first byte is
 * its index, its last the complement), a mirror of dmirror0, one warm-up
 * round trip, then @reps timed MIGRATE_TO_DEV and MIGRATE_TO_SYS.
 */
static int run_migrate_case(struct uhmm_machine *machine, struct dmirror_module *mod,
			    unsigned long size, int reps, int *sys_row)
{
	unsigned long npages = size / PAGE_SIZE;
	int dev_row = row_add(MIGRATE_GROUP, row_name("dmirror MIGRATE_TO_DEV", size), size, 0, reps);
	struct mm_struct *mm;
	struct dmirror *d;
	uint8_t *buf;
	long addr;
	int ret = 0;

	*sys_row = row_add(MIGRATE_GROUP, row_name("dmirror MIGRATE_TO_SYS", size), size, 0, reps);
	mm = mm_alloc(machine);
	buf = malloc(size);
	if (IS_ERR_OR_NULL(mm) || !buf) {
		fprintf(stderr, "uhmm-bench: out of memory for the %lu KiB migration\n", size >> 10);
		return -1;
	}
	addr = mm_mmap(mm, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, NULL, 0);
	if (addr < 0 || mm_madvise(mm, (unsigned long)addr, size, MADV_NOHUGEPAGE)) {
		fprintf(stderr, "uhmm-bench: mm_mmap/madvise(%lu) failed: %ld\n", size, addr);
		ret = -1;
		goto out_mm;
	}
	for (unsigned long i = 0; i < npages; i++) {
		memset(buf + i * PAGE_SIZE, 0, PAGE_SIZE);
		buf[i * PAGE_SIZE] = (uint8_t)i;
		buf[i * PAGE_SIZE + PAGE_SIZE - 1] = (uint8_t)~i;
	}
	if (cpu_write(mm, (unsigned long)addr, buf, size)) {
		fprintf(stderr, "uhmm-bench: cpu_write(%lu) failed\n", size);
		ret = -1;
		goto out_mm;
	}
	d = dmirror_open(mod, 0, mm);
	if (IS_ERR(d)) {
		fprintf(stderr, "uhmm-bench: dmirror_open failed: %ld\n", PTR_ERR(d));
		ret = -1;
		goto out_mm;
	}
	for (int rep = -1; rep < reps; rep++) {
		double t0, t1, t2, t3;
		unsigned long c1, c2;
		int r1, r2;

		memset(buf, 0xa5, size);
		t0 = now();
		r1 = dmirror_migrate(d, HMM_DMIRROR_MIGRATE_TO_DEV, (unsigned long)addr, buf, npages,
				     &c1);
		t1 = now();
		CHECK(r1 == 0 && c1 == npages, "MIGRATE_TO_DEV %lu KiB: %d, cpages %lu of %lu",
		      size >> 10, r1, c1, npages);
		if (rep == 0)
			check_migrated(mm, (unsigned long)addr, size, buf, true, "migrate to device");
		t2 = now();
		r2 = dmirror_migrate(d, HMM_DMIRROR_MIGRATE_TO_SYS, (unsigned long)addr, buf, npages,
				     &c2);
		t3 = now();
		CHECK(r2 == 0 && c2 == npages, "MIGRATE_TO_SYS %lu KiB: %d, cpages %lu of %lu",
		      size >> 10, r2, c2, npages);
		if (rep == 0)
			check_migrated(mm, (unsigned long)addr, size, buf, false, "migrate to system");
		if (rep >= 0) {
			row_record(dev_row, t1 - t0);
			row_record(*sys_row, t3 - t2);
		}
	}
	dmirror_release(d);
out_mm:
	mmput(mm);
	free(buf);
	return ret ? ret : dev_row;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static void usage(FILE *out, const char *argv0)
{
	fprintf(out,
		"usage: %s [--size MiB] [--reps N] [--help]\n"
		"\n"
		"Page-fault, fork and dmirror migration throughput of uhmm against host\n"
		"memset() and memcpy() of the same bytes.\n"
		"  --size MiB   working set per case, a multiple of 2 (default 256)\n"
		"  --reps N     timed repetitions per case, after one warm-up (default 7)\n"
		"  --help       this text\n"
		"\n"
		"The machine gets max(1 GiB, 2 * size + 64 MiB) of RAM (a fork whose child\n"
		"writes every page holds the region twice), THP in madvise mode.\n"
		"Exit status: 0 on success, 1 if a correctness check failed, 2 on bad usage\n"
		"or a setup error.\n",
		argv0);
}

static bool parse_ulong(const char *s, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"size", required_argument, NULL, 's'},
		{"reps", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const struct fault_case case_4k = {
		.group = "(a) 4 KiB faults: anonymous RW, no MADV_HUGEPAGE, 1-byte write per page",
		.name = "uhmm 4K fault + touch",
		.unmap_name = "uhmm munmap (4K-mapped)",
		.thp = false,
		.fault_size = PAGE_SIZE,
	};
	static const struct fault_case case_thp = {
		.group = "(b) 2 MiB faults: anonymous RW, MADV_HUGEPAGE, 1-byte write per 4K page",
		.name = "uhmm 2M THP fault + touch",
		.unmap_name = "uhmm munmap (THP-mapped)",
		.thp = true,
		.fault_size = HPAGE_PMD_SIZE,
	};
	static const struct fork_case fork_4k = {
		.group = "(c) fork, 4 KiB-mapped: populated anonymous RW region, no MADV_HUGEPAGE",
		.label = "fork 4K",
		.fork_name = "uhmm mm_fork (4K-mapped)",
		.mmput_name = "uhmm child mmput (4K)",
		.cow_name = "uhmm fork + full COW (4K)",
		.thp = false,
	};
	static const struct fork_case fork_thp = {
		.group = "(d) fork, THP-mapped: the same region with MADV_HUGEPAGE, all 2 MiB THPs",
		.label = "fork THP",
		.fork_name = "uhmm mm_fork (THP-mapped)",
		.mmput_name = "uhmm child mmput (THP)",
		.cow_name = "uhmm fork + full COW (THP)",
		.thp = true,
	};
	static const unsigned long migrate_sizes[] = {
		512UL << 10, 1 * MiB, 2 * MiB, 4 * MiB, 8 * MiB, 16 * MiB, 256 * MiB,
	};
	struct dmirror_module *mod;
	unsigned long size_mib = 256, reps = 7;
	struct uhmm_machine_config config;
	struct uhmm_machine *machine;
	char cpu[128], host_thp[128];
	int a, a_first, a_warm, b, b_first, b_warm, opt;
	int c, c_put, c_cow, c_copy, d, d_put, d_cow, d_copy;
	double start = now();

	while ((opt = getopt_long(argc, argv, "s:r:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (!parse_ulong(optarg, &size_mib) || !size_mib || size_mib % 2 ||
			    size_mib > (1UL << 20)) {
				fprintf(stderr, "uhmm-bench: --size wants an even number of MiB\n");
				return 2;
			}
			break;
		case 'r':
			if (!parse_ulong(optarg, &reps) || !reps || reps > MAX_REPS) {
				fprintf(stderr, "uhmm-bench: --reps wants 1..%d\n", MAX_REPS);
				return 2;
			}
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "uhmm-bench: unexpected argument '%s'\n", argv[optind]);
		usage(stderr, argv[0]);
		return 2;
	}

	unsigned long size = size_mib * MiB;

	memset(&config, 0, sizeof(config));
	config.ram_size =
		2 * size + 64 * MiB > GiB ? ALIGN(2 * size + 64 * MiB, HPAGE_PMD_SIZE) : GiB;
	config.thp_enabled = THP_MADVISE;
	config.nr_hugepages = UHMM_NO_HUGEPAGES; /* no hugetlb case: keep all RAM in the buddy allocator */
	machine = uhmm_machine_create(&config);
	if (IS_ERR_OR_NULL(machine)) {
		fprintf(stderr, "uhmm-bench: uhmm_machine_create(%lu MiB) failed: %ld\n",
			config.ram_size / MiB, PTR_ERR(machine));
		return 2;
	}

	cpu_model(cpu, sizeof(cpu));
	read_line("/sys/kernel/mm/transparent_hugepage/enabled", host_thp, sizeof(host_thp));
	printf("uhmm-bench: anonymous page-fault, fork and device-migration throughput\n");
	printf("  uhmm machine: %lu MiB RAM (%lu pages), THP madvise, huge zero page on, "
	       "%lu pages free at start\n",
	       config.ram_size / MiB, uhmm_totalram_pages(machine), uhmm_nr_free_pages(machine));
	printf("  host: %s, %ld online CPUs, page size %ld, THP enabled: %s\n", cpu,
	       sysconf(_SC_NPROCESSORS_ONLN), sysconf(_SC_PAGESIZE), host_thp);
	printf("  working set %lu MiB per case (%lu 4 KiB pages, %lu 2 MiB pages); "
	       "%lu timed reps after 1 warm-up;\n"
	       "  each rep: fresh mm + mm_mmap, timed touch loop, timed mm_munmap, mmput;\n"
	       "  times from clock_gettime(CLOCK_MONOTONIC); GiB/s = bytes / time;\n"
	       "  the machine's RAM is host memory: the warm-up rep makes the host back it, so\n"
	       "  timed uhmm reps measure uhmm's own fault path (allocate, zero, map);\n"
	       "  fork reps: a fresh parent with every page populated and tagged (untimed),\n"
	       "  timed mm_fork, timed child mmput; then a second fresh parent, timed\n"
	       "  mm_fork + one 8-byte child write per 4 KiB page (every page copied)\n",
	       size_mib, size / PAGE_SIZE, size / HPAGE_PMD_SIZE, reps);
	fflush(stdout);

	printf("\nchecks:\n");
	a = run_fault_case(machine, &case_4k, size, (int)reps);
	a_first = run_host_first_touch(case_4k.group, "host memset, first touch (4K)", size, false,
				       (int)reps);
	a_warm = run_host_warm(case_4k.group, "host memset, already touched", size, (int)reps);
	b = run_fault_case(machine, &case_thp, size, (int)reps);
	b_first = run_host_first_touch(case_thp.group, "host memset, first touch (THP)", size, true,
				       (int)reps);
	b_warm = run_host_warm(case_thp.group, "host memset, already touched", size, (int)reps);
	c = run_fork_case(machine, &fork_4k, size, (int)reps, &c_put, &c_cow);
	c_copy = run_host_memcpy(fork_4k.group, "host memcpy, already touched (4K)", size, false,
				 (int)reps);
	d = run_fork_case(machine, &fork_thp, size, (int)reps, &d_put, &d_cow);
	d_copy = run_host_memcpy(fork_thp.group, "host memcpy, already touched (THP)", size, true,
				 (int)reps);
	if (a < 0 || b < 0 || a_first < 0 || a_warm < 0 || b_first < 0 || b_warm < 0 || c < 0 ||
	    c_copy < 0 || d < 0 || d_copy < 0) {
		uhmm_machine_destroy(machine);
		return 2;
	}

	cmp_add(a, a_first);
	cmp_add(a, a_warm);
	cmp_add(b, b_first);
	cmp_add(b, b_warm);
	cmp_add(a, b);
	cmp_add(c, c_copy);
	cmp_add(d, d_copy);
	cmp_add(c_cow, c_copy);
	cmp_add(d_cow, d_copy);
	cmp_add(c, d);
	cmp_add(c_cow, d_cow);

	mod = dmirror_module_init(machine);
	if (IS_ERR(mod)) {
		fprintf(stderr, "uhmm-bench: dmirror_module_init failed: %ld\n", PTR_ERR(mod));
		uhmm_machine_destroy(machine);
		return 2;
	}
	for (size_t i = 0; i < sizeof(migrate_sizes) / sizeof(migrate_sizes[0]); i++) {
		unsigned long msize = migrate_sizes[i];
		unsigned long mreps = reps * (16 * MiB) / msize;
		int to_dev, to_sys, copy;

		mreps = mreps < reps ? reps : mreps > 200 ? 200 : mreps;
		to_dev = run_migrate_case(machine, mod, msize, (int)mreps, &to_sys);
		copy = run_host_memcpy(MIGRATE_GROUP, row_name("host memcpy, already touched", msize),
				       msize, false, (int)mreps);
		if (to_dev < 0 || copy < 0) {
			dmirror_module_exit(mod);
			uhmm_machine_destroy(machine);
			return 2;
		}
		cmp_add(to_dev, copy);
		cmp_add(to_sys, copy);
	}
	CHECK(dmirror_audit(mod, stderr) == 0, "the dmirror audit failed");
	CHECK(dmirror_module_exit(mod) == 0, "dmirror_module_exit failed");

	CHECK(uhmm_nr_free_pages(machine) + uhmm_nr_reserved_pages(machine) ==
		      uhmm_totalram_pages(machine),
	      "pages leaked: %lu free + %lu reserved of %lu", uhmm_nr_free_pages(machine),
	      uhmm_nr_reserved_pages(machine), uhmm_totalram_pages(machine));
	CHECK(uhmm_audit(machine, stderr) == 0, "the invariant audit failed");

	print_table();
	printf("\ntotal run time %.1f s; correctness checks: %s\n", now() - start,
	       failures ? "FAILED" : "passed");

	if (uhmm_machine_destroy(machine))
		fprintf(stderr, "uhmm-bench: uhmm_machine_destroy failed\n");
	return failures ? 1 : 0;
}
