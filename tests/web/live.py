"""A live portal for browser tests: uvicorn on 127.0.0.1:0 in a thread with its own loop.

The index, the recordings and the app are all built inside the server's event loop (an
async engine belongs to one loop); the test runs coroutines there with :meth:`call`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import uvicorn

from siprec_recorder.policy.service import PolicyService
from siprec_recorder.web.app import create_app
from siprec_recorder.web.settings import WebSettings

from .fixtures import World, build_world

T = TypeVar("T")


class SettableClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class LiveServer:
    def __init__(self, tmp: Path, *, fast_hashing: bool = True) -> None:
        if fast_hashing:  # cheap argon2 parameters for the whole test process
            from argon2 import PasswordHasher

            from siprec_recorder.web import security

            security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        self.tmp = tmp
        self.clock = SettableClock()
        self.port = 0
        self.world: World | None = None
        self.policy: PolicyService | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-portal", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the portal did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # pragma: no cover - reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.world = await build_world(self.tmp)
        self.policy = PolicyService(self.world.db)
        settings = WebSettings(secure_cookies=False, session_ttl=90 * 86400.0, clock=self.clock)
        app = create_app(self.world.db, self.world.layout, settings, self.policy)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.02)
            if task.done():
                await task
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._ready.set()
        await task
        await self.world.db.close()

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` in the server's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(60)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(20)
