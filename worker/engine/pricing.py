"""What a round's tokens cost in USD, at the price valid when it happened (pure, memoised).

Prices come from genai-prices' **bundled** data (the list in the installed wheel, never its network
update ``UpdatePrices``: workers are often offline, and a price list must not change under running
workers) and from an own prices file (:mod:`worker.engine.price_file`). Precedence, per round:

1. the file's entries for the model (case-insensitive, exact name) whose provider is the round's or
   is omitted, and whose ``valid_from`` is at or before ``at``: the one with the latest ``valid_from``
   wins (no ``valid_from`` = the oldest), a provider-specific entry before an any-provider one;
2. else genai-prices' price for the model and provider at ``at`` (its start-date and time-of-day
   constraints); a provider genai-prices does not know is priced as if none were given (genai-prices
   then finds the provider from the model's name); a model the provider's list lacks is unpriced,
   as in ``calc_price``;
3. else ``None``: unpriced, never ``0``. Also ``None`` when genai-prices can't split the usage for the
   model (it raises ``ValueError``, e.g. cache reads plus writes above the prompt).

Token parts, as the OpenTelemetry GenAI conventions and genai-prices count them: ``cache_read`` and
``cache_write`` are parts of ``prompt``; ``reasoning`` is part of ``completion`` (never added on top).
The result equals ``genai_prices.calc_price(Usage(input_tokens=prompt, cache_read_tokens=cache_read,
cache_write_tokens=cache_write, output_tokens=completion, output_reasoning_tokens=reasoning), model,
provider_id=provider, genai_request_timestamp=at).total_price`` (tests/engine/test_pricing.py holds
that); for the common price shapes it is computed here from the price data, ~30x faster than
``calc_price``. A file price charges ``(prompt - cache_read - cache_write) x input + cache_read x
cache_read + cache_write x cache_write + completion x output``, per million tokens. ``at`` is an
aware datetime (the event's ``occurred_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import genai_prices
from genai_prices import data as bundled_data
from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices, TimeOfDateConstraint, Usage

from worker.engine.price_file import FilePrice, load_price_file

BUNDLED = f"genai-prices {genai_prices.__version__}"
_MILLION = Decimal(1_000_000)
# Price keys computed here; any other key with a price sends the round through calc_price itself.
_FAST_KEYS = frozenset(
    {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "output_reasoning_mtok"}
)
# Keys whose usage a round never reports (1h cache writes, tool calls): genai-prices counts them 0.
_ZERO_KEYS = frozenset({"cache_write_1h_mtok", "web_searches_kcount", "storage_searches_kcount"})
_MEMO_LIMIT = 4096  # distinct (model, provider) pairs kept; past it the memo starts over


class TokenUsage(NamedTuple):
    """A round's tokens: cache reads and writes are parts of ``prompt``, reasoning of ``completion``."""

    prompt: int
    completion: int
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass(frozen=True, slots=True)
class Priced:
    """A cost in exact USD, the price list that gave it, and that list's id of the model."""

    usd: Decimal
    source: str  # "genai-prices 0.2.5" or "file:/etc/metrics/prices.toml"
    model_id: str


@dataclass(frozen=True, slots=True)
class _Rates:
    """A bundled price computed here: per-million rates of the keys that have one (None = unpriced)."""

    input: Decimal | TieredPrices | None
    output: Decimal | TieredPrices | None
    cache_read: Decimal | TieredPrices | None
    cache_write: Decimal | TieredPrices | None
    reasoning: Decimal | TieredPrices | None


@dataclass(frozen=True, slots=True)
class _Rows:
    """Everything that can price one (model, provider): file entries newest first, then the bundled model."""

    file: tuple[FilePrice, ...]
    bundled: tuple[ModelInfo, Provider] | None
    by_date: bool  # the bundled prices change only at UTC date boundaries (memoise per date)


