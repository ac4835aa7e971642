"""TrunklineVADAnalyzer in Pipecat's VAD processor and user aggregator, on the recorded speech
fixture (its utterances labelled by hand)."""

import array
import asyncio

import pytest
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

import trunkline
from twilio_messages import speech
from trunkline.pipecat import TrunklineVADAnalyzer, default_vad_params

TRAILING_SILENCE_MS = 1000


class Timeline(FrameProcessor):
    """Notes, for each frame of interest, the stream time (ms of audio that passed before it)."""

    def __init__(self, kinds):
        super().__init__()
        self.kinds = kinds
        self.samples = 0
        self.rate = 0
        self.events = []

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.samples += frame.num_frames
            self.rate = frame.sample_rate
        elif direction == FrameDirection.DOWNSTREAM and isinstance(frame, self.kinds):
            self.events.append((type(frame), self.samples * 1000 // self.rate))
        await self.push_frame(frame, direction)


def caller_audio(rate):
    """The fixture (8 kHz) at `rate` by linear interpolation, plus trailing silence."""
    audio, labels = speech()
    pcm = array.array("h", trunkline.ulaw_decode(audio))
    if rate != 8000:
        k = rate // 8000
        up = array.array("h")
        for a, b in zip(pcm, pcm[1:] + array.array("h", [0])):
            up.extend(a + (b - a) * j // k for j in range(k))
        pcm = up
    return pcm.tobytes() + bytes(rate * TRAILING_SILENCE_MS // 1000 * 2), labels


def run_pipeline(processor, rate, kinds, realtime=False):
    """Feeds the fixture through `processor` as 20 ms frames: as fast as the pipeline takes them,
    or `realtime` (for processors with timers of their own)."""
    pcm, labels = caller_audio(rate)
    timeline = Timeline(kinds)

    async def run():
        worker = PipelineWorker(
            Pipeline([processor, timeline]),
            params=PipelineParams(audio_in_sample_rate=rate),
            idle_timeout_secs=None,
            enable_rtvi=False,
            cancel_on_idle_timeout=False,
        )
        started = asyncio.Event()

        @worker.event_handler("on_pipeline_started")
        async def on_started(_worker, _frame):
            started.set()

        async def feed():
            await started.wait()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            frame = rate // 50 * 2
            for n, i in enumerate(range(0, len(pcm) - frame + 1, frame)):
                if realtime:
                    await asyncio.sleep(max(0.0, t0 + n * 0.02 - loop.time()))
                await worker.queue_frame(InputAudioRawFrame(audio=pcm[i : i + frame], sample_rate=rate, num_channels=1))
            await worker.queue_frame(EndFrame())

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await asyncio.wait_for(asyncio.gather(runner.run(), feed()), 60)

    asyncio.run(run())
    return timeline.events, labels


def check_segments(events, labels, started, stopped):
    """One start and one stop per labelled utterance, where the analyzer's timing puts them:
    a start once `start_secs` of speech confirmed it (± 200 ms), a stop once `stop_secs` of
    non-speech followed the utterance's end (± 200 ms)."""
    params = default_vad_params()
    kinds = [k for k, _ in events]
    assert kinds == [started, stopped] * len(labels), kinds
    for (on, off), (start, end) in zip(zip(events[::2], events[1::2]), labels):
        assert start + params.start_secs * 1000 - 100 <= on[1] <= start + params.start_secs * 1000 + 200, (on, start)
        assert abs(off[1] - (end + params.stop_secs * 1000)) <= 200, (off, end)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_vad_processor_finds_the_utterances(rate):
    analyzer = TrunklineVADAnalyzer()
    events, labels = run_pipeline(VADProcessor(vad_analyzer=analyzer), rate, (VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame))
    check_segments(events, labels, VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame)
    assert analyzer.sample_rate == rate and analyzer.num_frames_required() == rate // 50


def test_user_aggregator_turns_follow_the_utterances():
    # Turn stops run on the aggregator's timers: the call is played in real time.
    strategies = UserTurnStrategies(
        start=[VADUserTurnStartStrategy()],
        stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0, wait_for_transcript=False)],
    )
    user = LLMContextAggregatorPair(
        LLMContext(),
        user_params=LLMUserAggregatorParams(vad_analyzer=TrunklineVADAnalyzer(), user_turn_strategies=strategies),
    ).user()
    events, labels = run_pipeline(user, 8000, (UserStartedSpeakingFrame, UserStoppedSpeakingFrame), realtime=True)
    check_segments(events, labels, UserStartedSpeakingFrame, UserStoppedSpeakingFrame)


def test_confidence_is_the_classifiers_decision_and_bad_rates_are_refused():
    pcm, _ = caller_audio(8000)
    analyzer = TrunklineVADAnalyzer(vad_aggressiveness=3)
    analyzer.set_sample_rate(8000)
    with trunkline.Vad(8000, vad_aggressiveness=3) as vad:
        for i in range(0, 8000 * 10 * 2, 320):
            assert analyzer.voice_confidence(pcm[i : i + 320]) == vad.process(pcm[i : i + 320])
    with pytest.raises(ValueError):
        TrunklineVADAnalyzer(sample_rate=44100)
    with pytest.raises(ValueError):
        TrunklineVADAnalyzer().set_sample_rate(22050)
    with pytest.raises(TypeError):
        TrunklineVADAnalyzer(hangover=3)
    with pytest.raises(trunkline.TrunklineError):
        TrunklineVADAnalyzer(vad_aggressiveness=4)
