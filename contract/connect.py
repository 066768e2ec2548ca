"""How every process of the pipeline reaches its Redis: one server, or a Redis Cluster.

``REDIS_URL`` may name one Redis or any node of a cluster; ``connect`` asks the node
(``INFO cluster``) and returns redis-py's ``RedisCluster`` or a plain ``Redis``, so no setting
says which. Here, not in producer/ or worker/, because both sides need the same answer and the
same key placement (contract/keys.py picks shard tags by it), and neither may import the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeAlias

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    RedisClusterException,
    TryAgainError,
)

from contract.exits import CommandError, ExitCode
from contract.keys import Keys, slot_of
from contract.urls import mask_url

Client: TypeAlias = "redis.Redis | RedisCluster"

#: Errors after which the same request can succeed later: the server (or a cluster node) is away,
#: loading, failing over, or a slot moved under a client that sent to its old master.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,
    TryAgainError,
    AskError,  # and MovedError, its subclass
    RedisClusterException,  # SlotNotCoveredError, "Redis Cluster cannot be connected"
)


def is_cluster_node(url: str, **kwargs: Any) -> bool:
    """Whether the server at ``url`` runs in cluster mode. Raises redis.ConnectionError if it
    does not answer."""
    with redis.Redis.from_url(url, **kwargs) as probe:
        info: Any = probe.info("cluster")
    return bool(int(info.get("cluster_enabled", 0)))


def connect(url: str, **kwargs: Any) -> Client:
    """A client for ``url``: ``RedisCluster`` when the node is in cluster mode, else ``Redis``.
    ``kwargs`` go to every connection (timeouts, retries). Connects once, to tell which; raises
    redis.ConnectionError when nothing answers (callers retry as for any outage)."""
    if not is_cluster_node(url, **kwargs):
        return redis.Redis.from_url(url, **kwargs)
    try:
        return RedisCluster.from_url(url, **kwargs)
    except RedisClusterException as exc:  # the node answered but the cluster cannot be mapped now
        raise redis.ConnectionError(f"Redis Cluster at {safe_url(url)}: {exc}") from exc


def is_cluster(client: Client) -> bool:
    return isinstance(client, RedisCluster)


def placed(keys: Keys, client: Client) -> Keys:
    """``keys`` with the shard tags for where they live: a cluster spreads them over masters."""
    return dataclasses.replace(keys, cluster=is_cluster(client))


def describe(client: Client) -> str:
    """The mode, for a command's start-up log line."""
    if isinstance(client, RedisCluster):
        masters = sorted(n.name for n in client.get_primaries())  # type: ignore[no-untyped-call]
        return f"Redis Cluster mode, {len(masters)} masters ({', '.join(masters)})"
    kw = client.connection_pool.connection_kwargs
    where = kw.get("path") or f"{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}"
    return f"single Redis mode ({where}, db {kw.get('db', 0)})"


def node_for(client: Client, key: str) -> tuple[str, redis.Redis]:
    """(node name, a plain client of the master holding ``key``'s slot); on one Redis, the client
    itself. A command sent this way costs one round trip: RedisCluster would first ask the
    server for the keys of commands like XREADGROUP (COMMAND GETKEYS) to find their slot."""
    if not isinstance(client, RedisCluster):
        return "", client
    node: ClusterNode = client.nodes_manager.get_node_from_slot(slot_of(key))
    return node.name, client.get_redis_connection(node)


def by_node(client: Client, keys: list[str]) -> dict[str, tuple[redis.Redis, list[str]]]:
    """``keys`` grouped by the master holding them: node name -> (its plain client, its keys), in
    the order given; one group on one Redis. A pipeline per group is one round trip per master,
    and may carry scripts, which redis-py's cluster pipelines cannot."""
    out: dict[str, tuple[redis.Redis, list[str]]] = {}
    for key in keys:
        name, node = node_for(client, key)
        out.setdefault(name, (node, []))[1].append(key)
    return out


def refresh(client: Client) -> None:
    """Ask the cluster for its slot map again (after a failover or a MOVED); no-op on one Redis."""
    if isinstance(client, RedisCluster):
        client.nodes_manager.initialize()


def safe_url(url: str) -> str:
    """The URL without its password, for messages (contract.urls.mask_url)."""
    return mask_url(url)


_CHECK_REDIS = " (check --redis-url / REDIS_URL)"


class RedisRefused(CommandError):
    """Redis answered and refused the request (a wrong type, a missing permission): a usage error."""

    exit_code = ExitCode.USAGE
    prefix = "Redis refused it: "


class RedisUnavailable(CommandError):
    """Redis (or a cluster node) did not answer, or the cluster cannot serve now: retry later."""

    exit_code = ExitCode.UNAVAILABLE
    prefix = "Redis: "
    hint = _CHECK_REDIS


class ClusterUnavailable(RedisUnavailable):
    prefix = "Redis Cluster: "


def redis_failure(exc: Exception) -> CommandError | None:
    """A Redis error as a console script reports it (contract.exits.run's translator); None for any
    other error. The one place redis-py's errors get their exit codes."""
    if isinstance(exc, redis.ResponseError):
        return RedisRefused(str(exc))
    if isinstance(exc, redis.RedisError):
        return RedisUnavailable(str(exc))
    if isinstance(exc, RedisClusterException):
        return ClusterUnavailable(str(exc))
    return None
