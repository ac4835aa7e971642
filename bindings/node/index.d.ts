// Type declarations of the `trunkline` Node binding (index.js).

/// <reference types="node" />

/** Result codes of the C ABI (trunkline_result), by name. */
export declare const RESULT: Readonly<{
  OK: 0;
  NULL_PARAMETER: 1;
  INVALID_ARGUMENT: 2;
  PANIC: 3;
  FULL: 4;
  CLOSED: 5;
  EMPTY: 6;
  BUFFER_TOO_SMALL: 7;
  FAILED: 8;
  TOO_MANY_SESSIONS: 9;
  IO: 10;
  TIMEOUT: 11;
  BAD_AUDIO: 12;
  RECORD: 13;
}>;

export type ResultName = keyof typeof RESULT;

/** Protocol error codes (an event's `errorCode`) by name; new codes may be added. */
export declare const PROTOCOL_ERROR: Readonly<Record<string, number>>;

/** A failed call into the library. */
export declare class TrunklineError extends Error {
  constructor(code: number, context?: string);
  readonly name: 'TrunklineError';
  /** The trunkline_result value. */
  readonly code: number;
  /** Its name, e.g. 'FULL' ('UNKNOWN_<n>' for a code this binding does not know). */
  readonly codeName: ResultName | `UNKNOWN_${number}`;
}

export interface EngineOptions {
  /** Worker threads; omitted: one per core; 0: inline (your calls do the processing). */
  workers?: number;
  /** Most sessions open at once. */
  maxSessions?: number;
  /** Longest a worker sleeps while it has sessions, ms. */
  tickMs?: number;
  /**
   * Nice value the worker threads ask for, -20..19 (default -10); 0 leaves them alone. Without
   * CAP_SYS_NICE it may be refused, which is not an error: see `Engine.prioritisedWorkers`.
   */
  workerNice?: number;
  /**
   * An inline engine (`workers: 0`, else TrunklineError INVALID_ARGUMENT) on a clock of its own,
   * for deterministic tests and simulations: its time starts at 0 and moves only with
   * `Engine.advance(ms)`, so pacing, reorder waits, played positions and holds follow the time
   * set, never the time your calls take.
   */
  manualClock?: boolean;
}

