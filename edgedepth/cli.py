"""The ``edgedepth`` command line: run, check, plugins, and whatever plugins add."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import click

from edgedepth import __version__
from edgedepth.config import LoadedConfig, load_config
from edgedepth.errors import EdgedepthError
from edgedepth.registry import Registry, load_registry

log = logging.getLogger("edgedepth")


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so the same clean shutdown (sinks finalised) runs."""

    signal_name = "SIGTERM"


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _setup_logging(debug: bool) -> None:
    logger = logging.getLogger("edgedepth")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("edgedepth: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)


@contextlib.contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """One line and a non-zero exit for every failure; the traceback only with ``--debug``."""
    try:
        yield
    except EdgedepthError as exc:
        if debug:
            traceback.print_exception(exc)
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit:
        raise
    except Exception as exc:
        if debug:
            traceback.print_exception(exc)
        click.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            err=True,
        )
        sys.exit(1)


def load_with_plugins(config: Path, overrides: tuple[str, ...]) -> tuple[LoadedConfig, Registry]:
    loaded = load_config(config, overrides)
    registry = load_registry(
        loaded.config.plugins, loaded.base_dir, source=f"{loaded.label}: plugins"
    )
    return loaded, registry


config_option = click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Pipeline config (YAML).",
)
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a config value, e.g. --set sinks[0].dir=out (repeatable).",
)
debug_option = click.option("--debug", is_flag=True, help="Tracebacks and debug logging.")


@click.group()
@click.version_option(__version__, prog_name="edgedepth")
def cli() -> None:
    """Real-time monocular depth: capture → preprocess → depth backend → postprocess → sinks."""


@cli.command()
@config_option
@set_option
@debug_option
@click.option("--json", "as_json", is_flag=True, help="Print the run statistics as JSON on stdout.")
@click.option(
    "--stats-json",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the statistics with every stage's durations to this file (edgedepth bench).",
)
def run(
    config: Path, overrides: tuple[str, ...], debug: bool, as_json: bool, stats_json: Path | None
) -> None:
    """Run a pipeline until its source ends (or q, Ctrl-C, SIGTERM)."""
    from edgedepth.pipeline import Pipeline

    _setup_logging(debug)
    with user_errors(debug):
        loaded, registry = load_with_plugins(config, overrides)
        # SIGTERM everywhere; Ctrl+Break (SIGBREAK) on Windows: the same clean stop as Ctrl-C.
        stops = [getattr(signal, name) for name in ("SIGTERM", "SIGBREAK") if hasattr(signal, name)]
        previous = {stop: signal.signal(stop, _raise_terminated) for stop in stops}
        try:
            pipeline = Pipeline.from_config(loaded, registry)
            result = pipeline.run()
        finally:
            for stop, handler in previous.items():
                signal.signal(stop, handler)
        if loaded.config.runtime.summary:
            click.echo(result.stats.format_table(), err=True)
        if as_json:
            click.echo(json.dumps(result.stats.as_dict(), indent=2))
        if stats_json is not None:
            stats_json.write_text(json.dumps(result.stats.as_dict(samples=True)))
        if result.error is not None:
            if debug:
                traceback.print_exception(result.error.cause)
            click.echo(f"error: {result.error}", err=True)
        elif result.stopped_by in ("SIGINT", "SIGTERM"):
            click.echo(
                f"edgedepth: stopped by {result.stopped_by}; "
                f"{result.stats.frames_out} frames finished and finalised",
                err=True,
            )
        if result.unfinished:
            exit_now(result.exit_code, result.unfinished)
        sys.exit(result.exit_code)


def exit_now(code: int, busy_threads: list[str]) -> None:
    """Leave without interpreter shutdown. A daemon thread still inside native code (a QNN
    graph runs as one uninterruptible call) would be torn down mid-call by it: the C++ runtime
    aborts ("terminate called…", exit 134). Everything recorded is already finalised."""
    log.info("not waiting for %s (inside a native call); exiting", ", ".join(busy_threads))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@cli.command()
@config_option
@set_option
@debug_option
def check(config: Path, overrides: tuple[str, ...], debug: bool) -> None:
    """Validate a config and every plugin's options, without running anything."""
    from edgedepth.pipeline import validate_plugin_options

    _setup_logging(debug)
    with user_errors(debug):
        loaded, registry = load_with_plugins(config, overrides)
        validate_plugin_options(loaded, registry)
        click.echo(f"{config}: OK")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also load the plugins named in this config.",
)
@debug_option
def plugins(as_json: bool, config: Path | None, debug: bool) -> None:
    """List every registered source, resize policy, backend, postprocessor and sink."""
    with user_errors(debug):
        registry = load_with_plugins(config, ())[1] if config else load_registry()
        listing = registry.describe()
        if as_json:
            click.echo(json.dumps(listing, indent=2))
            return
        for kind, entries in listing.items():
            click.echo(f"{kind}:")
            width = max((len(e["name"]) for e in entries), default=0)
            for entry in entries:
                description = f"  {entry['description']}" if entry["description"] else ""
                click.echo(f"  {entry['name'].ljust(width)}  [{entry['plugin']}]{description}")


def build_cli() -> click.Group:
    """The CLI with the subcommands that installed plugins add through ``register_commands``."""
    try:
        registry = load_registry()
    except EdgedepthError as exc:  # still let `plugins`/`--help` work enough to report it
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    registry.plugin_manager.hook.register_commands(cli=cli)
    return cli


def main() -> None:
    from edgedepth.host import check_python

    unsupported = check_python()
    if unsupported:  # before anything else fails in a less helpful way
        click.echo(f"error: {unsupported}", err=True)
        sys.exit(2)
    build_cli()(prog_name="edgedepth")
