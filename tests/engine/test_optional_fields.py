"""Contract v1's optional fields in storage: a database of the previous version gains their columns,
and the session sums of the usage parts move by deltas like prompt_tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from contract.events import RoundCompleted, RoundStarted, SessionStarted, TokenUsage
from tests.engine.rollups import assert_rollups_match
from worker.backfill import backfill
from worker.engine.apply import apply_events
from worker.schema import apply_schema, schema_path

T = datetime(2026, 2, 10, 10, tzinfo=UTC)

# What the previous version's schema did not have (the hourly roll-ups, whose triggers read the
# fields, neither: its tool and forward triggers had the daily roll-ups' names; rounds had none).
_DROP_FIELDS = """
DROP FUNCTION round_rollups_trigger CASCADE;
ALTER TRIGGER tool_rollups_insert ON tool_call_metrics RENAME TO tool_rollup_insert;
ALTER TRIGGER tool_rollups_update ON tool_call_metrics RENAME TO tool_rollup_update;
ALTER TRIGGER tool_rollups_delete ON tool_call_metrics RENAME TO tool_rollup_delete;
ALTER TRIGGER forward_rollups_insert ON forward_request_metrics RENAME TO forward_rollup_insert;
ALTER TRIGGER forward_rollups_update ON forward_request_metrics RENAME TO forward_rollup_update;
ALTER TRIGGER forward_rollups_delete ON forward_request_metrics RENAME TO forward_rollup_delete;
DROP INDEX idx_forward_session, idx_session_user;
ALTER TABLE session_metrics DROP COLUMN user_id, DROP COLUMN cache_read_tokens,
                            DROP COLUMN cache_write_tokens, DROP COLUMN reasoning_tokens;
ALTER TABLE round_metrics DROP COLUMN provider, DROP COLUMN cache_read_tokens,
                          DROP COLUMN cache_write_tokens, DROP COLUMN reasoning_tokens,
                          DROP COLUMN time_to_first_token_ms;
ALTER TABLE forward_request_metrics DROP COLUMN provider, DROP COLUMN session_id, DROP COLUMN round_id,
                                    DROP COLUMN cache_read_tokens, DROP COLUMN cache_write_tokens,
                                    DROP COLUMN reasoning_tokens, DROP COLUMN time_to_first_token_ms;
ALTER TABLE session_metrics DROP COLUMN cost_usd, DROP COLUMN unpriced_rounds;
ALTER TABLE round_metrics DROP COLUMN cost_usd, DROP COLUMN cost_source, DROP COLUMN unpriced;
ALTER TABLE forward_request_metrics DROP COLUMN cost_usd, DROP COLUMN cost_source, DROP COLUMN unpriced;
"""


def _previous_session_move() -> str:
    """The session roll-up's move function as that version had it (no user cost roll-up)."""
    text = schema_path().read_text()
    start = text.index("CREATE OR REPLACE FUNCTION session_rollup_move")
    end = text.index("END $$;", start)
    body = text[start:end]
    return body[: body.index("    -- The user cost:")] + "END $$"


_OLD_ROWS = """
INSERT INTO session_metrics (session_id, model, started_at, total_rounds, prompt_tokens, completion_tokens,
                             total_tokens, updated_at, model_version)
VALUES ('old', 'gpt-4o', %(t)s, 1, 100, 20, 120, %(t)s, '0');
INSERT INTO round_metrics (round_id, session_id, model, started_at, completed_at, status, prompt_tokens,
                           completion_tokens, total_tokens, start_version, completion_version)
VALUES ('old-r', 'old', 'gpt-4o', %(t)s, %(t)s, 'success', 100, 20, 120, '0', '0');
"""


def _usage(prompt: int, completion: int, **parts: int) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion, **parts
    )


def test_a_database_of_the_previous_version_gains_the_columns(conn: psycopg.Connection) -> None:
    conn.execute(_DROP_FIELDS)
    conn.execute(_previous_session_move())
    with conn.cursor() as cur:
        for statement in _OLD_ROWS.strip().split(";\n"):
            cur.execute(statement, {"t": T})
    apply_schema(conn, force=True)
    backfill(conn)
    row = conn.execute(
        "SELECT user_id, cache_read_tokens, cache_write_tokens, reasoning_tokens, prompt_tokens "
        "FROM session_metrics WHERE session_id = 'old'"
    ).fetchone()
    assert row == (None, 0, 0, 0, 100)  # the old round reported no parts: they sum to 0
    later = T + timedelta(seconds=1)
    apply_events(
        conn,
        [
            RoundStarted(
                event_id="e1",
                occurred_at=later,
                round_id="new-r",
                session_id="old",
                model="o3",
                provider="openai",
            ),
            RoundCompleted(
                event_id="e2",
                occurred_at=later,
                round_id="new-r",
                session_id="old",
                status="success",
                usage=_usage(50, 30, cache_read_tokens=40, reasoning_tokens=25),
                time_to_first_token_ms=350,
            ),
        ],
    )
    row = conn.execute(
        "SELECT total_rounds, prompt_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens "
        "FROM session_metrics WHERE session_id = 'old'"
    ).fetchone()
    assert row == (2, 150, 40, 0, 25)
    assert conn.execute(
        "SELECT provider, cache_read_tokens, cache_write_tokens, reasoning_tokens, time_to_first_token_ms "
        "FROM round_metrics WHERE round_id = 'new-r'"
    ).fetchone() == ("openai", 40, None, 25, 350)
    indexes = {
        r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    }
    assert {"idx_forward_session", "idx_session_user"} <= indexes
    backfill(conn)  # the cost roll-up of rounds is new to that version: `metrics-worker schema` counts it
    assert_rollups_match(conn)


def test_a_later_completion_moves_the_session_sums_by_its_difference(conn: psycopg.Connection) -> None:
    start = [
        SessionStarted(event_id="s", occurred_at=T, session_id="s1", model="m", user_id="u1"),
        RoundStarted(event_id="r", occurred_at=T, round_id="r1", session_id="s1", model="m"),
    ]
    first = RoundCompleted(
        event_id="c1",
        occurred_at=T + timedelta(seconds=1),
        round_id="r1",
        session_id="s1",
        status="success",
        usage=_usage(10, 10, cache_read_tokens=8, cache_write_tokens=2),
    )
    second = RoundCompleted(
        event_id="c2",
        occurred_at=T + timedelta(seconds=2),
        round_id="r1",
        session_id="s1",
        status="success",
        usage=_usage(10, 10, reasoning_tokens=4),
    )
    sums = "SELECT user_id, cache_read_tokens, cache_write_tokens, reasoning_tokens FROM session_metrics"
    apply_events(conn, [*start, first])
    assert conn.execute(sums).fetchone() == ("u1", 8, 2, 0)
    apply_events(
        conn, [second, first]
    )  # the later completion wins, whatever the order; redelivery adds nothing
    apply_events(conn, [first, second])
    assert conn.execute(sums).fetchone() == ("u1", 0, 0, 4)
    # A restart without a user: the latest start's user, as its model.
    apply_events(
        conn,
        [SessionStarted(event_id="s2", occurred_at=T + timedelta(seconds=3), session_id="s1", model="m2")],
    )
    assert conn.execute(sums).fetchone() == (None, 0, 0, 4)
