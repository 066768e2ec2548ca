"""Sending notifications to webhooks, each attempt within its timeout, retried with backoff.

Every receiver is sent to at once, so one that is down holds up no other.

Two bodies: ``webhook`` posts the generic JSON body (worker/alerts/store.py ``body``; README,
Alerts), ``slack`` posts ``{"text": ..., "blocks": [...]}`` (what a Slack incoming webhook, and
Mattermost's or Discord's Slack-compatible ones, take). An attempt fails on a connection error, a
timeout or an answer other than 2xx; 5xx, 408 and 429 are tried again after a backoff
(contract/backoff.py), any other 4xx is not (the request itself is wrong). The URL is never
printed whole: errors carry it masked (contract/urls.py).

Plain ``urllib.request``: a POST of one small JSON body with a timeout is all it needs, so no HTTP
client is added to the dependencies. Each send runs in a thread of its own; the whole delivery
waits at most the longest receiver's bound: attempts x timeout plus the backoffs between them.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from contract.backoff import Backoff, full_jitter
from contract.urls import mask_webhook_url
from worker.alerts.rules import Receiver, number
from worker.alerts.store import Outcome, Outgoing

log = logging.getLogger(__name__)

#: Tried again: the receiver may answer better later.
RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: At most this many sends at once.
MAX_SENDS = 16

_EMOJI = {"firing": ":rotating_light:", "repeat": ":rotating_light:", "resolved": ":white_check_mark:"}


def slack_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Slack-compatible body of a notification: ``text`` says it all in one line."""
    labels = " ".join(f"{k}={v}" for k, v in body["labels"].items())
    value = "unknown" if body["value"] is None else number(body["value"])
    reason = f", {body['reason']}" if body.get("reason") else ""  # a rule taken out of the file
    head = f"[{body['event'].upper()}] {body['rule']} ({body['severity']}){reason}"
    relative = " x baseline" if body.get("baseline") else ""
    detail = (
        f"{body['watch']} = {value}{relative} ({body['comparison']} {number(body['threshold'])}{relative}"
        + (f" over {body['window']}" if body["window"] != "now" else "")
        + f", {body['samples']} samples)"
        + (f" {labels}" if labels else "")
        + (f"; {sides(body)}" if relative else "")
    )
    since = f"firing since {body['firing_since']}"
    text = f"{head}: {detail}; {since}"
    return {
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"{_EMOJI[body['event']]} *{head}*\n{detail}"},
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": since}]},
        ],
    }


def sides(body: Mapping[str, Any]) -> str:
    """A relative rule's two spans: ``1000 over 1h, 476 over the 1d before (40 samples)``."""
    current, baseline = body["current"], body["baseline"]
    return (
        f"{_number(current['value'])} over {body['window']}, {_number(baseline['value'])} over the "
        f"{baseline['window']} before ({baseline['samples']} samples)"
    )


def _number(value: float | None) -> str:
    return "none" if value is None else number(value)


def post(url: str, payload: Mapping[str, Any], timeout: float) -> int:
    """POST ``payload`` as JSON; the HTTP status. Raises OSError (URLError, timeouts) when no
    answer came; an HTTPError's code is returned, not raised."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "metrics-worker-alerts/1"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def send(
    receiver: Receiver,
    outgoing: Outgoing,
    *,
    sleep: Callable[[float], None] = time.sleep,
    backoff: Backoff | None = None,
) -> Outcome:
    """One notification to one receiver, tried up to ``receiver.attempts`` times."""
    payload = slack_body(outgoing.body) if receiver.kind == "slack" else outgoing.body
    backoff = backoff or Backoff(0.5, 5.0, full_jitter)
    status: int | None = None
    error: str | None = None
    attempt = 0
    while attempt < receiver.attempts:
        attempt += 1
        if receiver.url is None:
            error = f"${receiver.url_env} is not set"
            break
        try:
            status = post(receiver.url, payload, receiver.timeout.total_seconds())
        except (OSError, ValueError, http.client.HTTPException) as exc:  # no answer, or not HTTP
            status, error = None, f"{mask_webhook_url(receiver.url)}: {_reason(exc)}"
        else:
            if 200 <= status < 300:
                return Outcome(outgoing.key, receiver.name, "sent", attempt, status, None, _now())
            error = f"{mask_webhook_url(receiver.url)} answered {status}"
            if status not in RETRIED_STATUS:
                break
        if attempt < receiver.attempts:
            now = time.monotonic()
            sleep(backoff.failed(now) - now)
    log.warning(
        "alert %s to %s failed after %d attempts: %s", outgoing.body["rule"], receiver.name, attempt, error
    )
    return Outcome(outgoing.key, receiver.name, "failed", attempt, status, error, _now())


def deliver(
    outgoing: Sequence[Outgoing],
    receivers: Mapping[str, Receiver],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outcome]:
    """Send every notification, all at once (up to MAX_SENDS), each within its receiver's bound."""
    if not outgoing:
        return []
    with ThreadPoolExecutor(
        max_workers=min(MAX_SENDS, len(outgoing)), thread_name_prefix="alert-send"
    ) as pool:
        futures = [pool.submit(send, receivers[o.receiver], o, sleep=sleep) for o in outgoing]
        return [f.result() for f in futures]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:300]


def _now() -> datetime:
    return datetime.now(UTC)
