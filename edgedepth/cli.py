"""The ``edgedepth`` command line: run, check, plugins, and whatever plugins add."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from edgedepth import __version__
from edgedepth.api.errors import ConfigError, EdgedepthError
from edgedepth.api.options import check_output_file
from edgedepth.api.outputs import EXISTING_CHOICES, claim_output
from edgedepth.api.stages import SinkOutput
from edgedepth.engine.config import LoadedConfig, load_config
from edgedepth.engine.registry import Registry, load_registry

log = logging.getLogger("edgedepth")


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so the same clean shutdown (sinks finalised) runs."""

    signal_name = "SIGTERM"


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM everywhere, Ctrl+Break (SIGBREAK) on Windows: raised as Ctrl-C is, so that the
    same clean stop runs (sinks finalised)."""
    stops = [getattr(signal, name) for name in ("SIGTERM", "SIGBREAK") if hasattr(signal, name)]
    previous = {stop: signal.signal(stop, _raise_terminated) for stop in stops}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def setup_logging(debug: bool) -> None:
    """edgedepth's own messages on stderr (debug ones with ``--debug``); third-party warnings
    (torch's tracer, transformers, OpenCV's camera probing) only with ``--debug``: edgedepth
    says what matters itself."""
    logger = logging.getLogger("edgedepth")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("edgedepth: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        warnings.simplefilter("ignore")
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # read when cv2 is imported
        os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")


@contextlib.contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """One line and a non-zero exit for every failure; the traceback only with ``--debug``.
    Sets up logging for the command (see :func:`setup_logging`)."""
    setup_logging(debug)
    try:
        yield
    except EdgedepthError as exc:
        if debug:
            traceback.print_exception(exc)
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as interrupt:  # before or after the run (during it, it stops it)
        name = getattr(interrupt, "signal_name", "SIGINT")
        click.echo(f"error: interrupted by {name}", err=True)
        sys.exit(143 if name == "SIGTERM" else 130)
    except click.exceptions.Exit:
        raise
    except Exception as exc:
        exit_if_stdout_closed(exc)
        if debug:
            traceback.print_exception(exc)
        click.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            err=True,
        )
        sys.exit(1)


def exit_if_stdout_closed(exc: BaseException) -> None:
    """After a BrokenPipeError because stdout's reader went away (``edgedepth plugins --verbose |
    head``: it has what it wanted), exit quietly with 141, as a tool that SIGPIPE ends; stdout is
    pointed at the null device first, so that Python's flush at exit has nothing to complain
    about. A broken pipe of anything else (a socket) returns: that one is an error."""
    if isinstance(exc, BrokenPipeError) and _stdout_reader_gone():
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (POLLERR). Without ``poll``
    (Windows), a broken pipe reaching the command line is taken to be stdout's."""
    import select

    if not hasattr(select, "poll"):
        return True
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by something without a file
        return False
    poller = select.poll()
    poller.register(fileno, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def format_outputs(outputs: list[SinkOutput]) -> list[str]:
    """``wrote out.mp4: 30 frames, 1.2 MB (colourised H.264)`` for each file or folder."""
    lines = []
    for output in outputs:
        path = output.path
        if path.is_dir():
            size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
            shown = f"{os.path.normpath(path)}{os.sep}"
        else:
            size = path.stat().st_size if path.exists() else 0
            shown = os.path.normpath(path)
        what = f" ({output.what})" if output.what else ""
        lines.append(f"wrote {shown}: {output.frames} frames, {size / 1e6:.1f} MB{what}")
    return lines


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
existing_option = click.option(
    "--existing",
    type=click.Choice(EXISTING_CHOICES),
    default="refuse",
    show_default=True,
    help="When a file this command writes is already there: refuse (before any work), "
    "overwrite it, or write NAME-2 beside it.",
)


def claim_option_output(path: Path, existing: str, option: str, **how: Any) -> Path:
    """A file (or, with ``occupied``, a folder) given on the command line, checked and claimed
    by ``--existing`` before any work (:func:`edgedepth.api.outputs.claim_output`): the path
    to write."""
    hint = "give --existing overwrite to replace it, or --existing new-name to write beside it"
    try:
        if "occupied" not in how:
            check_output_file(path.absolute())
    except ValueError as exc:
        raise ConfigError(f"{option} {path}: {exc}") from None
    try:
        return claim_output(path, existing, option, hint=hint, **how)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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
@existing_option
def run(
    config: Path,
    overrides: tuple[str, ...],
    debug: bool,
    as_json: bool,
    stats_json: Path | None,
    existing: str,
) -> None:
    """Run a pipeline until its source ends (or q, Ctrl-C, SIGTERM). The sinks' files follow
    their own `existing` key; --existing is for --stats-json."""
    from edgedepth.engine.pipeline import Pipeline

    with user_errors(debug):
        if stats_json is not None:
            stats_json = claim_option_output(stats_json, existing, "--stats-json")
        loaded, registry = load_with_plugins(config, overrides)
        with stop_signals():
            pipeline = Pipeline.from_config(loaded, registry)
            result = pipeline.run()
        if loaded.config.runtime.summary:
            click.echo(result.stats.format_table(), err=True)
            for line in format_outputs(result.outputs):
                click.echo(line, err=True)
            for note in pipeline.context.notes:  # e.g. random weights: the warning scrolled away
                click.echo(f"note: {note}", err=True)
        if as_json:
            click.echo(json.dumps(result.stats.as_dict(), indent=2))
        if stats_json is not None:
            stats_json.write_text(json.dumps(result.stats.as_dict(samples=True)))
        if result.error is not None:
            if debug:
                traceback.print_exception(result.error.cause)
            click.echo(f"error: {result.error}", err=True)
        elif result.stopped_by in ("SIGINT", "SIGTERM"):
            unfinished_sinks = any(name.startswith("sink") for name in result.unfinished)
            click.echo(
                f"edgedepth: stopped by {result.stopped_by}; {result.stats.frames_out} frames "
                f"finished{'' if unfinished_sinks else ' and finalised'}",
                err=True,
            )
        if result.unfinished:
            exit_now(result.exit_code, result.unfinished)
        sys.exit(result.exit_code)


def exit_now(code: int, busy_threads: list[str]) -> None:
    """Leave without interpreter shutdown. A daemon thread still inside native code (a QNN
    graph runs as one uninterruptible call) would be torn down mid-call by it: the C++ runtime
    aborts ("terminate called…", exit 134). Everything recorded is already finalised."""
    log.info("not waiting for %s; exiting", ", ".join(busy_threads))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@cli.command()
@config_option
@set_option
@debug_option
def check(config: Path, overrides: tuple[str, ...], debug: bool) -> None:
    """Validate a config and every plugin's options, and open its source (camera, video,
    images) to check what the run would fail on at once; nothing is processed or written."""
    from edgedepth.engine.pipeline import check_config

    with user_errors(debug):
        loaded, registry = load_with_plugins(config, overrides)
        summary = check_config(loaded, registry)
        click.echo(f"{config}: OK ({summary})")


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--verbose", "-v", is_flag=True, help="Each plugin's option keys, types, defaults, docs."
)
@click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also load the plugins named in this config.",
)
@debug_option
def plugins(
    name: str | None, as_json: bool, verbose: bool, config: Path | None, debug: bool
) -> None:
    """List every registered source, resize policy, backend, postprocessor and sink; with NAME
    (e.g. `edgedepth plugins video`) or --verbose, also the options each one takes."""
    from edgedepth.engine.registry import describe_options

    with user_errors(debug):
        registry = load_with_plugins(config, ())[1] if config else load_registry()
        listing = registry.describe()
        if name is not None:
            listing = {k: [e for e in v if e["name"] == name] for k, v in listing.items()}
            listing = {k: v for k, v in listing.items() if v}
            if not listing:
                known = sorted({e["name"] for v in registry.describe().values() for e in v})
                raise EdgedepthError(f"no plugin registers {name!r} (known: {', '.join(known)})")
        if as_json:
            click.echo(json.dumps(listing, indent=2))
            return
        for kind, entries in listing.items():
            click.echo(f"{kind}:")
            width = max((len(e["name"]) for e in entries), default=0)
            for entry in entries:
                description = f"  {entry['description']}" if entry["description"] else ""
                click.echo(f"  {entry['name'].ljust(width)}  [{entry['plugin']}]{description}")
                if verbose or name is not None:
                    registration = registry.by_kind[kind][entry["name"]]
                    for line in describe_options(registration.options):
                        click.echo(f"      {line}")


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
    from edgedepth.system.console import protect_output
    from edgedepth.system.host import check_python

    # Every command's output, on any console or pipe encoding: no per-print fixes anywhere.
    protect_output()
    unsupported = check_python()
    if unsupported:  # before anything else fails in a less helpful way
        click.echo(f"error: {unsupported}", err=True)
        sys.exit(2)
    try:
        build_cli().main(prog_name="edgedepth", standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C at a prompt
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:  # while plugins load (a command handles its own)
        click.echo("error: interrupted by SIGINT", err=True)
        sys.exit(130)
    except BrokenPipeError as exc:  # help or a listing cut short by its reader
        exit_if_stdout_closed(exc)
        raise
    except click.ClickException as exc:  # usage errors: one line, like every other error
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see {exc.ctx.command_path} --help)"
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
