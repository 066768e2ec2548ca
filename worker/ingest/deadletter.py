"""Operations on dead letters: list, show, redrive, purge, over every dead-letter stream.

What a letter holds (its fields, and reading it back) is wire format: contract/deadletters.py.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from contract.codec import STREAM_FIELD
from contract.deadletters import DeadLetter
from contract.entries import parse_id


class DeadLetters:
    """Inspect and replay dead letters: one dead-letter stream, or several read as one (one per
    shard, so that each lives in its shard's Cluster slot; contract/keys.py)."""

    def __init__(self, client: Any, key: str | Sequence[str]) -> None:
        self.client = client  # redis.Redis or RedisCluster
        self.keys = [key] if isinstance(key, str) else list(key)
        self.key = self.keys[0] if len(self.keys) == 1 else f"{len(self.keys)} dead-letter streams"

    def list(self, count: int = 100, start: str = "-") -> builtins.list[DeadLetter]:
        """The oldest ``count`` dead letters (from ``start``) over every dead-letter stream."""
        found = [letter for key in self.keys for letter in self._range(key, start, count)]
        return sorted(found, key=lambda letter: parse_id(letter.id))[:count]

    def get(self, letter_id: str) -> DeadLetter | None:
        for key in self.keys:
            entries: Any = self.client.xrange(key, letter_id, letter_id, count=1)
            if entries:
                return DeadLetter.from_entry(entries[0][0], entries[0][1], key=key)
        return None

    def count(self) -> int:
        return sum(int(self.client.xlen(key)) for key in self.keys)

    def redrive(self, ids: builtins.list[str] | None = None, default_stream: str | None = None) -> int:
        """Re-publish dead letters to the stream they came from (all when ``ids`` is None) and
        remove them here, atomically per letter. Whatever still fails comes back with a new reason."""
        letters = self._select(ids)
        for letter in letters:
            target = letter.stream or default_stream
            if not target:
                continue
            # XADD, then XDEL once it succeeded (in one MULTI, a failed XADD would not stop the
            # XDEL: Redis does not roll back). A crash between them publishes the event twice,
            # which applying makes harmless; it never loses the letter.
            self.client.xadd(target, {STREAM_FIELD: letter.payload})
            self.client.xdel(letter.key, letter.id)
        return len(letters)

    def purge(self, ids: builtins.list[str] | None = None) -> int:
        """Delete dead letters (all when ``ids`` is None)."""
        if ids is None:
            n = self.count()
            for key in self.keys:  # one DEL per key: on a cluster they live in different slots
                self.client.delete(key)
            return n
        return sum(int(self.client.xdel(key, *ids)) for key in self.keys) if ids else 0

    def _range(self, key: str, start: str, count: int) -> builtins.list[DeadLetter]:
        entries: Any = self.client.xrange(key, start, "+", count=count)
        return [DeadLetter.from_entry(i, f, key=key) for i, f in entries]

    def _select(self, ids: builtins.list[str] | None) -> builtins.list[DeadLetter]:
        if ids is None:
            out: builtins.list[DeadLetter] = []
            for key in self.keys:
                start = "-"
                while True:
                    page = self._range(key, start, 1000)
                    out.extend(page)
                    if len(page) < 1000:
                        break
                    start = "(" + page[-1].id
            return out
        ids = builtins.list(dict.fromkeys(ids))  # the same id twice would be re-published twice
        found = [self.get(i) for i in ids]
        missing = [i for i, letter in zip(ids, found, strict=True) if letter is None]
        if missing:
            raise KeyError(f"no dead letter with id {', '.join(missing)} in {self.key}")
        return [letter for letter in found if letter is not None]
