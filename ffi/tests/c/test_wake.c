/* trunkline_engine_wake: a host thread releases another one blocked in trunkline_engine_wait
 * (the way to stop a waiter that has no timeout), a wake issued before the wait is kept for it,
 * and one wake releases one of several waiters. */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "tests.h"
#include "util.h"

/* How long a woken waiter may take to be seen returning (valgrind is slow). */
#define RELEASE_MS 5000

typedef struct {
  trunkline_engine *engine;
  int64_t timeout_ms;
  atomic_bool entered;
  atomic_bool done;
  trunkline_result result;
} wake_waiter;

static void *wait_once(void *arg) {
  wake_waiter *w = arg;
  atomic_store(&w->entered, true);
  w->result = trunkline_engine_wait(w->engine, w->timeout_ms);
  atomic_store(&w->done, true);
  return NULL;
}

/* Until `count` of the waiters are done or `ms` pass; returns how many are done. */
static int await_done(wake_waiter **ws, int n, int count, unsigned ms) {
  int done = 0;
  for (double deadline = now_ms() + ms;;) {
    done = 0;
    for (int i = 0; i < n; i++) done += atomic_load(&ws[i]->done);
    if (done >= count || now_ms() >= deadline) return done;
    sleep_ms(1);
  }
}

/* Starts a waiter and returns once it is about to block (plus time to get into the wait). */
static bool start_waiter(wake_waiter *w, pthread_t *thread) {
  if (pthread_create(thread, NULL, wait_once, w) != 0) return false;
  while (!atomic_load(&w->entered)) sleep_ms(1);
  sleep_ms(100);
  return true;
}

void test_wake_releases_a_blocked_wait(void) {
  /* No timeout (the case wake exists for) on a threaded engine, a long one on an inline engine. */
  const struct {
    uint32_t workers;
    int64_t timeout_ms;
  } cases[] = {{1, -1}, {0, 60000}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    trunkline_engine *e = engine_with_workers(cases[c].workers);
    REQUIRE(e != NULL);
    wake_waiter w = {e, cases[c].timeout_ms, false, false, TRUNKLINE_RESULT_PANIC};
    wake_waiter *ws[1] = {&w};
    pthread_t thread;
    if (!start_waiter(&w, &thread)) {
      tl_fail(__FILE__, __LINE__, "pthread_create");
      trunkline_engine_free(e);
      return;
    }
    CHECK(!atomic_load(&w.done)); /* nothing else can end this wait */
    CHECK_OK(trunkline_engine_wake(e));
    if (await_done(ws, 1, 1, RELEASE_MS) != 1) {
      tl_fail(__FILE__, __LINE__, "timeout %lld: wake did not release the wait in %d ms",
              (long long)cases[c].timeout_ms, RELEASE_MS);
      /* The waiter may block for good: leave it, and the engine it is in, rather than free the
       * engine under it. */
      pthread_detach(thread);
      return;
    }
    pthread_join(thread, NULL);
    CHECK_RESULT(w.result, TRUNKLINE_RESULT_OK);
    /* The released wait reset the signal: nothing is left for the next one. */
    CHECK_RESULT(trunkline_engine_wait(e, 0), TRUNKLINE_RESULT_TIMEOUT);
    trunkline_engine_free(e);
  }
}

void test_wake_before_wait_is_kept(void) {
  for (uint32_t workers = 0; workers <= 1; workers++) {
    trunkline_engine *e = engine_with_workers(workers);
    REQUIRE(e != NULL);
    /* Two wakes before a wait count as one: the wait returns at once, the next one times out. */
    CHECK_OK(trunkline_engine_wake(e));
    CHECK_OK(trunkline_engine_wake(e));
    double t0 = now_ms();
    CHECK_OK(trunkline_engine_wait(e, 30000));
    CHECK(now_ms() - t0 < 2000);
    CHECK_RESULT(trunkline_engine_wait(e, 0), TRUNKLINE_RESULT_TIMEOUT);
    /* Also for a wait without a timeout (checked just above not to be lost with a timeout). */
    CHECK_OK(trunkline_engine_wake(e));
    CHECK_OK(trunkline_engine_wait(e, -1));
    /* A wake makes the wakeup fd readable, for an event loop, until it is reset. */
    int32_t fd = -1;
    CHECK_OK(trunkline_engine_wakeup_fd(e, &fd));
    struct pollfd p = {fd, POLLIN, 0};
    CHECK_EQ(poll(&p, 1, 0), 0);
    CHECK_OK(trunkline_engine_wake(e));
    CHECK_EQ(poll(&p, 1, 0), 1);
    CHECK_OK(trunkline_engine_clear_wakeup(e));
    CHECK_RESULT(trunkline_engine_clear_wakeup(e), TRUNKLINE_RESULT_EMPTY);
    CHECK_EQ(poll(&p, 1, 0), 0);
    trunkline_engine_free(e);
  }
}

void test_wake_each_of_two_waiters(void) {
  /* One wake releases one of two waiters; the other goes on waiting until the next wake. */
  trunkline_engine *e = engine_with_workers(1);
  REQUIRE(e != NULL);
  wake_waiter a = {e, 60000, false, false, TRUNKLINE_RESULT_PANIC};
  wake_waiter b = {e, 60000, false, false, TRUNKLINE_RESULT_PANIC};
  wake_waiter *ws[2] = {&a, &b};
  pthread_t threads[2];
  int started = 0;
  while (started < 2 && start_waiter(ws[started], &threads[started])) started++;
  if (started == 2) {
    CHECK_OK(trunkline_engine_wake(e));
    CHECK_EQ(await_done(ws, 2, 1, RELEASE_MS), 1);
    sleep_ms(100);
    CHECK_EQ(await_done(ws, 2, 2, 0), 1);
    CHECK_OK(trunkline_engine_wake(e));
    CHECK_EQ(await_done(ws, 2, 2, RELEASE_MS), 2);
  } else {
    tl_fail(__FILE__, __LINE__, "pthread_create");
    /* Release the one that started. */
    for (int i = 0; i < started; i++) CHECK_OK(trunkline_engine_wake(e));
  }
  /* (A waiter not released returns TIMEOUT after its 60 s: joining it cannot hang.) */
  for (int i = 0; i < started; i++) {
    pthread_join(threads[i], NULL);
    CHECK_RESULT(ws[i]->result, TRUNKLINE_RESULT_OK);
  }
  trunkline_engine_free(e);
}
