"""Where finished recordings are kept: the folder, or an S3-compatible object store (WORM).

Theory of operation
-------------------
A recording is finished into the local recordings folder (MP3, JSON sidecar, kept raw RTP),
exactly as without an object store; that folder is then the node's staging area.
:class:`ObjectStore` is the small interface the rest of the product uses for stored objects,
keyed by the same relative path the index holds (``{number}/{YYYY}/{MM}/{DD}/{name}``):
:class:`FolderStore` is the folder itself, :class:`S3Store` a bucket and prefix.

An upload is *verified*: the object is sent with our SHA-256 (``x-amz-checksum-sha256``, which
the store checks on receipt and refuses on mismatch), and the checksum, size, retention and
legal hold that the store then reports are compared with ours before anything local is let go
(see :mod:`.uploader`). With ``object_lock = "compliance"`` every object carries Object Lock
retention until its ``retention_until`` and, when held, an S3 legal hold: the store itself
refuses to delete it early, whoever asks, this recorder included. A delete is therefore a
request: :meth:`ObjectStore.delete` removes every version of a key or raises
:class:`DeleteRefused` with the store's reason.

The S3 client is aiobotocore: it covers Object Lock (retention, legal hold, versioned deletes)
and checksums, which obstore's object_store API does not expose; see ``bench/bench_store.py``
for what it costs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = [
    "DeleteRefused",
    "FolderStore",
    "ObjectInfo",
    "ObjectStore",
    "S3Settings",
    "S3Store",
    "StoreError",
    "parse_store_url",
]

_CHUNK = 64 * 1024


class StoreError(Exception):
    """The store failed or answered something other than what was sent (retry later)."""


class DeleteRefused(Exception):
    """The store would not delete an object (Object Lock retention or legal hold)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """A stored object as the store describes it."""

    key: str
    size: int
    sha256: str | None  # hex; None where the store keeps no SHA-256 of it
    retain_until: datetime | None = None
    lock_mode: str | None = None
    legal_hold: bool = False


class ObjectStore(Protocol):
    """The finished recordings' store."""

    url: str
    is_local: bool

    async def put_file(
        self, key: str, path: Path, *, sha256: str, retain_until: datetime | None, legal_hold: bool
    ) -> ObjectInfo:
        """Store ``path`` under ``key``; the object's description, as the store reports it."""
        ...

    async def head(self, key: str) -> ObjectInfo | None:
        """The object at ``key`` (``None``: there is none)."""
        ...

    def stream(self, key: str, first: int, length: int) -> AsyncIterator[bytes]:
        """``length`` bytes of ``key`` from ``first``, in chunks."""
        ...

    async def read(self, key: str) -> bytes:
        """The whole object."""
        ...

    async def delete(self, key: str) -> None:
        """Delete every version of ``key`` or raise :class:`DeleteRefused`."""
        ...

    async def protect(self, key: str, retain_until: datetime | None, legal_hold: bool) -> bool:
        """Raise the object's retention to ``retain_until`` (never lower it) and set its legal
        hold; False when there is no such object (yet)."""
        ...

    async def close(self) -> None: ...


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class FolderStore:
    """The recordings folder (local or a share) as the store: objects are its files."""

    is_local = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = self.root.resolve().as_uri()

    def _path(self, key: str) -> Path:
        from .files import FileLayout

        return FileLayout(self.root).absolute(key)

    async def put_file(
        self, key: str, path: Path, *, sha256: str, retain_until: datetime | None, legal_hold: bool
    ) -> ObjectInfo:
        target = self._path(key)
        if target.resolve() != Path(path).resolve():
            from .files import FileLayout

            await asyncio.to_thread(
                FileLayout(self.root).write_atomic, key, Path(path).read_bytes()
            )
        info = await self.head(key)
        if info is None or info.sha256 != sha256:
            raise StoreError(f"{key}: stored file does not match its SHA-256")
        return info

    async def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        sha, size = await asyncio.to_thread(_sha256_file, path)
        return ObjectInfo(key=key, size=size, sha256=sha)

    async def stream(self, key: str, first: int, length: int) -> AsyncIterator[bytes]:
        import anyio

        async with await anyio.open_file(self._path(key), "rb") as fh:
            await fh.seek(first)
            remaining = length
            while remaining > 0:
                chunk = await fh.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(lambda: path.unlink(missing_ok=True))

    async def protect(self, key: str, retain_until: datetime | None, legal_hold: bool) -> bool:
        """A folder has no retention or holds of its own: the index's are the protection."""
        return self._path(key).is_file()

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class S3Settings:
    """How to reach a bucket: ``s3://bucket/prefix`` plus endpoint, region and credentials."""

    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None
    object_lock: str  # "", "compliance" or "governance"
    timeout: float = 30.0


