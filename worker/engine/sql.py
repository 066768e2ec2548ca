"""The apply engine's SQL. Parameters are arrays (one element per merged row), unnested server-side in
a select list, ``(SELECT unnest(a) AS x, unnest(b) AS y, ...)``: the arrays are read in step, a row at a
time, where ``FROM unnest(a, b, ...)`` first copies each array into a tuplestore of its own (the same
rows; 6% more of the apply's PostgreSQL CPU time). forward_sql.py and cost_sql.py do the same.

One transaction per batch runs these in this order, and every statement takes its row locks in
key order, so concurrent workers always lock in one global order and cannot deadlock:

1. INSERT_OR_LOCK_ROUNDS, INSERT_OR_LOCK_TOOLS: insert the rows that do not exist yet, complete,
   and lock the ones that do, without writing them (``DO UPDATE ... WHERE false`` locks). The
   later statement recognises the rows inserted here by their xmin (this transaction's id), so
   no statement waits for another's answer and the whole batch goes out in one pipeline.
   Holding these locks, the later statements see the latest committed version of those rows:
   under READ COMMITTED each statement takes a fresh snapshot.
2. APPLY_MISMATCHES: count each sync.mismatch once (its event_id is recorded in
   applied_counter_events in the same statement) into (reason, UTC date).
3. APPLY_FORWARDS (worker/engine/forward_sql.py): one upsert; the merge is in the ON CONFLICT
   clause, which always sees the latest row version.
4. APPLY_ROUNDS_TOOLS_SESSIONS: merge the batch into the rounds and tool calls that existed,
   compute each session's aggregate delta as (new row values - old row values) of exactly the
   rows changed here, plus the contributions of the rows inserted in step 1, then upsert sessions
   with their own events merged in and the deltas added. A delta counts only what this
   transaction changed, so a redelivered batch adds nothing, and ``x = x + delta`` needs no
   recompute of the session's rounds: the cost per event does not grow with the session. The
   usage parts (cache reads and writes, reasoning) are summed the same way, a round that
   reported none counting 0; a session's user_id goes with its model (the latest start). So is
   a round's cost, written here when it was priced before sending (worker/engine/costing.py).
   A session the reconcile job closed (``reconciled_at`` set) is opened again by any event later
   than its last activity (``updated_at``): its agent was alive after all. A redelivered or
   late-arriving older event is not later, so it leaves the session closed; a real start or
   completion sets the status by its order key as always and clears the mark.

Order keys (``*_version``) compare byte-wise (COLLATE "C"); see contract/events.py.
"""

from __future__ import annotations

