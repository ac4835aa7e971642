'use strict';
// A phone line to the OpenAI Realtime API, with Trunkline between the carrier and the model: the
// Node twin of examples/python/openai_realtime_bridge.py.
//
// Trunkline's offload server is the carrier's Media Streams endpoint (Twilio by default; any other
// Trunkline dialect with --dialect). For each call the bridge opens a Realtime WebSocket and:
//
// - sends the caller's audio as `input_audio_buffer.append` (base64);
// - plays the model's audio deltas (`response.output_audio.delta`, or the beta name
//   `response.audio.delta`) through `session.play()`, which paces them to the carrier. Each
//   response item's audio is a segment of its own (`session.beginSegment(itemId)`), so when the
//   caller interrupts, Trunkline says which item they were hearing and how much of it;
// - on every interruption sends `response.cancel` (if a response is in progress) and
//   `conversation.item.truncate` with that item and the milliseconds the caller actually heard,
//   never more than the audio received for it. Deltas of the cut response that arrive after the
//   cut are dropped, so no stale audio is played once the caller has taken the turn.
//
// Who decides that the caller interrupts:
//
// - by default Trunkline, locally (its barge-in: voiced speech over the agent's audio, so a cough
//   does not cut the agent off, and no round trip to the model first). The model's server VAD
//   still ends the caller's turns, but it is told neither to cancel a response itself
//   (`interrupt_response: false`) nor to start one (`create_response: false`): the bridge cancels
//   and truncates when Trunkline reports the barge-in, and asks for a response (`response.create`)
//   when the server commits a speech that was a turn, not for a cough or an "mm-hm" over the
//   agent, which would otherwise queue a second reply;
// - with --server-vad, the model: its `input_audio_buffer.speech_started` while the agent is
//   talking makes the bridge call `session.interrupt()`, and the `interrupted` event that follows
//   is handled as above. Trunkline's own barge-in is off then.
//
// Audio is 8 kHz G.711 µ-law both ways by default (`audio/pcmu`, the beta API's `g711_ulaw`),
// passed through: the session's agentFormat 'ulaw' makes readAudio() return the carrier's µ-law
// bytes exactly as they arrived, which go to the model base64-encoded as they are, and the model's
// delta bytes go to play(data, 8000) as they are, out in the carrier's frames untouched. The bridge
// decodes, encodes and resamples nothing, and neither does Trunkline on a µ-law carrier (Twilio,
// and the other carriers' µ-law streams); on another codec Trunkline converts at the edge. With
// --pcm, audio is 16-bit PCM at 24 kHz both ways (`audio/pcm`) and Trunkline converts to and from
// the carrier's codec. Barge-in, segments, truncation and the dropping of stale deltas work the
// same in both; only the truncate's ceiling counts at the format's rate (a µ-law byte is 1/8 ms).
// See AUDIO below.
//
//     OPENAI_API_KEY=... node examples/node/openai_realtime_bridge.js --bind 0.0.0.0:8080 \
//         [--path /media] [--auth-token TOKEN] [--dialect twilio] [--server-vad] [--pcm] [--url WSS_URL]
//
// --url (alias --realtime-url, else $OPENAI_REALTIME_URL) points at another Realtime endpoint.
// The carrier's stream URL is then wss://your-host/media (e.g. a Twilio
// <Connect><Stream url="wss://your-host/media"/>). The offload server also answers GET /healthz,
// GET /readyz and GET /metrics. On SIGTERM it drains: new calls are refused at once, live ones go
// on for up to the grace (--drain-grace, else $TRUNKLINE_DRAIN_GRACE_S, else 30 s), then the
// bridge exits.

const { parseArgs } = require('node:util');
const WebSocket = require('ws');
const { Engine, Server, TrunklineError, RESULT } = require('trunkline');

