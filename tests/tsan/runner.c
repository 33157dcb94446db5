// SPDX-License-Identifier: MIT
/*
 * tests/tsan/runner.c - the in-process runner behind
 * tests/tsan/criterion/criterion.h (see there for why it exists).
 */
#include <criterion/criterion.h>
#include <string.h>

static struct tsan_test *tests, **tests_tail = &tests;
static struct tsan_suite *suites;
static const struct tsan_test *current;

void tsan_register_test(struct tsan_test *t)
{
	*tests_tail = t;
	tests_tail = &t->next;
}

void tsan_register_suite(struct tsan_suite *s)
{
	s->next = suites;
	suites = s;
}

void tsan_assert_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: %s::%s: assertion failed: %s:", file, line,
		current ? current->suite : "?", current ? current->name : "?", cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ntsan: 0 passed, 1 failed\n");
	exit(1);
}

int main(void)
{
	int passed = 0;

	for (current = tests; current; current = current->next) {
		const struct tsan_suite *s = suites;

		while (s && strcmp(s->name, current->suite))
			s = s->next;
		if (s && s->init)
			s->init();
		current->fn();
		if (s && s->fini)
			s->fini();
		printf("[PASS] %s::%s\n", current->suite, current->name);
		passed++;
	}
	printf("tsan: %d passed, 0 failed\n", passed);
	return 0;
}
