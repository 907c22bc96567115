"""Node leases and run-once claims, with the database as the only coordinator.

Theory of operation
-------------------
Each node owns one row of ``cluster_nodes`` (its lease): :meth:`NodeLease.acquire` writes it
at start, :meth:`NodeLease.renew` moves ``heartbeat_at`` forward every few seconds, and
:meth:`NodeLease.release` marks it ``stopped`` on a clean stop. A lease whose heartbeat is
older than ``lease_seconds`` belongs to a dead node.

Two processes with the same ``node_id`` would finalise each other's live calls, so
:meth:`acquire` refuses to start over a lease that is still alive: a fresh row written by
another process is watched for up to ``lease_seconds``; if its heartbeat moves, the start
fails with :class:`DuplicateNode`; if it does not, the row was left by a dead process and is
taken. A row written by this host with a pid that no longer runs (or with our own pid: a
container restarted) is our own previous life and is taken at once.

Exactly-once work goes through one pattern on both databases: read the row with
``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL: a survivor racing another one skips the
row the other holds; SQLite ignores the clause, its single writer serialises), then a
compare-and-set ``UPDATE ... WHERE`` on the values just read. Only the ``UPDATE`` that
matched a row wins; every other racer sees a row count of 0. :meth:`claim_takeover` uses it to
choose the one survivor that finalises a dead node's spools; :meth:`claim_job` /
:meth:`finish_job` to run a job (retention purge, notification delivery) once across the
cluster.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from siprec_recorder.errors import ConfigError
from siprec_recorder.storage.db import Database

from .models import ClusterJob, ClusterNode

__all__ = ["DuplicateNode", "NodeInfo", "NodeLease", "default_node_id"]

log = logging.getLogger(__name__)


class DuplicateNode(ConfigError):
    """Another live process already runs with this ``[cluster] node_id``."""


def default_node_id() -> str:
    """The host name (its first label), the default ``[cluster] node_id``."""
    return socket.gethostname().split(".")[0] or "node"


def _pid_running(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One lease row as read."""

    node_id: str
    instance: str
    host: str
    pid: int
    state: str
    heartbeat_at: float
    taken_by: str | None
    taken_at: float | None


def _info(row: ClusterNode) -> NodeInfo:
    return NodeInfo(
        row.node_id,
        row.instance,
        row.host,
        row.pid,
        row.state,
        row.heartbeat_at,
        row.taken_by,
        row.taken_at,
    )


