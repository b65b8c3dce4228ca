"""Read TensorFlow checkpoints (tensor bundles) without TensorFlow or protobuf.

A bundle is ``<prefix>.index`` plus ``<prefix>.data-0000k-of-0000n`` shards. The index
is a LevelDB-format table: data blocks of prefix-compressed ``key -> value`` entries
with restart points, an index block pointing at them, and a 48-byte footer holding
the index block's handle. Each key is a tensor name; its value is a serialized
``BundleEntryProto`` (dtype, shape, shard id, offset, size, masked crc32c), and the
tensor is that many raw little-endian bytes at that offset in its shard.

>>> weights = read_checkpoint("MSD_musicnn/")        # {name: np.ndarray}
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # compression type (1 byte) + crc32c (4 bytes)
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_}  # tensorflow DataType enum
OPTIMIZER_SLOTS = ("/Adam", "/Adam_1", "/Momentum", "/RMSProp", "/RMSProp_1")  # per-variable optimiser state
OPTIMIZER_GLOBALS = ("beta1_power", "beta2_power", "global_step")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated or not a tensor bundle."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("varint runs past the end of its buffer")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` pairs of one table block (keys are prefix-compressed)."""
    if len(block) < 4:
        raise CheckpointError("table block shorter than its restart count")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    if end < 0:
        raise CheckpointError("table block restart array larger than the block")
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if pos + unshared + value_len > end:
            raise CheckpointError("table entry runs past its block")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _read_block(table: bytes, handle: bytes, pos: int = 0) -> list[tuple[bytes, bytes]]:
    offset, pos = _varint(handle, pos)
    size, _ = _varint(handle, pos)
    if offset + size + BLOCK_TRAILER_SIZE > len(table):
        raise CheckpointError(f"block at {offset} (+{size} bytes) lies past the end of the index ({len(table)} bytes)")
    if table[offset + size] != 0:
        raise CheckpointError("compressed index blocks are not supported (TensorFlow writes them uncompressed)")
    return _block_entries(table[offset : offset + size])


def _fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """Top-level ``(field number, value)`` pairs of a protobuf message (varint, fixed and length-delimited)."""
    out, pos = [], 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", message, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(message, pos)
            if pos + length > len(message):
                raise CheckpointError("protobuf field runs past the end of its message")
            value, pos = message[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", message, pos)[0], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def _entry(value: bytes) -> dict:
    """A ``BundleEntryProto``: dtype, shape, shard_id, offset, size, crc32c."""
    entry = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0, "crc32c": None, "sliced": False}
    for number, field in _fields(value):
        if number <= 7 and isinstance(field, bytes) != (number in (2, 7)):
            raise CheckpointError(f"BundleEntryProto field {number} has the wrong wire type")
        if number == 1:
            entry["dtype"] = field
        elif number == 2:  # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}
            dims = [dict(_fields(dim)).get(1, 0) for n, dim in _fields(field) if n == 2]
            entry["shape"] = [d - (1 << 64) if d >= 1 << 63 else d for d in dims]
            if any(d < 0 for d in entry["shape"]):
                raise CheckpointError(f"tensor shape {entry['shape']} has an unknown (negative) dimension")
        elif number in (3, 4, 5):
            entry[{3: "shard_id", 4: "offset", 5: "size"}[number]] = field
        elif number == 6:
            entry["crc32c"] = field
        elif number == 7:
            entry["sliced"] = True
    return entry


