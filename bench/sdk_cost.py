"""Where the model calls' CPU goes, measured in-process against the stand-in (its own process, no
pacing delays):

    python -m bench.sdk_cost [--calls 300] [--chunks 20] [--only provider,sdk,...] [--parse]

Prints CPU (process_time) per call. Streamed chat, 20 chunks:
  provider     `get_provider()`-style provider `.stream_chat` (what a chat turn uses: the wire
               path through the SDK's API client, on aiohttp, with fallback and call logging)
  sdk          `client.aio.models.generate_content_stream` (pydantic response per chunk)
  wire         the SDK's API client `async_request_streamed` + one json.loads per event (the
               provider's transport, without the provider around it)
  raw          the floor: the same HTTP request through httpx2, one json.loads per SSE frame
The agents' calls (JSON mode with a response schema; a function-calling step), one response each:
  object       provider `.generate_object` (wire path)
  object-sdk   `client.aio.models.generate_content` with the same schema (SDK types)
  tools        provider `.run_tools` with one tool, answered in text (wire path)
  tools-sdk    `client.aio.models.generate_content` with the same declaration (SDK types)
With --parse, the SDK's per-chunk work alone (no I/O): its SSE/JSON steps, the _from_mldev
conversion and the pydantic GenerateContentResponse.

The SDK picks aiohttp when it is installed (requirements.txt installs it); set
`BENCH_BLOCK_AIOHTTP=1` to measure the SDK variants on httpx2 instead."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Literal

from pydantic import BaseModel, Field


class Verdict(BaseModel):
    summary: str
    verdict: Literal["approve", "revise"]
    confidence: float = Field(ge=0, le=1)
    tags: list[str]


class CalculateArgs(BaseModel):
    expression: str


VARIANTS = ("provider", "sdk", "wire", "raw", "object", "object-sdk", "tools", "tools-sdk")
WITHOUT_PROVIDER = ("sdk", "wire", "raw", "object-sdk", "tools-sdk")


def start_standin(chunks: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.standin",
            "--first-delay=0",
            "--interval=0",
            "--json-delay=0",
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
    print(f"{label:11s} {per:6.2f} ms CPU per call", flush=True)
    return per


async def main_async(args) -> None:
    from google import genai
    from google.genai import types

    from llm import ChatMessage, Tool, build_provider

    process, base_url = start_standin(args.chunks)
    try:
        chosen = args.only.split(",") if args.only else list(VARIANTS)
        # The provider needs aiohttp: without it (BENCH_BLOCK_AIOHTTP) only sdk/wire/raw run.
        provider = (
            None
            if os.environ.get("BENCH_BLOCK_AIOHTTP")
            else build_provider(
                {
                    "BACKEND": "llm.gemini.GeminiProvider",
                    "OPTIONS": {
                        "api_key": "bench-key",
                        "base_url": base_url,
                        "max_retries": 3,
                        "include_thoughts": False,
                    },
                    "MODELS": {"fallback": "gemini-2.5-flash-lite"},
                }
            )
        )
        history = [ChatMessage("user", "How do streams work?")]
        model = "gemini-2.5-flash"

        async def via_provider():
            async for _ in provider.stream_chat(history, model=model):
                pass

        client = genai.Client(api_key="bench-key", http_options={"base_url": base_url})
        config = types.GenerateContentConfig(
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
        )
        contents = [types.Content(role="user", parts=[types.Part(text="How do streams work?")])]

        async def via_sdk():
            stream = await client.aio.models.generate_content_stream(
                model=model, contents=contents, config=config
            )
            async for _ in stream:
                pass

        body = {"contents": [{"role": "user", "parts": [{"text": "How do streams work?"}]}]}

        async def via_wire():
            api_client = client.aio._api_client
            chunks = await api_client.async_request_streamed(
                "post", f"models/{model}:streamGenerateContent?alt=sse", body, None
            )
            async for chunk in chunks:
                json.loads(chunk.body)

        import httpx2

        raw_client = httpx2.AsyncClient()
        url = f"{base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"

        async def via_raw():
            async with raw_client.stream(
                "POST", url, json=body, headers={"x-goog-api-key": "bench-key"}
            ) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        json.loads(line[6:])

        async def object_provider():
            await provider.generate_object(Verdict, "Review this change", model=model)

        json_config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=Verdict,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )

        async def object_sdk():
            response = await client.aio.models.generate_content(
                model=model, contents="Review this change", config=json_config
            )
            Verdict.model_validate_json(response.text)

        async def calculate(args: BaseModel) -> dict:
            return {"result": 4}

        tool = Tool("calculate", "Evaluate arithmetic", CalculateArgs, calculate)

        async def tools_provider():
            async for _ in provider.run_tools("What is 2+2?", [tool], model=model):
                pass

        tools_config = types.GenerateContentConfig(
            tools=[
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name="calculate",
                            description="Evaluate arithmetic",
                            parameters_json_schema=CalculateArgs.model_json_schema(),
                        )
                    ]
                )
            ],
            tool_config=types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(mode="AUTO")
            ),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )

        async def tools_sdk():
            await client.aio.models.generate_content(
                model=model, contents="What is 2+2?", config=tools_config
            )

        variants = {
            "provider": via_provider,
            "sdk": via_sdk,
            "wire": via_wire,
            "raw": via_raw,
            "object": object_provider,
            "object-sdk": object_sdk,
            "tools": tools_provider,
            "tools-sdk": tools_sdk,
        }
        chosen = [name for name in chosen if provider is not None or name in WITHOUT_PROVIDER]
        transport = "httpx2" if os.environ.get("BENCH_BLOCK_AIOHTTP") else "aiohttp"
        print(f"{args.calls} calls, {args.chunks} chunks per stream; SDK transport: {transport}")
        for name in chosen:
            await cpu_per_call(name, variants[name], args.calls)
        if args.parse:
            parse_costs(args.chunks)
        if provider is not None:
            await provider.aclose()
        await client.aio.aclose()
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
    parser.add_argument("--only", default="", help="comma-separated variants (default: all)")
    parser.add_argument("--parse", action="store_true", help="also time the per-chunk steps")
    args = parser.parse_args()
    if os.environ.get("BENCH_BLOCK_AIOHTTP"):
        sys.modules["aiohttp"] = None  # type: ignore[assignment] # the SDK then uses httpx2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbackend.settings_test")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
