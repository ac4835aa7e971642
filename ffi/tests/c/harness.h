/*
 * A minimal test harness for the C tests of include/trunkline.h: checks that record failures
 * (thread-safe) and a registry of test functions (see main.c).
 */
#ifndef TRUNKLINE_C_TEST_HARNESS_H
#define TRUNKLINE_C_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trunkline.h"

/* Records a failed check (any thread). */
void tl_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Failed checks so far (all threads). */
int tl_failures(void);

/* Settings from the command line. */
typedef struct {
  /* Directory of engine/tests/fixtures. */
  const char *fixtures;
  /* Shorter calls in the threaded tests (for valgrind). */
  bool short_mode;
} tl_options;

extern tl_options tl_opts;

/* A check that records a failure and goes on. */
#define CHECK(cond)                                  \
  do {                                               \
    if (!(cond)) tl_fail(__FILE__, __LINE__, "%s", #cond); \
  } while (0)

/* A check that records a failure and leaves the test function. */
#define REQUIRE(cond)                                \
  do {                                               \
    if (!(cond)) {                                   \
      tl_fail(__FILE__, __LINE__, "%s", #cond);      \
      return;                                        \
    }                                                \
  } while (0)

/* Integer equality, printing both sides. */
#define CHECK_EQ(a, b)                                                                       \
  do {                                                                                       \
    long long a_ = (long long)(a), b_ = (long long)(b);                                      \
    if (a_ != b_) tl_fail(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, #b, a_, b_);    \
  } while (0)

/* `expr` returns the trunkline_result `expected`. */
#define CHECK_RESULT(expr, expected)                                                         \
  do {                                                                                       \
    trunkline_result r_ = (expr);                                                            \
    if (r_ != (expected))                                                                    \
      tl_fail(__FILE__, __LINE__, "%s: got %d (%s), want %s", #expr, (int)r_,                \
              trunkline_result_message((uint32_t)r_), #expected);                            \
  } while (0)

#define CHECK_OK(expr) CHECK_RESULT(expr, TRUNKLINE_RESULT_OK)

/* Like CHECK_OK, but leaves the test function on failure. */
#define REQUIRE_OK(expr)                                                                     \
  do {                                                                                       \
    trunkline_result r_ = (expr);                                                            \
    if (r_ != TRUNKLINE_RESULT_OK) {                                                         \
      tl_fail(__FILE__, __LINE__, "%s: got %d (%s)", #expr, (int)r_,                         \
              trunkline_result_message((uint32_t)r_));                                       \
      return;                                                                                \
    }                                                                                        \
  } while (0)

#endif
