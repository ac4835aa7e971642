'use strict';
// Trunkline for Node: a real-time media engine for telephone voice bots, over its C ABI (koffi).
//
// Threads: every call here runs on the calling (main) thread, except trunkline_engine_wait, which
// runs on one of koffi's worker threads (its async call) so the event loop never blocks. The
// engine's own threads never call into JavaScript: events are polled.

const { fns, TYPES, DEFINES, libraryFile, libraryVersion } = require('./lib/native');

// ---- Results and errors.

const RESULT = {};
const CODE_NAMES = {};
for (const [cname, value] of Object.entries(TYPES.trunkline_result.values)) {
  const name = cname.replace(/^TRUNKLINE_RESULT_/, '');
  RESULT[name] = value;
  CODE_NAMES[value] = name;
}
Object.freeze(RESULT);

/** The message the library gives for a result code (any integer). */
function resultMessage(code) {
  // The library describes any value; unknown ones are answered here too, so that a library
  // built before that guarantee is never handed a value outside the enum.
  if (!(code in CODE_NAMES)) return `unknown result code ${code}`;
  return fns.trunkline_result_message(code);
}

/** A failed call: `code` is the trunkline_result value, `codeName` its name (e.g. 'FULL'). */
class TrunklineError extends Error {
  constructor(code, context) {
    const message = resultMessage(code);
    super(context ? `${context}: ${message}` : message);
    this.name = 'TrunklineError';
    this.code = code;
    this.codeName = CODE_NAMES[code] ?? `UNKNOWN_${code}`;
  }
}

function check(code, context) {
  if (code !== RESULT.OK) throw new TrunklineError(code, context);
}

// ---- Lookup tables.

const EVENT_KINDS = {};
for (const [cname, value] of Object.entries(TYPES.trunkline_event_kind.values)) {
  EVENT_KINDS[value] = cname.replace(/^TRUNKLINE_EVENT_KIND_/, '').toLowerCase();
}
/** Protocol error codes by name (an event's `errorCode`); new codes may be added. */
const PROTOCOL_ERROR = Object.freeze(
  Object.fromEntries(
    Object.entries(TYPES.trunkline_protocol_error.values).map(([c, v]) => [c.replace(/^TRUNKLINE_PROTOCOL_ERROR_/, ''), v]),
  ),
);
const TEXT = TYPES.trunkline_message_kind.values.TRUNKLINE_MESSAGE_KIND_TEXT;
const BINARY = TYPES.trunkline_message_kind.values.TRUNKLINE_MESSAGE_KIND_BINARY;
const START_FIELD = TYPES.trunkline_start_field.values;
/** trunkline_audio_encoding value → its name: 'mulaw', 'alaw', 'l16', 'g722', 'opus'. */
const ENCODINGS = Object.fromEntries(
  Object.entries(TYPES.trunkline_audio_encoding.values).map(([c, v]) => [v, c.replace(/^TRUNKLINE_AUDIO_ENCODING_/, '').toLowerCase()]),
);
/** The output structs' struct_size: sizeof each as this binding declares it (VERSIONED OUTPUTS). */
const EVENT_SIZE = TYPES.trunkline_event.size;
const START_INFO_SIZE = TYPES.trunkline_start_info.size;

const STATS_NAMES = (() => {
  const names = [];
  const count = Number(fns.trunkline_session_stats_count());
  for (let i = 0; i < count; i++) names.push(fns.trunkline_session_stats_name(i));
  return Object.freeze(names);
})();

/** Whether the library has the offload server (a build without its `server` feature has not). */
const HAS_SERVER = typeof fns.trunkline_server_start === 'function';

const SERVER_STATS_NAMES = (() => {
  const names = [];
  const count = HAS_SERVER ? Number(fns.trunkline_server_stats_count()) : 0;
  for (let i = 0; i < count; i++) names.push(fns.trunkline_server_stats_name(i));
  return Object.freeze(names);
})();

const camel = (snake) => snake.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
/** The config fields that are not options: the struct's size (set by the _default function). */
const NOT_OPTIONS = new Set(['struct_size']);
/** camelCase option name → snake_case field of trunkline_session_config. */
const SESSION_FIELDS = new Map(
  Object.keys(TYPES.trunkline_session_config.members)
    .filter((f) => !NOT_OPTIONS.has(f))
    .map((f) => [camel(f), f]),
);
/** The server config's fields set from an option of their own (`session`, `routes`). */
const SERVER_COMPOUND = new Set(['session', 'routes', 'route_count']);
/** camelCase option name → snake_case field of trunkline_server_config (`session`, `routes` apart). */
const SERVER_FIELDS = new Map(
  Object.keys(TYPES.trunkline_server_config.members)
    .filter((f) => !SERVER_COMPOUND.has(f) && !NOT_OPTIONS.has(f))
    .map((f) => [camel(f), f]),
);
const SERVER_STRING_FIELDS = new Set(['bind', 'path', 'auth_token', 'public_url', 'tls_cert_pem', 'tls_key_pem']);

/** Checks a string option (a koffi string: a NUL-terminated copy that lives for the call). */
function stringOption(value, key) {
  if (value !== null && typeof value !== 'string') {
    throw new TypeError(`trunkline: ${key} must be a string or null, got ${typeof value}`);
  }
  if (value !== null && value.includes('\0')) throw new TrunklineError(RESULT.INVALID_ARGUMENT, `${key} contains NUL`);
  return value;
}

/** The library's default session config, as sizeof(trunkline_session_config) in this binding. */
function defaultSessionConfig() {
  const config = {};
  check(fns.trunkline_session_config_default(config, TYPES.trunkline_session_config.size), 'session config');
  return config;
}

/** agentFormat names → trunkline_agent_format (with the names speech services use). */
const AGENT_FORMATS = { pcm: 0, ulaw: 1, mulaw: 1, g711_ulaw: 1, pcmu: 1, alaw: 2, g711_alaw: 2, pcma: 2 };

/** trunkline_agent_format → the name Session.agentFormat gives. */
const AGENT_FORMAT_NAMES = ['pcm', 'ulaw', 'alaw'];
/** playEncoded() codec names → TRUNKLINE_CODEC_*. */
const CODECS = { ogg_opus: DEFINES.TRUNKLINE_CODEC_OGG_OPUS, opus: DEFINES.TRUNKLINE_CODEC_OPUS };

function agentFormat(name) {
  const value = AGENT_FORMATS[name.toLowerCase()];
  if (value === undefined) throw new TypeError(`trunkline: unknown agentFormat ${JSON.stringify(name)}: 'pcm', 'ulaw' or 'alaw'`);
  return value;
}

const SESSION_STRING_FIELDS = new Set(['dialect', 'record_path']);
const SESSION_BOOL_FIELDS = new Set(['barge_in_enabled', 'vad_echo_aware', 'vad_end_of_turn_enabled', 'echo_reduction']);

/** Fills `config` (a trunkline_session_config from the library's defaults) from session options. */
function applySessionOptions(config, options) {
  if (options === null || typeof options !== 'object') throw new TypeError('trunkline: session options must be an object');
  for (const [key, value] of Object.entries(options)) {
    const field = SESSION_FIELDS.get(key);
    if (!field) throw new TypeError(`trunkline: unknown session option ${JSON.stringify(key)}`);
    if (value === undefined) continue;
    if (SESSION_STRING_FIELDS.has(field)) config[field] = stringOption(value, key);
    else if (field === 'agent_format' && typeof value === 'string') config[field] = agentFormat(value);
    else if (SESSION_BOOL_FIELDS.has(field)) config[field] = Boolean(value);
    else config[field] = unsignedField(TYPES.trunkline_session_config, field, value, key);
  }
  return config;
}

/** The keys of engine.session's `start` option. */
const START_KEYS = ['streamId', 'callId', 'accountId', 'encoding', 'sampleRate', 'channels', 'customParameters'];
/** `start` encoding names (the `started` event's, and 'ulaw' as for agentFormat) → trunkline_audio_encoding. */
const START_ENCODINGS = Object.fromEntries(Object.entries(ENCODINGS).map(([value, name]) => [name, Number(value)]));
START_ENCODINGS.ulaw = START_ENCODINGS.mulaw;