class PriceList:
    """Prices rounds; build one at start (:meth:`load`) and keep it: lookups are memoised in it."""

    def __init__(self, file_prices: Sequence[FilePrice] = (), file_source: str = "file") -> None:
        self._file = tuple(file_prices)
        self._file_source = file_source
        # A snapshot of our own over the bundled list: a custom snapshot set elsewhere in the process
        # (genai_prices.data_snapshot.set_custom_snapshot, UpdatePrices) never reaches it.
        self._snapshot = DataSnapshot(providers=bundled_data.providers, from_auto_update=False)
        self._rows: dict[tuple[str, str | None], _Rows | None] = {}
        self._rates: dict[int, _Rates | None] = {}  # id(ModelPrice) -> rates; the data lives as long as we do
        self._dated: dict[tuple[str, str | None, object], ModelPrice] = {}

    @classmethod
    def load(cls, path: str | Path | None) -> PriceList:
        """The bundled list, plus the prices file at ``path`` when given (PriceFileError if it is bad)."""
        if path is None or str(path) == "":
            return cls()
        return cls(load_price_file(path), f"file:{path}")

    def price(self, usage: TokenUsage, model: str, provider: str | None, at: datetime) -> Priced | None:
        """What ``usage`` of ``model`` at ``provider`` cost at ``at`` (aware), or None if unpriced."""
        rows = self._lookup(model, provider)
        if rows is None:
            return None
        for entry in rows.file:
            if entry.valid_from is None or entry.valid_from <= at:
                return _file_cost(usage, entry, self._file_source)
        if rows.bundled is None:
            return None
        info, found = rows.bundled
        model_price = self._model_price(rows, model, provider, at)
        rates = self._rates_of(model_price)
        if rates is not None:
            usd = _bundled_cost(usage, rates)
        else:  # a shape computed by genai-prices itself (audio, images, per-request fees)
            try:
                usd = info.calc_price(_usage(usage), found, genai_request_timestamp=at).total_price
            except ValueError:
                return None
        return None if usd is None else Priced(usd, BUNDLED, info.id)

    def _lookup(self, model: str, provider: str | None) -> _Rows | None:
        key = (model, provider)
        try:
            return self._rows[key]
        except KeyError:
            pass
        if len(self._rows) >= _MEMO_LIMIT:
            self._rows.clear()
            self._dated.clear()
        rows = self._rows[key] = self._find(model, provider)
        return rows

    def _find(self, model: str, provider: str | None) -> _Rows | None:
        name, by = model.strip().lower(), (provider.strip().lower() if provider else None)
        file = sorted(
            (e for e in self._file if e.model == name and e.provider in (None, by)),
            key=lambda e: (e.valid_from is not None, e.valid_from or datetime.min, e.provider is not None),
            reverse=True,
        )
        bundled = self._bundled(model, provider)
        if not file and bundled is None:
            return None
        by_date = (
            bundled is None
            or isinstance(bundled[0].prices, ModelPrice)
            or not any(isinstance(c.constraint, TimeOfDateConstraint) for c in bundled[0].prices)
        )
        return _Rows(tuple(file), bundled, by_date)

    def _bundled(self, model: str, provider: str | None) -> tuple[ModelInfo, Provider] | None:
        if provider is not None and find_provider_by_id(self._snapshot.providers, provider) is None:
            provider = None  # a provider genai-prices does not know: let the model's name find it
        try:
            found, info = self._snapshot.find_provider_model(model, None, provider, None)
        except LookupError:
            return None
        return info, found

    def _model_price(self, rows: _Rows, model: str, provider: str | None, at: datetime) -> ModelPrice:
        assert rows.bundled is not None
        info = rows.bundled[0]
        if isinstance(info.prices, ModelPrice):
            return info.prices
        if not rows.by_date:
            return info.get_prices(at)
        key = (model, provider, at.astimezone(UTC).date() if at.tzinfo is not None else at.date())
        try:
            return self._dated[key]
        except KeyError:
            if len(self._dated) >= 16 * _MEMO_LIMIT:
                self._dated.clear()
            found = self._dated[key] = info.get_prices(at)
            return found

    def _rates_of(self, model_price: ModelPrice) -> _Rates | None:
        key = id(model_price)
        try:
            return self._rates[key]
        except KeyError:
            pass
        priced = {k for k, v in vars(model_price).items() if v is not None and not k.startswith("_")}
        rates = None
        if priced <= _FAST_KEYS | _ZERO_KEYS:
            rates = _Rates(
                input=model_price.input_mtok,
                output=model_price.output_mtok,
                cache_read=model_price.cache_read_mtok,
                cache_write=model_price.cache_write_mtok,
                reasoning=model_price.output_reasoning_mtok,
            )
        self._rates[key] = rates
        return rates


def _file_cost(usage: TokenUsage, entry: FilePrice, source: str) -> Priced | None:
    uncached = usage.prompt - usage.cache_read - usage.cache_write
    if uncached < 0 or usage.reasoning > usage.completion:
        return None
    usd = (
        uncached * entry.input_mtok
        + usage.cache_read * entry.cache_read_mtok
        + usage.cache_write * entry.cache_write_mtok
        + usage.completion * entry.output_mtok
    ) / _MILLION
    return Priced(usd, source, entry.model)


def _bundled_cost(usage: TokenUsage, rates: _Rates) -> Decimal | None:
    """genai-prices' arithmetic: each priced part is charged at its rate, an unpriced one at its whole's."""
    cache_read = usage.cache_read if rates.cache_read is not None else 0
    cache_write = usage.cache_write if rates.cache_write is not None else 0
    reasoning = usage.reasoning if rates.reasoning is not None else 0
    uncached = usage.prompt - cache_read - cache_write
    answer = usage.completion - reasoning
    if uncached < 0 or answer < 0:
        return None
    total = Decimal(0)
    for rate, count in (
        (rates.input, uncached),
        (rates.cache_read, cache_read),
        (rates.cache_write, cache_write),
        (rates.output, answer),
        (rates.reasoning, reasoning),
    ):
        if rate is not None:
            total += _rate_at(rate, usage.prompt) * count / _MILLION
    return total


def _rate_at(rate: Decimal | TieredPrices, prompt: int) -> Decimal:
    """A tiered price's rate: the highest tier the whole prompt passes applies to all tokens (a cliff)."""
    if isinstance(rate, Decimal):
        return rate
    for tier in reversed(rate.tiers):
        if prompt > tier.start:
            return tier.price
    return rate.base


def _usage(usage: TokenUsage) -> Usage:
    """The genai-prices usage of a round (the mapping the module docstring states)."""
    return Usage(
        input_tokens=usage.prompt,
        cache_read_tokens=usage.cache_read,
        cache_write_tokens=usage.cache_write,
        output_tokens=usage.completion,
        output_reasoning_tokens=usage.reasoning,
    )
