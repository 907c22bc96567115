"""Storage: the index database, the audit ledger, the recordings tree, the spool, MP3.

Modules (import them directly; this package imports nothing so that a worker process that only
needs :mod:`.files`, :mod:`.spool` or :mod:`.mp3` does not load SQLAlchemy):

* :mod:`.models` -- the one declarative ``Base`` and the tables of this package;
* :mod:`.db` -- ``Database(url)``: async engine, SQLite settings, migrations;
* :mod:`.index` -- ``RecordingIndex`` (protocol), ``SqlIndex``, the value types, number search;
* :mod:`.ledger` -- the append-only hash-chained audit trail;
* :mod:`.files` -- ``FileLayout``: where recordings live, atomic writes;
* :mod:`.spool` -- ``SpoolStore`` / ``SpoolSession``: calls in progress, crash-safe;
* :mod:`.mp3` -- ``encode_mp3`` (LAME) and ``decode_mp3`` (PyAV);
* :mod:`.integrity` -- ``verify``: files against the index, and the ledger chain.

``storage`` imports nothing of ours above it (only ``siprec_recorder.errors``).
"""
