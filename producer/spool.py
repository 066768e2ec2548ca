"""The local spool: batches that could not reach Redis, on disk, in order, bounded.

Layout: ``<root>/<time_ns>-<pid>-<token>/`` per publisher, holding ``lock`` (flock'ed by the
owner for its lifetime, so a dead owner's directory can be told from a live one), ``ack`` (how
far replay got) and segments ``0000000001.seg`` ... of checksummed records, one per batch (the
file formats: producer/spoolfile.py). A record torn by SIGKILL or a crash fails its checksum and
is skipped with a log line. Bound: when the undelivered bytes would pass ``max_bytes``, the
oldest segment (1/8 of the bound) is deleted and its events are counted as dropped.

Single-threaded: only the sender thread uses a Spool (construction included).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from producer.delivery import Batch
from producer.spoolfile import SEGMENT_SUFFIX, encode_record, read_ack, read_record, scan, write_ack

log = logging.getLogger(__name__)


@dataclass
class _Segment:
    number: int
    path: Path
    size: int = 0
    events: int = 0


@dataclass
class _Dir:
    """One publisher's spool directory, owned (lock held) by this process."""

    path: Path
    lock_fd: int
    segments: list[_Segment] = field(default_factory=list)
    ack_offset: int = 0  # in segments[0]
    ack_events: int = 0  # events of segments[0] already delivered
    write_fd: int = -1  # own directory only: the last segment, open for append

    @property
    def pending_events(self) -> int:
        return sum(s.events for s in self.segments) - self.ack_events

    @property
    def pending_bytes(self) -> int:
        return sum(s.size for s in self.segments) - self.ack_offset


