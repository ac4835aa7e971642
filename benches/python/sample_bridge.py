"""BASELINE FOR THE BRIDGE BENCHMARK, not a Trunkline example and not for use: a compact Twilio
Media Streams <-> OpenAI Realtime bridge written the way the widely copied Twilio sample bridge
does it, so that bridge_cpu.py can compare the Trunkline example
(examples/python/openai_realtime_bridge.py) against that design's per-frame cost.

What it does, as the sample does:

- a FastAPI WebSocket endpoint for the carrier; per call one Realtime WebSocket, configured with
  G.711 µ-law both ways (`input_audio_format` / `output_audio_format` `g711_ulaw`) and the
  server's VAD;
- each Twilio `media` message: its base64 payload forwarded untouched as
  `input_audio_buffer.append`, and `latest_media_timestamp` updated;
- each `response.audio.delta`: sent to Twilio at once (unpaced) as one `media` message, followed
  by a `mark`, pushed onto `mark_queue`; each Twilio `mark` echo pops one entry;
- on a new `item_id`: `response_start_timestamp = latest_media_timestamp`;
- on `input_audio_buffer.speech_started` with marks pending: `conversation.item.truncate` at
  `latest_media_timestamp - response_start_timestamp`, a Twilio `clear`, and the state reset.

It keeps that design's known faults on purpose (it is what is measured): the truncation offset is
the time since the reply's first delta was forwarded, not what the caller heard; echoes of
cleared marks pop the next reply's marks; any `speech_started` interrupts; one mark per delta.
"""

from __future__ import annotations

import asyncio
import base64
import json

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.protocol import State

AUDIO_DELTAS = ("response.audio.delta", "response.output_audio.delta")


def session_update() -> dict:
    return {
        "type": "session.update",
        "session": {
            "turn_detection": {"type": "server_vad"},
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "voice": "alloy",
            "instructions": "You are a helpful assistant on a phone call.",
            "modalities": ["text", "audio"],
        },
    }


def make_app(openai_url: str, api_key: str) -> FastAPI:
    app = FastAPI()

    @app.websocket("/media")
    async def media_stream(websocket: WebSocket):
        await websocket.accept()
        async with connect(openai_url, additional_headers={"Authorization": f"Bearer {api_key}"}, max_size=None) as openai_ws:
            await openai_ws.send(json.dumps(session_update()))
            stream_sid = None
            latest_media_timestamp = 0
            last_assistant_item = None
            mark_queue: list = []
            response_start_timestamp = None

            async def receive_from_twilio():
                nonlocal stream_sid, latest_media_timestamp
                try:
                    async for message in websocket.iter_text():
                        data = json.loads(message)
                        if data["event"] == "media" and openai_ws.state is State.OPEN:
                            latest_media_timestamp = int(data["media"]["timestamp"])
                            await openai_ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": data["media"]["payload"]}))
                        elif data["event"] == "start":
                            stream_sid = data["start"]["streamSid"]
                            latest_media_timestamp = 0
                        elif data["event"] == "mark":
                            if mark_queue:
                                mark_queue.pop(0)
                except WebSocketDisconnect:
                    pass
                if openai_ws.state is State.OPEN:
                    await openai_ws.close()

            async def send_to_twilio():
                nonlocal last_assistant_item, response_start_timestamp
                async for openai_message in openai_ws:
                    response = json.loads(openai_message)
                    kind = response.get("type")
                    if kind in AUDIO_DELTAS and "delta" in response:
                        # The sample decodes and re-encodes the payload before forwarding it.
                        payload = base64.b64encode(base64.b64decode(response["delta"])).decode("utf-8")
                        await websocket.send_json({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})
                        if response.get("item_id") and response["item_id"] != last_assistant_item:
                            response_start_timestamp = latest_media_timestamp
                            last_assistant_item = response["item_id"]
                        await websocket.send_json({"event": "mark", "streamSid": stream_sid, "mark": {"name": "responsePart"}})
                        mark_queue.append("responsePart")
                    elif kind == "input_audio_buffer.speech_started":
                        if mark_queue and response_start_timestamp is not None:
                            await handle_speech_started()

            async def handle_speech_started():
                nonlocal last_assistant_item, response_start_timestamp
                elapsed = latest_media_timestamp - response_start_timestamp
                if last_assistant_item:
                    await openai_ws.send(json.dumps({
                        "type": "conversation.item.truncate",
                        "item_id": last_assistant_item,
                        "content_index": 0,
                        "audio_end_ms": elapsed,
                    }))  # fmt: skip
                await websocket.send_json({"event": "clear", "streamSid": stream_sid})
                mark_queue.clear()
                last_assistant_item = None
                response_start_timestamp = None

            await asyncio.gather(receive_from_twilio(), send_to_twilio())

    return app
