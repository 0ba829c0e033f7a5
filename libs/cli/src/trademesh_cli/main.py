"""The `trademesh` command line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    help="trademesh: event-driven algorithmic trading platform.", no_args_is_help=True
)
infra_app = typer.Typer(
    help="Embedded infrastructure: Postgres and a Kafka-protocol broker on loopback."
)
events_app = typer.Typer(help="Inspect and document the events on the bus.")
app.add_typer(infra_app, name="infra")
db_app = typer.Typer(help="Database migrations (dbmate), per service schema.")
app.add_typer(events_app, name="events")
app.add_typer(db_app, name="db")
backtest_app = typer.Typer(help="Backtests of strategies over price files, in process.")
app.add_typer(backtest_app, name="backtest")
strategies_app = typer.Typer(
    help="The strategies a backtest or a bot can run, and their parameters."
)
app.add_typer(strategies_app, name="strategies")
deploy_app = typer.Typer(help="Deployment files derived from the services (chart, compose, k8s).")
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("manifests")
def deploy_manifests(
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; exit 1 if a generated file is stale.")
    ] = False,
) -> None:
    """Regenerate, from services/*/deploy/values.yaml and the topic registry, the umbrella chart's
    dependencies and values, compose's service blocks and Prometheus targets, the topic Job,
    k8s/base (rendered from the chart) and the k8s overlays' images. `make manifests` runs it."""
    from trademesh_cli.deploy import DeployError, generate, stale, write
    from trademesh_cli.project import find_root

    root = find_root()
    try:
        files = generate(root)
    except DeployError as error:
        console.print(f"[red]{escape(str(error))}[/red]")
        raise typer.Exit(2) from None
    if check:
        old = stale(root, files)
        for path in old:
            console.print(f"stale: {path.relative_to(root)}")
        if old:
            console.print("run `make manifests` and commit the result")
            raise typer.Exit(1)
        out.print("generated files are up to date")
        return
    for path in write(files):
        out.print(f"wrote {path.relative_to(root)}")


console = Console(stderr=True)
out = Console()

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="State folder (default: $TRADEMESH_HOME or ./.trademesh)."),
]


def _cli() -> str:
    from trademesh_cli.project import cli_command

    return escape(cli_command())


def _stack(home: Path | None, retention_hours: float | None = None) -> object:
    from trademesh_infra.stack import Stack, default_home
    from trademesh_infra.topics import DEFAULT_RETENTION_MS

    retention = int(retention_hours * 3600 * 1000) if retention_hours else DEFAULT_RETENTION_MS
    return Stack(home=(home or default_home()).resolve(), retention_ms=retention)


@infra_app.command("up")
def infra_up(
    home: HomeOption = None,
    retention_hours: Annotated[
        float | None, typer.Option(help="Topic retention in hours (default 168 = 7 days).")
    ] = None,
) -> None:
    """Start Postgres and the broker (unless TRADEMESH_DATABASE_URL / TRADEMESH_KAFKA_BOOTSTRAP are set),
    create every topic, and write the services' connection settings to <home>/infra.env."""
    from trademesh_infra.stack import Stack

    stack = _stack(home, retention_hours)
    assert isinstance(stack, Stack)
    with console.status("starting infrastructure..."):
        env = stack.up()
    _print_status(stack)
    out.print(f"settings for services written to {stack.env_file}")
    for key, value in env.items():
        if key == "TRADEMESH_DATABASE_URL":
            from trademesh_infra.stack import _redact

            value = _redact(value)
        elif key == "TRADEMESH_KEYSTORE_KEYS":
            value = "*** (in the file, and in <home>/keystore.json)"
        out.print(f"  {key}={value}")


user_app = typer.Typer(help="Users of the platform (the auth service's database).")
app.add_typer(user_app, name="user")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option("--email", help="The user's e-mail address.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make an admin.")] = False,
    role: Annotated[
        str, typer.Option("--role", help="admin, trader or viewer (default trader).")
    ] = "trader",
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from stdin (else one is made)."),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Create an active user, e.g. the first admin: `trademesh user create --admin --email ...`.
    There is no default password: it is read from stdin, or made at random and printed once.
    Runs the auth service's own command (python -m trademesh_auth.admin) with the embedded
    infrastructure's settings (started if needed), or with TRADEMESH_* from the environment."""
    import subprocess
    import sys

    from trademesh_infra.stack import Stack

    stack = _stack(home)
    assert isinstance(stack, Stack)
    with console.status("starting infrastructure..."):
        env = stack.up()
    command = [sys.executable, "-m", "trademesh_auth.admin", "create-user", "--email", email]
    command += ["--admin"] if admin else ["--role", role]
    if password_stdin:
        command.append("--password-stdin")
    # A process of its own: libraries never import services, and auth's settings are its own.
    done = subprocess.run(command, env={**os.environ, **env}, check=False)
    raise typer.Exit(done.returncode)


@infra_app.command("down")
def infra_down(home: HomeOption = None) -> None:
    """Stop the embedded Postgres and broker (the broker keeps no data: it is memory only)."""
    from trademesh_infra.stack import Stack

    stack = _stack(home)
    assert isinstance(stack, Stack)
    stack.down()
    out.print("infrastructure stopped")


@infra_app.command("status")
def infra_status(home: HomeOption = None) -> None:
    """Show whether Postgres and the broker run, and where."""
    from trademesh_infra.stack import Stack

    stack = _stack(home)
    assert isinstance(stack, Stack)
    if not _print_status(stack):
        raise typer.Exit(1)


def _print_status(stack: object) -> bool:
    from trademesh_infra.stack import Stack

    assert isinstance(stack, Stack)
    table = Table(title="trademesh infrastructure")
    for column in ("component", "mode", "state", "address"):
        table.add_column(column)
    rows = stack.status()
    for row in rows:
        state = "[green]running[/]" if row.running else "[red]stopped[/]"
        table.add_row(row.name, row.mode, state, row.address)
    out.print(table)
    return all(row.running for row in rows)


@events_app.command("tail")
def events_tail(
    topic: Annotated[str, typer.Argument(help="Topic name, e.g. orders.events.v1 (or its .dlq).")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record.")
    ] = False,
    key: Annotated[str | None, typer.Option("--key", help="Only records with this key.")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Stop after this many records.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Stop after this many seconds without a record."),
    ] = None,
    bootstrap: Annotated[
        str | None,
        typer.Option("--bootstrap", envvar="TRADEMESH_KAFKA_BOOTSTRAP", help="Kafka bootstrap."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Print decoded events with their envelope, as they arrive (the event inspector)."""
    from trademesh_cli.tail import tail

    server = bootstrap or _embedded_bootstrap(home)
    count = asyncio.run(
        tail(
            server,
            topic,
            from_beginning=from_beginning,
            key=key,
            limit=limit,
            idle_timeout=timeout,
            out=sys.stdout,
            security=_kafka_security(server),
        )
    )
    console.print(f"{count} record(s)")


def _kafka_security(bootstrap: str) -> dict[str, object]:
    """aiokafka's TLS/SASL arguments from the TRADEMESH_KAFKA_* settings in the environment, the
    same the services connect with (none for the embedded broker)."""
    from trademesh_bus.broker import client_security
    from trademesh_config.loading import load_settings
    from trademesh_config.settings import KafkaSettings

    return client_security(load_settings(KafkaSettings, kafka_bootstrap=bootstrap))


def _embedded_bootstrap(home: Path | None) -> str:
    from trademesh_infra.stack import Stack

    stack = _stack(home)
    assert isinstance(stack, Stack)
    if not stack.kafka.is_running():
        console.print(
            f"[red]no broker: run `{_cli()} infra up` or set TRADEMESH_KAFKA_BOOTSTRAP[/]"
        )
        raise typer.Exit(2)
    return stack.kafka.bootstrap


@events_app.command("asyncapi")
def events_asyncapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Generate the AsyncAPI document of every topic and event from the code."""
    from trademesh_bus.asyncapi import asyncapi_document

    text = json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        console.print(f"wrote {output}")


@events_app.command("schema")
def events_schema(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for one JSON Schema per event.")
    ],
) -> None:
    """Export the JSON Schema of every event type."""
    from trademesh_events.schema import json_schemas

    output.mkdir(parents=True, exist_ok=True)
    for event_type, schema in sorted(json_schemas().items()):
        (output / f"{event_type}.json").write_text(
            json.dumps(schema, indent=2, sort_keys=True) + "\n"
        )
    console.print(f"wrote {len(json_schemas())} schemas to {output}")


@db_app.command("migrate")
def db_migrate(
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to migrate (default: all).")
    ] = None,
    schema: Annotated[
        str | None, typer.Option(help="Migrate this schema from --dir instead.")
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Migrations folder for --schema.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(envvar="TRADEMESH_DATABASE_URL", help="Postgres URL (default: embedded)."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Apply pending migrations (each service's own schema also gets the inbox/outbox tables).

    Services apply their migrations at start too; this is for operators and CI. Idempotent.
    """
    from trademesh_db import MigrationError, migrate

    from trademesh_cli.project import discover_services, find_root, service_migrations

    url = database_url or _embedded_database(home)
    targets: list[tuple[str, list[Path]]] = []
    if schema is not None:
        targets.append((schema, [directory] if directory else []))
    else:
        wanted = set(services or [])
        for entry in discover_services(find_root()):
            if not wanted or entry.name in wanted:
                folder, service_schema = service_migrations(entry)
                if service_schema is not None:
                    targets.append((service_schema, [folder]))
        if not targets:
            console.print("no service owns a schema yet: nothing to migrate")
    for target_schema, dirs in targets:
        try:
            output = migrate(url, target_schema, dirs)
        except MigrationError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
        applied = output.count("Applied:")
        out.print(
            f"{target_schema}: {applied} migration(s) applied"
            if applied
            else f"{target_schema}: up to date"
        )


def _embedded_database(home: Path | None) -> str:
    from trademesh_infra.stack import Stack

    stack = _stack(home)
    assert isinstance(stack, Stack)
    if not stack.postgres.is_running():
        console.print(f"[red]no database: run `{_cli()} infra up` or set TRADEMESH_DATABASE_URL[/]")
        raise typer.Exit(2)
    stack.postgres.port = int(stack.postgres.port_file.read_text())
    return stack.postgres.url()


PortOffsetOption = Annotated[
    int,
    typer.Option(
        min=0,
        max=50000,
        envvar="TRADEMESH_PORT_OFFSET",
        help="Added to every service's port (a second platform beside the first).",
    ),
]


@app.command("status")
def status(home: HomeOption = None, port_offset: PortOffsetOption = 0) -> None:
    """Each service's readiness, the consumer lag per group and topic, and the demo bot."""
    from urllib.parse import urlsplit

    from rich.table import Table
    from trademesh_infra.stack import Stack

    from trademesh_cli.project import discover_services, find_root
    from trademesh_cli.status import demo_bot, lag_now, readiness

    root = find_root()
    services = discover_services(root)
    table = Table("service", "state", "url", "metrics", title="services")
    stack = _stack(home)
    assert isinstance(stack, Stack)
    states = readiness(services, port_offset, stack.home)
    for row in states:
        colour = {"ready": "green", "down": "red"}.get(row.state, "yellow")
        detail = f" ({row.detail})" if row.detail else ""
        # /metrics on the service's URL, or ":port/metrics" on a port of its own (the gateway's).
        metrics = "/metrics"
        if row.metrics_url != f"{row.url}/metrics":
            metrics = f":{urlsplit(row.metrics_url).port}/metrics"
        table.add_row(row.name, f"[{colour}]{row.state}{detail}[/]", row.url, metrics)
    out.print(table)
    bootstrap = os.environ.get("TRADEMESH_KAFKA_BOOTSTRAP") or (
        stack.kafka.bootstrap if stack.kafka.is_running() else None
    )
    if bootstrap is None:
        console.print("[red]no broker: consumer lag unknown[/]")
    else:
        lags = Table("group", "topic", "partitions", "lag", title="consumer lag")
        for lag in lag_now(bootstrap, _kafka_security(bootstrap)):
            lags.add_row(lag.group, lag.topic, str(lag.partitions), str(lag.lag))
        out.print(lags)
    gateway = next((e for e in services if e.name == "gateway"), None)
    gateway_url = f"http://127.0.0.1:{gateway.port + port_offset}" if gateway else None
    bot = demo_bot(stack.home, gateway_url) if gateway_url else None
    if bot is None:
        out.print("no demo bot (the first `make run` makes one)")
    else:
        out.print(
            "[bold]demo bot:[/] " + "  ".join(f"{k} {v}" for k, v in bot.items()), soft_wrap=True
        )
    raise typer.Exit(0 if all(row.state == "ready" for row in states) else 1)


@app.command("up")
def up(
    home: HomeOption = None,
    sample: Annotated[
        bool | None,
        typer.Option(
            help="Also run the sample event-logger consumer (default: only when no service exists)."
        ),
    ] = None,
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each service's /ready.")
    ] = 60.0,
    exit_when_ready: Annotated[
        bool,
        typer.Option("--exit-when-ready", help="Stop everything once all are ready (smoke test)."),
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only", help="Start only this service (repeat); `event-logger` is the sample."
        ),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            help="With every service up: a demo admin, a replay and a paper RSI-cross bot (the "
            "first time; later runs resume it), and a live summary line."
        ),
    ] = True,
    port_offset: PortOffsetOption = 0,
    replicas: Annotated[
        str | None,
        typer.Option(
            help="Processes per service, e.g. strategy=2,risk=2,execution=2: the replicas of a "
            "service share its consumer groups and split the partitions (ports: port, port+1...)."
        ),
    ] = None,
    restart: Annotated[
        str,
        typer.Option(
            help="always: a service that exits is started again, after a back-off that doubles "
            "while it keeps crashing (up to 30 s); never: it stays down and the others go on."
        ),
    ] = "always",
) -> None:
    """Start the infrastructure and every registered service, each as its own process."""
    from trademesh_cli.supervisor import RESTART_POLICIES, parse_replicas, run_platform

    if restart not in RESTART_POLICIES:
        raise typer.BadParameter(f"one of {', '.join(RESTART_POLICIES)}", param_hint="--restart")
    try:
        counts = parse_replicas(replicas)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--replicas") from None
    code = run_platform(
        home=home,
        sample=sample,
        ready_timeout=ready_timeout,
        exit_when_ready=exit_when_ready,
        only=only,
        demo=demo,
        port_offset=port_offset,
        replicas=counts,
        restart=restart,
    )
    # Everything is stopped. A Ctrl-C that comes now (a terminal's second one, or `uv run`
    # forwarding the first) has nothing left to stop: ignored, it cannot turn the clean exit
    # into a death by signal while the interpreter exits (which puts back the default action
    # of a signal it had a handler for, but leaves an ignored one ignored).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise typer.Exit(code)


def _topics(values: list[str] | None) -> tuple[str, ...]:
    return tuple(t.strip() for value in values or [] for t in value.split(",") if t.strip())


@app.command("new-service")
def new_service(
    name: Annotated[
        str, typer.Argument(help="Service name: lowercase, digits, dashes (pricing-demo).")
    ],
    description: Annotated[str, typer.Option(help="One line: what the service does.")] = "",
    port: Annotated[
        int | None, typer.Option(help="HTTP port (default: the next free one from 8100).")
    ] = None,
    consumes: Annotated[
        list[str] | None,
        typer.Option(help="A topic it consumes (repeat, or comma-separate), e.g. md.bars.v1."),
    ] = None,
    produces: Annotated[
        list[str] | None, typer.Option(help="A topic it produces (repeat, or comma-separate).")
    ] = None,
    schema: Annotated[
        bool, typer.Option("--schema/--no-schema", help="Whether it owns a Postgres schema.")
    ] = True,
    lock: Annotated[
        bool,
        typer.Option(
            "--lock/--no-lock",
            help="Update uv.lock (registers the package) and install it into .venv.",
        ),
    ] = True,
) -> None:
    """Generate a service from service-template/ into services/<name> and register it.

    Nothing is written when a check fails: the name (format, Python keyword, clash with a
    service or library), the port (free) and the topics (known) are checked first.
    """
    from trademesh_cli.project import find_root
    from trademesh_cli.scaffold import ScaffoldError, ServiceSpec
    from trademesh_cli.scaffold import new_service as generate

    spec = ServiceSpec(
        slug=name,
        description=description,
        port=port,
        consumes=_topics(consumes),
        produces=_topics(produces),
        owns_schema=schema,
    )
    root = find_root()
    try:
        with console.status(f"generating services/{escape(name)}..."):
            target = generate(spec, root, update_lock=lock)
    except ScaffoldError as exc:
        console.print(f"[red]new-service: {escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    files = sorted(p.relative_to(root) for p in target.rglob("*") if p.is_file())
    out.print(f"generated {target.relative_to(root)} ({len(files)} files):")
    for path in files:
        out.print(f"  {path}")
    folder = target.relative_to(root)
    out.print(
        "registered: uv workspace (services/*)"
        + (
            " and uv.lock, installed into .venv"
            if lock
            else " (`make install` locks and installs it)"
        )
        + "; `trademesh up` and `trademesh db migrate` read its [tool.trademesh.service]",
        markup=False,
    )
    out.print(
        f"its tests: .venv/bin/pytest {folder}; next: `make manifests` (adds its "
        "deploy/values.yaml entry to the Helm chart, compose, Prometheus and k8s), make test, then edit "
        f"{folder}/src (engine.py first)",
        markup=False,
    )


# The options `backtest run` and `backtest optimize` share: the price file, how its rows are read,
# and the account and costs every backtest (or trial) runs with. Each command gives the defaults.
DataOption = Annotated[
    Path, typer.Option("--data", help="OHLCV file (CSV or Parquet).", exists=True, dir_okay=False)
]
TimeframeOption = Annotated[
    str | None,
    typer.Option(help="Bar length of the file's rows, e.g. 1d; default: the median spacing."),
]
CashOption = Annotated[str, typer.Option(help="Starting cash.")]
CurrencyOption = Annotated[
    str, typer.Option(help="What the prices are in: money is shown at its places (USD 2, BTC 8).")
]
SlippageOption = Annotated[str, typer.Option(help="Slippage of market and stop fills.")]
FeeOption = Annotated[str, typer.Option(help="Fee on every fill's notional.")]
SizingOption = Annotated[
    str, typer.Option(help="equity_pct:100, quantity:10 or notional:5000, in --qty-step units.")
]
QtyStepOption = Annotated[
    str,
    typer.Option(help="Quantities round down to a multiple of it: 1 = whole units, 0.0001 BTC."),
]
AllowShortOption = Annotated[
    bool, typer.Option(help="Let sells go below zero (a cash account, shorts fully backed).")
]


def _print_refused(refused: list[str]) -> None:
    """The price file's refused rows, the first ten of them, on stderr."""
    for line in refused[:10]:
        console.print(f"[yellow]refused {escape(line)}[/]")
    if len(refused) > 10:
        console.print(f"[yellow]... and {len(refused) - 10} more rows refused[/]")


@backtest_app.command("run")
def backtest_run(
    strategy: Annotated[
        str, typer.Argument(help="A registered strategy (`trademesh strategies list`).")
    ],
    data: DataOption,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="A strategy parameter, name=value (repeat).")
    ] = None,
    timeframe: TimeframeOption = None,
    cash: CashOption = "10000",
    currency: CurrencyOption = "USD",
    slippage_bps: SlippageOption = "0",
    fee_bps: FeeOption = "0",
    sizing: SizingOption = "equity_pct:100",
    qty_step: QtyStepOption = "1",
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the run and its statistics as JSON, nothing else."),
    ] = False,
    equity: Annotated[
        Path | None, typer.Option(help="Write time, equity, drawdown, buy and hold here (CSV).")
    ] = None,
    trades: Annotated[Path | None, typer.Option(help="Write the trades here (CSV).")] = None,
    png: Annotated[
        Path | None, typer.Option(help="Write equity, buy and hold, and drawdown here (PNG).")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Write an interactive report here (HTML, works offline).")
    ] = None,
    allow_short: AllowShortOption = False,
) -> None:
    """Run STRATEGY over a price file and print its statistics. A cash account: orders and
    fills over its cash are refused and counted, as risk and the paper venue refuse them.
    The built-ins are long only unless told `--param short=true --allow-short`."""

    from trademesh_trading.fills import FillModel

    from trademesh_cli.backtest import (
        BacktestInputError,
        parse_decimal,
        parse_params,
        parse_sizing,
        run_backtest,
        run_data,
        stats_table,
        write_equity,
        write_trades,
        zero_size_warning,
    )
    from trademesh_cli.report import write_html, write_png

    try:
        chosen = parse_sizing(sizing, parse_decimal("qty-step", qty_step, positive=True))
        fills = FillModel(
            slippage_bps=parse_decimal("slippage-bps", slippage_bps),
            fee_bps=parse_decimal("fee-bps", fee_bps),
        )
        run = run_backtest(
            strategy,
            data,
            parse_params(param or []),
            timeframe=timeframe,
            cash=parse_decimal("cash", cash, positive=True),
            fills=fills,
            sizing=chosen,
            allow_short=allow_short,
            currency=currency.strip().upper() or None,
        )
    except BacktestInputError as exc:
        console.print(f"[red]backtest: {escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    _print_refused(run.refused)
    if run.inferred:
        console.print(
            f"timeframe {run.timeframe.label}: the median spacing of the bars (--timeframe sets it)",
            markup=False,
        )
    warning = zero_size_warning(run)
    if warning is not None:
        console.print(f"[yellow]warning: {escape(warning)}[/]")
    # With --json, stdout holds the JSON alone: every other line goes to stderr.
    notes = console if as_json else out
    title = f"{strategy} on {data.name}"
    if as_json:
        sys.stdout.write(json.dumps(run_data(run), allow_nan=False) + "\n")
    else:
        out.print(stats_table(run, title))
    written: list[tuple[str, Path]] = []
    if trades is not None:
        write_trades(run, trades)
        written.append(("trades", trades))
    if equity is not None:
        write_equity(run, equity)
        written.append(("equity curve", equity))
    if png is not None:
        write_png(run, png, title)
        written.append(("chart", png))
    if html is not None:
        write_html(run, html, title)
        written.append(("report", html))
    for what, path in written:
        notes.print(f"{what} written to {path}", markup=False, soft_wrap=True)


@strategies_app.command("list")
def strategies_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """The strategies a backtest or a bot can run (built-ins and installed plug-ins)."""
    from trademesh_trading.registry import StrategyRegistry

    registry = StrategyRegistry()
    if as_json:
        listed = [
            {
                "name": name,
                "summary": registry.summary(name),
                "parameters": [p.model_dump(mode="json") for p in registry.parameters(name)],
            }
            for name in registry.names()
        ]
        sys.stdout.write(json.dumps(listed) + "\n")
        return
    table = Table(title="strategies")
    table.add_column("name")
    table.add_column("summary")
    table.add_column("parameters (defaults)")
    for name in registry.names():
        defaults = " ".join(
            f"{p.name}={json.dumps(p.default)}" if not p.required else f"{p.name} (required)"
            for p in registry.parameters(name)
        )
        table.add_row(name, registry.summary(name), defaults)
    out.print(table)
    out.print("`trademesh strategies describe NAME` gives the rules and the ranges.", markup=False)


@strategies_app.command("describe")
def strategies_describe(
    name: Annotated[str, typer.Argument(help="A strategy's name.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print it as JSON, with the parameters' JSON Schema.")
    ] = False,
) -> None:
    """A strategy's rules and its parameters: type, default, range, meaning."""
    from trademesh_trading.registry import StrategyRegistry, UnknownStrategy

    registry = StrategyRegistry()
    try:
        parameters = registry.parameters(name)
    except UnknownStrategy:
        console.print(
            f"[red]unknown strategy {escape(repr(name))}; known: "
            f"{escape(', '.join(registry.names()))}[/]"
        )
        raise typer.Exit(2) from None
    if as_json:
        described = {
            "name": name,
            "summary": registry.summary(name),
            "description": registry.describe(name),
            "parameters": [p.model_dump(mode="json") for p in parameters],
            "schema": registry.schema(name),
        }
        sys.stdout.write(json.dumps(described) + "\n")
        return
    out.print(name, style="bold", markup=False)
    out.print(registry.describe(name), markup=False, highlight=False)
    table = Table(title=f"{name} parameters (--param name=value)")
    for column in ("parameter", "type", "default", "range", "meaning"):
        table.add_column(column)
    for p in parameters:
        default = "(required)" if p.required else json.dumps(p.default)
        table.add_row(p.name, p.type, default, p.bounds(), p.description)
    out.print(table)


@backtest_app.command("optimize")
def backtest_optimize(
    strategy: Annotated[str, typer.Argument(help="A registered strategy, e.g. sma_cross.")],
    data: DataOption,
    space: Annotated[
        list[str] | None,
        typer.Option(
            "--space",
            help="A parameter's search: name=low:high[:step], name=low:high:log or name=a,b "
            "(repeat). Default: every bounded number parameter over its schema's bounds.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="A fixed parameter, name=value (repeat).")
    ] = None,
    trials: Annotated[int, typer.Option(min=1, max=100_000, help="Trials per fold.")] = 100,
    objective: Annotated[
        str,
        typer.Option(
            help="sharpe, sortino, total_return, annual_return, win_rate, profit_factor "
            "(maximised) or max_drawdown (minimised)."
        ),
    ] = "sharpe",
    sampler: Annotated[str, typer.Option(help="tpe (Optuna's TPE) or grid (every point).")] = "tpe",
    folds: Annotated[int, typer.Option(help="Walk-forward folds (1: one hold-out split).")] = 1,
    mode: Annotated[str, typer.Option(help="rolling or anchored in-sample windows.")] = "rolling",
    oos: Annotated[
        float, typer.Option(help="Out-of-sample share of each fold's window (0.05 to 0.5).")
    ] = 0.25,
    workers: Annotated[
        int, typer.Option(help="Processes that run trials (default: one per core).", min=0)
    ] = 0,
    seed: Annotated[
        int | None, typer.Option(help="The sampler's seed, for a repeatable run.")
    ] = None,
    timeframe: TimeframeOption = None,
    cash: CashOption = "10000",
    currency: CurrencyOption = "USD",
    slippage_bps: SlippageOption = "0",
    fee_bps: FeeOption = "0",
    sizing: SizingOption = "equity_pct:100",
    qty_step: QtyStepOption = "1",
    allow_short: AllowShortOption = False,
) -> None:
    """Search STRATEGY's parameters over a price file with Optuna, and validate the best of each
    walk-forward fold out of sample: a warning marks a fold whose out-of-sample Sharpe is below
    half its in-sample one (or of the opposite sign)."""
    import optuna
    from pydantic import ValidationError
    from trademesh_trading.optimize.study import OBJECTIVES
    from trademesh_trading.optimize.walkforward import WalkForward

    from trademesh_cli.backtest import BacktestInputError, parse_decimal, parse_params, parse_sizing
    from trademesh_cli.optimize import (
        default_workers,
        fold_lines,
        folds_table,
        optimize_file,
        parse_space,
        summary_lines,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if objective not in OBJECTIVES:
            raise BacktestInputError(f"--objective {objective!r}: one of {', '.join(OBJECTIVES)}")
        if sampler not in ("tpe", "grid"):
            raise BacktestInputError(f"--sampler {sampler!r}: tpe or grid")
        try:
            walk_forward = WalkForward.model_validate(
                {"folds": folds, "mode": mode, "oos_fraction": oos}
            )
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            option = {"folds": "folds", "mode": "mode", "oos_fraction": "oos"}[str(first["loc"][0])]
            raise BacktestInputError(f"--{option}: {first['msg']}") from None
        result, refused = optimize_file(
            strategy,
            data,
            parse_params(param or []),
            parse_space(space or []),
            timeframe=timeframe,
            currency=currency.strip().upper() or None,
            cash=parse_decimal("cash", cash, positive=True),
            slippage_bps=parse_decimal("slippage-bps", slippage_bps),
            fee_bps=parse_decimal("fee-bps", fee_bps),
            sizing=parse_sizing(sizing, parse_decimal("qty-step", qty_step, positive=True)),
            allow_short=allow_short,
            objective=objective,  # type: ignore[arg-type]
            trials=trials,
            sampler=sampler,  # type: ignore[arg-type]
            walk_forward=walk_forward,
            workers=workers or default_workers(),
            seed=seed,
        )
    except BacktestInputError as exc:
        console.print(f"[red]optimize: {escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    _print_refused(refused)
    out.print(folds_table(result, f"{strategy} on {data.name}, {objective} in and out of sample"))
    for line in [*fold_lines(result), *summary_lines(result)]:
        out.print(line, markup=False, highlight=False)
    if result.warning is not None:
        out.print(f"[yellow]warning: {escape(result.warning)}[/]")


if __name__ == "__main__":
    app()
