"""The apply engine: a batch of validated events into PostgreSQL, in one transaction.

Knows nothing of Redis. Idempotent and order-independent (see worker/engine/merge.py for the rules and
worker/engine/sql.py for how concurrent appliers avoid deadlocks and lost updates).

The transaction's statements go out in pipeline mode and need no answer from one another, so a
caller can start a batch (:func:`start`), do other work while PostgreSQL applies it, and collect
the outcome later (:meth:`InFlight.wait`); :func:`apply_events` does both at once. Building the
statements (:func:`prepare`) is pure, so a caller can do that too while another batch is out.

Cost is priced in the same transaction. A round or forward whose start the worker saw (in this
batch or an earlier one, :class:`~worker.engine.costing.Pricer`) is priced before sending, and the
statements keep that cost if the row ends as priced. When every completion of a batch was priced
so, the COMMIT goes out with the statements (no round trip); a row that does not end as priced then
stops the transaction (SQLSTATE MP001, schema.sql's metrics_price_missed) and the batch is sent
again the careful way. Otherwise (a completion whose start the worker has not seen) the rows the
batch started or completed are read back (worker/engine/cost_sql.py) once the main statements ran,
priced in Python with the worker's :class:`~worker.engine.pricing.PriceList`, and the costs that
changed are written before COMMIT (worker/engine/costing.py says why that converges): that one
round trip is taken in :meth:`wait`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, NoReturn

import psycopg
from psycopg import pq

from contract.events import Event
from worker.engine import arrays, cost_sql, forward_sql, sql
from worker.engine.arrays import Array
from worker.engine.costing import Predicted, Pricer, changes, default_prices
from worker.engine.merge import Plan, plan
from worker.engine.pricing import PriceList
from worker.errors import translate


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch touched (rows, not events: a batch is merged per key first)."""

    events: int
    sessions: int
    rounds: int
    tools: int
    forwards: int
    counters: int

    @classmethod
    def of(cls, p: Plan) -> Applied:
        return cls(
            events=p.events,
            sessions=len(p.sessions),
            rounds=len(p.rounds),
            tools=len(p.tools),
            forwards=len(p.forwards),
            counters=len(p.compressions) + len(p.mismatches),
        )


Statements = list[tuple[str, dict[str, Array]]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch ready to send: its statements with their parameters, built without I/O."""

    applied: Applied
    statements: Statements  # with the read-back (PRICE_INPUTS after them)
    priced: dict[str, Array] | None  # PRICE_INPUTS' keys: rows started or completed here (None: none)
    guarded: Statements | None  # without a read-back: every completion was priced before sending


def prepare(events: Sequence[Event], pricer: Pricer | None = None) -> Prepared:
    """Merge ``events`` per key and build the transaction's statements (no I/O; ``pricer``
    remembers the starts it saw, to price their completions in later batches)."""
    p = plan(events)
    pricer = pricer or _default_pricer()
    rounds, forwards = _sorted(p.rounds), list(p.forwards.values())
    predicted, predicted_f = pricer.predict(rounds), pricer.predict_forwards(forwards)
    guessed = predicted.guessed_all(r.completion_version for r in rounds) and predicted_f.guessed_all(
        f.completion_version for f in forwards
    )
    r_params, f_params = predicted.params(), predicted_f.params()
    statements = _statements(p, r_params, f_params)
    guarded = _guarded(statements, _foldable(forwards, predicted_f)) if guessed else None
    return Prepared(Applied.of(p), statements, _priced(p, r_params), guarded)


_PRICERS: dict[int, Pricer] = {}  # id(PriceList) -> its Pricer (the lists live as long as their users)


def pricer_for(prices: PriceList | None) -> Pricer:
    """The process's :class:`Pricer` of ``prices`` (None: the bundled list)."""
    prices = prices or default_prices()
    found = _PRICERS.get(id(prices))
    if found is None or found.prices is not prices:
        if len(_PRICERS) > 16:
            _PRICERS.clear()
        found = _PRICERS[id(prices)] = Pricer(prices)
    return found


