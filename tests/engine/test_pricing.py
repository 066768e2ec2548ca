"""A round's cost equals genai-prices' calc_price; prices change at their start dates; unknown is None."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price
from genai_prices.data import providers
from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id, set_custom_snapshot
from genai_prices.types import ModelPrice, StartDateConstraint
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.engine.price_file import parse_price_file
from worker.engine.pricing import BUNDLED, PriceList, TokenUsage

PAIRS = [(p.id, m.id) for p in providers for m in p.models]
PRICES = PriceList()


def _usages(max_tokens: int = 3_000_000) -> st.SearchStrategy[TokenUsage]:
    """Any usage whose parts fit their wholes (cache reads plus writes within the prompt)."""

    @st.composite
    def build(draw: st.DrawFn) -> TokenUsage:
        prompt = draw(st.integers(0, max_tokens))
        cache_read = draw(st.integers(0, prompt))
        cache_write = draw(st.integers(0, prompt - cache_read))
        completion = draw(st.integers(0, max_tokens))
        reasoning = draw(st.integers(0, completion))
        return TokenUsage(prompt, completion, cache_read, cache_write, reasoning)

    return build()


_TIMES = st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC))


def _calc(usage: TokenUsage, model: str, provider: str | None, at: datetime) -> Decimal | None:
    """The oracle: genai-prices' own calc_price, with the mapping pricing.py's docstring states."""
    if provider is not None and find_provider_by_id(providers, provider) is None:
        provider = None
    parts = Usage(
        input_tokens=usage.prompt,
        cache_read_tokens=usage.cache_read,
        cache_write_tokens=usage.cache_write,
        output_tokens=usage.completion,
        output_reasoning_tokens=usage.reasoning,
    )
    try:
        return calc_price(parts, model, provider_id=provider, genai_request_timestamp=at).total_price
    except (LookupError, ValueError):
        return None


@settings(max_examples=400, deadline=None)
@given(pair=st.sampled_from(PAIRS), usage=_usages(), at=_TIMES)
def test_any_usage_of_any_bundled_model_costs_what_calc_price_says(
    pair: tuple[str, str], usage: TokenUsage, at: datetime
) -> None:
    provider, model = pair
    got = PRICES.price(usage, model, provider, at)
    assert (got.usd if got else None) == _calc(usage, model, provider, at)
    if got is not None:
        assert got.source == BUNDLED


def test_every_bundled_model_at_each_side_of_each_start_date_costs_what_calc_price_says() -> None:
    """A sweep of the whole bundled list (a hypothesis sample could miss a rare price shape)."""
    usages = [
        TokenUsage(1_000_000, 100_000, 200_000, 50_000, 30_000),
        TokenUsage(300_000, 5_000),
        TokenUsage(0, 0),
    ]
    checked = 0
    for p in providers:
        for m in p.models:
            times = [datetime(2025, 1, 1, 12, tzinfo=UTC), datetime(2026, 12, 6, 3, tzinfo=UTC)]
            for c in [] if isinstance(m.prices, ModelPrice) else m.prices:
                if isinstance(c.constraint, StartDateConstraint):
                    start = datetime.combine(c.constraint.start_date, datetime.min.time(), tzinfo=UTC)
                    times += [start - timedelta(microseconds=1), start]
            for at in times:
                for usage in usages:
                    got = PRICES.price(usage, m.id, p.id, at)
                    assert (got.usd if got else None) == _calc(usage, m.id, p.id, at), (p.id, m.id, at, usage)
                    checked += 1
    assert checked > 10_000


def test_a_hand_computed_example() -> None:
    """gpt-4o: 1M input of which 200k cached + 100k output (30k of it reasoning) = 800k x 2.50 +
    200k x 1.25 + 100k x 10 per million = $3.25: cached once, reasoning not on top."""
    usage = TokenUsage(prompt=1_000_000, completion=100_000, cache_read=200_000, reasoning=30_000)
    got = PRICES.price(usage, "gpt-4o", "openai", datetime(2026, 6, 1, tzinfo=UTC))
    assert got is not None
    assert (got.usd, got.source, got.model_id) == (Decimal("3.25"), BUNDLED, "gpt-4o")


def _changed() -> tuple[str, str, datetime]:
    """A bundled model whose plain (untiered) input price changes at a start date, and that date."""
    for p in providers:
        for m in p.models:
            if isinstance(m.prices, ModelPrice):
                continue
            for c in m.prices:
                if isinstance(c.constraint, StartDateConstraint):
                    start = datetime.combine(c.constraint.start_date, datetime.min.time(), tzinfo=UTC)
                    before, after = m.get_prices(start - timedelta(seconds=1)), m.get_prices(start)
                    rates = (before.input_mtok, after.input_mtok)
                    if all(isinstance(r, Decimal) for r in rates) and rates[0] != rates[1]:
                        return p.id, m.id, start
    raise AssertionError("no bundled model changes its input price at a start date")


def test_a_model_whose_price_changed_prices_each_side_of_the_change_at_its_own_price() -> None:
    provider, model, start = _changed()
    usage = TokenUsage(prompt=100_000, completion=1_000)
    before = PRICES.price(usage, model, provider, start - timedelta(seconds=1))
    after = PRICES.price(usage, model, provider, start)
    assert before is not None and after is not None
    assert before.usd != after.usd
    assert before.usd == _calc(usage, model, provider, start - timedelta(seconds=1))
    assert after.usd == _calc(usage, model, provider, start)


@pytest.mark.parametrize(
    "model", ["llama-3.3-70b-no-such", "claude-haiku-4", "", "gpt-4o-but-not-really-xyz"]
)
def test_an_unknown_model_is_unpriced_not_free(model: str) -> None:
    assert PRICES.price(TokenUsage(1000, 1000), model, "openai", datetime(2026, 6, 1, tzinfo=UTC)) is None
    assert PRICES.price(TokenUsage(1000, 1000), model, None, datetime(2026, 6, 1, tzinfo=UTC)) is None


def test_a_provider_genai_prices_does_not_know_is_priced_by_the_models_name() -> None:
    at = datetime(2026, 6, 1, tzinfo=UTC)
    usage = TokenUsage(10_000, 1_000)
    assert PRICES.price(usage, "gpt-4o", "ibm.watsonx.ai", at) == PRICES.price(usage, "gpt-4o", None, at)
    bedrock = PRICES.price(usage, "claude-sonnet-4-6", "aws.bedrock", at)  # genai-prices' "aws"
    assert bedrock is not None and bedrock.usd == _calc(usage, "claude-sonnet-4-6", "aws", at)


_FILE = """
[[price]]
model = "Acme-Large"
input_mtok = 2
output_mtok = 8
cache_read_mtok = 0.5

