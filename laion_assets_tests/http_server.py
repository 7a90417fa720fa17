"""A real HTTP server on 127.0.0.1 for tests: aiohttp.web on its own event loop in a thread.

Routes are registered per test (`route`, `respond`, `redirect`, `sequence`); every request
is recorded with its headers and arrival time, and the server counts requests in flight.
Handlers run concurrently, so a slow or endless response never blocks the others, and a
handler is cancelled when its client goes away.

Use it through the `loopback_server` fixture, bound in the test module (an assignment
rather than an import, which ruff would flag as redefined by the test's parameter)::

    from laion_assets_tests import http_server

    loopback_server = http_server.loopback_server

    def test_x(loopback_server: http_server.LoopbackServer): ...
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RecordedRequest:
    path: str  # path and query string, as requested
    method: str
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival


def static(
    body: bytes = b"",
    *,
    status: int = 200,
    content_type: str | None = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> Handler:
    """A handler answering with fixed status, headers and body."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=body, status=status, headers=headers or {})
        if content_type is not None:
            response.content_type = content_type
        return response

    return handler


def slow(delay: float, body: bytes = b"late") -> Handler:
    """A handler that sends nothing for `delay` seconds, then `body`."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(delay)
        return web.Response(body=body)

    return handler


@dataclass
class EndlessBody:
    """A handler streaming `chunk` forever; records how much it sent and when it stopped."""

    chunk: bytes = b"\0" * (64 << 10)
    content_type: str = "image/jpeg"
    bytes_sent: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        await response.prepare(request)
        try:
            while True:
                await response.write(self.chunk)
                self.bytes_sent += len(self.chunk)
        finally:  # the client closed the connection: write failed or the handler was cancelled
            self.stopped.set()


class LoopbackServer:
    """An aiohttp.web server bound to an ephemeral port on `host`, run in a thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._routes: dict[str, Handler] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    # -- lifecycle

    def start(self) -> LoopbackServer:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._runner is not None:
            cleanup = self._runner.cleanup()
            asyncio.run_coroutine_threadsafe(cleanup, self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    # -- routes

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> str:
        """Serve `path` (with its query string, if any) with `handler`; returns its URL."""
        self._routes[path] = handler
        return self.url(path)

    def respond(
        self,
        path: str,
        body: bytes = b"",
        *,
        status: int = 200,
        content_type: str | None = "application/octet-stream",
        headers: dict[str, str] | None = None,
    ) -> str:
        """Serve a fixed response; returns its URL."""
        handler = static(body, status=status, content_type=content_type, headers=headers)
        return self.route(path, handler)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.respond(path, status=status, headers={"Location": location})

    def sequence(self, path: str, handlers: Sequence[Handler]) -> str:
        """Answer the n-th request to `path` with `handlers[n]`; the last one repeats."""
        calls = itertools.count()

        async def handler(request: web.Request) -> web.StreamResponse:
            return await handlers[min(next(calls), len(handlers) - 1)](request)

        return self.route(path, handler)

    def hits(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            RecordedRequest(request.path_qs, request.method, dict(request.headers),
                            time.monotonic())
        )
        handler = self._routes.get(request.path_qs) or self._routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no such route")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1


@pytest.fixture
def loopback_server() -> Iterator[LoopbackServer]:
    """A started LoopbackServer on 127.0.0.1, stopped after the test."""
    with LoopbackServer() as server:
        yield server
