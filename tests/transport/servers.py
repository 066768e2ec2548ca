"""Local servers that only speak TLS, with a certificate authority made here: redis-server with
--tls-port (and no plain port), and a scratch PostgreSQL cluster (initdb, ssl=on, non-TLS refused)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PORTS = range(7100, 7150)  # this project's range for servers the tests start


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@dataclass(frozen=True)
class Authority:
    ca: Path  # the CA's certificate: what clients trust
    cert: Path  # the server's, for CN/SAN localhost and 127.0.0.1, signed by the CA
    key: Path
    stranger: Path  # a CA that signed nothing here: trusting it must fail


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_authority(folder: Path) -> Authority:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not on PATH")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "stranger"):
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN=test {name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.crt",
            cwd=folder,
        )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=folder,
    )
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
        cwd=folder,
    )
    return Authority(folder / "ca.crt", folder / "server.crt", folder / "server.key", folder / "stranger.crt")


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


@contextlib.contextmanager
def tls_redis(auth: Authority, data: Path, *extra: str) -> Iterator[int]:
    """A redis-server listening on TLS only; yields its port."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(auth.cert),
            "--tls-key-file",
            str(auth.key),
            "--tls-ca-cert-file",
            str(auth.ca),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc, "redis-server")
        yield port
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def tls_postgres(auth: Authority) -> Iterator[int]:
    """A scratch PostgreSQL 15 cluster (user postgres, trust over TLS, anything else refused), in a
    folder of its own under /tmp (a root-owned pytest folder is closed to the postgres user)."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL 15 binaries in {PG_BIN}")
    with tempfile.TemporaryDirectory(prefix="noloss-pg-") as tmp, _cluster(auth, Path(tmp)) as port:
        yield port


@contextlib.contextmanager
def _cluster(auth: Authority, folder: Path) -> Iterator[int]:
    data = folder / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
        for name in ("cert", "key", "ca"):
            shutil.copy(getattr(auth, name), folder / f"{name}.pem")
            shutil.chown(folder / f"{name}.pem", "postgres")
    else:
        for name in ("cert", "key", "ca"):
            shutil.copy(getattr(auth, name), folder / f"{name}.pem")
    (folder / "key.pem").chmod(0o600)
    subprocess.run(
        [*run_as, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    (data / "pg_hba.conf").write_text(
        "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n"
    )
    port = free_port()
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c ssl=on -c fsync=off "
        f"-c ssl_cert_file={folder}/cert.pem -c ssl_key_file={folder}/key.pem -c ssl_ca_file={folder}/ca.pem"
    )
    subprocess.run(
        [
            *run_as,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield port
    finally:
        subprocess.run(
            [*run_as, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
