"""An HTTP server in a thread of its own (so a test can drive pbxbridge's command line beside it),
and a webhook receiver that checks every signature as docs/CRM.md tells receivers to."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pbxbridge.crm.webhooks import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """Serves an aiohttp app on 127.0.0.1:port from a thread; can be stopped and started again on the same port."""

    def __init__(self, app_factory: Callable[[], web.Application], port: int | None = None) -> None:
        self.app_factory = app_factory
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def up() -> None:
                self._runner = web.AppRunner(self.app_factory())
                await self._runner.setup()
                await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

            loop.run_until_complete(up())
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert started.wait(10), "the test server did not start"
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop = self._loop

        async def down() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(down(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._loop = self._thread = self._runner = None


@dataclass
class WebhookReceiver:
    """Keeps what arrives; answers each request with ``answers`` in turn (then 200)."""

    secret: str
    answers: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    requests: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        if not verify_signature(self.secret, request.headers.get(SIGNATURE_HEADER, ""), body):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        if self.answers:
            status = self.answers.pop(0)
            headers = {"Retry-After": "0.2"} if status == 429 else {}
            return web.json_response({"error": f"answered {status}"}, status=status, headers=headers)
        document = json.loads(body)
        assert request.headers[IDEMPOTENCY_HEADER] == document["id"]
        self.received.append(document)
        return web.json_response({"ok": True})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
