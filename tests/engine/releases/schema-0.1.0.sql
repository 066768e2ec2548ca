-- Agent telemetry schema for PostgreSQL 14+: the single source of truth for the tables.
--
-- Table and column names are the seed's (storage.rs). Safe to apply again and again; workers
-- apply it at start under an advisory lock (worker/schema.py) so that many starting at once
-- do not race on CREATE ... IF NOT EXISTS.
--
-- Rows can exist before their start event has arrived (a completion, a compression or a tool
-- call delivered first): such a "stub" has NULL started_at (and NULL model/name) until the start
-- is merged in. The read side shows sessions and forwards only once started.
--
-- The four entity tables keep 20% of each page free (fillfactor 80): most writes update a row
-- that exists (a completion, an aggregate delta), and room on the page lets PostgreSQL update it
-- in place (HOT) without touching the indexes.
--
-- Every *_version column holds the order key of the event that last set that group of
-- columns ("<occurred_at UTC, microseconds>|<rank>|<event_id>", see contract/events.py).
-- Comparing keys byte-wise (COLLATE "C") orders events as they truly happened, which is what
-- makes applying events in any order, any number of times, converge.

CREATE TABLE IF NOT EXISTS session_metrics (
    session_id                 text PRIMARY KEY,
    model                      text,
    started_at                 timestamptz,
    completed_at               timestamptz,
    status                     text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'completed', 'awaiting_response', 'error', 'cancelled')),
    total_rounds               bigint NOT NULL DEFAULT 0,
    prompt_tokens              bigint NOT NULL DEFAULT 0,
    completion_tokens          bigint NOT NULL DEFAULT 0,
    total_tokens               bigint NOT NULL DEFAULT 0,
    prompt_cached_tool_outputs bigint NOT NULL DEFAULT 0,
    total_compression_events   bigint NOT NULL DEFAULT 0,
    total_tokens_saved         bigint NOT NULL DEFAULT 0,
    tool_call_count            bigint NOT NULL DEFAULT 0,
    message_count              bigint NOT NULL DEFAULT 0,
    updated_at                 timestamptz NOT NULL,
    model_version              text COLLATE "C",  -- latest session.started (sets model)
    status_version             text COLLATE "C",  -- latest start or completion (sets status, completed_at)
    message_count_version      text COLLATE "C"   -- latest session.message_count
) WITH (fillfactor = 80);

CREATE TABLE IF NOT EXISTS round_metrics (
    round_id                   text PRIMARY KEY,
    session_id                 text NOT NULL,
    model                      text,
    started_at                 timestamptz,
    completed_at               timestamptz,
    status                     text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'success', 'error', 'cancelled')),
    prompt_tokens              bigint NOT NULL DEFAULT 0,
    completion_tokens          bigint NOT NULL DEFAULT 0,
    total_tokens               bigint NOT NULL DEFAULT 0,
    prompt_cached_tool_outputs bigint NOT NULL DEFAULT 0,
    compression_count          bigint NOT NULL DEFAULT 0,
    tokens_saved               bigint NOT NULL DEFAULT 0,
    error                      text,
    start_version              text COLLATE "C",  -- earliest round.started (the seed keeps the first)
    completion_version         text COLLATE "C"   -- latest round.completed; '' = reconciled guess
) WITH (fillfactor = 80);

CREATE TABLE IF NOT EXISTS tool_call_metrics (
    tool_call_id               text PRIMARY KEY,
    round_id                   text NOT NULL,
    session_id                 text NOT NULL,
    tool_name                  text,
    started_at                 timestamptz,
    completed_at               timestamptz,
    success                    boolean,
    error                      text,
    start_version              text COLLATE "C",  -- latest tool.started (the seed takes the latest)
    completion_version         text COLLATE "C"   -- latest tool.completed
) WITH (fillfactor = 80);

CREATE TABLE IF NOT EXISTS forward_request_metrics (
    forward_id                 text PRIMARY KEY,
    endpoint                   text,
    model                      text,
    is_stream                  boolean,
    started_at                 timestamptz,
    completed_at               timestamptz,
    status_code                integer,
    status                     text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'success', 'error', 'timeout')),
    prompt_tokens              bigint,
    completion_tokens          bigint,
    total_tokens               bigint,
    error                      text,
    updated_at                 timestamptz NOT NULL,
    start_version              text COLLATE "C",  -- latest forward.started
    completion_version         text COLLATE "C"   -- latest completion after that start; '' = reconciled
) WITH (fillfactor = 80);

