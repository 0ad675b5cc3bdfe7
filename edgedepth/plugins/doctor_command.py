"""``edgedepth doctor``: what works on this machine (OS, Python build, ONNX Runtime and QNN
versions, the NPU or the emulator, AI Hub configuration, caches, cameras) and, with
``--verify``, a model compiled for the NPU and checked against the CPU. The report itself is in
:mod:`edgedepth.system.doctor`; this plugin only adds the command."""

from __future__ import annotations

import json
import sys

import click

import edgedepth
from edgedepth.cli import debug_option, user_errors


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Every field as JSON on stdout.")
@click.option(
    "--verify",
    is_flag=True,
    help="Compile a small ViT-like model for the NPU (the emulator off-device), run one frame, "
    "compare with the CPU; exit code 1 if that fails.",
)
@debug_option
def doctor(as_json: bool, verify: bool, debug: bool) -> None:
    """What works on this machine: paste the output into bug reports."""
    from edgedepth.system.doctor import collect, format_report

    with user_errors(debug):
        report = collect(verify=verify)
        click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if verify and not report["verify"]["passed"]:
        sys.exit(1)


@edgedepth.hookimpl
def register_commands(cli):
    cli.add_command(doctor)
