"""The Gemini stand-in in its own process (so its CPU is not counted against the server):

    python -m bench.standin --first-delay 0.15 --interval 0.03 --chunks 20

Prints `PORT <n>` once listening, then serves until stdin closes or SIGTERM/SIGINT. Chat streams
get `tests.gemini_standin.pacing(...)`; JSON-mode requests (the agents) get an object built from
the request's schema after `--json-delay` seconds, in a few chunks."""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-delay", type=float, default=0.15)
    parser.add_argument("--interval", type=float, default=0.03)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--json-delay", type=float, default=0.4)
    parser.add_argument("--api-key", default="bench-key")
    args = parser.parse_args()

    try:
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass

    from llm.structured import example_from_schema
    from tests.gemini_standin import GeminiStandIn, json_reply, pacing

    chat = pacing(args.first_delay, args.interval, args.chunks)

    def handler(request):
        config = request.generation_config
        if (config.get("responseMimeType") or "") == "application/json":
            schema = config.get("responseSchema") or config.get("responseJsonSchema")
            obj = example_from_schema(schema) if isinstance(schema, dict) else {}
            return json_reply(obj, pieces=4, delay=args.json_delay, between_delay=args.interval)
        return chat(request)

    standin = GeminiStandIn(api_key=args.api_key, port=args.port)
    standin.handler = handler
    # The stand-in keeps every request for tests to inspect; a benchmark only needs them served.
    standin._requests = _Discard()
    standin.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print(f"PORT {standin.port}", flush=True)
    stop.wait()
    standin.stop()


class _Discard(list):
    def append(self, item) -> None:
        pass


if __name__ == "__main__":
    main()
