'use strict';
// A Twilio Media Streams bot on `ws` that uses Trunkline for all its audio.
//
// Point Twilio at it: POST /twiml answers with <Connect><Stream url="wss://<host>/media"/>, and
// the call's WebSocket lands on /media. The bot listens; when the caller stops speaking it plays
// their last utterance back to them (a stand-in for STT -> LLM -> TTS), and it stops talking the
// moment the caller interrupts (Trunkline detects the barge-in, drops its queued audio and sends
// `clear` itself; the bot drops what it had not handed over yet).
//
//     node examples/node/bot.js --port 8765 [--drain-grace SECONDS]
//
// On the same port it answers GET /healthz (200 while the process runs), GET /readyz (200, or 503
// once draining) and GET /metrics (the engine's counters as Prometheus text).
//
// On SIGTERM (a deploy or scale-down) it drains: at once /readyz answers 503 and new calls are
// refused with 503, so the load balancer sends the next calls elsewhere; the live calls go on until
// they end, for up to the grace (--drain-grace, else $TRUNKLINE_DRAIN_GRACE_S, else 30 s); calls still live
// then are closed (1001, going away); then the bot exits with status 0.

const http = require('node:http');
const { WebSocketServer } = require('ws');
const { Engine, TrunklineError, RESULT } = require('trunkline');

const AGENT_RATE = 16000;
/** How long live calls may go on after SIGTERM, seconds. */
const TRUNKLINE_DRAIN_GRACE_S = Number(process.env.TRUNKLINE_DRAIN_GRACE_S || 30);
const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';
/** Caller audio kept for replies, seconds. */
const KEEP_SECONDS = 60;

/** The caller's audio (s16le at the agent rate), addressable by stream time. */
class CallerAudio {
  constructor(rate, keepSeconds) {
    this.rate = rate;
    this.keep = rate * keepSeconds * 2;
    this.chunks = [];
    this.startByte = 0; // stream position (bytes) of chunks[0]
    this.endByte = 0;
  }

  append(pcm) {
    if (!pcm.length) return;
    this.chunks.push(pcm);
    this.endByte += pcm.length;
    while (this.chunks.length > 1 && this.endByte - this.startByte - this.chunks[0].length >= this.keep) {
      this.startByte += this.chunks.shift().length;
    }
  }

  /** The audio between two stream times (ms), as far as it is kept. */
  slice(fromMs, toMs) {
    const byte = (ms) => Math.floor((ms * this.rate) / 1000) * 2;
    const from = Math.max(byte(fromMs), this.startByte);
    const to = Math.min(byte(toMs), this.endByte);
    if (to <= from) return Buffer.alloc(0);
    return Buffer.concat(this.chunks).subarray(from - this.startByte, to - this.startByte);
  }
}

/** Echoes the caller's last utterance when they stop; stops when they interrupt. */
class EchoAgent {
  constructor(session, log) {
    this.session = session;
    this.log = log;
    this.audio = new CallerAudio(AGENT_RATE, KEEP_SECONDS);
    this.callId = '';
    this.onsetMs = null;
    this.replies = 0;
    // Reply audio the engine has not taken yet (it takes what fits, as with a streaming TTS),
    // and the mark to place once all of it is queued.
    this.pending = new Int16Array(0);
    this.pendingMark = null;
  }

  onAudio(pcm) {
    this.audio.append(pcm);
  }

  /** Hands the engine as much of the pending reply as it takes now. */
  feed() {
    if (this.pending.length) {
      try {
        this.pending = this.pending.subarray(this.session.play(this.pending, AGENT_RATE));
      } catch (e) {
        if (!(e instanceof TrunklineError) || e.code !== RESULT.FULL) throw e;
        return;
      }
    }
    if (!this.pending.length && this.pendingMark) {
      this.session.mark(this.pendingMark);
      this.pendingMark = null;
    }
  }

