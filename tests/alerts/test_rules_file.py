"""The rules file: the example loads, and every mistake is refused in one line naming the rule
(or receiver), the field, the value and why."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from tests.alerts.helpers import readme_block
from worker.alerts.kinds import KINDS
from worker.alerts.rules import RulesError, load_rules, parse_rules

EXAMPLE = Path(__file__).parents[2] / "examples" / "alerts.toml"
ENV = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/SECRET", "HOOK": "http://127.0.0.1:9/x"}

RECEIVER = '[receivers.hook]\nurl_env = "HOOK"\n'
GOOD = 'name = "r"\nwatch = "tool_error_share"\nwindow = "15m"\nthreshold = 0.2\nreceivers = ["hook"]\n'


def test_the_example_loads() -> None:
    rules = load_rules(EXAMPLE, {**ENV, "ALERTS_WEBHOOK_URL": "https://example.com/hook/SECRET"})
    assert [r.watch for r in rules.rules] == [
        "tool_error_share",
        "round_error_share",
        "silence",
        "lag_seconds",
        "dead_letters",
        "tokens",
        "round_latency_p95",
        "time_to_first_token_p95",
        "round_latency_p95",
        "tool_error_share",
        "cost_usd",
    ]
    assert [r.baseline for r in rules.rules[-3:-1]] == [timedelta(days=1)] * 2
    assert rules.rules[-1].window_text == "1d offset 1d"
    assert all(r.unavailable is None for r in rules.rules)
    quiet = rules.rules[2]
    assert (quiet.comparison, quiet.threshold, quiet.window) == ("<", 1.0, timedelta(minutes=15))
    assert rules.rules[0].hold == timedelta(minutes=5)
    assert rules.receivers["slack"].masked_url == "https://hooks.slack.com/***"
    assert "SECRET" not in repr(rules)


def test_a_five_line_file_is_enough() -> None:
    rules = parse_rules(tomllib.loads(RECEIVER + "[[rules]]\n" + GOOD), "f", ENV)
    (r,) = rules.rules
    assert (r.comparison, r.min_samples, r.hold, r.severity, r.repeat) == (
        ">",
        1,
        timedelta(0),
        "warning",
        None,
    )


def test_not_available_kinds_are_accepted_and_say_why() -> None:
    rules = parse_rules(
        tomllib.loads(
            RECEIVER + '[[rules]]\nname = "spend"\nwatch = "cost_usd"\nwindow = "1d"\nthreshold = 50\n'
        ),
        "f",
        ENV,
    )
    assert rules.rules[0].unavailable is None  # cost landed (issue 23): cost_usd is measured
    assert KINDS["time_to_first_token_p95"].unavailable == ""
    latency = parse_rules(
        tomllib.loads(
            '[[rules]]\nname = "slow"\nwatch = "round_latency_p95"\nwindow = "1d"\nthreshold = 5000\n'
            '[[rules]]\nname = "slow now"\nwatch = "round_latency_p99"\nwindow = "15m"\nthreshold = 5000\n'
        ),
        "f",
        ENV,
    )
    days, minutes = latency.rules
    assert days.unavailable is None  # over days: the hourly latency histograms
    assert minutes.unavailable is None


BAD = [
    ('watch = "tool_errors"', "rule 'r': watch: 'tool_errors' is not one of round_error_share"),
    ('window = "15"', "rule 'r': window: '15' has no unit; write 15s, 15m, 15h or 15d"),
    ('window = "30s"', "rule 'r': window: '30s' is shorter than 1m"),
    ('window = "36h"', "rule 'r': window: '36h' is longer than a day but not whole days"),
    ("window = 15", "rule 'r': window: 15 is not a duration; write it as a string"),
    ('threshold = "high"', "rule 'r': threshold: 'high' is not a number"),
    ("threshold = 20", "rule 'r': threshold: 20 is not a share; tool_error_share is from 0 to 1"),
    ('comparison = "=>"', "rule 'r': comparison: '=>' is not one of > >= < <="),
    ("min_samples = -1", "rule 'r': min_samples: -1 is not a whole number from 0"),
    ('for = "soon"', "rule 'r': for: 'soon' is not a duration"),
    ('severity = "page"', "rule 'r': severity: 'page' is not one of info, warning, critical"),
    (
        'receivers = ["pager"]',
        "rule 'r': receivers: 'pager' is not a receiver of this file (receivers: hook)",
    ),
    ('receivers = "hook"', "rule 'r': receivers: 'hook' is not a list of receiver names"),
    ('repeat = "10s"', "rule 'r': repeat: '10s' is shorter than 1m"),
    ('model = "gpt-4"', "rule 'r': model: tool_error_share takes tool"),
    ('user = "u1"', "rule 'r': user: tool_error_share takes tool"),
    ('group_by = "endpoint"', "rule 'r': group_by: 'endpoint': tool_error_share can be grouped by tool"),
    ("treshold = 1", "rule 'r': treshold: unknown field; the fields are name, watch"),
    ('tool = ""', "rule 'r': tool: '' is not a non-empty string"),
]


@pytest.mark.parametrize(("line", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_rule_is_one_line_naming_rule_field_value_and_why(line: str, message: str) -> None:
    key = line.split(" ", 1)[0]
    body = "".join(x + "\n" for x in GOOD.splitlines() if not x.startswith(key + " ")) + line + "\n"
    with pytest.raises(RulesError) as caught:
        parse_rules(tomllib.loads(RECEIVER + "[[rules]]\n" + body), "alerts.toml", ENV)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("alerts.toml: " + message.split(":")[0])
    assert message in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[rules]]\nwatch = "silence"\nwindow = "1m"\n',
            "alerts.toml: rule #1: name: None; every rule needs a name",
        ),
        (
            '[[rules]]\nname = "a"\nwatch = "silence"\nwindow = "1m"\n'
            '[[rules]]\nname = "a"\nwatch = "silence"\nwindow = "1m"\n',
            "alerts.toml: rule 'a': name: 'a' is used by another rule",
        ),
        ('[[rules]]\nname = "p"\nwatch = "provider"\n', "rule 'p': watch: 'provider' is not one of"),
        (
            '[[rules]]\nname = "p"\nwatch = "round_error_share"\nwindow = "1h"\n'
            'threshold = 0.1\nuser = "x"\n',
            "rule 'p': user: round_error_share takes model, provider",
        ),
        (
            '[[rules]]\nname = "p"\nwatch = "tokens"\nwindow = "1h"\nthreshold = 1\ngroup_by = "user"\n',
            "rule 'p': group_by: 'user': tokens can be grouped by model or provider",
        ),
        (
            '[[rules]]\nname = "b"\nwatch = "backlog"\nwindow = "1h"\nthreshold = 1\n',
            "rule 'b': window: backlog is read as it is now; leave the window out",
        ),
        ('[[rules]]\nname = "t"\nwatch = "tokens"\nthreshold = 1\n', "rule 't': window: missing"),
        ('[[rules]]\nname = "t"\nwatch = "tokens"\nwindow = "1h"\n', "rule 't': threshold: missing"),
        (
            '[receivers.x]\nkind = "email"\nurl_env = "HOOK"\n',
            "receiver 'x': kind: 'email' is not one of webhook, slack",
        ),
        (
            '[receivers.x]\nurl_env = "https://hooks.slack.com/x"\n',
            "receiver 'x': url_env: 'https://hooks.slack.com/x' is not a variable name",
        ),
        ('[receivers.x]\nurl_env = "UNSET_HOOK"\n', "receiver 'x': url_env: $UNSET_HOOK is not set"),
        (
            '[receivers.x]\nurl_env = "HOOK"\nattempts = 0\n',
            "receiver 'x': attempts: 0 is not a whole number from 1 to 5",
        ),
        (
            '[receivers.x]\nurl_env = "HOOK"\ntimeout = "1ms"\n',
            "receiver 'x': timeout: '1ms' is shorter than 0.1s",
        ),
        ('[receivers.x]\nurl_env = "HOOK"\nurl = "http://x"\n', "receiver 'x': url: unknown field"),
        (
            '[receivers.x]\nurl_env = "HOOK"\ntimeout = "1m"\n',
            "receiver 'x': timeout: '1m' is longer than 10s",
        ),
        (
            "[rule]\nname = 1\n",
            "alerts.toml: unknown table 'rule'; a rules file has [[rules]] and [receivers.NAME]",
        ),
        ("rules = 3\n", "alerts.toml: rules must be an array of tables"),
    ],
)
def test_every_other_mistake_is_one_line(text: str, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(tomllib.loads(text), "alerts.toml", ENV)
    assert "\n" not in str(caught.value)
    assert message in str(caught.value)


def test_a_file_that_is_not_toml_or_not_there_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "alerts.toml"
    bad.write_text("[[rules]\nname = 'x'\n")
    for path, message in (
        (bad, "not valid TOML: "),
        (tmp_path / "none.toml", "cannot read the rules file: No such file"),
    ):
        with pytest.raises(RulesError) as caught:
            load_rules(path, ENV)
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_webhook_url_that_is_not_http_is_refused_masked() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(tomllib.loads('[receivers.x]\nurl_env = "H"\n'), "f", {"H": "ftp://u:SECRET@h/x"})
    assert "is not an http(s) URL (ftp://h/***)" in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_the_readme_rules_and_body_are_what_the_code_takes_and_sends() -> None:
    import json
    from datetime import UTC, datetime

    from worker.alerts.evaluate import Notice, notice_key
    from worker.alerts.store import body

    rules = parse_rules(tomllib.loads(readme_block("readme-alerts-rules", "toml")), "README", ENV)
    (rule,) = rules.rules
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    key = notice_key(rule.name, "tool=web_search", at, "firing")
    sent = body(rule, Notice(rule.name, "tool=web_search", "firing", key, 0.31, 42, at, at))
    assert json.loads(readme_block("readme-alerts-body", "json")) == sent
