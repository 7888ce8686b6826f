"""The compact session export: gzip of a JSON header and the history as binary columns.

A JSON export spends ~18 bytes on each history value, so a long run outgrew max_import_bytes
(~520,000 epochs at 64 MB). The compact format (docs/protocol.md "Export and import") keeps
everything else as the JSON export has it and writes the history as float64 little-endian
columns, byte-shuffled (all first bytes of a column, then all second bytes, ...: the sign and
exponent bytes of a slowly changing curve then compress well), in one gzip member (deflate's
run-length strategy: fast, and the low mantissa bytes do not compress anyway). About 5.8 bytes
per value instead of ~18. Any gzip member with this content imports (e.g. `gzip -1`).

Layout of the gzip member's content:
  b"NNPGSES1"                         8 bytes, MAGIC
  header length H                      u32 little-endian
  header                               H bytes of UTF-8 JSON: SessionExport without "history",
                                       plus "history_columns" (names) and "history_rows" (n)
  per column, in history_columns order: n * 8 bytes, float64 LE, byte-shuffled; NaN = null

Nothing is unpickled or evaluated: the header goes through the same pydantic model as a JSON
import, and the decompressed size is bounded before anything is allocated for it.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np

from app.sessions.export import SessionExport, export_session
from app.sessions.frames import EPOCH_COLUMNS
from app.sessions.session import TrainingSession
from app.settings import Settings, get_settings

MEDIA_TYPE = "application/vnd.nn-playground.session+gzip"
SUFFIX = ".nnpg.gz"
MAGIC = b"NNPGSES1"
GZIP_MAGIC = b"\x1f\x8b"
_LENGTH = struct.Struct("<I")
# Deflate with run-length matching only (Z_RLE): the byte planes' redundancy is runs (the sign
# and exponent planes); on 500,000 epochs it is ~2.5x faster than level 1 and 3% smaller.
LEVEL = 1
GZIP_WBITS = 31  # zlib's code for a gzip header and trailer
_CHUNK = 1 << 20


def is_compact(body: bytes) -> bool:
    """Whether an import body is the compact format (gzip magic; JSON starts with '{' or space)."""
    return body[:2] == GZIP_MAGIC


def _shuffle(column: np.ndarray[Any, Any]) -> bytes:
    """float64 LE values as 8 byte planes (plane k = byte k of every value)."""
    values = np.ascontiguousarray(column, dtype="<f8")
    return values.view(np.uint8).reshape(-1, 8).T.tobytes()


def _unshuffle(data: bytes, n: int) -> np.ndarray[Any, Any]:
    planes = np.frombuffer(data, dtype=np.uint8).reshape(8, n)
    return np.ascontiguousarray(planes.T).view("<f8").reshape(n).astype(np.float64)


def export_compact(session: TrainingSession) -> bytes:
    """The compact export of `session` (bytes of one gzip member)."""
    header = export_session(session, history=False)
    history = session.history
    rows = history.rows()
    header["history_columns"] = list(history.columns)
    header["history_rows"] = len(rows)
    text = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    parts = [MAGIC, _LENGTH.pack(len(text)), text]
    parts += [_shuffle(rows[:, i]) for i in range(rows.shape[1])]
    deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, GZIP_WBITS, 9, zlib.Z_RLE)
    return deflate.compress(b"".join(parts)) + deflate.flush()


def header_bound(settings: Settings) -> int:
    """The longest header accepted: twice a create body (a config with max_samples points is
    ~0.4 MB of max_body_bytes; the weights of the largest net are ~0.1 MB of JSON)."""
    return 2 * settings.max_body_bytes


def compact_bound(settings: Settings) -> int:
    """The most bytes a compact export of this server can decompress to: the longest header
    and max_epoch_budget rows of the widest history (max_hidden_layers + 1 gradient norms)."""
    columns = len(EPOCH_COLUMNS) + settings.max_hidden_layers + 1
    return len(MAGIC) + _LENGTH.size + header_bound(settings) + (
        8 * columns * settings.max_epoch_budget
    )


def compact_body_limit(settings: Settings) -> int:
    """The longest compact import body: compact_bound plus deflate's worst case on data that
    does not compress (5 bytes per 64 KB stored block) and the gzip header and trailer."""
    bound = compact_bound(settings)
    return bound + bound // 10_000 + 1024


def _inflate(body: bytes, bound: int) -> bytes:
    """The content of one gzip member, refused once it would exceed `bound` (a gzip bomb)."""
    inflater = zlib.decompressobj(wbits=GZIP_WBITS)
    out: list[bytes] = []
    size = 0
    data = body
    try:
        while data and not inflater.eof:
            chunk = inflater.decompress(data, _CHUNK)
            data = inflater.unconsumed_tail
            size += len(chunk)
            if size > bound:
                raise ValueError(
                    f"the compact export inflates to more than {bound} bytes, the most this "
                    "server's limits (max_import_bytes, max_epoch_budget, max_hidden_layers) "
                    "allow"
                )
            out.append(chunk)
    except zlib.error as error:
        raise ValueError(f"the compact export is not valid gzip: {error}") from None
    if not inflater.eof:
        raise ValueError("the compact export is truncated (its gzip stream does not end)")
    if inflater.unused_data:
        raise ValueError("the compact export has bytes after its gzip stream")
    return b"".join(out)


def import_compact(body: bytes, settings: Settings | None = None) -> SessionExport:
    """A validated SessionExport from a compact export (its history as a table); ValueError or
    pydantic's ValidationError naming what is wrong."""
    settings = settings or get_settings()
    content = _inflate(body, compact_bound(settings))
    start = len(MAGIC) + _LENGTH.size
    if len(content) < start or content[: len(MAGIC)] != MAGIC:
        raise ValueError(f"the compact export does not start with {MAGIC.decode()}")
    (length,) = _LENGTH.unpack_from(content, len(MAGIC))
    if start + length > len(content) or length > header_bound(settings):
        raise ValueError(
            f"the header length {length} overruns the {len(content)} bytes or the "
            f"{header_bound(settings)} bytes a header may have (2 x max_body_bytes)"
        )
    header = json.loads(content[start : start + length])
    if not isinstance(header, dict):
        raise ValueError("the compact export's header is not a JSON object")
    columns = header.pop("history_columns", None)
    n = header.pop("history_rows", None)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or (
        len(columns) > len(EPOCH_COLUMNS) + settings.max_hidden_layers + 1
    ):
        raise ValueError("history_columns must be a list of column names")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= settings.max_epoch_budget:
        raise ValueError(
            f"history_rows = {str(n)[:40]} must be an integer in 0..max_epoch_budget = "
            f"{settings.max_epoch_budget}"
        )
    body_size = len(content) - start - length
    if body_size != 8 * n * len(columns):
        raise ValueError(
            f"history of {n} rows x {len(columns)} columns needs {8 * n * len(columns)} bytes, "
            f"got {body_size}"
        )
    if "history" in header:
        raise ValueError("a compact export carries its history as columns, not as 'history'")
    data = SessionExport.model_validate({**header, "history": {}})
    rows = np.empty((n, len(columns)))
    offset = start + length
    for i in range(len(columns)):
        rows[:, i] = _unshuffle(content[offset : offset + 8 * n], n)
        offset += 8 * n
    data._history_table = (columns, rows)
    return data