const DEFAULT_URL = 'wss://api.openai.com/v1/realtime?model=gpt-realtime';
const DEFAULT_VOICE = 'alloy';
const DEFAULT_INSTRUCTIONS = 'You are a helpful assistant on a phone call. Keep your answers short.';
/** How long live calls may go on after SIGTERM, seconds. */
const TRUNKLINE_DRAIN_GRACE_S = Number(process.env.TRUNKLINE_DRAIN_GRACE_S || 30);
/** The audio delta's name in the GA API and in the beta one. */
const AUDIO_DELTAS = new Set(['response.output_audio.delta', 'response.audio.delta']);
// Speech begun over the agent's audio that Trunkline did not call a barge-in is a turn only if the
// agent fell silent and the speech lasted this long (ms, by the server's VAD: more than a
// backchannel's).
const TURN_OVER_AGENT_MS = 600;

// ---- Audio format on the Realtime side -------------------------------------------------------
// The session's agent format and rate (its caller tap and play() run at them), the Realtime API's
// name for it, and the bytes per sample (the truncate's ceiling counts samples at `rate`).
/** The Realtime API's PCM rate, both ways (with --pcm). */
const RATE = 24000;
const AUDIO = {
  // 8 kHz µ-law, a byte per sample, passed through untouched (the default).
  ulaw: { agentFormat: 'ulaw', rate: 8000, width: 1, format: { type: 'audio/pcmu' } },
  // 16-bit PCM at 24 kHz, which Trunkline converts to and from the carrier's codec.
  pcm: { agentFormat: 'pcm', rate: RATE, width: 2, format: { type: 'audio/pcm', rate: RATE } },
};

/**
 * The Realtime session: `audio` both ways; the server's VAD ends turns, but never cancels a
 * response by itself (the bridge does, see the top of the file). With `serverVad` it also starts
 * the responses; else the bridge does, for the speech that was a turn.
 */
function sessionUpdate(voice = DEFAULT_VOICE, instructions = DEFAULT_INSTRUCTIONS, audio = AUDIO.ulaw, serverVad = false) {
  return {
    type: 'session.update',
    session: {
      type: 'realtime',
      instructions,
      audio: {
        input: {
          format: audio.format,
          turn_detection: { type: 'server_vad', create_response: serverVad, interrupt_response: false },
        },
        output: { format: audio.format, voice },
      },
    },
  };
}

/** One call: the Trunkline session on one side, the Realtime WebSocket on the other. */
class Bridge {
  constructor(call, realtime, serverVad, log, audio = AUDIO.ulaw) {
    this.call = call;
    this.realtime = realtime;
    this.serverVad = serverVad;
    this.log = log;
    this.audio = audio;
    this.responseId = null; // the response in progress (response.created .. done)
    // Model audio not yet taken by the engine, in order: { itemId, data }. play() takes what fits
    // now; the rest waits for the session's next wakeup.
    this.pending = [];
    this.begun = new Set(); // items whose segment has begun
    this.received = new Map(); // samples received per item: the truncate's ceiling
    // What an interruption cut: their deltas still in flight are dropped when they arrive.
    this.cutResponses = new Set();
    this.cutItems = new Set();
    // The caller's speech the server's VAD is hearing now (speech_started .. committed): where it
    // began (ms of the input audio), whether over the agent's audio, whether Trunkline called it a
    // barge-in, and where it ended.
    this.speech = { fromMs: 0, overAgent: false, cutIn: false, toMs: 0 };
  }

  send(event) {
    if (this.realtime.readyState === WebSocket.OPEN) this.realtime.send(JSON.stringify(event));
  }

  // Carrier -> model ----------------------------------------------------------------------------

  /**
   * Caller audio to the model, model audio to the engine, Trunkline's events; until the stream
   * stops (true) or the session is closed (false: the model's side ended the call).
   */
  async fromCarrier() {
    for await (const _ of this.call.wakeups()) {
      this.sendCallerAudio();
      this.feed();
      for (const ev of this.call.events()) {
        if (ev.kind === 'started') {
          this.log(`call ${ev.callId} started (${ev.encoding}, ${ev.sampleRate} Hz)`);
        } else if (ev.kind === 'barge_in' || ev.kind === 'interrupted') {
          this.onCut(ev);
        } else if (ev.kind === 'protocol_error') {
          this.log(`dropped a bad carrier message: ${ev.errorMessage}`);
        } else if (ev.kind === 'stopped') {
          this.sendCallerAudio(); // the last of it
          return true;
        }
      }
    }
    return false;
  }