def _default_pricer() -> Pricer:
    return pricer_for(None)


#: schema.sql's metrics_price_missed: a cost priced before sending did not hold.
PRICE_MISSED = "MP001"


class InFlight:
    """One batch's transaction, sent and not yet confirmed."""

    def __init__(
        self, conn: psycopg.Connection[Any], prepared: Prepared, prices: PriceList | None = None
    ) -> None:
        self.conn = conn
        self.applied = prepared.applied
        self._prices = prices or default_prices()
        self._prepared = prepared
        arrays.register(conn.adapters)
        self._send(guarded=prepared.guarded is not None)

    def _send(self, *, guarded: bool) -> None:
        conn, prepared = self.conn, self._prepared
        self._guarded = guarded
        self._inputs: psycopg.Cursor[Any] | None = None
        self._pipeline = conn.pipeline()
        self._pipeline.__enter__()
        try:
            conn.execute("BEGIN")
            for query, params in prepared.guarded if guarded and prepared.guarded else prepared.statements:
                conn.execute(query, params)
            if prepared.priced is not None and not guarded:
                self._inputs = conn.execute(cost_sql.PRICE_INPUTS, prepared.priced)
            else:
                conn.execute("COMMIT")
        except psycopg.Error as exc:
            if not self._missed(exc):
                self._fail(exc)
            self._again(exc)
        except BaseException as exc:
            self._fail(exc)

    def _missed(self, exc: psycopg.Error) -> bool:
        """Whether ``exc`` is the guard's: a guess did not hold (send it again, reading back)."""
        return self._guarded and exc.sqlstate == PRICE_MISSED

    def _again(self, exc: psycopg.Error) -> None:
        """Roll the guarded transaction back and send the batch again with the read-back."""
        with contextlib.suppress(psycopg.Error):
            self._pipeline.__exit__(type(exc), exc, exc.__traceback__)
        self.conn.rollback()  # also forgets what the aborted pipeline prepared
        self._send(guarded=False)

    def wait(self) -> Applied:
        """Block until PostgreSQL answered. Raises worker.errors.TransientError (retry the whole
        batch) or PermanentError (PostgreSQL refuses the data); nothing is committed then."""
        try:
            if self._inputs is not None:
                found = changes(self._prices, self._inputs.fetchall())
                if found:
                    self.conn.execute(cost_sql.APPLY_COSTS, found.params())
                self.conn.execute("COMMIT")
            self._pipeline.__exit__(None, None, None)
        except psycopg.Error as exc:
            if not self._missed(exc):
                self._fail(exc)
            self._again(exc)
            return self.wait()
        except BaseException as exc:
            self._fail(exc)
        return self.applied

    def _fail(self, exc: BaseException) -> NoReturn:
        with contextlib.suppress(psycopg.Error):
            self._pipeline.__exit__(type(exc), exc, exc.__traceback__)
        # An error in pipeline mode skips the rest, COMMIT included: end the aborted transaction.
        if not self.conn.closed and self.conn.info.transaction_status != pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
        if isinstance(exc, psycopg.Error):
            raise translate(exc) from exc
        raise exc


def start(
    conn: psycopg.Connection[Any], batch: Sequence[Event] | Prepared, prices: PriceList | None = None
) -> InFlight:
    """Send the transaction applying a batch (autocommit connection, not in a transaction);
    costs are priced with ``prices`` (None: genai-prices' bundled list)."""
    prepared = batch if isinstance(batch, Prepared) else prepare(batch, pricer_for(prices))
    return InFlight(conn, prepared, prices)


def apply_events(
    conn: psycopg.Connection[Any], events: Sequence[Event], prices: PriceList | None = None
) -> Applied:
    """Apply ``events`` in one transaction and refresh the touched sessions' aggregates in it."""
    if not conn.autocommit:
        raise ValueError("conn: the apply engine manages its own transaction; pass an autocommit connection")
    return start(conn, events, prices).wait()


