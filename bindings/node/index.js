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
const ENCODINGS = { 0: 'audio/x-mulaw', 1: 'audio/x-alaw', 2: 'audio/x-l16' };

const STATS_NAMES = (() => {
  const names = [];
  const count = Number(fns.trunkline_stats_count());
  for (let i = 0; i < count; i++) names.push(fns.trunkline_stats_name(i));
  return Object.freeze(names);
})();

const camel = (snake) => snake.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
/** camelCase option name → snake_case field of trunkline_session_config. */
const SESSION_FIELDS = new Map(Object.keys(TYPES.trunkline_session_config.members).map((f) => [camel(f), f]));

/** Longest a single native wait lasts; bounds how long close() defers freeing the engine. */
const WAIT_SLICE_MS = 100;
/** Inline engines have no worker to signal the wakeup: their waiters are polled this often. */
const INLINE_POLL_MS = 20;

// The C handles are freed if their JS objects are garbage collected without close().
const sessionFinalizer = new FinalizationRegistry((ptr) => fns.trunkline_session_free(ptr));
const engineFinalizer = new FinalizationRegistry((ptr) => fns.trunkline_engine_free(ptr));

/**
 * An engine: worker threads shared by many sessions, plus one wakeup signal.
 *
 * `new Engine()` starts one worker per core; `{ workers: 0 }` runs inline (your calls do the
 * processing). Call `close()` when done.
 */
class Engine {
  #ptr;
  #closed = false;
  #waitInFlight = false;
  #waiters = new Set(); // wait(): resolved by a wakeup
  #pollers = new Set(); // wakeups(): called by a wakeup or at the end of a slice
  #wakeCount = 0;

