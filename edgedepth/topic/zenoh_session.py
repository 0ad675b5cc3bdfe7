"""Opening zenoh sessions for the topic transports: peer mode with explicit endpoints, and
zenoh's errors as one line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from edgedepth.api.errors import EdgedepthError


def import_zenoh() -> Any:
    """The ``zenoh`` module, or a one-line error saying how to install it."""
    try:
        import zenoh
    except ImportError:
        raise EdgedepthError(
            "transport zenoh needs eclipse-zenoh: pip install 'edgedepth[zenoh]'"
        ) from None
    return zenoh


def zenoh_error(exc: BaseException) -> str:
    """Zenoh's error text without the Rust source locations it appends."""
    text = str(exc).split(" at /", 1)[0].strip()
    if text.count("[") > text.count("]"):
        text = text.replace("[", "")
    return text


def zenoh_locator(endpoint: str) -> str:
    """``tcp://127.0.0.1:7447`` (ZeroMQ style) → ``tcp/127.0.0.1:7447`` (zenoh); zenoh locators
    are returned as they are."""
    return endpoint.replace("://", "/", 1)


def zenoh_config(listen: Sequence[str] = (), connect: Sequence[str] = ()) -> Any:
    """A zenoh peer config with explicit endpoints and multicast scouting off (multicast is often
    blocked; explicit endpoints are what several machines, routers and rmw_zenoh use)."""
    zenoh = import_zenoh()
    config = zenoh.Config()
    try:
        config.insert_json5("mode", '"peer"')
        config.insert_json5("scouting/multicast/enabled", "false")
        if listen:
            config.insert_json5("listen/endpoints", json.dumps([zenoh_locator(e) for e in listen]))
        if connect:
            locators = [zenoh_locator(e) for e in connect]
            config.insert_json5("connect/endpoints", json.dumps(locators))
    except zenoh.ZError as exc:
        raise EdgedepthError(
            f"endpoint {', '.join([*listen, *connect])}: {zenoh_error(exc)}"
        ) from None
    return config


def open_zenoh(listen: Sequence[str] = (), connect: Sequence[str] = ()) -> Any:
    """An open zenoh session (peer mode, see :func:`zenoh_config`)."""
    zenoh = import_zenoh()
    config = zenoh_config(listen, connect)
    try:
        return zenoh.open(config)
    except zenoh.ZError as exc:
        raise EdgedepthError(
            f"endpoint {', '.join([*listen, *connect])}: zenoh cannot open: {zenoh_error(exc)}"
        ) from None