/** Session settings: the C trunkline_session_config fields in camelCase (docs/settings.md). */
export interface SessionOptions {
  /** Rate of the caller PCM readAudio() returns: 8000, 16000 (default), 24000 or 48000. */
  agentRate?: 8000 | 16000 | 24000 | 48000;
  /**
   * The agent's audio format, both ways: 'pcm' (default), or 8 kHz G.711 'ulaw' / 'alaw' (with
   * agentRate 8000): readAudio() returns the codes and play(codes, 8000) takes them, passed
   * through untouched when the carrier speaks the same law. Speech services' names for them are
   * taken too ('mulaw', 'pcmu', 'g711_ulaw'; 'pcma', 'g711_alaw').
   */
  agentFormat?: 'pcm' | 'ulaw' | 'mulaw' | 'pcmu' | 'g711_ulaw' | 'alaw' | 'pcma' | 'g711_alaw' | number;
  /** The rate you usually play at (8000, 16000, 22050, 24000, 44100 or 48000). */
  playRate?: number;
  /** Speech detection's strictness, 0 (calls most audio speech) ..3 (the spectral classifier's thresholds). */
  vadAggressiveness?: number;
  vadMinSpeechMs?: number;
  vadHangoverMs?: number;
  bargeInEnabled?: boolean;
  bargeInMinSpeechMs?: number;
  /** Most agent audio the carrier holds unplayed, ms (at least 40). */
  leadMs?: number;
  syncMarkIntervalMs?: number;
  utteranceGapMs?: number;
  maxMessageBytes?: number;
  maxPayloadBytes?: number;
  reorderWindowMs?: number;
  maxGapFillMs?: number;
  inboundRingBytes?: number;
  playRingBytes?: number;
  outboundBufferMs?: number;
  agentRingMs?: number;
  outboundRingBytes?: number;
  eventCapacity?: number;
  maxMarkNameBytes?: number;
  maxPendingMarks?: number;
  /** How long after your last readAudio (event poll) you count as reading, ms: while you do, a full
   * caller PCM ring (event queue) holds the carrier's messages back (push then reports full)
   * instead of dropping; 0 drops at once. */
  readHoldMs?: number;
  /** The carrier's protocol, by name: 'twilio' (the default; null too). An unknown name throws
   * TrunklineError INVALID_ARGUMENT. */
  dialect?: string | null;
  /** A file the call is recorded to, in stereo (the caller left, the agent as heard right),
   * closed when the session is: '.wav' (16-bit PCM, 8 kHz), '.opus' or '.ogg' (Ogg Opus); null
   * (default): none. A file that cannot be created or another extension throws TrunklineError
   * RECORD. */
  recordPath?: string | null;
  /** While caller speech over the agent is not yet long enough to barge in, the agent audio not
   * yet sent is turned down this many dB, and back up if the speech stops short (default 18;
   * 0: off). */
  bargeInDuckDb?: number;
  /** Echo-aware speech detection, for lines that echo the agent's voice back: caller audio the
   * agent's echo explains is not taken for speech (default false). */
  vadEchoAware?: boolean;
  /** Report `end_of_turn` events: early when the speech ended like a finished phrase, else with
   * speech_stopped (default false). */
  vadEndOfTurnEnabled?: boolean;
  /** Silence after a finished-sounding phrase before its end_of_turn, ms (default 140; capped by
   * the hangover). */
  vadEndOfTurnMinSilenceMs?: number;
  /** Confidence, percent 1..99 (default 35), the prosody needs for an early end_of_turn; out of
   * range throws TrunklineError INVALID_ARGUMENT. */
  vadEndOfTurnThreshold?: number;
  /** Silence after an unfinished-sounding phrase before its end_of_turn, ms (whole 20 ms frames,
   * rounded up); 0 (default): the hangover, the end_of_turn coming with speech_stopped. Longer
   * than the hangover, it comes after speech_stopped, so a shorter pause inside a sentence does
   * not end the turn. Above 10000 throws TrunklineError INVALID_ARGUMENT. */
  vadEndOfTurnMaxSilenceMs?: number;
  /** On a noisy line, speech over the agent that stopped short of bargeInMinSpeechMs and speech
   * voiced again within this long of its last voiced frame count as one utterance, so an
   * interruption whose words the noise splits still barges in; ms (default 800; 0: off). Speech
   * heard clearly is never joined. Above 2000 throws TrunklineError INVALID_ARGUMENT. */
  bargeInRejoinWithinMs?: number;
  /** Deliver the caller's audio (readAudio) with the agent's own voice, echoed back on the line,
   * removed by an adaptive echo canceller (default false). Needs vadEchoAware: true, else
   * opening the session throws TrunklineError INVALID_ARGUMENT. The canceller works at 8 kHz:
   * from a wider carrier stream the agent then gets the band up to 3.9 kHz. Speech detection
   * hears the audio as received. */
  echoReduction?: boolean;
}

