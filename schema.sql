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
    message_count_version      text COLLATE "C",  -- latest session.message_count
    -- Not the seed's: when the reconcile job closed this session (no session.completed came and its
    -- producer stopped saying it is alive); NULL when it is open or a real event closed it. Such a
    -- session's completed_at is its last activity (updated_at then), not the time reconcile ran.
    reconciled_at              timestamptz,
    -- Not the seed's (contract v1's optional fields, after the seed's columns in every database):
    user_id                    text,              -- latest session.started's, as model (model_version)
    cache_read_tokens          bigint NOT NULL DEFAULT 0,  -- sums over its rounds, as prompt_tokens
    cache_write_tokens         bigint NOT NULL DEFAULT 0,  -- (a round that reported none adds 0)
    reasoning_tokens           bigint NOT NULL DEFAULT 0,
    -- Not the seed's (cost): sums over its rounds, by deltas as the tokens are; an unpriced round
    -- adds nothing to cost_usd and 1 to unpriced_rounds (unpriced never reads as $0).
    cost_usd                   numeric NOT NULL DEFAULT 0,
    unpriced_rounds            bigint NOT NULL DEFAULT 0
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
    completion_version         text COLLATE "C",  -- latest round.completed; '' = reconciled guess
    -- Not the seed's (contract v1's optional fields; NULL: not reported). The provider is the
    -- start's; the usage parts (of prompt_tokens: cache reads and writes; of completion_tokens:
    -- reasoning) and the time to the first token are the completion's.
    provider                   text,
    cache_read_tokens          bigint,
    cache_write_tokens         bigint,
    reasoning_tokens           bigint,
    time_to_first_token_ms     bigint,
    -- Not the seed's (cost, written by the worker's pricer in the apply transaction and by
    -- `metrics-worker reprice`, worker/engine/costing.py): exact USD at the price valid at
    -- completed_at for model and provider, and the price list that gave it; unpriced = a really
    -- completed, started round that no price list knows (cost_usd NULL, never 0). A round not
    -- priceable yet (no start, no completion, a reconciled guess) has NULL and false.
    cost_usd                   numeric,
    cost_source                text,
    unpriced                   boolean NOT NULL DEFAULT false
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
    completion_version         text COLLATE "C",  -- latest completion after that start; '' = reconciled
    -- Not the seed's (contract v1's optional fields; NULL: not given): the latest start's provider
    -- and links to the session and round the request was made for; the completion's usage parts
    -- and time to the first token (reset by a later start, as the other completion fields).
    provider                   text,
    session_id                 text,
    round_id                   text,
    cache_read_tokens          bigint,
    cache_write_tokens         bigint,
    reasoning_tokens           bigint,
    time_to_first_token_ms     bigint,
    -- Not the seed's (cost, as round_metrics' cost columns; a reconciled guess is not priceable).
    cost_usd                   numeric,
    cost_source                text,
    unpriced                   boolean NOT NULL DEFAULT false
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

-- Alerts (worker/alerts/): the state of each rule and label set ('' for the rule as a whole, else
-- e.g. 'model=gpt-4'), its history of changes, and every notification it made. A notification's
-- key (rule, labels, the time its firing began, the event) is inserted in the transaction that
-- changes the state, before anything is sent: only the evaluation that inserted it sends it, so
-- two schedulers at once or a restart never send the same notification twice.
CREATE TABLE IF NOT EXISTS alert_state (
    rule                       text NOT NULL,
    labels                     text NOT NULL,
    phase                      text NOT NULL CHECK (phase IN ('ok', 'pending', 'firing')),
    since                      timestamptz NOT NULL,  -- when it entered this phase
    value                      double precision,      -- the last value measured
    samples                    bigint NOT NULL DEFAULT 0,
    severity                   text NOT NULL,
    fired_at                   timestamptz,           -- when the current firing began
    notified_at                timestamptz,           -- its last firing or repeat notification
    repeats                    integer NOT NULL DEFAULT 0,
    evaluated_at               timestamptz NOT NULL,
    PRIMARY KEY (rule, labels)
);

CREATE TABLE IF NOT EXISTS alert_history (
    id                         bigserial PRIMARY KEY,
    rule                       text NOT NULL,
    labels                     text NOT NULL,
    change                     text NOT NULL CHECK (change IN ('pending', 'firing', 'resolved', 'cleared')),
    at                         timestamptz NOT NULL,
    value                      double precision,
    samples                    bigint NOT NULL DEFAULT 0,
    threshold                  double precision NOT NULL,
    condition                  text NOT NULL           -- e.g. 'tool_error_share > 0.2 over 15m'
);
CREATE INDEX IF NOT EXISTS idx_alert_history_at ON alert_history (at);
CREATE INDEX IF NOT EXISTS idx_alert_history_rule_at ON alert_history (rule, at);

CREATE TABLE IF NOT EXISTS alert_notifications (
    key                        text NOT NULL,          -- rule, labels, firing began, event
    receiver                   text NOT NULL,
    rule                       text NOT NULL,
    labels                     text NOT NULL,
    event                      text NOT NULL CHECK (event IN ('firing', 'repeat', 'resolved')),
    created_at                 timestamptz NOT NULL,
    status                     text NOT NULL DEFAULT 'sending' CHECK (status IN ('sending', 'sent', 'failed')),
    attempts                   integer NOT NULL DEFAULT 0,
    http_status                integer,
    error                      text,                   -- the last attempt's, its URL masked
    finished_at                timestamptz,
    body                       jsonb NOT NULL,         -- the generic JSON body (README, Alerts)
    PRIMARY KEY (key, receiver)
);
CREATE INDEX IF NOT EXISTS idx_alert_notifications_created_at ON alert_notifications (created_at);

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

-- Roll-ups: what the aggregate reads (summary, by model, daily, forward summary, by endpoint,
-- forward daily) are answered from, so their cost follows the number of days x models x
-- endpoints x tools, not the length of the history. Each bucket is keyed by what those reads
-- filter and group on, as the seed's SQL does: the UTC date of the session's / tool call's /
-- forward's own started_at, the model, the session status, the endpoint, the tool name; and
-- whether reconcile closed the session, so that per-status counts can tell a guess from a real
-- completion. Only started rows count (readers do not show stubs).
--
-- Kept by deltas in the writer's own transaction: a statement-level trigger per table and
-- event sees the statement's old and new rows (transition tables) and moves each changed row's
-- contribution from its old bucket to its new one (an inserted row only adds, a deleted one only
-- subtracts). The apply engine, prune and reconcile all write through it, and a redelivered
-- batch that changes no row moves nothing. Nothing on the write path scans a base table.
--
-- No hot row: each bucket is spread over slots. A writing connection claims a slot of its own
-- for its lifetime (metrics_rollup_slot: a session advisory lock), so concurrent workers
-- update different rows of today's buckets and never wait on one another there; readers sum the
-- slots. More than 32 writing connections at once share slots 32-63 (still correct, a wait
-- possible).
CREATE TABLE IF NOT EXISTS session_rollup (
    day                        date NOT NULL,      -- UTC date of session_metrics.started_at
    model                      text NOT NULL,
    status                     text NOT NULL,
    reconciled                 boolean NOT NULL DEFAULT false,  -- session_metrics.reconciled_at IS NOT NULL
    slot                       smallint NOT NULL,
    sessions                   bigint NOT NULL DEFAULT 0,
    total_rounds               numeric NOT NULL DEFAULT 0,
    prompt_tokens              numeric NOT NULL DEFAULT 0,
    completion_tokens          numeric NOT NULL DEFAULT 0,
    total_tokens               numeric NOT NULL DEFAULT 0,
    tool_call_count            numeric NOT NULL DEFAULT 0,
    prompt_cached_tool_outputs numeric NOT NULL DEFAULT 0,
    total_compression_events   numeric NOT NULL DEFAULT 0,
    total_tokens_saved         numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (day, model, status, reconciled, slot)
) WITH (fillfactor = 70);

CREATE TABLE IF NOT EXISTS tool_rollup (
    day                        date NOT NULL,      -- UTC date of tool_call_metrics.started_at
    tool_name                  text NOT NULL,
    slot                       smallint NOT NULL,
    calls                      bigint NOT NULL DEFAULT 0,
    succeeded                  bigint NOT NULL DEFAULT 0,  -- success true
    failed                     bigint NOT NULL DEFAULT 0,  -- success false (NULL: unfinished)
    PRIMARY KEY (day, tool_name, slot)
) WITH (fillfactor = 70);

CREATE TABLE IF NOT EXISTS forward_rollup (
    day                        date NOT NULL,      -- UTC date of forward_request_metrics.started_at
    endpoint                   text NOT NULL,
    model                      text NOT NULL,
    slot                       smallint NOT NULL,
    requests                   bigint NOT NULL DEFAULT 0,
    successful                 bigint NOT NULL DEFAULT 0,  -- status 'success'
    failed                     bigint NOT NULL DEFAULT 0,  -- status 'error' (the seed's "failed")
    timed_out                  bigint NOT NULL DEFAULT 0,  -- status 'timeout'
    pending                    bigint NOT NULL DEFAULT 0,  -- status 'pending' (started, not completed)
    prompt_tokens              numeric NOT NULL DEFAULT 0,  -- NULL tokens count as 0, as SUM skips them
    completion_tokens          numeric NOT NULL DEFAULT 0,
    total_tokens               numeric NOT NULL DEFAULT 0,
    completed                  bigint NOT NULL DEFAULT 0,  -- rows with a completed_at
    duration_us                numeric NOT NULL DEFAULT 0,  -- sum of completed_at - started_at over those
    cost_usd                   numeric NOT NULL DEFAULT 0,  -- sum of the priced rows' cost_usd
    priced                     bigint NOT NULL DEFAULT 0,  -- rows with a cost_usd
    unpriced                   bigint NOT NULL DEFAULT 0,  -- rows marked unpriced (no price list knows them)
    PRIMARY KEY (day, endpoint, model, slot)
) WITH (fillfactor = 70);

-- Cost per round model, provider ('' = none given) and UTC date of the round's started_at: what
-- `query cost` and /v1/cost read by model and by day. Only priced or unpriced rounds count (a
-- round not priceable yet adds nothing). Back-filled as the other roll-ups are (entity 'rounds').
CREATE TABLE IF NOT EXISTS round_cost_rollup (
    day                        date NOT NULL,
    model                      text NOT NULL,
    provider                   text NOT NULL,
    slot                       smallint NOT NULL,
    priced                     bigint NOT NULL DEFAULT 0,
    unpriced                   bigint NOT NULL DEFAULT 0,
    cost_usd                   numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (day, model, provider, slot)
) WITH (fillfactor = 70);

-- Cost per user and UTC date of the session's started_at (sessions with a user_id): moved with
-- the session roll-up (session_rollup_move), so its back-fill covers this one too.
CREATE TABLE IF NOT EXISTS user_cost_rollup (
    day                        date NOT NULL,
    user_id                    text NOT NULL,
    slot                       smallint NOT NULL,
    cost_usd                   numeric NOT NULL DEFAULT 0,
    unpriced_rounds            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_id, slot)
) WITH (fillfactor = 70);

