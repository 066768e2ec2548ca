"""Result models of the read side: field names are the seed's (crate::metrics::types).

Read models, not wire models: they are built from rows, never from untrusted input, so they
are lax where the database is (a round or tool call recorded before its start event has no
``started_at`` and no ``model`` / ``tool_name`` yet).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

SessionStatus = Literal["running", "completed", "awaiting_response", "error", "cancelled"]
RoundStatus = Literal["running", "success", "error", "cancelled"]
ForwardStatus = Literal["pending", "success", "error", "timeout"]


class _Model(BaseModel):
    # a field's docstring is its description in the API's OpenAPI schema (/docs)
    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)


class TokenUsage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class MetricsSummary(_Model):
    """Sessions started in the date range; sync mismatches counted on their UTC date.

    ``total_sessions`` = active + completed + awaiting_response + error + cancelled + reconciled:
    each status counts the sessions whose own events set it, and a session the reconcile job
    closed is counted in ``reconciled_sessions`` alone, whatever status reconcile gave it."""

    total_sessions: int
    total_tokens: TokenUsage
    total_tool_calls: int
    prompt_cached_tool_outputs: int
    total_compression_events: int
    total_tokens_saved: int
    active_sessions: int  # status 'running'
    completed_sessions: int
    awaiting_response_sessions: int
    error_sessions: int
    cancelled_sessions: int
    reconciled_sessions: int = 0
    """Closed by the reconcile job, not by a session.completed: their agent stopped saying it was
    alive (crashed, or a producer without heartbeats). Not in the five status counts above."""
    total_sync_mismatches: int
    sync_mismatch_breakdown: dict[str, int]


class ModelMetrics(_Model):
    model: str
    sessions: int
    reconciled_sessions: int = 0
    """Of ``sessions``, those the reconcile job closed (no session.completed came)."""
    rounds: int
    tokens: TokenUsage
    tool_calls: int
    prompt_cached_tool_outputs: int


class SessionMetrics(_Model):
    session_id: str
    model: str
    started_at: datetime
    completed_at: datetime | None
    total_rounds: int
    total_token_usage: TokenUsage
    tool_call_count: int
    prompt_cached_tool_outputs: int
    total_compression_events: int
    total_tokens_saved: int
    tool_breakdown: dict[str, int]  # tool_name -> calls (calls not yet started have no name)
    status: SessionStatus
    message_count: int
    duration_ms: int | None
    #: Not the seed's (contract v1's optional fields): the end user; the usage parts summed over
    #: the session's rounds (a round that reported none adds 0).
    user_id: str | None = None
    cache_read_tokens: int = 0  # part of prompt_tokens: read from the provider's prompt cache
    cache_write_tokens: int = 0  # part of prompt_tokens: written to the provider's prompt cache
    reasoning_tokens: int = 0  # part of completion_tokens: spent on reasoning
    cost_usd: Decimal = Decimal(0)
    """Not the seed's: the sum of its priced rounds' cost (exact USD, a decimal string in JSON)."""
    unpriced_rounds: int = 0
    """Its completed rounds whose model no price list knows: counted, never summed as $0."""
    closed_by_reconcile: bool = False
    """True: no session.completed came; the reconcile job closed it when its agent stopped saying
    it was alive (crashed, or a producer without heartbeats). ``status`` is then reconcile's guess
    (completed, or awaiting_response if the producer said so), and ``completed_at`` its last
    activity, so ``duration_ms`` runs to the last thing it did. A later event reopens it."""
    reconciled_at: datetime | None = None
    """When the reconcile job closed it; null while open, or when its own events closed it."""


class ToolCallMetrics(_Model):
    tool_call_id: str
    tool_name: str | None
    started_at: datetime | None
    completed_at: datetime | None
    success: bool | None
    error: str | None
    duration_ms: int | None


class UnplacedToolCall(ToolCallMetrics):
    """A tool call whose round is not stored (never arrived, or pruned): the round it names."""

    round_id: str


class RoundMetrics(_Model):
    round_id: str
    session_id: str
    model: str | None
    started_at: datetime | None
    completed_at: datetime | None
    token_usage: TokenUsage
    tool_calls: list[ToolCallMetrics]
    status: RoundStatus
    prompt_cached_tool_outputs: int
    compression_count: int
    tokens_saved: int
    error: str | None
    duration_ms: int | None
    #: Not the seed's (contract v1's optional fields; None: not reported): the start's provider
    #: (gen_ai.provider.name), the completion's usage parts and time to the first token.
    provider: str | None = None
    cache_read_tokens: int | None = None  # part of token_usage.prompt_tokens
    cache_write_tokens: int | None = None  # part of token_usage.prompt_tokens
    reasoning_tokens: int | None = None  # part of token_usage.completion_tokens
    time_to_first_token_ms: int | None = None
    cost_usd: Decimal | None = None
    """Not the seed's: exact USD of the round; None unless priced (see ``unpriced``)."""
    unpriced: bool = False
    """A completed round whose model no price list knows (never $0); false while not priceable yet."""


