"""Binary frame encoding (docs/protocol.md): 4-byte big-endian header length, JSON, sections.

The worker builds a `FramePart` (a header dict, the heavy sections, and the epoch rows since its
previous frame); the web process merges parts per subscriber (rows appended, heavy parts newest
wins) and encodes one websocket message per frame with `encode_frame`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
ALIGN = 8
EPOCH_COLUMNS = ("train_loss", "test_loss", "train_metric", "test_metric")


def epoch_columns(norm_count: int) -> list[str]:
    """Names of an epoch row: EPOCH_COLUMNS, then grad_norm_0 .. grad_norm_{norm_count - 1}."""
    return [*EPOCH_COLUMNS, *(f"grad_norm_{j}" for j in range(norm_count))]


# What a rows-only frame's header keeps: enough to place its rows, none of the heavy state.
ROWS_ONLY_HEADER = ("type", "protocol", "session_id", "status", "status_reason", "warning",
                    "problem", "metric")
ROWS_ONLY_FACTOR = 4


def rows_per_frame(max_rows_per_frame: int, width: int) -> int:
    """Epoch rows one message may carry: the float32 budget of max_rows_per_frame 4-column rows.

    Wider rows (gradient norms) mean fewer rows, so a default frame's size is unchanged.
    """
    return max(1, max_rows_per_frame * len(EPOCH_COLUMNS) // max(width, 1))


@dataclass
class Section:
    """One typed array of the payload plus its extra header fields (min/max, ranges, layout)."""

    data: npt.NDArray[Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Encoded:
    """A frame's state encoded once, in the worker: the same for every client of the session.

    `header` is the header's JSON members (no braces) without the per-client ones (seq,
    epochs_first, history_id, rows_only, sections); `table` the heavy sections' entries of the
    "sections" table and `payload` their aligned bytes. A pipe then carries three byte strings
    instead of a nested header (pickling it and dumping it to JSON in the web process cost
    more than the rest of the web process's work on a frame but the socket write).
    """

    header: bytes
    table: bytes
    payload: bytes


@dataclass
class FramePart:
    """What one worker tick says about a session: latest state and the epochs since last tick.

    `rows` is (k, 4 + n) float64 of epoch_columns(n) for epochs first_epoch .. first_epoch + k - 1;
    `lockstep` (j, p) the weights after epochs lockstep_first .. lockstep_first + j - 1, when
    the session asks for them (only epochs trained while someone watched have them).
    """

    header: dict[str, Any]
    sections: dict[str, Section]
    history_id: int
    first_epoch: int
    rows: Array
    lockstep: Array | None = None
    lockstep_first: int | None = None
    encoded: Encoded | None = None  # set by preencode(): header is then the light one

    @property
    def last_epoch(self) -> int:
        """The epoch of the last row (first_epoch - 1 when there are none)."""
        return self.first_epoch + len(self.rows) - 1


def quantize(values: npt.NDArray[np.floating[Any]]) -> tuple[npt.NDArray[np.uint8], float, float]:
    """Map values linearly onto 0..255: value = min + q / 255 * (max - min)."""
    low, high = float(values.min()), float(values.max())
    if np.isfinite(low) and np.isfinite(high):  # NaN would make min/max NaN: all finite here
        if high <= low:
            return np.zeros(values.shape, dtype=np.uint8), low, high
        # Three passes instead of eight: the grids are quantized for every frame.
        scaled = (values - low) * (255.0 / (high - low))
        scaled += 0.5
        return scaled.astype(np.uint8), low, high
    finite = values[np.isfinite(values)]
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 0.0
    span = high - low
    if span <= 0.0:
        return np.zeros(values.shape, dtype=np.uint8), low, high
    scaled = np.nan_to_num((values - low) * (255.0 / span), nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8), low, high


def quantize_columns(
    columns: npt.NDArray[np.floating[Any]],
) -> tuple[npt.NDArray[np.uint8], list[float], list[float]]:
    """quantize() of every column of an (n, m) array at once: (m, n) codes, lows, highs.

    One pass over all the neuron pictures instead of one numpy round per neuron; columns with
    a non-finite value take quantize()'s own path.
    """
    # float64 ranges and scale, as quantize() computes them (the columns may be float32).
    lows, highs = columns.min(axis=0).astype(np.float64), columns.max(axis=0).astype(np.float64)
    if not (np.all(np.isfinite(lows)) and np.all(np.isfinite(highs))):
        parts = [quantize(columns[:, j]) for j in range(columns.shape[1])]
        return (np.stack([p[0] for p in parts]), [p[1] for p in parts], [p[2] for p in parts])
    span = highs - lows
    scale = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
    scaled = (columns - lows) * scale
    scaled += 0.5
    return scaled.astype(np.uint8).T.copy(), lows.tolist(), highs.tolist()


def dequantize(codes: npt.NDArray[np.uint8], low: float, high: float) -> Array:
    """The inverse of quantize, to within half a step."""
    result: Array = low + codes.astype(np.float64) / 255.0 * (high - low)
    return result


def weights_hash(weights: list[Array]) -> str:
    """First 12 hex chars of sha256 over the float64 little-endian bytes, Keras order."""
    digest = hashlib.sha256()
    for array in weights:
        digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
    return digest.hexdigest()[:12]


def encode_frame(header: dict[str, Any], sections: dict[str, Section]) -> bytes:
    """One binary websocket message: length prefix, padded JSON header, aligned sections."""
    payload = bytearray()
    described = _pack(sections, payload)
    return _message(_json({**header, "sections": described}), payload)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False,
                      default=_json_default).encode()


def _message(text: bytes, payload: bytes | bytearray) -> bytes:
    """Length prefix, the JSON header padded so the payload starts aligned, the payload."""
    text += b" " * (-(4 + len(text)) % ALIGN)
    return struct.pack(">I", len(text)) + text + bytes(payload)


def _pack(sections: dict[str, Section], payload: bytearray) -> dict[str, Any]:
    """Append each section to `payload`, aligned; their entries of the header's table."""
    described: dict[str, Any] = {}
    for name, section in sections.items():
        payload.extend(b"\0" * (-len(payload) % ALIGN))
        data = np.ascontiguousarray(section.data)
        little = data.astype(data.dtype.newbyteorder("<"), copy=False)
        described[name] = {
            "offset": len(payload),
            "length": int(data.size),
            "dtype": _dtype_name(data.dtype),
            "shape": list(data.shape),
            **section.extra,
        }
        payload.extend(little.tobytes())
    return described


# str(dtype) runs numpy's Python-level name lookup (~4 us): a frame's few dtypes, named once.
_DTYPE_NAMES: dict[np.dtype[Any], str] = {}


def _dtype_name(dtype: np.dtype[Any]) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        if len(_DTYPE_NAMES) >= 64:
            _DTYPE_NAMES.clear()
        name = _DTYPE_NAMES[dtype] = str(dtype)
    return name


def decode_frame(message: bytes) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """The header and each section as a numpy array of its shape (for clients and tests)."""
    (length,) = struct.unpack(">I", message[:4])
    header: dict[str, Any] = json.loads(message[4:4 + length])
    base = 4 + length
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, entry in header["sections"].items():
        dtype = np.dtype(entry["dtype"]).newbyteorder("<")
        start = base + entry["offset"]
        flat = np.frombuffer(message, dtype=dtype, count=entry["length"], offset=start)
        arrays[name] = flat.reshape(entry["shape"])
    return header, arrays


def merge_parts(pending: FramePart | None, new: FramePart) -> FramePart:
    """Coalesce two parts: newest heavy state, every epoch row of both, no duplicates."""
    if pending is None or pending.history_id != new.history_id:
        return new
    fresh = new.rows[max(0, pending.last_epoch + 1 - new.first_epoch):]
    rows = np.concatenate([pending.rows, fresh]) if len(fresh) else pending.rows
    first = pending.first_epoch if len(pending.rows) else new.first_epoch
    if not len(pending.rows):
        rows = new.rows
    lockstep, lockstep_first = pending.lockstep, pending.lockstep_first
    if new.lockstep is not None and new.lockstep_first is not None:
        if lockstep is None or lockstep_first is None:
            lockstep, lockstep_first = new.lockstep, new.lockstep_first
        else:
            next_epoch = lockstep_first + len(lockstep)
            extra = new.lockstep[max(0, next_epoch - new.lockstep_first):]
            lockstep = np.concatenate([lockstep, extra])
    return FramePart(new.header, new.sections, new.history_id, first, rows, lockstep,
                     lockstep_first, new.encoded)


def split_rows(part: FramePart, limit: int) -> tuple[FramePart | None, FramePart]:
    """(the oldest rows up to the cap in a frame of their own, or None; the rest with the state).

    Keeps every message near its default size when frames were coalesced or a long history is
    sent: call it until it returns None; each rows-only frame (no grids; header `rows_only`)
    carries the row cap, the last frame at most the cap and the heavy state. `limit` counts
    4-column rows (max_rows_per_frame): wider rows get rows_per_frame(limit, width) each.
    """
    cut = rows_per_frame(limit, part.rows.shape[1]) if part.rows.ndim == 2 else limit
    if len(part.rows) <= cut:
        return None, part
    # A rows-only frame has no grids and no weights, the bulk of a state frame's bytes, so the
    # same message size carries several times the rows: fewer messages when training outruns
    # the frame rate.
    ahead = min(len(part.rows) - cut, cut * ROWS_ONLY_FACTOR)
    header = {key: part.header[key] for key in ROWS_ONLY_HEADER if key in part.header}
    header.update(epoch=part.first_epoch + ahead - 1, rows_only=True)
    older = FramePart(header, {}, part.history_id, part.first_epoch, part.rows[:ahead])
    newer = FramePart(part.header, part.sections, part.history_id, part.first_epoch + ahead,
                      part.rows[ahead:], part.lockstep, part.lockstep_first, part.encoded)
    return older, newer


# Header keys that describe the lockstep section rather than the frame (never sent as such).
LOCKSTEP_KEYS = ("param_layout", "lockstep_first")


def preencode(part: FramePart) -> FramePart:
    """The part with its state encoded once (see Encoded) and a light header: the keys a
    rows-only frame keeps, the epoch, and the lockstep layout. frame_bytes() of the result is
    byte for byte frame_bytes() of the part."""
    header = {k: v for k, v in part.header.items() if k not in LOCKSTEP_KEYS}
    payload = bytearray()
    table = _json(_pack(part.sections, payload))
    encoded = Encoded(_json(header)[1:-1], table[1:-1], bytes(payload))
    keep = (*ROWS_ONLY_HEADER, "epoch", *LOCKSTEP_KEYS)
    light = {key: part.header[key] for key in keep if key in part.header}
    return replace(part, header=light, sections={}, encoded=encoded)


def frame_bytes(part: FramePart, seq: int) -> bytes:
    """Encode a (merged) part as the frame numbered `seq` for one client."""
    with np.errstate(over="ignore"):  # a diverged loss beyond float32 is sent as inf
        rows = part.rows.astype(np.float32)
    norm_count = rows.shape[1] - len(EPOCH_COLUMNS) if rows.ndim == 2 else 0
    sections = {"epochs": Section(rows, {"columns": epoch_columns(norm_count)})}
    if part.lockstep is not None:
        layout = part.header.get("param_layout", [])
        sections["lockstep_weights"] = Section(
            part.lockstep, {"layout": layout, "first_epoch": part.lockstep_first}
        )
    own = {"seq": seq, "epochs_first": part.first_epoch, "history_id": part.history_id}
    encoded = part.encoded
    if encoded is None:
        header = {k: v for k, v in part.header.items() if k not in LOCKSTEP_KEYS}
        header.update(own)
        header.setdefault("rows_only", False)
        return encode_frame(header, {**part.sections, **sections})
    # The state was encoded in the worker: add this client's members, the rows and lockstep.
    payload = bytearray(encoded.payload)
    rest = _json(_pack(sections, payload))[1:-1]
    members = b",".join(m for m in (encoded.header, _json({**own, "rows_only": False})[1:-1]) if m)
    table = b",".join(m for m in (encoded.table, rest) if m)
    return _message(b"{" + members + b',"sections":{' + table + b"}}", payload)


def json_nested(array: npt.NDArray[Any]) -> Any:
    """Nested lists for JSON, NaN/inf as null (a diverged net still gets valid JSON)."""
    finite = np.isfinite(array)
    if np.all(finite):
        return array.tolist()
    values = array.astype(object)
    values[~finite] = None
    return values.tolist()


def _json_default(value: object) -> Any:
    """numpy scalars and arrays into JSON; non-finite floats become null."""
    if isinstance(value, np.ndarray):
        return [_finite_or_none(v) for v in value.tolist()] if value.ndim == 1 else [
            _json_default(row) for row in value
        ]
    if isinstance(value, np.floating | np.integer):
        return _finite_or_none(value.item())
    raise TypeError(f"cannot encode {type(value).__name__} in a frame header")


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