-- Sessions by the UTC hour of their started_at, with session_rollup's key and sums: the read of the
-- last hours, and the days not folded into session_rollup yet (latency_fold below: session_rollup
-- holds exactly the days before its folded_upto, a later day is read from its hours, as tool_rollup's
-- and forward_rollup's). Moved with session_rollup (entity 'sessions'), as are the user cost by
-- session model and by month below. A database whose session roll-up predates either (session_rollup
-- written for every day, no user cost by model) counts its sessions again from zero into all of
-- them: the back-fill writes session_rollup only for the days before the watermark, so keeping the
-- old rows would count those days twice; readers answer from session_metrics until
-- `metrics-worker schema` has back-filled them. (The tables of the newer side, if one exists, are
-- emptied with the rest, and the months counted again from the first by the next fold.)
DO $$
BEGIN
    IF (to_regclass('session_hourly') IS NULL OR to_regclass('user_model_cost_rollup') IS NULL)
       AND to_regclass('rollup_backfill') IS NOT NULL THEN
        DELETE FROM session_rollup;
        DELETE FROM user_cost_rollup;
        IF to_regclass('session_hourly') IS NOT NULL THEN
            DELETE FROM session_hourly;
        END IF;
        IF to_regclass('user_model_cost_rollup') IS NOT NULL THEN
            DELETE FROM user_model_cost_rollup;
        END IF;
        IF to_regclass('user_cost_monthly') IS NOT NULL THEN
            DELETE FROM user_cost_monthly;
            UPDATE latency_fold SET months_upto = '-infinity';
        END IF;
        UPDATE rollup_backfill SET upto = NULL, done = NOT EXISTS (SELECT 1 FROM session_metrics)
        WHERE entity = 'sessions';
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS session_hourly (
    hour                       timestamptz NOT NULL,  -- metrics_utc_hour(session_metrics.started_at)
    model                      text NOT NULL,
    status                     text NOT NULL,
    reconciled                 boolean NOT NULL DEFAULT false,
    slot                       smallint NOT NULL,
    sessions                   bigint NOT NULL DEFAULT 0,
    total_rounds               numeric NOT NULL DEFAULT 0,
    prompt_tokens              numeric NOT NULL DEFAULT 0,
    completion_tokens          numeric NOT NULL DEFAULT 0,
    total_tokens               numeric NOT NULL DEFAULT 0,
    tool_call_count            numeric NOT NULL DEFAULT 0,
    prompt_cached_tool_outputs numeric NOT NULL DEFAULT 0,
    total_compression_events   numeric NOT NULL DEFAULT 0,
    total_tokens_saved         numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, model, status, reconciled, slot)
) WITH (fillfactor = 70);

-- The user cost per session model too (the cost read's per-user model filter is the session's model):
-- what the per-user read with a model filter sums. A table beside user_cost_rollup, not a key
-- added to it: a read without the filter sums a row per day and user there, not one per model too
-- (at the read bench's 10x, 7 days' per-user cost would sum 4x the rows, taking 2.9x as long).
CREATE TABLE IF NOT EXISTS user_model_cost_rollup (
    day                        date NOT NULL,
    user_id                    text NOT NULL,
    model                      text NOT NULL,
    slot                       smallint NOT NULL,
    cost_usd                   numeric NOT NULL DEFAULT 0,
    unpriced_rounds            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_id, model, slot)
) WITH (fillfactor = 70);

-- The same by UTC month (its first day): what reads of long ranges sum for their whole months.
-- A month's rows hold its days before latency_fold.months_upto, exactly (below, at latency_fold).
CREATE TABLE IF NOT EXISTS user_cost_monthly (
    month                      date NOT NULL,
    user_id                    text NOT NULL,
    model                      text NOT NULL,
    slot                       smallint NOT NULL,
    cost_usd                   numeric NOT NULL DEFAULT 0,
    unpriced_rounds            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (month, user_id, model, slot)
) WITH (fillfactor = 70);

-- A table of the version before forward_hourly (the forwards' cost by hour and model): forward_hourly
-- holds the same sums by endpoint too, and replaces it.
DROP TABLE IF EXISTS forward_cost_hourly;

-- Forwards by the UTC hour of their started_at, endpoint and model, forward_rollup's sums: the
-- read of the last hours, and the days not folded into forward_rollup yet (as tool_hourly below is
-- for tool_rollup: latency_fold's watermark). Moved with forward_rollup (entity 'forwards'); a
-- database whose forward roll-up predates it counts its forwards again from zero into all three.
DO $$
BEGIN
    IF to_regclass('forward_hourly') IS NULL AND to_regclass('rollup_backfill') IS NOT NULL THEN
        DELETE FROM forward_rollup;
        UPDATE rollup_backfill SET upto = NULL, done = NOT EXISTS (SELECT 1 FROM forward_request_metrics)
        WHERE entity = 'forwards';
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS forward_hourly (
    hour                       timestamptz NOT NULL,  -- metrics_utc_hour(forward_request_metrics.started_at)
    endpoint                   text NOT NULL,
    model                      text NOT NULL,
    slot                       smallint NOT NULL,
    requests                   bigint NOT NULL DEFAULT 0,
    successful                 bigint NOT NULL DEFAULT 0,
    failed                     bigint NOT NULL DEFAULT 0,
    timed_out                  bigint NOT NULL DEFAULT 0,
    pending                    bigint NOT NULL DEFAULT 0,
    prompt_tokens              numeric NOT NULL DEFAULT 0,
    completion_tokens          numeric NOT NULL DEFAULT 0,
    total_tokens               numeric NOT NULL DEFAULT 0,
    completed                  bigint NOT NULL DEFAULT 0,
    duration_us                numeric NOT NULL DEFAULT 0,
    cost_usd                   numeric NOT NULL DEFAULT 0,
    priced                     bigint NOT NULL DEFAULT 0,
    unpriced                   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, endpoint, model, slot)
) WITH (fillfactor = 70);

-- Tool calls by the UTC hour of their started_at and tool name: the read of the last hours, and the
-- days not folded into tool_rollup yet (latency_fold below: tool_rollup holds exactly the days before
-- its folded_upto, a later day is read from its hours, as latency_daily's). Moved with tool_rollup
-- (entity 'tool_calls'). A database whose tool roll-up predates it (tool_rollup written for every
-- day) counts its tool calls again from zero into both: the back-fill writes tool_rollup only for
-- the days before the watermark, so keeping the old rows would count those days twice; readers
-- answer from tool_call_metrics until `metrics-worker schema` has back-filled them.
DO $$
BEGIN
    IF to_regclass('tool_hourly') IS NULL AND to_regclass('rollup_backfill') IS NOT NULL THEN
        DELETE FROM tool_rollup;
        UPDATE rollup_backfill SET upto = NULL, done = NOT EXISTS (SELECT 1 FROM tool_call_metrics)
        WHERE entity = 'tool_calls';
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS tool_hourly (
    hour                       timestamptz NOT NULL,  -- metrics_utc_hour(tool_call_metrics.started_at)
    tool_name                  text NOT NULL,
    slot                       smallint NOT NULL,
    calls                      bigint NOT NULL DEFAULT 0,
    succeeded                  bigint NOT NULL DEFAULT 0,  -- success true
    failed                     bigint NOT NULL DEFAULT 0,  -- success false (NULL: unfinished)
    PRIMARY KEY (hour, tool_name, slot)
) WITH (fillfactor = 70);

-- Which base rows the roll-ups count. A database created with the roll-ups counts everything
-- (done); one written by a version without them counts the rows whose key is <= upto, and
-- `metrics-worker schema` back-fills the rest a chunk at a time (worker/rollups.py). Until an
-- entity is done, readers answer from its base table.
CREATE TABLE IF NOT EXISTS rollup_backfill (
    entity                     text PRIMARY KEY CONSTRAINT rollup_backfill_entity_check
        CHECK (entity IN ('sessions', 'tool_calls', 'forwards', 'rounds', 'round_hourly', 'tool_latency',
                          'forward_latency')),
    done                       boolean NOT NULL,
    upto                       text               -- in the key column's collation: its index's order
);
-- A database of a version whose back-fill knew fewer entities (three before cost and the hourly
-- roll-ups): it learns every one of today's, whichever it knew (each is looked for by its quoted name).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'rollup_backfill'::regclass
                   AND conname = 'rollup_backfill_entity_check'
                   AND pg_get_constraintdef(oid) LIKE '%''rounds''%'
                   AND pg_get_constraintdef(oid) LIKE '%''round_hourly''%'
                   AND pg_get_constraintdef(oid) LIKE '%''tool_latency''%'
                   AND pg_get_constraintdef(oid) LIKE '%''forward_latency''%') THEN
        ALTER TABLE rollup_backfill DROP CONSTRAINT IF EXISTS rollup_backfill_entity_check,
            ADD CONSTRAINT rollup_backfill_entity_check CHECK (entity IN (
                'sessions', 'tool_calls', 'forwards', 'rounds', 'round_hourly', 'tool_latency',
                'forward_latency'));
    END IF;
END $$;
INSERT INTO rollup_backfill
SELECT 'sessions', NOT EXISTS (SELECT 1 FROM session_metrics), NULL
UNION ALL SELECT 'tool_calls', NOT EXISTS (SELECT 1 FROM tool_call_metrics), NULL
UNION ALL SELECT 'forwards', NOT EXISTS (SELECT 1 FROM forward_request_metrics), NULL
UNION ALL SELECT 'rounds', NOT EXISTS (SELECT 1 FROM round_metrics), NULL
ON CONFLICT (entity) DO NOTHING;

-- The tool roll-up of a database written by a version that counted calls only: add the outcome
-- columns and count it again from zero (readers use the base table until the back-fill is done).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'tool_rollup'::regclass AND attname = 'failed') THEN
        ALTER TABLE tool_rollup ADD COLUMN succeeded bigint NOT NULL DEFAULT 0,
                                ADD COLUMN failed bigint NOT NULL DEFAULT 0;
        DELETE FROM tool_rollup;
        DELETE FROM tool_hourly;  -- moved with it (one back-fill entity)
        UPDATE rollup_backfill SET upto = NULL, done = NOT EXISTS (SELECT 1 FROM tool_call_metrics)
        WHERE entity = 'tool_calls';
    END IF;
END $$;

-- The session roll-up of a database written by a version that did not mark reconciled sessions:
-- no session was marked then, so every bucket it holds is a reconciled = false one, as it stays.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'session_rollup'::regclass AND attname = 'reconciled') THEN
        ALTER TABLE session_rollup ADD COLUMN reconciled boolean NOT NULL DEFAULT false,
                                   DROP CONSTRAINT session_rollup_pkey,
                                   ADD PRIMARY KEY (day, model, status, reconciled, slot);
    END IF;
END $$;

-- This connection's slot: the first of 0-31 it can hold a session advisory lock on (kept until
-- it disconnects; remembered in a setting, and found again in pg_locks after a rollback undid
-- the setting), else a shared one.
CREATE OR REPLACE FUNCTION metrics_rollup_slot() RETURNS smallint LANGUAGE plpgsql AS $$
DECLARE
    claimed int := NULLIF(current_setting('metrics.rollup_slot', true), '')::int;
BEGIN
    IF claimed IS NOT NULL THEN
        RETURN claimed;
    END IF;
    SELECT objid::int INTO claimed FROM pg_locks
    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = 1919904876::oid AND objsubid = 2
    ORDER BY objid LIMIT 1;
    IF claimed IS NULL THEN
        FOR candidate IN 0..31 LOOP
            IF pg_try_advisory_lock(1919904876, candidate) THEN
                claimed := candidate;
                EXIT;
            END IF;
        END LOOP;
    END IF;
    claimed := COALESCE(claimed, 32 + pg_backend_pid() % 32);
    PERFORM set_config('metrics.rollup_slot', claimed::text, false);
    RETURN claimed;
END $$;

