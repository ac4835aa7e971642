/* Concurrent use from host threads, as the header's THREAD SAFETY section allows: one session
 * driven from two threads at once (one pushes, one reads and polls), and two sessions of one
 * engine driven from two threads at once. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"
#include "util.h"

#define FULL_FRAMES 530
#define SHORT_FRAMES 300

static size_t frames(void) { return tl_opts.short_mode ? SHORT_FRAMES : FULL_FRAMES; }

typedef struct {
  trunkline_engine *engine;
  trunkline_session *session;
  const call_plan *plan;
  size_t pushed;
} pusher_args;

/* Pushes the whole call as fast as the engine takes it. */
static void *pusher(void *arg) {
  pusher_args *a = arg;
  char msg[MSG_CAP];
  size_t ms = 0;
  for (size_t i = 0; i < plan_count(a->plan); i++) {
    plan_message(a->plan, i, msg, sizeof msg, &ms);
    double deadline = now_ms() + 30000;
    trunkline_result r;
    while ((r = push_text(a->session, msg)) == TRUNKLINE_RESULT_FULL && now_ms() < deadline) sleep_ms(1);
    if (r != TRUNKLINE_RESULT_OK) {
      tl_fail(__FILE__, __LINE__, "push %zu: %s", i, trunkline_result_message((uint32_t)r));
      return NULL;
    }
    a->pushed++;
  }
  return NULL;
}

void test_one_session_two_threads(void) {
  fixture fx;
  REQUIRE(fixture_load(&fx));
  call_plan plan = {&fx, frames(), 77, 45, '9'};
  trunkline_engine_config ecfg;
  trunkline_engine_config_default(&ecfg, sizeof ecfg);
  ecfg.workers_per_core = false;
  ecfg.workers = 1;
  trunkline_engine *e = NULL;
  trunkline_session *s = NULL;
  call_result *r = calloc(1, sizeof *r);
  trunkline_session_config cfg;
  trunkline_session_config_default(&cfg, sizeof cfg);
  /* The pusher may run seconds ahead of the reader (it is not paced): room for the whole call,
   * so that the totals are exact whatever the scheduling. */
  cfg.agent_ring_ms = (uint32_t)(plan.frames * 20 + 1000);
  if (!r || trunkline_engine_new(&ecfg, &e) != TRUNKLINE_RESULT_OK ||
      trunkline_session_open(e, &cfg, &s) != TRUNKLINE_RESULT_OK) {
    tl_fail(__FILE__, __LINE__, "setup");
    goto done;
  }
  pusher_args args = {e, s, &plan, 0};
  pthread_t thread;
  if (pthread_create(&thread, NULL, pusher, &args) != 0) {
    tl_fail(__FILE__, __LINE__, "pthread_create");
    goto done;
  }
  /* This thread reads audio and polls events on the same session until STOPPED. */
  for (double deadline = now_ms() + 60000; !r->stopped && now_ms() < deadline;) {
    trunkline_engine_wait(e, 20);
    r->samples += drain_audio(s, NULL);
    size_t before = r->events.count;
    drain_events(s, &r->events);
    for (size_t i = before; i < r->events.count; i++)
      r->stopped |= r->events.items[i].kind == TRUNKLINE_EVENT_KIND_STOPPED;
  }
  r->samples += drain_audio(s, NULL);
  pthread_join(thread, NULL);
  CHECK_EQ(args.pushed, plan_count(&plan));
  read_stats(s, r);
  check_call(&plan, r, 16000);
  CHECK_EQ(stat_by_name(r->stats, r->stat_count, "messages_in"), plan_count(&plan));

done:
  trunkline_session_free(s);
  trunkline_engine_free(e);
  free(r);
  fixture_free(&fx);
}

typedef struct {
  trunkline_engine *engine;
  call_plan plan;
  unsigned agent_rate;
  size_t samples;
  bool done;
} caller_args;

