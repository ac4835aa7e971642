"""The Gemini Live bridge example (examples/python/gemini_live_bridge.py), end to end: callsim
calls it as Twilio, and a fake Live API server stands in for the model.

The fake speaks the BidiGenerateContent messages the bridge uses: it checks the setup (audio
replies, automatic activity detection off) and answers setupComplete, keeps every realtimeInput
audio chunk and notes where in that audio each activityStart / activityEnd came. At each
activityEnd it streams a known 24 kHz reply, faster than real time, as modelTurn audio parts; an
activityStart during a reply makes it send two more chunks of that reply (as chunks already in
flight would arrive) and then `interrupted`.

The caller asks a question, talks over the reply about 1.3 s into it, and then listens to the
second reply. The reply must be cut where callsim says, none of its late chunks played, the
second reply played whole; the caller's turns must reach the model as activities around their
speech, and their audio at 16 kHz, whole."""

import asyncio
import base64
import json
import logging
import math
import re
import struct

import pytest

from twilio_messages import call_bridge, callsim_binary, load_example, scripted_caller

websockets = pytest.importorskip("websockets")
from websockets.asyncio.server import serve  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

IN_RATE = 16000
OUT_RATE = 24000
# The caller's script (stream ms): the fixture's first utterance as the question, then a later
# one placed to land about 1.3 s into the first reply (a turn: it cuts the reply), then 220 ms of
# another (under Trunkline's 300 ms of voiced speech: a backchannel, no turn) early in the second
# reply.
UTTERANCES = [(1000, (1000, 3421)), (5300, (4421, 5435)), (7100, (6235, 6455))]
TURNS = 2
CALLER_MS = 8000
REPLIES_MS = [6000, 1500]
CHUNK_MS = 100  # one modelTurn message
STREAM_SPEEDUP = 2  # the fake sends its replies this much faster than real time
STALE_CHUNKS = 2  # chunks of a reply the fake sends after the activityStart that cut it
TOLERANCE_MS = 40


@pytest.fixture(scope="module")
def callsim():
    return callsim_binary()


@pytest.fixture(scope="module")
def caller_audio(tmp_path_factory):
    """The caller's audio (8 kHz µ-law, digital silence between the utterances) and its labels,
    which callsim reads beside it."""
    return scripted_caller(tmp_path_factory.mktemp("gemini"), UTTERANCES, CALLER_MS, 0xFF)


def load_bridge():
    return load_example("gemini_live_bridge")


def tone(ms: int, freq: float) -> bytes:
    n = OUT_RATE * ms // 1000
    return struct.pack(f"<{n}h", *(int(6000 * math.sin(2 * math.pi * freq * i / OUT_RATE)) for i in range(n)))


def ulaw_decode(byte: int) -> int:
    """G.711 µ-law to linear (the standard's table, computed), independently of Trunkline."""
    u = ~byte & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)
    return (0x84 - magnitude) if u & 0x80 else (magnitude - 0x84)


def envelope_db(samples, frame: int) -> list:
    """Loudness per frame, dB (floored at 0 dB for digital silence)."""
    out = []
    for i in range(0, len(samples) - frame + 1, frame):
        block = samples[i : i + frame]
        out.append(10 * math.log10(max(1.0, sum(x * x for x in block) / frame)))
    return out


