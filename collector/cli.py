"""The ``spanfuse`` command: ``serve`` runs the collector, ``traces`` lists recent traces,
``prices`` shows model prices, ``build-mapper`` compiles the mapper (:mod:`collector.native`)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import faulthandler
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from collector.config import Config, ConfigError, check_safe_to_listen, load_config
from collector.pricing.cli import add_prices_command

DEFAULT_CONFIG = "otel-config.yaml"


def _load(path: str) -> Config:
    config = load_config(path)
    check_safe_to_listen(config)
    return config


def _serve(args: argparse.Namespace) -> int:
    from collector.lifecycle import serve_until_stopped, start_error
    from collector.logs import configure_logging

    config = _load(args.config)
    configure_logging(args.log_level)
    # `kill -USR1 <pid>`: every thread's stack to stderr (the log), for a collector that seems stuck.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        serve_until_stopped(config, lambda: _load(args.config))
    except OSError as exc:
        print(f"spanfuse: cannot start: {start_error(exc)}", file=sys.stderr)
        return 1
    return 0


def _format_time(micros: int | dt.datetime | None) -> str:
    if micros is None:
        return ""
    if isinstance(micros, dt.datetime):
        return micros.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return dt.datetime.fromtimestamp(micros / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _traces(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from storage.query import TableQuery

    data_dir = Path(args.data_dir) if args.data_dir else _load(args.config).data_dir
    if not data_dir.is_dir():  # a mistyped path: say so, rather than make it and find nothing
        print(f"spanfuse: no data directory at {data_dir} (the collector makes it when it starts)", file=sys.stderr)
        return 1
    try:
        with contextlib.closing(TableQuery(data_dir)) as query:
            rows = query.recent_traces(args.project, args.limit)
    except (OSError, ValueError) as exc:  # ValueError: a project id that cannot exist
        print(f"spanfuse: cannot read traces: {exc}", file=sys.stderr)
        return 1
    table = Table(title=f"Latest traces of project {args.project!r} ({data_dir})")
    for column in ("trace id", "start (UTC)", "duration ms", "spans", "errors", "name", "service"):
        table.add_column(column)
    for row in rows:
        duration = (row["end_time"] - row["start_time"]).total_seconds() * 1000
        table.add_row(
            row["trace_id"],
            _format_time(row["start_time"]),
            f"{duration:.1f}",
            str(row["spans"]),
            str(row["errors"]),
            row["name"] or "",
            row["service_name"] or "",
        )
    Console(width=200).print(table)
    if not rows:
        print("no traces yet")
    return 0


def _build_mapper(args: argparse.Namespace) -> int:
    from collector import native

    try:
        target = native.build_logged(force=args.force, verbose=args.verbose)
    except Exception as exc:
        print(f"spanfuse: compiled mapper not built: {exc}", file=sys.stderr)
        return 1
    print(f"compiled mapper: {target}")
    return 0


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spanfuse", description="OpenTelemetry-native LLM observability collector speaking Langfuse's protocols."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the collector (OTLP gRPC + HTTP, REST API)")
    serve.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default: %(default)s)")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.set_defaults(run=_serve)

    traces = commands.add_parser("traces", help="print the latest traces of a project as a table")
    traces.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default: %(default)s)")
    traces.add_argument("--data-dir", help="read this data directory instead of the configured one")
    traces.add_argument("--project", default="default", help="project id (default: %(default)s)")
    traces.add_argument("-n", "--limit", type=_positive, default=20, help="how many traces (default: %(default)s)")
    traces.set_defaults(run=_traces)

    add_prices_command(commands)

    build = commands.add_parser(
        "build-mapper", help="compile the mapper (semconv/) with mypyc; used while the sources match it"
    )
    build.add_argument("--force", action="store_true", help="build again even if a build matches the sources")
    build.add_argument("--verbose", action="store_true", help="show the compiler's output")
    build.set_defaults(run=_build_mapper)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"spanfuse: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
