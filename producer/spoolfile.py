"""The spool's files: segments of checksummed records (one per batch), plus the ack file.

A segment is a sequence of records ``<u32 length><u32 crc32><payload>``; a payload is one batch
(``<u64 seq><u16 token length><u16 stream length><u32 event count>``, token, stream, then each
event as ``<u32 length><bytes>``). The ack file says how far replay got: ``<u64 segment><u64
offset><u64 events>`` and its crc32. A torn or corrupt record or ack fails its checksum; pure
functions here tell how much of a file is valid, the Spool decides what to do about the rest.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

from producer.delivery import Batch

_RECORD = struct.Struct("<II")  # payload length, crc32(payload)
_HEAD = struct.Struct("<QHHI")  # batch seq, token length, stream length, event count
_LEN = struct.Struct("<I")
_ACK = struct.Struct("<QQQ")  # segment number, byte offset, events acked in that segment
_ACK_CRC = struct.Struct("<I")
SEGMENT_SUFFIX = ".seg"


def encode_record(batch: Batch) -> bytes:
    token, stream = batch.token.encode(), batch.stream.encode()
    parts = [_HEAD.pack(batch.seq, len(token), len(stream), len(batch.events)), token, stream]
    for event in batch.events:
        parts.append(_LEN.pack(len(event)))
        parts.append(event)
    payload = b"".join(parts)
    return _RECORD.pack(len(payload), zlib.crc32(payload)) + payload


def decode_record(payload: bytes) -> Batch:
    seq, token_len, stream_len, count = _HEAD.unpack_from(payload)
    pos = _HEAD.size
    token = payload[pos : pos + token_len].decode()
    pos += token_len
    stream = payload[pos : pos + stream_len].decode()
    pos += stream_len
    events = []
    for _ in range(count):
        (size,) = _LEN.unpack_from(payload, pos)
        pos += _LEN.size
        events.append(payload[pos : pos + size])
        pos += size
    if pos != len(payload):
        raise ValueError(f"record length {len(payload)} does not match its {count} events")
    return Batch(token, seq, stream, events)


def read_record(handle: BinaryIO) -> tuple[Batch, int] | None:
    """The record at the handle's position and its size on disk; None when it is torn or corrupt."""
    header = handle.read(_RECORD.size)
    if len(header) < _RECORD.size:
        return None
    size, crc = _RECORD.unpack(header)
    payload = handle.read(size)
    if len(payload) < size or zlib.crc32(payload) != crc:
        return None
    try:
        return decode_record(payload), _RECORD.size + size
    except (ValueError, UnicodeDecodeError, struct.error):
        return None


def scan(path: Path) -> tuple[int, int, int]:
    """(valid bytes, events, bytes after the last valid record) of a segment."""
    offset = events = 0
    with open(path, "rb") as handle:
        while (record := read_record(handle)) is not None:
            batch, size = record
            events += len(batch.events)
            offset += size
    return offset, events, path.stat().st_size - offset


def write_ack(folder: Path, number: int, offset: int, events: int) -> None:
    """Best effort: a lost ack only makes the next replay start earlier (see read_ack)."""
    body = _ACK.pack(number, offset, events)
    with contextlib.suppress(OSError):
        fd = os.open(folder / "ack", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, body + _ACK_CRC.pack(zlib.crc32(body)), 0)
        finally:
            os.close(fd)


def read_ack(path: Path) -> tuple[int, int, int]:
    """(segment, offset, events) replay had reached; (0, 0, 0) when missing or torn. Replaying from
    too early is harmless: batches carry their sequence and Redis skips what it already has."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0, 0, 0
    if len(data) < _ACK.size + _ACK_CRC.size:
        return 0, 0, 0
    body = data[: _ACK.size]
    (crc,) = _ACK_CRC.unpack_from(data, _ACK.size)
    if zlib.crc32(body) != crc:
        return 0, 0, 0
    number, offset, events = _ACK.unpack(body)
    return number, offset, events