class FakeLive:
    """One Live API session's worth of the model (see the module docstring), over one connection,
    or two with `go_away_at_ms`: once that much caller audio has come it says goAway and closes the
    connection 2 s later, taking the bridge's new one if its setup resumes the session with the
    handle given."""

    def __init__(self, go_away_at_ms: float | None = None, setup_delay_s: float = 0.0) -> None:
        self.go_away_at_ms = go_away_at_ms
        self.setup_delay_s = setup_delay_s
        self.went_away = False
        self.setups: list = []
        self.api_key = None
        self.audio = bytearray()  # every realtimeInput audio byte, s16le at 16 kHz
        self.activities: list = []  # ("start" | "end", ms of audio received before it)
        self.errors: list = []
        self.replies = 0
        self.cut_replies: list = []  # (reply index, ms of it sent when the activityStart came)
        self.stale_sent = 0
        self.closed = asyncio.Event()
        self.ws = None
        self.replying: asyncio.Task | None = None
        self.cut = asyncio.Event()

    async def send(self, msg: dict) -> None:
        await self.ws.send(json.dumps(msg))

    def at_ms(self) -> float:
        return len(self.audio) / 2 * 1000 / IN_RATE

    async def handle(self, ws) -> None:
        self.ws = ws
        self.api_key = ws.request.headers.get("x-goog-api-key")
        first = True
        try:
            async for message in ws:
                msg = json.loads(message)
                if first:
                    first = False
                    if set(msg) != {"setup"}:
                        self.errors.append(f"first message is not setup: {msg}")
                    setup = msg.get("setup") or {}
                    if self.setups and setup.get("sessionResumption") != {"handle": f"handle-{len(self.setups)}"}:
                        self.errors.append(f"a second connection that does not resume the session: {setup}")
                    self.setups.append(setup)
                    await asyncio.sleep(self.setup_delay_s if len(self.setups) == 1 else 0)
                    await self.send({"setupComplete": {}})
                    handle = f"handle-{len(self.setups)}"
                    await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
                elif set(msg) != {"realtimeInput"} or len(msg["realtimeInput"]) != 1:
                    self.errors.append(f"unexpected message {msg}")
                else:
                    await self.on_input(msg["realtimeInput"])
        except ConnectionClosed:
            pass
        finally:
            if ws is self.ws:  # the connection in use: the bridge hung up on the model
                self.closed.set()

    async def go_away(self, ws) -> None:
        await self.send({"goAway": {"timeLeft": "2s"}})
        await asyncio.sleep(2)
        await ws.close()

    async def on_input(self, body: dict) -> None:
        if "audio" in body:
            if body["audio"]["mimeType"] != "audio/pcm;rate=16000":
                self.errors.append(f"audio as {body['audio']['mimeType']}")
            self.audio += base64.b64decode(body["audio"]["data"])
            if self.go_away_at_ms is not None and not self.went_away and self.at_ms() >= self.go_away_at_ms:
                self.went_away = True
                asyncio.ensure_future(self.go_away(self.ws))
        elif "activityStart" in body:
            self.activities.append(("start", self.at_ms()))
            if self.replying is not None and not self.replying.done():
                self.cut.set()
        elif "activityEnd" in body:
            self.activities.append(("end", self.at_ms()))
            if self.replies < len(REPLIES_MS):
                self.replying = asyncio.create_task(self.reply(self.replies))
                self.replies += 1
        else:
            self.errors.append(f"unexpected realtimeInput {body}")

    async def reply(self, n: int) -> None:
        self.cut.clear()
        pcm = tone(REPLIES_MS[n], 300 + 100 * n)
        chunk = OUT_RATE * CHUNK_MS // 1000 * 2
        stale = None
        for i in range(0, len(pcm), chunk):
            if self.cut.is_set():
                if stale is None:
                    stale = STALE_CHUNKS
                    self.cut_replies.append((n, i // 2 * 1000 // OUT_RATE))
                if stale == 0:
                    await self.send({"serverContent": {"interrupted": True}})
                    return
                stale -= 1
                self.stale_sent += 1
            part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(pcm[i : i + chunk]).decode()}}
            await self.send({"serverContent": {"modelTurn": {"parts": [part]}}})
            await asyncio.sleep(CHUNK_MS / 1000 / STREAM_SPEEDUP)
        await self.send({"serverContent": {"generationComplete": True}})
        await self.send({"serverContent": {"turnComplete": True}})


async def run_call(bridge, callsim, caller_audio, go_away_at_ms=None, setup_delay_s=0.0):
    fake = FakeLive(go_away_at_ms, setup_delay_s)
    async with serve(fake.handle, "127.0.0.1", 0) as live:
        url = f"ws://127.0.0.1:{live.sockets[0].getsockname()[1]}/ws/BidiGenerateContent"
        ready = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        server = asyncio.create_task(bridge.main("127.0.0.1:0", url, "test-key", model="models/test",
                                                 ready=ready, stop=stop, drain_grace=2))
        port = await asyncio.wait_for(ready, 10)
        code, err, metrics, timeline = await call_bridge(callsim, port, caller_audio)
        await asyncio.wait_for(fake.closed.wait(), 5)  # the bridge hung up on the model too
        stop.set()
        assert await asyncio.wait_for(server, 10)
    assert code == 0, err
    return fake, metrics, timeline


