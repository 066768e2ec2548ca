"""Liveness: how a producer in any language says that a session is still open.

The reconcile job (``worker/maintenance/reconcile.py``, every minute) closes sessions that agents
left open when they died. A producer keeps its open sessions out of its reach through two Redis
sorted sets, named after the base stream (``METRICS_STREAM``), one pair per deployment whatever
the number of shards (``contract.keys.Keys``):

- ``<stream>:hints:active`` (``Keys.active_sessions``), the **heartbeats**: member = the
  session_id exactly as in the events, score = the unix time in seconds (fractions allowed) until
  which the session counts as alive, the producer's clock now + :data:`HEARTBEAT_TTL_S`.
  ``ZADD <key> <now + ttl> <session_id>`` when the session starts, then every
  :data:`HEARTBEAT_INTERVAL_S` for every session still open (one ZADD may carry them all; the
  beat goes on while the session waits for its user).
- ``<stream>:hints:awaiting`` (``Keys.awaiting_sessions``), the **awaiting marks**: member =
  session_id, score = the unix time in seconds when the agent began waiting for its user's answer.
  ``ZADD`` when it starts waiting, ``ZREM`` when the user answers. A mark keeps nothing alive: it
  says how to close the session if its heartbeat stops (``awaiting_response``, not ``completed``).
- On ``session.completed``: ``ZREM`` the session from both sets. A process that exits with
  sessions still open removes them from the heartbeats (leaving their awaiting marks), so
  reconcile can close them once idle; one that dies without doing so stops beating, and its
  heartbeats expire after the TTL.
- On a Redis Cluster the two keys carry no hash tag: each lives in the slot of its whole name,
  and any cluster client sends each command to the right master. They may be on different
  masters: write them with separate commands, never in one MULTI or script.

The TTL must exceed the interval with room for a missed beat and a slow round trip (the Python
producer's defaults, ``METRICS_HEARTBEAT_INTERVAL`` / ``METRICS_HEARTBEAT_TTL``, are the values
below), and be far below ``METRICS_RECONCILE_GRACE``; the producers' clocks and the maintenance
host's must agree to well within the TTL. A heartbeat writes to Redis only, never to PostgreSQL.

**What reconcile does.** At each run it reads both sets (a session is alive while its heartbeat
score is greater than the run's clock) and closes every session that is running (started, not
completed), has no live heartbeat, and whose latest event (by ``occurred_at``, the session's
``updated_at``) is older than ``METRICS_RECONCILE_GRACE`` (default 10 minutes): its status
becomes ``awaiting_response`` if it has an awaiting mark, else ``completed`` (its completed_at
is the time of the run), and its running rounds become ``error`` (``reconciled_stale_round``).
A live heartbeat keeps the session's rounds running too. So a session whose producer never
heartbeats (one that does not implement this, or an ingest path with no client behind it, such as
an OpenTelemetry bridge) is closed after the grace of inactivity. Forwards have no heartbeat: a
forward pending for longer than the grace becomes ``error`` (``reconciled_stale_forward``).
Prune (daily) drops expired heartbeats and awaiting marks older than ``METRICS_RETENTION``.

Why sorted sets and not a heartbeat event: a new event type would be dead-lettered by every
worker already deployed (an unknown ``type`` is refused, and ``v`` stays 1), and each beat of
each open session would become a stream entry and a PostgreSQL write; a ZADD per interval per
process costs Redis one command, works with any client that can XADD, and is what the Python
producer and reconcile already do.
"""

from __future__ import annotations

#: Seconds between two heartbeats of an open session.
HEARTBEAT_INTERVAL_S = 5.0
#: Seconds a heartbeat keeps its session alive: its score is the producer's clock + this.
HEARTBEAT_TTL_S = 30.0
