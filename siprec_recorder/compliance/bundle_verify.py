"""Check an e-discovery bundle offline, with nothing but the bundle and Python 3.

This file uses the standard library only: ``siprec-recorder export`` copies it into every
bundle as ``verify_bundle.py``, so that a reviewer on another machine runs
``python3 verify_bundle.py [BUNDLE_DIR_OR_ZIP]``; ``siprec-recorder verify-export`` runs the
same code. What it checks:

1. ``SHA256SUMS`` names every other file of the bundle, and each file has that SHA-256;
2. ``ledger.jsonl`` is the recorder's audit ledger from its first entry: each entry's hash is
   SHA-256(previous hash + canonical JSON of [seq, ts, actor, action, subject, details]),
   sequence numbers have no gap, and the last entry is the head in ``chain_head.json``;
3. every recording of ``manifest.json`` has its finishing ledger entry, whose SHA-256 is the
   stored file's, and the file in the bundle (and its sidecar) says the same; a recording's
   transcript has its ``transcript.stored`` entry (the last one) in the same way;
4. ``manifest.csv`` says what ``manifest.json`` says, row by row.

A flipped byte in any file fails (1); a rewritten manifest, sidecar or ledger that is made
consistent with a new ``SHA256SUMS`` still fails (2) or (3) unless the whole chain is forged,
which the recorder's own ledger (holding this export's event with the digest of
``SHA256SUMS``) exposes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

GENESIS_HASH = "0" * 64
FINISH_ACTIONS = ("recording.finished", "recording.interrupted", "recording.failed")
TRANSCRIPT_ACTION = "transcript.stored"
# The columns of manifest.csv before transcripts were exported: bundles made then still verify.
CSV_FIELDS_WITHOUT_TRANSCRIPTS = (
    "id",
    "call_id",
    "state",
    "direction",
    "recorded_number",
    "other_number",
    "participants",
    "start_utc",
    "end_utc",
    "start_local",
    "end_local",
    "timezone",
    "duration_s",
    "labels",
    "audio_file",
    "audio_sha256",
    "stored_sha256",
    "sidecar_file",
    "encrypted",
    "ledger_seqs",
)
CSV_FIELDS = (*CSV_FIELDS_WITHOUT_TRANSCRIPTS, "transcript_file", "transcript_sha256")


class Bundle:
    """The files of a bundle folder or zip, by relative path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path) if path.is_file() else None

    def names(self) -> list[str]:
        if self._zip is not None:
            return sorted(n for n in self._zip.namelist() if not n.endswith("/"))
        return sorted(
            p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
        )

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def csv_row(row: dict[str, Any], fields: tuple[str, ...] = CSV_FIELDS) -> dict[str, str]:
    """A manifest row as the CSV writes it."""
    out: dict[str, str] = {}
    for field in fields:
        value = row.get(field)
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        out[field] = "" if value is None else str(value)
    return out