# The call once on one connection; once moved to a second one by a goAway 2 s in (during the
# first question); once with a setup that takes 3 s, longer than the bridge's 2 s of caller audio
# waiting to be read, so that a second of it is dropped: the same call each way, turns in place.
@pytest.mark.parametrize(
    "go_away_at_ms, setup_delay_s",
    [(None, 0.0), (2000, 0.0), (None, 3.0)],
    ids=["one-connection", "resumed", "slow-setup"],
)
def test_bridge_marks_turns_and_cuts_the_reply_locally(callsim, caller_audio, caplog, go_away_at_ms, setup_delay_s):
    bridge = load_bridge()
    caplog.set_level(logging.DEBUG, logger="gemini_live_bridge")
    fake, metrics, timeline = asyncio.run(run_call(bridge, callsim, caller_audio, go_away_at_ms, setup_delay_s))
    text = "\n".join(f"{ms:>6} ms  {what}" for ms, what in timeline)
    assert fake.errors == []

    # The setup: audio replies, the model's own activity detection off, resumption handles and a
    # sliding context window asked for, the key in its header; after a goAway, a second setup
    # resuming the session with the handle the first connection gave.
    setup = fake.setups[0]
    assert len(fake.setups) == (1 if go_away_at_ms is None else 2)
    assert setup["sessionResumption"] == {}
    assert setup["contextWindowCompression"] == {"slidingWindow": {}}
    if go_away_at_ms is not None:
        assert fake.setups[1]["sessionResumption"] == {"handle": "handle-1"}
    assert setup["model"] == "models/test"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert setup["realtimeInputConfig"]["automaticActivityDetection"]["disabled"] is True
    assert fake.api_key == "test-key"

    # The caller's audio reached the model whole, at 16 kHz: as many samples as callsim sent (a
    # frame of slack for the resampler and the hang-up), and the loudness of callsim's µ-law,
    # 20 ms by 20 ms, is what arrived.
    got = struct.unpack(f"<{len(fake.audio) // 2}h", fake.audio)
    sent_samples = metrics["frames_sent"] * 160 * IN_RATE // 8000
    assert abs(len(got) - sent_samples) <= IN_RATE // 50, (len(got), sent_samples)
    reference = [ulaw_decode(b) for b in caller_audio.read_bytes()]
    want, have = envelope_db(reference, 160), envelope_db(got, 320)
    if setup_delay_s:
        # What the session dropped while the setup went on came as silence, in its place.
        dropped = [i for i, db in enumerate(have[: len(want)]) if db < 1 and want[i] > 50]
        assert 0 < len(dropped) <= 60, len(dropped)
        dropped = set(dropped)
        want = [w for i, w in enumerate(want) if i not in dropped]
        have = [h for i, h in enumerate(have) if i not in dropped]
    loud = [i for i, db in enumerate(want) if db > 50]
    assert len(loud) > 100
    off = [abs(want[i] - have[i]) for i in loud]
    assert sum(off) / len(off) < 1.0 and max(off) < 6, (sum(off) / len(off), max(off))

    # One activity per turn, in order, around it: it starts a little before the onset (so the
    # model gets the first syllable) and ends after the speech, at about the bridge's tail. The
    # backchannel is no activity (Trunkline heard it, and did not call it a barge-in).
    speech = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert sum(m.startswith("speech_started") for m in speech) == len(UTTERANCES), speech
    kinds = [k for k, _ in fake.activities]
    assert kinds == ["start", "end"] * TURNS, (fake.activities, speech)
    for i, (at, (start, end)) in enumerate(UTTERANCES[:TURNS]):
        began, ended = fake.activities[2 * i][1], fake.activities[2 * i + 1][1]
        assert at - bridge.ACTIVITY_LEAD_MS - 150 <= began <= at, (i, fake.activities, speech)
        spoken_end = at + end - start
        assert spoken_end <= ended <= spoken_end + bridge.ACTIVITY_TAIL_MS + 200, (i, fake.activities, speech)

    # The caller's second turn cut the first reply while the model was still sending it; the
    # model's late chunks were sent, and the second reply came after that turn.
    assert [n for n, _ in fake.cut_replies] == [0], fake.cut_replies
    assert fake.stale_sent == STALE_CHUNKS
    assert fake.replies == 2

    # The carrier got exactly one clear; what callsim says the caller heard of the first reply,
    # less than all of it, is what the bridge reports for that turn.
    heard = [float(m.group(1)) for _, what in timeline
             if (m := re.search(r"^clear received.*caller heard (\d+) ms of the reply", what))]
    assert metrics["clears"] == 1 and len(heard) == 1, text
    assert 0 < heard[0] < REPLIES_MS[0] - 1000, text
    assert metrics["bad_messages"] == 0 and metrics["framing_violations"] == 0, text
    reported = [int(m.group(1)) for r in caplog.records
                if (m := re.match(r"barge_in: the caller heard (\d+) ms of turn-1 ", r.getMessage()))]
    assert len(reported) == 1 and abs(reported[0] - heard[0]) <= TOLERANCE_MS, (reported, heard, text)

    # None of the late chunks was played: two replies reached the caller (the first cut, the
    # second whole, the backchannel over it notwithstanding), nothing in between.
    starts = [ms for ms, what in timeline if what.startswith(("bot reply starts", "bot audio starts"))]
    assert len(starts) == 2, text
    (last,) = [float(m.group(1)) for _, what in timeline if (m := re.match(r"bot reply ends \((\d+) ms played\)", what))]
    assert abs(last - REPLIES_MS[1]) <= 20, text


# The same call with the backchannel over the end of the second reply instead: it starts 220 ms
# before the reply's last audio leaves for the carrier, so the agent falls silent before the
# backchannel's speech_stopped comes.
LATE_BACKCHANNEL = [*UTTERANCES[:TURNS], (7950, (6235, 6455))]


def test_a_backchannel_over_the_end_of_a_reply_is_no_turn(callsim, tmp_path):
    bridge = load_bridge()
    caller_audio = scripted_caller(tmp_path, LATE_BACKCHANNEL, CALLER_MS + 1000, 0xFF)
    fake, metrics, timeline = asyncio.run(run_call(bridge, callsim, caller_audio))
    text = "\n".join(f"{ms:>6} ms  {what}" for ms, what in timeline)
    assert fake.errors == []
    assert [k for k, _ in fake.activities] == ["start", "end"] * TURNS, (fake.activities, text)
    assert fake.replies == 2 and metrics["clears"] == 1, text
