"""``edgedepth batch``: run a config over many inputs (video files, image folders, list files),
each into its own folder of ``--out``, on a local pool of worker processes or a Dask cluster
(``--scheduler``); see :mod:`edgedepth.batch`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import edgedepth
from edgedepth.cli import config_option, debug_option, set_option, stop_signals, user_errors


@click.command()
@config_option
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of the outputs: OUT/<input>/ each (the config's sink paths are relative to "
    "it) and OUT/batch.json. On a cluster: a shared folder every worker reaches at this path.",
)
@click.option(
    "--scheduler",
    metavar="tcp://HOST:PORT",
    default=None,
    help="Run on this Dask scheduler's workers (pip install 'edgedepth[dask]'); default: a "
    "local pool of worker processes.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Local worker processes (default: the cores ÷ the backend's threads).",
)
@set_option
@debug_option
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
def batch(
    config: Path,
    out: Path,
    scheduler: str | None,
    workers: int | None,
    overrides: tuple[str, ...],
    debug: bool,
    inputs: tuple[Path, ...],
) -> None:
    """Run a config over every INPUT (a video file, an image folder or image, or a .txt file
    listing inputs, one a line), each input replacing the config's source. Inputs whose folder
    is complete are skipped, so a rerun finishes what an interrupted one left; one failed
    input never stops the others. Exit code 0 when every input succeeded."""
    from edgedepth.batch.runner import Batch

    if scheduler is not None and workers is not None:
        raise click.UsageError(
            "--workers is for the local pool; a Dask cluster has the workers you started"
        )
    with user_errors(debug), stop_signals():
        job = Batch(config, overrides, out, inputs, scheduler, workers, debug)
        try:
            job.run()
            code = 0 if job.report.succeeded else 1
        except KeyboardInterrupt as stop:  # the report is written: say what it holds
            code = 143 if getattr(stop, "signal_name", "SIGINT") == "SIGTERM" else 130
        for line in job.report.summary():
            click.echo(line, err=True)
    sys.exit(code)


@edgedepth.hookimpl
def register_commands(cli):
    cli.add_command(batch)