class DailyMetrics(_Model):
    """One UTC day of sessions."""

    date: date
    total_sessions: int
    reconciled_sessions: int = 0
    """Of ``total_sessions``, those the reconcile job closed (no session.completed came)."""
    total_rounds: int
    total_token_usage: TokenUsage
    total_tool_calls: int
    prompt_cached_tool_outputs: int
    model_breakdown: dict[str, TokenUsage]
    tool_breakdown: dict[str, int]


class ForwardMetricsSummary(_Model):
    """``total_requests`` = successful + failed + timed out + pending."""

    total_requests: int
    successful_requests: int  # status 'success'
    failed_requests: int  # status 'error' only, as the seed ('timeout' is neither)
    timed_out_requests: int  # status 'timeout'
    pending_requests: int  # started, not completed (yet, or ever: reconcile fails stale ones)
    total_tokens: TokenUsage
    avg_duration_ms: int | None  # over completed requests, truncated


class ForwardEndpointMetrics(_Model):
    """``requests`` = successful + failed + timed_out + pending, as in the summary."""

    endpoint: str
    requests: int
    successful: int
    failed: int
    timed_out: int
    pending: int
    tokens: TokenUsage
    avg_duration_ms: int | None


class ForwardDailyMetrics(_Model):
    """One UTC day of forwarded requests (by started_at), counted as in the summary. The seed
    reused its sessions' DailyMetrics here, requests in ``total_sessions``: renamed."""

    date: date
    requests: int
    successful: int
    failed: int
    timed_out: int
    pending: int
    tokens: TokenUsage


class ForwardRequestMetrics(_Model):
    forward_id: str
    endpoint: str
    model: str
    is_stream: bool
    started_at: datetime
    completed_at: datetime | None
    status_code: int | None
    status: ForwardStatus
    token_usage: TokenUsage | None  # None unless all three token counts were reported
    error: str | None
    duration_ms: int | None
    #: Not the seed's (contract v1's optional fields; None: not given): the latest start's provider
    #: and links to the session and round it was made for; the completion's usage parts and time
    #: to the first token.
    provider: str | None = None
    session_id: str | None = None
    round_id: str | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    time_to_first_token_ms: int | None = None


class SessionDetail(_Model):
    session: SessionMetrics
    rounds: list[RoundMetrics]
    #: Tool calls of this session whose round never arrived (or was pruned): counted in
    #: ``session.tool_call_count``, so shown rather than dropped.
    tool_calls_without_round: list[UnplacedToolCall] = []
    #: Requests forwarded for this session (forward.started's session_id), earliest first.
    forwards: list[ForwardRequestMetrics] = []


class ToolMetrics(_Model):
    """Calls of one tool started in the date range; ``failure_share`` is over finished calls."""

    tool_name: str
    calls: int
    succeeded: int
    failed: int
    unfinished: int  # no completion yet
    failure_share: float | None  # failed / (succeeded + failed); None before any finished


class ForwardEndpointStatuses(_Model):
    """Forwarded requests of one endpoint by status (``failed`` in the seed's reads is ``error``)."""

    endpoint: str
    requests: int
    success: int
    error: int
    timeout: int
    pending: int


