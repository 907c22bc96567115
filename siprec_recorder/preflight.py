"""Checks of the machine against the configuration, made before anything is started.

An operator's mistake (a share that is not mounted, a folder the service user cannot write, a
port another program holds, a command run from the wrong folder) must give one line that names
the key, the path or the port and says what to do, and must never be papered over: a missing
recordings folder is not created (unless ``[storage] create_recordings_dir = true``), and the
commands that read the index (``search``, ``verify``, ``report``) do not create an empty one.
Every failure here is an :class:`~siprec_recorder.errors.OperatorError`.
"""

from __future__ import annotations

import errno
import getpass
import os
import socket
from pathlib import Path

from sqlalchemy.engine import make_url

from .config import Config, StorageConfig, mask_secret
from .errors import OperatorError

__all__ = [
    "first_unbindable",
    "listen_error",
    "prepare_recordings_dir",
    "require_index",
    "sqlite_index_path",
]


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return f"uid {os.getuid()}"


def prepare_recordings_dir(storage: StorageConfig) -> Path:
    """The recordings folder, checked: it exists (or is created when the configuration says
    so), it is a folder, and this process can create files in it."""
    root = Path(storage.recordings_dir)
    shown = root.absolute()
    key = "[storage] recordings_dir"
    if root.exists() and not root.is_dir():
        raise OperatorError(f"{key}: {shown} is a file, not a folder; point it at a folder")
    if not root.exists():
        if not storage.create_recordings_dir:
            raise OperatorError(
                f"{key}: {shown} does not exist; mount the share or create the folder, "
                "or set [storage] create_recordings_dir = true"
            )
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OperatorError(
                f"{key}: cannot create {shown}: {exc.strerror or exc}; create it by hand"
            ) from None
    probe = root / f".write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OperatorError(
            f"{key}: {shown} is not writable by {_user()} ({exc.strerror or exc}); "
            "give that user write access (chown or chmod) or run as the folder's owner"
        ) from None
    return root


def sqlite_index_path(config: Config) -> Path | None:
    """The SQLite index file, or None when the index is not a SQLite file."""
    url = make_url(config.database_url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


async def require_index(config: Config) -> None:
    """Refuse to go on when the index does not exist yet: a command that reads it, run with the
    wrong configuration or from the wrong folder, must not report an empty new one as fine."""
    path = sqlite_index_path(config)
    if path is not None:
        if not path.is_file():
            raise OperatorError(
                f"[storage] recordings_dir: no index at {path} (configuration: "
                f"{config.source}); run where serve runs, or pass --config with its file"
            )
        return
    from sqlalchemy import inspect
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(config.database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda c: inspect(c).has_table("recordings"))
    except (OSError, DBAPIError) as exc:
        raise OperatorError(
            f"[storage] database_url: cannot connect to {mask_secret(config.database_url)}: "
            f"{_first_line(exc)}"
        ) from None
    finally:
        await engine.dispose()
    if not found:
        raise OperatorError(
            f"[storage] database_url: {mask_secret(config.database_url)} holds no index yet; "
            "run `siprec-recorder db upgrade` (or start serve once) against it, or check the URL"
        )


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def listen_error(key: str, spec: str, exc: OSError) -> OperatorError:
    """``[sip] listen: cannot listen on udp:127.0.0.1:5060: ...; what to do``."""
    port = spec.rpartition(":")[2]
    if exc.errno == errno.EADDRINUSE:
        why = (
            f"the port is in use by another program (see `ss -lntup | grep :{port}`); "
            f"stop it or change {key}"
        )
    elif exc.errno == errno.EACCES:
        why = (
            "ports below 1024 need root or CAP_NET_BIND_SERVICE; use a higher port or grant "
            "the capability (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE)"
        )
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = f"no interface of this host has that address; change {key}"
    else:
        why = f"{exc.strerror or exc}; change {key}"
    return OperatorError(f"{key}: cannot listen on {spec}: {why}")


def first_unbindable(specs: list[str]) -> tuple[str, OSError] | None:
    """The first ``udp:|tcp:|tls:HOST:PORT`` that cannot be bound now, and why; used after a
    listener failed to start, to name the one that did."""
    from .sip.transport import parse_listen  # loads the SIP layer only when needed

    for spec in specs:
        transport, host, port = parse_listen(spec)
        try:
            infos = socket.getaddrinfo(
                host or None,
                port,
                type=socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM,
                flags=socket.AI_PASSIVE,
            )
        except socket.gaierror as exc:
            return spec, OSError(errno.EADDRNOTAVAIL, str(exc))
        family, kind, proto, _name, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            if kind == socket.SOCK_STREAM:
                # as asyncio's create_server does: a port in TIME_WAIT is not "taken"
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                return spec, exc
    return None


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def exposure_warnings(config: Config) -> list[str]:
    """Settings that work but surprise: a recorder on the network that refuses every SBC, and
    a portal or metrics endpoint reachable from the network without TLS or authentication."""
    from .sip.transport import parse_listen  # loads the SIP layer only when needed

    out: list[str] = []
    sip_hosts = [parse_listen(spec)[1] for spec in config.sip.listen]
    if not config.sip.allowed_sources and not all(_is_loopback(h) for h in sip_hosts):
        out.append(
            "[sip] allowed_sources is empty: only loopback may send calls, every SBC gets 403; "
            "list your SBCs' addresses (e.g. SIPREC__SIP__ALLOWED_SOURCES=10.1.2.0/24)"
        )
    web = config.web
    if web.enabled and not web.tls_certificate and not _is_loopback(web.listen.rpartition(":")[0]):
        out.append(
            f"[web] listen {web.listen}: the portal is reachable from the network without TLS; "
            "set [web] tls_certificate or put a TLS proxy in front"
        )
    metrics = config.metrics.listen
    if metrics and not _is_loopback(metrics.rpartition(":")[0]):
        out.append(
            f"[metrics] listen {metrics}: metrics are served to the network unauthenticated; "
            "restrict access (firewall) or listen on 127.0.0.1"
        )
    return out