  constructor({ workers, maxSessions, tickMs } = {}) {
    const config = {};
    check(fns.trunkline_engine_config_default(config), 'engine config');
    if (workers === undefined || workers === null) {
      config.workers_per_core = true;
    } else {
      config.workers_per_core = false;
      config.workers = uint(workers, 'workers');
    }
    if (maxSessions !== undefined) config.max_sessions = uint(maxSessions, 'maxSessions');
    if (tickMs !== undefined) config.tick_ms = uint(tickMs, 'tickMs');
    const out = [null];
    check(fns.trunkline_engine_new(config, out), 'engine');
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

  /** Opens a session (one call). Options are the C session config's fields in camelCase. */
  session(options = {}) {
    const config = {};
    check(fns.trunkline_session_config_default(config), 'session config');
    for (const [key, value] of Object.entries(options)) {
      const field = SESSION_FIELDS.get(key);
      if (!field) throw new TypeError(`trunkline: unknown session option ${JSON.stringify(key)}`);
      if (value === undefined) continue;
      config[field] = field === 'barge_in_enabled' ? Boolean(value) : uint(value, key);
    }
    const out = [null];
    check(fns.trunkline_session_open(this._handle(), config, out), 'session');
    return new Session(this, out[0], config.agent_rate);
  }

  /** The engine's wakeup fd (readable when some session has output), for native event loops. */
  get wakeupFd() {
    const out = [0];
    check(fns.trunkline_engine_wakeup_fd(this._handle(), out), 'wakeupFd');
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
   * Resolves true when some session of this engine may have output (audio, events, outbound
   * messages), false after `timeoutMs` (default: no timeout) or when the engine closes. The
   * blocking trunkline_engine_wait runs on a koffi worker thread, never on the event loop; one
   * native wait serves every waiter of the engine. A loop that drains sessions between waits
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
      if (timeoutMs !== undefined && timeoutMs !== null && timeoutMs >= 0) {
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
    fns.trunkline_engine_wait.async(this.#ptr, slice, (err, code) => {
      this.#waitInFlight = false;
      if (this.#closed) {
        // close() deferred the free until this native wait returned.
        fns.trunkline_engine_free(this.#ptr);
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
   * Stops the workers and frees the engine. Sessions still open then throw CLOSED (close them
   * too); pending wait()s resolve false and event streams end.
   */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    engineFinalizer.unregister(this);
    const waiting = [...this.#waiters, ...this.#pollers];
    this.#waiters.clear();
    this.#pollers.clear();
    for (const fn of waiting) fn(false);
    // trunkline_engine_free must not race with a wait on another thread: if one is running,
    // its completion frees the engine (within WAIT_SLICE_MS).
    if (!this.#waitInFlight) fns.trunkline_engine_free(this.#ptr);
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
  #event = {};
  #closeListeners = new Set();

  constructor(engine, ptr, agentRate) {
    this.#engine = engine; // keeps the engine alive as long as the session
    this.#ptr = ptr;
    /** Rate (Hz) of the caller audio readAudio() returns. */
    this.agentRate = agentRate;
    sessionFinalizer.register(this, ptr, this);
  }

  #h() {
    if (this.#closed) throw new TrunklineError(RESULT.CLOSED, 'session');
    return this.#ptr;
  }

  get closed() {
    return this.#closed;
  }

  /**
   * Hands one message received from the carrier to the engine: a string is a text frame, a
   * Buffer/Uint8Array a binary frame. Bad input is reported as a protocol_error event, not
   * thrown. Throws TrunklineError FULL when the engine is behind (nothing taken: retry later).
   */
  push(message) {
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
   * to catch up (off the main thread) instead of throwing, for at most `timeoutMs`.
   */
  async pushAsync(message, timeoutMs = 2000) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        return this.push(message);
      } catch (e) {
        if (!(e instanceof TrunklineError) || e.code !== RESULT.FULL || performance.now() >= deadline) throw e;
      }
      await this.#engine.wait(Math.max(1, Math.min(20, deadline - performance.now())));
    }
  }

  /** All caller audio ready now: s16le mono at the agent rate (an empty Buffer if none). */
  readAudio() {
    const chunks = [];
    const n = [0];
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
    for (;;) {
      const code = fns.trunkline_session_poll_event(this.#h(), this.#event);
      if (code === RESULT.EMPTY) return events;
      check(code, 'events');
      events.push(this.#convert(this.#event));
    }
  }

  #convert(ev) {
    const kind = EVENT_KINDS[ev.kind] ?? `unknown(${ev.kind})`;
    const event = {
      kind,
      streamMs: Number(ev.stream_ms),
      playedMs: Number(ev.played_ms),
      digit: ev.digit ? String.fromCharCode(ev.digit & 0xff) : '',
      name: ev.name,
      errorCode: ev.error,
      errorMessage: ev.error ? fns.trunkline_protocol_error_message(ev.error) : '',
    };
    if (kind === 'started') this.#fillStart(event);
    return event;
  }

  #fillStart(event) {
    const info = {};
    check(fns.trunkline_session_start_info(this.#h(), info), 'start info');
    event.callSid = this.#startString(START_FIELD.TRUNKLINE_START_FIELD_CALL_SID);
    event.streamSid = this.#startString(START_FIELD.TRUNKLINE_START_FIELD_STREAM_SID);
    event.accountSid = this.#startString(START_FIELD.TRUNKLINE_START_FIELD_ACCOUNT_SID);
    event.customParameters = {};
    for (let i = 0; i < Number(info.custom_parameter_count); i++) {
      const [key, value] = this.#customParameter(i);
      event.customParameters[key] = value;
    }
    event.tracks = [];
    if (info.tracks & 1) event.tracks.push('inbound');
    if (info.tracks & 2) event.tracks.push('outbound');
    event.mediaFormat = {
      encoding: ENCODINGS[info.encoding] ?? `unknown(${info.encoding})`,
      sampleRate: info.sample_rate,
      channels: info.channels,
    };
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

  /** Every counter by name (trunkline_stats_name order). After close(): the final counters. */
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
      let events;
      try {
        events = this.events();
      } catch (e) {
        if (e instanceof TrunklineError && e.code === RESULT.CLOSED) return;
        throw e;
      }
      for (const ev of events) {
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

function uint(value, what) {
  if (!Number.isInteger(value) || value < 0) {
    throw new TypeError(`trunkline: ${what} must be a non-negative integer, got ${value}`);
  }
  return value;
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

module.exports = {
  Engine,
  Session,
  TrunklineError,
  RESULT,
  PROTOCOL_ERROR,
  STATS_NAMES,
  MAX_MARK_NAME_BYTES: DEFINES.TRUNKLINE_MAX_NAME_BYTES,
  ulawDecode,
  ulawEncode,
  alawDecode,
  alawEncode,
  version: libraryVersion,
  libraryPath: libraryFile,
};
