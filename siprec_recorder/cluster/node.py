"""A node's part in the cluster while ``serve`` runs: heartbeat, and takeover of dead nodes.

Theory of operation
-------------------
:class:`NodeService` runs one task. Every ``heartbeat_interval`` it renews the node's lease in
the database and stamps the node's spool store (``.alive``), so that both the database and
the shared folder say the node lives. Every ``check_interval`` it asks the lease for dead
nodes; for each, :meth:`NodeLease.claim_takeover` picks exactly one survivor. The winner
checks the dead node's ``.alive`` stamp first: a stamp younger than the lease means the
owner still writes to the shared folder (cut off from the database, not dead), and the claim
is given back untouched. Otherwise ``take_over(node_id)`` finalises the dead node's spools as
``interrupted`` and the lease row goes to ``stopped``.

The heartbeat and the takeover check are two tasks: finalising a dead node's spools takes
seconds (tens of calls), and a heartbeat that waited for it would let this node's own lease
expire, so that another survivor took over *its* live calls.

So a dead node's calls are indexed within about ``lease_seconds + check_interval`` of its
last heartbeat, plus the time to finalise them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .lease import NodeLease

__all__ = ["NodeService"]

log = logging.getLogger(__name__)


class NodeService:
    """Heartbeat and takeover loop of one node (start it after the lease is acquired)."""

    def __init__(
        self,
        lease: NodeLease,
        store_of: Callable[[str], Any],
        take_over: Callable[[str], Awaitable[bool]],
        *,
        heartbeat_interval: float = 3.0,
        check_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lease = lease
        self.store_of = store_of  # node id -> that node's SpoolStore
        self.take_over = take_over
        self.heartbeat_interval = heartbeat_interval
        self.check_interval = check_interval
        self.clock = clock
        self.takeovers = 0
        self.lease_lost = 0
        self.heartbeat_failures = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.store_of(self.lease.node_id).touch_alive(self.clock())
        self._tasks = [
            asyncio.create_task(self._beat(), name="cluster-heartbeat"),
            asyncio.create_task(self._watch(), name="cluster-takeover"),
        ]

    async def stop(self, *, clean: bool = True) -> None:
        """Stop the loop and release the lease (``clean``: no spool left; otherwise the lease
        is left expired, so that a survivor finalises what remains at once)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.lease.release(clean=clean)
        except Exception:  # noqa: BLE001 - the lease then expires by itself
            log.exception("cannot release the node lease")

    async def _beat(self) -> None:
        while True:
            await self.heartbeat()
            await asyncio.sleep(self.heartbeat_interval)

    async def _watch(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("takeover check failed")
            await asyncio.sleep(self.check_interval)

    async def heartbeat(self) -> None:
        now = self.clock()
        try:
            await asyncio.to_thread(self.store_of(self.lease.node_id).touch_alive, now)
        except OSError as exc:
            log.error("cannot stamp the spool folder's heartbeat: %s", exc)
        try:
            if not await self.lease.renew():
                self.lease_lost += 1
                log.error(
                    "ALERT node %s: lease lost (another process uses this node_id, or the "
                    "database was out of reach longer than the lease); taking it back",
                    self.lease.node_id,
                )
                await self.lease.acquire()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - recording goes on without the database
            self.heartbeat_failures += 1
            log.error("node %s: cannot renew the lease: %s", self.lease.node_id, exc)

    async def check(self) -> list[str]:
        """One takeover pass; returns the nodes this node took over."""
        taken: list[str] = []
        for node_id in await self.lease.dead_nodes():
            if not await self.lease.claim_takeover(node_id):
                continue
            store = self.store_of(node_id)
            stamp = await asyncio.to_thread(store.alive_at)
            if stamp is not None and self.clock() - stamp < self.lease.lease_seconds:
                log.warning(
                    "node %s: lease expired but its spool folder is still stamped; "
                    "leaving its spools alone",
                    node_id,
                )
                await self.lease.hold_back(node_id)
                continue
            log.warning("node %s: lease expired; finalising its spools", node_id)
            done = False
            try:
                done = await self.take_over(node_id)
            finally:
                await self.lease.finish_takeover(node_id, done=done)
            if done:
                self.takeovers += 1
                taken.append(node_id)
                log.warning("node %s: taken over by %s", node_id, self.lease.node_id)
        return taken


async def recover_legacy(
    lease: NodeLease, store: Any, recover: Callable[[Any], Awaitable[bool]]
) -> bool:
    """Finalise the spools of a recorder that ran before nodes had ids (``store`` is the
    folder straight under ``.spool``), once across the cluster, and only when nothing has
    written to them for a whole lease and no other node is alive (one of those could be an
    older version still recording there). True when it ran."""
    if not await asyncio.to_thread(store.orphans):
        return False
    now = lease.clock()
    last = await asyncio.to_thread(store.last_write_at)
    if last is not None and now - last < lease.lease_seconds:
        return False
    others = [
        n
        for n in await lease.nodes()
        if n.node_id != lease.node_id
        and n.state == "live"
        and now - n.heartbeat_at <= lease.lease_seconds
    ]
    if others:
        return False
    if not await lease.claim_job("legacy-spools", hold_seconds=3600):
        return False
    ok = False
    try:
        ok = await recover(store)
    finally:
        await lease.finish_job("legacy-spools", "done" if ok else "spools left")
    return True