class Spool:
    """Append batches, peek at the oldest, commit what was delivered. See the module docstring."""

    def __init__(self, root: Path, max_bytes: int, token: str, fsync: bool = False) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.segment_bytes = max(max_bytes // 8, 4096)
        self.token = token
        self.fsync = fsync
        self._own: _Dir | None = None
        self._adopted: list[_Dir] = []
        self._peeked: tuple[_Dir, int, int] | None = None  # dir, end offset, events
        #: Own events offered to append() / since delivered, dropped or lost to a write error.
        self.appended = 0
        self.consumed = 0
        self.dropped_oldest = 0
        self.write_errors = 0
        self.corrupt_bytes = 0

    # -- state ------------------------------------------------------------------------------

    @property
    def pending_events(self) -> int:
        return sum(d.pending_events for d in self._dirs())

    @property
    def pending_bytes(self) -> int:
        return sum(d.pending_bytes for d in self._dirs())

    @property
    def empty(self) -> bool:
        return all(d.pending_bytes == 0 for d in self._dirs())

    def _dirs(self) -> list[_Dir]:
        return [*self._adopted, self._own] if self._own else list(self._adopted)

    # -- orphans ----------------------------------------------------------------------------

    def adopt_orphans(self) -> int:
        """Take over the directories of publishers that died (their lock is free); returns the
        number of events found. They are replayed before this publisher's own spool."""
        try:
            candidates = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except FileNotFoundError:
            return 0
        taken = {d.path for d in self._dirs()}
        found = 0
        for path in candidates:
            if path in taken:
                continue
            try:
                fd = os.open(path / "lock", os.O_RDWR)
            except OSError:
                continue  # being created or removed by its owner
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # its owner is alive
            adopted = self._load(path, fd)
            if adopted.segments:
                self._adopted.append(adopted)
                found += adopted.pending_events
                log.info("adopted spool %s: %d undelivered events", path, adopted.pending_events)
            else:
                self._remove_dir(adopted)
        return found

    def _load(self, path: Path, lock_fd: int) -> _Dir:
        folder = _Dir(path, lock_fd)
        number, offset, acked = read_ack(path / "ack")
        for seg_path in sorted(path.glob(f"*{SEGMENT_SUFFIX}")):
            if not seg_path.stem.isdigit():  # not ours (a copy, an editor's backup): leave it be
                continue
            seg_number = int(seg_path.stem)
            if seg_number < number:
                seg_path.unlink(missing_ok=True)  # fully replayed; deletion was cut short
                continue
            segment = _Segment(seg_number, seg_path)
            segment.size, segment.events, torn = scan(seg_path)
            if torn:
                self.corrupt_bytes += torn
                log.warning(
                    "spool %s: skipped %d bytes of a torn or corrupt record at its end", seg_path, torn
                )
                with open(seg_path, "r+b") as handle:
                    handle.truncate(segment.size)
            folder.segments.append(segment)
        if folder.segments and folder.segments[0].number == number:
            head = folder.segments[0]
            if offset <= head.size:
                folder.ack_offset, folder.ack_events = offset, min(acked, head.events)
        return folder

    # -- append -----------------------------------------------------------------------------

    def append(self, batches: list[Batch]) -> int:
        """Write batches at the end; returns how many of the oldest events were dropped to stay
        within the bound. A write error drops these batches (counted in write_errors)."""
        records = [encode_record(b) for b in batches]
        counts = [len(b.events) for b in batches]
        self.appended += sum(counts)
        dropped = 0
        while records and sum(map(len, records)) > self.max_bytes:
            records.pop(0)
            dropped += counts.pop(0)  # one batch alone beyond the bound: keep the newest ones
        data = b"".join(records)
        inherited = self._trim_adopted(len(data))
        own = self._own_dir()
        if own is not None and not own.path.is_dir():  # deleted under us: writes would go nowhere
            self._vanished(own)
            own = self._own_dir()
        if own is None:
            self._lost(sum(counts), "cannot create the spool directory")
            return self._drop(dropped) + inherited
        while own.segments and own.pending_bytes + len(data) > self.max_bytes:
            if len(own.segments) == 1:
                self._rotate(own)
            dropped += self._drop_oldest_segment(own)
        if not own.segments or own.segments[-1].size >= self.segment_bytes:
            self._rotate(own)
        segment = own.segments[-1]
        try:
            written = os.write(own.write_fd, data)
            if written != len(data):
                raise OSError(f"short write ({written} of {len(data)} bytes)")
            if self.fsync:
                os.fsync(own.write_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(own.write_fd, segment.size)
            self._lost(sum(counts), str(exc))
            return self._drop(dropped)
        segment.size += len(data)
        segment.events += sum(counts)
        return self._drop(dropped) + inherited

    def _trim_adopted(self, incoming: int) -> int:
        """The bound covers adopted directories too: an agent restarted again and again while
        Redis is away adopts each predecessor's spool, and the disk would hold one full spool
        per restart. Their oldest segments go first; returns the events dropped."""
        dropped = 0
        while self._adopted and self.pending_bytes + incoming > self.max_bytes:
            folder = self._adopted[0]
            if folder.segments:
                dropped += self._drop_oldest_segment(folder)
            if not folder.segments:
                self._finish_dir(folder)
        self.dropped_oldest += dropped  # not consumed: that counts this publisher's own events
        return dropped

    def _vanished(self, folder: _Dir) -> None:
        """Its files were deleted under us (a cleaner, an operator): what it held is lost, counted
        in write_errors, and the spool goes on without it instead of failing every step."""
        lost = folder.pending_events
        for fd in (folder.write_fd, folder.lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        folder.write_fd = -1
        folder.segments.clear()
        self._peeked = None
        if folder is self._own:
            self._own = None
            self._lost(lost, f"{folder.path} was deleted")
        else:
            self._adopted.remove(folder)
            self.write_errors += lost
            log.error("spool %s was deleted: %d undelivered events are lost", folder.path, lost)

    def _drop(self, dropped: int) -> int:
        self.dropped_oldest += dropped
        self.consumed += dropped
        return dropped

    def _lost(self, events: int, reason: str) -> None:
        self.write_errors += events
        self.consumed += events
        log.error("spool %s: cannot write %d events (%s); they are lost", self.root, events, reason)

    def _own_dir(self) -> _Dir | None:
        if self._own is not None:
            return self._own
        name = f"{time.time_ns()}-{os.getpid()}-{self.token[:12]}"
        path, hidden = self.root / name, self.root / f".{name}"
        try:
            # Locked under a hidden name, then renamed: a scanner never sees it unlocked.
            hidden.mkdir(parents=True)
            fd = os.open(hidden / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            hidden.rename(path)
        except OSError as exc:
            log.error("cannot create spool directory %s: %s", path, exc)
            return None
        self._own = _Dir(path, fd)
        return self._own

    def _rotate(self, own: _Dir) -> None:
        if own.write_fd >= 0:
            os.close(own.write_fd)
        number = own.segments[-1].number + 1 if own.segments else 1
        path = own.path / f"{number:010d}{SEGMENT_SUFFIX}"
        own.write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        own.segments.append(_Segment(number, path))
        if len(own.segments) == 1:
            own.ack_offset = own.ack_events = 0
            _write_ack(own, number)

    def _drop_oldest_segment(self, folder: _Dir) -> int:
        oldest = folder.segments.pop(0)
        dropped = oldest.events - folder.ack_events
        oldest.path.unlink(missing_ok=True)
        folder.ack_offset = folder.ack_events = 0
        if folder.segments:
            _write_ack(folder, folder.segments[0].number)
        self._peeked = None
        return dropped

    # -- replay -----------------------------------------------------------------------------

    def peek(self, max_events: int) -> list[Batch]:
        """The oldest undelivered batches (at least one if any, about ``max_events`` events), in
        order. Nothing moves until :meth:`commit`; peeking again re-reads the same batches."""
        self._peeked = None
        while True:
            dirs = self._dirs()
            if not dirs:
                return []
            folder = dirs[0]
            if not folder.segments:
                self._finish_dir(folder)
                continue
            head = folder.segments[0]
            if folder.ack_offset >= head.size:
                if folder is self._own and len(folder.segments) == 1:
                    if folder.pending_bytes == 0 and folder.ack_offset > 0:
                        self._finish_dir(folder)  # all delivered: remove it, start afresh
                    return []
                folder.segments.pop(0)
                head.path.unlink(missing_ok=True)
                folder.ack_offset = folder.ack_events = 0
                if folder.segments:
                    _write_ack(folder, folder.segments[0].number)
                continue
            try:
                batches, end, events = self._read(folder, head, max_events)
            except FileNotFoundError:
                self._vanished(folder)
                continue
            if not batches:  # corrupt from here on: skip the rest of the segment
                self.corrupt_bytes += head.size - folder.ack_offset
                log.warning("spool %s: skipped %d corrupt bytes", head.path, head.size - folder.ack_offset)
                folder.ack_offset, folder.ack_events = head.size, head.events
                continue
            self._peeked = (folder, end, events)
            return batches

    def commit(self) -> None:
        """The batches of the last :meth:`peek` are in Redis: move past them."""
        if self._peeked is None:
            return
        folder, end, events = self._peeked
        self._peeked = None
        folder.ack_offset = end
        folder.ack_events += events
        if folder is self._own:
            self.consumed += events
        _write_ack(folder, folder.segments[0].number)

    def _read(self, folder: _Dir, head: _Segment, max_events: int) -> tuple[list[Batch], int, int]:
        batches: list[Batch] = []
        offset, events = folder.ack_offset, 0
        with open(head.path, "rb") as handle:
            handle.seek(offset)
            while offset < head.size and (not batches or events < max_events):
                record = read_record(handle)
                if record is None:
                    break
                batch, size = record
                batches.append(batch)
                events += len(batch.events)
                offset += size
        return batches, offset, events

    # -- teardown ---------------------------------------------------------------------------

    def _finish_dir(self, folder: _Dir) -> None:
        self._remove_dir(folder)
        if folder is self._own:
            self._own = None
        else:
            self._adopted.remove(folder)

    def _remove_dir(self, folder: _Dir) -> None:
        if folder.write_fd >= 0:
            os.close(folder.write_fd)
            folder.write_fd = -1
        for segment in folder.segments:
            segment.path.unlink(missing_ok=True)
        folder.segments.clear()
        for name in ("ack", "lock"):
            (folder.path / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.path.rmdir()
        os.close(folder.lock_fd)  # last: the lock is held until the directory is gone

    def close(self) -> None:
        """Release the directories: removed when delivered, else left (unlocked) for the next
        publisher with this spool directory to replay."""
        for folder in self._dirs():
            if folder.pending_bytes == 0:
                self._remove_dir(folder)
            else:
                if folder.write_fd >= 0:
                    os.close(folder.write_fd)
                    folder.write_fd = -1
                os.close(folder.lock_fd)
                log.warning(
                    "spool %s keeps %d undelivered events for the next publisher",
                    folder.path,
                    folder.pending_events,
                )
        self._own = None
        self._adopted = []

    def abandon(self) -> None:
        """In a forked child: close the inherited descriptors; the parent keeps its lock and files."""
        for folder in self._dirs():
            for fd in (folder.write_fd, folder.lock_fd):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        self._own = None
        self._adopted = []


def _write_ack(folder: _Dir, number: int) -> None:
    write_ack(folder.path, number, folder.ack_offset, folder.ack_events)
