"""A varied, deterministic scenario of events, and an oracle that derives every read from the events.

The oracle knows nothing of SQL: it replays the (well-ordered) events into plain dicts and
computes each read the way the seed defines it, so the queries are checked against an
independent computation rather than against themselves.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from contract.events import (
    Event,
    ForwardCompleted,
    ForwardStarted,
    RoundCompleted,
    RoundCompressed,
    RoundStarted,
    SessionCompleted,
    SessionMessageCount,
    SessionStarted,
    SyncMismatch,
    ToolCompleted,
    ToolStarted,
)
from tests.read.events import Events, usage, utc
from worker.engine.costing import default_prices
from worker.engine.pricing import TokenUsage as PricedUsage
from worker.read.models import (
    DailyMetrics,
    ForwardDailyMetrics,
    ForwardEndpointMetrics,
    ForwardMetricsSummary,
    ForwardRequestMetrics,
    MetricsSummary,
    ModelMetrics,
    RoundMetrics,
    SessionDetail,
    SessionMetrics,
    TokenUsage,
    ToolCallMetrics,
)

MODELS = ["gpt-4", "claude-3", "llama-3", "o1-mini"]
TOOLS = ["read_file", "write_file", "exec", "search"]
ENDPOINTS = ["openai.chat_completions", "anthropic.messages", "openai.responses"]
REASONS = ["message_count", "pending_question", "last_message_id"]
BASE = utc(2026, 2, 1)
DAYS = 10
TIE_INSTANT = BASE + timedelta(days=3, hours=12)
PROVIDERS = {"gpt-4": "openai", "claude-3": "anthropic", "llama-3": "aws.bedrock", "o1-mini": "openai"}


def _parts(prompt: int, completion: int) -> dict[str, int | None]:
    """Contract v1's usage parts, derived from the wholes (no random draw: the scenario stays the
    one it was before they existed), some reported, some not."""
    return {
        "cache_read_tokens": prompt // 2 if prompt % 3 == 0 else None,
        "cache_write_tokens": prompt // 5 if prompt % 4 == 1 else None,
        "reasoning_tokens": completion // 3 if completion % 2 == 0 else None,
    }


def build_scenario(seed: int) -> list[Event]:
    rng = random.Random(seed)
    ev = Events()
    for n in range(60):
        _add_session(ev, rng, n)

    # Rows whose start never arrived. A session known only from a completion and a round: not shown.
    ev.round_completed("ghost-r0", "ghost", BASE + timedelta(days=2), usage(5, 5))
    ev.session_completed("ghost", "completed", BASE + timedelta(days=2, seconds=1))
    # In a started session, a round and a tool call known only from their completions: shown last,
    # with no start, model or name.
    ev.round_completed("s010-rstub", "s010", BASE + timedelta(days=9, hours=1), usage(7, 3))
    ev.tool_completed("s010-tstub", "s010-rstub", "s010", BASE + timedelta(days=9, hours=1), success=False)

    for n in range(80):
        _add_forward(ev, rng, n)
    ev.forward_completed("f-ghost", BASE + timedelta(days=1), tokens=usage(1, 1))

    for _ in range(30):
        day = BASE + timedelta(days=rng.randrange(DAYS))
        at = (
            day + timedelta(seconds=rng.randrange(86_400))
            if rng.random() < 0.8
            else day - timedelta(microseconds=1)
        )
        ev.sync_mismatch(rng.choice(REASONS), at)
    return ev.events


def _session_start(rng: random.Random, n: int, day: datetime) -> datetime:
    if n < 3:
        return TIE_INSTANT  # equal started_at: the session_id tie-break decides
    if n % 10 == 3:
        return day + timedelta(hours=23, minutes=59, seconds=30)  # its rounds and tools cross midnight
    if n % 10 == 4:
        return day  # exactly UTC midnight
    if n % 10 == 5:
        return day - timedelta(microseconds=1)  # the last instant of the previous UTC day
    return day + timedelta(seconds=rng.randrange(86_400), microseconds=rng.randrange(1_000_000))


def _add_session(ev: Events, rng: random.Random, n: int) -> None:
    sid = f"s{n:03d}"
    model = rng.choice(MODELS)
    day = BASE + timedelta(days=rng.randrange(DAYS))
    start = _session_start(rng, n, day)
    ev.session_started(sid, model, start, user_id=f"user-{n % 7}" if n % 4 else None)
    t = start
    for count in range(1, rng.randrange(1, 4)):
        ev.message_count(sid, count * 2, t + timedelta(seconds=count))
    for r in range(rng.randrange(5)):
        t = _add_round(ev, rng, sid, model, f"{sid}-r{r}", t)
    outcome = rng.choice(["completed", "completed", "awaiting_response", "error", "cancelled", None])
    if outcome is not None:
        ev.session_completed(sid, outcome, t + timedelta(seconds=5, microseconds=rng.randrange(1000)))


def _add_round(ev: Events, rng: random.Random, sid: str, model: str, rid: str, t: datetime) -> datetime:
    """A round with its tool calls and compressions, maybe completed: the time of its last event."""
    t += timedelta(seconds=rng.randrange(1, 60))
    ev.round_started(rid, sid, model, t, provider=PROVIDERS[model] if rid[-1] in "024" else None)
    for k in range(rng.randrange(4)):
        tid = f"{rid}-t{k}"
        t += timedelta(seconds=rng.randrange(1, 20), microseconds=rng.randrange(1_000_000))
        ev.tool_started(tid, rid, sid, rng.choice(TOOLS), t)
        if rng.random() < 0.8:
            t += timedelta(milliseconds=rng.randrange(1, 5000), microseconds=rng.randrange(1000))
            ok = rng.random() < 0.8
            ev.tool_completed(tid, rid, sid, t, success=ok, error=None if ok else "tool failed")
    for _ in range(rng.choice([0, 0, 1, 2])):
        ev.round_compressed(rid, sid, rng.randrange(1, 500), t)
    if rng.random() < 0.85:
        t += timedelta(milliseconds=rng.randrange(1, 30_000))
        status = rng.choice(["success"] * 4 + ["error", "cancelled"])
        prompt, completion = rng.randrange(2000), rng.randrange(2000)
        ev.round_completed(
            rid,
            sid,
            t,
            usage(prompt, completion, **_parts(prompt, completion)),
            status=status,
            cached=rng.randrange(4),
            error="upstream 500" if status == "error" else None,
            ttft=prompt % 997 if status == "success" else None,
        )
    return t


def _add_forward(ev: Events, rng: random.Random, n: int) -> None:
    fid = f"f{n:03d}"
    start = BASE + timedelta(
        days=rng.randrange(DAYS), seconds=rng.randrange(86_400), microseconds=rng.randrange(10**6)
    )
    if n < 2:
        start = TIE_INSTANT
    endpoint, model, stream = rng.choice(ENDPOINTS), rng.choice(MODELS), rng.random() < 0.5
    # Every third made for a session (s010 among them), every other of those for its first round.
    sid = "s010" if n % 9 == 0 else f"s{(n * 7) % 60:03d}" if n % 3 == 0 else None
    link = {"session_id": sid, "round_id": f"{sid}-r0" if sid and n % 2 == 0 else None}
    provider = PROVIDERS[model] if n % 2 else None
    ev.forward_started(fid, endpoint, model, start, stream=stream, provider=provider, **link)
    if rng.random() < 0.85:
        status = rng.choice(["success"] * 4 + ["error", "timeout"])
        prompt, completion = rng.randrange(3000), rng.randrange(3000)
        tokens = usage(prompt, completion, **_parts(prompt, completion)) if rng.random() < 0.7 else None
        ev.forward_completed(
            fid,
            start + timedelta(milliseconds=rng.randrange(1, 60_000), microseconds=rng.randrange(1000)),
            status=status,
            status_code={"success": 200, "error": 502, "timeout": None}[status],
            tokens=tokens,
            error=None if status == "success" else status,
            ttft=completion % 500 if stream and status == "success" else None,
        )


def _usage_parts(u: Any) -> tuple[int | None, int | None, int | None]:
    return u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None or end < start:
        return None
    return (end - start) // timedelta(milliseconds=1)


def _in(at: datetime | None, start: date | None, end: date | None) -> bool:
    if at is None:
        return False
    day = at.date()  # events are UTC
    return (start is None or day >= start) and (end is None or day <= end)


@dataclass
class _Session:
    model: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    status: str = "running"
    message_count: int = 0
    user_id: str | None = None


@dataclass
class _Round:
    session_id: str
    model: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    status: str = "running"
    tokens: TokenUsage = field(default_factory=TokenUsage)
    cached: int = 0
    compressions: int = 0
    saved: int = 0
    error: str | None = None
    provider: str | None = None
    parts: tuple[int | None, int | None, int | None] = (None, None, None)  # cache read, write, reasoning
    ttft: int | None = None

    def cost(self) -> tuple[Decimal | None, bool]:
        """Its USD (None unless priced) and whether it is unpriced, as worker/engine/costing.py has them."""
        if self.model is None or self.completed_at is None:
            return None, False
        t = self.tokens
        usage = PricedUsage(t.prompt_tokens, t.completion_tokens, *(p or 0 for p in self.parts))
        priced = default_prices().price(usage, self.model, self.provider, self.completed_at)
        return (None, True) if priced is None else (priced.usd, False)


@dataclass
class _Tool:
    round_id: str
    session_id: str
    name: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    success: bool | None = None
    error: str | None = None


@dataclass
class _Forward:
    endpoint: str | None = None
    model: str | None = None
    is_stream: bool | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    status: str = "pending"
    status_code: int | None = None
    tokens: TokenUsage | None = None
    error: str | None = None
    provider: str | None = None
    session_id: str | None = None
    round_id: str | None = None
    parts: tuple[int | None, int | None, int | None] = (None, None, None)
    ttft: int | None = None


class Oracle:
    """The seed's reads computed from the events (each entity's events arrive in time order)."""

    def __init__(self, events: list[Event]) -> None:
        self.s: dict[str, _Session] = defaultdict(_Session)
        self.r: dict[str, _Round] = {}
        self.t: dict[str, _Tool] = {}
        self.f: dict[str, _Forward] = defaultdict(_Forward)
        self.mismatches: list[tuple[str, date]] = []
        for e in events:
            self._replay(e)

    def _replay(self, e: Event) -> None:
        if isinstance(e, SessionStarted):
            s = self.s[e.session_id]
            s.model, s.started_at, s.user_id = e.model, e.occurred_at, e.user_id
        elif isinstance(e, SessionMessageCount):
            self.s[e.session_id].message_count = e.message_count
        elif isinstance(e, SessionCompleted):
            s = self.s[e.session_id]
            s.status, s.completed_at = e.status, e.occurred_at
        elif isinstance(e, RoundStarted):
            r = self.r.setdefault(e.round_id, _Round(e.session_id))
            r.model, r.started_at, r.provider = e.model, e.occurred_at, e.provider
        elif isinstance(e, RoundCompleted):
            r = self.r.setdefault(e.round_id, _Round(e.session_id))
            r.completed_at, r.status, r.tokens = e.occurred_at, e.status, TokenUsage(**e.usage.model_dump())
            r.cached, r.error = e.prompt_cached_tool_outputs, e.error
            r.parts, r.ttft = _usage_parts(e.usage), e.time_to_first_token_ms
        elif isinstance(e, RoundCompressed):
            r = self.r.setdefault(e.round_id, _Round(e.session_id))
            r.compressions += 1
            r.saved += e.tokens_saved
        elif isinstance(e, ToolStarted):
            t = self.t.setdefault(e.tool_call_id, _Tool(e.round_id, e.session_id))
            t.name, t.started_at = e.tool_name, e.occurred_at
        elif isinstance(e, ToolCompleted):
            t = self.t.setdefault(e.tool_call_id, _Tool(e.round_id, e.session_id))
            t.completed_at, t.success, t.error = e.occurred_at, e.success, e.error
        elif isinstance(e, ForwardStarted):
            f = self.f[e.forward_id]
            f.endpoint, f.model, f.is_stream, f.started_at = e.endpoint, e.model, e.is_stream, e.occurred_at
            f.provider, f.session_id, f.round_id = e.provider, e.session_id, e.round_id
        elif isinstance(e, ForwardCompleted):
            f = self.f[e.forward_id]
            f.completed_at, f.status, f.status_code, f.error = e.occurred_at, e.status, e.status_code, e.error
            f.tokens = None if e.usage is None else TokenUsage(**e.usage.model_dump())
            f.parts = (None, None, None) if e.usage is None else _usage_parts(e.usage)
            f.ttft = e.time_to_first_token_ms
        elif isinstance(e, SyncMismatch):
            self.mismatches.append((e.reason, e.occurred_at.date()))

    # -- sessions ---------------------------------------------------------------------------

    def session_ids(self, start: date | None = None, end: date | None = None) -> list[str]:
        return [sid for sid, s in self.s.items() if _in(s.started_at, start, end)]

    def session(self, sid: str) -> SessionMetrics:
        s = self.s[sid]
        assert s.started_at is not None and s.model is not None
        rounds = [r for r in self.r.values() if r.session_id == sid]
        tools = [t for t in self.t.values() if t.session_id == sid]
        return SessionMetrics(
            session_id=sid,
            model=s.model,
            started_at=s.started_at,
            completed_at=s.completed_at,
            total_rounds=len(rounds),
            total_token_usage=_sum_usage(r.tokens for r in rounds),
            tool_call_count=len(tools),
            prompt_cached_tool_outputs=sum(r.cached for r in rounds),
            total_compression_events=sum(r.compressions for r in rounds),
            total_tokens_saved=sum(r.saved for r in rounds),
            tool_breakdown=dict(sorted(Counter(t.name for t in tools if t.name is not None).items())),
            status=s.status,  # type: ignore[arg-type]
            message_count=s.message_count,
            duration_ms=_ms(s.started_at, s.completed_at),
            user_id=s.user_id,
            cache_read_tokens=sum(r.parts[0] or 0 for r in rounds),
            cache_write_tokens=sum(r.parts[1] or 0 for r in rounds),
            reasoning_tokens=sum(r.parts[2] or 0 for r in rounds),
            cost_usd=sum((r.cost()[0] or Decimal(0) for r in rounds), Decimal(0)),
            unpriced_rounds=sum(r.cost()[1] for r in rounds),
        )

    def summary(self, start: date | None = None, end: date | None = None) -> MetricsSummary:
        rows = [self.session(sid) for sid in self.session_ids(start, end)]
        statuses = Counter(row.status for row in rows)
        breakdown = Counter(
            reason
            for reason, day in self.mismatches
            if (start is None or day >= start) and (end is None or day <= end)
        )
        return MetricsSummary(
            total_sessions=len(rows),
            total_tokens=_sum_usage(row.total_token_usage for row in rows),
            total_tool_calls=sum(row.tool_call_count for row in rows),
            prompt_cached_tool_outputs=sum(row.prompt_cached_tool_outputs for row in rows),
            total_compression_events=sum(row.total_compression_events for row in rows),
            total_tokens_saved=sum(row.total_tokens_saved for row in rows),
            active_sessions=statuses["running"],
            completed_sessions=statuses["completed"],
            awaiting_response_sessions=statuses["awaiting_response"],
            error_sessions=statuses["error"],
            cancelled_sessions=statuses["cancelled"],
            total_sync_mismatches=sum(breakdown.values()),
            sync_mismatch_breakdown=dict(sorted(breakdown.items())),
        )

    def by_model(self, start: date | None = None, end: date | None = None) -> list[ModelMetrics]:
        groups: dict[str, list[SessionMetrics]] = defaultdict(list)
        for sid in self.session_ids(start, end):
            row = self.session(sid)
            groups[row.model].append(row)
        result = [
            ModelMetrics(
                model=model,
                sessions=len(rows),
                rounds=sum(row.total_rounds for row in rows),
                tokens=_sum_usage(row.total_token_usage for row in rows),
                tool_calls=sum(row.tool_call_count for row in rows),
                prompt_cached_tool_outputs=sum(row.prompt_cached_tool_outputs for row in rows),
            )
            for model, rows in groups.items()
        ]
        return sorted(result, key=lambda m: (-m.tokens.total_tokens, m.model.encode()))

    def sessions(
        self, start: date | None = None, end: date | None = None, model: str | None = None, limit: int = 100
    ) -> list[SessionMetrics]:
        rows = [self.session(sid) for sid in self.session_ids(start, end)]
        rows = [row for row in rows if model is None or row.model == model]
        rows.sort(key=lambda row: (row.started_at, row.session_id.encode()), reverse=True)
        return rows[:limit]

    def session_detail(self, sid: str) -> SessionDetail | None:
        if self.s.get(sid) is None or self.s[sid].started_at is None:
            return None
        late = datetime.max.replace(tzinfo=BASE.tzinfo)
        rounds = []
        for rid, r in sorted(
            ((rid, r) for rid, r in self.r.items() if r.session_id == sid),
            key=lambda item: (item[1].started_at or late, item[0].encode()),
        ):
            calls = sorted(
                ((tid, t) for tid, t in self.t.items() if t.round_id == rid),
                key=lambda item: (item[1].started_at or late, item[0].encode()),
            )
            rounds.append(
                RoundMetrics(
                    round_id=rid,
                    session_id=r.session_id,
                    model=r.model,
                    started_at=r.started_at,
                    completed_at=r.completed_at,
                    token_usage=r.tokens,
                    status=r.status,  # type: ignore[arg-type]
                    prompt_cached_tool_outputs=r.cached,
                    compression_count=r.compressions,
                    tokens_saved=r.saved,
                    error=r.error,
                    duration_ms=_ms(r.started_at, r.completed_at),
                    provider=r.provider,
                    cache_read_tokens=r.parts[0],
                    cache_write_tokens=r.parts[1],
                    reasoning_tokens=r.parts[2],
                    time_to_first_token_ms=r.ttft,
                    cost_usd=r.cost()[0],
                    unpriced=r.cost()[1],
                    tool_calls=[
                        ToolCallMetrics(
                            tool_call_id=tid,
                            tool_name=t.name,
                            started_at=t.started_at,
                            completed_at=t.completed_at,
                            success=t.success,
                            error=t.error,
                            duration_ms=_ms(t.started_at, t.completed_at),
                        )
                        for tid, t in calls
                    ],
                )
            )
        forwards = [row for row in self.forward_rows() if row.session_id == sid]
        forwards.sort(key=lambda row: (row.started_at, row.forward_id.encode()))
        return SessionDetail(session=self.session(sid), rounds=rounds, forwards=forwards)

    def daily(self, days: int, end: date) -> list[DailyMetrics]:
        start = end - timedelta(days=max(days, 1) - 1)
        by_day: dict[date, list[SessionMetrics]] = defaultdict(list)
        for sid in self.session_ids(start, end):
            row = self.session(sid)
            by_day[row.started_at.date()].append(row)
        tools_by_day: dict[date, Counter[str]] = defaultdict(Counter)
        for t in self.t.values():
            if t.name is not None and _in(t.started_at, start, end):
                assert t.started_at is not None
                tools_by_day[t.started_at.date()][t.name] += 1
        result = []
        for day in sorted(by_day):
            rows = by_day[day]
            models: dict[str, list[TokenUsage]] = defaultdict(list)
            for row in rows:
                models[row.model].append(row.total_token_usage)
            result.append(
                DailyMetrics(
                    date=day,
                    total_sessions=len(rows),
                    total_rounds=sum(row.total_rounds for row in rows),
                    total_token_usage=_sum_usage(row.total_token_usage for row in rows),
                    total_tool_calls=sum(row.tool_call_count for row in rows),
                    prompt_cached_tool_outputs=sum(row.prompt_cached_tool_outputs for row in rows),
                    model_breakdown={model: _sum_usage(u) for model, u in sorted(models.items())},
                    tool_breakdown=dict(sorted(tools_by_day[day].items())),
                )
            )
        return result

    # -- forwards ---------------------------------------------------------------------------

    def forward_rows(
        self,
        start: date | None = None,
        end: date | None = None,
        endpoint: str | None = None,
        model: str | None = None,
    ) -> list[ForwardRequestMetrics]:
        rows = []
        for fid, f in self.f.items():
            if not _in(f.started_at, start, end):
                continue
            if (endpoint is not None and f.endpoint != endpoint) or (model is not None and f.model != model):
                continue
            rows.append(
                ForwardRequestMetrics(
                    forward_id=fid,
                    endpoint=f.endpoint,
                    model=f.model,
                    is_stream=f.is_stream,
                    started_at=f.started_at,
                    completed_at=f.completed_at,
                    status_code=f.status_code,
                    status=f.status,
                    token_usage=f.tokens,
                    error=f.error,  # type: ignore[arg-type]
                    duration_ms=_ms(f.started_at, f.completed_at),
                    provider=f.provider,
                    session_id=f.session_id,
                    round_id=f.round_id,
                    cache_read_tokens=f.parts[0],
                    cache_write_tokens=f.parts[1],
                    reasoning_tokens=f.parts[2],
                    time_to_first_token_ms=f.ttft,
                )
            )
        return rows

    def forward_requests(self, limit: int = 100, **filters: Any) -> list[ForwardRequestMetrics]:
        rows = self.forward_rows(**filters)
        rows.sort(key=lambda row: (row.started_at, row.forward_id.encode()), reverse=True)
        return rows[:limit]

    def forward_summary(self, **filters: Any) -> ForwardMetricsSummary:
        rows = self.forward_rows(**filters)
        return ForwardMetricsSummary(
            total_requests=len(rows),
            successful_requests=sum(row.status == "success" for row in rows),
            failed_requests=sum(row.status == "error" for row in rows),
            timed_out_requests=sum(row.status == "timeout" for row in rows),
            pending_requests=sum(row.status == "pending" for row in rows),
            total_tokens=_sum_usage(row.token_usage for row in rows if row.token_usage is not None),
            avg_duration_ms=_avg_ms(rows),
        )

    def forward_by_endpoint(self, **filters: Any) -> list[ForwardEndpointMetrics]:
        groups: dict[str, list[ForwardRequestMetrics]] = defaultdict(list)
        for row in self.forward_rows(**filters):
            groups[row.endpoint].append(row)
        result = [
            ForwardEndpointMetrics(
                endpoint=endpoint,
                **_outcomes(rows),
                tokens=_sum_usage(row.token_usage for row in rows if row.token_usage is not None),
                avg_duration_ms=_avg_ms(rows),
            )
            for endpoint, rows in groups.items()
        ]
        return sorted(result, key=lambda m: (-m.requests, m.endpoint.encode()))

    def forward_daily(self, days: int, end: date) -> list[ForwardDailyMetrics]:
        start = end - timedelta(days=max(days, 1) - 1)
        by_day: dict[date, list[ForwardRequestMetrics]] = defaultdict(list)
        for row in self.forward_rows(start, end):
            by_day[row.started_at.date()].append(row)
        return [
            ForwardDailyMetrics(
                date=day,
                **_outcomes(rows),
                tokens=_sum_usage(row.token_usage for row in rows if row.token_usage is not None),
            )
            for day, rows in sorted(by_day.items())
        ]


def _outcomes(rows: list[ForwardRequestMetrics]) -> dict[str, int]:
    count = Counter(row.status for row in rows)
    return {"requests": len(rows), "successful": count["success"], "failed": count["error"],
            "timed_out": count["timeout"], "pending": count["pending"]}  # fmt: skip


def _sum_usage(usages: Any) -> TokenUsage:
    usages = list(usages)
    return TokenUsage(
        prompt_tokens=sum(u.prompt_tokens for u in usages),
        completion_tokens=sum(u.completion_tokens for u in usages),
        total_tokens=sum(u.total_tokens for u in usages),
    )


def _avg_ms(rows: list[ForwardRequestMetrics]) -> int | None:
    done = [row.completed_at - row.started_at for row in rows if row.completed_at is not None]
    if not done:
        return None
    micros = sum(d // timedelta(microseconds=1) for d in done)
    return max(0, int(Fraction(micros, len(done) * 1000)))