class NodeLease:
    """The lease of node ``node_id`` in ``db`` (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        node_id: str,
        *,
        lease_seconds: float = 15.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.db = db
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.sleep = sleep
        self.host = host if host is not None else socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self.instance = secrets.token_hex(8)
        self.held = False

    # ------------------------------------------------------------------ own lease
    async def acquire(self) -> None:
        """Take this node's lease, or raise :class:`DuplicateNode` if it is held by a live
        process (waits up to ``lease_seconds`` to tell a live holder from a dead one)."""
        watched: NodeInfo | None = None
        deadline = self.clock() + self.lease_seconds + 1.0
        while True:
            row = await self.get(self.node_id)
            now = self.clock()
            if row is None:
                if await self._insert(now):
                    return
                continue
            if row.state == "taking" and self._fresh(await self.get(row.taken_by or ""), now):
                # A survivor is finalising this node's spools of its last life: wait for it.
                log.warning(
                    "node %s: waiting for node %s to finish taking over its spools",
                    self.node_id,
                    row.taken_by,
                )
                await self.sleep(1.0)
                continue
            stale = row.state != "live" or now - row.heartbeat_at > self.lease_seconds
            own_past = row.host == self.host and (row.pid == self.pid or not _pid_running(row.pid))
            if stale or own_past:
                if await self._take(row, now):
                    return
                continue
            if watched is not None and row.heartbeat_at != watched.heartbeat_at:
                raise DuplicateNode(
                    f"[cluster] node_id: node {self.node_id!r} is already running "
                    f"(host {row.host}, pid {row.pid}); give every node its own node_id"
                )
            if watched is None:
                watched = row
            if now > deadline:  # no heartbeat for a whole lease: its holder is gone
                if await self._take(row, now):
                    return
                continue
            await self.sleep(min(1.0, self.lease_seconds / 4))

    def _fresh(self, row: NodeInfo | None, now: float) -> bool:
        return (
            row is not None and row.state == "live" and now - row.heartbeat_at <= self.lease_seconds
        )

    async def _insert(self, now: float) -> bool:
        try:
            async with self.db.session() as s:
                s.add(
                    ClusterNode(
                        node_id=self.node_id,
                        instance=self.instance,
                        host=self.host,
                        pid=self.pid,
                        state="live",
                        started_at=now,
                        heartbeat_at=now,
                    )
                )
                await s.commit()
        except IntegrityError:
            return False  # another process inserted it first: read again
        self.held = True
        return True

    async def _take(self, row: NodeInfo, now: float) -> bool:
        async with self.db.session() as s:
            result = await s.execute(
                update(ClusterNode)
                .where(
                    ClusterNode.node_id == self.node_id,
                    ClusterNode.instance == row.instance,
                    ClusterNode.heartbeat_at == row.heartbeat_at,
                    ClusterNode.state == row.state,
                )
                .values(
                    instance=self.instance,
                    host=self.host,
                    pid=self.pid,
                    state="live",
                    started_at=now,
                    heartbeat_at=now,
                    taken_by=None,
                    taken_at=None,
                )
            )
            await s.commit()
        self.held = bool(getattr(result, "rowcount", 0))
        return self.held

    async def renew(self) -> bool:
        """Move the heartbeat forward; False when the lease is no longer ours."""
        async with self.db.session() as s:
            result = await s.execute(
                update(ClusterNode)
                .where(
                    ClusterNode.node_id == self.node_id,
                    ClusterNode.instance == self.instance,
                    ClusterNode.state == "live",
                )
                .values(heartbeat_at=self.clock())
            )
            await s.commit()
        self.held = bool(getattr(result, "rowcount", 0))
        return self.held

    async def release(self, *, clean: bool = True) -> None:
        """Stop: ``clean`` (nothing of this node is left) marks the lease ``stopped``; else it
        is left expired at once, so that a survivor finalises what remains."""
        values: dict[str, object] = (
            {"state": "stopped", "heartbeat_at": self.clock()} if clean else {"heartbeat_at": 0.0}
        )
        async with self.db.session() as s:
            await s.execute(
                update(ClusterNode)
                .where(ClusterNode.node_id == self.node_id, ClusterNode.instance == self.instance)
                .values(**values)
            )
            await s.commit()
        self.held = False

    # ------------------------------------------------------------------ other nodes
    async def get(self, node_id: str) -> NodeInfo | None:
        async with self.db.session() as s:
            row = await s.get(ClusterNode, node_id)
            return None if row is None else _info(row)

    async def nodes(self) -> list[NodeInfo]:
        async with self.db.session() as s:
            rows = (await s.scalars(select(ClusterNode).order_by(ClusterNode.node_id))).all()
            return [_info(r) for r in rows]

    def _needs_takeover(self, row: NodeInfo, rows: dict[str, NodeInfo], now: float) -> bool:
        if row.node_id == self.node_id:
            return False
        if row.state == "live":
            return now - row.heartbeat_at > self.lease_seconds
        if row.state == "taking":  # its taker died too
            return not self._fresh(rows.get(row.taken_by or ""), now)
        return False

    async def dead_nodes(self) -> list[str]:
        """Nodes whose lease expired with nobody (alive) finalising what they left."""
        now = self.clock()
        rows = {r.node_id: r for r in await self.nodes()}
        return [n for n, r in rows.items() if self._needs_takeover(r, rows, now)]

    async def claim_takeover(self, node_id: str) -> bool:
        """Become the one survivor that finalises ``node_id``'s spools (True: we are)."""
        async with self.db.session() as s:
            row = (
                await s.scalars(
                    select(ClusterNode)
                    .where(ClusterNode.node_id == node_id)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if row is None:
                return False  # gone, or another survivor holds it right now
            seen = _info(row)
            rows = {r.node_id: r for r in await self.nodes()}
            if not self._needs_takeover(seen, rows, self.clock()):
                return False
            result = await s.execute(
                update(ClusterNode)
                .where(
                    ClusterNode.node_id == node_id,
                    ClusterNode.instance == seen.instance,
                    ClusterNode.state == seen.state,
                    ClusterNode.heartbeat_at == seen.heartbeat_at,
                    ClusterNode.taken_at.is_(None)
                    if seen.taken_at is None
                    else ClusterNode.taken_at == seen.taken_at,
                )
                .values(state="taking", taken_by=self.node_id, taken_at=self.clock())
            )
            await s.commit()
            return bool(getattr(result, "rowcount", 0))

    async def finish_takeover(self, node_id: str, *, done: bool) -> None:
        """The takeover ended: ``done`` marks the dead node ``stopped``; otherwise the row goes
        back to ``live`` (expired) so that a later pass tries again."""
        async with self.db.session() as s:
            await s.execute(
                update(ClusterNode)
                .where(
                    ClusterNode.node_id == node_id,
                    ClusterNode.state == "taking",
                    ClusterNode.taken_by == self.node_id,
                )
                .values(state="stopped" if done else "live", taken_by=None, taken_at=None)
            )
            await s.commit()

    async def hold_back(self, node_id: str) -> None:
        """Give a claimed takeover back untouched (its owner turned out to be alive)."""
        await self.finish_takeover(node_id, done=False)

    # ------------------------------------------------------------------ run-once jobs
    async def claim_job(
        self, name: str, *, hold_seconds: float, not_before: float | None = None
    ) -> bool:
        """Claim job ``name`` for ``hold_seconds`` unless another node holds it or it last ran
        after ``not_before`` (epoch seconds). True: run it, then call :meth:`finish_job`."""
        now = self.clock()
        try:
            async with self.db.session() as s:
                row = (
                    await s.scalars(
                        select(ClusterJob)
                        .where(ClusterJob.name == name)
                        .with_for_update(skip_locked=True)
                    )
                ).first()
                if row is None:
                    if await s.get(ClusterJob, name) is not None:
                        return False  # locked by a racer (PostgreSQL skipped it)
                    s.add(
                        ClusterJob(
                            name=name,
                            claimed_by=self.node_id,
                            claimed_until=now + hold_seconds,
                            last_run_at=0.0,
                        )
                    )
                    await s.commit()
                    return True
                if row.claimed_until > now or (
                    not_before is not None and row.last_run_at > not_before
                ):
                    return False
                result = await s.execute(
                    update(ClusterJob)
                    .where(
                        ClusterJob.name == name,
                        ClusterJob.claimed_until == row.claimed_until,
                        ClusterJob.last_run_at == row.last_run_at,
                    )
                    .values(claimed_by=self.node_id, claimed_until=now + hold_seconds)
                )
                await s.commit()
                return bool(getattr(result, "rowcount", 0))
        except IntegrityError:
            return False  # two first runs at once: the other inserted the row

    async def finish_job(self, name: str, result: str) -> None:
        """Release job ``name`` and note when it ran and what it reported."""
        async with self.db.session() as s:
            await s.execute(
                update(ClusterJob)
                .where(ClusterJob.name == name, ClusterJob.claimed_by == self.node_id)
                .values(claimed_until=0.0, last_run_at=self.clock(), last_result=result[:2000])
            )
            await s.commit()
