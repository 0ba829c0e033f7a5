"""`trademesh up`: the embedded stack plus every registered service, each as its own process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import httpx
from rich.console import Console
from rich.markup import escape
from trademesh_infra.stack import Stack, default_home

from trademesh_cli.demo import (
    DemoError,
    DemoState,
    load_state,
    replay_command,
    set_up,
    summary,
)
from trademesh_cli.project import (
    ServiceEntry,
    cli_command,
    discover_services,
    find_root,
    run_file,
)

console = Console()


def _sample_entry() -> ServiceEntry:
    port = int(os.environ.get("TRADEMESH_EVENT_LOGGER_PORT", "8099"))
    return ServiceEntry(name="event-logger", module="trademesh_cli.sample", port=port)


# Where the gateway runs in embedded mode, and so whose X-Forwarded-For the services behind it
# believe (login throttling counts the client the gateway names). The gateway itself, the public
# door, believes nobody: its clients are on loopback too.
GATEWAY = "gateway"
LOOPBACK = "127.0.0.1/32"

RESTART_POLICIES = ("always", "never")
BACKOFF_FIRST = 1.0  # seconds before the first restart of a child that crashed
BACKOFF_MAX = 30.0  # doubled on every crash soon after a start, up to this
STEADY_AFTER = 30.0  # a child that ran this long before it crashed starts again from the first


@dataclass
class Child:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    entry: ServiceEntry
    replica: int
    started: float  # time.monotonic() at spawn
    restarts: int = 0
    backoff: float = 0.0  # the wait before the pending restart (0: none pending)
    due: float | None = None  # when the pending restart happens
    reported: bool = False  # its exit was printed
    metrics_port: int | None = None  # where /metrics is served, when not on `port`

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where /metrics is served: the URL of the process's metrics port, else its own."""
        return self.url if self.metrics_port is None else f"http://127.0.0.1:{self.metrics_port}"


def parse_replicas(spec: str | None) -> dict[str, int]:
    """`strategy=2,risk=2` -> {"strategy": 2, "risk": 2}; ValueError on anything else."""
    counts: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise ValueError(f"{part!r} is not NAME=COUNT (for instance strategy=2)")
        count = int(value)
        if not 1 <= count <= 9:
            raise ValueError(f"{name.strip()}: between 1 and 9 replicas, not {count}")
        counts[name.strip()] = count
    return counts


def _write_run_file(home: Path, children: list[Child]) -> None:
    path = run_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "name": c.name,
            "service": c.entry.name,
            "replica": c.replica + 1,
            "url": c.url,
            "metrics_url": c.metrics_url,
            "pid": c.process.pid,
            "restarts": c.restarts,
        }
        for c in children
    ]
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(rows, indent=1))
    scratch.replace(path)  # readers never see half a file


def service_urls(services: list[ServiceEntry], offset: int) -> dict[str, str]:
    """TRADEMESH_<NAME>_URL of every service (its first replica) and auth's JWKS URL, for the
    services that call each other (gateway, risk, strategy); with `offset` added to each port.
    And TRADEMESH_PUBLIC_URL, the gateway as the user reaches it (where the links in
    notifications point), unless the environment names one."""
    env: dict[str, str] = {}
    for entry in services:
        url = f"http://127.0.0.1:{entry.port + offset}"
        env[f"TRADEMESH_{entry.name.upper().replace('-', '_')}_URL"] = url
        if entry.name == "auth":
            env["TRADEMESH_AUTH_JWKS_URL"] = f"{url}/.well-known/jwks.json"
        if entry.name == GATEWAY:
            env["TRADEMESH_PUBLIC_URL"] = os.environ.get("TRADEMESH_PUBLIC_URL") or url
    return env


def _spawn(
    entry: ServiceEntry, replica: int, env: dict[str, str], logs: Path, offset: int = 0
) -> Child:
    name = entry.name if replica == 0 else f"{entry.name}-{replica + 1}"
    port = entry.port + offset + replica
    metrics_port = None if entry.metrics_port is None else entry.metrics_port + offset + replica
    child_env = {
        **os.environ,
        **env,
        "TRADEMESH_SERVICE_NAME": entry.name,
        "TRADEMESH_HTTP_PORT": str(port),
        "TRADEMESH_LOG_FORMAT": "json",
        "OTEL_SERVICE_NAME": entry.name,
    }
    if metrics_port is not None:
        child_env["TRADEMESH_METRICS_PORT"] = str(metrics_port)
    else:  # /metrics on its HTTP port: one port from the environment would be every service's
        child_env.pop("TRADEMESH_METRICS_PORT", None)
    if entry.name != GATEWAY:
        child_env["TRADEMESH_TRUSTED_PROXIES"] = LOOPBACK
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", entry.module],
        env=child_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return Child(
        name,
        port,
        process,
        log_path,
        log_file,
        entry,
        replica,
        time.monotonic(),
        metrics_port=metrics_port,
    )


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"{code} ({signal.Signals(-code).name})"
    return str(code)


