"""Where the RQ scheduler and its queue live: a plain Redis, since RQ does not support Redis Cluster
(it uses multi-key commands across slots).

``METRICS_SCHEDULER_REDIS_URL`` names it; unset, it is ``REDIS_URL`` when that is one Redis. With
the data on a cluster, a small standalone Redis of its own holds the schedule and the queue: the
jobs still reach the data through ``REDIS_URL`` (worker/maintenance/jobs.py).
"""

from __future__ import annotations

import os

import redis

from contract.connect import is_cluster_node, safe_url
from worker.settings import DEFAULT_REDIS_URL

VARIABLE = "METRICS_SCHEDULER_REDIS_URL"


def scheduler_redis_url(env: dict[str, str] | None = None) -> str:
    """The URL for ``rq cron`` and ``rq worker``. Raises ValueError, in one line, when the URL it
    would use is a Redis Cluster node."""
    e = os.environ if env is None else env
    own = e.get(VARIABLE)
    url = own or e.get("REDIS_URL") or DEFAULT_REDIS_URL
    try:
        cluster = is_cluster_node(url, socket_connect_timeout=5, socket_timeout=5)
    except redis.RedisError:  # away now: RQ will say so itself; nothing says it is a cluster
        return url
    if cluster and own:
        raise ValueError(
            f"{VARIABLE}: {safe_url(url)} is a Redis Cluster node, and RQ does not support Redis Cluster; "
            "name a plain Redis"
        )
    if cluster:
        raise ValueError(
            f"REDIS_URL: {safe_url(url)} is a Redis Cluster, which RQ (the maintenance scheduler and its "
            f"queue) does not support; set {VARIABLE} to a plain Redis for them (jobs still use REDIS_URL)"
        )
    return url
