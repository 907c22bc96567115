"""``siprec-recorder portal``: the portal alone, for a host that only serves compliance officers.

It opens the same index and recordings store as the recorder nodes (``[storage]``) and serves
``[web]`` until SIGINT/SIGTERM. It records nothing and takes no node lease, so any number of
portal hosts can run beside the nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

__all__ = ["register"]

log = logging.getLogger("siprec_recorder")


def register(subparsers: Any) -> None:
    """Add the ``portal`` command to the main CLI."""
    p = subparsers.add_parser("portal", help="run the portal alone (no recording)")
    p.add_argument("--listen", help="HOST:PORT (default: [web] listen)")
    p.set_defaults(run=cmd_portal)


def cmd_portal(args: argparse.Namespace) -> int:
    from .cli import _load
    from .logging_setup import setup_logging

    config = _load(args)
    setup_logging(config.log.level, config.log.format)
    return asyncio.run(_serve(config, args.listen or config.web.listen))


async def _serve(config: Any, listen: str) -> int:
    import uvicorn

    from .app import Recorder, open_store
    from .storage.db import Database
    from .storage.files import FileLayout
    from .supervise import bind_tcp
    from .web.app import WebSettings, create_app

    host, _, port = listen.rpartition(":")
    try:
        sock = bind_tcp(host.strip("[]"), int(port))
    except OSError as exc:
        print(f"siprec-recorder portal: {exc.strerror}", flush=True)
        return 3
    db = Database(config.database_url)
    await db.open()
    try:
        c = config.web
        app = create_app(
            db,
            FileLayout(config.recordings_path),
            WebSettings(
                secure_cookies=bool(c.tls_certificate),
                keyring=Recorder(config)._keyring(),
                # The recorder nodes' object store: playback, and legal holds carried to it.
                store=open_store(config) if config.storage.recordings_url else None,
                retention_years=int(config.storage.retention_years),
            ),
            None,
        )
        kwargs: dict[str, Any] = {}
        if c.tls_certificate:
            kwargs = {"ssl_certfile": c.tls_certificate, "ssl_keyfile": c.tls_private_key}
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", **kwargs))
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        log.info("siprec-recorder portal on %s (recordings in %s)", listen, config.recordings_path)
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        await db.close()
    return 0