/** Offload server settings (the C trunkline_server_config fields in camelCase). */
export interface ServerOptions {
  /** Address to listen on, e.g. '0.0.0.0:8080' (default '127.0.0.1:0': any free port). */
  bind?: string;
  /** The one request path served, e.g. '/media' (default null: any path; others get 404). */
  path?: string | null;
  /** The account's auth token: when set, the carrier's request authentication is required and checked (Twilio: X-Twilio-Signature; 403 else). */
  authToken?: string | null;
  /** Public URL base Twilio connects to (e.g. 'wss://bot.example.com'), for the signature behind a proxy. */
  publicUrl?: string | null;
  /** Settings of every session (call) the server opens (null: the defaults). */
  session?: SessionOptions | null;
  /** Most concurrent calls; more are refused with 503. */
  maxSessions?: number;
  /** Largest WebSocket message accepted, bytes: 1 to 16 MiB. */
  maxMessageBytes?: number;
  /** Time allowed for the WebSocket handshake, ms. */
  handshakeTimeoutMs?: number;
  /** A connection that sends nothing for this long, or has not started its stream this long after connecting, is closed, ms. */
  idleTimeoutMs?: number;
  /**
   * Longest one send to the carrier may take, ms (> 0): a carrier that stops reading is closed
   * after it (its session gets `stopped`; counted in send_timeouts).
   */
  sendTimeoutMs?: number;
  /** Interval of pings to the carrier, ms (0: none). */
  pingIntervalMs?: number;
  /** Network threads. */
  threads?: number;
  /** TLS certificate chain (PEM file path): the server takes wss:// (and https:// for its health checks and metrics) only; null: plain ws://. Set both or neither. */
  tlsCertPem?: string | null;
  /** TLS private key (PEM file path). */
  tlsKeyPem?: string | null;
  /**
   * Request paths bound to dialects, for one server that takes several carriers. With routes, a
   * request is accepted only on a route's path and its call speaks the route's dialect (whatever
   * `session.dialect` says); `path` and `authToken` must then be null. TrunklineError
   * INVALID_ARGUMENT for an unknown dialect or auth, a path given twice or without its leading '/'.
   */
  routes?: Route[] | null;
}

/** A request path bound to a dialect (ServerOptions.routes). */
export interface Route {
  /** The request path, e.g. '/telnyx'. */
  path: string;
  /** The dialect of the calls on this path, e.g. 'telnyx'. */
  dialect: string;
  /** The carrier account's secret: requests on this path must then be authenticated with it (403 else). */
  authToken?: string | null;
  /** How, when not the carrier's default way: 'vonage_jwt' (Vonage's signed JWT). Needs `authToken`. */
  auth?: 'vonage_jwt' | null;
}

/** Server counters by name (SERVER_STATS_NAMES), e.g. connections, accepted, rejected_path, active. */
export type ServerStats = Record<string, number>;

export type EventKind =
  | 'connected'
  | 'started'
  | 'speech_started'
  | 'speech_stopped'
  | 'barge_in'
  | 'interrupted'
  | 'mark_played'
  | 'mark_cleared'
  | 'dtmf'
  | 'stopped'
  | 'protocol_error'
  | 'end_of_turn';

/** Fields every event has; those that do not apply to its kind are 0, '', null or []. */
interface EventFields {
  /** Stream time, ms (speech_started/stopped: the onset/end; barge_in; dtmf). */
  streamMs: number;
  /** Played position in the current agent utterance, ms (barge_in, interrupted, mark_played). */
  playedMs: number;
  /** The DTMF digit ('0'-'9', '*', '#', 'A'-'D'). */
  digit: string;
  /** How long the DTMF key was held, ms, on carriers that say (Vonage, Exotel, SignalWire,
   * jambonz); null on the others and for other events. */
  durationMs: number | null;
  /** end_of_turn: the silence waited after the speech that ended at `streamMs`, ms; null for
   * other events. */
  silenceMs: number | null;
  /** end_of_turn: how finished the phrase sounded, 0..100; null for other events. */
  confidence: number | null;
  /** Mark name (mark_played/cleared), call id (started), offending field (protocol_error). */
  name: string;
  /** Protocol error code (see PROTOCOL_ERROR). */
  errorCode: number;
  /** Its description. */
  errorMessage: string;
  /** barge_in, interrupted: the tag of the segment the caller was hearing (see
   * Session.beginSegment), or, when nothing queued had been heard yet, of the first one queued;
   * null when no segment was queued, and for other events. */
  segment: string | null;
  /** barge_in, interrupted: how much of `segment` the caller heard, ms (0: under a
   * millisecond); null when nothing of it was heard yet, and for other events. */
  segmentPlayedMs: number | null;
  /** barge_in, interrupted: the tags of the later segments the caller heard nothing of, in the
   * order begun; empty for other events. */
  unheardSegments: string[];
}

