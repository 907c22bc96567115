"""A live portal for browser and HTTP tests: the real ``siprec-recorder serve`` process.

The index and the recordings are made first in a work folder (real SQLite index, real
MP3 files, users and numbers; see :mod:`.fixtures`); then ``python -m siprec_recorder
serve`` starts on that folder with the portal on 127.0.0.1:0 (its bound port comes from the
ready file), exactly as an operator would run it. The test keeps its own connection to the
same index, in a thread with its own event loop, to add users or read the audit trail:
:meth:`call` runs a coroutine there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from siprec_recorder.policy.service import PolicyService
from siprec_recorder.testing import RecorderProcess, write_config

from .fixtures import World, build_world

T = TypeVar("T")


class LiveServer:
    def __init__(self, tmp: Path, *, fast_hashing: bool = True, **web: Any) -> None:
        if fast_hashing:  # cheap argon2 parameters for the accounts the test makes
            from argon2 import PasswordHasher

            from siprec_recorder.services import security

            security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        self.tmp = tmp
        self.web = web
        self.port = 0
        self.world: World | None = None
        self.policy: PolicyService | None = None
        self.recorder: RecorderProcess | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-db", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self._thread.start()
        self.world = self.call(lambda: build_world(self.tmp))
        self.policy = PolicyService(self.world.db)
        cfg = write_config(
            self.tmp,
            web={"enabled": True, "listen": "127.0.0.1:0", **self.web},
            storage={"recordings_dir": str(self.tmp / "recordings"), "min_free_mb": 0},
        )
        self.recorder = RecorderProcess(
            workdir=self.tmp, config_path=cfg, recordings=self.tmp / "recordings"
        )
        self.recorder.start(timeout=60)
        self.port = self.recorder.listeners["web"][1]
        return self

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` in the test's own loop (its connection to the index) and wait."""
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(60)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.recorder is not None:
            self.recorder.stop()
        if self.world is not None:
            self.call(self.world.db.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(20)
