"""Where google-genai's CPU goes on one streamed reply, measured in-process against the stand-in
(its own process, no pacing delays):

    python -m bench.sdk_cost [--calls 300] [--chunks 20]

Prints CPU (process_time) per streamed call of 20 chunks for:
  provider   `GeminiProvider.stream_chat` (what a chat turn uses)
  sdk        `client.aio.models.generate_content_stream`, config built once
  sdk-dict   the same with the config as a dict and contents as a str (built per call)
  raw        the floor: the same HTTP request through httpx2 with one json.loads per SSE frame
and, with --parse, the SDK's per-chunk work alone (no I/O): its SSE/JSON steps, the _from_mldev
conversion and the pydantic GenerateContentResponse."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time


def start_standin(chunks: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.standin",
            "--first-delay=0",
            "--interval=0",
            f"--chunks={chunks}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline().split()
    return process, f"http://127.0.0.1:{line[1]}"


async def cpu_per_call(label: str, call, calls: int) -> float:
    for _ in range(20):  # warm-up: imports, pools, caches
        await call()
    started = time.process_time()
    for _ in range(calls):
        await call()
    per = (time.process_time() - started) / calls * 1000
    print(f"{label:10s} {per:6.2f} ms CPU per streamed call")
    return per


async def main_async(args) -> None:
    from google import genai
    from google.genai import types

    from llm.gemini import GeminiProvider
    from llm.types import ChatMessage

    process, base_url = start_standin(args.chunks)
    try:
        provider = GeminiProvider(api_key="bench-key", base_url=base_url, max_retries=3)
        history = [ChatMessage("user", "How do streams work?")]

        async def via_provider():
            async for _ in provider.stream_chat(history, model="gemini-2.5-flash"):
                pass

        client = genai.Client(api_key="bench-key", http_options={"base_url": base_url})
        config = types.GenerateContentConfig(
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
        )
        contents = [types.Content(role="user", parts=[types.Part(text="How do streams work?")])]

        async def via_sdk():
            stream = await client.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents=contents, config=config
            )
            async for _ in stream:
                pass

        async def via_sdk_dict():
            stream = await client.aio.models.generate_content_stream(
                model="gemini-2.5-flash",
                contents="How do streams work?",
                config={"automatic_function_calling": {"disable": True}},
            )
            async for _ in stream:
                pass

        import httpx2

        raw_client = httpx2.AsyncClient()
        url = f"{base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        body = {"contents": [{"role": "user", "parts": [{"text": "How do streams work?"}]}]}

        async def via_raw():
            async with raw_client.stream(
                "POST", url, json=body, headers={"x-goog-api-key": "bench-key"}
            ) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        json.loads(line[6:])

        results = {}
        results["provider"] = await cpu_per_call("provider", via_provider, args.calls)
        results["sdk"] = await cpu_per_call("sdk", via_sdk, args.calls)
        results["sdk-dict"] = await cpu_per_call("sdk-dict", via_sdk_dict, args.calls)
        results["raw"] = await cpu_per_call("raw", via_raw, args.calls)
        if args.parse:
            parse_costs(args.chunks)
        await provider.aclose()
        await raw_client.aclose()
    finally:
        process.stdin.close()
        process.terminate()
        process.wait(10)


def parse_costs(chunks: int) -> None:
    """The SDK's per-chunk steps on one realistic chunk, without I/O, x chunks per reply."""
    from google.genai import models, types

    frame = {
        "candidates": [
            {"content": {"parts": [{"text": "the quick model "}], "role": "model"}, "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": 9,
            "candidatesTokenCount": 4,
            "totalTokenCount": 13,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9}],
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "standin-1",
    }
    text = json.dumps(frame)
    headers = {"content-type": "text/event-stream", "vary": "Origin", "server": "x"}
    n = 5000

    def timed(label, fn):
        started = time.process_time()
        for _ in range(n):
            fn()
        per = (time.process_time() - started) / n * 1000
        print(f"  {label:44s} {per * 1000:7.1f} µs/chunk  {per * chunks:5.2f} ms/reply")

    print(f"per-chunk steps (x {chunks} chunks):")
    timed("json.loads (once)", lambda: json.loads(text))
    timed(
        "json.loads + dumps + loads (what the SDK does)",
        lambda: json.loads(json.dumps(json.loads(text))),
    )
    converted = models._GenerateContentResponse_from_mldev(json.loads(text), None, None)
    timed(
        "_GenerateContentResponse_from_mldev",
        lambda: models._GenerateContentResponse_from_mldev(json.loads(text), None, None),
    )
    timed(
        "GenerateContentResponse._from_response",
        lambda: types.GenerateContentResponse._from_response(response=dict(converted), kwargs={}),
    )
    timed(
        "GenerateContentResponse.model_validate",
        lambda: types.GenerateContentResponse.model_validate(converted),
    )
    timed("types.HttpResponse(headers=...)", lambda: types.HttpResponse(headers=headers))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--parse", action="store_true", help="also time the per-chunk steps")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbackend.settings_test")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