-- The key below which an entity's rows are counted, or NULL for all of them. While a back-fill
-- runs, a writer takes the entity's back-fill lock shared, so a chunk's count and a writer's
-- delta for the same row are serialised (worker/rollups.py explains why that is exact).
CREATE OR REPLACE FUNCTION metrics_rollup_counted_upto(which text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    b rollup_backfill%ROWTYPE;
BEGIN
    SELECT * INTO b FROM rollup_backfill WHERE entity = which;
    IF b.done THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(1919904877, hashtext(which));
    SELECT * INTO b FROM rollup_backfill WHERE entity = which;
    RETURN CASE WHEN b.done THEN NULL ELSE COALESCE(b.upto, '') END;
END $$;

-- The apply engine's guard (worker/engine/sql.py, cost_sql.py): a batch sent without reading its
-- costs back met a row that does not end as it was priced before sending. The transaction stops;
-- the worker sends the batch again with the read-back (worker/engine/apply.py knows this SQLSTATE).
CREATE OR REPLACE FUNCTION metrics_price_missed(kind text, key text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'MP001',
        MESSAGE = format('%s %s does not end as it was priced before sending: price it under the row lock', kind, key);
END $$;

-- The monthly user cost (user_cost_monthly) of the sessions whose UTC day is before
-- ``months_before`` (latency_fold.months_upto: late updates, prune, back-fill of old sessions). The
-- caller, session_rollup_move, holds the fold's lock shared and read the watermark in a later
-- statement (latency_fold says why), and calls it only when it wrote a day that old.
DROP FUNCTION IF EXISTS user_cost_monthly_move(anyarray, anyarray, text, date);
CREATE OR REPLACE FUNCTION user_cost_monthly_move(plus anyarray, minus anyarray, upto text, months_before date)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_cost_monthly AS r (month, user_id, model, slot, cost_usd, unpriced_rounds)
    SELECT * FROM (
        SELECT date_trunc('month', c.started_at AT TIME ZONE 'UTC')::date AS month, c.user_id, c.model,
               metrics_rollup_slot() AS slot, sum(c.sign * c.cost_usd) AS cost_usd,
               sum(c.sign * c.unpriced_rounds) AS unpriced_rounds
        FROM (SELECT 1 AS sign, p.* FROM unnest(plus) AS p
              UNION ALL
              SELECT -1, m.* FROM unnest(minus) AS m) AS c
        WHERE c.started_at < months_before::timestamp AT TIME ZONE 'UTC' AND c.user_id IS NOT NULL
          AND (upto IS NULL OR c.session_id <= upto)
        GROUP BY 1, 2, 3
    ) AS d
    WHERE (d.cost_usd, d.unpriced_rounds) <> (0, 0)
    ORDER BY 1, 2, 3
    ON CONFLICT (month, user_id, model, slot) DO UPDATE SET
        cost_usd = r.cost_usd + EXCLUDED.cost_usd,
        unpriced_rounds = r.unpriced_rounds + EXCLUDED.unpriced_rounds;
END $$;

-- Add the contributions of ``plus`` and subtract those of ``minus`` (rows of the base table),
-- one upsert per roll-up, buckets in key order. ``upto``: count only keys <= it (NULL: all).
-- The arrays are polymorphic so that no function depends on a base table's row type (a table
-- dropped by mistake can be dropped, and `metrics-worker schema` creates it again).
-- session_hourly always; session_rollup holds the days before latency_fold's watermark, so only a
-- move whose hours reach before it (a session of a folded day that changed, prune, reconcile, the
-- back-fill of old rows) writes it, in a second statement: the hours it wrote say whether any did.
CREATE OR REPLACE FUNCTION session_rollup_move(plus anyarray, minus anyarray, upto text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    my_slot smallint := metrics_rollup_slot();
    folded_before timestamptz;
    months_before date;  -- latency_fold.months_upto: user_cost_monthly holds the days before it
    oldest timestamptz;
    oldest_day date;  -- the first day whose user cost by model the move wrote
BEGIN
    -- latency_fold: the lock first, the watermarks in a later statement (its own snapshot, taken
    -- after any fold holding the lock has committed).
    PERFORM pg_advisory_xact_lock_shared(1919904877, 'latency_fold'::regclass::oid::int);
    SELECT f.folded_upto::timestamp AT TIME ZONE 'UTC', f.months_upto INTO folded_before, months_before
    FROM latency_fold AS f;
    WITH hourly AS (
        INSERT INTO session_hourly AS r (
            hour, model, status, reconciled, slot, sessions, total_rounds, prompt_tokens, completion_tokens,
            total_tokens, tool_call_count, prompt_cached_tool_outputs, total_compression_events, total_tokens_saved)
        SELECT * FROM (
            SELECT metrics_utc_hour(c.started_at) AS hour, c.model, c.status,
                   c.reconciled_at IS NOT NULL AS reconciled, my_slot,
                   sum(c.sign) AS sessions, sum(c.sign * c.total_rounds) AS total_rounds,
                   sum(c.sign * c.prompt_tokens) AS prompt_tokens, sum(c.sign * c.completion_tokens) AS completion_tokens,
                   sum(c.sign * c.total_tokens) AS total_tokens, sum(c.sign * c.tool_call_count) AS tool_call_count,
                   sum(c.sign * c.prompt_cached_tool_outputs) AS pcto,
                   sum(c.sign * c.total_compression_events) AS compressions,
                   sum(c.sign * c.total_tokens_saved) AS tokens_saved
            FROM (SELECT 1 AS sign, p.* FROM unnest(plus) AS p
                  UNION ALL
                  SELECT -1, m.* FROM unnest(minus) AS m) AS c
            WHERE c.started_at IS NOT NULL AND (upto IS NULL OR c.session_id <= upto)
            GROUP BY 1, 2, 3, 4
        ) AS d
        WHERE (d.sessions, d.total_rounds, d.prompt_tokens, d.completion_tokens, d.total_tokens, d.tool_call_count,
               d.pcto, d.compressions, d.tokens_saved) <> (0, 0, 0, 0, 0, 0, 0, 0, 0)
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (hour, model, status, reconciled, slot) DO UPDATE SET
            sessions = r.sessions + EXCLUDED.sessions,
            total_rounds = r.total_rounds + EXCLUDED.total_rounds,
            prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,
            completion_tokens = r.completion_tokens + EXCLUDED.completion_tokens,
            total_tokens = r.total_tokens + EXCLUDED.total_tokens,
            tool_call_count = r.tool_call_count + EXCLUDED.tool_call_count,
            prompt_cached_tool_outputs = r.prompt_cached_tool_outputs + EXCLUDED.prompt_cached_tool_outputs,
            total_compression_events = r.total_compression_events + EXCLUDED.total_compression_events,
            total_tokens_saved = r.total_tokens_saved + EXCLUDED.total_tokens_saved
        RETURNING r.hour
    )
    SELECT min(h.hour) INTO oldest FROM hourly AS h;
    -- a day's bucket moves only if one of its hours did (the day is the sum of its hours)
    IF oldest < folded_before THEN
        INSERT INTO session_rollup AS r (
            day, model, status, reconciled, slot, sessions, total_rounds, prompt_tokens, completion_tokens,
            total_tokens, tool_call_count, prompt_cached_tool_outputs, total_compression_events, total_tokens_saved)
        SELECT * FROM (
            SELECT (c.started_at AT TIME ZONE 'UTC')::date AS day, c.model, c.status,
                   c.reconciled_at IS NOT NULL AS reconciled, my_slot,
                   sum(c.sign) AS sessions, sum(c.sign * c.total_rounds) AS total_rounds,
                   sum(c.sign * c.prompt_tokens) AS prompt_tokens, sum(c.sign * c.completion_tokens) AS completion_tokens,
                   sum(c.sign * c.total_tokens) AS total_tokens, sum(c.sign * c.tool_call_count) AS tool_call_count,
                   sum(c.sign * c.prompt_cached_tool_outputs) AS pcto,
                   sum(c.sign * c.total_compression_events) AS compressions,
                   sum(c.sign * c.total_tokens_saved) AS tokens_saved
            FROM (SELECT 1 AS sign, p.* FROM unnest(plus) AS p
                  UNION ALL
                  SELECT -1, m.* FROM unnest(minus) AS m) AS c
            WHERE c.started_at < folded_before AND (upto IS NULL OR c.session_id <= upto)
            GROUP BY 1, 2, 3, 4
        ) AS d
        WHERE (d.sessions, d.total_rounds, d.prompt_tokens, d.completion_tokens, d.total_tokens, d.tool_call_count,
               d.pcto, d.compressions, d.tokens_saved) <> (0, 0, 0, 0, 0, 0, 0, 0, 0)
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (day, model, status, reconciled, slot) DO UPDATE SET
            sessions = r.sessions + EXCLUDED.sessions,
            total_rounds = r.total_rounds + EXCLUDED.total_rounds,
            prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,
            completion_tokens = r.completion_tokens + EXCLUDED.completion_tokens,
            total_tokens = r.total_tokens + EXCLUDED.total_tokens,
            tool_call_count = r.tool_call_count + EXCLUDED.tool_call_count,
            prompt_cached_tool_outputs = r.prompt_cached_tool_outputs + EXCLUDED.prompt_cached_tool_outputs,
            total_compression_events = r.total_compression_events + EXCLUDED.total_compression_events,
            total_tokens_saved = r.total_tokens_saved + EXCLUDED.total_tokens_saved;
    END IF;
    -- The user cost: per day, user and session model, and per day and user summed from those (the
    -- rows unnested once); then the months, for days before latency_fold.months_upto only.
    WITH c AS MATERIALIZED (
        SELECT (s.started_at AT TIME ZONE 'UTC')::date AS day, s.user_id, s.model,
               sum(s.sign * s.cost_usd) AS cost_usd, sum(s.sign * s.unpriced_rounds) AS unpriced_rounds
        FROM (SELECT 1 AS sign, p.* FROM unnest(plus) AS p
              UNION ALL
              SELECT -1, m.* FROM unnest(minus) AS m) AS s
        WHERE s.started_at IS NOT NULL AND s.user_id IS NOT NULL AND (upto IS NULL OR s.session_id <= upto)
        GROUP BY 1, 2, 3
    ), by_model AS (
        INSERT INTO user_model_cost_rollup AS r (day, user_id, model, slot, cost_usd, unpriced_rounds)
        SELECT c.day, c.user_id, c.model, my_slot, c.cost_usd, c.unpriced_rounds
        FROM c
        WHERE (c.cost_usd, c.unpriced_rounds) <> (0, 0)
        ORDER BY 1, 2, 3
        ON CONFLICT (day, user_id, model, slot) DO UPDATE SET
            cost_usd = r.cost_usd + EXCLUDED.cost_usd,
            unpriced_rounds = r.unpriced_rounds + EXCLUDED.unpriced_rounds
        RETURNING r.day
    ), by_user AS (
        INSERT INTO user_cost_rollup AS r (day, user_id, slot, cost_usd, unpriced_rounds)
        SELECT * FROM (
            SELECT c.day, c.user_id, my_slot, sum(c.cost_usd) AS cost_usd, sum(c.unpriced_rounds) AS unpriced_rounds
            FROM c
            GROUP BY 1, 2
        ) AS d
        WHERE (d.cost_usd, d.unpriced_rounds) <> (0, 0)
        ORDER BY 1, 2
        ON CONFLICT (day, user_id, slot) DO UPDATE SET
            cost_usd = r.cost_usd + EXCLUDED.cost_usd,
            unpriced_rounds = r.unpriced_rounds + EXCLUDED.unpriced_rounds
    )
    SELECT min(b.day) INTO oldest_day FROM by_model AS b;
    IF oldest_day < months_before THEN
        PERFORM user_cost_monthly_move(plus, minus, upto, months_before);
    END IF;
END $$;

-- A base table without its roll-up trigger is new: created just now (a fresh database, a
-- database of the previous version, or a table dropped by mistake that `metrics-worker schema`
-- creates again). Whatever its roll-up held is no longer counted by it: start it from zero,
-- done if the table is empty, else to be back-filled.
DO $$
DECLARE
    e record;
BEGIN
    FOR e IN SELECT * FROM (VALUES ('sessions', 'session_metrics', 'session_rollup', 'session_rollup_delete'),
                                   ('tool_calls', 'tool_call_metrics', 'tool_rollup', 'tool_rollups_delete'),
                                   ('forwards', 'forward_request_metrics', 'forward_rollup', 'forward_rollups_delete'),
                                   ('rounds', 'round_metrics', 'round_cost_rollup', 'round_rollups_delete'))
                      AS t(entity, base, rollup, merged)
    LOOP
        -- its trigger: the one feeding every roll-up of the table (below), or the version before's own
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = e.base::regclass
                       AND tgname IN (e.merged, e.rollup || '_delete')) THEN
            EXECUTE format('DELETE FROM %I', e.rollup);
            EXECUTE format('UPDATE rollup_backfill SET upto = NULL, done = NOT EXISTS (SELECT 1 FROM %I) WHERE entity = %L',
                           e.base, e.entity);
            IF e.entity = 'sessions' THEN
                DELETE FROM user_cost_rollup;  -- moved with the session roll-up
                DELETE FROM session_hourly;  -- moved with the session roll-up
                DELETE FROM user_model_cost_rollup;
                DELETE FROM user_cost_monthly;
            ELSIF e.entity = 'tool_calls' THEN
                DELETE FROM tool_hourly;  -- moved with the tool roll-up
            ELSIF e.entity = 'forwards' THEN
                DELETE FROM forward_hourly;  -- moved with the forward roll-up
            END IF;
        END IF;
    END LOOP;
END $$;

-- The triggers: one per table and event (PostgreSQL allows transition tables on one event only),
-- one function per table; the other base tables' come after the hourly roll-ups below, which they
-- feed too (one trigger per table for all its roll-ups). Only started rows count: a statement that touched none (a stub, a lock
-- taken with DO UPDATE ... WHERE false) ends here. A bucket whose deltas sum to zero (a
-- session's update that moved no figure, say) is not written.
CREATE OR REPLACE FUNCTION session_rollup_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    plus session_metrics[] := '{}';
    minus session_metrics[] := '{}';
BEGIN
    IF TG_OP = 'INSERT' THEN
        plus := ARRAY(SELECT (n.*)::session_metrics FROM new_rows n WHERE n.started_at IS NOT NULL);
    ELSIF TG_OP = 'DELETE' THEN
        minus := ARRAY(SELECT (o.*)::session_metrics FROM old_rows o WHERE o.started_at IS NOT NULL);
    ELSE
        plus := ARRAY(SELECT (n.*)::session_metrics FROM new_rows n WHERE n.started_at IS NOT NULL);
        minus := ARRAY(SELECT (o.*)::session_metrics FROM old_rows o WHERE o.started_at IS NOT NULL);
    END IF;
    IF cardinality(plus) + cardinality(minus) > 0 THEN
        PERFORM session_rollup_move(plus, minus, metrics_rollup_counted_upto('sessions'));
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER session_rollup_insert AFTER INSERT ON session_metrics
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION session_rollup_trigger();
CREATE OR REPLACE TRIGGER session_rollup_update AFTER UPDATE ON session_metrics
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION session_rollup_trigger();
CREATE OR REPLACE TRIGGER session_rollup_delete AFTER DELETE ON session_metrics
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION session_rollup_trigger();

-- A database written by a version without reconciled_at: add it; the sessions that version's
-- reconcile closed are marked at the end of this file (metrics.mark_reconciled, this transaction's),
-- once every table, column and function the session roll-up's trigger reads exists (the release
-- 0.1.0 has none of them: tests/engine/test_upgrade_release.py).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'session_metrics'::regclass AND attname = 'reconciled_at') THEN
        ALTER TABLE session_metrics ADD COLUMN reconciled_at timestamptz;
        PERFORM set_config('metrics.mark_reconciled', 'on', true);
    END IF;
END $$;

-- A database written by a version without contract v1's optional fields: add their columns (NULL
-- in the rows already there: not reported; the session sums start at 0, what those rows add up to).
-- Checked first, so that a database that has them takes no table lock here.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'session_metrics'::regclass AND attname = 'reasoning_tokens') THEN
        ALTER TABLE session_metrics ADD COLUMN IF NOT EXISTS user_id text,
                                    ADD COLUMN IF NOT EXISTS cache_read_tokens bigint NOT NULL DEFAULT 0,
                                    ADD COLUMN IF NOT EXISTS cache_write_tokens bigint NOT NULL DEFAULT 0,
                                    ADD COLUMN IF NOT EXISTS reasoning_tokens bigint NOT NULL DEFAULT 0;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'round_metrics'::regclass AND attname = 'time_to_first_token_ms') THEN
        ALTER TABLE round_metrics ADD COLUMN IF NOT EXISTS provider text,
                                  ADD COLUMN IF NOT EXISTS cache_read_tokens bigint,
                                  ADD COLUMN IF NOT EXISTS cache_write_tokens bigint,
                                  ADD COLUMN IF NOT EXISTS reasoning_tokens bigint,
                                  ADD COLUMN IF NOT EXISTS time_to_first_token_ms bigint;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'forward_request_metrics'::regclass AND attname = 'time_to_first_token_ms') THEN
        ALTER TABLE forward_request_metrics ADD COLUMN IF NOT EXISTS provider text,
                                            ADD COLUMN IF NOT EXISTS session_id text,
                                            ADD COLUMN IF NOT EXISTS round_id text,
                                            ADD COLUMN IF NOT EXISTS cache_read_tokens bigint,
                                            ADD COLUMN IF NOT EXISTS cache_write_tokens bigint,
                                            ADD COLUMN IF NOT EXISTS reasoning_tokens bigint,
                                            ADD COLUMN IF NOT EXISTS time_to_first_token_ms bigint;
    END IF;
