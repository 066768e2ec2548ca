"""Unit: the spool keeps batches in order, bounded, survives torn writes, and is adopted only
when its owner is gone."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from producer.delivery import Batch
from producer.spool import Spool


def batch(seq: int, events: int = 10, size: int = 100, stream: str = "s", token: str = "tok") -> Batch:
    return Batch(token, seq, stream, [f"{seq}:{i}:".encode().ljust(size, b"x") for i in range(events)])


def drain(spool: Spool, per_peek: int = 25) -> list[Batch]:
    out: list[Batch] = []
    while batches := spool.peek(per_peek):
        out.extend(batches)
        spool.commit()
    return out


def test_batches_come_back_in_order_and_the_directory_goes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, "tok")
    spool.append([batch(1), batch(2, stream="other")])
    spool.append([batch(3)])
    assert spool.pending_events == 30
    first = spool.peek(1)
    assert first == spool.peek(1) == [batch(1)]  # peeking again without commit re-reads
    assert drain(spool) == [batch(1), batch(2, stream="other"), batch(3)]
    assert spool.empty and spool.consumed == spool.appended == 30
    assert list(tmp_path.iterdir()) == []
    spool.append([batch(4)])  # a new directory after the old one was removed
    assert drain(spool) == [batch(4)]


def test_bound_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 64 * 1024, "tok")  # segments of 8 KiB
    dropped = sum(spool.append([batch(seq)]) for seq in range(1, 201))  # ~1 KiB each, 200 KiB
    assert dropped > 0 and dropped % 10 == 0
    assert spool.dropped_oldest == dropped
    assert spool.pending_bytes <= 64 * 1024
    kept = drain(spool)
    seqs = [b.seq for b in kept]
    assert seqs == list(range(seqs[0], 201))  # the newest, contiguous
    assert dropped + sum(len(b.events) for b in kept) == 2000


def test_one_batch_beyond_the_bound_keeps_the_newest(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 4096, "tok")
    assert spool.append([batch(1, 5, 500), batch(2, 5, 500), batch(3, 1, 500)]) == 5
    assert [b.seq for b in drain(spool)] == [2, 3]


def test_orphan_is_adopted_torn_tail_skipped_and_ack_respected(tmp_path: Path) -> None:
    dead = Spool(tmp_path, 1 << 20, "dead")
    dead.append([batch(1, token="dead"), batch(2, token="dead"), batch(3, token="dead")])
    assert dead.peek(10)[0].seq == 1
    dead._peeked = (dead._own, dead._own.segments[0].size // 3, 10)  # type: ignore[union-attr,assignment]
    dead.commit()  # batch 1 delivered before the crash
    segment = next(tmp_path.glob("*/*.seg"))
    with open(segment, "ab") as handle:
        handle.write(b"\x30\x00\x00\x00garbage")  # a record torn by SIGKILL
    dead.abandon()  # "killed": descriptors closed, lock released, files left

    heir = Spool(tmp_path, 1 << 20, "heir")
    assert heir.adopt_orphans() == 20
    heir.append([batch(9, token="heir")])  # own batches come after the adopted ones
    assert [(b.token, b.seq) for b in drain(heir)] == [("dead", 2), ("dead", 3), ("heir", 9)]
    assert heir.corrupt_bytes == 11
    assert list(tmp_path.iterdir()) == []


def test_a_live_owner_keeps_its_spool(tmp_path: Path) -> None:
    alive = Spool(tmp_path, 1 << 20, "alive")
    alive.append([batch(1)])
    other = Spool(tmp_path, 1 << 20, "other")
    assert other.adopt_orphans() == 0
    alive.close()  # undelivered: left for the next publisher, unlocked
    folder = next(tmp_path.iterdir())
    fd = os.open(folder / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free now
    os.close(fd)
    assert other.adopt_orphans() == 10


def test_write_error_loses_the_batch_and_says_so(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "file", 1 << 20, "tok")
    (tmp_path / "file").write_text("not a directory")
    spool.append([batch(1)])
    assert spool.write_errors == 10 and spool.consumed == 10


def test_a_stray_segment_name_does_not_stop_adoption(tmp_path: Path) -> None:
    """A copy such as '0000000001 (copy).seg' in an orphan made int() raise and killed the
    sender thread for good (found in review); it is left alone now."""
    dead = Spool(tmp_path, 1 << 20, "dead")
    dead.append([batch(1, token="dead")])
    segment = next(tmp_path.glob("*/*.seg"))
    (segment.parent / f"{segment.stem} (copy).seg").write_bytes(segment.read_bytes())
    dead.abandon()
    heir = Spool(tmp_path, 1 << 20, "heir")
    assert heir.adopt_orphans() == 10
    assert [(b.token, b.seq) for b in drain(heir)] == [("dead", 1)]


def test_the_bound_covers_adopted_spools_too(tmp_path: Path) -> None:
    """An agent restarted again and again while Redis is away adopts every predecessor's spool;
    one full spool per restart piled up on disk (found in review). Oldest go first."""
    bound = 64 * 1024
    for restart in range(4):
        spool = Spool(tmp_path, bound, f"run{restart}")
        spool.adopt_orphans()
        for seq in range(1, 61):  # ~60 KiB each run
            spool.append([batch(restart * 100 + seq, token=f"run{restart}")])
        assert spool.pending_bytes <= bound
        spool.abandon()
    on_disk = sum(f.stat().st_size for f in tmp_path.glob("*/*.seg"))
    assert on_disk <= bound + 8 * 1024  # plus at most one segment's ack slack
    heir = Spool(tmp_path, bound, "heir")
    heir.adopt_orphans()
    kept = [b.seq for b in drain(heir)]
    assert kept == sorted(kept) and kept[-1] == 360  # the newest survive, in order


def test_a_spool_directory_deleted_under_it_is_counted_lost_and_replaced(tmp_path: Path) -> None:
    """Found in review: every step then failed on the missing file, and new events were written
    into the deleted file and silently lost."""
    import shutil

    spool = Spool(tmp_path, 1 << 20, "tok")
    spool.append([batch(1), batch(2)])
    (folder,) = tmp_path.iterdir()
    shutil.rmtree(folder)
    assert spool.append([batch(3)]) == 0  # goes to a new directory...
    assert spool.write_errors == 20  # ...and the twenty in the deleted one are counted lost
    assert [b.seq for b in drain(spool)] == [3]
    assert spool.consumed == spool.appended == 30  # flush() markers are not left waiting
    spool.append([batch(4)])
    shutil.rmtree(next(tmp_path.iterdir()))
    assert spool.peek(10) == [] and spool.write_errors == 30
