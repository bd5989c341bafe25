"""SIGTERM without losing the streams in flight.

uvicorn, on SIGTERM, stops accepting connections, waits up to `--timeout-graceful-shutdown` for the
open ones, cancels the tasks still running, sends the lifespan `shutdown` event, and exits by
re-raising SIGTERM (so asyncio.run's final cancellation of leftover tasks never happens). Django's
ASGI handler runs the view in a task of its own, which cancelling the connection's task does not
reach: a stream still waiting on the model would die with the process, its partial reply unsaved.

`GracefulShutdown` wraps the Django application so that shutting down takes the path of a client
disconnect, which the streams already handle: when a request's task is cancelled, or the lifespan
`shutdown` event arrives, the request's `receive` answers `http.disconnect`; Django cancels the
view, the stream saves its partial reply as `interrupted`; and the lifespan `shutdown` is only
acknowledged once those requests have finished (bounded by `save_timeout_s`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from core import lifecycle

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]


class GracefulShutdown:
    def __init__(self, app, *, save_timeout_s: float = 10.0):
        self.app = app
        self.save_timeout_s = save_timeout_s
        #: Requests in flight, each with the event that makes its `receive` say "disconnected".
        self._requests: dict[asyncio.Task, asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive, send) -> None:
        gone = asyncio.Event()

        async def receive_until_gone() -> Message:
            if gone.is_set():
                return {"type": "http.disconnect"}
            message = asyncio.ensure_future(receive())
            goodbye = asyncio.ensure_future(gone.wait())
            try:
                await asyncio.wait({message, goodbye}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                goodbye.cancel()
                if not message.done():
                    message.cancel()
            return message.result() if message.done() else {"type": "http.disconnect"}

        request = asyncio.ensure_future(self.app(scope, receive_until_gone, send))
        self._requests[request] = gone
        request.add_done_callback(lambda task: self._requests.pop(task, None))
        try:
            await asyncio.shield(request)
        except asyncio.CancelledError:
            # The server gave up on this connection: let the view save what it has, then go.
            gone.set()
            await asyncio.wait({request}, timeout=self.save_timeout_s)
            raise

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await lifecycle.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._requests:
                    logger.info("Shutting down: ending %d open request(s)", len(self._requests))
                    for gone in self._requests.values():
                        gone.set()
                    await asyncio.wait(set(self._requests), timeout=self.save_timeout_s)
                await lifecycle.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
