"""Delivery to a real HTTP server: the two bodies, retries then failed, a receiver that is down or
slow holds up no other, the URL never printed whole."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.alerts.helpers import webhook_server
from worker.alerts.delivery import deliver, send, slack_body
from worker.alerts.evaluate import Notice
from worker.alerts.rules import Receiver, Rule
from worker.alerts.store import Outgoing, body

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RULE = Rule("tool failures", "tool_error_share", timedelta(minutes=15), ">", 0.2, group_by="tool")
NOTICE = Notice("tool failures", "tool=search", "firing", "k1", 0.31, 42, AT, AT)


def outgoing(receiver: str, key: str = "k1") -> Outgoing:
    return Outgoing(key, receiver, body(RULE, NOTICE))


def test_the_generic_body_and_the_slack_body() -> None:
    b = body(RULE, NOTICE)
    assert b == {
        "version": 1,
        "event": "firing",
        "rule": "tool failures",
        "watch": "tool_error_share",
        "labels": {"tool": "search"},
        "severity": "warning",
        "value": 0.31,
        "comparison": ">",
        "threshold": 0.2,
        "window": "15m",
        "samples": 42,
        "current": None,  # a relative rule's two spans (tests/alerts/test_relative_rules.py)
        "baseline": None,
        "condition": "tool_error_share > 0.2 over 15m",
        "firing_since": "2026-12-06T12:00:00+00:00",
        "at": "2026-12-06T12:00:00+00:00",
        "key": "k1",
    }
    slack = slack_body(b)
    assert slack["text"] == (
        "[FIRING] tool failures (warning): tool_error_share = 0.31 (> 0.2 over 15m, 42 samples) "
        "tool=search; firing since 2026-12-06T12:00:00+00:00"
    )
    assert slack["blocks"][0]["type"] == "section"


def test_each_receiver_gets_its_body() -> None:
    with webhook_server() as hooks:
        receivers = {
            "hook": Receiver("hook", "webhook", "H", hooks.url + "/generic"),
            "slack": Receiver("slack", "slack", "S", hooks.url + "/slack/T0/SECRET"),
        }
        outcomes = deliver([outgoing("hook"), outgoing("slack")], receivers)
        assert [(o.status, o.attempts, o.http_status) for o in outcomes] == [("sent", 1, 200)] * 2
        assert hooks.bodies("/generic") == [body(RULE, NOTICE)]
        assert hooks.bodies("/slack/T0/SECRET")[0]["text"].startswith("[FIRING] tool failures")


def test_a_500_is_retried_then_recorded_failed_and_others_still_go() -> None:
    slept: list[float] = []
    with webhook_server() as hooks:
        hooks.answers["/down/SECRET"] = 500
        receivers = {
            "down": Receiver("down", "webhook", "D", hooks.url + "/down/SECRET", attempts=3),
            "up": Receiver("up", "webhook", "U", hooks.url + "/up"),
        }
        outcomes = deliver([outgoing("down"), outgoing("up", "k2")], receivers, sleep=slept.append)
    down, up = outcomes
    assert (down.status, down.attempts, down.http_status) == ("failed", 3, 500)
    assert down.error == f"{hooks.url}/*** answered 500" and "SECRET" not in down.error
    assert hooks.hits["/down/SECRET"] == 3 and len(slept) == 2
    assert (up.status, up.attempts) == ("sent", 1)


def test_a_4xx_is_not_retried() -> None:
    with webhook_server() as hooks:
        hooks.answers["/gone"] = 404
        outcome = send(Receiver("r", "webhook", "R", hooks.url + "/gone", attempts=3), outgoing("r"))
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, 404)


def test_a_receiver_that_hangs_or_refuses_holds_up_no_other() -> None:
    with webhook_server() as hooks:
        hooks.delays["/slow"] = 3
        receivers = {
            "slow": Receiver(
                "slow", "webhook", "S", hooks.url + "/slow", timeout=timedelta(milliseconds=300), attempts=2
            ),
            "closed": Receiver("closed", "webhook", "C", "http://127.0.0.1:9/hook?token=SECRET", attempts=2),
            "up": Receiver("up", "webhook", "U", hooks.url + "/up"),
        }
        clock = time.monotonic()
        outcomes = deliver(
            [outgoing("slow"), outgoing("closed"), outgoing("up")], receivers, sleep=lambda s: None
        )
        took = time.monotonic() - clock
        assert hooks.bodies("/up")
    slow, closed, up = outcomes
    assert took < 2.0  # two 0.3 s attempts, at once with the others
    assert (slow.status, slow.attempts) == ("failed", 2) and "timed out" in (slow.error or "")
    assert closed.status == "failed" and closed.error and closed.error.startswith("http://127.0.0.1:9/***: ")
    assert "SECRET" not in closed.error
    assert up.status == "sent"