class CostByModel(_Model):
    """What one model's rounds and forwards started in the dates cost; unpriced ones are counted
    (no price list knows them), never summed as $0."""

    model: str
    round_usd: Decimal
    priced_rounds: int
    unpriced_rounds: int
    forward_usd: Decimal
    priced_forwards: int
    unpriced_forwards: int


class CostByDay(_Model):
    """One UTC date's rounds and forwards (by their started_at), as CostByModel."""

    day: date
    round_usd: Decimal
    priced_rounds: int
    unpriced_rounds: int
    forward_usd: Decimal
    priced_forwards: int
    unpriced_forwards: int
    #: The day's rounds' USD per model (models with priced rounds that day; what the dashboard's
    #: stacked chart draws, so it needs no read per model).
    round_usd_by_model: dict[str, Decimal] = {}


class CostByUser(_Model):
    """The cost of one user's sessions started in the dates (a session's cost is its rounds')."""

    user_id: str
    cost_usd: Decimal
    unpriced_rounds: int


class CostBySession(_Model):
    """One session's cost (its rounds') and how many of its rounds are unpriced."""

    session_id: str
    user_id: str | None
    model: str | None
    started_at: datetime
    cost_usd: Decimal
    unpriced_rounds: int


class CostReport(_Model):
    """What the agents cost: exact USD of the priced rounds and forwards, the unpriced counted apart
    (an unknown model is never $0), per model, per day, the top users and sessions by cost."""

    round_usd: Decimal
    priced_rounds: int
    unpriced_rounds: int
    forward_usd: Decimal
    priced_forwards: int
    unpriced_forwards: int
    by_model: list[CostByModel]
    by_day: list[CostByDay]
    by_user: list[CostByUser]
    top_sessions: list[CostBySession]


class Percentiles(_Model):
    """Percentiles in ms of ``count`` durations, from the latency histograms: each the value of the
    bucket that holds PostgreSQL's ``percentile_disc`` over the same rows, within 1.083% of it
    (README: the bucket rule). None when ``count`` is 0."""

    count: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


class ModelLatency(_Model):
    """A model's rounds: their duration (started to completed) and their time to the first token."""

    model: str
    duration: Percentiles
    time_to_first_token: Percentiles


class ToolLatency(_Model):
    tool_name: str
    duration: Percentiles


class EndpointLatency(_Model):
    """An endpoint's forwarded requests: their duration and their time to the first token."""

    endpoint: str
    duration: Percentiles
    time_to_first_token: Percentiles


class Latency(_Model):
    """Latency of what started in ``[start, end)`` (None: open), from the hourly histograms."""

    start: datetime | None
    end: datetime | None
    models: list[ModelLatency]
    tools: list[ToolLatency]
    endpoints: list[EndpointLatency]


class HourlyPoint(_Model):
    """Rounds started in one UTC hour (``hour`` is its start): how many, errors, tokens, cost,
    duration."""

    hour: datetime
    rounds: int
    errors: int  # status 'error', reconcile's included
    tokens: TokenUsage
    cost_usd: Decimal  # the priced rounds' (exact USD, a decimal string in JSON)
    unpriced_rounds: int  # rounds no price list knows: not in cost_usd, never $0
    duration: Percentiles


class HourlySeries(_Model):
    """The last ``hours`` UTC hours, oldest first, every hour present (zeros where nothing started);
    the last one is the current hour so far."""

    start: datetime
    end: datetime
    hours: int
    model: str | None
    points: list[HourlyPoint]


class Overview(_Model):
    """What the dashboard's overview shows for one date range, or for the last N UTC hours, read in
    one request. With ``hours``: the summary and tools of those hours, their hourly ``series``
    instead of ``daily`` (empty), and the UTC dates they touch as start_date and end_date."""

    start_date: date
    end_date: date
    summary: MetricsSummary
    daily: list[DailyMetrics]
    tools: list[ToolMetrics]
    hours: int | None = None
    series: HourlySeries | None = None
