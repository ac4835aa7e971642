"""The OpenAI Realtime bridge example (examples/python/openai_realtime_bridge.py), end to end:
callsim calls it as Twilio, and a fake Realtime server stands in for the model.

The fake speaks the Realtime events the bridge uses: it takes session.update and
input_audio_buffer.append (keeping the audio), runs a simple energy VAD over that audio (sending
input_audio_buffer.speech_started / speech_stopped), answers each end of turn with a known reply
streamed faster than real time as audio deltas with an item id, and records response.cancel and
conversation.item.truncate. After a cancel it still sends two deltas of the cut item, as deltas
already in flight would arrive: the bridge must not play them.

The caller asks a question, then talks over the first reply and over the second one. Both
interruptions must truncate their own item at what callsim (the carrier) says the caller heard;
the third reply must play whole. Once in the default µ-law pass-through with Trunkline deciding the
barge-in, where the caller's bytes must reach the model unchanged; once with `pcm` (24 kHz) and the
server's VAD deciding (and the beta name of the audio delta). A short call from a raw Twilio
carrier checks the other direction: the model's µ-law bytes reach the carrier unchanged."""

import asyncio
import base64
import json
import math
import re
import struct

import pytest

import trunkline
import twilio_messages as twilio
from twilio_messages import call_bridge, callsim_binary, load_example, scripted_caller, speech

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

RATE = 24000  # PCM's, with pcm=True
ULAW_RATE = 8000
# The caller's script (stream ms): the fixture's first utterance as the question, then two of its
# later utterances placed to land about 1.3 s into the first and the second reply.
UTTERANCES = [(1000, (1000, 3421)), (5300, (4421, 5435)), (8300, (8634, 9816))]
CALLER_MS = 10400
REPLIES_MS = [6000, 6000, 800]
CHUNK_MS = 100  # one audio delta
STREAM_SPEEDUP = 2  # the fake sends its replies this much faster than real time
STALE_DELTAS = 2  # deltas of a cut item the fake sends after the cancel
TOLERANCE_MS = 40
# The caller's file fills the gaps between utterances with µ-law's other zero (0x7F): a decode and
# encode on the way would turn it into 0xFF, so only a pass-through delivers it as sent.
NEGATIVE_ZERO = 0x7F


def ulaw_to_linear(code: int) -> int:
    """G.711 µ-law decoding, for the fake's VAD."""
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


