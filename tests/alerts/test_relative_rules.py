"""Relative rules (``baseline``), pure: what the file takes and refuses in one line, the spans the
baseline covers, and when a ratio breaches."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.alerts.helpers import readme_block
from worker.alerts.evaluate import FIRING, OK, Reading, Sides, State, breaching, step, why_no_ratio
from worker.alerts.kinds import KINDS
from worker.alerts.relative import baseline_start
from worker.alerts.rules import Rule, RulesError, parse_rules

ENV = {"HOOK": "http://127.0.0.1:9/x"}
P95 = (
    'name = "p95 doubles"\nwatch = "round_latency_p95"\ngroup_by = "model"\nwindow = "1h"\n'
    'baseline = "1d"\ncomparison = ">="\nthreshold = 2\nmin_samples = 10\n'
)
NOW = datetime(2026, 12, 6, 14, 30, tzinfo=UTC)


def parse(body: str) -> Rule:
    (rule,) = parse_rules(tomllib.loads("[[rules]]\n" + body), "alerts.toml", ENV).rules
    return rule


def test_a_relative_rule_parses_and_says_what_it_compares() -> None:
    rule = parse(P95)
    assert (rule.baseline, rule.threshold, rule.comparison) == (timedelta(days=1), 2.0, ">=")
    assert rule.condition() == "round_latency_p95 >= 2 x baseline over 1h (baseline: the 1d before)"
    assert parse(P95.replace('baseline = "1d"\n', "")).baseline is None


def test_an_offset_window_ends_that_long_ago() -> None:
    rule = parse('name = "y"\nwatch = "cost_usd"\nwindow = "1d"\noffset = "1d"\nthreshold = 100\n')
    assert (rule.window, rule.offset, rule.baseline) == (timedelta(days=1), timedelta(days=1), None)
    assert rule.condition() == "cost_usd > 100 over 1d offset 1d"  # yesterday, the whole UTC date
    both = parse(P95 + 'offset = "1h"\n')
    assert both.condition() == (
        "round_latency_p95 >= 2 x baseline over 1h offset 1h (baseline: the 1d before)"
    )


def test_a_ratio_is_not_a_share() -> None:
    rule = parse('name = "t"\nwatch = "tool_error_share"\nwindow = "15m"\nbaseline = "1d"\nthreshold = 3\n')
    assert rule.threshold == 3.0  # tool_error_share alone must be 0..1; its ratio need not


def test_every_measured_kind_takes_a_baseline_and_no_other() -> None:
    measured = sorted(k.name for k in KINDS.values() if k.comparable)
    assert measured == sorted(
        [
            "round_error_share",
            "tool_error_share",
            "forward_error_share",
            "session_error_share",
            "tokens",
            "cost_usd",
            "round_latency_p95",
            "round_latency_p99",
            "time_to_first_token_p95",
        ]
    )
    for name in measured:
        assert parse(f'name = "r"\nwatch = "{name}"\nwindow = "1d"\nbaseline = "7d"\nthreshold = 2\n')


BAD = [
    (
        'name = "q"\nwatch = "silence"\nwindow = "15m"\noffset = "1d"\n',
        "rule 'q': offset: silence counts starts up to a cap and has no offset; only measured kinds",
    ),
    (
        'name = "b"\nwatch = "backlog"\noffset = "1d"\nthreshold = 2\n',
        "rule 'b': offset: backlog is read as it is now and has no offset",
    ),
    (
        'name = "c"\nwatch = "cost_usd"\nwindow = "1d"\noffset = "6h"\nthreshold = 100\n',
        "rule 'c': offset: '6h' is not whole days; a window of days (1d) is UTC dates",
    ),
    (
        'name = "c"\nwatch = "cost_usd"\nwindow = "1h"\noffset = "7d"\nthreshold = 100\n',
        "rule 'c': offset: '7d' is longer than a day; a window under a day reads the base tables",
    ),
    (
        'name = "c"\nwatch = "cost_usd"\nwindow = "1h"\noffset = "yesterday"\nthreshold = 100\n',
        "rule 'c': offset: 'yesterday'",
    ),
    (
        'name = "p"\nwatch = "round_latency_p99"\nwindow = "1d"\noffset = "1d"\nthreshold = 9000\n'
        'group_by = "provider"\n',
        "rule 'p': offset: round_latency_p99 by provider has no latency histogram to read it from",
    ),
    (
        'name = "q"\nwatch = "silence"\nwindow = "15m"\nbaseline = "1d"\n',
        "rule 'q': baseline: silence counts starts up to a cap and has no baseline; only measured kinds",
    ),
    (
        'name = "b"\nwatch = "backlog"\nbaseline = "1d"\nthreshold = 2\n',
        "rule 'b': baseline: backlog is read as it is now and has no baseline",
    ),
    (
        'name = "l"\nwatch = "lag_seconds"\nbaseline = "1h"\nthreshold = 2\n',
        "rule 'l': baseline: lag_seconds is read as it is now and has no baseline",
    ),
    (
        'name = "d"\nwatch = "dead_letters"\nbaseline = "1h"\nthreshold = 2\n',
        "rule 'd': baseline: dead_letters is read as it is now and has no baseline",
    ),
    (
        'name = "t"\nwatch = "tokens"\nwindow = "1d"\nbaseline = "36h"\nthreshold = 2\n',
        "rule 't': baseline: '36h' is not whole days; a window of days (1d) is UTC dates, and so is what "
        "comes before it",
    ),
    (
        'name = "t"\nwatch = "tokens"\nwindow = "1d"\nbaseline = "12h"\nthreshold = 2\n',
        "rule 't': baseline: '12h' is not whole days",
    ),
    (
        'name = "t"\nwatch = "tokens"\nwindow = "1h"\nbaseline = "2d"\nthreshold = 2\n',
        "rule 't': baseline: '2d' is longer than a day; a window under a day reads the base tables",
    ),
    (
        'name = "t"\nwatch = "tokens"\nwindow = "1h"\nbaseline = "30s"\nthreshold = 2\n',
        "rule 't': baseline: '30s' is shorter than 1m",
    ),
    (
        'name = "t"\nwatch = "tokens"\nwindow = "1h"\nbaseline = "soon"\nthreshold = 2\n',
        "rule 't': baseline: 'soon'",
    ),
    (
        'name = "t"\nwatch = "tokens"\nwindow = "1h"\nbaseline = 1\nthreshold = 2\n',
        "rule 't': baseline: 1 is not a duration; write it as a string",
    ),
    (
        'name = "t"\nwatch = "tokens"\nwindow = "1h"\nbaseline = "1d"\nthreshold = 0\n',
        "rule 't': threshold: 0 is not a positive ratio; with a baseline the value is the window's over "
        "the baseline's",
    ),
    (
        'name = "t"\nwatch = "tool_error_share"\nwindow = "1h"\nbaseline = "1d"\nthreshold = -2\n',
        "rule 't': threshold: -2 is not a positive ratio",
    ),
    (
        'name = "t"\nwatch = "tokens"\nwindow = "1h"\nbaseline = "1d"\n',
        "rule 't': threshold: missing",
    ),
    (
        'name = "p"\nwatch = "round_latency_p95"\nwindow = "1h"\nbaseline = "1d"\nthreshold = 2\n'
        'group_by = "provider"\n',
        "rule 'p': baseline: round_latency_p95 by provider has no latency histogram to read it from "
        "(they keep the model); filter or group by model",
    ),
    (
        'name = "p"\nwatch = "time_to_first_token_p95"\nwindow = "1d"\nbaseline = "1d"\nthreshold = 2\n'
        'provider = "openai"\n',
        "rule 'p': baseline: time_to_first_token_p95 by provider has no latency histogram",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), BAD, ids=[m.split(": ")[1] + str(i) for i, (_, m) in enumerate(BAD)]
)
def test_every_bad_combination_is_one_line_naming_rule_and_field(body: str, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse(body)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("alerts.toml: " + message.split(":")[0])
    assert message in text


def test_the_baseline_is_the_span_just_before_the_window() -> None:
    hour = parse(P95)  # 1h, baseline 1d: [now - 25h, now - 1h)
    assert baseline_start(hour, NOW) == {"since": NOW - timedelta(hours=25)}
    days = parse('name = "s"\nwatch = "cost_usd"\nwindow = "1d"\nbaseline = "7d"\nthreshold = 2\n')
    assert baseline_start(days, NOW) == {  # today so far against the seven UTC dates before
        "since": datetime(2026, 11, 29, tzinfo=UTC),
        "first_day": date(2026, 11, 29),
    }
    week = parse('name = "s"\nwatch = "cost_usd"\nwindow = "7d"\nbaseline = "7d"\nthreshold = 2\n')
    assert baseline_start(week, NOW)["first_day"] == date(2026, 11, 23)  # 23..29 before 30..6


def reading(current: float | None, n: int, baseline: float | None, m: int) -> Reading:
    sides = Sides(current, n, baseline, m)
    value = None if current is None or not baseline else current / baseline
    return Reading("model=m1", value, n, sides)


def test_no_ratio_is_not_breaching_and_says_why() -> None:
    rule = parse(P95)
    assert breaching(rule, reading(2000, 10, 1000, 10)) is True
    assert breaching(rule, reading(1999, 10, 1000, 10)) is False
    cases = {
        "9 samples in the window, fewer than min_samples 10": reading(5000, 9, 1000, 10),
        "9 samples in the baseline (the 1d before), fewer than min_samples 10": reading(5000, 10, 1000, 9),
        "the baseline (the 1d before) is 0: nothing to compare with": reading(5000, 10, 0, 10),
        "nothing measured in the window or the baseline": Reading("model=m1", 0.0, 0),
    }
    for why, r in cases.items():
        assert why_no_ratio(rule, r) == why
        assert breaching(rule, r) is False
    zero = parse(P95.replace("min_samples = 10", "min_samples = 0"))
    assert why_no_ratio(zero, reading(None, 0, 1000, 10)) == "no value in the window"


def test_a_firing_relative_alert_whose_baseline_goes_to_0_resolves() -> None:
    rule = parse(P95)
    fired = step(rule, None, reading(3000, 10, 1000, 10), NOW)
    assert fired.state.phase == FIRING and fired.notice is not None
    assert fired.notice.sides == Sides(3000, 10, 1000, 10)
    after = step(rule, fired.state, reading(3000, 10, 0, 0), NOW + timedelta(minutes=1))
    assert (after.state.phase, after.change) == (OK, "resolved")
    assert after.notice is not None and after.notice.event == "resolved"


@given(
    current=st.floats(0, 1e9),
    baseline=st.floats(0, 1e9),
    n=st.integers(0, 100),
    m=st.integers(0, 100),
    threshold=st.floats(0.01, 100),
)
def test_for_any_spans_it_breaches_only_with_samples_a_baseline_and_the_ratio_over(
    current: float, baseline: float, n: int, m: int, threshold: float
) -> None:
    rule = parse(P95.replace("threshold = 2", f"threshold = {threshold!r}"))
    r = reading(current, n, baseline, m)
    expected = n >= 10 and m >= 10 and baseline > 0 and current / baseline >= threshold
    assert breaching(rule, r) is expected
    state = step(rule, State(OK, NOW), r, NOW).state
    assert state.phase == (FIRING if expected else OK)


def test_the_readme_relative_rule_and_what_it_says_are_what_the_code_takes_and_sends() -> None:
    from pathlib import Path

    from worker.alerts.cli import _relative
    from worker.alerts.delivery import slack_body
    from worker.alerts.evaluate import Notice
    from worker.alerts.store import body

    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    block = '[receivers.slack]\nurl_env = "HOOK"\n' + readme_block("readme-alerts-relative", "toml")
    rules = parse_rules(tomllib.loads(block), "README", ENV)
    (rule,) = rules.rules
    assert (rule.baseline, rule.comparison, rule.threshold, rule.min_samples) == (
        timedelta(days=1),
        ">=",
        2,
        20,
    )
    sides = Sides(3012.0, 20, 991.2, 240)
    sent = body(rule, Notice(rule.name, "model=m1", "firing", "k", 3012.0 / 991.2, 20, NOW, NOW, sides))
    assert f'"current": {json.dumps(sent["current"])}' in readme
    assert f'"baseline": {json.dumps(sent["baseline"])}' in readme
    text = slack_body(sent)["text"]
    tail = text.split("model=m1; ", 1)[1].split("; firing since")[0]
    assert f"…; {tail}" in readme
    line = _relative(rule, Reading("model=m1", 3012.0 / 991.2, 20, sides))
    assert line == (
        "round_latency_p95 = 3.039 x baseline (3012 over 1h, 20 samples; "
        "991.2 over the 1d before, 240 samples)"
    )
    assert f"p95 doubles [model=m1]: {line}, …" in readme
    none = _relative(rule, Reading("model=m1", None, 20, Sides(3012.0, 20, 0.0, 0)))
    assert none.endswith("(no alert)")
    assert none.split(": ", 1)[1].replace("3012 over 1h, 20 samples; ", "…") in readme.replace(
        "no ratio (… 0 over the 1d before", "no ratio (…0 over the 1d before"
    )


def test_the_readme_yesterday_rule_is_yesterday() -> None:
    block = '[receivers.slack]\nurl_env = "HOOK"\n' + readme_block("readme-alerts-yesterday", "toml")
    (rule,) = parse_rules(tomllib.loads(block), "README", ENV).rules
    assert (rule.watch, rule.window, rule.offset, rule.baseline) == (
        "cost_usd",
        timedelta(days=1),
        timedelta(days=1),
        None,
    )
    assert rule.condition() == "cost_usd > 50 over 1d offset 1d"