def parse_store_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")``; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError(f"expected s3://BUCKET[/PREFIX], got {url!r}")
    bucket = parts.netloc
    if not bucket or not all(c.isalnum() or c in "-." for c in bucket):
        raise ValueError(f"not a bucket name in {url!r}")
    prefix = parts.path.strip("/")
    return bucket, (prefix + "/") if prefix else ""


class S3Store:
    """A bucket (and prefix) of an S3-compatible store, through aiobotocore."""

    is_local = False

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.url = f"s3://{settings.bucket}/{settings.prefix}"
        self._client: Any = None
        self._stack: Any = None
        self._lock = asyncio.Lock()

    async def _c(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                from contextlib import AsyncExitStack

                from aiobotocore.config import AioConfig
                from aiobotocore.session import get_session

                s = self.settings
                stack = AsyncExitStack()
                self._client = await stack.enter_async_context(
                    get_session().create_client(
                        "s3",
                        endpoint_url=s.endpoint_url,
                        region_name=s.region,
                        aws_access_key_id=s.access_key_id,
                        aws_secret_access_key=s.secret_access_key,
                        config=AioConfig(
                            connect_timeout=s.timeout,
                            read_timeout=s.timeout,
                            retries={"max_attempts": 2, "mode": "standard"},
                            s3={"addressing_style": "path"},
                            # Checksums only where we ask for them (ours, SHA-256).
                            request_checksum_calculation="when_required",
                            response_checksum_validation="when_required",
                        ),
                    )
                )
                self._stack = stack
        return self._client

    def _key(self, key: str) -> str:
        return self.settings.prefix + key

    @staticmethod
    def _code(exc: BaseException) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    async def put_file(
        self, key: str, path: Path, *, sha256: str, retain_until: datetime | None, legal_hold: bool
    ) -> ObjectInfo:
        client = await self._c()
        body = await asyncio.to_thread(Path(path).read_bytes)  # recordings are MiB, not GiB
        extra: dict[str, Any] = {}
        mode = self.settings.object_lock
        if mode and retain_until is not None:
            extra["ObjectLockMode"] = mode.upper()
            extra["ObjectLockRetainUntilDate"] = retain_until.astimezone(UTC)
        if mode and legal_hold:
            extra["ObjectLockLegalHoldStatus"] = "ON"
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        try:
            answer = await client.put_object(
                Bucket=self.settings.bucket,
                Key=self._key(key),
                Body=body,
                ChecksumSHA256=checksum,
                ContentType="audio/mpeg" if key.endswith(".mp3") else "application/octet-stream",
                **extra,
            )
        except Exception as exc:
            raise StoreError(f"{key}: upload failed: {self._code(exc) or exc}") from exc
        if answer.get("ChecksumSHA256") not in (None, checksum):
            raise StoreError(f"{key}: the store received other bytes than were sent")
        info = await self.head(key)
        if info is None:
            raise StoreError(f"{key}: not in the store after its upload")
        if info.size != len(body) or (info.sha256 is not None and info.sha256 != sha256):
            raise StoreError(f"{key}: stored object does not match its SHA-256 or size")
        if info.sha256 is None and answer.get("ChecksumSHA256") != checksum:
            raise StoreError(f"{key}: the store reports no SHA-256 to check the upload against")
        if mode and retain_until is not None and info.retain_until is None:
            raise StoreError(f"{key}: the store kept no Object Lock retention (bucket not locked?)")
        return info

    async def head(self, key: str) -> ObjectInfo | None:
        client = await self._c()
        try:
            h = await client.head_object(
                Bucket=self.settings.bucket, Key=self._key(key), ChecksumMode="ENABLED"
            )
        except Exception as exc:
            if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StoreError(f"{key}: {self._code(exc) or exc}") from exc
        checksum = h.get("ChecksumSHA256")
        sha = None
        if checksum and "-" not in checksum:  # "...-N" is a checksum of part checksums
            sha = base64.b64decode(checksum).hex()
        until = h.get("ObjectLockRetainUntilDate")
        return ObjectInfo(
            key=key,
            size=int(h.get("ContentLength", 0)),
            sha256=sha,
            retain_until=until.astimezone(UTC) if isinstance(until, datetime) else None,
            lock_mode=h.get("ObjectLockMode"),
            legal_hold=h.get("ObjectLockLegalHoldStatus") == "ON",
        )

    async def stream(self, key: str, first: int, length: int) -> AsyncIterator[bytes]:
        if length <= 0:
            return
        client = await self._c()
        answer = await client.get_object(
            Bucket=self.settings.bucket,
            Key=self._key(key),
            Range=f"bytes={first}-{first + length - 1}",
        )
        async with answer["Body"] as body:
            while chunk := await body.read(_CHUNK):
                yield chunk

    async def read(self, key: str) -> bytes:
        client = await self._c()
        try:
            answer = await client.get_object(Bucket=self.settings.bucket, Key=self._key(key))
            async with answer["Body"] as body:
                return bytes(await body.read())
        except Exception as exc:
            raise StoreError(f"{key}: {self._code(exc) or exc}") from exc

    async def delete(self, key: str) -> None:
        client = await self._c()
        full = self._key(key)
        listing = await client.list_object_versions(Bucket=self.settings.bucket, Prefix=full)
        versions = [
            v["VersionId"]
            for group in ("Versions", "DeleteMarkers")
            for v in listing.get(group, [])
            if v["Key"] == full
        ]
        refused: list[str] = []
        for version in versions or [None]:
            kwargs: dict[str, Any] = {"Bucket": self.settings.bucket, "Key": full}
            if version is not None:
                kwargs["VersionId"] = version
            try:
                await client.delete_object(**kwargs)
            except Exception as exc:
                code = self._code(exc)
                if code in ("AccessDenied", "ObjectLocked", "InvalidRequest"):
                    refused.append(code)
                    continue
                raise StoreError(f"{key}: delete failed: {code or exc}") from exc
        if refused:
            raise DeleteRefused(f"{key}: the store refused ({refused[0]}: Object Lock)")

    async def protect(self, key: str, retain_until: datetime | None, legal_hold: bool) -> bool:
        info = await self.head(key)
        if info is None:
            return False
        mode = self.settings.object_lock
        if not mode:
            return True
        client = await self._c()
        bucket, full = self.settings.bucket, self._key(key)
        try:
            if retain_until is not None and (
                info.retain_until is None or info.retain_until < retain_until
            ):
                await client.put_object_retention(
                    Bucket=bucket,
                    Key=full,
                    Retention={"Mode": mode.upper(), "RetainUntilDate": retain_until},
                )
            if info.legal_hold != legal_hold:
                await client.put_object_legal_hold(
                    Bucket=bucket, Key=full, LegalHold={"Status": "ON" if legal_hold else "OFF"}
                )
        except Exception as exc:
            raise StoreError(f"{key}: retention/legal hold: {self._code(exc) or exc}") from exc
        return True

    async def ensure_bucket(self) -> None:
        """Create the bucket (Object Lock enabled when configured) if it does not exist."""
        client = await self._c()
        try:
            await client.head_bucket(Bucket=self.settings.bucket)
            return
        except Exception as exc:
            if self._code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise StoreError(
                    f"bucket {self.settings.bucket}: {self._code(exc) or exc}"
                ) from exc
        kwargs: dict[str, Any] = {"Bucket": self.settings.bucket}
        if self.settings.object_lock:
            kwargs["ObjectLockEnabledForBucket"] = True
        await client.create_bucket(**kwargs)

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._client = None
        self._stack = None


def credentials_from_env(access_env: str, secret_env: str) -> tuple[str | None, str | None]:
    """The access key id and secret from the named environment variables (None if unset)."""
    return (os.environ.get(access_env) or None, os.environ.get(secret_env) or None)