/** The trunkline_stream_start for engine.session's `start` option: the library's defaults, then `start`. */
function streamStart(start) {
  if (start === null || typeof start !== 'object') throw new TypeError('trunkline: start must be an object');
  for (const key of Object.keys(start)) {
    if (!START_KEYS.includes(key)) throw new TypeError(`trunkline: unknown start key ${JSON.stringify(key)}: one of ${START_KEYS.join(', ')}`);
  }
  const out = { struct_size: TYPES.trunkline_stream_start.size };
  check(fns.trunkline_stream_start_default(out, TYPES.trunkline_stream_start.size), 'stream start');
  for (const key of ['streamId', 'callId', 'accountId']) {
    if (start[key] != null) out[key.replace(/[A-Z]/, (c) => `_${c.toLowerCase()}`)] = stringOption(start[key], `start.${key}`);
  }
  if (start.encoding != null) {
    const value = typeof start.encoding === 'string' ? START_ENCODINGS[start.encoding.toLowerCase()] : undefined;
    if (value === undefined) throw new TypeError(`trunkline: unknown start.encoding ${JSON.stringify(start.encoding)}: 'mulaw' ('ulaw'), 'alaw', 'l16', 'g722' or 'opus'`);
    out.encoding = value;
  }
  if (start.sampleRate != null) out.sample_rate = uint32Option(start.sampleRate, 'start.sampleRate');
  if (start.channels != null) out.channels = uint32Option(start.channels, 'start.channels');
  const params = start.customParameters ?? {};
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    throw new TypeError('trunkline: start.customParameters must be an object of strings');
  }
  const entries = Object.entries(params);
  out.custom_parameter_names = entries.map(([k]) => stringOption(k, 'start.customParameters name'));
  out.custom_parameter_values = entries.map(([k, v]) => stringOption(v, `start.customParameters.${k}`));
  out.custom_parameter_count = entries.length;
  return out;
}

/** camelCase route key → snake_case field of trunkline_route. */
const ROUTE_FIELDS = new Map(
  Object.keys(TYPES.trunkline_route.members)
    .filter((f) => !NOT_OPTIONS.has(f))
    .map((f) => [camel(f), f]),
);

/** The trunkline_route structs for the `routes` option (an array of { path, dialect, authToken, auth }). */
function routeStructs(routes) {
  if (!Array.isArray(routes)) throw new TypeError('trunkline: routes must be an array of { path, dialect, authToken, auth }');
  return routes.map((route, i) => {
    if (route === null || typeof route !== 'object') throw new TypeError(`trunkline: routes[${i}] must be an object`);
    const out = { struct_size: TYPES.trunkline_route.size };
    for (const field of ROUTE_FIELDS.values()) out[field] = null;
    for (const [key, value] of Object.entries(route)) {
      const field = ROUTE_FIELDS.get(key);
      if (!field) throw new TypeError(`trunkline: unknown route key ${JSON.stringify(key)}`);
      if (value !== undefined) out[field] = stringOption(value, `routes[${i}].${key}`);
    }
    return out;
  });
}

/**
 * The trunkline_server_config for server options: the library's defaults, then each option. String
 * options are passed as koffi strings: NUL-terminated copies that live for the start call.
 */
function serverConfig(options) {
  if (options === null || typeof options !== 'object') throw new TypeError('trunkline: server options must be an object');
  if (!HAS_SERVER) throw new Error('trunkline: this libtrunkline was built without the offload server (cargo feature `server`)');
  const config = {};
  check(fns.trunkline_server_config_default(config, TYPES.trunkline_server_config.size), 'server config');
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (key === 'session') {
      // A session config of its own, which the server config points to (null: the defaults).
      config.session = value === null ? null : applySessionOptions(defaultSessionConfig(), value);
      continue;
    }
    if (key === 'routes') {
      // An array the server config points to, copied by koffi for the start call.
      const routes = value === null ? [] : routeStructs(value);
      config.routes = routes.length ? routes : null;
      config.route_count = routes.length;
      continue;
    }
    const field = SERVER_FIELDS.get(key);
    if (!field) throw new TypeError(`trunkline: unknown server option ${JSON.stringify(key)}`);
    if (SERVER_STRING_FIELDS.has(field)) {
      config[field] = stringOption(value, key);
    } else {
      config[field] = unsignedField(TYPES.trunkline_server_config, field, value, key);
    }
  }
  return config;
}

/** Longest a single native wait lasts: wakeups() and calls() look again at least this often. */
const WAIT_SLICE_MS = 100;
/** Longest delay setTimeout keeps (2^31 - 1 ms): it fires a longer one after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Inline engines have no worker to signal the wakeup: their waiters are polled this often. */
const INLINE_POLL_MS = 20;

// The C handles are freed if their JS objects are garbage collected without close().
const sessionFinalizer = new FinalizationRegistry((ptr) => fns.trunkline_session_free(ptr));
const engineFinalizer = new FinalizationRegistry((ptr) => fns.trunkline_engine_free(ptr));
// A server is reachable from its engine until it is freed, so both are collected together; their
// finalizers may then run in any order, which the library tolerates (a server keeps the engine's
// shared state alive).
const serverFinalizer = new FinalizationRegistry((ptr) => fns.trunkline_server_free(ptr));

/**
 * An engine: worker threads shared by many sessions, plus one wakeup signal.
 *
 * `new Engine()` starts one worker per core; `{ workers: 0 }` runs inline (your calls do the
 * processing). `{ workers: 0, manualClock: true }` is an inline engine on a clock of its own, for
 * deterministic tests and simulations: its time starts at 0 and moves only with `advance(ms)`.
 * Call `close()` when done.
 */
class Engine {
  #ptr;
  #manualClock;
  #closed = false;
  #freed = false;
  #waitInFlight = false;
  #servers = new Set(); // started on this engine and not yet freed
  #waiters = new Set(); // wait(): resolved by a wakeup
  #pollers = new Set(); // wakeups(): called by a wakeup or at the end of a slice
  #wakeCount = 0;