[[price]]
model = "acme-large"
valid_from = 2026-07-01
input_mtok = 1
output_mtok = 4

[[price]]
model = "acme-large"
provider = "acme-cloud"
valid_from = 2026-07-01
input_mtok = 3
output_mtok = 12

[[price]]
model = "gpt-4o"
valid_from = 2026-09-01T00:00:00Z
input_mtok = 0.1
output_mtok = 0.2
"""


def _own() -> PriceList:
    return PriceList(parse_price_file(_FILE, "own.toml"), "file:own.toml")


def test_the_file_adds_a_model_with_a_price_history() -> None:
    own = _own()
    usage = TokenUsage(prompt=1_000_000, completion=1_000_000, cache_read=500_000, cache_write=100_000)
    old = own.price(usage, "acme-large", "openai", datetime(2026, 6, 30, 23, 59, tzinfo=UTC))
    # 400k x 2 + 500k x 0.5 + 100k x 2 (cache writes at the input price) + 1M x 8 = 9.25
    assert old is not None and (old.usd, old.source) == (Decimal("9.25"), "file:own.toml")
    new = own.price(usage, "ACME-LARGE", None, datetime(2026, 7, 1, tzinfo=UTC))
    assert new is not None and new.usd == Decimal("5")  # 1M x 1 + 1M x 4
    specific = own.price(usage, "acme-large", "acme-cloud", datetime(2026, 7, 2, tzinfo=UTC))
    assert specific is not None and specific.usd == Decimal("15")
    assert PRICES.price(usage, "acme-large", None, datetime(2026, 7, 2, tzinfo=UTC)) is None


def test_the_file_overrides_a_bundled_model_from_its_valid_from_on() -> None:
    own = _own()
    usage = TokenUsage(prompt=1_000_000, completion=1_000_000)
    before = own.price(usage, "gpt-4o", "openai", datetime(2026, 8, 31, tzinfo=UTC))
    after = own.price(usage, "gpt-4o", "openai", datetime(2026, 9, 1, tzinfo=UTC))
    assert before == PRICES.price(usage, "gpt-4o", "openai", datetime(2026, 8, 31, tzinfo=UTC))
    assert after is not None and (after.usd, after.source) == (Decimal("0.3"), "file:own.toml")


@settings(max_examples=200, deadline=None)
@given(usage=_usages(), at=st.datetimes(timezones=st.just(UTC)))
def test_a_file_price_is_the_documented_sum_for_any_usage(usage: TokenUsage, at: datetime) -> None:
    got = _own().price(usage, "acme-large", None, at)
    assert got is not None
    rates = (1, 1, 1, 4) if at >= datetime(2026, 7, 1, tzinfo=UTC) else (2, Decimal("0.5"), 2, 8)
    uncached = usage.prompt - usage.cache_read - usage.cache_write
    parts = (uncached, usage.cache_read, usage.cache_write, usage.completion)
    assert got.usd == sum(Decimal(n) * r for n, r in zip(parts, rates, strict=True)) / 1_000_000


def test_a_custom_snapshot_set_elsewhere_in_the_process_changes_nothing() -> None:
    """UpdatePrices and set_custom_snapshot swap genai-prices' global list; ours stays the bundled one."""
    at = datetime(2026, 6, 1, tzinfo=UTC)
    usage = TokenUsage(1_000_000, 0)
    fresh = PriceList()
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    try:
        with pytest.raises(LookupError):
            calc_price(Usage(input_tokens=1), "gpt-4o", provider_id="openai", genai_request_timestamp=at)
        got = fresh.price(usage, "gpt-4o", "openai", at)
    finally:
        set_custom_snapshot(None)
    assert got is not None and got.usd == Decimal("2.5") and got.source == BUNDLED


@pytest.mark.parametrize(
    "model", ["deepseek-chat", "deepseek-reasoner", "deepseek-v4-flash", "deepseek-v4-pro"]
)
def test_an_off_peak_price_follows_the_time_of_day_within_one_date(model: str) -> None:
    """Time-of-day prices (DeepSeek's off-peak hours) are not memoised per date: every hour is its own."""
    usage = TokenUsage(1_000_000, 1_000_000, cache_read=100_000)
    day = datetime(2026, 12, 6, tzinfo=UTC)
    costs = set()
    for hour in range(24):
        at = day + timedelta(hours=hour, minutes=45)
        got = PRICES.price(usage, model, "deepseek", at)
        assert (got.usd if got else None) == _calc(usage, model, "deepseek", at), at
        costs.add(got.usd if got else None)
    assert len(costs) >= 2, costs
