"""The one sanitiser for strings that came from the wire.

Theory of operation
-------------------
The SIP parser decodes header bytes as UTF-8 with ``surrogateescape``: a byte that is not
valid UTF-8 (``0xff`` in a Call-ID) survives as a lone surrogate (``U+DCFF``) so that the
exact bytes can be sent back in an in-dialog request. Such a string cannot be written to a
UTF-8 file, a JSON manifest or a database column, and a control character in it (a CR in a
Call-ID) would forge a line in a text log. So everything taken from the wire passes through
:func:`escape` before it reaches a file, a path, a log line or the index:

* a byte that was not valid UTF-8 becomes ``\\xHH`` (``HH`` >= 80), a C0 control character
  or DEL ``\\xHH`` (``HH`` < 80), a C1 control character or any other lone surrogate
  ``\\uHHHH``, and ``\\`` itself ``\\\\``: the
  result is printable UTF-8 and :func:`unescape` gives the original bytes back;
* with ``limit``, a longer result is cut and ends in ``~`` plus 16 hex digits of the
  SHA-256 of the original bytes, so two long values stay distinct and the length is bounded
  by design instead of being refused after the call was answered.

:func:`wire_bytes` is the inverse of the parser's decoding (what to put back on the wire).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["escape", "unescape", "wire_bytes", "HASH_SUFFIX_LEN"]

HASH_SUFFIX_LEN = 17  # "~" + 16 hex digits
_NEEDS_ESCAPE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_ESCAPED = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def wire_bytes(text: str) -> bytes:
    """The bytes a parsed wire string came from (UTF-8 with ``surrogateescape``)."""
    return text.encode("utf-8", "surrogateescape")


def _escape_char(m: re.Match[str]) -> str:
    ch = m.group(0)
    code = ord(ch)
    if ch == "\\":
        return "\\\\"
    if 0xDC80 <= code <= 0xDCFF:  # a raw byte kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:  # C0 and DEL: the byte is the character
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def escape(text: str, limit: int | None = None) -> str:
    """``text`` as printable, valid UTF-8, reversibly escaped; at most ``limit`` characters."""
    out = _NEEDS_ESCAPE.sub(_escape_char, text)
    if limit is not None and len(out) > limit:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        keep = max(0, limit - HASH_SUFFIX_LEN)
        # Never cut an escape sequence in two: it would read back as something else.
        for m in _ESCAPED.finditer(out, max(0, keep - 6), keep + 6):
            if m.start() < keep < m.end():
                keep = m.start()
                break
        out = f"{out[:keep]}~{digest}"
    return out


def unescape(text: str) -> bytes:
    """The original bytes of an :func:`escape` result (not of a shortened one)."""
    out = bytearray()
    pos = 0
    for m in _ESCAPED.finditer(text):
        out += text[pos : m.start()].encode("utf-8")
        token = m.group(1)
        if token == "\\":
            out += b"\\"
        elif token[0] == "x":
            out.append(int(token[1:], 16))
        else:
            out += chr(int(token[1:], 16)).encode("utf-8", "surrogatepass")
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return bytes(out)