def _guarded(statements: Statements, fold: bool) -> Statements:
    """The same statements sent without a read-back: every guess checked (``guard``). The
    forwards' guesses are settled in APPLY_FORWARDS itself when ``fold``, else by FORWARD_COSTS
    after it (the arrays are shared, not encoded again)."""
    out: Statements = []
    for query, params in statements:
        if query is sql.APPLY_ROUNDS_TOOLS_SESSIONS or (query is forward_sql.APPLY_FORWARDS and fold):
            params = {**params, "guard": True}  # type: ignore[dict-item]
        out.append((query, params))
        if query is forward_sql.APPLY_FORWARDS and not fold:
            out.append((cost_sql.FORWARD_COSTS, params))
    return out


def _foldable(forwards: Sequence[Any], predicted: Predicted) -> bool:
    """Whether APPLY_FORWARDS can settle every guess of ``forwards`` itself: each was priced for
    the row's own start in the batch, or for an earlier batch's (no start here); not for an earlier
    start whose later one came here (rare: FORWARD_COSTS settles those)."""
    return all(
        f.start_version is None or c is None or (f.model, f.provider, f.completion_version) == (m, pv, c)
        for f, m, pv, c in zip(
            forwards, predicted.model, predicted.provider, predicted.completion, strict=True
        )
    )


def _statements(p: Plan, predicted: dict[str, Array], predicted_f: dict[str, Array]) -> Statements:
    """The transaction's statements, with the read-back (PRICE_INPUTS follows them)."""
    # Lock order: rounds, tool calls, counter events and mismatch rows, forwards, sessions.
    out: Statements = []
    rounds = _columns(_sorted(p.rounds), _ROUND_COLUMNS)
    rounds.update(predicted)
    tools = _columns(_sorted(p.tools), _TOOL_COLUMNS)
    if p.rounds:
        out.append((sql.INSERT_OR_LOCK_ROUNDS, rounds))
    if p.tools:
        out.append((sql.INSERT_OR_LOCK_TOOLS, tools))
    if p.mismatches:
        out.append((sql.APPLY_MISMATCHES, _columns(p.mismatches.values(), _MISMATCH_COLUMNS)))
    if p.forwards:
        forwards = _columns(p.forwards.values(), _FORWARD_COLUMNS)
        forwards.update(predicted_f)
        forwards["guard"] = False  # type: ignore[assignment]
        out.append((forward_sql.APPLY_FORWARDS, forwards))
    if p.sessions or p.rounds or p.tools:
        # The round and tool-call columns encoded above serve this statement too.
        params = {f"r_{name}": array for name, array in rounds.items()}
        params.update({f"t_{name}": array for name, array in tools.items()})
        params.update(_columns(p.compressions.values(), _COMPRESSION_COLUMNS, "c_"))
        params.update(_columns(p.sessions.values(), _SESSION_COLUMNS, "s_"))
        params["guard"] = False  # type: ignore[assignment]
        out.append((sql.APPLY_ROUNDS_TOOLS_SESSIONS, params))
    return out


def _priced(p: Plan, predicted: dict[str, Array]) -> dict[str, Array] | None:
    """PRICE_INPUTS' keys: every round (with what was predicted for it: such a row, if it ends as
    predicted, is not read back) and the forwards a start or completion may have changed."""
    forwards = [key for key, f in p.forwards.items() if f.start_version or f.completion_version]
    if not p.rounds and not forwards:
        return None
    out = {"round_id": arrays.text(sorted(p.rounds)), "forward_id": arrays.text(sorted(forwards))}
    out.update({k: predicted[k] for k in ("p_model", "p_provider", "p_completion")})
    return out


def _sorted(rows: dict[str, Any]) -> list[Any]:
    return [rows[key] for key in sorted(rows)]


