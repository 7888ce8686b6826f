"""Binary frame layout, quantization, weight hashes and the coalescing of frame parts."""

import hashlib
import json
import struct

import numpy as np

from app.sessions.frames import (
    FramePart,
    Section,
    decode_frame,
    dequantize,
    encode_frame,
    frame_bytes,
    merge_parts,
    quantize,
    split_rows,
    weights_hash,
)


def test_layout_is_length_prefix_json_and_aligned_little_endian_sections() -> None:
    grid = np.arange(12, dtype=np.uint8).reshape(3, 4)
    losses = np.array([[0.5, 0.25]], dtype=np.float32)
    message = encode_frame({"type": "frame"}, {"grid": Section(grid), "losses": Section(losses)})
    # Decode by hand, as the browser does, without our decoder.
    (length,) = struct.unpack(">I", message[:4])
    assert (4 + length) % 8 == 0
    header = json.loads(message[4:4 + length].decode("utf-8"))
    base = 4 + length
    entry = header["sections"]["losses"]
    assert entry["offset"] % 8 == 0 and entry["dtype"] == "float32" and entry["shape"] == [1, 2]
    floats = struct.unpack("<2f", message[base + entry["offset"]:base + entry["offset"] + 8])
    assert floats == (0.5, 0.25)
    g = header["sections"]["grid"]
    assert list(message[base + g["offset"]:base + g["offset"] + 12]) == list(range(12))


def test_decode_inverts_encode() -> None:
    weights = np.array([[1.5, -2.0], [3.25, 4.0]])
    header, arrays = decode_frame(encode_frame({"a": 1}, {"w": Section(weights, {"min": 0})}))
    assert header["a"] == 1 and header["sections"]["w"]["min"] == 0
    np.testing.assert_array_equal(arrays["w"], weights)


def test_quantize_maps_min_to_0_max_to_255_linearly() -> None:
    values = np.array([-1.0, 0.0, 1.0, 0.5])
    codes, low, high = quantize(values)
    assert (low, high) == (-1.0, 1.0)
    # By hand: (v + 1) / 2 * 255 rounded: 0, 127.5 -> 128, 255, 191.25 -> 191.
    assert codes.tolist() == [0, 128, 255, 191]
    assert np.max(np.abs(dequantize(codes, low, high) - values)) <= (high - low) / 255 / 2


def test_quantize_of_a_constant_grid_is_all_zero_with_equal_range() -> None:
    codes, low, high = quantize(np.full((2, 2), 0.7))
    assert codes.tolist() == [[0, 0], [0, 0]] and low == high == 0.7


def test_weights_hash_is_sha256_of_little_endian_float64_bytes() -> None:
    weights = [np.array([[1.0, 2.0]]), np.array([0.5])]
    gold = hashlib.sha256(struct.pack("<3d", 1.0, 2.0, 0.5)).hexdigest()[:12]
    assert weights_hash(weights) == gold


def _part(first: int, count: int, history_id: int = 1, tag: str = "x") -> FramePart:
    rows = np.array([[float(e), 0.0, 0.0, 0.0] for e in range(first, first + count)])
    return FramePart({"tag": tag}, {}, history_id, first, rows.reshape(-1, 4))


def test_merge_keeps_every_epoch_once_and_the_newest_state() -> None:
    merged = merge_parts(merge_parts(_part(1, 3, tag="a"), _part(2, 4, tag="b")), _part(6, 2))
    assert merged.first_epoch == 1 and merged.header["tag"] == "x"
    assert merged.rows[:, 0].tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_merge_after_a_reset_starts_the_new_history() -> None:
    merged = merge_parts(_part(1, 5, history_id=1), _part(1, 2, history_id=2))
    assert merged.history_id == 2 and merged.rows[:, 0].tolist() == [1, 2]


def test_frame_bytes_carries_rows_as_float32_with_epochs_first_and_seq() -> None:
    header, arrays = decode_frame(frame_bytes(_part(4, 3), seq=9))
    assert header["seq"] == 9 and header["epochs_first"] == 4 and header["history_id"] == 1
    assert arrays["epochs"].dtype == np.float32
    assert arrays["epochs"][:, 0].tolist() == [4.0, 5.0, 6.0]


def test_split_rows_sends_the_oldest_rows_first_without_grids() -> None:
    part = _part(1, 1000)
    part.header.update(status="running", layers=[{"kernel": [[1.0]]}])
    part.sections["output"] = Section(np.zeros((2, 2), dtype=np.uint8))
    older, newer = split_rows(part, 160)
    # No grids and no weights: a rows-only frame carries 4 x the cap of 160 rows.
    assert older is not None and older.sections == {} and older.header["rows_only"] is True
    assert older.header["status"] == "running" and "layers" not in older.header
    assert older.rows[:, 0].tolist() == list(range(1, 641)) and older.header["epoch"] == 640
    assert newer.first_epoch == 641 and newer.rows[:, 0].tolist() == list(range(641, 1001))
    older, newer = split_rows(newer, 160)
    # The cap stays with the state frame; only the rest goes ahead.
    assert older is not None and older.rows[:, 0].tolist() == list(range(641, 841))
    assert newer.rows[:, 0].tolist() == list(range(841, 1001)) and "output" in newer.sections
    assert split_rows(newer, 160) == (None, newer)
