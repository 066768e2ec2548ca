"""One run of a real client against ``metrics-otlp``: what its in-memory exporter saw, and each
export's result; shared by the tests on one Redis and on the local Redis Cluster."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tests.otlp.expect import Seen
from tests.otlp.installs import CLIENTS, client_python, node_clients
from tests.otlp.receiver import run_client


@dataclass(frozen=True)
class Run:
    seen: Seen
    exports: list[str]
    conversation: str

    def assert_exported(self) -> None:
        """Every export (re-sends included) answered success."""
        assert self.exports and all(e.removeprefix("resent: ").startswith("SUCCESS") for e in self.exports), (
            self.exports
        )


def script(name: str, *args: str) -> list[str]:
    """A client script of tests/otlp/clients, run by the clients' own interpreter."""
    return [str(client_python()), str(CLIENTS / name), *args]


def sdk_session(exporter: str, env: dict[str, str], *more: str) -> Run:
    """The agent instrumented by hand with the Python SDK (clients/sdk_session.py)."""
    conversation, user = f"conv-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:6]}"
    done = run_client(
        script(
            "sdk_session.py", "--exporter", exporter, "--conversation", conversation, "--user", user, *more
        ),
        env,
    )
    return Run(Seen.of(done.stdout), Seen.exports(done.stdout), conversation)


def node_session(env: dict[str, str]) -> Run:
    """The agent instrumented by hand with the JavaScript SDK (node/session.js)."""
    conversation = f"conv-{uuid.uuid4().hex[:8]}"
    done = run_client(
        ["node", str(node_clients() / "session.js"), "--conversation", conversation, "--user", "user-js"], env
    )
    return Run(Seen.of(done.stdout), Seen.exports(done.stdout), conversation)