/** The carrier's audio encoding, from its `start` message. */
export type AudioEncoding = 'mulaw' | 'alaw' | 'l16' | 'g722' | 'opus';

/**
 * What a host that already read the carrier's `start` message (its framework parsed it to route
 * the call) learned from it, for engine.session's `start` option: the session's first event is
 * then `started`, the stream id is echoed to the carrier, and a `start` pushed again is a
 * protocol error (duplicate). Push the carrier's messages that follow. A format the dialect or
 * the engine cannot take throws TrunklineError INVALID_ARGUMENT; an unknown key, TypeError.
 */
export interface StreamStart {
  /** The carrier's stream identifier (Twilio streamSid): echoed in what goes back to it. */
  streamId?: string | null;
  /** The carrier's call identifier (Twilio callSid). */
  callId?: string | null;
  /** The carrier's account identifier (Twilio accountSid). */
  accountId?: string | null;
  /** Encoding of the carrier's audio (default 'mulaw'; 'ulaw' is taken too). */
  encoding?: AudioEncoding | 'ulaw';
  /** Sample rate of the carrier's audio, Hz (default 8000). */
  sampleRate?: number;
  /** Channels of the carrier's audio (default 1). */
  channels?: number;
  /** The call's custom parameters, in order. */
  customParameters?: Record<string, string>;
}

/** What the carrier announced when the stream started, whichever carrier it is. */
export interface StartedEvent extends EventFields {
  kind: 'started';
  /** The carrier's call identifier (Twilio callSid); '' when the carrier sends none. */
  callId: string;
  /** The carrier's stream identifier (Twilio streamSid). */
  streamId: string;
  /** The carrier's account identifier (Twilio accountSid); '' when the carrier sends none. */
  accountId: string;
  /** In the order the carrier sent them. */
  customParameters: Record<string, string>;
  tracks: Array<'inbound' | 'outbound'>;
  /** Encoding of the carrier's audio. */
  encoding: AudioEncoding;
  /** Sample rate of the carrier's audio, Hz. */
  sampleRate: number;
  /** Channels of the carrier's audio. */
  channels: number;
}

export interface OtherEvent extends EventFields {
  kind: Exclude<EventKind, 'started'>;
}

/** Something that happened in a call. */
export type Event = StartedEvent | OtherEvent;

/** Session counters by name (trunkline_session_stats_name), e.g. frames_out, barge_ins, protocol_errors. */
export type Stats = Record<string, number>;