END $$;

-- A session's forwards (its detail, forgetting it) and a user's sessions: only linked rows indexed.
CREATE INDEX IF NOT EXISTS idx_forward_session ON forward_request_metrics (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_session_user ON session_metrics (user_id) WHERE user_id IS NOT NULL;

-- A database written by a version without cost: add its columns. No row there is priced (cost_usd
-- NULL, unpriced false, the sums 0), which is what the roll-ups counted: they stay exact, and
-- `metrics-worker reprice` prices the old rows through the triggers.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'session_metrics'::regclass AND attname = 'unpriced_rounds') THEN
        ALTER TABLE session_metrics ADD COLUMN IF NOT EXISTS cost_usd numeric NOT NULL DEFAULT 0,
                                    ADD COLUMN IF NOT EXISTS unpriced_rounds bigint NOT NULL DEFAULT 0;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'round_metrics'::regclass AND attname = 'unpriced') THEN
        ALTER TABLE round_metrics ADD COLUMN IF NOT EXISTS cost_usd numeric,
                                  ADD COLUMN IF NOT EXISTS cost_source text,
                                  ADD COLUMN IF NOT EXISTS unpriced boolean NOT NULL DEFAULT false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'forward_request_metrics'::regclass AND attname = 'unpriced') THEN
        ALTER TABLE forward_request_metrics ADD COLUMN IF NOT EXISTS cost_usd numeric,
                                            ADD COLUMN IF NOT EXISTS cost_source text,
                                            ADD COLUMN IF NOT EXISTS unpriced boolean NOT NULL DEFAULT false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'forward_rollup'::regclass AND attname = 'unpriced') THEN
        ALTER TABLE forward_rollup ADD COLUMN IF NOT EXISTS cost_usd numeric NOT NULL DEFAULT 0,
                                   ADD COLUMN IF NOT EXISTS priced bigint NOT NULL DEFAULT 0,
                                   ADD COLUMN IF NOT EXISTS unpriced bigint NOT NULL DEFAULT 0;
    END IF;
END $$;

-- The cost read's top sessions (ORDER BY cost_usd DESC LIMIT n over a date range) walk this in cost
-- order instead of sorting every session of the range: 357 -> 2.7 ms for 7 days at the read bench's
-- 10x; what it costs the apply, paired in-process (30k events, 3 runs): 0.965-0.985x.
CREATE INDEX IF NOT EXISTS idx_session_cost ON session_metrics (cost_usd DESC, session_id COLLATE "C")
    WHERE cost_usd <> 0 OR unpriced_rounds <> 0;

-- Hourly roll-ups and latency histograms: the reads of the last hours (hourly series of rounds,
-- errors, tokens) and the latency percentiles of any range (worker/read/queries/latency.py).
-- Kept as the roll-ups above (slots, statement triggers with transition tables, a back-fill per
-- entity), by hour: the UTC hour a round, tool call or forward started in; a day is the sum of its
-- 24 hours.
--
-- The bucket rule (worker/engine/histogram.py, held equal to this function by its tests): a
-- duration of ms > 0 milliseconds goes to bucket ceil(ln(ms) * 32 / ln 2), whose representative
-- 2 * 2^(i/32) / (2^(1/32) + 1) is within 1.083% of every value in it; ms <= 0 to bucket -321
-- (value 0: every bucket is an integer of -321..1280, so a histogram is a dense array). A percentile of a range is the representative of the bucket holding percentile_disc's
-- answer over the same rows: within 1.083% of it.
CREATE OR REPLACE FUNCTION metrics_latency_bucket(ms double precision) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN ms = 'NaN' THEN NULL
        WHEN ms <= 0 THEN -321
        WHEN ms >= 1099511627776 THEN 1280
        WHEN ms <= 0.0009765625 THEN -320
        ELSE ceil(ln(ms) * 46.16624130844683::float8)::int
    END
$$;