def verify_bundle(path: Path) -> tuple[list[str], str]:
    """``(problems, summary)``; no problems means the bundle is intact."""
    bundle = Bundle(path)
    problems: list[str] = []
    names = bundle.names()
    if "SHA256SUMS" not in names:
        return ["SHA256SUMS: missing"], ""
    listed: dict[str, str] = {}
    for line in bundle.read("SHA256SUMS").decode("utf-8").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    for name in names:
        if name == "SHA256SUMS":
            continue
        if name not in listed:
            problems.append(f"{name}: not listed in SHA256SUMS")
        elif hashlib.sha256(bundle.read(name)).hexdigest() != listed[name]:
            problems.append(f"{name}: SHA-256 differs from SHA256SUMS (modified)")
    for name in listed:
        if name not in names:
            problems.append(f"{name}: listed in SHA256SUMS but missing")

    entries: dict[int, dict[str, Any]] = {}
    prev, expected = GENESIS_HASH, 1
    try:
        for line in bundle.read("ledger.jsonl").decode("utf-8").splitlines():
            e = json.loads(line)
            body = canonical_json(
                [e["seq"], e["ts"], e["actor"], e["action"], e["subject"], e["details"]]
            )
            digest = hashlib.sha256(prev.encode("ascii") + body.encode("utf-8")).hexdigest()
            if e["seq"] != expected:
                problems.append(f"ledger: entry {e['seq']} where {expected} was expected")
            if e["prev_hash"] != prev or e["hash"] != digest:
                problems.append(f"ledger: entry {e['seq']} does not chain (altered)")
            prev, expected = e["hash"], e["seq"] + 1
            entries[e["seq"]] = e
        head = json.loads(bundle.read("chain_head.json"))
        if head.get("seq") != expected - 1 or head.get("hash") != prev:
            problems.append("ledger: its last entry is not the chain head of chain_head.json")
    except (KeyError, ValueError, TypeError) as exc:
        problems.append(f"ledger: unreadable ({type(exc).__name__}: {exc})")

    try:
        manifest = json.loads(bundle.read("manifest.json"))
        rows = manifest["recordings"]
        reader = csv.DictReader(io.StringIO(bundle.read("manifest.csv").decode("utf-8")))
        csv_rows = list(reader)
        columns = tuple(reader.fieldnames or ())
    except (KeyError, ValueError, TypeError) as exc:
        return [*problems, f"manifest: unreadable ({exc})"], ""
    if columns not in (CSV_FIELDS, CSV_FIELDS_WITHOUT_TRANSCRIPTS):
        problems.append("manifest.csv: its columns are not those of an export")
        columns = CSV_FIELDS
    elif columns != CSV_FIELDS and any(row.get("transcript_file") for row in rows):
        problems.append("manifest.csv: no transcript columns, yet manifest.json has transcripts")
    if len(csv_rows) != len(rows):
        problems.append(f"manifest.csv has {len(csv_rows)} rows, manifest.json {len(rows)}")
    for i, (row, crow) in enumerate(zip(rows, csv_rows, strict=False), start=1):
        if csv_row(row, columns) != dict(crow):
            problems.append(f"manifest.csv row {i} ({row.get('id')}) differs from manifest.json")
    finishes = {e["subject"]: e for e in entries.values() if e["action"] in FINISH_ACTIONS}
    # the last one counts: a recording transcribed again has a later entry
    transcribed = {
        e["subject"]: e
        for e in sorted(entries.values(), key=lambda e: int(e["seq"]))
        if e["action"] == TRANSCRIPT_ACTION
    }
    for row in rows:
        rid = row.get("id")
        entry = finishes.get(rid)
        if entry is None:
            problems.append(f"{rid}: no finishing ledger entry")
            continue
        stored = entry["details"].get("sha256")
        if stored != row.get("stored_sha256"):
            problems.append(
                f"{rid}: manifest SHA-256 is not the one in ledger entry {entry['seq']}"
            )
        audio = row.get("audio_file")
        if audio:
            if listed.get(audio) != row.get("audio_sha256"):
                problems.append(f"{rid}: {audio} is not the file the manifest describes")
            if not row.get("encrypted") and row.get("audio_sha256") != stored:
                problems.append(f"{rid}: {audio} is not the recorded file of the ledger")
        if row.get("encrypted") and row.get("stored_file"):
            if listed.get(row["stored_file"]) != stored:
                problems.append(f"{rid}: stored (encrypted) file differs from the ledger's")
        sidecar = row.get("sidecar_file")
        if sidecar and sidecar in names:
            try:
                doc = json.loads(bundle.read(sidecar))
            except ValueError:
                problems.append(f"{rid}: sidecar is not JSON")
                continue
            if doc.get("sha256") != stored or doc.get("id") != rid:
                problems.append(f"{rid}: sidecar does not describe the ledger's file")
        if row.get("transcript_file"):
            problems.extend(_check_transcript(bundle, names, listed, row, transcribed.get(rid)))
        elif rid in transcribed and columns == CSV_FIELDS:
            # (a bundle made before transcripts were exported has the older columns)
            problems.append(f"{rid}: the ledger records a transcript the bundle does not hold")
    summary = (
        f"{len(rows)} recording(s), ledger of {len(entries)} entries chained to head {prev[:16]}..."
    )
    return problems, summary


def _check_transcript(
    bundle: Bundle,
    names: list[str],
    listed: dict[str, str],
    row: dict[str, Any],
    entry: dict[str, Any] | None,
) -> list[str]:
    """What is wrong with the transcript of a manifest row, against its ledger entry."""
    rid, name = row.get("id"), row["transcript_file"]
    if entry is None:
        return [f"{rid}: transcript without a {TRANSCRIPT_ACTION} ledger entry"]
    problems = []
    stored = entry["details"].get("sha256")
    if stored != row.get("transcript_stored_sha256"):
        problems.append(
            f"{rid}: manifest transcript SHA-256 is not the one in ledger entry {entry['seq']}"
        )
    if listed.get(name) != row.get("transcript_sha256"):
        problems.append(f"{rid}: {name} is not the transcript the manifest describes")
    stored_file = row.get("transcript_stored_file")
    if stored_file:
        if listed.get(stored_file) != stored:
            problems.append(f"{rid}: stored (encrypted) transcript differs from the ledger's")
    elif row.get("transcript_sha256") != stored:
        problems.append(f"{rid}: {name} is not the stored transcript of the ledger")
    if name in names:
        try:
            doc = json.loads(bundle.read(name))
        except ValueError:
            return [*problems, f"{rid}: transcript is not JSON"]
        if not isinstance(doc, dict) or doc.get("id") != rid:
            problems.append(f"{rid}: transcript belongs to another recording")
    return problems


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    problems, summary = verify_bundle(path)
    for p in problems:
        print(f"problem: {p}")
    if problems:
        print(f"{len(problems)} problem(s): the bundle is NOT intact", file=sys.stderr)
        return 1
    print(f"ok: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