/** An engine: worker threads shared by sessions, plus one wakeup signal. */
export declare class Engine {
  constructor(options?: EngineOptions);
  /** Whether the engine runs inline (no worker threads). */
  readonly inline: boolean;
  readonly closed: boolean;
  /** Whether the engine's time is set by advance() (`{ workers: 0, manualClock: true }`). */
  readonly manualClock: boolean;
  /**
   * Moves a manual clock forward by `ms` milliseconds (rounded to the nearest microsecond);
   * drain the sessions after it: with agent audio queued, each 20 ms releases one more media
   * frame. Throws RangeError for a negative step, TrunklineError INVALID_ARGUMENT on an engine
   * with the real clock.
   */
  advance(ms: number): void;
  /**
   * The engine's counters as Prometheus text (exposition format 0.0.4), or OpenMetrics 1.0 with
   * `{ openMetrics: true }`: calls, media frames, every session counter summed
   * (`trunkline_session_<name>_total`), latency, CPU per worker. With a Server on this engine,
   * scrape its own `/metrics` instead (this plus the server's counters). Throws CLOSED after
   * close().
   */
  metrics(options?: { openMetrics?: boolean }): string;
  /**
   * Opens a session (one call). Throws TypeError for an unknown option. With `start`, the session
   * behaves as one that parsed the carrier's `start` message (see StreamStart).
   */
  session(options?: SessionOptions & { start?: StreamStart | null }): Session;
  /**
   * Starts an offload server on this engine (it needs worker threads): Trunkline answers the
   * carrier's WebSocket itself. Same as `new Server(engine, options)`.
   */
  serve(options?: ServerOptions): Server;
  /** The engine's wakeup fd (readable when some session has output), for native event loops. */
  readonly wakeupFd: number;
  /**
   * How many workers run at the requested `workerNice` (all of them when it is 0; fewer when the
   * system refused it, e.g. without CAP_SYS_NICE; 0 for an inline engine).
   */
  readonly prioritisedWorkers: number;
  /** Resets the wakeup signal without blocking; true if it was set. */
  clearWakeup(): boolean;
  /**
   * Resolves true when some session may have output or wake() is called, false after `timeoutMs`
   * (default, Infinity, or beyond about 24.8 days: none) or when the engine closes. The blocking wait runs on a worker thread, never
   * the event loop.
   */
  wait(timeoutMs?: number): Promise<boolean>;
  /**
   * Makes every pending wait() resolve true (and wakeups()/calls() look again) now, as output
   * would; with none pending, the next wait() resolves true at once. Throws CLOSED after close().
   */
  wake(): void;
  /** Stops the workers and frees the engine; sessions left open then throw CLOSED. */
  close(): void;
}

/** One call. */
export declare class Session {
  private constructor();
  /** Rate (Hz) of the caller audio readAudio() returns. */
  readonly agentRate: number;
  /** The agent's audio format: readAudio() and play() carry G.711 bytes unless it is 'pcm'. */
  readonly agentFormat: 'pcm' | 'ulaw' | 'alaw';
  readonly closed: boolean;
  /**
   * Hands one carrier message to the engine: a string is a text frame, a Buffer a binary frame.
   * Bad input becomes a protocol_error event. Throws TrunklineError FULL when the engine is
   * behind (nothing taken: retry later), and while messages given to pushAsync still wait.
   */
  push(message: string | Uint8Array): void;
  /**
   * `push` that waits out FULL (for at most `timeoutMs`, default 2000) instead of throwing.
   * Calls made without awaiting the one before are taken in the order they were made.
   */
  pushAsync(message: string | Uint8Array, timeoutMs?: number): Promise<void>;
  /**
   * All caller audio ready now: s16le mono at the agent rate (empty when none); for a G.711 agent
   * (agentFormat 'ulaw' or 'alaw') its 8 kHz codes, a byte per sample.
   */
  readAudio(): Buffer;
  /**
   * Queues agent audio (mono s16: an Int16Array or an s16le Buffer) at `rate` Hz. Returns the
   * samples taken (keep the rest, retry later). Throws TrunklineError FULL if nothing fit.
   */
  play(pcm: Int16Array | Uint8Array, rate: number): number;
  /**
   * Queues encoded agent audio, decoded on this thread and played as play() plays PCM: an Ogg
   * Opus stream in chunks of any size (codec 'ogg_opus', the default), or one raw Opus packet per
   * call (codec 'opus', `rate` its stream's encoding rate, default 48000). Returns the bytes taken
   * (keep the rest, retry later). Throws TrunklineError FULL if nothing was taken, BAD_AUDIO for
   * corrupt or unsupported input (the stream is dropped; the next bytes start a new one).
   */
  playEncoded(data: Uint8Array, options?: { codec?: 'ogg_opus' | 'opus'; rate?: number }): number;
  /**
   * The encoded input is over: plays what playEncoded() still holds; the next bytes start a new
   * stream. Throws TrunklineError FULL while audio waits for room (call again), BAD_AUDIO if the
   * stream was cut mid-page.
   */
  endEncoded(): void;
  /** Places a mark after the audio played so far (mark_played or mark_cleared follows). */
  mark(name: string): void;
  /** The carrier's connection closed: the stream ends as with a stop message (for carriers that
   * send none: Plivo, Vonage, jambonz, AudioSocket without its hang-up). */
  endStream(): void;
  /** Stops the agent: drops queued audio, sends clear; an `interrupted` event follows. */
  interrupt(): void;
  /**
   * Begins a segment tagged `tag` (1 to 63 bytes of UTF-8): agent audio played after this belongs
   * to it until the next beginSegment(). barge_in and interrupted events then report `segment`,
   * `segmentPlayedMs` and `unheardSegments`, and end every segment. Throws TrunklineError
   * INVALID_ARGUMENT for a bad tag, FULL when 32 segments are queued that the caller has not got
   * past yet (nothing taken).
   */
  beginSegment(tag: string): void;
  /** Agent audio accepted by play() that the caller has not heard yet, ms (engine and carrier). */
  readonly queuedMs: number;
  /** Every message to send to the carrier now, in order: strings are text frames. */
  outbound(): Array<string | Buffer>;
  /** Every event since the last call, in order. */
  events(): Event[];
  /** Every counter by name; after close(), the final counters. */
  stats(): Stats;
  /** Yields whenever the engine may have output for this session; ends on close. */
  wakeups(): AsyncGenerator<void, void, undefined>;
  /** Events as they happen; ends after `stopped` or on close. */
  eventStream(): AsyncGenerator<Event, void, undefined>;
  /** Ends the call and frees the session. */
  close(): void;
}

