"""A bad prices file is refused at load with one line naming the entry, the field, the value and why."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from worker.engine.price_file import FilePrice, PriceFileError, load_price_file, parse_price_file
from worker.engine.pricing import PriceList, TokenUsage

GOOD = '[[price]]\nmodel = "m"\ninput_mtok = 1\noutput_mtok = 2\n'


def test_a_good_file_loads_with_exact_decimals_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(GOOD + '\n[[price]]\nmodel = "M"\nprovider = "Acme"\nvalid_from = 2026-07-01\n'
                    "input_mtok = 0.1\noutput_mtok = 0.3\ncache_read_mtok = 0.01\n")  # fmt: skip
    first, second = load_price_file(path)
    assert first == FilePrice("m", None, None, Decimal(1), Decimal(2), Decimal(1), Decimal(1))
    assert second == FilePrice(
        "m",
        "acme",
        datetime(2026, 7, 1, tzinfo=UTC),
        Decimal("0.1"),
        Decimal("0.3"),
        Decimal("0.01"),
        Decimal("0.1"),
    )
    priced = PriceList.load(path).price(TokenUsage(1_000_000, 0), "m", None, datetime(2026, 1, 1, tzinfo=UTC))
    assert priced is not None and (priced.usd, priced.source) == (Decimal(1), f"file:{path}")
    assert PriceList.load(None).price(TokenUsage(1, 0), "m", None, datetime(2026, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("output_mtok = 2", "output_mtok = -2"),
         "price entry 1 (model 'm'): field 'output_mtok' = -2: must be a finite, non-negative number"),
        (GOOD.replace("output_mtok = 2", 'output_mtok = "2"'),
         "price entry 1 (model 'm'): field 'output_mtok' = '2': must be a number"),
        (GOOD.replace("output_mtok = 2", "output_mtok = nan"),
         "price entry 1 (model 'm'): field 'output_mtok' = NaN: must be a finite"),
        (GOOD.replace("output_mtok = 2\n", ""),
         "price entry 1 (model 'm'): field 'output_mtok' is missing"),
        (GOOD.replace("input_mtok", "input"),
         "price entry 1 (model 'm'): field 'input' = 1: unknown field (known: model, provider"),
        (GOOD + '[[price]]\ninput_mtok = 1\noutput_mtok = 2\n',
         "price entry 2: field 'model' = None: every entry needs the model's name"),
        (GOOD.replace('model = "m"', "model = 7"),
         "price entry 1: field 'model' = 7: every entry needs the model's name"),
        (GOOD + 'valid_from = "2026-07-01"\n',
         "price entry 1 (model 'm'): field 'valid_from' = '2026-07-01': must be a TOML date"),
        (GOOD + "valid_from = 2026-07-01T00:00:00\n",
         "price entry 1 (model 'm'): field 'valid_from' = 2026-07-01 00:00:00: a date-time needs an offset"),
        (GOOD + 'provider = ""\n',
         "price entry 1 (model 'm'): field 'provider' = '': must be a non-empty string"),
        (GOOD + GOOD.replace('"m"', '"M"'),
         "price entry 2 (model 'm'): field 'valid_from' = None: entry 1 has the same model, provider"),
        ('[[prices]]\nmodel = "m"\n', "unknown top-level key 'prices'"),
        ("price = 3\n", "'price' must be an array of tables"),
        ("[[price]\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_in_one_line_naming_entry_and_field(text: str, expected: str) -> None:
    with pytest.raises(PriceFileError) as caught:
        parse_price_file(text, "prices.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("prices.toml: ")
    assert expected in message, message


def test_a_missing_or_yaml_file_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match=r"nope\.toml: cannot read the prices file"):
        load_price_file(tmp_path / "nope.toml")
    (tmp_path / "p.yaml").write_text("price: []\n")
    with pytest.raises(PriceFileError, match=r"p\.yaml: YAML is not read here: write the prices as TOML"):
        PriceList.load(tmp_path / "p.yaml")


def test_the_readmes_example_file_loads_and_its_example_error_is_the_real_one() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (entry,) = parse_price_file(example, "README.md")
    assert (entry.model, entry.provider, entry.cache_write_mtok) == ("acme-large", "acme", Decimal("3.75"))
    bad = example + example.replace("output_mtok = 15", "output_mtok = -2").replace(
        "2026-07-01", "2026-08-01"
    )
    with pytest.raises(PriceFileError) as caught:
        parse_price_file(bad, "prices.toml")
    assert f"(`{caught.value}`)" in " ".join(readme.split())
