/*
 * trunkline_log_to_stderr: a bad filter is refused, a good one installs the logger, a second call
 * says one is installed; then a call through the offload server (test_server_call, which also
 * tries a path the server does not serve) writes its lines to stderr, captured here in a file.
 * The logger stays installed for the rest of the process: this test runs last.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tests.h"
#include "util.h"

/* Everything written to `file` so far, NUL-terminated (malloc'd), or NULL. */
static char *read_all(FILE *file) {
  if (fseek(file, 0, SEEK_END) != 0) return NULL;
  long size = ftell(file);
  if (size < 0 || fseek(file, 0, SEEK_SET) != 0) return NULL;
  char *text = malloc((size_t)size + 1);
  if (text == NULL) return NULL;
  size_t got = fread(text, 1, (size_t)size, file);
  text[got] = 0;
  return text;
}

/* The line of `text` holding `needle`, copied into `line` (empty if none). */
static void line_with(const char *text, const char *needle, char *line, size_t cap) {
  line[0] = 0;
  const char *at = strstr(text, needle);
  if (at == NULL) return;
  const char *start = at;
  while (start > text && start[-1] != '\n') start--;
  const char *end = strchr(at, '\n');
  size_t len = end ? (size_t)(end - start) : strlen(start);
  if (len >= cap) len = cap - 1;
  memcpy(line, start, len);
  line[len] = 0;
}

void test_log_to_stderr(void) {
  FILE *captured = tmpfile();
  REQUIRE(captured != NULL);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  REQUIRE(saved >= 0);
  REQUIRE(dup2(fileno(captured), STDERR_FILENO) >= 0);

  int before = tl_failures();
  trunkline_result bad = trunkline_log_to_stderr("trunkline=loud");
  trunkline_result good = trunkline_log_to_stderr("trunkline=info");
  trunkline_result again = trunkline_log_to_stderr(NULL);
  /* A short call: its start and end are logged at info, the refused path at warn. */
  test_server_call();

  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  char *text = read_all(captured);
  fclose(captured);
  REQUIRE(text != NULL);

  CHECK_EQ(bad, TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_EQ(good, TRUNKLINE_RESULT_OK);
  CHECK_EQ(again, TRUNKLINE_RESULT_FULL);
  /* Each error's reason, written to stderr since a result code cannot carry it. */
  CHECK(strstr(text, "log filter \"trunkline=loud\" is not valid") != NULL);
  CHECK(strstr(text, "already installed") != NULL);

  char line[1024];
  line_with(text, "call started", line, sizeof line);
  CHECK(strstr(line, " INFO ") != NULL);
  CHECK(strstr(line, CALL_SID) != NULL);
  CHECK(strstr(line, STREAM_SID) != NULL);
  /* The client closes its socket without a WebSocket close: a drop, logged as a warning. */
  line_with(text, "call ended", line, sizeof line);
  CHECK(strstr(line, " WARN ") != NULL);
  CHECK(strstr(line, CALL_SID) != NULL);
  CHECK(strstr(line, "messages_in=2") != NULL); /* connected and start */
  CHECK(strstr(line, "outcome=\"connection_dropped\"") != NULL);
  line_with(text, "connection refused", line, sizeof line);
  CHECK(strstr(line, " WARN ") != NULL);
  CHECK(strstr(line, "reason=\"wrong_path\"") != NULL);
  CHECK(strstr(line, "/elsewhere") != NULL);
  /* The filter holds: connection detail is debug, left out at info. */
  CHECK(strstr(text, "connection accepted") == NULL);

  if (tl_failures() != before) fprintf(stderr, "    captured stderr:\n%s\n", text);
  free(text);
}
