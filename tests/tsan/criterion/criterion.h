/* SPDX-License-Identifier: MIT */
/*
 * tests/tsan/criterion/criterion.h - runs Criterion test sources under
 * ThreadSanitizer.
 *
 * Criterion cannot run under TSan: its runner maps an "inheritable arena"
 * at a fixed address that TSan's shadow memory occupies, and it fails
 * before the first test.  The TSan build therefore compiles the concurrency
 * suites against this header instead, which gives the subset of Criterion's
 * API those suites use (Test, TestSuite with .init/.fini, cr_assert*,
 * cr_expect and cr_expect_eq (as assertions: helpers.c's snapshot uses
 * them), cr_skip_test, cr_log_info) and runs every test in-process, in order,
 * exiting non-zero on the first failed assertion.  cr_skip_test() leaves
 * the test body (longjmp back to the runner), runs the suite's .fini and
 * counts the test as skipped, as Criterion does.  The plain and ASan
 * builds use Criterion.
 */
#ifndef UHMM_TSAN_CRITERION_H
#define UHMM_TSAN_CRITERION_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct tsan_test {
	const char *suite, *name;
	void (*fn)(void);
	struct tsan_test *next;
};

struct tsan_suite {
	const char *name;
	void (*init)(void);
	void (*fini)(void);
	struct tsan_suite *next;
};

void tsan_register_test(struct tsan_test *t);
void tsan_register_suite(struct tsan_suite *s);
void __attribute__((noreturn, format(printf, 4, 5)))
tsan_assert_fail(const char *file, int line, const char *cond, const char *fmt, ...);
void __attribute__((noreturn, format(printf, 1, 2))) tsan_skip_test(const char *fmt, ...);

#define TestSuite(sname, ...)                                                      \
	static struct tsan_suite tsan_suite_##sname = { .name = #sname, __VA_ARGS__ }; \
	static void __attribute__((constructor)) tsan_suite_ctor_##sname(void)     \
	{                                                                          \
		tsan_register_suite(&tsan_suite_##sname);                          \
	}

#define Test(sname, tname, ...)                                                    \
	static void tsan_test_fn_##sname##_##tname(void);                          \
	static struct tsan_test tsan_test_##sname##_##tname = {                   \
		#sname, #tname, tsan_test_fn_##sname##_##tname, NULL };              \
	static void __attribute__((constructor)) tsan_test_ctor_##sname##_##tname(void) \
	{                                                                          \
		tsan_register_test(&tsan_test_##sname##_##tname);                  \
	}                                                                          \
	static void tsan_test_fn_##sname##_##tname(void)

/* cr_assert(cond [, fmt, ...]) and friends: the message is optional. */
#define cr_assert(cond, ...)                                                       \
	do {                                                                       \
		if (!(cond))                                                       \
			tsan_assert_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__); \
	} while (0)
#define cr_assert_not(cond, ...) cr_assert(!(cond), __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_fail(...) tsan_assert_fail(__FILE__, __LINE__, "cr_assert_fail", " " __VA_ARGS__)
/* The runner stops at the first failure: an expectation is an assertion here. */
#define cr_expect(cond, ...) cr_assert(cond, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) cr_assert_eq(a, b, __VA_ARGS__)
/* cr_skip_test(fmt, ...): mark the test skipped and leave it. */
#define cr_skip_test(...) tsan_skip_test(__VA_ARGS__)
#define cr_log_info(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
#define cr_log_warn cr_log_info

#endif /* UHMM_TSAN_CRITERION_H */