def _masked_crc32c(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_index(index_path: str | Path) -> dict[str, dict]:
    """``{tensor name: BundleEntryProto fields}`` from a bundle's ``.index`` table.

    The header (the empty key, a ``BundleHeaderProto``) is returned under ``""``:
    ``{"num_shards": n, "little_endian": bool}``.
    """
    index_path = Path(index_path)
    if not index_path.is_file():
        raise CheckpointError(f"{index_path}: checkpoint index not found")
    table = index_path.read_bytes()
    if len(table) < FOOTER_SIZE:
        raise CheckpointError(f"{index_path}: {len(table)} bytes, shorter than a table footer; truncated?")
    footer = table[-FOOTER_SIZE:]
    if struct.unpack("<Q", footer[-8:])[0] != TABLE_MAGIC:
        raise CheckpointError(f"{index_path}: no table magic number at the end; not a checkpoint index, or truncated")
    try:
        _, pos = _varint(footer, 0)  # metaindex offset
        _, pos = _varint(footer, pos)  # metaindex size
        entries = {}
        for _, handle in _read_block(table, footer, pos):
            for key, value in _read_block(table, handle):
                if key:
                    entries[key.decode()] = _entry(value)
                else:  # BundleHeaderProto: num_shards = 1, endianness = 2 (0 = little)
                    header = dict(_fields(value))
                    entries[""] = {"num_shards": header.get(1, 1), "little_endian": header.get(2, 0) == 0}
    except CheckpointError as exc:
        raise CheckpointError(f"{index_path}: {exc}") from None
    except (struct.error, IndexError, UnicodeDecodeError, ValueError, TypeError) as exc:  # corrupt, not truncated
        raise CheckpointError(f"{index_path}: not a readable checkpoint index ({type(exc).__name__}: {exc})") from None
    return entries


def read_checkpoint(prefix: str | Path, skip_optimizer: bool = True, verify_crc: bool = True) -> dict[str, np.ndarray]:
    """Every tensor of the bundle at ``prefix`` (``prefix + ".index"`` and its data shards).

    Optimiser state (``…/Adam``, ``…/Adam_1`` slots, ``beta1_power``…) is skipped unless
    ``skip_optimizer`` is False. Sizes are always checked; crc32c too when ``verify_crc``.
    """
    prefix = str(prefix)
    entries = read_index(prefix + ".index")
    header = entries.pop("", {"num_shards": 1, "little_endian": True})
    if not header["little_endian"]:
        raise CheckpointError(f"{prefix}.index: a big-endian checkpoint; only little-endian ones are supported")
    n_shards = header["num_shards"]
    shards: dict[int, bytes] = {}
    tensors = {}
    for name, entry in sorted(entries.items()):
        if skip_optimizer and (name.endswith(OPTIMIZER_SLOTS) or name in OPTIMIZER_GLOBALS):
            continue
        if entry["sliced"]:
            raise CheckpointError(f"{prefix}: tensor {name} is saved in slices, which this reader does not support")
        dtype = DTYPES.get(entry["dtype"])
        if dtype is None:
            raise CheckpointError(f"{prefix}: tensor {name} has unsupported dtype enum {entry['dtype']}")
        shard = entry["shard_id"]
        if not 0 <= shard < n_shards:
            raise CheckpointError(f"{prefix}: tensor {name} names shard {shard} of {n_shards}")
        if shard not in shards:
            path = Path(f"{prefix}.data-{shard:05d}-of-{n_shards:05d}")
            if not path.is_file():
                raise CheckpointError(f"{path}: checkpoint data shard not found")
            shards[shard] = path.read_bytes()
        data = shards[shard]
        start, size = entry["offset"], entry["size"]
        expected = int(np.prod(entry["shape"], dtype=np.int64)) * np.dtype(dtype).itemsize
        if size != expected:
            raise CheckpointError(
                f"{prefix}: tensor {name}: {size} bytes recorded, but shape {entry['shape']} needs {expected}"
            )
        if start + size > len(data):
            raise CheckpointError(
                f"{prefix}: tensor {name} lies at bytes {start}..{start + size} but the data shard has "
                f"{len(data)} bytes; the file is truncated — reinstall the package that ships it"
            )
        raw = data[start : start + size]
        if verify_crc and entry["crc32c"] is not None and _masked_crc32c(raw) != entry["crc32c"]:
            raise CheckpointError(f"{prefix}: tensor {name} fails its crc32c check; the data file is corrupt")
        tensors[name] = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(entry["shape"]).copy()
    return tensors