def linear_to_ulaw(sample: int) -> int:
    """G.711 µ-law encoding, for the fake's replies."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(magnitude.bit_length() - 8, 0)
    return ~(sign | exponent << 4 | (magnitude >> (exponent + 3)) & 0x0F) & 0xFF


ULAW_TO_LINEAR = [ulaw_to_linear(c) for c in range(256)]


@pytest.fixture(scope="module")
def callsim():
    return callsim_binary()


@pytest.fixture(scope="module")
def caller_audio(tmp_path_factory):
    """The caller's audio (8 kHz µ-law, digital silence between the utterances) and its labels,
    which callsim reads beside it."""
    return scripted_caller(tmp_path_factory.mktemp("bridge"), UTTERANCES, CALLER_MS, NEGATIVE_ZERO)


def load_bridge():
    return load_example("openai_realtime_bridge")


def tone(ms: int, freq: float, ulaw: bool) -> bytes:
    """`ms` of a sine at `freq`: µ-law at 8 kHz, or s16le at 24 kHz."""
    rate = ULAW_RATE if ulaw else RATE
    samples = [int(6000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(rate * ms // 1000)]
    return bytes(map(linear_to_ulaw, samples)) if ulaw else struct.pack(f"<{len(samples)}h", *samples)


class FakeRealtime:
    """One Realtime connection's worth of the model (see the module docstring), speaking µ-law at
    8 kHz or PCM at 24 kHz. `reply`, if given, is every reply's audio."""

    def __init__(self, delta_name: str, ulaw: bool, reply: bytes | None = None) -> None:
        self.delta_name = delta_name
        self.ulaw = ulaw
        self.rate = ULAW_RATE if ulaw else RATE
        self.width = 1 if ulaw else 2  # bytes per sample
        self.reply = reply
        self.session_updates: list = []
        self.create_response = True
        self.commits = 0  # speeches the VAD ended (each committed as a user item)
        self.audio = bytearray()  # every appended byte, decoded from base64 only
        self.onsets_ms: list = []  # where the VAD heard the caller start, in appended audio
        self.cancels = 0
        self.truncates: list = []  # (item_id, audio_end_ms, ms of audio sent for the item then)
        self.errors: list = []
        self.items: list = []  # item ids of the replies, in order
        self.sent_ms: dict = {}
        self.stale_sent = 0
        self.closed = asyncio.Event()
        self.ws = None
        self.responding: asyncio.Task | None = None
        self.cancelled = asyncio.Event()
        # VAD state over the appended audio.
        self.scanned = 0
        self.speaking = False
        self.voiced = 0
        self.quiet = 0

    async def send(self, event: dict) -> None:
        await self.ws.send(json.dumps(event))

    async def handle(self, ws) -> None:
        self.ws = ws
        try:
            async for message in ws:
                event = json.loads(message)
                kind = event["type"]
                if kind == "session.update":
                    self.session_updates.append(event["session"])
                    detection = event["session"]["audio"]["input"]["turn_detection"]
                    self.create_response = detection.get("create_response", True)
                elif kind == "response.create":
                    if self.create_response:
                        self.errors.append("response.create while the server creates the responses")
                    self.respond_next()
                elif kind == "input_audio_buffer.append":
                    self.audio += base64.b64decode(event["audio"])
                    await self.vad()
                elif kind == "response.cancel":
                    if self.responding is None or self.responding.done():
                        self.errors.append("response.cancel with no response in progress")
                    else:
                        self.cancels += 1
                        self.cancelled.set()
                elif kind == "conversation.item.truncate":
                    item = event["item_id"]
                    sent = self.sent_ms.get(item, 0)
                    self.truncates.append((item, event["audio_end_ms"], sent))
                    if event["content_index"] != 0 or event["audio_end_ms"] > sent:
                        self.errors.append(f"bad truncate {event} ({sent} ms sent)")
                    await self.send({"type": "conversation.item.truncated", "item_id": item,
                                     "content_index": 0, "audio_end_ms": event["audio_end_ms"]})
                else:
                    self.errors.append(f"unexpected event {kind}")
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def vad(self) -> None:
        """Speech: 3 blocks of 20 ms above the threshold; its end: 500 ms below."""
        block_samples = self.rate // 50
        size = block_samples * self.width
        while self.scanned + size <= len(self.audio):
            raw = self.audio[self.scanned : self.scanned + size]
            block = [ULAW_TO_LINEAR[c] for c in raw] if self.ulaw else struct.unpack(f"<{block_samples}h", raw)
            self.scanned += size
            loud = math.sqrt(sum(x * x for x in block) / block_samples) > 600
            at_ms = self.scanned // self.width * 1000 // self.rate
            if not self.speaking:
                self.voiced = self.voiced + 1 if loud else 0
                if self.voiced == 3:
                    self.speaking, self.quiet = True, 0
                    self.onsets_ms.append(at_ms - 60)
                    await self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": at_ms - 60})
            else:
                self.quiet = 0 if loud else self.quiet + 1
                if self.quiet * 20 >= 500:
                    self.speaking, self.voiced = False, 0
                    await self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": at_ms - 500})
                    self.commits += 1
                    await self.send({"type": "input_audio_buffer.committed", "item_id": f"user_{self.commits}"})
                    if self.create_response:
                        self.respond_next()

    def respond_next(self) -> None:
        if len(self.items) < len(REPLIES_MS):
            self.responding = asyncio.create_task(self.respond(len(self.items)))
        else:
            self.errors.append("a response asked for after the script's last reply")

    async def respond(self, n: int) -> None:
        response, item = f"resp_{n + 1}", f"item_{n + 1}"
        self.items.append(item)
        self.cancelled.clear()
        self.sent_ms[item] = 0
        await self.send({"type": "response.created", "response": {"id": response, "status": "in_progress"}})
        await self.send({"type": "response.output_item.added", "response_id": response,
                         "item": {"id": item, "type": "message", "role": "assistant"}})
        audio = self.reply if self.reply is not None else tone(REPLIES_MS[n], 300 + 100 * n, self.ulaw)
        chunk = self.rate * CHUNK_MS // 1000 * self.width
        status, stale = "completed", None
        for i in range(0, len(audio), chunk):
            if self.cancelled.is_set():
                stale = STALE_DELTAS if stale is None else stale
                if stale == 0:
                    status = "cancelled"
                    break
                stale -= 1
                self.stale_sent += 1
            piece = audio[i : i + chunk]
            await self.send({"type": self.delta_name, "response_id": response, "item_id": item, "output_index": 0,
                             "content_index": 0, "delta": base64.b64encode(piece).decode()})
            self.sent_ms[item] += len(piece) // self.width * 1000 // self.rate
            await asyncio.sleep(CHUNK_MS / 1000 / STREAM_SPEEDUP)
        await self.send({"type": "response.done", "response": {"id": response, "status": status}})