/**
 * An offload server: Trunkline as the carrier's WebSocket endpoint. Calls whose stream has
 * started come out of accept()/calls() as Sessions; the server drives their carrier side, so
 * their push() and outbound() throw INVALID_ARGUMENT (the server sends what the engine writes).
 */
export declare class Server {
  /** Throws TrunklineError INVALID_ARGUMENT (inline engine, bad setting or address), IO (bind). */
  constructor(engine: Engine, options?: ServerOptions);
  /** The TCP port the server listens on. */
  readonly port: number;
  /** The engine the calls run on. */
  readonly engine: Engine;
  /** Whether close() was called. */
  readonly closed: boolean;
  /** The next call whose stream has started (yours to close), or null. CLOSED after shutdown. */
  accept(): Session | null;
  /** Calls as they arrive; ends on shutdown, close, or engine close. */
  calls(): AsyncGenerator<Session, void, undefined>;
  /**
   * Also listens for Asterisk AudioSocket on `bind` (plain TCP; default '127.0.0.1:0': any free
   * port) and returns the port. Its calls come out of accept()/calls() like the others. Only
   * connections naming an allowed call UUID (`allowedCalls`, allowAudioSocketCall()) are taken.
   * TrunklineError INVALID_ARGUMENT for a bad address or UUID, IO when it cannot bind.
   */
  listenAudioSocket(bind?: string, allowedCalls?: string[]): number;
  /** Allows AudioSocket connections for call `uuid` until revoked. INVALID_ARGUMENT if not a UUID. */
  allowAudioSocketCall(uuid: string): void;
  /** Stops allowing new AudioSocket connections for call `uuid`; whether it was allowed. */
  revokeAudioSocketCall(uuid: string): boolean;
  /** The server's counters by name. CLOSED after shutdown. */
  stats(): ServerStats;
  /** Whether the server takes new calls now (what `/readyz` answers). CLOSED after shutdown. */
  readonly ready: boolean;
  /**
   * Drains the server: no new calls from now on (`/readyz` and upgrades answer 503); live calls
   * go on for up to `graceMs`, then those left are ended. Runs off the event loop; resolves to
   * whether every call had ended by `graceMs` plus 2 s. Rejects with TrunklineError CLOSED after
   * shutdown or close. Cannot be undone.
   */
  drain(graceMs: number): Promise<boolean>;
  /**
   * Stops accepting, lets live calls go on for up to `graceMs` (default 0), then closes the rest;
   * runs off the event loop. Rejects with TrunklineError CLOSED when already shut down.
   */
  shutdown(graceMs?: number): Promise<void>;
  /**
   * Shuts down at once (if needed) and frees the server; accepted sessions stay yours. Runs on
   * the event loop: with calls still live it waits (up to about 3 s) for their connections to
   * close, so `await shutdown(graceMs)` first.
   */
  close(): void;
}