# Inserts the rounds that do not exist yet, complete, and locks the ones that do without writing
# them (a DO UPDATE whose WHERE is false still locks).
INSERT_OR_LOCK_ROUNDS = """
INSERT INTO round_metrics AS r (
    round_id, session_id, start_version, model, started_at, completion_version, completed_at, status,
    prompt_tokens, completion_tokens, total_tokens, prompt_cached_tool_outputs, error,
    provider, cache_read_tokens, cache_write_tokens, reasoning_tokens, time_to_first_token_ms,
    cost_usd, cost_source, unpriced)
SELECT t.round_id, t.session_id, t.start_version, t.model, t.started_at, t.completion_version, t.completed_at,
       COALESCE(t.status, 'running'), COALESCE(t.prompt_tokens, 0), COALESCE(t.completion_tokens, 0),
       COALESCE(t.total_tokens, 0), COALESCE(t.prompt_cached_tool_outputs, 0), t.error,
       t.provider, t.cache_read_tokens, t.cache_write_tokens, t.reasoning_tokens, t.time_to_first_token_ms,
       CASE WHEN t.settled THEN t.p_cost::numeric END, CASE WHEN t.settled THEN t.p_source END,
       COALESCE(t.settled AND t.p_unpriced, false)
FROM (SELECT u.*, COALESCE(u.model = u.p_model AND u.provider IS NOT DISTINCT FROM u.p_provider
                           AND u.completion_version = u.p_completion, false) AS settled
      FROM (SELECT unnest(%(round_id)b::text[]) AS round_id, unnest(%(session_id)b::text[]) AS session_id,
                   unnest(%(start_version)b::text[]) AS start_version, unnest(%(model)b::text[]) AS model,
                   unnest(%(started_at)b::timestamptz[]) AS started_at,
                   unnest(%(completion_version)b::text[]) AS completion_version,
                   unnest(%(completed_at)b::timestamptz[]) AS completed_at,
                   unnest(%(status)b::text[]) AS status, unnest(%(prompt_tokens)b::int8[]) AS prompt_tokens,
                   unnest(%(completion_tokens)b::int8[]) AS completion_tokens,
                   unnest(%(total_tokens)b::int8[]) AS total_tokens,
                   unnest(%(prompt_cached_tool_outputs)b::int8[]) AS prompt_cached_tool_outputs,
                   unnest(%(error)b::text[]) AS error, unnest(%(provider)b::text[]) AS provider,
                   unnest(%(cache_read_tokens)b::int8[]) AS cache_read_tokens,
                   unnest(%(cache_write_tokens)b::int8[]) AS cache_write_tokens,
                   unnest(%(reasoning_tokens)b::int8[]) AS reasoning_tokens,
                   unnest(%(time_to_first_token_ms)b::int8[]) AS time_to_first_token_ms,
                   unnest(%(p_cost)b::text[]) AS p_cost, unnest(%(p_source)b::text[]) AS p_source,
                   unnest(%(p_unpriced)b::bool[]) AS p_unpriced, unnest(%(p_model)b::text[]) AS p_model,
                   unnest(%(p_provider)b::text[]) AS p_provider,
                   unnest(%(p_completion)b::text[]) AS p_completion) AS u) AS t
ORDER BY t.round_id
ON CONFLICT (round_id) DO UPDATE SET round_id = EXCLUDED.round_id WHERE false
"""

INSERT_OR_LOCK_TOOLS = """
INSERT INTO tool_call_metrics AS tc (
    tool_call_id, round_id, session_id, start_version, tool_name, started_at, completion_version,
    completed_at, success, error)
SELECT * FROM (SELECT unnest(%(tool_call_id)b::text[]) AS tool_call_id,
                      unnest(%(round_id)b::text[]) AS round_id, unnest(%(session_id)b::text[]) AS session_id,
                      unnest(%(start_version)b::text[]) AS start_version,
                      unnest(%(tool_name)b::text[]) AS tool_name,
                      unnest(%(started_at)b::timestamptz[]) AS started_at,
                      unnest(%(completion_version)b::text[]) AS completion_version,
                      unnest(%(completed_at)b::timestamptz[]) AS completed_at,
                      unnest(%(success)b::bool[]) AS success, unnest(%(error)b::text[]) AS error) AS t
ORDER BY tool_call_id
ON CONFLICT (tool_call_id) DO UPDATE SET tool_call_id = EXCLUDED.tool_call_id WHERE false
"""

# The aggregate consumes every freshly recorded event_id before the first counter row is locked,
# so this statement too takes its locks in one order: event ids, then (reason, date) rows.
APPLY_MISMATCHES = """
WITH mi AS (
    SELECT * FROM (SELECT unnest(%(event_id)b::text[]) AS event_id, unnest(%(reason)b::text[]) AS reason,
                          unnest(%(mismatch_date)b::date[]) AS mismatch_date,
                          unnest(%(occurred_at)b::timestamptz[]) AS occurred_at) AS t
), fresh AS (
    INSERT INTO applied_counter_events (event_id)
    SELECT event_id FROM mi ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
)
INSERT INTO execute_sync_mismatch_metrics AS m (reason, mismatch_date, count, updated_at)
SELECT mi.reason, mi.mismatch_date, count(*), max(mi.occurred_at)
FROM mi JOIN fresh USING (event_id)
GROUP BY mi.reason, mi.mismatch_date
ORDER BY mi.reason, mi.mismatch_date
ON CONFLICT (reason, mismatch_date) DO UPDATE SET
    count = m.count + EXCLUDED.count,
    updated_at = GREATEST(m.updated_at, EXCLUDED.updated_at)
"""

