"""The pricer's SQL: read the priced inputs of a batch's rows, then write the costs that changed;
or, when every completion of a batch was priced before sending and APPLY_FORWARDS cannot settle
the forwards' guesses itself, settle them.

All run in the apply transaction after the main statements (worker/engine/sql.py), which locked
every row they name: PRICE_INPUTS reads each row as this transaction left it, and APPLY_COSTS
writes rounds, then forwards (locked already), then the sessions' cost sums in key order. A round's
cost moves with it between sessions in the main statement; here its session gains the difference
between the new cost and the old one, so the sums stay deltas (no recompute of a session's rounds).
The roll-up triggers see the changed rows and move their cost between buckets exactly.
"""

from __future__ import annotations

# The rows whose cost may be set or cleared: priceable ones (started, completed) and priced ones,
# but for the rounds whose cost the main statement wrote as predicted (p_*: NULL when none was).
PRICE_INPUTS = """
SELECT 'r' AS kind, r.round_id, r.model, r.provider, r.completed_at, r.completion_version,
       r.prompt_tokens, r.completion_tokens, r.cache_read_tokens, r.cache_write_tokens, r.reasoning_tokens,
       r.cost_usd, r.cost_source, r.unpriced
FROM (SELECT unnest(%(round_id)b::text[]) AS id, unnest(%(p_model)b::text[]) AS p_model,
             unnest(%(p_provider)b::text[]) AS p_provider,
             unnest(%(p_completion)b::text[]) AS p_completion) AS k
CROSS JOIN LATERAL (SELECT * FROM round_metrics r WHERE r.round_id = k.id LIMIT 1) AS r
WHERE ((r.model IS NOT NULL AND r.completion_version IS NOT NULL) OR r.cost_usd IS NOT NULL OR r.unpriced)
  -- a row that ends as it was priced before sending holds its cost already
  AND NOT COALESCE(r.model = k.p_model AND r.provider IS NOT DISTINCT FROM k.p_provider
                   AND r.completion_version = k.p_completion COLLATE "C", false)
UNION ALL
SELECT 'f', f.forward_id, f.model, f.provider, f.completed_at, f.completion_version,
       f.prompt_tokens, f.completion_tokens, f.cache_read_tokens, f.cache_write_tokens, f.reasoning_tokens,
       f.cost_usd, f.cost_source, f.unpriced
FROM (SELECT unnest(%(forward_id)b::text[]) AS id) AS k
CROSS JOIN LATERAL (SELECT * FROM forward_request_metrics f WHERE f.forward_id = k.id LIMIT 1) AS f
WHERE (f.model IS NOT NULL AND f.completion_version IS NOT NULL) OR f.cost_usd IS NOT NULL OR f.unpriced
"""