-- The UTC hour a timestamp falls in (what the hourly roll-ups are keyed by).
CREATE OR REPLACE FUNCTION metrics_utc_hour(at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT date_trunc('hour', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- Rounds by the UTC hour of round_metrics.started_at and model: what the hourly series read.
CREATE TABLE IF NOT EXISTS round_hourly (
    hour                       timestamptz NOT NULL,  -- metrics_utc_hour(started_at)
    model                      text COLLATE "C" NOT NULL,
    slot                       smallint NOT NULL,
    rounds                     bigint NOT NULL DEFAULT 0,
    errors                     bigint NOT NULL DEFAULT 0,   -- status 'error' (reconcile's included)
    prompt_tokens              numeric NOT NULL DEFAULT 0,
    completion_tokens          numeric NOT NULL DEFAULT 0,
    total_tokens               numeric NOT NULL DEFAULT 0,
    cost_usd                   numeric NOT NULL DEFAULT 0,  -- sum of the priced rounds' cost_usd
    unpriced                   bigint NOT NULL DEFAULT 0,   -- rounds marked unpriced (never $0)
    priced                     bigint NOT NULL DEFAULT 0,   -- rounds with a cost_usd
    PRIMARY KEY (hour, model, slot)
) WITH (fillfactor = 70);

-- Latency histograms: how many durations of each metric fell in each bucket, by the UTC hour the
-- measured thing started in and its name, and the same by UTC day (so that a read of days sums one
-- row per day, not 24: latency_fold below says which days latency_daily holds). Metrics:
-- round_duration and round_ttft (name: the model), tool_duration (the tool name), forward_duration
-- and forward_ttft (the endpoint). A duration is completed_at - started_at (a completion before its
-- start counts as 0 ms); one that reconcile guessed (a round or forward it closed) is not counted;
-- a time to first token is the completion's time_to_first_token_ms.
--
-- A row is one histogram, dense: counts[k] durations fell in bucket lo + k - 1. A statement's
-- deltas are folded per key and added once (metrics_histogram_add). int4 counts: the widest row
-- (buckets -321..1280) is 6.4 kB, kept inline (toast_tuple_target: never compressed or moved out),
-- and a count per slot, key and bucket stays far under 2^31.
-- A database whose latency_hourly kept a row per bucket (the version before the dense arrays): it
-- goes, and the latencies are counted again from zero into the arrays (with the hourly rounds:
-- one back-fill entity, 'round_hourly'); readers answer from the base tables until `metrics-worker
-- schema` has back-filled them.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('latency_hourly')
               AND attname = 'bucket' AND NOT attisdropped) THEN
        DROP TABLE latency_hourly;
        DELETE FROM round_hourly;
        UPDATE rollup_backfill SET upto = NULL, done = CASE entity
            WHEN 'round_hourly' THEN NOT EXISTS (SELECT 1 FROM round_metrics)
            WHEN 'tool_latency' THEN NOT EXISTS (SELECT 1 FROM tool_call_metrics)
            ELSE NOT EXISTS (SELECT 1 FROM forward_request_metrics) END
        WHERE entity IN ('round_hourly', 'tool_latency', 'forward_latency');
    END IF;
END $$;

-- A histogram's counts as 4-byte big-endian ints one after another (int4[]'s binary form less its
-- header and the length before each element): what the reads of hours send of a compacted hour.
CREATE OR REPLACE FUNCTION metrics_histogram_raw(counts int[]) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT COALESCE(string_agg(int4send(u.n), ''::bytea ORDER BY u.k), ''::bytea)
    FROM unnest(counts) WITH ORDINALITY AS u(n, k)
$$;

CREATE TABLE IF NOT EXISTS latency_hourly (
    hour                       timestamptz NOT NULL,  -- metrics_utc_hour(started_at)
    metric                     text COLLATE "C" NOT NULL CHECK (metric IN (
        'round_duration', 'round_ttft', 'tool_duration', 'forward_duration', 'forward_ttft')),
    name                       text COLLATE "C" NOT NULL,
    slot                       smallint NOT NULL,
    lo                         int NOT NULL,          -- the bucket of counts[1] (metrics_latency_bucket)
    counts                     int[] NOT NULL,        -- counts[k]: durations in bucket lo + k - 1
    -- counts as the latency reads send them (metrics_histogram_raw), kept by the fold's compaction
    -- of a closed hour; NULL until then, and again after any later write (the moves set it NULL)
    raw                        bytea CONSTRAINT latency_hourly_raw
        CHECK (raw IS NULL OR raw = metrics_histogram_raw(counts)),
    PRIMARY KEY (hour, metric, name, slot)
) WITH (fillfactor = 70, toast_tuple_target = 8160);

-- A closed hour, compacted (worker/maintenance/compact.py, run by the fold): one row per metric and
-- name, in slot 0, with ``raw``, its counts as the reads of hours send them: the read sends those
-- bytes as they are (no array_send, an int4send call per element, and half the bytes of its form),
-- and reads one row per hour whatever the number of workers. ``raw`` is NULL on every row a move
-- writes (a late write into a compacted hour sets it NULL on the row it adds to, or adds a row in
-- its own slot): the read packs such rows itself, and the next fold compacts the hour again. The
-- check keeps ``raw`` what ``counts`` say, so a write that changed counts and forgot ``raw`` fails
-- instead of reading wrong. A database of the version before: the column is added (NULL everywhere:
-- every row packed by the read, as before, until the fold compacts the last days' closed hours).
-- Checked first: no table lock when it is there.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'latency_hourly'::regclass AND attname = 'raw') THEN
        ALTER TABLE latency_hourly ADD COLUMN IF NOT EXISTS raw bytea CONSTRAINT latency_hourly_raw
            CHECK (raw IS NULL OR raw = metrics_histogram_raw(counts));
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS latency_daily (
    day                        date NOT NULL,         -- UTC date of started_at
    metric                     text COLLATE "C" NOT NULL CHECK (metric IN (
        'round_duration', 'round_ttft', 'tool_duration', 'forward_duration', 'forward_ttft')),
    name                       text COLLATE "C" NOT NULL,
    slot                       smallint NOT NULL,
    lo                         int NOT NULL,
    counts                     int[] NOT NULL,
    -- counts as the latency reads send them (metrics_histogram_raw), written by the fold for the
    -- days it writes (slot 0); NULL on every row a move writes or adds to, as latency_hourly.raw
    raw                        bytea CONSTRAINT latency_daily_raw
        CHECK (raw IS NULL OR raw = metrics_histogram_raw(counts)),
    PRIMARY KEY (day, metric, name, slot)
) WITH (fillfactor = 70, toast_tuple_target = 8160);

-- A folded day's rows keep ``raw`` as a compacted hour does (the read of dates sends those bytes as
-- they are: no array_send over a week's elements). A database of the version before: the column is
-- added and filled for the rows already there (a few per day and name: the days folded before are
-- sent as stored too). Checked first: no table lock when it is there.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'latency_daily'::regclass AND attname = 'raw') THEN
        ALTER TABLE latency_daily ADD COLUMN IF NOT EXISTS raw bytea CONSTRAINT latency_daily_raw
            CHECK (raw IS NULL OR raw = metrics_histogram_raw(counts));
        UPDATE latency_daily SET raw = metrics_histogram_raw(counts);
    END IF;
END $$;

-- Which days latency_daily holds: every day before folded_upto, exactly; from folded_upto on, a
-- day is read from latency_hourly (its rows in latency_daily, if any, are ignored). The roll-up
-- moves always write latency_hourly, and latency_daily only for days before folded_upto (late
-- events, prune, reconcile, back-fill of old rows); the fold (worker/maintenance/fold.py, hourly
-- from the scheduler, or `metrics-worker fold`) replaces the rows of the days from folded_upto up to
-- yesterday by the sums of their hours, in one slot, and moves folded_upto on. Both take the
-- advisory lock (1919904877, the oid of latency_fold: one per schema): the moves shared, then read
-- folded_upto in a later statement; the fold exclusive, then reads and writes in later statements.
-- So every move that wrote a day's hours without its day has committed before the fold sums them,
-- and every later one sees the new folded_upto. Only the fold moves folded_upto on; moving it back
-- (under the lock) is safe too: those days are read from their hours again, and refolded.
-- On a new database (latency_daily empty) nothing is folded: '-infinity', every day read from its
-- hours until the first fold. On one of the version that wrote both tables in every move: the
-- current UTC date, so the days before it are read from latency_daily (complete), today's from
-- latency_hourly, and the first fold replaces (never adds to) what that version wrote for today
-- or later. tool_rollup and tool_hourly, forward_rollup and forward_hourly, session_rollup and
-- session_hourly follow the same watermark, lock and fold (one fold for all).
CREATE TABLE IF NOT EXISTS latency_fold (
    one                        boolean PRIMARY KEY DEFAULT true CHECK (one),
    folded_upto                date NOT NULL
);
INSERT INTO latency_fold (folded_upto)
SELECT CASE WHEN EXISTS (SELECT 1 FROM latency_daily) THEN (now() AT TIME ZONE 'UTC')::date ELSE '-infinity' END
ON CONFLICT (one) DO NOTHING;

-- user_cost_monthly's own watermark: a month's rows hold the sessions of its days before
-- months_upto, exactly; later days are read from user_cost_rollup (user_model_cost_rollup with a
-- model filter). The session moves write user_cost_monthly only for days before it
-- (session_rollup_move, under the same lock, shared), and the fold, after moving folded_upto,
-- recounts the months between months_upto and folded_upto from user_model_cost_rollup (one slot)
-- and sets months_upto to folded_upto. A watermark of its own, so that moving folded_upto back
-- leaves the monthly rows exact (none of their days is written to them twice). '-infinity'
-- (nothing monthly) on a new database, on one of the version without user_cost_monthly, and on
-- one whose latency_fold is new (whatever user_cost_monthly held goes), until the next fold.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'latency_fold'::regclass
                   AND attname = 'months_upto' AND NOT attisdropped) THEN
        ALTER TABLE latency_fold ADD COLUMN months_upto date NOT NULL DEFAULT '-infinity';
        DELETE FROM user_cost_monthly;
    END IF;
END $$;

-- A dense histogram from a statement's folded deltas: buckets lo..hi (distinct) and their counts, in
-- any order.
DROP FUNCTION IF EXISTS metrics_histogram(int, int[], int[]);
CREATE OR REPLACE FUNCTION metrics_histogram(lo int, hi int, buckets int[], ns int[]) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    out int[] := array_fill(0, ARRAY[hi - lo + 1]);
BEGIN
    FOR k IN 1..cardinality(buckets) LOOP
        out[buckets[k] - lo + 1] := ns[k];
    END LOOP;
    RETURN out;
END $$;

-- Two dense histograms added: a from bucket lo_a, b from lo_b; the sum starts at LEAST(lo_a, lo_b).
CREATE OR REPLACE FUNCTION metrics_histogram_add(lo_a int, a int[], lo_b int, b int[]) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    lo int := LEAST(lo_a, lo_b);
    out int[];
    k int := lo_b - LEAST(lo_a, lo_b);  -- out's index of b's bucket, before the next one
    n int;
BEGIN
    IF lo_a = lo AND lo_a + cardinality(a) >= lo_b + cardinality(b) THEN
        out := a;
    ELSE
        out := array_fill(0, ARRAY[GREATEST(lo_a + cardinality(a), lo_b + cardinality(b)) - lo]);
        out[lo_a - lo + 1:lo_a - lo + cardinality(a)] := a;
    END IF;
    -- a statement's delta is sparse (most of its buckets 0): only the others are written
    FOREACH n IN ARRAY b LOOP
        k := k + 1;
        IF n <> 0 THEN
            out[k] := out[k] + n;
        END IF;
    END LOOP;
    RETURN out;
END $$;

-- A database whose rollup_backfill predates these entities records them (the entity check learnt
-- their names above): not done if their base table has rows, and `metrics-worker schema` back-fills them.
INSERT INTO rollup_backfill
SELECT 'round_hourly', NOT EXISTS (SELECT 1 FROM round_metrics), NULL
UNION ALL SELECT 'tool_latency', NOT EXISTS (SELECT 1 FROM tool_call_metrics), NULL
UNION ALL SELECT 'forward_latency', NOT EXISTS (SELECT 1 FROM forward_request_metrics), NULL
ON CONFLICT (entity) DO NOTHING;

-- A database whose hourly roll-up of rounds predates its cost: add the columns and count rounds
-- by hour again from zero (their latency with them: one back-fill entity, 'round_hourly'); readers
-- answer from round_metrics until `metrics-worker schema` has back-filled it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'round_hourly'::regclass AND attname = 'unpriced') THEN
        ALTER TABLE round_hourly ADD COLUMN IF NOT EXISTS cost_usd numeric NOT NULL DEFAULT 0,
                                 ADD COLUMN IF NOT EXISTS unpriced bigint NOT NULL DEFAULT 0;
        DELETE FROM round_hourly;
        DELETE FROM latency_hourly WHERE metric LIKE 'round_%';
        DELETE FROM latency_daily WHERE metric LIKE 'round_%';
        UPDATE rollup_backfill SET upto = NULL, done = NOT EXISTS (SELECT 1 FROM round_metrics)
        WHERE entity = 'round_hourly';
    END IF;
END $$;

-- A database whose hourly roll-up of rounds predates its priced count (the cost read of the last
-- hours: priced_rounds per model and day): the same, count rounds by hour again from zero.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'round_hourly'::regclass AND attname = 'priced') THEN
        ALTER TABLE round_hourly ADD COLUMN IF NOT EXISTS priced bigint NOT NULL DEFAULT 0;
        DELETE FROM round_hourly;
        DELETE FROM latency_hourly WHERE metric LIKE 'round_%';
        DELETE FROM latency_daily WHERE metric LIKE 'round_%';
        UPDATE rollup_backfill SET upto = NULL, done = NOT EXISTS (SELECT 1 FROM round_metrics)
        WHERE entity = 'round_hourly';
    END IF;
END $$;

-- As for the roll-ups above: a base table without its trigger here is new, what its rows held is
-- counted from zero.
DO $$
DECLARE
    e record;