  sendCallerAudio() {
    const audio = this.call.readAudio(); // µ-law: the carrier's bytes as they came
    if (audio.length) this.send({ type: 'input_audio_buffer.append', audio: audio.toString('base64') });
  }

  /** Hands the engine as much model audio as it takes now, each item in its own segment. */
  feed() {
    while (this.pending.length) {
      const head = this.pending[0];
      let taken;
      try {
        if (!this.begun.has(head.itemId)) {
          this.call.beginSegment(head.itemId);
          this.begun.add(head.itemId);
        }
        taken = this.call.play(head.data, this.audio.rate) * this.audio.width;
      } catch (e) {
        if (!(e instanceof TrunklineError) || e.code !== RESULT.FULL) throw e;
        return; // nothing fits now: the rest goes on the next wakeup
      }
      if (taken < head.data.length) {
        head.data = head.data.subarray(taken);
        return;
      }
      this.pending.shift();
    }
  }

  /**
   * The server's VAD ended a speech of the caller's (Trunkline mode): the model answers it if it
   * was a turn. Speech over the agent that Trunkline did not call a barge-in (a cough, an "mm-hm")
   * is none, unless it outlasted the agent's audio long enough to be one.
   */
  onCommitted() {
    const { fromMs, overAgent, cutIn, toMs } = this.speech;
    const turn = !overAgent || cutIn || (!this.agentTalking() && toMs - fromMs >= TURN_OVER_AGENT_MS);
    if (turn) this.send({ type: 'response.create' });
    else this.log(`${toMs - fromMs} ms of speech over the agent, not a barge-in: no reply`);
  }

  /**
   * The agent was cut off (Trunkline's barge-in, or our interrupt() on the server's VAD): the
   * engine already dropped what it had queued and sent the carrier's clear. Cancel the response,
   * drop its audio still to come, and tell the model how much of the item the caller heard.
   */
  onCut(ev) {
    this.speech.cutIn = true; // the speech the server is hearing is a turn
    this.stopModel();
    if (ev.segment !== null) {
      // null: nothing of it heard yet (the truncate then keeps none of it).
      this.truncate(ev.segment, ev.segmentPlayedMs ?? 0);
      // Later items queued behind it: the caller heard none of them.
      for (const itemId of ev.unheardSegments) this.truncate(itemId, 0);
    }
    this.log(`${ev.kind}: caller heard ${ev.segmentPlayedMs} ms of item ${ev.segment}`);
  }

  /**
   * Cancels the response in progress and drops its audio, queued here or still to come. Items
   * queued here that never reached the engine are truncated at 0: the caller heard none of them,
   * and the engine, which never had them, does not name them in the cut.
   */
  stopModel() {
    if (this.responseId !== null) {
      this.cutResponses.add(this.responseId);
      this.send({ type: 'response.cancel' });
      this.responseId = null;
    }
    const neverPlayed = new Set(this.pending.map((p) => p.itemId).filter((id) => !this.begun.has(id)));
    for (const { itemId } of this.pending) this.cutItems.add(itemId);
    this.pending = [];
    for (const itemId of neverPlayed) this.truncate(itemId, 0);
  }

  truncate(itemId, heardMs) {
    this.cutItems.add(itemId);
    // The model refuses a truncate past the audio it sent for the item.
    const ceiling = Math.floor(((this.received.get(itemId) ?? 0) * 1000) / this.audio.rate);
    this.send({
      type: 'conversation.item.truncate',
      item_id: itemId,
      content_index: 0,
      audio_end_ms: Math.min(heardMs, ceiling),
    });
  }

  // Model -> carrier ----------------------------------------------------------------------------