  onEvent(ev) {
    switch (ev.kind) {
      case 'started':
        this.callId = ev.callId;
        this.log(
          `call ${ev.callId} started (stream ${ev.streamId}, ${ev.encoding} at ${ev.sampleRate} Hz, ` +
            `params ${JSON.stringify(ev.customParameters)})`,
        );
        break;
      case 'speech_started':
        this.onsetMs = ev.streamMs;
        break;
      case 'speech_stopped': {
        if (this.onsetMs === null) break;
        // The worker may have delivered more audio since the last read: read again, so the
        // buffer covers the event's stream time.
        this.onAudio(this.session.readAudio());
        const utterance = this.audio.slice(this.onsetMs, ev.streamMs);
        this.onsetMs = null;
        this.replies++;
        this.log(`caller said ${(utterance.length / 2 / AGENT_RATE).toFixed(2)} s; echoing it`);
        this.pending = new Int16Array(Uint8Array.prototype.slice.call(utterance).buffer);
        this.pendingMark = `reply-${this.replies}`;
        this.feed();
        break;
      }
      case 'barge_in':
        // Trunkline already dropped what it had queued and sent `clear`; drop the rest.
        this.pending = new Int16Array(0);
        this.pendingMark = null;
        this.log(`interrupted: the caller heard ${ev.playedMs} ms of the reply`);
        break;
      case 'mark_played':
        this.log(`${ev.name} fully heard`);
        break;
      case 'dtmf':
        this.log(`caller pressed ${ev.digit}`);
        break;
      case 'protocol_error':
        this.log(`dropped a bad message: ${ev.errorMessage}${ev.name ? ` (${ev.name})` : ''}`);
        break;
      default:
        break;
    }
  }
}

/** One call: every carrier message goes into the session, everything it produces goes out. */
async function handleCall(ws, engine, log) {
  // Room for 5 s of caller audio between reads: a carrier's frames can arrive in bursts after a
  // network stall, and the echo needs the caller's audio aligned with stream time (no drops).
  const session = engine.session({ agentRate: AGENT_RATE, agentRingMs: 5000 });
  const agent = new EchoAgent(session, log);
  // Carrier messages waiting for room in the engine (it refuses with FULL when it is behind).
  const inbox = [];
  // The socket closed: the stream ends (as with a stop) once the messages before are in.
  let hungUp = false;
  const flushInbox = () => {
    while (inbox.length && !session.closed) {
      try {
        session.push(inbox[0]);
      } catch (e) {
        if (!(e instanceof TrunklineError) || e.code !== RESULT.FULL) throw e;
        return; // retried on the next wakeup
      }
      inbox.shift();
    }
    // Ending the stream again is harmless: the first end stands.
    if (hungUp && !inbox.length && !session.closed) {
      session.endStream();
    }
  };
  // The socket's handlers run outside this call's promise, where a throw would end the process:
  // a session that failed (or was closed under the call) ends this call's socket instead.
  const guarded =
    (handler) =>
    (...args) => {
      try {
        handler(...args);
      } catch (e) {
        log(`call failed: ${e.stack || e}`);
        ws.terminate();
      }
    };
  ws.on(
    'message',
    guarded((data, isBinary) => {
      inbox.push(isBinary ? data : data.toString('utf8'));
      flushInbox();
    }),
  );
  // The carrier hung up (after its stop, or without one): the loop below sees `stopped`.
  ws.on(
    'close',
    guarded(() => {
      hungUp = true;
      flushInbox();
    }),
  );
  // A frame that breaks the protocol: ws closes the socket after this ('close' follows).
  ws.on('error', (e) => log(`carrier socket error: ${e.message}`));

  try {
    let stopped = false;
    for await (const _ of session.wakeups()) {
      flushInbox();
      for (const message of session.outbound()) ws.send(message); // paced frames, marks, clear
      agent.onAudio(session.readAudio());
      agent.feed();
      for (const ev of session.events()) {
        agent.onEvent(ev);
        if (ev.kind === 'stopped') stopped = true;
      }
      if (stopped) break;
    }
  } finally {
    // Whatever ended the call, its session goes with it (a failed one too).
    if (!session.closed) {
      const stats = session.stats();
      session.close();
      log(
        `call ${agent.callId || '(not started)'} ended: ${stats.media_frames_in} caller frames in, ` +
          `${stats.frames_out} frames sent, ${stats.barge_ins} barge-ins, ` +
          `${stats.protocol_errors} bad messages, ${stats.agent_samples_dropped} caller samples dropped`,
      );
    }
  }
  if (ws.readyState === ws.OPEN) ws.close(1000, 'call ended');
}