BEGIN
    FOR e IN SELECT * FROM (VALUES ('round_hourly', 'round_metrics', 'round_hourly', 'round_%', 'round_rollups_insert'),
                                   ('tool_latency', 'tool_call_metrics', 'tool_latency', 'tool_%', 'tool_rollups_insert'),
                                   ('forward_latency', 'forward_request_metrics', 'forward_latency', 'forward_%',
                                    'forward_rollups_insert'))
                      AS t(entity, base, trigger, metrics, merged)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = e.base::regclass
                       AND tgname IN (e.merged, e.trigger || '_insert')) THEN
            IF e.entity = 'round_hourly' THEN
                DELETE FROM round_hourly;
            END IF;
            DELETE FROM latency_hourly WHERE metric LIKE e.metrics;
            DELETE FROM latency_daily WHERE metric LIKE e.metrics;
            EXECUTE format('UPDATE rollup_backfill SET upto = NULL, done = NOT EXISTS (SELECT 1 FROM %I) WHERE entity = %L',
                           e.base, e.entity);
        END IF;
    END LOOP;
END $$;

-- One trigger per base table and event feeds every roll-up of that table: the statement's old and
-- new rows are read from the transition tables once, into two arrays, and one move adds and
-- subtracts them in a single statement whose rows are unnested once (a materialised CTE) for every
-- roll-up it writes; latency_daily, which only rows older than latency_fold's watermark reach, in a
-- second statement that a move without such rows skips (part of every move's statement, it cost the
-- apply 1.5% of PostgreSQL's CPU time while writing nothing). round_metrics feeds the cost per day (entity 'rounds'), the hourly rounds and
-- the round latencies ('round_hourly'); tool_call_metrics the tool calls per hour, and per day before
-- the watermark ('tool_calls')
-- and tool latencies ('tool_latency'); forward_request_metrics the forwards per day ('forwards')
-- and forward latencies ('forward_latency'). A move takes one ``upto`` per entity, as
-- session_rollup_move takes one: count only keys <= it, NULL all, '' none (the back-fill moves one
-- entity's rows at a time).
CREATE OR REPLACE FUNCTION round_rollups_move(plus anyarray, minus anyarray, cost_upto text, hourly_upto text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    my_slot smallint := metrics_rollup_slot();
    folded_before timestamptz;
    oldest timestamptz;
BEGIN
    -- latency_fold: the lock first, the watermark in a later statement (its own snapshot, taken
    -- after any fold holding the lock has committed).
    PERFORM pg_advisory_xact_lock_shared(1919904877, 'latency_fold'::regclass::oid::int);
    SELECT f.folded_upto::timestamp AT TIME ZONE 'UTC' INTO folded_before FROM latency_fold AS f;
    WITH c AS MATERIALIZED (
        SELECT s.sign, s.started_at, metrics_utc_hour(s.started_at) AS hour, s.model,
               COALESCE(s.provider, '') AS provider, s.status, s.prompt_tokens, s.completion_tokens,
               s.total_tokens, s.cost_usd, s.unpriced,
               (s.cost_usd IS NOT NULL OR s.unpriced) AND (cost_upto IS NULL OR s.round_id <= cost_upto) AS costed,
               hourly_upto IS NULL OR s.round_id <= hourly_upto AS hourly,
               CASE WHEN s.completed_at IS NOT NULL AND s.completion_version IS DISTINCT FROM ''
                    THEN metrics_latency_bucket(d.ms)
               END AS duration_bucket,
               metrics_latency_bucket(s.time_to_first_token_ms) AS ttft_bucket
        FROM (SELECT 1 AS sign, p.* FROM unnest(plus) AS p
              UNION ALL
              SELECT -1, m.* FROM unnest(minus) AS m) AS s
        -- the duration computed once per row (inlined, the bucket rule would compute it five times)
        CROSS JOIN LATERAL (SELECT EXTRACT(EPOCH FROM s.completed_at - s.started_at)::float8 * 1000 AS ms OFFSET 0) AS d
        WHERE s.started_at IS NOT NULL AND s.model IS NOT NULL
    ), costs AS (
        INSERT INTO round_cost_rollup AS r (day, model, provider, slot, priced, unpriced, cost_usd)
        SELECT * FROM (
            SELECT (c.started_at AT TIME ZONE 'UTC')::date AS day, c.model, c.provider, my_slot,
                   sum(c.sign * (c.cost_usd IS NOT NULL)::int) AS priced,
                   sum(c.sign * c.unpriced::int) AS unpriced,
                   sum(c.sign * COALESCE(c.cost_usd, 0)) AS cost_usd
            FROM c
            WHERE c.costed
            GROUP BY 1, 2, 3
        ) AS d
        WHERE (d.priced, d.unpriced, d.cost_usd) <> (0, 0, 0)
        ORDER BY 1, 2, 3
        ON CONFLICT (day, model, provider, slot) DO UPDATE SET
            priced = r.priced + EXCLUDED.priced,
            unpriced = r.unpriced + EXCLUDED.unpriced,
            cost_usd = r.cost_usd + EXCLUDED.cost_usd
    ), counts AS (
        INSERT INTO round_hourly AS r (
            hour, model, slot, rounds, errors, prompt_tokens, completion_tokens, total_tokens, cost_usd, unpriced,
            priced)
        SELECT * FROM (
            SELECT c.hour, c.model, my_slot, sum(c.sign) AS rounds, sum(c.sign * (c.status = 'error')::int) AS errors,
                   sum(c.sign * c.prompt_tokens) AS prompt_tokens,
                   sum(c.sign * c.completion_tokens) AS completion_tokens,
                   sum(c.sign * c.total_tokens) AS total_tokens,
                   sum(c.sign * COALESCE(c.cost_usd, 0)) AS cost_usd,
                   sum(c.sign * c.unpriced::int) AS unpriced,
                   sum(c.sign * (c.cost_usd IS NOT NULL)::int) AS priced
            FROM c
            WHERE c.hourly
            GROUP BY 1, 2
        ) AS d
        WHERE (d.rounds, d.errors, d.prompt_tokens, d.completion_tokens, d.total_tokens, d.cost_usd, d.unpriced,
               d.priced) <> (0, 0, 0, 0, 0, 0, 0, 0)
        ORDER BY 1, 2
        ON CONFLICT (hour, model, slot) DO UPDATE SET
            rounds = r.rounds + EXCLUDED.rounds,
            errors = r.errors + EXCLUDED.errors,
            prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,
            completion_tokens = r.completion_tokens + EXCLUDED.completion_tokens,
            total_tokens = r.total_tokens + EXCLUDED.total_tokens,
            cost_usd = r.cost_usd + EXCLUDED.cost_usd,
            unpriced = r.unpriced + EXCLUDED.unpriced,
            priced = r.priced + EXCLUDED.priced
    ), buckets AS MATERIALIZED (
        SELECT c.hour, x.metric, c.model AS name, x.bucket, sum(c.sign)::int AS n
        FROM c
        CROSS JOIN LATERAL (
            SELECT 'round_duration' AS metric, c.duration_bucket AS bucket WHERE c.duration_bucket IS NOT NULL
            UNION ALL
            SELECT 'round_ttft', c.ttft_bucket WHERE c.ttft_bucket IS NOT NULL
        ) AS x
        WHERE c.hourly
        GROUP BY 1, 2, 3, 4
        HAVING sum(c.sign) <> 0
    ), hours AS (
        INSERT INTO latency_hourly AS r (hour, metric, name, slot, lo, counts)
        SELECT b.hour, b.metric, b.name, my_slot, min(b.bucket),
               metrics_histogram(min(b.bucket), max(b.bucket), array_agg(b.bucket), array_agg(b.n))
        FROM buckets AS b
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (hour, metric, name, slot) DO UPDATE SET
            lo = LEAST(r.lo, EXCLUDED.lo),
            counts = metrics_histogram_add(r.lo, r.counts, EXCLUDED.lo, EXCLUDED.counts),
            raw = NULL
    )
    SELECT min(c.started_at) INTO oldest FROM c;
    -- latency_daily holds the days before folded_before: only a move with rows that old (late events,
    -- prune, reconcile, a back-fill of old rows) writes it, their buckets taken again by day.
    IF oldest < folded_before THEN
        WITH c AS MATERIALIZED (
            SELECT s.sign, s.started_at, metrics_utc_hour(s.started_at) AS hour, s.model,
                   COALESCE(s.provider, '') AS provider, s.status, s.prompt_tokens, s.completion_tokens,
                   s.total_tokens, s.cost_usd, s.unpriced,
                   (s.cost_usd IS NOT NULL OR s.unpriced) AND (cost_upto IS NULL OR s.round_id <= cost_upto) AS costed,
                   hourly_upto IS NULL OR s.round_id <= hourly_upto AS hourly,
                   CASE WHEN s.completed_at IS NOT NULL AND s.completion_version IS DISTINCT FROM ''
                        THEN metrics_latency_bucket(d.ms)
                   END AS duration_bucket,
                   metrics_latency_bucket(s.time_to_first_token_ms) AS ttft_bucket
            FROM (SELECT 1 AS sign, p.* FROM unnest(plus) AS p
                  UNION ALL
                  SELECT -1, m.* FROM unnest(minus) AS m) AS s
            -- the duration computed once per row (inlined, the bucket rule would compute it five times)
            CROSS JOIN LATERAL (SELECT EXTRACT(EPOCH FROM s.completed_at - s.started_at)::float8 * 1000 AS ms OFFSET 0) AS d
            WHERE s.started_at IS NOT NULL AND s.model IS NOT NULL
        ), buckets AS MATERIALIZED (
            SELECT c.hour, x.metric, c.model AS name, x.bucket, sum(c.sign)::int AS n
            FROM c
            CROSS JOIN LATERAL (
                SELECT 'round_duration' AS metric, c.duration_bucket AS bucket WHERE c.duration_bucket IS NOT NULL
                UNION ALL
                SELECT 'round_ttft', c.ttft_bucket WHERE c.ttft_bucket IS NOT NULL
            ) AS x
            WHERE c.hourly
            GROUP BY 1, 2, 3, 4
            HAVING sum(c.sign) <> 0
        )
        INSERT INTO latency_daily AS r (day, metric, name, slot, lo, counts)
        SELECT d.day, d.metric, d.name, my_slot, min(d.bucket),
               metrics_histogram(min(d.bucket), max(d.bucket), array_agg(d.bucket), array_agg(d.n))
        FROM (
            SELECT (b.hour AT TIME ZONE 'UTC')::date AS day, b.metric, b.name, b.bucket, sum(b.n)::int AS n
            FROM buckets AS b
            WHERE b.hour < folded_before
            GROUP BY 1, 2, 3, 4
            HAVING sum(b.n) <> 0
        ) AS d
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (day, metric, name, slot) DO UPDATE SET
            lo = LEAST(r.lo, EXCLUDED.lo),
            counts = metrics_histogram_add(r.lo, r.counts, EXCLUDED.lo, EXCLUDED.counts),
            raw = NULL;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION tool_rollups_move(plus anyarray, minus anyarray, calls_upto text, latency_upto text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    my_slot smallint := metrics_rollup_slot();
    folded_before timestamptz;
    oldest timestamptz;
BEGIN
    -- latency_fold: the lock first, the watermark in a later statement (its own snapshot, taken
    -- after any fold holding the lock has committed).
    PERFORM pg_advisory_xact_lock_shared(1919904877, 'latency_fold'::regclass::oid::int);
    SELECT f.folded_upto::timestamp AT TIME ZONE 'UTC' INTO folded_before FROM latency_fold AS f;
    WITH c AS MATERIALIZED (
        SELECT s.sign, s.started_at, s.tool_name, s.success,
               calls_upto IS NULL OR s.tool_call_id <= calls_upto AS calls,
               CASE WHEN s.completed_at IS NOT NULL AND (latency_upto IS NULL OR s.tool_call_id <= latency_upto)
                    THEN metrics_latency_bucket(d.ms)
               END AS duration_bucket
        FROM (SELECT 1 AS sign, p.* FROM unnest(plus) AS p
              UNION ALL
              SELECT -1, m.* FROM unnest(minus) AS m) AS s
        CROSS JOIN LATERAL (SELECT EXTRACT(EPOCH FROM s.completed_at - s.started_at)::float8 * 1000 AS ms OFFSET 0) AS d
        WHERE s.started_at IS NOT NULL AND s.tool_name IS NOT NULL
    ), hourly AS (
        INSERT INTO tool_hourly AS r (hour, tool_name, slot, calls, succeeded, failed)
        SELECT * FROM (
            SELECT metrics_utc_hour(c.started_at) AS hour, c.tool_name, my_slot, sum(c.sign) AS calls,
                   sum(c.sign * (c.success IS TRUE)::int) AS succeeded,
                   sum(c.sign * (c.success IS FALSE)::int) AS failed
            FROM c
            WHERE c.calls
            GROUP BY 1, 2
        ) AS d
        WHERE (d.calls, d.succeeded, d.failed) <> (0, 0, 0)
        ORDER BY 1, 2
        ON CONFLICT (hour, tool_name, slot) DO UPDATE SET
            calls = r.calls + EXCLUDED.calls,
            succeeded = r.succeeded + EXCLUDED.succeeded,
            failed = r.failed + EXCLUDED.failed
    ), buckets AS MATERIALIZED (
        SELECT metrics_utc_hour(c.started_at) AS hour, 'tool_duration' AS metric, c.tool_name AS name,
               c.duration_bucket AS bucket, sum(c.sign)::int AS n
        FROM c
        WHERE c.duration_bucket IS NOT NULL
        GROUP BY 1, 2, 3, 4
        HAVING sum(c.sign) <> 0
    ), hours AS (
        INSERT INTO latency_hourly AS r (hour, metric, name, slot, lo, counts)
        SELECT b.hour, b.metric, b.name, my_slot, min(b.bucket),
               metrics_histogram(min(b.bucket), max(b.bucket), array_agg(b.bucket), array_agg(b.n))
        FROM buckets AS b
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (hour, metric, name, slot) DO UPDATE SET
            lo = LEAST(r.lo, EXCLUDED.lo),
            counts = metrics_histogram_add(r.lo, r.counts, EXCLUDED.lo, EXCLUDED.counts),
            raw = NULL
    )
    SELECT min(c.started_at) INTO oldest FROM c;
    -- latency_daily and tool_rollup hold the days before folded_before: only a move with rows that
    -- old (late events, prune, reconcile, a back-fill of old rows) writes them, taken again by day.
    IF oldest < folded_before THEN
        WITH c AS MATERIALIZED (
            SELECT s.sign, s.started_at, s.tool_name, s.success,
                   calls_upto IS NULL OR s.tool_call_id <= calls_upto AS calls,
                   CASE WHEN s.completed_at IS NOT NULL AND (latency_upto IS NULL OR s.tool_call_id <= latency_upto)
                        THEN metrics_latency_bucket(d.ms)
                   END AS duration_bucket
            FROM (SELECT 1 AS sign, p.* FROM unnest(plus) AS p
                  UNION ALL
                  SELECT -1, m.* FROM unnest(minus) AS m) AS s
            CROSS JOIN LATERAL (SELECT EXTRACT(EPOCH FROM s.completed_at - s.started_at)::float8 * 1000 AS ms OFFSET 0) AS d
            WHERE s.started_at IS NOT NULL AND s.tool_name IS NOT NULL
        ), daily AS (
            INSERT INTO tool_rollup AS r (day, tool_name, slot, calls, succeeded, failed)
            SELECT * FROM (
                SELECT (c.started_at AT TIME ZONE 'UTC')::date AS day, c.tool_name, my_slot, sum(c.sign) AS calls,
                       sum(c.sign * (c.success IS TRUE)::int) AS succeeded,
                       sum(c.sign * (c.success IS FALSE)::int) AS failed
                FROM c
                WHERE c.calls AND c.started_at < folded_before
                GROUP BY 1, 2
            ) AS d
            WHERE (d.calls, d.succeeded, d.failed) <> (0, 0, 0)
            ORDER BY 1, 2
            ON CONFLICT (day, tool_name, slot) DO UPDATE SET
                calls = r.calls + EXCLUDED.calls,
                succeeded = r.succeeded + EXCLUDED.succeeded,
                failed = r.failed + EXCLUDED.failed
        ), buckets AS MATERIALIZED (
            SELECT metrics_utc_hour(c.started_at) AS hour, 'tool_duration' AS metric, c.tool_name AS name,
                   c.duration_bucket AS bucket, sum(c.sign)::int AS n
            FROM c
            WHERE c.duration_bucket IS NOT NULL
            GROUP BY 1, 2, 3, 4
            HAVING sum(c.sign) <> 0
        )
        INSERT INTO latency_daily AS r (day, metric, name, slot, lo, counts)
        SELECT d.day, d.metric, d.name, my_slot, min(d.bucket),
               metrics_histogram(min(d.bucket), max(d.bucket), array_agg(d.bucket), array_agg(d.n))
        FROM (
            SELECT (b.hour AT TIME ZONE 'UTC')::date AS day, b.metric, b.name, b.bucket, sum(b.n)::int AS n
            FROM buckets AS b
            WHERE b.hour < folded_before
            GROUP BY 1, 2, 3, 4
            HAVING sum(b.n) <> 0
        ) AS d
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (day, metric, name, slot) DO UPDATE SET
            lo = LEAST(r.lo, EXCLUDED.lo),
            counts = metrics_histogram_add(r.lo, r.counts, EXCLUDED.lo, EXCLUDED.counts),
            raw = NULL;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION forward_rollups_move(plus anyarray, minus anyarray, daily_upto text, latency_upto text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    my_slot smallint := metrics_rollup_slot();
    folded_before timestamptz;
    oldest timestamptz;
BEGIN
    -- latency_fold: the lock first, the watermark in a later statement (its own snapshot, taken
    -- after any fold holding the lock has committed).
    PERFORM pg_advisory_xact_lock_shared(1919904877, 'latency_fold'::regclass::oid::int);
    SELECT f.folded_upto::timestamp AT TIME ZONE 'UTC' INTO folded_before FROM latency_fold AS f;
    WITH c AS MATERIALIZED (
        SELECT s.*, EXTRACT(EPOCH FROM s.completed_at - s.started_at)::float8 * 1000 AS duration_ms,
               daily_upto IS NULL OR s.forward_id <= daily_upto AS daily,
               s.endpoint IS NOT NULL AND (latency_upto IS NULL OR s.forward_id <= latency_upto) AS timed
        FROM (SELECT 1 AS sign, p.* FROM unnest(plus) AS p
              UNION ALL
              SELECT -1, m.* FROM unnest(minus) AS m) AS s
        WHERE s.started_at IS NOT NULL
    ), hourly AS (
        INSERT INTO forward_hourly AS r (
            hour, endpoint, model, slot, requests, successful, failed, timed_out, pending, prompt_tokens,
            completion_tokens, total_tokens, completed, duration_us, cost_usd, priced, unpriced)
        SELECT * FROM (
            SELECT metrics_utc_hour(c.started_at) AS hour, c.endpoint, c.model, my_slot,
                   sum(c.sign) AS requests,
                   sum(c.sign * (c.status = 'success')::int) AS successful,
                   sum(c.sign * (c.status = 'error')::int) AS failed,
                   sum(c.sign * (c.status = 'timeout')::int) AS timed_out,
                   sum(c.sign * (c.status = 'pending')::int) AS pending,
                   sum(c.sign * COALESCE(c.prompt_tokens, 0)) AS prompt_tokens,
                   sum(c.sign * COALESCE(c.completion_tokens, 0)) AS completion_tokens,
                   sum(c.sign * COALESCE(c.total_tokens, 0)) AS total_tokens,
                   sum(c.sign * (c.completed_at IS NOT NULL)::int) AS completed,
                   sum(c.sign * COALESCE((EXTRACT(EPOCH FROM c.completed_at - c.started_at) * 1000000)::int8, 0))
                       AS duration_us,
                   sum(c.sign * COALESCE(c.cost_usd, 0)) AS cost_usd,
                   sum(c.sign * (c.cost_usd IS NOT NULL)::int) AS priced,
                   sum(c.sign * c.unpriced::int) AS unpriced
            FROM c
            WHERE c.daily
            GROUP BY 1, 2, 3
        ) AS d
        WHERE (d.requests, d.successful, d.failed, d.timed_out, d.pending, d.prompt_tokens,
               d.completion_tokens, d.total_tokens, d.completed, d.duration_us, d.cost_usd, d.priced, d.unpriced)
              <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        ORDER BY 1, 2, 3
        ON CONFLICT (hour, endpoint, model, slot) DO UPDATE SET
            requests = r.requests + EXCLUDED.requests,
            successful = r.successful + EXCLUDED.successful,
            failed = r.failed + EXCLUDED.failed,
            timed_out = r.timed_out + EXCLUDED.timed_out,
            pending = r.pending + EXCLUDED.pending,
            prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,
            completion_tokens = r.completion_tokens + EXCLUDED.completion_tokens,
            total_tokens = r.total_tokens + EXCLUDED.total_tokens,
            completed = r.completed + EXCLUDED.completed,
            duration_us = r.duration_us + EXCLUDED.duration_us,
            cost_usd = r.cost_usd + EXCLUDED.cost_usd,
            priced = r.priced + EXCLUDED.priced,
            unpriced = r.unpriced + EXCLUDED.unpriced
    ), buckets AS MATERIALIZED (
        SELECT metrics_utc_hour(c.started_at) AS hour, x.metric, c.endpoint AS name, x.bucket, sum(c.sign)::int AS n
        FROM c
        CROSS JOIN LATERAL (
            SELECT 'forward_duration' AS metric, metrics_latency_bucket(c.duration_ms) AS bucket
            WHERE c.completed_at IS NOT NULL AND c.completion_version IS DISTINCT FROM ''
              AND right(COALESCE(c.completion_version, ''), 11) <> '|reconciled'
            UNION ALL
            SELECT 'forward_ttft', metrics_latency_bucket(c.time_to_first_token_ms)
            WHERE c.time_to_first_token_ms IS NOT NULL
        ) AS x
        WHERE c.timed
        GROUP BY 1, 2, 3, 4
        HAVING sum(c.sign) <> 0
    ), hours AS (
        INSERT INTO latency_hourly AS r (hour, metric, name, slot, lo, counts)
        SELECT b.hour, b.metric, b.name, my_slot, min(b.bucket),
               metrics_histogram(min(b.bucket), max(b.bucket), array_agg(b.bucket), array_agg(b.n))
        FROM buckets AS b
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (hour, metric, name, slot) DO UPDATE SET
            lo = LEAST(r.lo, EXCLUDED.lo),
            counts = metrics_histogram_add(r.lo, r.counts, EXCLUDED.lo, EXCLUDED.counts),
            raw = NULL
    )
    SELECT min(c.started_at) INTO oldest FROM c;
    -- latency_daily holds the days before folded_before: only a move with rows that old (late events,
    -- prune, reconcile, a back-fill of old rows) writes it, their buckets taken again by day.
    IF oldest < folded_before THEN
        WITH c AS MATERIALIZED (
            SELECT s.*, EXTRACT(EPOCH FROM s.completed_at - s.started_at)::float8 * 1000 AS duration_ms,
                   daily_upto IS NULL OR s.forward_id <= daily_upto AS daily,
                   s.endpoint IS NOT NULL AND (latency_upto IS NULL OR s.forward_id <= latency_upto) AS timed
            FROM (SELECT 1 AS sign, p.* FROM unnest(plus) AS p
                  UNION ALL
                  SELECT -1, m.* FROM unnest(minus) AS m) AS s
            WHERE s.started_at IS NOT NULL
        ), daily AS (
            INSERT INTO forward_rollup AS r (
                day, endpoint, model, slot, requests, successful, failed, timed_out, pending, prompt_tokens,
                completion_tokens, total_tokens, completed, duration_us, cost_usd, priced, unpriced)
            SELECT * FROM (
                SELECT (c.started_at AT TIME ZONE 'UTC')::date AS day, c.endpoint, c.model, my_slot,
                       sum(c.sign) AS requests,
                       sum(c.sign * (c.status = 'success')::int) AS successful,
                       sum(c.sign * (c.status = 'error')::int) AS failed,
                       sum(c.sign * (c.status = 'timeout')::int) AS timed_out,
                       sum(c.sign * (c.status = 'pending')::int) AS pending,
                       sum(c.sign * COALESCE(c.prompt_tokens, 0)) AS prompt_tokens,
                       sum(c.sign * COALESCE(c.completion_tokens, 0)) AS completion_tokens,
                       sum(c.sign * COALESCE(c.total_tokens, 0)) AS total_tokens,
                       sum(c.sign * (c.completed_at IS NOT NULL)::int) AS completed,
                       sum(c.sign * COALESCE((EXTRACT(EPOCH FROM c.completed_at - c.started_at) * 1000000)::int8, 0))
                           AS duration_us,
                       sum(c.sign * COALESCE(c.cost_usd, 0)) AS cost_usd,
                       sum(c.sign * (c.cost_usd IS NOT NULL)::int) AS priced,
                       sum(c.sign * c.unpriced::int) AS unpriced
                FROM c
                WHERE c.daily AND c.started_at < folded_before
                GROUP BY 1, 2, 3
            ) AS d
            WHERE (d.requests, d.successful, d.failed, d.timed_out, d.pending, d.prompt_tokens,
                   d.completion_tokens, d.total_tokens, d.completed, d.duration_us, d.cost_usd, d.priced, d.unpriced)
                  <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            ORDER BY 1, 2, 3
            ON CONFLICT (day, endpoint, model, slot) DO UPDATE SET
                requests = r.requests + EXCLUDED.requests,
                successful = r.successful + EXCLUDED.successful,
                failed = r.failed + EXCLUDED.failed,
                timed_out = r.timed_out + EXCLUDED.timed_out,
                pending = r.pending + EXCLUDED.pending,
                prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,
                completion_tokens = r.completion_tokens + EXCLUDED.completion_tokens,
                total_tokens = r.total_tokens + EXCLUDED.total_tokens,
                completed = r.completed + EXCLUDED.completed,
                duration_us = r.duration_us + EXCLUDED.duration_us,
                cost_usd = r.cost_usd + EXCLUDED.cost_usd,
                priced = r.priced + EXCLUDED.priced,
                unpriced = r.unpriced + EXCLUDED.unpriced
        ), buckets AS MATERIALIZED (
            SELECT metrics_utc_hour(c.started_at) AS hour, x.metric, c.endpoint AS name, x.bucket, sum(c.sign)::int AS n
            FROM c
            CROSS JOIN LATERAL (
                SELECT 'forward_duration' AS metric, metrics_latency_bucket(c.duration_ms) AS bucket
                WHERE c.completed_at IS NOT NULL AND c.completion_version IS DISTINCT FROM ''
                  AND right(COALESCE(c.completion_version, ''), 11) <> '|reconciled'
                UNION ALL
                SELECT 'forward_ttft', metrics_latency_bucket(c.time_to_first_token_ms)
                WHERE c.time_to_first_token_ms IS NOT NULL
            ) AS x
            WHERE c.timed
            GROUP BY 1, 2, 3, 4
            HAVING sum(c.sign) <> 0
        )
        INSERT INTO latency_daily AS r (day, metric, name, slot, lo, counts)
        SELECT d.day, d.metric, d.name, my_slot, min(d.bucket),
               metrics_histogram(min(d.bucket), max(d.bucket), array_agg(d.bucket), array_agg(d.n))
        FROM (
            SELECT (b.hour AT TIME ZONE 'UTC')::date AS day, b.metric, b.name, b.bucket, sum(b.n)::int AS n
            FROM buckets AS b
            WHERE b.hour < folded_before
            GROUP BY 1, 2, 3, 4
            HAVING sum(b.n) <> 0
        ) AS d
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (day, metric, name, slot) DO UPDATE SET
            lo = LEAST(r.lo, EXCLUDED.lo),
            counts = metrics_histogram_add(r.lo, r.counts, EXCLUDED.lo, EXCLUDED.counts),
            raw = NULL;
    END IF;
END $$;

-- Their triggers, one function per base table (PostgreSQL allows transition tables on one event
-- only: three triggers, one function). Only rows that can count are read: a statement that touched
-- none (a stub, a lock taken with DO UPDATE ... WHERE false) ends here.
CREATE OR REPLACE FUNCTION round_rollups_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    plus round_metrics[] := '{}';
    minus round_metrics[] := '{}';
BEGIN
    IF TG_OP <> 'DELETE' THEN
        plus := ARRAY(SELECT (n.*)::round_metrics FROM new_rows n WHERE n.started_at IS NOT NULL AND n.model IS NOT NULL);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        minus := ARRAY(SELECT (o.*)::round_metrics FROM old_rows o WHERE o.started_at IS NOT NULL AND o.model IS NOT NULL);
    END IF;
    IF cardinality(plus) + cardinality(minus) > 0 THEN
        PERFORM round_rollups_move(plus, minus, metrics_rollup_counted_upto('rounds'),
                                   metrics_rollup_counted_upto('round_hourly'));
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tool_rollups_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    plus tool_call_metrics[] := '{}';
    minus tool_call_metrics[] := '{}';
BEGIN
    IF TG_OP <> 'DELETE' THEN
        plus := ARRAY(SELECT (n.*)::tool_call_metrics FROM new_rows n
                      WHERE n.started_at IS NOT NULL AND n.tool_name IS NOT NULL);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        minus := ARRAY(SELECT (o.*)::tool_call_metrics FROM old_rows o
                       WHERE o.started_at IS NOT NULL AND o.tool_name IS NOT NULL);
    END IF;
    IF cardinality(plus) + cardinality(minus) > 0 THEN
        PERFORM tool_rollups_move(plus, minus, metrics_rollup_counted_upto('tool_calls'),
                                  metrics_rollup_counted_upto('tool_latency'));
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION forward_rollups_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    plus forward_request_metrics[] := '{}';
    minus forward_request_metrics[] := '{}';
BEGIN
    IF TG_OP <> 'DELETE' THEN
        plus := ARRAY(SELECT (n.*)::forward_request_metrics FROM new_rows n WHERE n.started_at IS NOT NULL);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        minus := ARRAY(SELECT (o.*)::forward_request_metrics FROM old_rows o WHERE o.started_at IS NOT NULL);
    END IF;
    IF cardinality(plus) + cardinality(minus) > 0 THEN
        PERFORM forward_rollups_move(plus, minus, metrics_rollup_counted_upto('forwards'),
                                     metrics_rollup_counted_upto('forward_latency'));
    END IF;
    RETURN NULL;
END $$;

-- A database of the version with a trigger set per roll-up: theirs go (the ones above count the same
-- rows from now on, in this transaction: nothing is counted twice or missed).
DROP TRIGGER IF EXISTS round_cost_rollup_insert ON round_metrics;
DROP TRIGGER IF EXISTS round_cost_rollup_update ON round_metrics;
DROP TRIGGER IF EXISTS round_cost_rollup_delete ON round_metrics;
DROP TRIGGER IF EXISTS round_hourly_insert ON round_metrics;
DROP TRIGGER IF EXISTS round_hourly_update ON round_metrics;
DROP TRIGGER IF EXISTS round_hourly_delete ON round_metrics;
DROP TRIGGER IF EXISTS tool_rollup_insert ON tool_call_metrics;
DROP TRIGGER IF EXISTS tool_rollup_update ON tool_call_metrics;
DROP TRIGGER IF EXISTS tool_rollup_delete ON tool_call_metrics;
DROP TRIGGER IF EXISTS tool_latency_insert ON tool_call_metrics;
DROP TRIGGER IF EXISTS tool_latency_update ON tool_call_metrics;
DROP TRIGGER IF EXISTS tool_latency_delete ON tool_call_metrics;
DROP TRIGGER IF EXISTS forward_rollup_insert ON forward_request_metrics;
DROP TRIGGER IF EXISTS forward_rollup_update ON forward_request_metrics;
DROP TRIGGER IF EXISTS forward_rollup_delete ON forward_request_metrics;
DROP TRIGGER IF EXISTS forward_latency_insert ON forward_request_metrics;
DROP TRIGGER IF EXISTS forward_latency_update ON forward_request_metrics;
DROP TRIGGER IF EXISTS forward_latency_delete ON forward_request_metrics;
DROP FUNCTION IF EXISTS round_cost_rollup_trigger(), round_hourly_trigger(), tool_rollup_trigger(),
                        tool_latency_trigger(), forward_rollup_trigger(), forward_latency_trigger();
DROP FUNCTION IF EXISTS round_cost_rollup_move(anyarray, anyarray, text), round_hourly_move(anyarray, anyarray, text),
                        tool_rollup_move(anyarray, anyarray, text), tool_latency_move(anyarray, anyarray, text),
                        forward_rollup_move(anyarray, anyarray, text), forward_latency_move(anyarray, anyarray, text);

CREATE OR REPLACE TRIGGER round_rollups_insert AFTER INSERT ON round_metrics
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION round_rollups_trigger();
CREATE OR REPLACE TRIGGER round_rollups_update AFTER UPDATE ON round_metrics
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION round_rollups_trigger();
CREATE OR REPLACE TRIGGER round_rollups_delete AFTER DELETE ON round_metrics
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION round_rollups_trigger();
CREATE OR REPLACE TRIGGER tool_rollups_insert AFTER INSERT ON tool_call_metrics
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tool_rollups_trigger();
CREATE OR REPLACE TRIGGER tool_rollups_update AFTER UPDATE ON tool_call_metrics
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tool_rollups_trigger();
CREATE OR REPLACE TRIGGER tool_rollups_delete AFTER DELETE ON tool_call_metrics
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tool_rollups_trigger();
CREATE OR REPLACE TRIGGER forward_rollups_insert AFTER INSERT ON forward_request_metrics
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forward_rollups_trigger();
CREATE OR REPLACE TRIGGER forward_rollups_update AFTER UPDATE ON forward_request_metrics
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION forward_rollups_trigger();
CREATE OR REPLACE TRIGGER forward_rollups_delete AFTER DELETE ON forward_request_metrics
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION forward_rollups_trigger();

-- The sessions closed by the reconcile of a version without reconciled_at (added above), told by their
-- status_version (the reconcile stamp '|reconciled' is still the latest: no real event set their
-- status since). That version set completed_at to the time it ran: that is when reconcile closed
-- them; their last activity (updated_at) becomes completed_at. The session roll-up's trigger moves
-- each one to its reconciled bucket in this transaction.
DO $$
BEGIN
    IF current_setting('metrics.mark_reconciled', true) = 'on' THEN
        UPDATE session_metrics SET reconciled_at = COALESCE(completed_at, updated_at), completed_at = updated_at
        WHERE status <> 'running' AND status_version LIKE '%|reconciled';
        PERFORM set_config('metrics.mark_reconciled', 'off', true);
    END IF;
END $$;