Column = tuple[str, Callable[[Iterable[Any]], Array]]


def _columns(rows: Iterable[Any], columns: Sequence[Column], prefix: str = "") -> dict[str, Array]:
    """Rows as one binary array per column (what unnest() takes)."""
    rows = list(rows)
    if not rows:
        return {prefix + name: encode(()) for name, encode in columns}
    get = attrgetter(*(name for name, _ in columns))  # a tuple per row, or the value itself for one column
    values = zip(*map(get, rows), strict=True) if len(columns) > 1 else [map(get, rows)]
    return {prefix + name: encode(column) for (name, encode), column in zip(columns, values, strict=True)}


_ROUND_COLUMNS: tuple[Column, ...] = (
    ("round_id", arrays.text),
    ("session_id", arrays.text),
    ("start_version", arrays.text),
    ("model", arrays.text),
    ("started_at", arrays.timestamptz),
    ("completion_version", arrays.text),
    ("completed_at", arrays.timestamptz),
    ("status", arrays.text),
    ("prompt_tokens", arrays.int8),
    ("completion_tokens", arrays.int8),
    ("total_tokens", arrays.int8),
    ("prompt_cached_tool_outputs", arrays.int8),
    ("error", arrays.text),
    ("provider", arrays.text),
    ("cache_read_tokens", arrays.int8),
    ("cache_write_tokens", arrays.int8),
    ("reasoning_tokens", arrays.int8),
    ("time_to_first_token_ms", arrays.int8),
)
_TOOL_COLUMNS: tuple[Column, ...] = (
    ("tool_call_id", arrays.text),
    ("round_id", arrays.text),
    ("session_id", arrays.text),
    ("start_version", arrays.text),
    ("tool_name", arrays.text),
    ("started_at", arrays.timestamptz),
    ("completion_version", arrays.text),
    ("completed_at", arrays.timestamptz),
    ("success", arrays.boolean),
    ("error", arrays.text),
)
_SESSION_COLUMNS: tuple[Column, ...] = (
    ("session_id", arrays.text),
    ("started_at", arrays.timestamptz),
    ("model", arrays.text),
    ("user_id", arrays.text),
    ("model_version", arrays.text),
    ("status", arrays.text),
    ("completed_at", arrays.timestamptz),
    ("status_version", arrays.text),
    ("message_count", arrays.int8),
    ("message_count_version", arrays.text),
    ("updated_at", arrays.timestamptz),
)
_FORWARD_COLUMNS: tuple[Column, ...] = (
    ("forward_id", arrays.text),
    ("start_version", arrays.text),
    ("endpoint", arrays.text),
    ("model", arrays.text),
    ("is_stream", arrays.boolean),
    ("started_at", arrays.timestamptz),
    ("completion_version", arrays.text),
    ("completed_at", arrays.timestamptz),
    ("status_code", arrays.int4),
    ("status", arrays.text),
    ("prompt_tokens", arrays.int8),
    ("completion_tokens", arrays.int8),
    ("total_tokens", arrays.int8),
    ("error", arrays.text),
    ("updated_at", arrays.timestamptz),
    ("provider", arrays.text),
    ("session_id", arrays.text),
    ("round_id", arrays.text),
    ("cache_read_tokens", arrays.int8),
    ("cache_write_tokens", arrays.int8),
    ("reasoning_tokens", arrays.int8),
    ("time_to_first_token_ms", arrays.int8),
)
_MISMATCH_COLUMNS: tuple[Column, ...] = (
    ("event_id", arrays.text),
    ("reason", arrays.text),
    ("mismatch_date", arrays.dates),
    ("occurred_at", arrays.timestamptz),
)
_COMPRESSION_COLUMNS: tuple[Column, ...] = (
    ("event_id", arrays.text),
    ("round_id", arrays.text),
    ("tokens_saved", arrays.int8),
)