def _look_after(
    children: list[Child],
    restart: str,
    env: dict[str, str],
    home: Path,
    offset: int,
    stopping: Callable[[], bool],
) -> bool:
    """One round of the supervisor: note children that exited, restart those whose wait is over
    (policy `always`: like a Kubernetes pod's restartPolicy, with a doubling back-off for a child
    that keeps crashing soon after it starts). False when a stop was asked for meanwhile."""
    changed = False
    for index, child in enumerate(children):
        code = child.process.poll()
        if code is None:
            continue
        if not child.reported:
            if stopping():
                return False
            child.reported = True
            if restart == "never":
                console.print(
                    f"[red]{child.name} exited with {_exit_text(code)}[/]; not restarted "
                    "(--restart never), the others go on"
                )
                continue
            ran = time.monotonic() - child.started
            child.backoff = (
                BACKOFF_FIRST if ran >= STEADY_AFTER or child.backoff == 0 else child.backoff * 2
            )
            child.backoff = min(child.backoff, BACKOFF_MAX)
            child.due = time.monotonic() + child.backoff
            console.print(
                f"[red]{child.name} exited with {_exit_text(code)}[/]; "
                f"restarting in {child.backoff:g}s"
            )
            if code > 0:  # a signal leaves no reason in the log; an error does
                console.print(escape(_tail(child.log_path)))
        elif child.due is not None and time.monotonic() >= child.due:
            child.log_file.close()
            fresh = _spawn(child.entry, child.replica, env, home / "logs", offset)
            fresh.restarts = child.restarts + 1
            fresh.backoff = child.backoff
            children[index] = fresh
            console.print(f"  restarted {fresh.name} (pid {fresh.process.pid})")
            changed = True
    if changed:
        _write_run_file(home, children)
    return True