CREATE TABLE IF NOT EXISTS execute_sync_mismatch_metrics (
    reason                     text NOT NULL,
    mismatch_date              date NOT NULL,     -- UTC date of occurred_at
    count                      bigint NOT NULL DEFAULT 0,
    updated_at                 timestamptz NOT NULL,
    PRIMARY KEY (reason, mismatch_date)
);

-- Idempotency of the two counting events (round.compressed, sync.mismatch): an event_id is
-- counted once. Every other event is idempotent by its merge rule and needs no bookkeeping.
-- Expired by the prune job after a window longer than any redelivery can take.
CREATE TABLE IF NOT EXISTS applied_counter_events (
    event_id                   text COLLATE "C" PRIMARY KEY,
    applied_at                 timestamptz NOT NULL DEFAULT now()
);

-- One row per maintenance run (reconcile, prune): what it did, for operators.
CREATE TABLE IF NOT EXISTS maintenance_runs (
    run_id                     bigserial PRIMARY KEY,
    job                        text NOT NULL,
    started_at                 timestamptz NOT NULL,
    finished_at                timestamptz NOT NULL,
    details                    jsonb NOT NULL
);

-- Which versions of this file were applied (sha256 of its text): a worker starting next to running
-- ones skips a schema already in place instead of taking table locks (worker/schema.py).
CREATE TABLE IF NOT EXISTS metrics_schema (
    sha256                     text PRIMARY KEY,
    applied_at                 timestamptz NOT NULL
);

-- The seed's indexes. Where a seed index on one column was the lead of a composite that the read
-- side's plans need (checked with EXPLAIN on 1.1M rounds, bench/read_bench.py), the composite
-- replaces it: it serves every query the single-column one did. The seed's idx_tool_name is gone:
-- no query filters on a tool name alone (breakdowns group by it within a session or a day, which
-- the two composites cover), and every tool call paid for it on insert.
CREATE INDEX IF NOT EXISTS idx_session_started_at ON session_metrics (started_at);
CREATE INDEX IF NOT EXISTS idx_session_model_started_at ON session_metrics (model, started_at);
CREATE INDEX IF NOT EXISTS idx_round_session ON round_metrics (session_id);
CREATE INDEX IF NOT EXISTS idx_tool_session_name ON tool_call_metrics (session_id, tool_name);
CREATE INDEX IF NOT EXISTS idx_tool_started_at_name ON tool_call_metrics (started_at) INCLUDE (tool_name);
CREATE INDEX IF NOT EXISTS idx_forward_started_at ON forward_request_metrics (started_at);
CREATE INDEX IF NOT EXISTS idx_forward_endpoint_started_at ON forward_request_metrics (endpoint, started_at);
CREATE INDEX IF NOT EXISTS idx_forward_model_started_at ON forward_request_metrics (model, started_at);
CREATE INDEX IF NOT EXISTS idx_execute_sync_mismatch_date ON execute_sync_mismatch_metrics (mismatch_date);
CREATE INDEX IF NOT EXISTS idx_execute_sync_mismatch_reason ON execute_sync_mismatch_metrics (reason);

-- Day x model / tool estimates for the daily roll-ups (they enable parallel aggregation).
CREATE STATISTICS IF NOT EXISTS st_session_utc_day_model
    ON ((started_at AT TIME ZONE 'UTC')::date), model FROM session_metrics;
CREATE STATISTICS IF NOT EXISTS st_tool_utc_day_name
    ON ((started_at AT TIME ZONE 'UTC')::date), tool_name FROM tool_call_metrics;
CREATE STATISTICS IF NOT EXISTS st_forward_utc_day
    ON ((started_at AT TIME ZONE 'UTC')::date) FROM forward_request_metrics;

-- What the query paths, reconcile and prune need beyond the seed's.
CREATE INDEX IF NOT EXISTS idx_round_started_at ON round_metrics (started_at);
CREATE INDEX IF NOT EXISTS idx_tool_round ON tool_call_metrics (round_id);
CREATE INDEX IF NOT EXISTS idx_session_running ON session_metrics (session_id) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS idx_round_running ON round_metrics (round_id) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS idx_forward_pending ON forward_request_metrics (forward_id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_applied_counter_events_applied_at ON applied_counter_events (applied_at);
CREATE INDEX IF NOT EXISTS idx_maintenance_runs_job ON maintenance_runs (job, started_at);