  constructor({ workers, maxSessions, tickMs, workerNice, manualClock } = {}) {
    const config = {};
    check(fns.trunkline_engine_config_default(config, TYPES.trunkline_engine_config.size), 'engine config');
    if (workers === undefined || workers === null) {
      config.workers_per_core = true;
    } else {
      config.workers_per_core = false;
      config.workers = unsignedField(TYPES.trunkline_engine_config, 'workers', workers, 'workers');
    }
    if (maxSessions !== undefined) {
      config.max_sessions = unsignedField(TYPES.trunkline_engine_config, 'max_sessions', maxSessions, 'maxSessions');
    }
    if (tickMs !== undefined) config.tick_ms = unsignedField(TYPES.trunkline_engine_config, 'tick_ms', tickMs, 'tickMs');
    if (workerNice !== undefined) config.worker_nice = int32(workerNice, 'workerNice');
    const out = [null];
    this.#manualClock = Boolean(manualClock);
    if (this.#manualClock) check(fns.trunkline_engine_new_manual_clock(config, out), 'engine');
    else check(fns.trunkline_engine_new(config, out), 'engine');
    this.#ptr = out[0];
    /** Whether the engine runs inline (no worker threads). */
    this.inline = !config.workers_per_core && config.workers === 0;
    engineFinalizer.register(this, this.#ptr, this);
  }

  /** @internal The C handle; throws CLOSED after close(). */
  _handle() {
    if (this.#closed) throw new TrunklineError(RESULT.CLOSED, 'engine');
    return this.#ptr;
  }

  get closed() {
    return this.#closed;
  }

  /** Whether the engine's time is set by advance() (`{ workers: 0, manualClock: true }`). */
  get manualClock() {
    return this.#manualClock;
  }

  /**
   * Moves a manual clock forward by `ms` milliseconds (fractions are rounded to the nearest
   * microsecond). Sessions see the new time at their next call, so drain them after advancing:
   * with agent audio queued, each 20 ms releases exactly one more media frame from outbound() (a
   * step of the lead or more releases only the lead's worth, as after a carrier that ran dry).
   * Nothing is signalled: wait() timeouts stay wall time. Throws RangeError for a negative or
   * non-finite step, TrunklineError INVALID_ARGUMENT on an engine with the real clock or for a
   * step past the clock's end (2^62 - 1 µs; the clock then does not move), CLOSED after close().
   */
  advance(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`trunkline: advance() takes a finite, non-negative number of ms, got ${ms}`);
    }
    const us = Math.round(ms * 1000);
    if (us >= 2 ** 64) throw new TrunklineError(RESULT.INVALID_ARGUMENT, 'advance');
    check(fns.trunkline_engine_advance_clock(this._handle(), BigInt(us)), 'advance');
  }

  /**
   * The engine's counters as Prometheus text (the exposition format 0.0.4), or OpenMetrics 1.0
   * text (ending with `# EOF`) with `{ openMetrics: true }`, built now from counters the engine
   * keeps anyway: calls active, opened and ended by outcome, media frames, protocol errors, every
   * session counter summed over all sessions (closed ones included) as
   * `trunkline_session_<name>_total` (µs counters in seconds, as `..._seconds_total`), the
   * engine's latency histogram, CPU time per worker. Serve it on your own `/metrics` (Content-Type
   * `text/plain; version=0.0.4`, or `application/openmetrics-text; version=1.0.0`). With a Server
   * on this engine, scrape the server's own `/metrics` instead: it serves this plus the server's
   * counters. A few kilobytes built per call: for a scrape, not for every frame. Throws CLOSED
   * after close().
   */
  metrics({ openMetrics = false } = {}) {
    const format = openMetrics ? DEFINES.TRUNKLINE_METRICS_OPENMETRICS : DEFINES.TRUNKLINE_METRICS_PROMETHEUS;
    const handle = this._handle();
    const len = [0];
    let code = fns.trunkline_engine_metrics(handle, format, null, 0, len);
    let buf = null;
    while (code === RESULT.BUFFER_TOO_SMALL) {
      // Room to spare: the text may grow between the two calls.
      const size = Number(len[0]) + Math.floor(Number(len[0]) / 4) + 256;
      buf = Buffer.alloc(size);
      code = fns.trunkline_engine_metrics(handle, format, buf, size, len);
    }
    check(code, 'metrics');
    return buf.toString('utf8', 0, Number(len[0]));
  }

  /**
   * Opens a session (one call). Options are the C session config's fields in camelCase
   * (`vadEndOfTurnEnabled: true` adds `end_of_turn` events, tuned by `vadEndOfTurnMinSilenceMs`,
   * `vadEndOfTurnThreshold`, a percent 1..99, and `vadEndOfTurnMaxSilenceMs`, 0..10000: longer
   * than the hangover, an unfinished-sounding pause ends the turn only after that much silence,
   * after speech_stopped; `vadEchoAware: true` keeps the agent's echo from passing for caller
   * speech; `bargeInRejoinWithinMs`, 0..2000 (default 800, 0 off), counts short speeches over
   * the agent voiced again within that long as one, so a noisy line that splits an interruption's
   * words does not lose it; `echoReduction: true` (needs `vadEchoAware: true`, else TrunklineError
   * INVALID_ARGUMENT) delivers the caller's audio with the agent's own echo removed (the canceller
   * works at 8 kHz: from a wider carrier stream the agent then gets the band up to 3.9 kHz);
   * `recordPath: 'call.wav'` (or .opus, .ogg) records the call in stereo, caller left and agent
   * as heard right, closed with the session: a file that cannot be created or another extension
   * throws TrunklineError RECORD), and
   * `start`: for a host that already read the carrier's `start` message itself, what it said
   * ({ streamId, callId, accountId, encoding, sampleRate, channels, customParameters }). That
   * session behaves as one that parsed the message: its first event is `started`, the stream id
   * is echoed to the carrier, and a `start` pushed again is a protocol error (duplicate).
   */
  session(options = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('trunkline: session options must be an object');
    const { start, ...settings } = options;
    const config = applySessionOptions(defaultSessionConfig(), settings);
    const out = [null];
    if (start != null) {
      check(fns.trunkline_session_open_started(this._handle(), config, streamStart(start), out), 'session');
    } else {
      check(fns.trunkline_session_open(this._handle(), config, out), 'session');
    }
    return new Session(this, out[0], config.agent_rate);
  }

  /**
   * Starts an offload server on this engine (which needs worker threads): Trunkline itself is the
   * carrier's WebSocket endpoint, and each call whose stream has started comes out of
   * `server.accept()` / `server.calls()` as a Session. Same as `new Server(engine, options)`.
   */
  serve(options = {}) {
    return new Server(this, options);
  }

  /** @internal Called by a Server once it is started on this engine. */
  _addServer(server) {
    this.#servers.add(server);
  }

  /** @internal Called by a Server once trunkline_server_free has run. */
  _serverFreed(server) {
    this.#servers.delete(server);
    this.#maybeFree();
  }

  /** The engine's wakeup fd (readable when some session has output), for native event loops. */
  get wakeupFd() {
    const out = [0];
    check(fns.trunkline_engine_wakeup_fd(this._handle(), out), 'wakeupFd');
    return out[0];
  }

  /**
   * How many workers run at the requested `workerNice` (all of them when it is 0; fewer when the
   * system refused it, e.g. without CAP_SYS_NICE; 0 for an inline engine).
   */
  get prioritisedWorkers() {
    const out = [0];
    check(fns.trunkline_engine_prioritised_workers(this._handle(), out), 'prioritisedWorkers');
    return out[0];
  }

  /** Resets the wakeup signal without blocking; true if it was set. */
  clearWakeup() {
    const code = fns.trunkline_engine_clear_wakeup(this._handle());
    if (code === RESULT.EMPTY) return false;
    check(code, 'clearWakeup');
    return true;
  }

  /**
   * Makes every pending wait() resolve true, and wakeups() and calls() iterators look again, now,
   * as output would (one native wait serves them all); with none pending, the next wait() resolves
   * true at once. Draining then finds nothing new: check your own stop flag after each wakeup.
   */
  wake() {
    check(fns.trunkline_engine_wake(this._handle()), 'wake');
  }

  /**
   * Resolves true when some session of this engine may have output (audio, events, outbound
   * messages) or wake() is called, false after `timeoutMs` (default, Infinity, or beyond what a
   * timer holds, about 24.8 days: no timeout) or when the engine closes. The blocking trunkline_engine_wait runs on a koffi worker thread, never on the
   * event loop; one native wait serves every waiter of the engine. A loop that drains sessions between waits
   * should prefer `session.wakeups()`, which also catches a wakeup that lands while it drains.
   */
  wait(timeoutMs) {
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      let timer = null;
      const waiter = (woken) => {
        if (timer) clearTimeout(timer);
        resolve(woken);
      };
      this.#waiters.add(waiter);
      // setTimeout takes a longer delay (Infinity too) for 1 ms: the wait would end at once.
      if (timeoutMs !== undefined && timeoutMs !== null && timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS) {
        timer = setTimeout(() => {
          this.#waiters.delete(waiter);
          resolve(false);
        }, timeoutMs);
      }
      this.#startWait();
    });
  }

  /** @internal How many wakeups the engine has seen (a session compares it across a drain). */
  get _wakeCount() {
    return this.#wakeCount;
  }

  /**
   * @internal Calls `callback` once, at the next wakeup or at the end of the current native wait
   * slice (so a poller never waits more than a slice), or when the engine closes. Returns a
   * function that cancels it.
   */
  _poll(callback) {
    this.#pollers.add(callback);
    this.#startWait();
    return () => this.#pollers.delete(callback);
  }

  #startWait() {
    if (this.#waitInFlight || this.#closed || this.#waiters.size + this.#pollers.size === 0) return;
    this.#waitInFlight = true;
    const slice = this.inline ? INLINE_POLL_MS : WAIT_SLICE_MS;
    try {
      this.#nativeWait(slice);
    } catch {
      // koffi refuses to start an async call while too many run in the process (a limit shared
      // with every other user of koffi): look again after a slice, rather than never.
      this.#waitInFlight = false;
      setTimeout(() => this.#startWait(), slice);
    }
  }

  #nativeWait(slice) {
    fns.trunkline_engine_wait.async(this.#ptr, slice, (err, code) => {
      this.#waitInFlight = false;
      if (this.#closed) {
        // close() deferred the free until this native wait returned.
        this.#maybeFree();
        return;
      }
      const woken = !err && code === RESULT.OK;
      if (woken) this.#wakeCount++;
      const called = [...this.#pollers, ...(woken ? this.#waiters : [])];
      this.#pollers.clear();
      if (woken) this.#waiters.clear();
      for (const fn of called) fn(woken);
      this.#startWait();
    });
  }

  /**
   * Stops the workers and frees the engine. Servers still running on it are closed first (at
   * once, without grace). Sessions still open then throw CLOSED (close them too); pending wait()s
   * resolve false and event streams end.
   */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    engineFinalizer.unregister(this);
    for (const server of [...this.#servers]) server.close();
    const waiting = [...this.#waiters, ...this.#pollers];
    this.#waiters.clear();
    this.#pollers.clear();
    for (const fn of waiting) fn(false);
    // The free waits for a native wait in flight: end it now rather than at the end of its slice
    // (its completion then frees the engine, and nothing keeps the event loop alive meanwhile).
    if (this.#waitInFlight && !this.#freed) fns.trunkline_engine_wake(this.#ptr);
    this.#maybeFree();
  }

  // trunkline_engine_free must not race with a wait on another thread, and must come after
  // trunkline_server_free of its servers: a running wait's completion, or a server's deferred
  // free (after its shutdown() returns), calls this again.
  #maybeFree() {
    if (!this.#closed || this.#freed || this.#waitInFlight || this.#servers.size > 0) return;
    this.#freed = true;
    fns.trunkline_engine_free(this.#ptr);
  }
}

/** One call. Create it with `engine.session(...)`; call `close()` when the call ends. */
class Session {
  #ptr;
  #engine;
  #closed = false;
  #finalStats = null;
  #audio = new Int16Array(8192);
  #out = Buffer.alloc(4096);
  #event = { struct_size: EVENT_SIZE }; // the library keeps struct_size: set once
  #pushTail = Promise.resolve(); // settles when the last pushAsync given has been taken or failed
  #waitingPushes = 0; // pushAsync calls not yet taken
  #segmentTag = Buffer.alloc(DEFINES.TRUNKLINE_SEGMENT_TAG_CAPACITY); // any tag fits
  #closeListeners = new Set();
  #agentFormat;

  constructor(engine, ptr, agentRate) {
    this.#engine = engine; // keeps the engine alive as long as the session
    this.#ptr = ptr;
    /** Rate (Hz) of the caller audio readAudio() returns. */
    this.agentRate = agentRate;
    sessionFinalizer.register(this, ptr, this);
    // As the session's config set it: a server's for accepted calls.
    const format = [0];
    check(fns.trunkline_session_agent_format(ptr, format), 'agentFormat');
    this.#agentFormat = AGENT_FORMAT_NAMES[format[0]] ?? 'pcm';
  }

  #h() {
    if (this.#closed) throw new TrunklineError(RESULT.CLOSED, 'session');
    return this.#ptr;
  }

  get closed() {
    return this.#closed;
  }

  /** The agent's audio format: 'pcm', or 'ulaw' / 'alaw' (readAudio() and play() then carry 8 kHz G.711 bytes). */
  get agentFormat() {
    return this.#agentFormat;
  }

  /**
   * Hands one message received from the carrier to the engine: a string is a text frame, a
   * Buffer/Uint8Array a binary frame. Bad input is reported as a protocol_error event, not
   * thrown. Throws TrunklineError FULL when the engine is behind (nothing taken: retry later),
   * and while messages given to pushAsync before still wait (taking this one would put it ahead
   * of them).
   */
  push(message) {
    if (this.#waitingPushes > 0) {
      throw new TrunklineError(RESULT.FULL, 'push: messages given to pushAsync before are still waiting');
    }
    this.#pushNow(message);
  }

  #pushNow(message) {
    let data;
    let kind;
    if (typeof message === 'string') {
      data = Buffer.from(message, 'utf8');
      kind = TEXT;
    } else if (message instanceof Uint8Array) {
      data = message;
      kind = BINARY;
    } else {
      throw new TypeError('trunkline: push() takes a string (text frame) or a Buffer (binary frame)');
    }
    check(fns.trunkline_session_push(this.#h(), data, data.length, kind), 'push');
  }

  /**
   * `push` that waits out backpressure: when the engine is behind (FULL) it waits for the engine
   * to catch up (off the main thread) instead of throwing, for at most `timeoutMs`. Calls made
   * without awaiting the one before (as from a socket's 'message' events) are taken in the order
   * they were made; the messages then wait in this process, not in the carrier's socket (pause
   * the socket while one waits to leave them there).
   */
  async pushAsync(message, timeoutMs = 2000) {
    const deadline = performance.now() + timeoutMs;
    if (this.#waitingPushes === 0) {
      try {
        return this.#pushNow(message);
      } catch (e) {
        if (!(e instanceof TrunklineError) || e.code !== RESULT.FULL) throw e;
      }
    }
    // Full, or messages given before still wait: this one waits behind them. Calls not awaited
    // one by one (a socket's 'message' handler) keep the carrier's order: a stop never overtakes
    // the audio before it.
    const before = this.#pushTail;
    let release;
    this.#pushTail = new Promise((resolve) => (release = resolve));
    this.#waitingPushes++;
    try {
      await before;
      for (;;) {
        try {
          return this.#pushNow(message);
        } catch (e) {
          if (!(e instanceof TrunklineError) || e.code !== RESULT.FULL || performance.now() >= deadline) throw e;
        }
        await this.#engine.wait(Math.max(1, Math.min(20, deadline - performance.now())));
      }
    } finally {
      this.#waitingPushes--;
      release();
    }
  }

  /**
   * All caller audio ready now: s16le mono at the agent rate (an empty Buffer if none); for a
   * G.711 agent (agentFormat 'ulaw' or 'alaw') its 8 kHz codes, a byte per sample.
   */
  readAudio() {
    const chunks = [];
    const n = [0];
    if (this.agentFormat !== 'pcm') {
      const bytes = new Uint8Array(this.#audio.buffer);
      for (;;) {
        const code = fns.trunkline_session_read_audio_bytes(this.#h(), bytes, bytes.length, n);
        if (code === RESULT.EMPTY) break;
        check(code, 'readAudio');
        chunks.push(Buffer.from(bytes.subarray(0, Number(n[0])))); // a copy
      }
      return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    }
    for (;;) {
      const code = fns.trunkline_session_read_audio(this.#h(), this.#audio, this.#audio.length, n);
      if (code === RESULT.EMPTY) break;
      check(code, 'readAudio');
      const samples = Number(n[0]);
      chunks.push(Buffer.from(new Uint8Array(this.#audio.buffer, 0, samples * 2))); // a copy
    }
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  }

  /**
   * Queues agent audio: mono s16 samples (an Int16Array, or a Buffer of s16le) at `rate` Hz
   * (8000, 16000, 22050, 24000, 44100 or 48000). Returns how many samples were taken: keep the
   * rest and retry later. Throws TrunklineError FULL if nothing fit.
   */
  play(pcm, rate) {
    if (this.agentFormat !== 'pcm') {
      // G.711 codes, a byte per sample, at 8000 Hz.
      if (!(pcm instanceof Uint8Array)) throw new TypeError('trunkline: play() takes a Buffer of G.711 codes for a G.711 agent');
      const taken = [0];
      check(fns.trunkline_session_play_bytes(this.#h(), pcm, pcm.length, uint(rate, 'rate'), taken), 'play');
      return Number(taken[0]);
    }
    let samples;
    if (pcm instanceof Int16Array) {
      samples = pcm;
    } else if (pcm instanceof Uint8Array) {
      if (pcm.length % 2) throw new RangeError('trunkline: PCM must be a whole number of 16-bit samples');
      samples =
        pcm.byteOffset % 2 === 0
          ? new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length / 2)
          : new Int16Array(Uint8Array.prototype.slice.call(pcm).buffer);
    } else {
      throw new TypeError('trunkline: play() takes an Int16Array or a Buffer of s16le samples');
    }
    const taken = [0];
    check(fns.trunkline_session_play(this.#h(), samples, samples.length, uint(rate, 'rate'), taken), 'play');
    return Number(taken[0]);
  }

  /**
   * Queues encoded agent audio (a Buffer/Uint8Array), decoded on this thread and then played as
   * play() plays PCM. `codec` 'ogg_opus' (the default): an Ogg Opus stream in chunks of any size
   * as it arrives; 'opus': one raw Opus packet per call from a stream encoded at `rate` Hz
   * (default 48000). Returns the bytes taken: keep the rest and retry later. Throws TrunklineError
   * FULL if nothing was taken, BAD_AUDIO for corrupt or unsupported input (the stream is dropped;
   * the next bytes start a new one).
   */
  playEncoded(data, { codec = 'ogg_opus', rate = 48000 } = {}) {
    if (!(data instanceof Uint8Array)) throw new TypeError('trunkline: playEncoded() takes a Buffer or Uint8Array');
    const value = CODECS[codec];
    if (value === undefined) throw new TypeError(`trunkline: unknown codec ${JSON.stringify(codec)}: 'ogg_opus' or 'opus'`);
    const taken = [0];
    check(fns.trunkline_session_play_encoded(this.#h(), value, data, data.length, uint(rate, 'rate'), taken), 'playEncoded');
    return Number(taken[0]);
  }

  /**
   * The encoded input is over (a reply's stream ended): plays what playEncoded() still holds and
   * starts the next bytes as a new stream. Throws TrunklineError FULL while decoded audio waits
   * for room (call again), BAD_AUDIO if the stream was cut mid-page.
   */
  endEncoded() {
    check(fns.trunkline_session_end_encoded(this.#h()), 'endEncoded');
  }

  /** Places a mark after the audio played so far (a mark_played or mark_cleared event follows). */
  mark(name) {
    if (typeof name !== 'string') throw new TypeError('trunkline: mark() takes a string');
    if (name.includes('\0')) throw new TrunklineError(RESULT.INVALID_ARGUMENT, 'mark name contains NUL');
    check(fns.trunkline_session_mark(this.#h(), name), 'mark');
  }

  /** Stops the agent: queued audio is dropped, `clear` is sent, an `interrupted` event follows. */
  interrupt() {
    check(fns.trunkline_session_interrupt(this.#h()), 'interrupt');
  }

  /**
   * Begins a segment tagged `tag` (1 to 63 bytes of UTF-8): the agent audio played after this
   * belongs to it, until the next beginSegment(). `barge_in` and `interrupted` events then say
   * which segment the caller was hearing (`segment`), how much of it (`segmentPlayedMs`), and
   * which later ones went unheard (`unheardSegments`); they end every segment. Throws
   * TrunklineError INVALID_ARGUMENT for a bad tag, FULL when 32 segments are queued that the
   * caller has not got past yet (nothing taken: retry once playout has moved on).
   */
  beginSegment(tag) {
    if (typeof tag !== 'string') throw new TypeError('trunkline: beginSegment() takes a string');
    if (tag.includes('\0')) throw new TrunklineError(RESULT.INVALID_ARGUMENT, 'segment tag contains NUL');
    check(fns.trunkline_session_begin_segment(this.#h(), tag), 'beginSegment');
  }

  /**
   * Agent audio accepted by play() that the caller has not heard yet, ms: waiting in the engine
   * and at the carrier (by the engine's playout model, corrected with the carrier's echoes).
   */
  get queuedMs() {
    const out = [0];
    check(fns.trunkline_session_queued_ms(this.#h(), out), 'queuedMs');
    return Number(out[0]);
  }

  /**
   * The carrier's connection closed: the stream ends as with a stop message (marks resolved, then
   * `stopped`). Carriers that send no stop (Plivo, Vonage, jambonz, AudioSocket without its
   * hang-up) end this way. Does nothing once the stream has ended.
   */
  endStream() {
    check(fns.trunkline_session_end_stream(this.#h()), 'endStream');
  }

  /**
   * Every message to send to the carrier now, in order: strings for text frames, Buffers for
   * binary ones. Send them right away: the engine paces them.
   */
  outbound() {
    const messages = [];
    const len = [0];
    const kind = [0];
    for (;;) {
      const code = fns.trunkline_session_next_outbound(this.#h(), this.#out, this.#out.length, len, kind);
      if (code === RESULT.EMPTY) return messages;
      if (code === RESULT.BUFFER_TOO_SMALL) {
        check(fns.trunkline_session_outbound_len(this.#h(), len), 'outbound');
        this.#out = Buffer.alloc(Number(len[0]));
        continue;
      }
      check(code, 'outbound');
      const n = Number(len[0]);
      messages.push(kind[0] === TEXT ? this.#out.toString('utf8', 0, n) : Buffer.from(this.#out.subarray(0, n)));
    }
  }

  /** Every event since the last call, in order. */
  events() {
    const events = [];
    for (let ev; (ev = this.#pollEvent()) !== null; ) events.push(ev);
    return events;
  }

  /** The next event, or null when none is ready. */
  #pollEvent() {
    const code = fns.trunkline_session_poll_event(this.#h(), this.#event);
    if (code === RESULT.EMPTY) return null;
    check(code, 'events');
    return this.#convert(this.#event);
  }

  #convert(ev) {
    const kind = EVENT_KINDS[ev.kind] ?? `unknown(${ev.kind})`;
    const event = {
      kind,
      streamMs: Number(ev.stream_ms),
      playedMs: Number(ev.played_ms),
      digit: ev.digit ? String.fromCharCode(ev.digit & 0xff) : '',
      durationMs: kind === 'dtmf' && ev.duration_ms >= 0 ? Number(ev.duration_ms) : null,
      silenceMs: kind === 'end_of_turn' ? Number(ev.duration_ms) : null,
      confidence: kind === 'end_of_turn' ? Number(ev.confidence) : null,
      name: ev.name,
      errorCode: ev.error,
      errorMessage: ev.error ? fns.trunkline_protocol_error_message(ev.error) : '',
      segment: null,
      segmentPlayedMs: null,
      unheardSegments: [],
    };
    if (kind === 'started') this.#fillStart(event);
    if (kind === 'barge_in' || kind === 'interrupted') {
      event.segment = ev.segment || null;
      event.segmentPlayedMs = ev.segment_played_ms >= 0 ? Number(ev.segment_played_ms) : null;
      // Read now: the library keeps these tags only until the next such event is polled.
      event.unheardSegments = this.#unheardSegments(ev.unheard_segments);
    }
    return event;
  }

  #unheardSegments(count) {
    const tags = [];
    const n = [0];
    for (let i = 0; i < count; i++) {
      check(fns.trunkline_session_unheard_segment(this.#h(), i, this.#segmentTag, this.#segmentTag.length, n), 'unheard segment');
      tags.push(this.#segmentTag.toString('utf8', 0, Number(n[0])));
    }
    return tags;
  }

  #fillStart(event) {
    const info = { struct_size: START_INFO_SIZE };
    check(fns.trunkline_session_start_info(this.#h(), info), 'start info');
    event.callId = this.#startString(START_FIELD.TRUNKLINE_START_FIELD_CALL_ID);
    event.streamId = this.#startString(START_FIELD.TRUNKLINE_START_FIELD_STREAM_ID);
    event.accountId = this.#startString(START_FIELD.TRUNKLINE_START_FIELD_ACCOUNT_ID);
    event.customParameters = {};
    for (let i = 0; i < Number(info.custom_parameter_count); i++) {
      const [key, value] = this.#customParameter(i);
      event.customParameters[key] = value;
    }
    event.tracks = [];
    if (info.tracks & 1) event.tracks.push('inbound');
    if (info.tracks & 2) event.tracks.push('outbound');
    event.encoding = ENCODINGS[info.encoding] ?? `unknown(${info.encoding})`;
    event.sampleRate = info.sample_rate;
    event.channels = info.channels;
  }

  #startString(field) {
    const n = [0];
    for (let size = 64; ; size *= 4) {
      const buf = Buffer.alloc(size);
      const code = fns.trunkline_session_start_string(this.#h(), field, buf, size, n);
      if (code === RESULT.BUFFER_TOO_SMALL) continue;
      check(code, 'start string');
      return buf.toString('utf8', 0, Number(n[0]));
    }
  }

  #customParameter(index) {
    const kn = [0];
    const vn = [0];
    for (let size = 256; ; size *= 4) {
      const key = Buffer.alloc(size);
      const value = Buffer.alloc(size);
      const code = fns.trunkline_session_custom_parameter(this.#h(), index, key, size, kn, value, size, vn);
      if (code === RESULT.BUFFER_TOO_SMALL) continue;
      check(code, 'custom parameter');
      return [key.toString('utf8', 0, Number(kn[0])), value.toString('utf8', 0, Number(vn[0]))];
    }
  }

  /** Every counter by name (trunkline_session_stats_name order). After close(): the final counters. */
  stats() {
    if (this.#closed) return { ...this.#finalStats };
    return this.#readStats();
  }

  #readStats() {
    const values = new BigUint64Array(STATS_NAMES.length);
    const n = [0];
    check(fns.trunkline_session_stats(this.#ptr, values, values.length, n), 'stats');
    const out = {};
    for (let i = 0; i < Number(n[0]); i++) out[STATS_NAMES[i]] = Number(values[i]);
    return out;
  }

  /**
   * Yields (undefined) whenever the engine may have output for this session, starting at once;
   * drain what you need (readAudio, events, outbound) at each step. A wakeup that lands while
   * you drain is not lost, and a session is looked at least every 100 ms (20 ms inline) even
   * without one. Ends when the session or its engine is closed. Driven by
   * trunkline_engine_wait on a koffi worker thread.
   */
  async *wakeups() {
    while (!this.#closed && !this.#engine.closed) {
      const seen = this.#engine._wakeCount;
      yield;
      if (this.#closed || this.#engine.closed) return;
      // A wakeup since `seen` happened while the caller drained: look again at once.
      if (this.#engine._wakeCount === seen) await this.#nextWake();
    }
  }

  #nextWake() {
    return new Promise((resolve) => {
      const done = () => {
        cancel();
        this.#closeListeners.delete(done);
        resolve();
      };
      const cancel = this.#engine._poll(done);
      this.#closeListeners.add(done);
    });
  }

  /**
   * Events as they happen: `for await (const ev of session.eventStream())`. Ends after the
   * `stopped` event, or when the session or its engine is closed.
   */
  async *eventStream() {
    for await (const _ of this.wakeups()) {
      // One event taken from the library per step: a consumer that leaves the loop early leaves
      // the rest there for the next events() or eventStream().
      for (;;) {
        let ev;
        try {
          ev = this.#pollEvent();
        } catch (e) {
          if (e instanceof TrunklineError && e.code === RESULT.CLOSED) return;
          throw e;
        }
        if (ev === null) break;
        yield ev;
        if (ev.kind === 'stopped') return;
      }
    }
  }

  /** Ends the call and frees the session; later calls throw CLOSED (stats() still works). */
  close() {
    if (this.#closed) return;
    fns.trunkline_session_close(this.#ptr);
    this.#finalStats = this.#readStats();
    this.#closed = true;
    sessionFinalizer.unregister(this);
    fns.trunkline_session_free(this.#ptr);
    for (const done of [...this.#closeListeners]) done();
  }
}

/**
 * An offload server: Trunkline as the carrier's WebSocket endpoint (Twilio Media Streams). It
 * answers the carrier's connections on its own network threads, checks the path and (with
 * `authToken`) the X-Twilio-Signature, and runs each call on the engine. Calls whose stream has
 * started come out of `accept()` (or `calls()`) as Sessions with the usual agent-side API
 * (readAudio, play, mark, interrupt, events, stats); the server drives their carrier side, so
 * their push() and outbound() throw INVALID_ARGUMENT (the server sends what the engine writes).
 *
 * Create it with `engine.serve(options)` or `new Server(engine, options)`; end it with
 * `await shutdown(graceMs)` (lets live calls finish) and/or `close()`.
 */
class Server {
  #ptr;
  #engine;
  #port;
  #agentRate;
  #closed = false; // close() was called
  #shutDown = false; // shutdown() was called
  #blocking = 0; // drain() and shutdown() calls running on koffi workers: the free waits for them
  #freed = false;
  #listeners = new Set(); // calls(): woken by close() and shutdown()

  constructor(engine, options = {}) {
    if (!(engine instanceof Engine)) throw new TypeError('trunkline: new Server(engine, options) needs an Engine');
    const config = serverConfig(options);
    const out = [null];
    check(fns.trunkline_server_start(engine._handle(), config, out), 'server');
    this.#ptr = out[0];
    this.#engine = engine; // keeps the engine alive as long as the server
    this.#agentRate = (config.session ?? defaultSessionConfig()).agent_rate;
    engine._addServer(this);
    serverFinalizer.register(this, this.#ptr, this);
    const port = [0];
    check(fns.trunkline_server_local_port(this.#ptr, port), 'server port');
    this.#port = port[0];
  }

  // CLOSED once shutdown() has begun (its native call may still be on its way to the library).
  #h(what) {
    if (this.#closed || this.#shutDown) throw new TrunklineError(RESULT.CLOSED, what);
    return this.#ptr;
  }

  /** The TCP port the server listens on (the one picked when `bind` asked for port 0). */
  get port() {
    return this.#port;
  }

  /** The engine the server runs its calls on. */
  get engine() {
    return this.#engine;
  }

  /** Whether close() was called. */
  get closed() {
    return this.#closed;
  }

  /**
   * The next call whose stream has started, as a Session you own (close it when the call ends),
   * or null when there is none. Throws TrunklineError CLOSED after shutdown() or close().
   */
  accept() {
    const out = [null];
    const code = fns.trunkline_server_accept(this.#h('accept'), out);
    if (code === RESULT.EMPTY) return null;
    check(code, 'accept');
    return new Session(this.#engine, out[0], this.#agentRate);
  }

  /**
   * Calls as they arrive: `for await (const call of server.calls())`. New calls signal the
   * engine's wakeup, which this waits on (off the main thread, like Session.wakeups()); ends when
   * the server is shut down or closed, or its engine closed.
   */
  async *calls() {
    while (!this.#closed && !this.#shutDown && !this.#engine.closed) {
      const seen = this.#engine._wakeCount;
      const call = this.accept();
      if (call) {
        yield call;
        continue;
      }
      if (this.#engine._wakeCount !== seen) continue;
      await new Promise((resolve) => {
        const done = () => {
          cancel();
          this.#listeners.delete(done);
          resolve();
        };
        const cancel = this.#engine._poll(done);
        this.#listeners.add(done);
      });
    }
  }

  /**
   * Also listens for Asterisk AudioSocket on `bind` (plain TCP, e.g. '0.0.0.0:9092'; port 0: any
   * free one) and returns the port. Its calls speak the `audiosocket` dialect with the server's
   * other session settings and come out of accept()/calls() like the others, once their first
   * audio arrives. AudioSocket has no authentication: a connection is taken only if its first
   * message names an allowed call UUID (`allowedCalls`, and allowAudioSocketCall()); the others
   * are closed and counted in stats().rejected_audiosocket_call. Throws TrunklineError
   * INVALID_ARGUMENT for a bad address or a string that is not a UUID (then nothing is allowed or
   * bound), IO if the address cannot be bound, CLOSED after shutdown() or close().
   */
  listenAudioSocket(bind = '127.0.0.1:0', allowedCalls = []) {
    if (!Array.isArray(allowedCalls)) throw new TypeError('trunkline: allowedCalls must be an array of UUID strings');
    const uuids = allowedCalls.map((uuid, i) => stringOption(uuid, `allowedCalls[${i}]`));
    const port = [0];
    const code = fns.trunkline_server_listen_audiosocket(
      this.#h('listenAudioSocket'),
      stringOption(bind, 'bind'),
      uuids.length ? uuids : null,
      uuids.length,
      port,
    );
    check(code, 'listenAudioSocket');
    return port[0];
  }

  /**
   * Allows AudioSocket connections for call `uuid` (e.g. '40325ec2-5efd-4bd3-805f-53576e581d13',
   * any case, hyphens optional) until revoked: register a call before handing it to Asterisk.
   * Throws TrunklineError INVALID_ARGUMENT for a string that is not a UUID.
   */
  allowAudioSocketCall(uuid) {
    check(fns.trunkline_server_allow_audiosocket_call(this.#h('allowAudioSocketCall'), stringOption(uuid, 'uuid')), 'allowAudioSocketCall');
  }

  /** Stops allowing new AudioSocket connections for call `uuid` (a live one goes on); whether it was allowed. */
  revokeAudioSocketCall(uuid) {
    const was = [false];
    const code = fns.trunkline_server_revoke_audiosocket_call(this.#h('revokeAudioSocketCall'), stringOption(uuid, 'uuid'), was);
    check(code, 'revokeAudioSocketCall');
    return Boolean(was[0]);
  }

  /**
   * The server's counters by name (SERVER_STATS_NAMES: connections, accepted, the refusals by
   * reason, failures and timeouts, calls opened and refused, closed, active). Throws
   * TrunklineError CLOSED after shutdown() or close().
   */
  stats() {
    const values = new BigUint64Array(SERVER_STATS_NAMES.length);
    const n = [0];
    check(fns.trunkline_server_stats(this.#h('server stats'), values, values.length, n), 'server stats');
    const out = {};
    for (let i = 0; i < Number(n[0]); i++) out[SERVER_STATS_NAMES[i]] = Number(values[i]);
    return out;
  }

  /**
   * Whether the server takes new calls now, as its `/readyz` answers (200 when true): not
   * draining, and below `maxSessions`. Throws TrunklineError CLOSED after shutdown() or close().
   */
  get ready() {
    const out = [false];
    check(fns.trunkline_server_ready(this.#h('ready'), out), 'ready');
    return Boolean(out[0]);
  }

  /**
   * Drains the server, e.g. on SIGTERM before a restart: at once it takes no new calls (`/readyz`
   * answers 503, a WebSocket upgrade gets 503) while `/metrics` and `/healthz` go on; live calls
   * go on for up to `graceMs` (until their stream stops or the carrier hangs up), then those left
   * are ended (their sessions get `stopped`). The blocking native drain runs on a koffi worker
   * thread, so the event loop keeps serving the live calls meanwhile (accept(), stats() and
   * `ready` work too). Resolves, once every call has ended or `graceMs` plus 2 s have passed, to
   * whether they all did (calls ended at the grace count as ended); rejects with TrunklineError
   * CLOSED after shutdown() or close(). Cannot be undone: shutdown() and/or close() afterwards.
   */
  drain(graceMs) {
    if (this.#closed || this.#shutDown) return Promise.reject(new TrunklineError(RESULT.CLOSED, 'drain'));
    const grace = graceMilliseconds(graceMs);
    return new Promise((resolve, reject) => {
      const allEnded = [false];
      this.#startBlocking(reject, () => fns.trunkline_server_drain.async(this.#ptr, grace, allEnded, (err, code) => {
        this.#blockingReturned();
        if (err) reject(err);
        // close() shut the server down before this drain began: that ended every call.
        else if (code === RESULT.CLOSED && this.#closed) resolve(true);
        else if (code !== RESULT.OK) reject(new TrunklineError(code, 'drain'));
        else resolve(Boolean(allEnded[0]));
      }));
    });
  }

  /**
   * Stops accepting connections, lets live calls go on for up to `graceMs` (until their stream
   * stops or the carrier hangs up), then closes the rest. The blocking native shutdown runs on a
   * koffi worker thread, so the event loop keeps serving those calls meanwhile; the promise
   * resolves when it is done, and rejects with TrunklineError CLOSED if the server was already
   * shut down or closed. Call close() afterwards (or not: close() is also done by Engine.close()).
   */
  shutdown(graceMs = 0) {
    if (this.#closed || this.#shutDown) return Promise.reject(new TrunklineError(RESULT.CLOSED, 'shutdown'));
    const grace = graceMilliseconds(graceMs);
    this.#wakeListeners();
    return this.#startShutdown(grace);
  }

  /** Starts the native shutdown with `grace` ms (counted in #blocking); resolves when it is done. */
  #startShutdown(grace) {
    this.#shutDown = true;
    return new Promise((resolve, reject) => {
      this.#startBlocking(reject, () =>
        fns.trunkline_server_shutdown.async(this.#ptr, grace, (err, code) => {
          this.#blockingReturned();
          if (err) reject(err);
          else if (code !== RESULT.OK) reject(new TrunklineError(code, 'shutdown'));
          else resolve();
        }),
      );
    });
  }

  /**
   * Shuts the server down at once (if shutdown() was not called: live calls are cut, a running
   * drain()'s too, without waiting for its grace) and frees it. Sessions already accepted stay
   * yours (they report the end of their stream). While a drain() or shutdown() is running, the
   * free waits for it to return. It runs on the event
   * loop: with calls still live it waits (up to about 3 s) for their connections to close, so
   * `await shutdown(graceMs)` first (which runs off the loop) when the loop must not stall.
   */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    serverFinalizer.unregister(this);
    this.#wakeListeners();
    // trunkline_server_free must not race with a drain or shutdown running on a koffi worker.
    if (this.#blocking === 0) {
      this.#free();
      return;
    }
    if (!this.#shutDown) {
      // A drain is running: its calls end now, not at its grace (a shutdown may run alongside
      // it, and completes once the drain has returned); the free follows both.
      this.#startShutdown(0).catch(() => {});
    }
  }

  /**
   * Starts a blocking native call (`start`), counted in #blocking until it returns; if koffi
   * refuses to start it (too many async calls in the process), takes the count back (so close()
   * still frees the server) and hands the error to `reject`.
   */
  #startBlocking(reject, start) {
    this.#blocking++;
    try {
      start();
    } catch (e) {
      this.#blockingReturned();
      reject(e);
    }
  }

  #blockingReturned() {
    this.#blocking--;
    if (this.#closed && this.#blocking === 0) this.#free(); // close() deferred the free until now
  }

  #free() {
    if (this.#freed) return;
    this.#freed = true;
    fns.trunkline_server_free(this.#ptr);
    this.#engine._serverFreed(this);
  }

  #wakeListeners() {
    for (const done of [...this.#listeners]) done();
  }
}

/** A grace period in ms for the native uint32_t. */
function graceMilliseconds(ms) {
  const grace = uint(ms, 'graceMs');
  if (grace >= 2 ** 32) throw new RangeError(`trunkline: graceMs must be below 2^32, got ${ms}`);
  return grace;
}

/**
 * An unsigned field of a C settings struct: koffi would keep the low bits of a value too large
 * for it (2^32 + 35 as 35), so a value the field cannot hold is refused as the library refuses
 * one out of the setting's range.
 */
function unsignedField(struct, field, value, what) {
  const n = uint(value, what);
  const bytes = struct.members[field].type.size;
  if (bytes < 8 && n >= 2 ** (8 * bytes)) {
    throw new TrunklineError(RESULT.INVALID_ARGUMENT, `${what} must be below 2^${8 * bytes}, got ${value}`);
  }
  return n;
}

function uint(value, what) {
  if (!Number.isInteger(value) || value < 0) {
    throw new TypeError(`trunkline: ${what} must be a non-negative integer, got ${value}`);
  }
  return value;
}

/** A signed option (an int32_t field): range checks beyond int32 are the library's. */
function int32(value, what) {
  if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) {
    throw new TypeError(`trunkline: ${what} must be a 32-bit integer, got ${value}`);
  }
  return value;
}

// ---- Logs.

/**
 * Writes Trunkline's logs to stderr, one line per event, filtered by `filter` in the RUST_LOG
 * syntax (e.g. 'trunkline=info', 'trunkline=debug', 'warn,trunkline_server=info'); null or
 * omitted: the TRUNKLINE_LOG environment variable, else 'trunkline=info'. Logged: the offload
 * server's calls (start, and end with the call's summary), refusals and failed calls with their
 * reason, drains; never a line per audio frame. Nothing is logged until this is called.
 *
 * Installs a logger for the whole process, once: returns true when it did, false when one was
 * already installed (nothing changes). Throws TrunklineError INVALID_ARGUMENT for a filter that
 * does not parse (the reason is written to stderr).
 */
function logToStderr(filter = null) {
  const code = fns.trunkline_log_to_stderr(stringOption(filter, 'filter'));
  if (code === RESULT.FULL) return false;
  check(code, 'logToStderr');
  return true;
}

// ---- G.711 helpers (the engine's tables: bit-exact with the reference).

function toBytes(input, what) {
  if (input instanceof Uint8Array) return input;
  throw new TypeError(`trunkline: ${what} takes a Buffer or Uint8Array of G.711 codes`);
}

function toSamples(input, what) {
  if (input instanceof Int16Array) return input;
  if (input instanceof Uint8Array) {
    if (input.length % 2) throw new RangeError(`trunkline: ${what}: PCM must be a whole number of 16-bit samples`);
    return input.byteOffset % 2 === 0
      ? new Int16Array(input.buffer, input.byteOffset, input.length / 2)
      : new Int16Array(Uint8Array.prototype.slice.call(input).buffer);
  }
  throw new TypeError(`trunkline: ${what} takes an Int16Array or a Buffer of s16le samples`);
}

function decoder(fn, what) {
  return (codes) => {
    const input = toBytes(codes, what);
    const out = new Int16Array(input.length);
    check(fn(input, input.length, out, out.length), what);
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  };
}

function encoder(fn, what) {
  return (pcm) => {
    const input = toSamples(pcm, what);
    const out = Buffer.alloc(input.length);
    check(fn(input, input.length, out, out.length), what);
    return out;
  };
}

/** µ-law codes (Buffer) → s16le PCM (Buffer, two bytes per code). */
const ulawDecode = decoder(fns.trunkline_ulaw_decode, 'ulawDecode');
/** s16le PCM (Buffer or Int16Array) → µ-law codes (Buffer, one byte per sample). */
const ulawEncode = encoder(fns.trunkline_ulaw_encode, 'ulawEncode');
/** A-law codes (Buffer) → s16le PCM (Buffer). */
const alawDecode = decoder(fns.trunkline_alaw_decode, 'alawDecode');
/** s16le PCM (Buffer or Int16Array) → A-law codes (Buffer). */
const alawEncode = encoder(fns.trunkline_alaw_encode, 'alawEncode');

// ---- The VAD on its own.

/** camelCase option name → snake_case field of trunkline_vad_config (the session's VAD names). */
const VAD_FIELDS = new Map(
  Object.keys(TYPES.trunkline_vad_config.members)
    .filter((f) => !NOT_OPTIONS.has(f))
    .map((f) => [camel(f), f]),
);
/** The sample rates a Vad accepts, Hz. */
const VAD_RATES = Object.freeze([8000, 16000, 24000, 48000]);

const vadFinalizer = new FinalizationRegistry((ptr) => fns.trunkline_vad_free(ptr));

/**
 * Trunkline's voice activity detector on its own: the classifier and speech state machine a session
 * runs, fed one 20 ms frame at a time (`frameSamples` samples: 160 at 8 kHz, 320 at 16 kHz ...).
 *
 * `new Vad({ sampleRate: 16000, vadHangoverMs: 600 })`. `sampleRate` is 8000 (the default), 16000,
 * 24000 or 48000; the other options are the session's VAD options, by the same names:
 * `vadAggressiveness` (0..3, default 2), `vadMinSpeechMs` (default 120: voiced speech needed before
 * `speaking` turns on), `vadHangoverMs` (default 400: non-speech needed before it turns off). A bad
 * rate or setting throws TrunklineError (INVALID_ARGUMENT). Call `close()` when done.
 */
class Vad {
  #ptr;
  #closed = false;
  #speaking = false;
  #probability = [0];
  #speakingOut = [false];

  constructor(options = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('trunkline: Vad options must be an object');
    const { sampleRate = 8000, ...settings } = options;
    const config = {};
    check(fns.trunkline_vad_config_default(config, TYPES.trunkline_vad_config.size), 'vad config');
    for (const [key, value] of Object.entries(settings)) {
      const field = VAD_FIELDS.get(key);
      if (!field) throw new TypeError(`trunkline: unknown Vad option ${JSON.stringify(key)}`);
      if (value === undefined) continue;
      config[field] = uint32Option(value, key);
    }
    const out = [null];
    check(fns.trunkline_vad_new(config, uint32Option(sampleRate, 'sampleRate'), out), 'Vad');
    this.#ptr = out[0];
    /** The sample rate, Hz. */
    this.sampleRate = sampleRate;
    /** Samples in one frame: 20 ms at the sample rate. */
    this.frameSamples = sampleRate / 50;
    vadFinalizer.register(this, this.#ptr, this);
  }

  #handle(what) {
    if (this.#closed) throw new TrunklineError(RESULT.CLOSED, what);
    return this.#ptr;
  }

  /** True while speech is confirmed (after the last frame): a session's speech_started .. speech_stopped. */
  get speaking() {
    return this.#speaking;
  }

  /**
   * Takes the next 20 ms frame (an Int16Array, or a Buffer of s16le samples) and returns its speech
   * probability: 1 if the classifier called the frame speech, else 0 (it decides on thresholds; it
   * has no calibrated score). Updates `speaking`. Another length throws TrunklineError
   * (INVALID_ARGUMENT); nothing is taken.
   */
  process(pcm) {
    const samples = toSamples(pcm, 'Vad.process');
    check(fns.trunkline_vad_process(this.#handle('Vad.process'), samples, samples.length, this.#probability, this.#speakingOut), 'Vad.process');
    this.#speaking = Boolean(this.#speakingOut[0]);
    return this.#probability[0];
  }

  /** Forgets everything (speech state, noise floor): the next frame starts a new stream. */
  reset() {
    check(fns.trunkline_vad_reset(this.#handle('Vad.reset')), 'Vad.reset');
    this.#speaking = false;
  }

  /** Frees the detector (idempotent); later calls throw TrunklineError (CLOSED). */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    vadFinalizer.unregister(this);
    fns.trunkline_vad_free(this.#ptr);
    this.#ptr = null;
  }
}

/** A uint32_t option: range checks beyond that are the library's. */
function uint32Option(value, what) {
  if (!Number.isInteger(value)) throw new TypeError(`trunkline: ${what} must be an integer, got ${value}`);
  if (value < 0 || value >= 2 ** 32) {
    throw new TrunklineError(RESULT.INVALID_ARGUMENT, `${what} must be an integer in 0..2^32-1, got ${value}`);
  }
  return value;
}

module.exports = {
  Engine,
  Session,
  Server,
  Vad,
  VAD_RATES,
  TrunklineError,
  RESULT,
  PROTOCOL_ERROR,
  STATS_NAMES,
  SERVER_STATS_NAMES,
  MAX_MARK_NAME_BYTES: DEFINES.TRUNKLINE_MAX_NAME_BYTES,
  ulawDecode,
  ulawEncode,
  alawDecode,
  alawEncode,
  logToStderr,
  version: libraryVersion,
  libraryPath: libraryFile,
};
