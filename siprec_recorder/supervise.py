"""Supervised parts of ``serve`` that recording must never depend on: the portal, the metrics.

Theory of operation
-------------------
A :class:`Supervised` part runs ``run()`` (a coroutine that serves until it is stopped) in a
task of its own. Whatever ends it early -- a port that cannot be bound, a crash, even the
``SystemExit`` that uvicorn raises on a failed start -- is caught here, logged as one line,
counted, and the part is started again after a delay that doubles up to ``max_delay``. The
SIP listeners and the recording sessions live elsewhere and never see it. ``up`` and
``failures`` are what ``/metrics`` shows (``siprec_component_up``,
``siprec_component_failures_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

__all__ = ["Supervised", "bind_tcp"]

log = logging.getLogger("siprec_recorder")


class Supervised:
    """Keep ``run()`` running; see the module docstring."""

    def __init__(
        self,
        name: str,
        run: Callable[[Supervised], Awaitable[None]],
        *,
        first_delay: float = 2.0,
        max_delay: float = 60.0,
    ) -> None:
        self.name = name
        self._run = run
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.up = False
        self.failures = 0
        self.last_error = ""
        self.stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # the first attempt is up, or has failed

    @property
    def state(self) -> str:
        return "up" if self.up else "down"

    def mark_up(self) -> None:
        """The part is serving (called by ``run`` once it listens)."""
        self.up = True
        self._settled.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"supervised-{self.name}")

    async def _loop(self) -> None:
        delay = self.first_delay
        while not self.stopping.is_set():
            try:
                await self._run(self)
                if self.stopping.is_set():
                    return
                error = "stopped by itself"
            except asyncio.CancelledError:
                raise
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - nothing here may stop serve
                error = str(exc) or type(exc).__name__
            self.up = False
            self.failures += 1
            self.last_error = error
            self._settled.set()
            log.error("%s: %s; recording goes on, retrying in %.0f s", self.name, error, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            delay = min(self.max_delay, delay * 2)

    async def wait_started(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the first attempt to be up or to fail; returns ``up``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)
        return self.up

    async def stop(self, stop_part: Callable[[], Awaitable[None]] | None = None) -> None:
        self.stopping.set()
        if stop_part is not None:
            with contextlib.suppress(Exception):
                await stop_part()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except (TimeoutError, Exception):  # noqa: BLE001
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        self.up = False


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; OSError names the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock
