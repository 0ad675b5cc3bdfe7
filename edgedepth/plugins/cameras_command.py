"""``edgedepth cameras``: every camera each camera API of this machine sees (Media Foundation
and DirectShow on Windows, v4l2 on Linux), with the index and name a config's
``source: {type: camera, device: …}`` takes and the formats each camera offers."""

from __future__ import annotations

import json

import click

import edgedepth
from edgedepth.cli import debug_option, user_errors


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Every camera and format as JSON.")
@click.option("--no-formats", is_flag=True, help="Names only (formats open each camera).")
@debug_option
def cameras(as_json: bool, no_formats: bool, debug: bool) -> None:
    """List the cameras each camera API sees, with their formats."""
    from edgedepth.media.cameras import format_listings, list_all

    with user_errors(debug):
        listings = list_all(formats=not no_formats)
        if as_json:
            click.echo(json.dumps([listing.as_dict() for listing in listings], indent=2))
        else:
            click.echo("\n".join(format_listings(listings)))


@edgedepth.hookimpl
def register_commands(cli):
    cli.add_command(cameras)