# Costs travel as text (exact decimal strings) and are cast to numeric here.
APPLY_COSTS = """
WITH rc AS (
    SELECT * FROM (SELECT unnest(%(r_id)b::text[]) AS round_id, unnest(%(r_cost)b::text[]) AS cost,
                          unnest(%(r_source)b::text[]) AS source,
                          unnest(%(r_unpriced)b::bool[]) AS unpriced) AS t
), ro AS (
    SELECT rc.round_id, rc.cost::numeric AS cost, rc.source, rc.unpriced, o.session_id,
           COALESCE(o.cost_usd, 0) AS old_cost, o.unpriced::int AS old_unpriced
    FROM rc
    CROSS JOIN LATERAL (SELECT r.session_id, r.cost_usd, r.unpriced FROM round_metrics r
                        WHERE r.round_id = rc.round_id LIMIT 1) AS o
), new_r AS (
    UPDATE round_metrics r SET cost_usd = ro.cost, cost_source = ro.source, unpriced = ro.unpriced
    FROM ro
    -- = ANY(...) lets the planner probe the primary key rather than scan the table for the join
    WHERE r.round_id = ANY(%(r_id)b::text[]) AND r.round_id = ro.round_id
    RETURNING r.round_id
), fc AS (
    SELECT * FROM (SELECT unnest(%(f_id)b::text[]) AS forward_id, unnest(%(f_cost)b::text[]) AS cost,
                          unnest(%(f_source)b::text[]) AS source,
                          unnest(%(f_unpriced)b::bool[]) AS unpriced) AS t
), new_f AS (
    UPDATE forward_request_metrics f SET cost_usd = fc.cost::numeric, cost_source = fc.source,
                                         unpriced = fc.unpriced
    FROM fc
    WHERE f.forward_id = ANY(%(f_id)b::text[]) AND f.forward_id = fc.forward_id
    RETURNING f.forward_id
)
INSERT INTO session_metrics AS s (session_id, updated_at, cost_usd, unpriced_rounds)
SELECT ro.session_id, '-infinity', sum(COALESCE(ro.cost, 0) - ro.old_cost),
       sum(ro.unpriced::int - ro.old_unpriced)
FROM ro JOIN new_r USING (round_id)
GROUP BY ro.session_id
ORDER BY ro.session_id
ON CONFLICT (session_id) DO UPDATE SET
    cost_usd = s.cost_usd + EXCLUDED.cost_usd,
    unpriced_rounds = s.unpriced_rounds + EXCLUDED.unpriced_rounds
"""

# Sent without a read-back (every completion in the batch was priced before sending, apply.py),
# when APPLY_FORWARDS cannot settle the guesses itself (a forward priced for an earlier batch's
# start whose older start came in this one, apply._foldable): the forwards whose start came in an
# earlier batch get their guessed cost if the row ends as guessed (APPLY_FORWARDS wrote those
# whose own start came with them). A row whose start or
# completion changed here (its version is the row's now) and that ends priceable but not as guessed
# stops the transaction (metrics_price_missed): the batch is sent again with PRICE_INPUTS.
FORWARD_COSTS = """
WITH p AS (
    SELECT * FROM (SELECT unnest(%(forward_id)b::text[]) AS forward_id,
                          unnest(%(start_version)b::text[]) AS start_version,
                          unnest(%(completion_version)b::text[]) AS completion_version,
                          unnest(%(p_cost)b::text[]) AS cost, unnest(%(p_source)b::text[]) AS source,
                          unnest(%(p_unpriced)b::bool[]) AS unpriced, unnest(%(p_model)b::text[]) AS p_model,
                          unnest(%(p_provider)b::text[]) AS p_provider,
                          unnest(%(p_completion)b::text[]) AS p_completion) AS t
), cur AS (
    SELECT p.forward_id, p.cost::numeric AS cost, p.source, p.unpriced,
           COALESCE(f.start_version = p.start_version OR f.completion_version = p.completion_version, false)
               AS touched,
           COALESCE(f.model IS NOT NULL AND f.completed_at IS NOT NULL AND f.completion_version <> ''
                    AND right(f.completion_version, 11) <> '|reconciled', false) AS priceable,
           COALESCE(f.model = p.p_model AND f.provider IS NOT DISTINCT FROM p.p_provider
                    AND f.completion_version = p.p_completion, false) AS settled,
           (f.cost_usd, f.cost_source, f.unpriced) IS DISTINCT FROM (p.cost::numeric, p.source, p.unpriced)
               AS differs
    FROM p
    CROSS JOIN LATERAL (SELECT * FROM forward_request_metrics f
                        WHERE f.forward_id = p.forward_id LIMIT 1) AS f
)
UPDATE forward_request_metrics f SET cost_usd = c.cost, cost_source = c.source, unpriced = c.unpriced
FROM cur c
WHERE f.forward_id = ANY(%(forward_id)b::text[]) AND f.forward_id = c.forward_id
  AND CASE WHEN c.settled THEN c.differs
           WHEN c.touched AND c.priceable THEN metrics_price_missed('forward', c.forward_id)
           ELSE false END
"""
