"""Which stored costs a set of rows needs changed: each row's cost as a pure function of its state.

A row's cost depends only on what the row holds now: its model and provider (the start's), its
usage and ``completed_at`` (the completion's occurred_at). So whichever order and however often
the events arrive, once the transaction that last touched a row prices it, the row holds
``PriceList.price()`` of its final state: the cost converges as the row does. The apply engine
prices every row its batch started or completed (worker/engine/apply.py), ``metrics-worker
reprice`` every row in its range (worker/reprice.py).

A row is **priceable** when it was started (a model) and really completed: a round's reconciled
guess (``completion_version`` ``''``) and a forward's (``...|reconciled``) reported no usage.
Priceable and priced: ``cost_usd`` and ``cost_source`` set. Priceable, no price: ``unpriced``
true and ``cost_usd`` NULL (never 0). Not priceable: NULL, NULL, false. A round's usage parts
are as pricing.py counts them: cache reads and writes inside ``prompt``, reasoning inside
``completion``; a part not reported counts 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.engine import arrays
from worker.engine.arrays import Array
from worker.engine.pricing import PriceList, TokenUsage

_DEFAULT: PriceList | None = None


def default_prices() -> PriceList:
    """genai-prices' bundled list, built once per process (what a worker without a file uses)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PriceList()
    return _DEFAULT


@dataclass(frozen=True, slots=True)
class Cost:
    """What a row's cost columns should hold."""

    usd: Decimal | None
    source: str | None
    unpriced: bool


NOT_PRICEABLE = Cost(None, None, False)


def cost_of(
    prices: PriceList,
    kind: str,
    model: str | None,
    provider: str | None,
    completed_at: datetime | None,
    completion_version: str | None,
    tokens: Sequence[int | None],
) -> Cost:
    """The cost of a round (``kind`` ``'r'``) or forward (``'f'``) in the state given; ``tokens``
    are prompt, completion, cache read, cache write, reasoning (None = not reported)."""
    if model is None or completed_at is None or not completion_version:
        return NOT_PRICEABLE
    if kind == "f" and completion_version.endswith("|reconciled"):
        return NOT_PRICEABLE
    prompt, completion, cache_read, cache_write, reasoning = (t or 0 for t in tokens)
    priced = prices.price(
        TokenUsage(prompt, completion, cache_read, cache_write, reasoning), model, provider, completed_at
    )
    if priced is None:
        return Cost(None, None, True)
    return Cost(priced.usd, priced.source, False)


@dataclass(slots=True)
class CostChanges:
    """The rows whose stored cost differs from their price now, per kind."""

    rounds: list[tuple[str, Cost]] = field(default_factory=list)
    forwards: list[tuple[str, Cost]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rounds) + len(self.forwards)

    def params(self) -> dict[str, Array]:
        """APPLY_COSTS' parameters (worker/engine/cost_sql.py)."""
        out: dict[str, Array] = {}
        for prefix, rows in (("r_", self.rounds), ("f_", self.forwards)):
            out[prefix + "id"] = arrays.text(key for key, _ in rows)
            out[prefix + "cost"] = arrays.text(None if c.usd is None else str(c.usd) for _, c in rows)
            out[prefix + "source"] = arrays.text(c.source for _, c in rows)
            out[prefix + "unpriced"] = arrays.boolean(c.unpriced for _, c in rows)
        return out


def changes(prices: PriceList, rows: Iterable[Sequence[Any]]) -> CostChanges:
    """Price PRICE_INPUTS' rows and keep those whose stored cost columns differ."""
    out = CostChanges()
    for kind, key, model, provider, completed_at, version, *rest in rows:
        tokens, (usd, source, unpriced) = rest[:5], rest[5:]
        cost = cost_of(prices, kind, model, provider, completed_at, version, tokens)
        if cost.usd != usd or cost.source != source or cost.unpriced != unpriced:
            (out.rounds if kind == "r" else out.forwards).append((key, cost))
    return out


