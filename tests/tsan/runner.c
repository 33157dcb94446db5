// SPDX-License-Identifier: MIT
/*
 * tests/tsan/runner.c - the in-process runner behind
 * tests/tsan/criterion/criterion.h (see there for why it exists).
 */
#include <criterion/criterion.h>
#include <setjmp.h>
#include <string.h>

static struct tsan_test *tests, **tests_tail = &tests;
static struct tsan_suite *suites;
static const struct tsan_test *current;
static jmp_buf skip_jmp;

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

void tsan_skip_test(const char *fmt, ...)
{
	va_list ap;

	printf("[SKIP] %s::%s: ", current ? current->suite : "?", current ? current->name : "?");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	longjmp(skip_jmp, 1);
}

/* Run a test body; false if it called cr_skip_test(). */
static bool run_body(void (*fn)(void))
{
	if (setjmp(skip_jmp))
		return false;
	fn();
	return true;
}

int main(void)
{
	int passed = 0, skipped = 0;

	for (current = tests; current; current = current->next) {
		const struct tsan_suite *s = suites;
		bool ran;

		while (s && strcmp(s->name, current->suite))
			s = s->next;
		if (s && s->init)
			s->init();
		ran = run_body(current->fn);
		if (s && s->fini)
			s->fini();
		if (ran) {
			printf("[PASS] %s::%s\n", current->suite, current->name);
			passed++;
		} else {
			skipped++;
		}
	}
	printf("tsan: %d passed, 0 failed, %d skipped\n", passed, skipped);
	return 0;
}