  onModelMessage(data) {
    const event = JSON.parse(data.toString('utf8'));
    const kind = event.type ?? '';
    if (AUDIO_DELTAS.has(kind)) {
      this.onAudio(event);
    } else if (kind === 'response.created') {
      this.responseId = event.response.id;
    } else if (kind === 'response.done') {
      if (this.responseId === event.response.id) this.responseId = null;
    } else if (kind === 'input_audio_buffer.speech_started') {
      const fromMs = event.audio_start_ms ?? 0;
      this.speech = { fromMs, overAgent: this.agentTalking(), cutIn: false, toMs: fromMs };
      if (this.serverVad && this.speech.overAgent) {
        // The engine reports `interrupted`, which onCut handles like a barge-in. Unlike a
        // barge-in, interrupt() keeps audio played after it: stop the cut response's audio here at
        // once, not when the event is polled, or deltas arriving meanwhile would play over the
        // caller.
        this.call.interrupt();
        this.stopModel();
      }
    } else if (kind === 'input_audio_buffer.speech_stopped') {
      this.speech.toMs = event.audio_end_ms ?? this.speech.fromMs;
    } else if (kind === 'input_audio_buffer.committed' && !this.serverVad) {
      this.onCommitted();
    } else if (kind === 'error') {
      this.log(`Realtime API error: ${JSON.stringify(event.error)}`);
    }
  }

  onAudio(event) {
    const itemId = event.item_id;
    // In flight when the caller cut the response off: never play it.
    if (this.cutItems.has(itemId) || this.cutResponses.has(event.response_id)) return;
    const data = Buffer.from(event.delta, 'base64'); // µ-law: played as it is
    this.received.set(itemId, (this.received.get(itemId) ?? 0) + Math.floor(data.length / this.audio.width));
    const last = this.pending[this.pending.length - 1];
    if (last && last.itemId === itemId) last.data = Buffer.concat([last.data, data]);
    else this.pending.push({ itemId, data });
    this.feed();
  }

  agentTalking() {
    return this.responseId !== null || this.pending.length > 0 || this.call.queuedMs > 0;
  }
}

