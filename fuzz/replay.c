/* SPDX-License-Identifier: MIT */
/*
 * fuzz/replay.c - run fuzz inputs without libFuzzer: every file named on
 * the command line, and every regular file of every directory named there
 * (in name order), goes through LLVMFuzzerTestOneInput() once.  The meson
 * builds run it on fuzz/corpus as the "fuzz_replay" test; a crash input
 * from `make fuzz` replays with `build-plain/fuzz/fuzz_replay FILE`.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data;
	long size;

	if (!f) {
		perror(path);
		return 1;
	}
	if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		perror(path);
		fclose(f);
		return 1;
	}
	data = malloc(size ? (size_t)size : 1);
	if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
		fprintf(stderr, "%s: cannot read\n", path);
		free(data);
		fclose(f);
		return 1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(data, (size_t)size);
	free(data);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	unsigned long ran = 0;
	int errors = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		DIR *dir;
		struct dirent *de;
		char **names = NULL;
		size_t n = 0;

		if (stat(argv[i], &st)) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			errors += run_file(argv[i]);
			ran++;
			continue;
		}
		dir = opendir(argv[i]);
		if (!dir) {
			perror(argv[i]);
			return 1;
		}
		while ((de = readdir(dir))) {
			char **more;

			if (de->d_name[0] == '.')
				continue;
			more = realloc(names, (n + 1) * sizeof(*names));
			if (!more)
				return 1;
			names = more;
			names[n] = malloc(strlen(argv[i]) + strlen(de->d_name) + 2);
			if (!names[n])
				return 1;
			sprintf(names[n++], "%s/%s", argv[i], de->d_name);
		}
		closedir(dir);
		qsort(names, n, sizeof(*names), by_name);
		for (size_t k = 0; k < n; k++) {
			errors += run_file(names[k]);
			ran++;
			free(names[k]);
		}
		free(names);
	}
	printf("fuzz_replay: %lu inputs replayed, %d unreadable\n", ran, errors);
	return errors ? 1 : 0;
}