@dataclass(slots=True)
class Predicted:
    """Costs priced before sending, per round of a batch (sorted by round_id, as the statements
    take them), and the model, provider and completion each was priced for: the SQL keeps one only
    if the row ends with exactly those (worker/engine/sql.py), so a wrong guess costs nothing but
    a read-back."""

    cost: list[str | None] = field(default_factory=list)
    source: list[str | None] = field(default_factory=list)
    unpriced: list[bool] = field(default_factory=list)
    model: list[str | None] = field(default_factory=list)
    provider: list[str | None] = field(default_factory=list)
    completion: list[str | None] = field(default_factory=list)

    def add(self, c: Cost | None, start: tuple[str, str | None] | None, completion: str | None) -> None:
        """One round's guess: its cost ``c`` for ``start`` (model, provider) and ``completion``."""
        self.cost.append(None if c is None or c.usd is None else str(c.usd))
        self.source.append(None if c is None else c.source)
        self.unpriced.append(c is not None and c.unpriced)
        self.model.append(None if start is None else start[0])
        self.provider.append(None if start is None else start[1])
        self.completion.append(completion)

    def guessed_all(self, completions: Iterable[str | None]) -> bool:
        """Whether every row with a completion (``completions``, in the same order) was priced."""
        return all(not c or p is not None for c, p in zip(completions, self.completion, strict=True))

    def params(self) -> dict[str, Array]:
        return {
            "p_cost": arrays.text(self.cost),
            "p_source": arrays.text(self.source),
            "p_unpriced": arrays.boolean(self.unpriced),
            "p_model": arrays.text(self.model),
            "p_provider": arrays.text(self.provider),
            "p_completion": arrays.text(self.completion),
        }


class Pricer:
    """A price list and the starts it saw (a round's model and provider; a forward's latest start),
    so that a row completed in a later batch than its start is priced before the batch is sent
    (one worker, and the shard a session's events all go to, sees both). Bounded: past ``limit``
    rows it forgets them all (a guess it lacks only costs a read-back)."""

    def __init__(self, prices: PriceList | None = None, limit: int = 200_000) -> None:
        self.prices = prices or default_prices()
        self._starts: dict[str, tuple[str, str | None]] = {}
        self._forward_starts: dict[str, tuple[str, str, str | None]] = {}  # version, model, provider
        self._limit = limit

    def predict(self, rounds: Sequence[Any]) -> Predicted:
        """Price each of ``rounds`` (merged RoundRows, in statement order) that has a completion
        and a known start; record the starts among them."""
        out = Predicted()
        starts = self._starts
        if len(starts) > self._limit:
            starts.clear()
        for r in rounds:
            if r.model is not None:
                starts[r.round_id] = (r.model, r.provider)
            known = starts.get(r.round_id) if r.completion_version else None
            if known is None:
                out.add(None, None, None)
                continue
            model, provider = known
            tokens = (r.prompt_tokens, r.completion_tokens, r.cache_read_tokens, r.cache_write_tokens,
                      r.reasoning_tokens)  # fmt: skip
            c = cost_of(self.prices, "r", model, provider, r.completed_at, r.completion_version, tokens)
            out.add(c, (model, provider), r.completion_version)
        return out

    def predict_forwards(self, forwards: Sequence[Any]) -> Predicted:
        """As :meth:`predict`, for merged ForwardRows (the latest start wins; a completion counts
        only if it is later than it)."""
        out = Predicted()
        starts = self._forward_starts
        if len(starts) > self._limit:
            starts.clear()
        for f in forwards:
            known = starts.get(f.forward_id)
            newer = known is None or (f.start_version is not None and f.start_version > known[0])
            if f.start_version is not None and f.model is not None and newer:
                known = starts[f.forward_id] = (f.start_version, f.model, f.provider)
            if not f.completion_version or known is None:
                out.add(None, None, None)
                continue
            version, model, provider = known
            if f.completion_version <= version:  # a later start dropped it
                out.add(None, None, None)
                continue
            tokens = (f.prompt_tokens, f.completion_tokens, f.cache_read_tokens, f.cache_write_tokens,
                      f.reasoning_tokens)  # fmt: skip
            c = cost_of(self.prices, "f", model, provider, f.completed_at, f.completion_version, tokens)
            out.add(c, (model, provider), f.completion_version)
        return out