/** Counter names, in the library's order. */
export declare const STATS_NAMES: readonly string[];
/** Server counter names, in the library's order. */
export declare const SERVER_STATS_NAMES: readonly string[];
/** Longest mark name the C ABI carries, bytes. */
export declare const MAX_MARK_NAME_BYTES: number;

/** µ-law codes → s16le PCM (two bytes per code). */
export declare function ulawDecode(codes: Uint8Array): Buffer;
/** s16 PCM (Int16Array or s16le Buffer) → µ-law codes (one byte per sample). */
export declare function ulawEncode(pcm: Int16Array | Uint8Array): Buffer;
/** A-law codes → s16le PCM. */
export declare function alawDecode(codes: Uint8Array): Buffer;
/** s16 PCM → A-law codes. */
export declare function alawEncode(pcm: Int16Array | Uint8Array): Buffer;

/**
 * Writes Trunkline's logs (the offload server's calls, refusals, drains) to stderr, filtered in
 * the RUST_LOG syntax (null: $TRUNKLINE_LOG, else 'trunkline=info'). Installs a process-wide
 * logger once: true when it did, false when one already was. Throws TrunklineError
 * INVALID_ARGUMENT for a filter that does not parse.
 */
export declare function logToStderr(filter?: string | null): boolean;

/** The loaded library's version (trunkline_version()). */
export declare const version: string;
/** The library file in use ($TRUNKLINE_LIB or the workspace's release build). */
export declare const libraryPath: string;

/** Settings of a standalone Vad: the session's VAD options by the same names, plus the rate. */
export interface VadOptions {
  /** Rate of the PCM given to process(): 8000 (default), 16000, 24000 or 48000. */
  sampleRate?: 8000 | 16000 | 24000 | 48000;
  /** Aggressiveness 0..3 (default 2). */
  vadAggressiveness?: number;
  /** Voiced speech needed before `speaking` turns on, ms (default 120). */
  vadMinSpeechMs?: number;
  /** Non-speech needed before `speaking` turns off, ms (default 400). */
  vadHangoverMs?: number;
}

/**
 * Trunkline's voice activity detector on its own: the classifier and speech state machine a
 * session runs, fed one 20 ms frame at a time. A bad rate or setting throws TrunklineError
 * (INVALID_ARGUMENT).
 */
export declare class Vad {
  constructor(options?: VadOptions);
  /** The sample rate, Hz. */
  readonly sampleRate: number;
  /** Samples in one frame (20 ms at the sample rate). */
  readonly frameSamples: number;
  /** True while speech is confirmed (after the last frame). */
  readonly speaking: boolean;
  /**
   * Takes the next 20 ms frame and returns its speech probability: 1 if the classifier called it
   * speech, else 0. Another length throws TrunklineError (INVALID_ARGUMENT).
   */
  process(pcm: Int16Array | Uint8Array): number;
  /** Forgets everything: the next frame starts a new stream. */
  reset(): void;
  /** Frees the detector (idempotent); later calls throw TrunklineError (CLOSED). */
  close(): void;
}
/** The sample rates a Vad accepts, Hz. */
export declare const VAD_RATES: readonly number[];
