"""docker-compose.yml, Dockerfile and .dockerignore checked against the code, without Docker.

Every command a service runs must exist: its executable is a console script of pyproject.toml or a
known tool, its subcommand and flags pass the real parser (argparse for metrics-worker,
metrics-producer, metrics-api and metrics-otlp, click for rq), and every module it names can be
imported. Every environment variable given to the app is one the code reads, and its value parses. The rest is
the deployment's shape: health checks, start order, restart policies, persistence, a scalable
worker, the demo profile, and an image in which worker/schema.py finds schema.sql.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import functools
import importlib.util
import io
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")

CONSOLE_SCRIPTS = set(PYPROJECT["project"]["scripts"])
KNOWN_TOOLS = {"rq", "redis-server", "redis-cli", "postgres", "pg_isready", "python"}

#: Services built from the project's image, and the servers each one needs before it starts.
APP_NEEDS = {
    "migrate": {"postgres"},
    "worker": {"redis", "postgres"},
    "scheduler": {"redis"},
    "maintenance": {"redis", "postgres"},
    "api": {"postgres"},
    "otlp": {"redis"},
    "demo": {"redis"},
}
ONE_SHOT = {"migrate", "demo"}  # exit when done; every other service runs until stopped
SERVERS = {"redis", "postgres"}

_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def resolved(value: Any) -> str:
    """A compose value as it is with no variable set: ``${VAR:-default}`` becomes ``default``."""
    return _VARIABLE.sub(lambda m: m.group(2) or "", str(value))


def command(name: str) -> list[str]:
    cmd = SERVICES[name]["command"]
    assert isinstance(cmd, list), f"{name}: write the command as a list (exec form, so it gets SIGTERM)"
    return [resolved(part) for part in cmd]


def environment(name: str) -> dict[str, str]:
    env = SERVICES[name].get("environment") or {}
    assert isinstance(env, dict), f"{name}: write environment as a mapping"
    return {key: resolved(value) for key, value in env.items()}


def services_running(executable: str) -> list[str]:
    return [name for name in SERVICES if "command" in SERVICES[name] and command(name)[0] == executable]


def healthcheck_argv(name: str) -> list[str]:
    test = SERVICES[name]["healthcheck"]["test"]
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1])
    assert test[0] == "CMD", f"{name}: healthcheck test must start with CMD or CMD-SHELL"
    return list(test[1:])


def parse_or_fail(parser: Any, name: str, argv: list[str]) -> Any:
    """argparse on ``argv`` (no program name); a rejection fails the test with argparse's message."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            return parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"service {name}: `{parser.prog} {' '.join(argv)}` is rejected:\n{stderr.getvalue()}")


