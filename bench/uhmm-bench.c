/* SPDX-License-Identifier: MIT */
/*
 * bench/uhmm-bench.c - the main uhmm benchmark (`make bench`).
 *
 * Measures anonymous page-fault throughput on a uhmm machine and puts host
 * memset() of the same bytes beside it:
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
 * Results are rows {name, bytes, faults, seconds[]} printed by one printer,
 * and comparisons {row, baseline} printed as ratios, so later benchmarks
 * (fork, migration) add rows without touching the printer.
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

#include <uhmm/uhmm.h>

#define MiB (1UL << 20)
#define GiB (1UL << 30)
#define MAX_REPS 1000
#define MAX_ROWS 32
#define MAX_CMPS 32

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

	printf("\n%-36s %9s %8s %10s %10s %8s %8s %12s\n", "case", "bytes", "faults", "best ms",
	       "median ms", "GiB/s", "GiB/s", "faults/s");
	printf("%-36s %9s %8s %10s %10s %8s %8s %12s\n", "", "", "", "", "", "(best)", "(median)",
	       "(best)");
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
		printf("%-36s %9s %8s %10.3f %10.3f %8.2f %8.2f %12s\n", r->name, bytes, faults,
		       best * 1e3, med * 1e3, (double)r->bytes / best / GiB,
		       (double)r->bytes / med / GiB, fps);
	}

	if (!nr_cmps)
		return;
	printf("\nratios (time of the case / time of the baseline; > 1 means uhmm is slower):\n");
	for (int i = 0; i < nr_cmps; i++) {
		const struct bench_row *r = &rows[cmps[i].row], *b = &rows[cmps[i].base];

		if (!r->nr || !b->nr)
			continue;
		printf("  %-30s / %-34s %7.2fx best  %7.2fx median\n", r->name, b->name,
		       row_best(r) / row_best(b), row_median(r) / row_median(b));
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

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static void usage(FILE *out, const char *argv0)
{
	fprintf(out,
		"usage: %s [--size MiB] [--reps N] [--help]\n"
		"\n"
		"Page-fault throughput of uhmm against host memset() of the same bytes.\n"
		"  --size MiB   working set per case, a multiple of 2 (default 256)\n"
		"  --reps N     timed repetitions per case, after one warm-up (default 7)\n"
		"  --help       this text\n"
		"\n"
		"The machine gets max(1 GiB, size + 64 MiB) of RAM, THP in madvise mode.\n"
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
	unsigned long size_mib = 256, reps = 7;
	struct uhmm_machine_config config;
	struct uhmm_machine *machine;
	char cpu[128], host_thp[128];
	int a, a_first, a_warm, b, b_first, b_warm, opt;
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
	config.ram_size = size + 64 * MiB > GiB ? ALIGN(size + 64 * MiB, HPAGE_PMD_SIZE) : GiB;
	config.thp_enabled = THP_MADVISE;
	machine = uhmm_machine_create(&config);
	if (IS_ERR_OR_NULL(machine)) {
		fprintf(stderr, "uhmm-bench: uhmm_machine_create(%lu MiB) failed: %ld\n",
			config.ram_size / MiB, PTR_ERR(machine));
		return 2;
	}

	cpu_model(cpu, sizeof(cpu));
	read_line("/sys/kernel/mm/transparent_hugepage/enabled", host_thp, sizeof(host_thp));
	printf("uhmm-bench: anonymous page-fault throughput\n");
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
	       "  timed uhmm reps measure uhmm's own fault path (allocate, zero, map)\n",
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
	if (a < 0 || b < 0 || a_first < 0 || a_warm < 0 || b_first < 0 || b_warm < 0) {
		uhmm_machine_destroy(machine);
		return 2;
	}
	cmp_add(a, a_first);
	cmp_add(a, a_warm);
	cmp_add(b, b_first);
	cmp_add(b, b_warm);
	cmp_add(a, b);

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
