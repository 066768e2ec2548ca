"""A forward request's apply: one upsert per batch (step 3 of the order in worker/engine/sql.py).

Forwards touch no session and no other table, so the merge is all in the ON CONFLICT clause, which
always sees the latest row version; a forward whose start came in the same batch is priced here
(worker/engine/costing.py), and so, when sent without a read-back, is one whose start an earlier
batch brought (else the read-back prices it, worker/engine/cost_sql.py).
"""

from __future__ import annotations

# A completion takes effect only if it is later than the latest start; a later start resets it.
# Sent without a read-back (guard), a forward whose start came in an earlier batch carries the
# start's model and provider as priced (p_*) in its start columns, which the ON CONFLICT clause
# never takes from a row without a start (start_version NULL): there they name the guess only.
# Such a row that does not exist yet would be inserted with them, so it stops the transaction
# (stray), as does a row whose start or completion changed here and that ends priceable but not
# as priced (cost_sql.FORWARD_COSTS' rule, here in the same upsert: one row version, not two).
APPLY_FORWARDS = """
WITH w AS (
INSERT INTO forward_request_metrics AS f (
    forward_id, start_version, endpoint, model, is_stream, started_at,
    completion_version, completed_at, status_code, status,
    prompt_tokens, completion_tokens, total_tokens, error, updated_at,
    provider, session_id, round_id, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    time_to_first_token_ms, cost_usd, cost_source, unpriced)
SELECT forward_id, start_version, endpoint, CASE WHEN guess THEN p_model ELSE model END, is_stream,
       started_at,
       completion_version, completed_at, status_code, COALESCE(status, 'pending'),
       prompt_tokens, completion_tokens, total_tokens, error, updated_at,
       CASE WHEN guess THEN p_provider ELSE provider END, session_id, round_id,
       cache_read_tokens, cache_write_tokens, reasoning_tokens, time_to_first_token_ms,
       -- priced before sending from this batch's own start and completion, or (guess) an earlier start
       CASE WHEN own OR guess THEN p_cost::numeric END, CASE WHEN own OR guess THEN p_source END,
       COALESCE((own OR guess) AND p_unpriced, false)
FROM (SELECT t.*, COALESCE(t.start_version IS NOT NULL AND t.model = t.p_model
                           AND t.provider IS NOT DISTINCT FROM t.p_provider
                           AND t.completion_version = t.p_completion, false) AS own,
             COALESCE(%(guard)s::bool AND t.start_version IS NULL AND t.p_completion IS NOT NULL, false)
                 AS guess
      FROM (SELECT unnest(%(forward_id)b::text[]) AS forward_id,
                   unnest(%(start_version)b::text[]) AS start_version,
                   unnest(%(endpoint)b::text[]) AS endpoint, unnest(%(model)b::text[]) AS model,
                   unnest(%(is_stream)b::bool[]) AS is_stream,
                   unnest(%(started_at)b::timestamptz[]) AS started_at,
                   unnest(%(completion_version)b::text[]) AS completion_version,
                   unnest(%(completed_at)b::timestamptz[]) AS completed_at,
                   unnest(%(status_code)b::int4[]) AS status_code, unnest(%(status)b::text[]) AS status,
                   unnest(%(prompt_tokens)b::int8[]) AS prompt_tokens,
                   unnest(%(completion_tokens)b::int8[]) AS completion_tokens,
                   unnest(%(total_tokens)b::int8[]) AS total_tokens, unnest(%(error)b::text[]) AS error,
                   unnest(%(updated_at)b::timestamptz[]) AS updated_at,
                   unnest(%(provider)b::text[]) AS provider, unnest(%(session_id)b::text[]) AS session_id,
                   unnest(%(round_id)b::text[]) AS round_id,
                   unnest(%(cache_read_tokens)b::int8[]) AS cache_read_tokens,
                   unnest(%(cache_write_tokens)b::int8[]) AS cache_write_tokens,
                   unnest(%(reasoning_tokens)b::int8[]) AS reasoning_tokens,
                   unnest(%(time_to_first_token_ms)b::int8[]) AS time_to_first_token_ms,
                   unnest(%(p_cost)b::text[]) AS p_cost, unnest(%(p_source)b::text[]) AS p_source,
                   unnest(%(p_unpriced)b::bool[]) AS p_unpriced, unnest(%(p_model)b::text[]) AS p_model,
                   unnest(%(p_provider)b::text[]) AS p_provider,
                   unnest(%(p_completion)b::text[]) AS p_completion) AS t) AS t
ORDER BY forward_id
ON CONFLICT (forward_id) DO UPDATE SET
    start_version = GREATEST(f.start_version, EXCLUDED.start_version),
    endpoint   = CASE WHEN EXCLUDED.start_version > COALESCE(f.start_version, '')
                      THEN EXCLUDED.endpoint ELSE f.endpoint END,
    model      = CASE WHEN EXCLUDED.start_version > COALESCE(f.start_version, '')
                      THEN EXCLUDED.model ELSE f.model END,
    is_stream  = CASE WHEN EXCLUDED.start_version > COALESCE(f.start_version, '')
                      THEN EXCLUDED.is_stream ELSE f.is_stream END,
    started_at = CASE WHEN EXCLUDED.start_version > COALESCE(f.start_version, '')
                      THEN EXCLUDED.started_at ELSE f.started_at END,
    provider   = CASE WHEN EXCLUDED.start_version > COALESCE(f.start_version, '')
                      THEN EXCLUDED.provider ELSE f.provider END,
    session_id = CASE WHEN EXCLUDED.start_version > COALESCE(f.start_version, '')
                      THEN EXCLUDED.session_id ELSE f.session_id END,
    round_id   = CASE WHEN EXCLUDED.start_version > COALESCE(f.start_version, '')
                      THEN EXCLUDED.round_id ELSE f.round_id END,
    (completion_version, completed_at, status_code, status,
     prompt_tokens, completion_tokens, total_tokens, error,
     cache_read_tokens, cache_write_tokens, reasoning_tokens, time_to_first_token_ms,
     cost_usd, cost_source, unpriced) = (
        SELECT c.completion_version, c.completed_at, c.status_code, COALESCE(c.status, 'pending'),
               c.prompt_tokens, c.completion_tokens, c.total_tokens, c.error,
               c.cache_read_tokens, c.cache_write_tokens, c.reasoning_tokens, c.time_to_first_token_ms,
               CASE WHEN g.settled THEN EXCLUDED.cost_usd ELSE c.cost_usd END,
               CASE WHEN g.settled THEN EXCLUDED.cost_source ELSE c.cost_source END,
               CASE WHEN g.settled THEN EXCLUDED.unpriced ELSE c.unpriced END
        FROM (SELECT * FROM (
              SELECT f.completion_version, f.completed_at, f.status_code, f.status,
                     f.prompt_tokens, f.completion_tokens, f.total_tokens, f.error,
                     f.cache_read_tokens, f.cache_write_tokens, f.reasoning_tokens, f.time_to_first_token_ms,
                     f.cost_usd, f.cost_source, f.unpriced
              UNION ALL
              -- its cost priced before sending holds if its own start is the row's
              SELECT EXCLUDED.completion_version, EXCLUDED.completed_at, EXCLUDED.status_code,
                     EXCLUDED.status, EXCLUDED.prompt_tokens, EXCLUDED.completion_tokens,
                     EXCLUDED.total_tokens, EXCLUDED.error, EXCLUDED.cache_read_tokens,
                     EXCLUDED.cache_write_tokens, EXCLUDED.reasoning_tokens, EXCLUDED.time_to_first_token_ms,
                     CASE WHEN x.own THEN EXCLUDED.cost_usd ELSE f.cost_usd END,
                     CASE WHEN x.own THEN EXCLUDED.cost_source ELSE f.cost_source END,
                     CASE WHEN x.own THEN EXCLUDED.unpriced ELSE f.unpriced END
              FROM (SELECT COALESCE((EXCLUDED.cost_source IS NOT NULL OR EXCLUDED.unpriced)
                                    AND EXCLUDED.start_version >= COALESCE(f.start_version, ''), false)
                               AS own) AS x
              WHERE EXCLUDED.completion_version IS NOT NULL  -- none: the NULL row below (no cost)
              UNION ALL
              SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                     NULL, NULL, false) AS c0
        -- the latest completion if it is later than the latest start, else none (the NULL row)
        WHERE c0.completion_version IS NULL
           OR c0.completion_version > COALESCE(GREATEST(f.start_version, EXCLUDED.start_version), '')
        ORDER BY c0.completion_version DESC NULLS LAST
        LIMIT 1) AS c
        -- the row as it ends (m: its model); settled: it ends as the guess was priced (guard only)
        CROSS JOIN LATERAL (SELECT CASE WHEN EXCLUDED.start_version > COALESCE(f.start_version, '')
                                        THEN EXCLUDED.model ELSE f.model END AS m,
                                   CASE WHEN EXCLUDED.start_version > COALESCE(f.start_version, '')
                                        THEN EXCLUDED.provider ELSE f.provider END AS p) AS e
        CROSS JOIN LATERAL (SELECT COALESCE(%(guard)s::bool AND e.m = EXCLUDED.model
                                            AND e.p IS NOT DISTINCT FROM EXCLUDED.provider
                                            AND c.completion_version = EXCLUDED.completion_version, false)
                                       AS settled) AS g
        WHERE CASE WHEN %(guard)s::bool AND NOT g.settled
                        AND COALESCE(GREATEST(f.start_version, EXCLUDED.start_version)
                                         = EXCLUDED.start_version
                                     OR c.completion_version = EXCLUDED.completion_version, false)
                        AND COALESCE(e.m IS NOT NULL AND c.completed_at IS NOT NULL
                                     AND c.completion_version <> ''
                                     AND right(c.completion_version, 11) <> '|reconciled', false)
                   THEN metrics_price_missed('forward', EXCLUDED.forward_id)
                   ELSE true END),
    updated_at = GREATEST(f.updated_at, EXCLUDED.updated_at)
RETURNING f.forward_id, f.start_version IS NULL AND f.model IS NOT NULL AS stray
)
SELECT metrics_price_missed('forward', w.forward_id) FROM w WHERE w.stray
"""