/* One host thread, one call: opens its session, drives it, checks it, frees it. */
static void *caller(void *arg) {
  caller_args *a = arg;
  trunkline_session_config cfg;
  trunkline_session_config_default(&cfg, sizeof cfg);
  cfg.agent_rate = a->agent_rate;
  trunkline_session *s = NULL;
  call_result *r = calloc(1, sizeof *r);
  if (!r || trunkline_session_open(a->engine, &cfg, &s) != TRUNKLINE_RESULT_OK) {
    tl_fail(__FILE__, __LINE__, "setup");
    free(r);
    return NULL;
  }
  drive_threaded(a->engine, s, &a->plan, a->agent_rate, r, 0, plan_count(&a->plan), 60000);
  read_stats(s, r);
  check_call(&a->plan, r, a->agent_rate);
  a->samples = r->samples;
  a->done = true;
  trunkline_session_free(s);
  free(r);
  return NULL;
}

void test_two_sessions_two_threads(void) {
  fixture fx;
  REQUIRE(fixture_load(&fx));
  trunkline_engine_config ecfg;
  trunkline_engine_config_default(&ecfg, sizeof ecfg);
  ecfg.workers_per_core = false;
  ecfg.workers = 2;
  trunkline_engine *e = NULL;
  REQUIRE_OK(trunkline_engine_new(&ecfg, &e));
  caller_args a = {e, {&fx, frames(), 30, 20, '1'}, 16000, 0, false};
  caller_args b = {e, {&fx, frames(), 150, 151, '2'}, 8000, 0, false};
  pthread_t ta;
  pthread_t tb;
  bool started_a = pthread_create(&ta, NULL, caller, &a) == 0;
  bool started_b = pthread_create(&tb, NULL, caller, &b) == 0;
  CHECK(started_a && started_b);
  if (started_a) pthread_join(ta, NULL);
  if (started_b) pthread_join(tb, NULL);
  CHECK(a.done && b.done);
  CHECK_EQ(a.samples, frames() * 20 * 16);
  CHECK_EQ(b.samples, frames() * 20 * 8);
  trunkline_engine_free(e);
  fixture_free(&fx);
}

typedef struct {
  trunkline_engine *engine;
  trunkline_result result;
  double waited_ms;
} waiter_args;

static void *waiter(void *arg) {
  waiter_args *a = arg;
  double t0 = now_ms();
  a->result = trunkline_engine_wait(a->engine, 1500);
  a->waited_ms = now_ms() - t0;
  return NULL;
}

void test_two_waiters(void) {
  /* Two threads wait on one engine; one signal wakes one of them. The other keeps waiting: it
   * returns TIMEOUT only once its timeout has passed, never early. */
  trunkline_engine_config ecfg;
  trunkline_engine_config_default(&ecfg, sizeof ecfg);
  ecfg.workers_per_core = false;
  ecfg.workers = 1;
  trunkline_engine *e = NULL;
  REQUIRE_OK(trunkline_engine_new(&ecfg, &e));
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(e, NULL, &s));
  trunkline_engine_clear_wakeup(e);
  waiter_args a = {e, TRUNKLINE_RESULT_PANIC, 0};
  waiter_args b = {e, TRUNKLINE_RESULT_PANIC, 0};
  pthread_t ta;
  pthread_t tb;
  REQUIRE(pthread_create(&ta, NULL, waiter, &a) == 0);
  if (pthread_create(&tb, NULL, waiter, &b) != 0) {
    tl_fail(__FILE__, __LINE__, "pthread_create");
    b.result = TRUNKLINE_RESULT_TIMEOUT;
    b.waited_ms = 1500;
  }
  sleep_ms(200);
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  pthread_join(ta, NULL);
  if (b.result == TRUNKLINE_RESULT_PANIC) pthread_join(tb, NULL);
  CHECK(a.result == TRUNKLINE_RESULT_OK || b.result == TRUNKLINE_RESULT_OK);
  waiter_args *both[2] = {&a, &b};
  for (int i = 0; i < 2; i++) {
    CHECK(both[i]->result == TRUNKLINE_RESULT_OK || both[i]->result == TRUNKLINE_RESULT_TIMEOUT);
    if (both[i]->result == TRUNKLINE_RESULT_TIMEOUT && both[i]->waited_ms < 1450)
      tl_fail(__FILE__, __LINE__, "waiter %d: TIMEOUT after %.0f ms of 1500", i, both[i]->waited_ms);
  }
  trunkline_session_free(s);
  trunkline_engine_free(e);
}
