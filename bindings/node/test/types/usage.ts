// Compiled (not run) by test/types.test.js with `tsc --strict`: the declarations must describe
// the API as docs/bindings.md and the example bot use it.
import {
  Engine,
  Session,
  Server,
  ServerStats,
  SERVER_STATS_NAMES,
  Event,
  StartedEvent,
  StreamStart,
  AudioEncoding,
  TrunklineError,
  RESULT,
  PROTOCOL_ERROR,
  STATS_NAMES,
  ulawDecode,
  ulawEncode,
  alawDecode,
  alawEncode,
  logToStderr,
  version,
} from '../..';

async function call(engine: Engine, send: (m: string | Buffer) => void): Promise<number> {
  const session: Session = engine.session({ agentRate: 16000, bargeInMinSpeechMs: 250, bargeInEnabled: true, dialect: 'twilio' });
  session.push('{"event":"connected","protocol":"Call","version":"1.0.0"}');
  await session.pushAsync(Buffer.from([1, 2, 3]), 100);
  const pcm: Buffer = session.readAudio();
  let taken: number = session.play(new Int16Array(160), 24000);
  taken += session.play(pcm, 16000);
  taken += session.playEncoded(Buffer.alloc(0), { codec: 'ogg_opus' });
  taken += session.playEncoded(new Uint8Array(3), { codec: 'opus', rate: 16000 });
  session.endEncoded();
  session.beginSegment('reply-1');
  session.mark('reply-1');
  const queued: number = session.queuedMs;
  taken += queued;
  session.interrupt();
  for (const m of session.outbound()) send(m);
  const evs: Event[] = session.events();
  for (const ev of evs) {
    if (ev.kind === 'started') {
      const ids: string = ev.callId + ev.streamId + ev.accountId;
      const rate: number = ev.sampleRate * ev.channels;
      const encoding: AudioEncoding = ev.encoding;
      const lang: string | undefined = ev.customParameters.lang;
      void [ids, rate, encoding, lang, ev.tracks[0]];
    } else if (ev.kind === 'barge_in' || ev.kind === 'interrupted') {
      taken += ev.playedMs + ev.streamMs + (ev.segmentPlayedMs ?? 0);
      const heard: string | null = ev.segment;
      const unheard: string[] = ev.unheardSegments;
      void [heard, unheard];
    } else if (ev.kind === 'end_of_turn') {
      taken += ev.streamMs + (ev.silenceMs ?? 0) + (ev.confidence ?? 0);
    } else if (ev.kind === 'protocol_error' && ev.errorCode === PROTOCOL_ERROR.UNKNOWN_MARK) {
      send(ev.errorMessage + ev.name);
    }
  }
  for await (const ev of session.eventStream()) {
    if (ev.kind === 'dtmf') send(ev.digit);
  }
  for await (const _ of session.wakeups()) break;
  const woken: boolean = await engine.wait(20);
  engine.wake();
  const stats = session.stats();
  session.close();
  try {
    engine.session({ agentRate: 16000 });
  } catch (e) {
    if (e instanceof TrunklineError && e.code === RESULT.TOO_MANY_SESSIONS) send(e.codeName + e.message);
  }
  // A stream whose `start` the host already read.
  const known: StreamStart = { streamId: 'MZ1', callId: 'CA1', encoding: 'ulaw', sampleRate: 8000, customParameters: { lang: 'en' } };
  engine.session({ agentRate: 8000, agentFormat: 'ulaw', start: known }).close();
  engine.session({ agentRate: 8000, agentFormat: 'pcmu', start: known }).close();
  engine
    .session({
      recordPath: 'call.wav',
      vadEchoAware: true,
      vadEndOfTurnEnabled: true,
      vadEndOfTurnMinSilenceMs: 200,
      vadEndOfTurnThreshold: 50,
      vadEndOfTurnMaxSilenceMs: 1000,
      bargeInRejoinWithinMs: 800,
      echoReduction: true,
    })
    .close();
  const codes: Buffer = ulawEncode(ulawDecode(alawEncode(alawDecode(Buffer.alloc(4)))));
  return taken + stats.frames_out + Number(woken) + codes.length + STATS_NAMES.length + version.length;
}

async function serve(engine: Engine): Promise<number> {
  const server: Server = engine.serve({
    bind: '0.0.0.0:8080',
    path: '/media',
    authToken: null,
    publicUrl: 'wss://bot.example.com',
    session: { agentRate: 16000, bargeInEnabled: true },
    maxSessions: 100,
    sendTimeoutMs: 5000,
    pingIntervalMs: 0,
  });
  const other = new Server(engine, {
    routes: [
      { path: '/twilio', dialect: 'twilio' },
      { path: '/vonage', dialect: 'vonage', authToken: 'secret', auth: 'vonage_jwt' },
    ],
  });
  const audioSocketPort: number = other.listenAudioSocket('127.0.0.1:0', ['40325ec2-5efd-4bd3-805f-53576e581d13']);
  other.allowAudioSocketCall('9f3c4d2a-0b1e-4c5d-8e6f-7a8b9c0d1e2f');
  const wasAllowed: boolean = other.revokeAudioSocketCall('9f3c4d2a-0b1e-4c5d-8e6f-7a8b9c0d1e2f');
  void [audioSocketPort, wasAllowed];
  const port: number = server.port + other.port;
  const first: Session | null = server.accept();
  first?.close();
  for await (const call of server.calls()) {
    call.play(call.readAudio(), call.agentRate);
    call.close();
  }
  const stats: ServerStats = server.stats();
  const ready: boolean = server.ready;
  const allEnded: boolean = await server.drain(30000);
  void [ready, allEnded];
  await server.shutdown(5000);
  server.close();
  other.close();
  return port + stats.accepted + SERVER_STATS_NAMES.length;
}

const engine = new Engine({ workers: 0, maxSessions: 1 });
void serve(new Engine({ workers: 1 }));
void call(engine, () => {}).finally(() => engine.close());
const fd: number = engine.wakeupFd;
const text: string = engine.metrics() + engine.metrics({ openMetrics: true });
const logging: boolean = logToStderr() || logToStderr('trunkline=info') || logToStderr(null);
void [text, logging];
void fd;
const prioritised: number = new Engine({ workers: 2, workerNice: -10 }).prioritisedWorkers;
void prioritised;
const clocked = new Engine({ workers: 0, manualClock: true });
clocked.advance(20);
const manual: boolean = clocked.manualClock;
void manual;

// @ts-expect-error: agentRate must be a supported rate
engine.session({ agentRate: 11025 });
// @ts-expect-error: unknown settings are rejected
engine.session({ agentRat: 16000 });
// @ts-expect-error: started fields exist only on started events
((ev: Event) => ev.callId)(null as unknown as Event);
// @ts-expect-error: the carrier-neutral names only (no Twilio names)
((ev: StartedEvent) => ev.callSid)(null as unknown as StartedEvent);
// @ts-expect-error: encodings are named
((e: AudioEncoding) => e)('audio/x-mulaw');
// @ts-expect-error: server options are checked too
engine.serve({ bind: '127.0.0.1:0', port: 8080 });
// @ts-expect-error: session settings of a server are checked
engine.serve({ session: { agentRate: 11025 } });
// @ts-expect-error: the clock advances by a number of ms
clocked.advance('20');