async def run_call(bridge, callsim, caller_audio, server_vad, delta_name, pcm):
    fake = FakeRealtime(delta_name, ulaw=not pcm)
    async with serve(fake.handle, "127.0.0.1", 0) as realtime:
        url = f"ws://127.0.0.1:{realtime.sockets[0].getsockname()[1]}/v1/realtime?model=test"
        ready = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        server = asyncio.create_task(bridge.main("127.0.0.1:0", url, "test-key", server_vad=server_vad, pcm=pcm,
                                                 ready=ready, stop=stop, drain_grace=2))
        port = await asyncio.wait_for(ready, 10)
        code, err, metrics, timeline = await call_bridge(callsim, port, caller_audio)
        await asyncio.wait_for(fake.closed.wait(), 5)  # the bridge hung up on the model too
        stop.set()
        assert await asyncio.wait_for(server, 10)
    assert code == 0, err
    return fake, metrics, timeline


@pytest.mark.parametrize(
    "pcm, server_vad, delta_name",
    [(False, False, "response.output_audio.delta"), (True, True, "response.audio.delta")],
    ids=["ulaw-trunkline-barge-in", "pcm-server-vad"],
)
def test_bridge_truncates_each_reply_at_what_the_caller_heard(callsim, caller_audio, pcm, server_vad, delta_name):
    bridge = load_bridge()
    fake, metrics, timeline = asyncio.run(run_call(bridge, callsim, caller_audio, server_vad, delta_name, pcm))
    text = "\n".join(f"{ms:>6} ms  {what}" for ms, what in timeline)

    # The session asked for the mode's format both ways (µ-law by its GA name), the server's VAD
    # not cancelling by itself.
    (session,) = fake.session_updates
    expected = {"type": "audio/pcm", "rate": RATE} if pcm else {"type": "audio/pcmu"}
    assert session["audio"]["input"]["format"] == expected
    assert session["audio"]["output"]["format"] == expected
    assert session["audio"]["input"]["turn_detection"]["interrupt_response"] is False

    sent_bytes = metrics["frames_sent"] * 160  # µ-law, a byte per sample at 8 kHz
    if pcm:
        # The caller's audio reached the model whole: as many samples as callsim sent (at 24 kHz;
        # a frame of slack for the resampler and the hang-up).
        sent_samples = sent_bytes * RATE // ULAW_RATE
        assert abs(len(fake.audio) // 2 - sent_samples) <= RATE // 50, (len(fake.audio) // 2, sent_samples)
    else:
        # Passed through: the model got callsim's bytes unchanged, the file's (its 0x7F zeros
        # included) and then the digital silence (0xFF) callsim sends while waiting, up to a
        # frame short at the hang-up.
        caller = caller_audio.read_bytes()
        sent = caller + b"\xff" * (sent_bytes - len(caller))
        assert sent_bytes - 160 <= len(fake.audio) <= sent_bytes, (len(fake.audio), sent_bytes)
        assert bytes(fake.audio[: len(caller)]) == caller
        assert bytes(fake.audio) == sent[: len(fake.audio)]
    # The utterances where callsim put them.
    assert len(fake.onsets_ms) == len(UTTERANCES), fake.onsets_ms
    for onset, (at, _) in zip(fake.onsets_ms, UTTERANCES):
        assert abs(onset - at) <= 60, fake.onsets_ms

    # Two interruptions, each answered by one clear; what the carrier says the caller heard of
    # each cut reply.
    heard = [float(m.group(1)) for _, m in
             ((ms, re.search(r"^clear received.*caller heard (\d+) ms of the reply", what)) for ms, what in timeline) if m]
    assert metrics["clears"] == 2 and len(heard) == 2, text
    assert metrics["bad_messages"] == 0 and metrics["framing_violations"] == 0, text

    # Each cut response was cancelled while in progress, and each truncate names its own item
    # (never the earlier reply's) at what the caller heard of it, within the audio sent for it.
    assert fake.errors == []
    assert fake.cancels == 2
    assert [t[0] for t in fake.truncates] == fake.items[:2], fake.truncates
    for (item, end_ms, sent_ms), heard_ms in zip(fake.truncates, heard):
        assert abs(end_ms - heard_ms) <= TOLERANCE_MS, (item, end_ms, heard_ms, text)
        assert 0 < end_ms <= sent_ms

    # The deltas sent after each cancel were never played: three replies reached the caller
    # (two cut, the last whole), nothing in between.
    assert fake.stale_sent == 2 * STALE_DELTAS
    starts = [ms for ms, what in timeline if what.startswith(("bot reply starts", "bot audio starts"))]
    assert len(starts) == 3, text
    (last,) = [float(m.group(1)) for _, what in timeline if (m := re.match(r"bot reply ends \((\d+) ms played\)", what))]
    assert abs(last - REPLIES_MS[2]) <= 20, text


async def raw_carrier_call(bridge, reply: bytes) -> tuple[FakeRealtime, bytes]:
    """A Twilio carrier of the test's own: it says the fixture's first utterance, then sends
    digital silence, keeping the payloads of the bot's media until `reply`'s length has come."""
    fake = FakeRealtime("response.output_audio.delta", ulaw=True, reply=reply)
    audio, labels = speech()
    start, end = labels[0]
    caller = audio[start * 8 : end * 8] + b"\xff" * (len(audio) - (end - start) * 8)
    received = bytearray()
    async with serve(fake.handle, "127.0.0.1", 0) as realtime:
        url = f"ws://127.0.0.1:{realtime.sockets[0].getsockname()[1]}/v1/realtime?model=test"
        ready = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        server = asyncio.create_task(bridge.main("127.0.0.1:0", url, "test-key", ready=ready, stop=stop, drain_grace=2))
        port = await asyncio.wait_for(ready, 10)
        async with connect(f"ws://127.0.0.1:{port}/media") as ws:

            async def listen() -> None:
                async for message in ws:
                    event = json.loads(message)
                    if event["event"] == "media":
                        received.extend(base64.b64decode(event["media"]["payload"]))

            listener = asyncio.create_task(listen())
            await ws.send(twilio.connected())
            await ws.send(twilio.start())
            seq = 3
            for chunk, i in enumerate(range(0, len(caller), 160), start=1):
                await ws.send(twilio.media(seq, chunk, i // 8, caller[i : i + 160]))
                seq += 1
                await asyncio.sleep(0.02)  # real time, roughly
                if len(received) >= len(reply):
                    break
            await ws.send(twilio.stop(seq))
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        await asyncio.wait_for(fake.closed.wait(), 5)
        stop.set()
        assert await asyncio.wait_for(server, 10)
    return fake, bytes(received)


def test_bridge_plays_the_models_ulaw_bytes_unchanged():
    # Every µ-law code, 0x7F (which a decode and encode would turn into 0xFF) among them.
    reply = bytes(range(256)) * 32  # 1024 ms
    fake, received = asyncio.run(raw_carrier_call(load_bridge(), reply))
    assert fake.errors == [] and fake.items == ["item_1"], fake.errors
    assert len(received) >= len(reply), len(received)
    # The carrier got the model's bytes as sent (the last frame padded, if at all, after them).
    assert received[: len(reply)] == reply


class StubSession:
    """What Bridge.feed and on_cut use of a session: play() takes nothing (the engine is full),
    every call recorded."""

    def __init__(self) -> None:
        self.calls: list = []

    def begin_segment(self, tag: str) -> None:
        self.calls.append(("begin_segment", tag))

    def play(self, audio: bytes, rate: int) -> int:
        self.calls.append(("play", len(audio)))
        return 0

    def interrupt(self) -> None:
        self.calls.append(("interrupt",))


class StubRealtime:
    """The model's socket: every event sent kept; each send yields to the loop for `delay`, as a
    send waiting on a full socket buffer does."""

    def __init__(self, delay: float = 0.0, incoming: tuple = ()) -> None:
        self.sent: list = []
        self.delay = delay
        self.incoming = [json.dumps(e) for e in incoming]  # what the model says, in order

    async def __aiter__(self):
        for message in self.incoming:
            yield message

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))
        await asyncio.sleep(self.delay)


def delta(item: str, response: str, n: int) -> dict:
    return {"type": "response.output_audio.delta", "response_id": response, "item_id": item,
            "delta": base64.b64encode(bytes([0x55]) * n).decode()}


def test_a_cut_truncates_items_queued_behind_the_one_heard_at_zero():
    bridge = load_bridge()
    call, realtime = StubSession(), StubRealtime()
    b = bridge.Bridge(call, realtime, server_vad=False)
    b.response_id = "resp_2"
    # item_1 began playing; item_2 waits behind it, not yet handed to the engine (no segment).
    b.on_audio(delta("item_1", "resp_1", 8000))
    b.on_audio(delta("item_2", "resp_2", 4000))
    assert ("begin_segment", "item_2") not in call.calls
    cut = trunkline.Event(kind="barge_in", segment="item_1", segment_played_ms=500, unheard_segments=[])
    asyncio.run(b.on_cut(cut))
    truncates = {e["item_id"]: e["audio_end_ms"] for e in realtime.sent if e["type"] == "conversation.item.truncate"}
    assert truncates == {"item_1": 500, "item_2": 0}, realtime.sent
    assert [e["type"] for e in realtime.sent].count("response.cancel") == 1


def test_no_model_audio_is_played_after_an_interrupt_while_the_cancel_is_being_sent():
    bridge = load_bridge()
    call, realtime = StubSession(), StubRealtime(delay=0.05)
    b = bridge.Bridge(call, realtime, server_vad=True)
    b.on_audio(delta("item_1", "resp_1", 8000))

    async def run() -> None:
        b.response_id = "resp_1"
        # The server's VAD heard the caller over the agent: from_model's interrupt and stop.
        call.interrupt()
        stopping = asyncio.create_task(b.stop_model())
        await asyncio.sleep(0.01)  # the cancel is on its way
        b.feed()  # the carrier side's next wakeup, meanwhile
        await stopping

    asyncio.run(run())
    after = call.calls[call.calls.index(("interrupt",)) :]
    assert [c for c in after if c[0] == "play"] == [], call.calls


def test_a_backchannel_over_a_reply_gets_no_reply_of_its_own(callsim, tmp_path):
    # The question, then 220 ms of speech 700 ms into the reply (under Trunkline's 300 ms of
    # voiced speech: no barge-in). The server's VAD still hears it and commits it; answered, it
    # would queue a second reply behind the first.
    script = [(1000, (1000, 3421)), (4600, (6235, 6455))]
    audio = scripted_caller(tmp_path, script, 8000, 0xFF)
    bridge = load_bridge()
    fake, metrics, timeline = asyncio.run(run_call(bridge, callsim, audio, False, "response.output_audio.delta", False))
    text = "\n".join(f"{ms:>6} ms  {what}" for ms, what in timeline)
    assert fake.errors == []
    assert fake.commits == 2, (fake.onsets_ms, text)  # the server heard both
    assert fake.items == ["item_1"], text
    assert fake.cancels == 0 and fake.truncates == [] and metrics["clears"] == 0, text


@pytest.mark.parametrize("speech_ms, answered", [(1500, True), (250, False)])
def test_speech_begun_over_the_end_of_a_reply_is_a_turn_if_it_outlasts_it(speech_ms, answered):
    # The caller starts just before the reply's last audio goes out (no barge-in: the agent fell
    # silent first). A long speech is a turn the model answers; a short one is a backchannel.
    bridge = load_bridge()
    events = (
        {"type": "input_audio_buffer.speech_started", "audio_start_ms": 5000},
        {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 5000 + speech_ms},
        {"type": "input_audio_buffer.committed", "item_id": "user_2"},
    )
    realtime = StubRealtime(incoming=events)
    b = bridge.Bridge(StubSession(), realtime, server_vad=False)
    talking = iter([True])
    b.agent_talking = lambda: next(talking, False)  # talking at the onset, silent afterwards
    asyncio.run(b.from_model())
    assert [e["type"] for e in realtime.sent].count("response.create") == (1 if answered else 0), realtime.sent
