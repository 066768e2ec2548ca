"""The demo's child processes: started in sessions of their own, waited for, stopped on the way out.

Each child runs in its own session, so a Ctrl-C in the demo's terminal reaches the demo alone; the
demo then stops them (TERM, then KILL) in an order it controls, and says nothing more than that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

#: The console scripts next to this interpreter (the venv's ``bin``).
BIN = Path(sys.executable).parent
#: Children get this long to come up (the API to answer, the first session to be applied).
START_TIMEOUT = 90.0


def say(message: str) -> None:
    """One line of the demo's own, on stderr (stdout carries the results and the commands)."""
    print(f"demo: {message}", file=sys.stderr, flush=True)


class Processes:
    """Children started by the demo; all of them are stopped (TERM, then KILL) on exit."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.children.append((name, proc))
        return proc

    def stopped(self) -> list[str]:
        """The children that have exited (none should, before stop())."""
        return [name for name, proc in self.children if proc.poll() is not None]

    def stop(self) -> None:
        for _, proc in self.children:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in self.children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop within 15 s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.children.clear()

    def wait_for(self, what: str, found: Callable[[], str | None], timeout: float = START_TIMEOUT) -> str:
        """Poll ``found`` until it gives a value; RuntimeError if a child stops or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = self.stopped()
            if dead:
                raise RuntimeError(f"waiting for {what}, these stopped (see their logs): {', '.join(dead)}")
            value = found()
            if value:
                return value
            time.sleep(0.2)
        raise RuntimeError(f"no {what} within {timeout:.0f} s (see the logs)")


def run_in_foreground(argv: list[str], env: dict[str, str]) -> int:
    """Run one child to its end, its output on the demo's; on Ctrl-C, stop it with TERM (then KILL
    after 10 s) and pass the interrupt on. Its own session keeps the terminal's Ctrl-C from it."""
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def hold_interrupts() -> None:
    """From here on, Ctrl-C is ignored: the demo is already on its way out, and a second Ctrl-C
    must not cut the clean-up short (it would leave children and stream keys behind)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def until_signal() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, the previous handlers restored afterwards."""
    stopping = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