APPLY_ROUNDS_TOOLS_SESSIONS = """
WITH ri AS (
    SELECT t.round_id, t.session_id, t.start_version COLLATE "C" AS start_version, t.model, t.started_at,
           t.completion_version COLLATE "C" AS completion_version, t.completed_at, t.status,
           t.prompt_tokens, t.completion_tokens, t.total_tokens, t.prompt_cached_tool_outputs, t.error,
           t.provider, t.cache_read_tokens, t.cache_write_tokens, t.reasoning_tokens,
           t.time_to_first_token_ms, t.p_cost::numeric AS p_cost, t.p_source, t.p_unpriced, t.p_model,
           t.p_provider, t.p_completion COLLATE "C" AS p_completion
    FROM (SELECT unnest(%(r_round_id)b::text[]) AS round_id, unnest(%(r_session_id)b::text[]) AS session_id,
                 unnest(%(r_start_version)b::text[]) AS start_version, unnest(%(r_model)b::text[]) AS model,
                 unnest(%(r_started_at)b::timestamptz[]) AS started_at,
                 unnest(%(r_completion_version)b::text[]) AS completion_version,
                 unnest(%(r_completed_at)b::timestamptz[]) AS completed_at,
                 unnest(%(r_status)b::text[]) AS status, unnest(%(r_prompt_tokens)b::int8[]) AS prompt_tokens,
                 unnest(%(r_completion_tokens)b::int8[]) AS completion_tokens,
                 unnest(%(r_total_tokens)b::int8[]) AS total_tokens,
                 unnest(%(r_prompt_cached_tool_outputs)b::int8[]) AS prompt_cached_tool_outputs,
                 unnest(%(r_error)b::text[]) AS error, unnest(%(r_provider)b::text[]) AS provider,
                 unnest(%(r_cache_read_tokens)b::int8[]) AS cache_read_tokens,
                 unnest(%(r_cache_write_tokens)b::int8[]) AS cache_write_tokens,
                 unnest(%(r_reasoning_tokens)b::int8[]) AS reasoning_tokens,
                 unnest(%(r_time_to_first_token_ms)b::int8[]) AS time_to_first_token_ms,
                 unnest(%(r_p_cost)b::text[]) AS p_cost, unnest(%(r_p_source)b::text[]) AS p_source,
                 unnest(%(r_p_unpriced)b::bool[]) AS p_unpriced, unnest(%(r_p_model)b::text[]) AS p_model,
                 unnest(%(r_p_provider)b::text[]) AS p_provider,
                 unnest(%(r_p_completion)b::text[]) AS p_completion) AS t
), ci AS (
    SELECT * FROM (SELECT unnest(%(c_event_id)b::text[]) AS event_id,
                          unnest(%(c_round_id)b::text[]) AS round_id,
                          unnest(%(c_tokens_saved)b::int8[]) AS tokens_saved) AS t
), fresh AS (
    -- Never waits: a duplicate of one of these events needs the same round's lock, which we hold.
    INSERT INTO applied_counter_events (event_id)
    SELECT event_id FROM ci ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
), comp AS (
    SELECT ci.round_id, count(*) AS n, sum(ci.tokens_saved) AS saved
    FROM ci JOIN fresh USING (event_id) GROUP BY ci.round_id
), pr AS (
    -- Each touched round with its current (locked, so latest) values and what changes. A row whose
    -- xmin is this transaction was inserted, complete, by INSERT_OR_LOCK_ROUNDS just before.
    SELECT ri.*, o.xmin = pg_current_xact_id()::xid AS fresh, o.session_id AS old_session_id,
           o.prompt_tokens AS old_prompt_tokens, o.completion_tokens AS old_completion_tokens,
           o.total_tokens AS old_total_tokens, o.prompt_cached_tool_outputs AS old_pcto,
           o.compression_count AS old_compression_count, o.tokens_saved AS old_tokens_saved,
           COALESCE(o.cache_read_tokens, 0) AS old_cache_read,
           COALESCE(o.cache_write_tokens, 0) AS old_cache_write,
           COALESCE(o.reasoning_tokens, 0) AS old_reasoning,
           COALESCE(o.cost_usd, 0) AS old_cost, o.unpriced::int AS old_unpriced,
           o.model AS o_model, o.provider AS o_provider, o.completion_version AS o_completion,
           o.cost_usd AS o_cost, o.cost_source AS o_source, o.unpriced AS o_unpriced,
           COALESCE(ri.start_version < COALESCE(o.start_version, U&'\\+10FFFF'), false) AS take_start,
           COALESCE(ri.completion_version > COALESCE(o.completion_version, ''), false) AS take_completion,
           COALESCE(comp.n, 0) AS comp_n, COALESCE(comp.saved, 0) AS comp_saved
    FROM ri
    -- One index probe per batch row, whatever the planner estimates for unnest() (LIMIT keeps
    -- the subquery from being flattened into a hash join, i.e. a scan of the whole table).
    CROSS JOIN LATERAL (SELECT r.xmin, r.* FROM round_metrics r WHERE r.round_id = ri.round_id LIMIT 1) AS o
    LEFT JOIN comp ON comp.round_id = ri.round_id
), pc AS (
    -- A cost priced before sending holds if the row ends as priced (else cost_sql.py reads it back).
    SELECT pq.*, take_start OR take_completion OR comp_n > 0 OR (settled AND (o_cost, o_source, o_unpriced)
                 IS DISTINCT FROM (p_cost, p_source, p_unpriced)) AS changed
    FROM (SELECT pr.*, p_model IS NOT NULL
                       AND (CASE WHEN take_start THEN pr.model ELSE o_model END,
                            CASE WHEN take_start THEN pr.provider ELSE o_provider END,
                            CASE WHEN take_completion THEN pr.completion_version ELSE o_completion END)
                           IS NOT DISTINCT FROM (p_model, p_provider, p_completion) AS settled
          FROM pr) AS pq
), pr_changed AS (
    SELECT * FROM pc
    WHERE changed
      -- Sent without a read-back (guard): a row whose start or completion changed here and that ends
      -- priceable holds the cost priced before sending, or the batch is sent again with one.
      AND CASE WHEN %(guard)s::bool AND (take_start OR take_completion) AND NOT settled
                    AND (CASE WHEN take_start THEN model ELSE o_model END) IS NOT NULL
                    AND (CASE WHEN take_completion THEN completion_version ELSE o_completion END) <> ''
               THEN metrics_price_missed('round', round_id)
               ELSE true END
), new_r AS (
    UPDATE round_metrics r SET
        session_id = CASE WHEN p.take_start THEN p.session_id ELSE r.session_id END,
        start_version = CASE WHEN p.take_start THEN p.start_version ELSE r.start_version END,
        model = CASE WHEN p.take_start THEN p.model ELSE r.model END,
        provider = CASE WHEN p.take_start THEN p.provider ELSE r.provider END,
        started_at = CASE WHEN p.take_start THEN p.started_at ELSE r.started_at END,
        completion_version = CASE WHEN p.take_completion THEN p.completion_version
                                  ELSE r.completion_version END,
        completed_at = CASE WHEN p.take_completion THEN p.completed_at ELSE r.completed_at END,
        status = CASE WHEN p.take_completion THEN p.status ELSE r.status END,
        prompt_tokens = CASE WHEN p.take_completion THEN p.prompt_tokens ELSE r.prompt_tokens END,
        completion_tokens = CASE WHEN p.take_completion THEN p.completion_tokens ELSE r.completion_tokens END,
        total_tokens = CASE WHEN p.take_completion THEN p.total_tokens ELSE r.total_tokens END,
        prompt_cached_tool_outputs = CASE WHEN p.take_completion THEN p.prompt_cached_tool_outputs
                                          ELSE r.prompt_cached_tool_outputs END,
        error = CASE WHEN p.take_completion THEN p.error ELSE r.error END,
        cache_read_tokens = CASE WHEN p.take_completion THEN p.cache_read_tokens
                                 ELSE r.cache_read_tokens END,
        cache_write_tokens = CASE WHEN p.take_completion THEN p.cache_write_tokens
                                  ELSE r.cache_write_tokens END,
        reasoning_tokens = CASE WHEN p.take_completion THEN p.reasoning_tokens
                                ELSE r.reasoning_tokens END,
        time_to_first_token_ms = CASE WHEN p.take_completion THEN p.time_to_first_token_ms
                                      ELSE r.time_to_first_token_ms END,
        cost_usd = CASE WHEN p.settled THEN p.p_cost ELSE r.cost_usd END,
        cost_source = CASE WHEN p.settled THEN p.p_source ELSE r.cost_source END,
        unpriced = CASE WHEN p.settled THEN p.p_unpriced ELSE r.unpriced END,
        compression_count = r.compression_count + p.comp_n,
        tokens_saved = r.tokens_saved + p.comp_saved
    FROM pr_changed p
    WHERE r.round_id = p.round_id
    RETURNING r.session_id, r.prompt_tokens, r.completion_tokens, r.total_tokens,
              r.prompt_cached_tool_outputs, r.compression_count, r.tokens_saved,
              COALESCE(r.cache_read_tokens, 0) AS cache_read,
              COALESCE(r.cache_write_tokens, 0) AS cache_write,
              COALESCE(r.reasoning_tokens, 0) AS reasoning,
              COALESCE(r.cost_usd, 0) AS cost, r.unpriced::int AS unpriced
), ti AS (
    SELECT t.tool_call_id, t.round_id, t.session_id, t.start_version COLLATE "C" AS start_version,
           t.tool_name, t.started_at, t.completion_version COLLATE "C" AS completion_version,
           t.completed_at, t.success, t.error
    FROM (SELECT unnest(%(t_tool_call_id)b::text[]) AS tool_call_id,
                 unnest(%(t_round_id)b::text[]) AS round_id, unnest(%(t_session_id)b::text[]) AS session_id,
                 unnest(%(t_start_version)b::text[]) AS start_version,
                 unnest(%(t_tool_name)b::text[]) AS tool_name,
                 unnest(%(t_started_at)b::timestamptz[]) AS started_at,
                 unnest(%(t_completion_version)b::text[]) AS completion_version,
                 unnest(%(t_completed_at)b::timestamptz[]) AS completed_at,
                 unnest(%(t_success)b::bool[]) AS success, unnest(%(t_error)b::text[]) AS error) AS t
), pt AS (
    SELECT ti.*, o.xmin = pg_current_xact_id()::xid AS fresh, o.session_id AS old_session_id,
           COALESCE(ti.start_version > COALESCE(o.start_version, ''), false) AS take_start,
           COALESCE(ti.completion_version > COALESCE(o.completion_version, ''), false) AS take_completion
    FROM ti
    CROSS JOIN LATERAL (SELECT t.xmin, t.* FROM tool_call_metrics t
                        WHERE t.tool_call_id = ti.tool_call_id LIMIT 1) AS o
), pt_changed AS (
    SELECT * FROM pt WHERE take_start OR take_completion
), new_t AS (
    UPDATE tool_call_metrics t SET
        round_id = CASE WHEN p.take_start THEN p.round_id ELSE t.round_id END,
        session_id = CASE WHEN p.take_start THEN p.session_id ELSE t.session_id END,
        start_version = CASE WHEN p.take_start THEN p.start_version ELSE t.start_version END,
        tool_name = CASE WHEN p.take_start THEN p.tool_name ELSE t.tool_name END,
        started_at = CASE WHEN p.take_start THEN p.started_at ELSE t.started_at END,
        completion_version = CASE WHEN p.take_completion THEN p.completion_version
                                  ELSE t.completion_version END,
        completed_at = CASE WHEN p.take_completion THEN p.completed_at ELSE t.completed_at END,
        success = CASE WHEN p.take_completion THEN p.success ELSE t.success END,
        error = CASE WHEN p.take_completion THEN p.error ELSE t.error END
    FROM pt_changed p
    WHERE t.tool_call_id = p.tool_call_id
    RETURNING t.session_id
), deltas AS (
    SELECT session_id, sum(rounds) AS rounds, sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens, sum(total_tokens) AS total_tokens,
           sum(pcto) AS pcto, sum(compressions) AS compressions, sum(tokens_saved) AS tokens_saved,
           sum(tools) AS tools, sum(cache_read) AS cache_read, sum(cache_write) AS cache_write,
           sum(reasoning) AS reasoning, sum(cost) AS cost, sum(unpriced) AS unpriced
    FROM (
        SELECT session_id, 1 AS rounds, prompt_tokens, completion_tokens, total_tokens,
               prompt_cached_tool_outputs AS pcto, compression_count AS compressions, tokens_saved,
               0 AS tools, cache_read, cache_write, reasoning, cost, unpriced
        FROM new_r
        UNION ALL
        SELECT old_session_id, -1, -old_prompt_tokens, -old_completion_tokens, -old_total_tokens,
               -old_pcto, -old_compression_count, -old_tokens_saved, 0,
               -old_cache_read, -old_cache_write, -old_reasoning, -old_cost, -old_unpriced
        FROM pr_changed WHERE NOT fresh
        UNION ALL
        SELECT old_session_id, 1, old_prompt_tokens, old_completion_tokens, old_total_tokens,
               old_pcto, old_compression_count, old_tokens_saved, 0,
               old_cache_read, old_cache_write, old_reasoning, old_cost, old_unpriced
        FROM pc WHERE fresh AND NOT changed
        UNION ALL
        SELECT session_id, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0 FROM new_t
        UNION ALL
        SELECT old_session_id, 0, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0 FROM pt_changed WHERE NOT fresh
        UNION ALL
        SELECT old_session_id, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0
        FROM pt WHERE fresh AND NOT (take_start OR take_completion)
    ) AS d
    GROUP BY session_id
), si AS (
    SELECT t.session_id, t.started_at, t.model, t.user_id, t.model_version COLLATE "C" AS model_version,
           t.status, t.completed_at, t.status_version COLLATE "C" AS status_version, t.message_count,
           t.message_count_version COLLATE "C" AS message_count_version, t.updated_at
    FROM (SELECT unnest(%(s_session_id)b::text[]) AS session_id,
                 unnest(%(s_started_at)b::timestamptz[]) AS started_at, unnest(%(s_model)b::text[]) AS model,
                 unnest(%(s_user_id)b::text[]) AS user_id,
                 unnest(%(s_model_version)b::text[]) AS model_version, unnest(%(s_status)b::text[]) AS status,
                 unnest(%(s_completed_at)b::timestamptz[]) AS completed_at,
                 unnest(%(s_status_version)b::text[]) AS status_version,
                 unnest(%(s_message_count)b::int8[]) AS message_count,
                 unnest(%(s_message_count_version)b::text[]) AS message_count_version,
                 unnest(%(s_updated_at)b::timestamptz[]) AS updated_at) AS t
)
INSERT INTO session_metrics AS s (
    session_id, started_at, model, user_id, model_version, status, completed_at, status_version,
    message_count, message_count_version, updated_at,
    total_rounds, prompt_tokens, completion_tokens, total_tokens, prompt_cached_tool_outputs,
    total_compression_events, total_tokens_saved, tool_call_count,
    cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, unpriced_rounds)
SELECT session_id, si.started_at, si.model, si.user_id, si.model_version, COALESCE(si.status, 'running'),
       si.completed_at, si.status_version, COALESCE(si.message_count, 0), si.message_count_version,
       COALESCE(si.updated_at, '-infinity'),
       COALESCE(d.rounds, 0), COALESCE(d.prompt_tokens, 0), COALESCE(d.completion_tokens, 0),
       COALESCE(d.total_tokens, 0), COALESCE(d.pcto, 0), COALESCE(d.compressions, 0),
       COALESCE(d.tokens_saved, 0), COALESCE(d.tools, 0),
       COALESCE(d.cache_read, 0), COALESCE(d.cache_write, 0), COALESCE(d.reasoning, 0),
       COALESCE(d.cost, 0), COALESCE(d.unpriced, 0)
FROM si FULL JOIN deltas d USING (session_id)
ORDER BY session_id
ON CONFLICT (session_id) DO UPDATE SET
    started_at = LEAST(s.started_at, EXCLUDED.started_at),
    model = CASE WHEN EXCLUDED.model_version > COALESCE(s.model_version, '')
                 THEN EXCLUDED.model ELSE s.model END,
    user_id = CASE WHEN EXCLUDED.model_version > COALESCE(s.model_version, '')
                   THEN EXCLUDED.user_id ELSE s.user_id END,
    model_version = GREATEST(s.model_version, EXCLUDED.model_version),
    status = CASE WHEN EXCLUDED.status_version > COALESCE(s.status_version, '') THEN EXCLUDED.status
                  WHEN s.reconciled_at IS NOT NULL AND EXCLUDED.updated_at > s.updated_at THEN 'running'
                  ELSE s.status END,
    completed_at = CASE WHEN EXCLUDED.status_version > COALESCE(s.status_version, '')
                        THEN EXCLUDED.completed_at
                        WHEN s.reconciled_at IS NOT NULL AND EXCLUDED.updated_at > s.updated_at THEN NULL
                        ELSE s.completed_at END,
    status_version = GREATEST(s.status_version, EXCLUDED.status_version),
    reconciled_at = CASE WHEN EXCLUDED.status_version > COALESCE(s.status_version, '')
                           OR EXCLUDED.updated_at > s.updated_at THEN NULL
                         ELSE s.reconciled_at END,
    message_count = CASE WHEN EXCLUDED.message_count_version > COALESCE(s.message_count_version, '')
                         THEN EXCLUDED.message_count ELSE s.message_count END,
    message_count_version = GREATEST(s.message_count_version, EXCLUDED.message_count_version),
    updated_at = GREATEST(s.updated_at, EXCLUDED.updated_at),
    total_rounds = s.total_rounds + EXCLUDED.total_rounds,
    prompt_tokens = s.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = s.completion_tokens + EXCLUDED.completion_tokens,
    total_tokens = s.total_tokens + EXCLUDED.total_tokens,
    prompt_cached_tool_outputs = s.prompt_cached_tool_outputs + EXCLUDED.prompt_cached_tool_outputs,
    total_compression_events = s.total_compression_events + EXCLUDED.total_compression_events,
    total_tokens_saved = s.total_tokens_saved + EXCLUDED.total_tokens_saved,
    tool_call_count = s.tool_call_count + EXCLUDED.tool_call_count,
    cache_read_tokens = s.cache_read_tokens + EXCLUDED.cache_read_tokens,
    cache_write_tokens = s.cache_write_tokens + EXCLUDED.cache_write_tokens,
    reasoning_tokens = s.reasoning_tokens + EXCLUDED.reasoning_tokens,
    cost_usd = s.cost_usd + EXCLUDED.cost_usd,
    unpriced_rounds = s.unpriced_rounds + EXCLUDED.unpriced_rounds
"""