def _ready(child: Child) -> bool:
    try:
        return httpx.get(f"{child.url}/ready", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _stopping(requested: Callable[[], bool], grace: float = 0.5) -> bool:
    """Whether a stop was asked for, allowing the signal that stopped a child to reach us too."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if requested():
            return True
        time.sleep(0.05)
    return requested()


def _stop_children(children: list[Child], timeout: float = 15.0) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        remaining = max(deadline - time.monotonic(), 0.1)
        try:
            child.process.wait(remaining)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(5)
        child.log_file.close()


DEMO_NEEDS = frozenset({"auth", "market-data", "strategy", "risk", "execution", "gateway"})


def _demo(gateway: str, home: Path, env: dict[str, str]) -> DemoState | None:
    """The demo's first-run steps, or its state from an earlier run (see trademesh_cli.demo)."""
    state = load_state(home)
    if state is not None:
        console.print(
            f"[bold]demo:[/] resuming the RSI-cross bot on {state.instrument_id} "
            f"(log in as {state.email}: the password was printed by the first `make run`)"
        )
        return state
    try:
        with console.status(
            "setting up the demo: admin, paper account, replay of GOOG daily bars, RSI-cross bot..."
        ):
            state, password = set_up(gateway, home, env)
    except (DemoError, httpx.HTTPError) as exc:
        console.print(f"[yellow]demo not set up: {escape(str(exc))}[/]")
        return None
    console.print(
        f"[bold]demo admin:[/] {state.email}  password: [bold]{escape(password)}[/]  "
        "[dim](shown this once: keep it)[/]"
    )
    console.print(
        f"log in: curl -s {gateway}/api/v1/auth/login -H 'content-type: application/json' "
        f'-d \'{{"email": "{state.email}", "password": "…"}}\''
    )
    console.print(
        f"[bold]demo:[/] a replay of GOOG daily bars on {state.instrument_id} and an RSI-cross "
        f"bot trading paper account {state.account_id}"
    )
    return state


def run_platform(
    *,
    home: Path | None,
    sample: bool | None,
    ready_timeout: float,
    exit_when_ready: bool,
    only: list[str] | None = None,
    demo: bool = True,
    port_offset: int = 0,
    replicas: dict[str, int] | None = None,
    restart: str = "always",
) -> int:
    root = find_root()
    services = discover_services(root)
    if replicas:
        unknown = sorted(set(replicas) - {entry.name for entry in services})
        if unknown:
            console.print(f"[red]--replicas names unknown service(s): {', '.join(unknown)}[/]")
            return 2
        services = [replace(e, replicas=replicas.get(e.name, e.replicas)) for e in services]
    if only:
        known = {entry.name for entry in services} | {_sample_entry().name}
        unknown = sorted(set(only) - known)
        if unknown:
            console.print(
                f"[red]unknown service(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}[/]"
            )
            return 2
        sample = _sample_entry().name in only
        services = [entry for entry in services if entry.name in only]
    stack = Stack(home=(home or default_home()).resolve())
    infra_was_running = stack.postgres.is_running() and stack.kafka.is_running()
    with console.status("[bold]starting infrastructure (Postgres, Kafka-protocol broker)..."):
        env = stack.up()
    for row in stack.status():
        console.print(f"  [green]✓[/] {row.name:<14} {row.mode:<9} {row.address}")

    if sample is None:
        sample = not services
    entries = [*services, *([_sample_entry()] if sample else [])]
    children: list[Child] = []
    stop_requested = False

    def _request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    # Ctrl-C reaches the whole process group: the services stop by themselves and this loop
    # must read their exits as the shutdown they are, not as crashes.
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    try:
        env = {**env, **service_urls(services, port_offset)}
        for entry in entries:
            for replica in range(entry.replicas):
                children.append(_spawn(entry, replica, env, stack.home / "logs", port_offset))
        _write_run_file(stack.home, children)
        console.print(f"started {len(children)} process(es); logs in {stack.home / 'logs'}")
        pending = {child.name: child for child in children}
        deadline = time.monotonic() + ready_timeout
        with console.status("waiting for every service's /ready...") as status:
            while pending and not stop_requested:
                for name, child in list(pending.items()):
                    if child.process.poll() is not None:
                        if _stopping(lambda: stop_requested):
                            break
                        console.print(f"  [red]✗ {name} exited with {child.process.returncode}[/]")
                        console.print(_tail(child.log_path))
                        return 1
                    if _ready(child):
                        console.print(f"  [green]✓[/] {name:<14} ready   {child.url}")
                        del pending[name]
                status.update(f"waiting for /ready: {', '.join(pending)}")
                if time.monotonic() > deadline:
                    console.print(f"[red]not ready after {ready_timeout}s: {', '.join(pending)}[/]")
                    for child in pending.values():
                        console.print(f"--- {child.name} ---\n{_tail(child.log_path)}")
                    return 1
                time.sleep(0.2)
        if stop_requested:
            return 0
        gateway = next((c for c in children if c.name == "gateway"), None)
        if gateway is not None:
            console.print(
                f"[bold]gateway:[/] {gateway.url}   OpenAPI: {gateway.url}/docs   "
                f"metrics: {gateway.metrics_url}/metrics"
            )
        else:
            console.print(
                "[bold]no gateway yet[/]: services answer on the URLs above (/health, /ready, /metrics)"
            )
        home_option = "" if stack.home == default_home() else f" --home {stack.home}"
        console.print(f"inspect events: {cli_command(root)} events tail <topic>{home_option}")
        if exit_when_ready:
            return 0
        state = None
        started = {child.name for child in children}
        if demo and gateway is not None and started >= DEMO_NEEDS:
            state = _demo(gateway.url, stack.home, env)
        replay = replay_command(stack.home)
        console.print("[dim]Ctrl-C stops everything; a second `make run` resumes[/]")
        # The figures are read as often as they are shown: every 2 s on a terminal, every
        # 10 s to a log or a pipe (read every 2 s there, they cost an idle platform ~3 % of a
        # core for lines nobody saw).
        every = 2.0 if console.is_terminal else 10.0
        with console.status("") as line, httpx.Client(timeout=2.0) as http:
            shown = 0.0
            while not stop_requested:
                if not _look_after(
                    children,
                    restart,
                    env,
                    stack.home,
                    port_offset,
                    lambda: _stopping(lambda: stop_requested),
                ):
                    break
                now = time.monotonic()
                if gateway is not None and now - shown >= every:
                    figures = summary(http, gateway.url, state, replay).line()
                    line.update(figures)
                    shown = now
                    if not console.is_terminal:
                        console.print(figures)  # logs and pipes get a line now and then
                time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        console.print("stopping services...")
        _stop_children(children)
        with contextlib.suppress(OSError):
            run_file(stack.home).unlink()
        if not infra_was_running:
            console.print("stopping infrastructure...")
            stack.down()
        console.print("stopped")