@functools.cache
def names_in_code() -> frozenset[str]:
    """Every ALL_CAPS string literal in the packages: a superset of the variables they read."""
    names = set()
    for package in ("contract", "worker", "producer"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and re.fullmatch(r"[A-Z][A-Z0-9_]*", str(node.value)):
                    names.add(str(node.value))
    return frozenset(names)


# --- commands ---------------------------------------------------------------------------------


def test_the_app_services_are_the_expected_ones() -> None:
    built = {name for name, service in SERVICES.items() if "build" in service}
    assert built == set(APP_NEEDS), "a service was added or removed: update APP_NEEDS in this test"
    assert set(SERVICES) >= SERVERS


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_executable_is_a_console_script_or_a_known_tool(name: str) -> None:
    service = SERVICES[name]
    argvs = [command(name)] if "command" in service else []
    if "healthcheck" in service:
        argvs.append(healthcheck_argv(name))
    for argv in argvs:
        assert argv[0] in CONSOLE_SCRIPTS | KNOWN_TOOLS, (
            f"service {name}: {argv[0]!r} is neither in [project.scripts] ({sorted(CONSOLE_SCRIPTS)}) "
            f"nor a known tool"
        )


@pytest.mark.parametrize("name", services_running("metrics-worker"))
def test_metrics_worker_commands_parse(name: str) -> None:
    from worker.cli import build_parser

    parse_or_fail(build_parser(), name, command(name)[1:])


@pytest.mark.parametrize("name", services_running("metrics-producer"))
def test_metrics_producer_commands_parse(name: str) -> None:
    from producer.cli import build_parser

    args = parse_or_fail(build_parser(), name, command(name)[1:])
    if args.command == "simulate":  # the rules _simulate checks after parsing
        assert args.agents >= 1 and args.sessions >= 1 and args.rate >= 0


@pytest.mark.parametrize("name", services_running("metrics-api"))
def test_metrics_api_command_parses_and_listens_where_published(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """metrics-api has no build_parser: run its main() with uvicorn.run replaced."""
    import uvicorn

    import worker.read.server

    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(kw))
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            worker.read.server.main(command(name)[1:])
    except SystemExit:
        pytest.fail(f"service {name}: `{' '.join(command(name))}` is rejected:\n{stderr.getvalue()}")
    assert served["host"] == "0.0.0.0", "listen on every interface, or the published port reaches nothing"
    port = served["port"]
    published = [str(p) for p in SERVICES[name].get("ports", [])]
    assert any(p.endswith(f"{port}:{port}") for p in published), f"{name}: publish port {port}"
    assert f"127.0.0.1:{port}/healthz" in " ".join(healthcheck_argv(name))


@pytest.mark.parametrize("name", services_running("metrics-otlp"))
def test_metrics_otlp_command_parses_and_listens_where_published(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """metrics-otlp's main() with uvicorn.run replaced: its flags, tokens and settings pass."""
    import uvicorn

    import producer.otlp.server

    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(kw))
    for key, value in environment(name).items():
        monkeypatch.setenv(key, value)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = producer.otlp.server.main(command(name)[1:])
    assert code == 0, f"service {name}: `{' '.join(command(name))}` is rejected:\n{stderr.getvalue()}"
    assert served["host"] == "0.0.0.0", "listen on every interface, or the published port reaches nothing"
    port = served["port"]
    assert any(str(p).endswith(f"{port}:{port}") for p in SERVICES[name].get("ports", [])), (
        f"{name}: publish {port}"
    )
    assert f"127.0.0.1:{port}/healthz" in " ".join(healthcheck_argv(name))


def rq_parse_or_fail(name: str, argv: list[str]) -> None:
    """Parse (without running) an rq command line with rq's own click commands."""
    import click
    from rq.cli.cli import main as rq_main

    parent = click.Context(rq_main, info_name="rq")
    sub = rq_main.get_command(parent, argv[0])
    assert sub is not None, f"service {name}: rq has no command {argv[0]!r}"
    try:
        sub.make_context(argv[0], list(argv[1:]), parent=parent)
    except click.ClickException as exc:
        pytest.fail(f"service {name}: `rq {' '.join(argv)}` is rejected: {exc.format_message()}")


@pytest.mark.parametrize("name", services_running("rq"))
def test_rq_commands_parse_and_use_the_services_redis(name: str) -> None:
    argv = command(name)[1:]
    rq_parse_or_fail(name, argv)
    assert argv[argv.index("--url") + 1] == environment(name)["REDIS_URL"], (
        f"{name}: rq's --url must be the REDIS_URL the jobs use"
    )


def test_the_scheduler_loads_the_project_cron_config() -> None:
    argv = command("scheduler")
    assert argv[:2] == ["rq", "cron"]
    module = argv[2]
    assert importlib.util.find_spec(module) is not None, f"rq cron {module}: no such module"
    assert module == "worker.maintenance.cron"


def test_the_maintenance_worker_serves_the_queue_the_scheduler_fills() -> None:
    argv = command("maintenance")
    assert argv[:2] == ["rq", "worker"]
    queue = environment("scheduler").get("METRICS_MAINTENANCE_QUEUE", "maintenance")
    assert queue in argv[2:], f"rq worker must serve {queue!r}, the queue worker/maintenance/cron.py uses"


def test_every_module_named_with_python_m_is_importable() -> None:
    for name, service in SERVICES.items():
        argvs = [command(name)] if "command" in service else []
        argvs += [healthcheck_argv(name)] if "healthcheck" in service else []
        for argv in argvs:
            if argv[0] == "python" and argv[1] == "-m":
                assert importlib.util.find_spec(argv[2]) is not None, f"{name}: python -m {argv[2]}"


@pytest.mark.parametrize("name", [n for n in sorted(SERVICES) if "healthcheck" in SERVICES[n]])
def test_python_healthchecks_compile(name: str) -> None:
    argv = healthcheck_argv(name)
    if argv[0] == "python" and argv[1] == "-c":
        compile(argv[2], f"<healthcheck of {name}>", "exec")


# --- start order, health, restarts ------------------------------------------------------------


def test_servers_and_api_and_worker_have_healthchecks() -> None:
    for name in ("redis", "postgres", "api", "worker"):
        assert "healthcheck" in SERVICES[name], f"{name}: no healthcheck"
    assert "redis-cli" in healthcheck_argv("redis") and "ping" in healthcheck_argv("redis")
    assert healthcheck_argv("postgres")[0] == "pg_isready"


def test_the_worker_healthcheck_reads_its_metrics_port() -> None:
    port = environment("worker")["METRICS_PORT"]
    assert f"127.0.0.1:{port}/metrics" in " ".join(healthcheck_argv("worker"))


@pytest.mark.parametrize("name", sorted(APP_NEEDS))
def test_app_services_wait_for_healthy_servers(name: str) -> None:
    depends = SERVICES[name].get("depends_on", {})
    assert isinstance(depends, dict), f"{name}: use the long depends_on form with conditions"
    for server in APP_NEEDS[name]:
        assert server in depends, f"{name}: needs {server}"
    for server in SERVERS & set(depends):
        assert depends[server].get("condition") == "service_healthy", f"{name} -> {server}: service_healthy"
    if "migrate" in depends:
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_restart_policies() -> None:
    for name, service in SERVICES.items():
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart") == expected, f"{name}: restart {expected!r}"


def test_the_demo_is_only_in_the_demo_profile() -> None:
    assert SERVICES["demo"].get("profiles") == ["demo"]
    assert command("demo")[:2] == ["metrics-producer", "simulate"]
    for name, service in SERVICES.items():
        if name != "demo":
            assert "profiles" not in service, f"{name}: would not start with a plain `docker compose up`"


# --- persistence and scaling ------------------------------------------------------------------


def test_redis_persists_with_aof_and_never_evicts() -> None:
    argv = command("redis")
    assert argv[0] == "redis-server"
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert argv[argv.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(
        v.split(":")[0] in COMPOSE["volumes"] and v.endswith(":/data") for v in SERVICES["redis"]["volumes"]
    )
    assert SERVICES["redis"]["image"].startswith("redis:7")


def test_postgres_keeps_its_data_in_a_volume() -> None:
    service = SERVICES["postgres"]
    assert service["image"].startswith("postgres:16")
    assert environment("postgres")["POSTGRES_DB"] == "metrics"
    assert any(v.split(":")[0] in COMPOSE["volumes"] for v in service["volumes"])


@pytest.mark.parametrize("name", ["worker", "maintenance"])
def test_scalable_services_have_no_fixed_name_or_host_port(name: str) -> None:
    assert "container_name" not in SERVICES[name], f"{name}: container_name prevents --scale"
    assert "ports" not in SERVICES[name], f"{name}: a host port prevents --scale"


# --- environment ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(APP_NEEDS))
def test_app_environment_is_read_by_the_code_and_parses(name: str) -> None:
    from producer.otlp.settings import OtlpSettings
    from producer.settings import ProducerSettings
    from worker.settings import AlertSettings, PruneSettings, ReconcileSettings, WorkerSettings

    env = environment(name)
    assert {"DATABASE_URL", "REDIS_URL"} <= set(env), f"{name}: DATABASE_URL and REDIS_URL"
    unknown = set(env) - names_in_code() - receiver_variables()
    assert not unknown, f"{name}: neither the code nor the alert rules read {sorted(unknown)}"
    for kind in (WorkerSettings, ReconcileSettings, PruneSettings, AlertSettings):
        kind.from_env(env)
    ProducerSettings.from_env(env)
    OtlpSettings.from_env(env)


# --- alerts -----------------------------------------------------------------------------------

ALERTS_SERVICES = ("scheduler", "maintenance", "api")


def alerts_mount(name: str) -> tuple[Path, str]:
    """The rules file a service mounts: its source in the repository (the default) and its path
    in the container."""
    mounts = [resolved(v) for v in SERVICES[name].get("volumes", []) if "alerts" in str(v)]
    assert len(mounts) == 1, f"{name}: mount the alert rules file once"
    source, target, mode = mounts[0].split(":")
    assert mode == "ro", f"{name}: the rules file is read-only"
    return ROOT / source, target


def receiver_variables() -> set[str]:
    """The variables the mounted rules file takes its receivers' URLs from."""
    from worker.alerts.rules import load_rules

    source, _ = alerts_mount("maintenance")
    return {r.url_env for r in load_rules(source, need_urls=False).receivers.values()}


def test_alerts_are_wired_into_the_scheduler_the_maintenance_worker_and_the_api() -> None:
    """One METRICS_ALERTS_FILE for the scheduler (it schedules the job when set), the maintenance
    worker (it runs it) and the API (it shows the rules); the file is mounted where the comment
    and the README say to point the variable, parses, and its receivers' URL variables reach the
    worker that sends."""
    from worker.alerts.rules import load_rules
    from worker.settings import AlertSettings

    raw = {name: SERVICES[name]["environment"]["METRICS_ALERTS_FILE"] for name in ALERTS_SERVICES}
    assert set(raw.values()) == {"${METRICS_ALERTS_FILE:-}"}, (
        "off unless the variable is set, the same everywhere"
    )
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = set()
    for name in ("maintenance", "api"):
        source, target = alerts_mount(name)
        assert source.is_file(), f"{name}: {source} is not in the repository"
        load_rules(source, need_urls=False)  # a mistake raises RulesError, in one line
        targets.add(target)
        on = AlertSettings.from_env({**environment(name), "METRICS_ALERTS_FILE": target})
        assert on.alerts_file == target
    (target,) = targets
    assert f"METRICS_ALERTS_FILE={target}" in text and f"METRICS_ALERTS_FILE={target}" in readme
    assert receiver_variables() <= set(environment("maintenance")), "the sender needs every receiver's URL"
    assert "alerts" not in str(SERVICES["scheduler"].get("volumes", [])), "the scheduler reads no rules"


def test_the_alerts_cron_is_the_maintenance_schedulers_every_minute() -> None:
    from croniter import croniter

    cron = environment("scheduler")["METRICS_ALERTS_CRON"]
    assert cron == "* * * * *" and croniter.is_valid(cron)
    assert environment("maintenance")["METRICS_ALERTS_CRON"] == cron


def test_the_urls_point_at_the_compose_servers() -> None:
    pg = environment("postgres")
    for name in APP_NEEDS:
        db = urlsplit(environment(name)["DATABASE_URL"])
        assert (db.scheme, db.hostname, db.port, db.path) == ("postgresql", "postgres", 5432, "/metrics")
        if name == "api":  # reads as the role the schema step grants SELECT only, with its password
            assert command("migrate")[-2:] == ["--reader", db.username]
            assert db.password == environment("migrate")["METRICS_READER_PASSWORD"]
        else:
            assert (db.username, db.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
        assert environment(name)["REDIS_URL"] == "redis://redis:6379/0"


# --- the image --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_is_python_311_and_installs_the_project() -> None:
    instructions = dockerfile_instructions()
    bases = [args.split()[0] for op, args in instructions if op == "FROM"]
    assert bases and all(base.startswith("python:3.11") for base in bases), bases
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert "pip install --no-cache-dir" in runs
    assert "pip install -e" not in runs, "this image installs a wheel; see the schema.sql comment"


def test_the_image_finds_schema_sql() -> None:
    """Installed non-editable, worker/schema.py's default path has no schema.sql: the image names it."""
    instructions = dockerfile_instructions()
    env = " ".join(args for op, args in instructions if op == "ENV")
    match = re.search(r"METRICS_SCHEMA_FILE=(\S+)", env)
    assert match, "set METRICS_SCHEMA_FILE (worker/schema.py) to where the image keeps schema.sql"
    assert "METRICS_SCHEMA_FILE" in names_in_code()
    copies = [args.split() for op, args in instructions if op == "COPY"]
    assert ["schema.sql", match.group(1)] in copies, f"COPY schema.sql {match.group(1)}"


def test_the_image_runs_as_a_user_and_has_a_sensible_default_command() -> None:
    instructions = dockerfile_instructions()
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    cmd = [args for op, args in instructions if op == "CMD"][-1]
    assert yaml.safe_load(cmd)[0] in CONSOLE_SCRIPTS


def dockerignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern.removeprefix("**/")) or fnmatch.fnmatch(prefix, pattern)
        for pattern in patterns
        for prefix in prefixes
    )


def test_dockerignore_keeps_what_the_build_needs_and_drops_the_rest() -> None:
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = [d for d in ROOT.iterdir() if d.is_dir() and any(fnmatch.fnmatch(d.name, p) for p in include)]
    needed = ["pyproject.toml", "schema.sql", PYPROJECT["project"].get("readme", "pyproject.toml")]
    needed += [str(init.relative_to(ROOT)) for top in tops for init in top.rglob("__init__.py")]
    assert {"contract/__init__.py", "worker/__init__.py", "producer/__init__.py"} <= set(needed)
    for path in needed:
        assert not dockerignored(path), f".dockerignore leaves out {path}, which the image build needs"
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "bench/results/x.json",
        ".demo-data/pg",
        "worker/__pycache__/a.pyc",
    ):
        assert dockerignored(path), f".dockerignore should leave out {path}"