/** Opens the Realtime WebSocket; resolves to it once open, rejects on failure. */
function connectRealtime(url, apiKey) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${apiKey}` }, handshakeTimeout: 10000 });
    ws.once('open', () => {
      ws.removeAllListeners('error');
      resolve(ws);
    });
    ws.once('error', reject);
  });
}

/** Bridges one call until either side ends it; the session is closed at the end. */
async function bridgeCall(call, { url, apiKey, serverVad, audio, voice, instructions, log }) {
  let realtime;
  try {
    realtime = await connectRealtime(url, apiKey);
  } catch (e) {
    // Closing the session makes the offload server hang up on the carrier.
    log(`cannot reach the Realtime API at ${url}: ${e.message}`);
    call.close();
    return;
  }
  const bridge = new Bridge(call, realtime, serverVad, log, audio);
  let modelEnded = false;
  let failure = null;
  // Either side ending ends the call: the carrier's stop, or the model's socket closing (which
  // closes the session, ending fromCarrier's loop).
  const endCall = (error) => {
    if (error && !failure) failure = error;
    if (!call.closed) call.close();
  };
  realtime.on('message', (data) => {
    if (call.closed) return;
    try {
      bridge.onModelMessage(data);
    } catch (e) {
      endCall(e);
    }
  });
  realtime.on('error', (e) => log(`Realtime socket error: ${e.message}`));
  realtime.on('close', () => {
    if (!call.closed) {
      modelEnded = true;
      endCall();
    }
  });
  bridge.send(sessionUpdate(voice, instructions, audio, serverVad));
  try {
    await bridge.fromCarrier();
  } catch (e) {
    failure = failure || e;
  } finally {
    call.close();
    if (realtime.readyState === WebSocket.OPEN || realtime.readyState === WebSocket.CONNECTING) realtime.close(1000);
  }
  if (failure) log(`call ended by an error: ${failure.stack || failure}`);
  if (modelEnded) log('the Realtime API closed the connection: ending the call');
}

/**
 * Starts the bridge: an engine and its offload server, each call bridged as it arrives (µ-law
 * passed through, or with `pcm` PCM at 24 kHz). Resolves
 * to { port, drain(graceMs) } once listening; drain() takes no new calls, lets the live ones go on
 * for up to graceMs, frees everything and resolves to whether every call ended within the grace.
 */
async function startBridge({
  bind = '127.0.0.1:8080',
  url = DEFAULT_URL,
  apiKey,
  path = '/media',
  authToken = null,
  dialect = 'twilio',
  serverVad = false,
  pcm = false,
  voice = DEFAULT_VOICE,
  instructions = DEFAULT_INSTRUCTIONS,
  log = console.log,
} = {}) {
  const audio = pcm ? AUDIO.pcm : AUDIO.ulaw;
  const engine = new Engine();
  let server;
  try {
    server = new Server(engine, {
      bind,
      path,
      authToken,
      session: {
        agentFormat: audio.agentFormat,
        agentRate: audio.rate,
        dialect,
        bargeInEnabled: !serverVad,
        agentRingMs: 2000, // room for the caller's audio should the loop fall behind
      },
    });
  } catch (e) {
    engine.close();
    throw e;
  }
  log(`listening on ${bind.slice(0, bind.lastIndexOf(':'))}:${server.port}${path ?? ''} (${dialect}, ${audio.format.type})`);
  const calls = new Set();
  // The calls loop goes on while draining: a call whose stream had started just before is taken.
  const accepting = (async () => {
    for await (const call of server.calls()) {
      const ended = bridgeCall(call, { url, apiKey, serverVad, audio, voice, instructions, log })
        .catch((e) => log(`call failed: ${e.stack || e}`))
        .finally(() => calls.delete(ended));
      calls.add(ended);
    }
  })();

  async function drain(graceMs) {
    log(`draining: ${calls.size} live call(s), up to ${Math.round(graceMs / 1000)} s`);
    const ended = await server.drain(graceMs);
    // The calls cut at the grace see `stopped` and end themselves; give them a moment to.
    let timer;
    await Promise.race([Promise.all([...calls]), new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    server.close();
    await accepting;
    engine.close();
    log(`drained: ${ended ? 'every call ended' : 'calls cut at the grace'}`);
    return ended;
  }

  return { port: server.port, drain };
}

module.exports = { startBridge, Bridge, sessionUpdate, RATE, AUDIO, AUDIO_DELTAS, DEFAULT_URL };

if (require.main === module) {
  const usage =
    'usage: OPENAI_API_KEY=... node openai_realtime_bridge.js [--bind ADDR:PORT] [--path PATH] ' +
    '[--auth-token TOKEN] [--dialect NAME] [--url WSS_URL] [--server-vad] [--pcm] [--drain-grace SECONDS]';
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        bind: { type: 'string', default: '127.0.0.1:8080' }, // address:port of the carrier's endpoint
        path: { type: 'string', default: '/media' }, // the stream's URL path
        'auth-token': { type: 'string' }, // check the carrier's signature with this secret
        dialect: { type: 'string', default: 'twilio' }, // twilio, telnyx, plivo, vonage, ...
        url: { type: 'string' }, // the Realtime WebSocket URL
        'realtime-url': { type: 'string' },
        'server-vad': { type: 'boolean', default: false }, // the model's speech_started interrupts
        pcm: { type: 'boolean', default: false }, // PCM at 24 kHz instead of µ-law passed through
        'drain-grace': { type: 'string', default: String(TRUNKLINE_DRAIN_GRACE_S) },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (e) {
    console.error(`${e.message}\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const apiKey = process.env.OPENAI_API_KEY;
  const graceS = Number(values['drain-grace']);
  if (!apiKey || !Number.isFinite(graceS) || graceS < 0) {
    console.error(`${apiKey ? 'bad --drain-grace' : 'set OPENAI_API_KEY'}\n${usage}`);
    process.exit(2);
  }
  const stamp = (msg) => console.log(`${new Date().toISOString()} openai_realtime_bridge ${msg}`);
  startBridge({
    bind: values.bind,
    url: values.url || values['realtime-url'] || process.env.OPENAI_REALTIME_URL || DEFAULT_URL,
    apiKey,
    path: values.path,
    authToken: values['auth-token'] ?? null,
    dialect: values.dialect,
    serverVad: values['server-vad'],
    pcm: values.pcm,
    log: stamp,
  }).then(
    (bridge) => {
      process.once('SIGTERM', async () => {
        await bridge.drain(graceS * 1000);
        process.exit(0);
      });
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
