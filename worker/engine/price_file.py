"""Own prices from ``METRICS_PRICES_FILE``: read once at start, refused whole at the first bad entry.

The file is TOML (read with ``parse_float=Decimal``, so ``0.1`` is exactly a tenth): one ``[[price]]``
table per model and start date, USD per million tokens::

    [[price]]
    model = "acme-large"        # as the events name it (compared case-insensitively, exactly)
    provider = "acme"           # optional: only rounds of this provider; omitted = any provider
    valid_from = 2026-07-01     # optional: a date (UTC midnight) or a date-time with an offset
    input_mtok = 3              # required
    output_mtok = 15            # required (reasoning tokens are output tokens)
    cache_read_mtok = 0.30      # optional; omitted = input_mtok
    cache_write_mtok = 3.75     # optional; omitted = input_mtok

Several entries of one model make a price history. A bad file raises :class:`PriceFileError` whose
message is one line naming the file, the entry, the field, the value and why.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

RATES = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
FIELDS = ("model", "provider", "valid_from", *RATES)


class PriceFileError(ValueError):
    """The prices file can't be used; the message is one line that says where and why."""


@dataclass(frozen=True, slots=True)
class FilePrice:
    """One entry of the file: USD per million tokens of a model, from ``valid_from`` on."""

    model: str  # lower-cased
    provider: str | None  # lower-cased; None = any provider
    valid_from: datetime | None  # aware; None = always
    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal
    cache_write_mtok: Decimal


def load_price_file(path: str | Path) -> tuple[FilePrice, ...]:
    """Every entry of the file at ``path``, in file order; :class:`PriceFileError` if any is bad."""
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        raise PriceFileError(f"{path}: YAML is not read here: write the prices as TOML ([[price]] tables)")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceFileError(f"{path}: cannot read the prices file: {exc}") from None
    return parse_price_file(text, str(path))


def parse_price_file(text: str, where: str) -> tuple[FilePrice, ...]:
    """The entries of TOML ``text``; ``where`` names it in errors."""
    try:
        document = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise PriceFileError(f"{where}: not valid TOML: {exc}") from None
    extra = sorted(set(document) - {"price"})
    if extra:
        raise PriceFileError(f"{where}: unknown top-level key {extra[0]!r}: the file holds [[price]] tables")
    tables = document.get("price", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise PriceFileError(f"{where}: 'price' must be an array of tables, written [[price]]")
    entries: list[FilePrice] = []
    seen: dict[tuple[str, str | None, datetime | None], int] = {}
    for number, table in enumerate(tables, start=1):
        entry = _entry(table, f"{where}: price entry {number}")
        key = (entry.model, entry.provider, entry.valid_from)
        if key in seen:
            raise PriceFileError(
                f"{where}: price entry {number} (model {entry.model!r}): field 'valid_from' = "
                f"{_shown(table.get('valid_from'))}: entry {seen[key]} has the same model, provider "
                "and valid_from (which one wins would be a guess)"
            )
        seen[key] = number
        entries.append(entry)
    return tuple(entries)


def _entry(table: dict[str, Any], where: str) -> FilePrice:
    model = table.get("model")
    if not isinstance(model, str) or not model.strip():
        raise PriceFileError(
            f"{where}: field 'model' = {_shown(model)}: every entry needs the model's name as a string"
        )
    where = f"{where} (model {model!r})"
    for name in table:
        if name not in FIELDS:
            raise PriceFileError(
                f"{where}: field {name!r} = {_shown(table[name])}: unknown field (known: {', '.join(FIELDS)})"
            )
    provider = table.get("provider")
    if provider is not None and (not isinstance(provider, str) or not provider.strip()):
        raise PriceFileError(f"{where}: field 'provider' = {_shown(provider)}: must be a non-empty string")
    rates = {name: _rate(table, name, where) for name in RATES}
    input_mtok, output_mtok = rates["input_mtok"], rates["output_mtok"]
    if input_mtok is None or output_mtok is None:
        missing = "input_mtok" if input_mtok is None else "output_mtok"
        raise PriceFileError(
            f"{where}: field {missing!r} is missing: every entry needs input_mtok and output_mtok"
        )
    return FilePrice(
        model=model.strip().lower(),
        provider=provider.strip().lower() if provider is not None else None,
        valid_from=_valid_from(table.get("valid_from"), where),
        input_mtok=input_mtok,
        output_mtok=output_mtok,
        cache_read_mtok=rates["cache_read_mtok"] if rates["cache_read_mtok"] is not None else input_mtok,
        cache_write_mtok=rates["cache_write_mtok"] if rates["cache_write_mtok"] is not None else input_mtok,
    )


def _rate(table: dict[str, Any], name: str, where: str) -> Decimal | None:
    value = table.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise PriceFileError(
            f"{where}: field {name!r} = {_shown(value)}: must be a number (USD per million tokens)"
        )
    rate = Decimal(value)
    if not rate.is_finite() or rate < 0:
        raise PriceFileError(
            f"{where}: field {name!r} = {_shown(value)}: must be a finite, non-negative number of USD "
            "per million tokens"
        )
    return rate


def _valid_from(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise PriceFileError(
                f"{where}: field 'valid_from' = {_shown(value)}: a date-time needs an offset "
                "(write 2026-07-01T00:00:00Z), or write a date"
            )
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    raise PriceFileError(
        f"{where}: field 'valid_from' = {_shown(value)}: must be a TOML date (2026-07-01, UTC midnight) "
        "or a date-time with an offset (2026-07-01T12:00:00Z), not a string"
    )


def _shown(value: object) -> str:
    """The value as the message shows it: one line, at most 60 characters."""
    text = str(value) if isinstance(value, Decimal | date) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."