/**
 * Starts the bot's HTTP + WebSocket server. Resolves to { port, drain(graceMs), close() } once
 * listening. `engine` defaults to a new one (one worker per core), closed with the server.
 */
function startBot({ host = '127.0.0.1', port = 8765, engine, log = console.log } = {}) {
  const ownEngine = !engine;
  engine = engine || new Engine();
  let draining = false;
  /** The live calls: each one's WebSocket and the promise of its end. */
  const calls = new Map();
  const server = http.createServer((req, res) => {
    const path = req.url.split('?')[0];
    if (req.method === 'GET' && path === '/healthz') return res.writeHead(200).end('ok\n');
    if (req.method === 'GET' && path === '/readyz') {
      return res.writeHead(draining ? 503 : 200).end(draining ? 'draining\n' : 'ready\n');
    }
    if (req.method === 'GET' && path === '/metrics') {
      return res.writeHead(200, { 'content-type': PROMETHEUS_TEXT }).end(engine.metrics());
    }
    if (req.method === 'POST' && req.url.startsWith('/twiml')) {
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>' +
          `<Stream url="wss://${req.headers.host}/media"/></Connect></Response>`,
      );
      return;
    }
    res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    if (!req.url.startsWith('/media')) return socket.destroy();
    if (draining) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const ended = handleCall(ws, engine, log)
        .catch((e) => {
          log(`call failed: ${e.stack || e}`);
          ws.terminate();
        })
        .finally(() => calls.delete(ws));
      calls.set(ws, ended);
    });
  });

  /**
   * Takes no new calls from now on (/readyz and upgrades answer 503), waits up to `graceMs` for
   * the live calls to end, then closes those left (1001). Resolves to whether every call ended by
   * itself.
   */
  async function drain(graceMs) {
    draining = true;
    const live = [...calls.values()];
    log(`draining: ${live.length} live call(s), up to ${Math.round(graceMs / 1000)} s`);
    let timer;
    const grace = new Promise((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.all(live), grace]);
    clearTimeout(timer);
    const left = [...calls.keys()];
    for (const ws of left) ws.close(1001, 'server shutting down');
    // A carrier that does not answer the close is cut off after 5 s.
    const cutOff = setTimeout(() => left.forEach((ws) => ws.terminate()), 5000);
    await Promise.all([...calls.values()]);
    clearTimeout(cutOff);
    log(left.length ? `drained: ${left.length} call(s) cut at the grace` : 'drained: every call ended');
    return left.length === 0;
  }

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const bound = server.address().port;
      log(`listening on ws://${host}:${bound}/media`);
      resolve({
        port: bound,
        drain,
        close: () =>
          new Promise((done) => {
            for (const ws of wss.clients) ws.terminate();
            wss.close();
            server.close(() => {
              if (ownEngine) engine.close();
              done();
            });
          }),
      });
    });
  });
}

module.exports = { startBot, handleCall, EchoAgent, CallerAudio, AGENT_RATE };

if (require.main === module) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const stamp = (msg) => console.log(`${new Date().toISOString()} bot ${msg}`);
  const graceS = Number(arg('drain-grace', TRUNKLINE_DRAIN_GRACE_S));
  startBot({ host: arg('host', '127.0.0.1'), port: Number(arg('port', 8765)), log: stamp }).then(
    (bot) => {
      process.once('SIGTERM', async () => {
        await bot.drain(graceS * 1000);
        await bot.close();
        process.exit(0);
      });
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
