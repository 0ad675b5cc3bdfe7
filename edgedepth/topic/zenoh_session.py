"""Opening zenoh sessions for the topic transports: peer mode with explicit endpoints only (a
session never listens where it was not told to), zenoh's TLS and user/password
authentication from edgedepth's options, and zenoh's errors as one line."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.options import InputPath, StrictModel
from edgedepth.topic.endpoints import parse_endpoint


class ZenohTls(StrictModel):
    """TLS on ``tls/HOST:PORT`` locators (zenoh's ``transport.link.tls``): the stream is
    encrypted, and each side checks the other's certificate against ``root_ca``."""

    root_ca: InputPath
    """The certificate authority (PEM) that signed the other side's certificate: a subscriber
    accepts only a publisher whose certificate it signed (and, with ``mutual``, the other
    way round)."""
    certificate: InputPath | None = None
    """This side's certificate (PEM), signed by a CA the other side trusts: required to
    listen (the publisher), and to connect when the listener asks for ``mutual`` TLS."""
    private_key: InputPath | None = None
    """The private key (PEM) of ``certificate``."""
    mutual: bool = False
    """Listening: accept only peers that present a certificate signed by ``root_ca`` (mTLS)."""
    verify_name: bool = True
    """Connecting: the listener's certificate must name the host connected to."""

    def config(self) -> dict[str, Any]:
        """zenoh config entries (key path → value)."""
        entries: dict[str, Any] = {
            "transport/link/tls/root_ca_certificate": str(self.root_ca),
            "transport/link/tls/enable_mtls": self.mutual,
            "transport/link/tls/verify_name_on_connect": self.verify_name,
        }
        if self.certificate is not None and self.private_key is not None:
            for side in ("listen", "connect"):
                entries[f"transport/link/tls/{side}_certificate"] = str(self.certificate)
                entries[f"transport/link/tls/{side}_private_key"] = str(self.private_key)
        return entries


class ZenohAuth(StrictModel):
    """User/password authentication of zenoh sessions (``transport.auth.usrpwd``): a listener
    with ``users_file`` admits only the sessions that present one of its user/password pairs."""

    users_file: InputPath | None = None
    """Listening: the ``user:password`` lines (one a line) of the sessions admitted."""
    user: str | None = None
    """Connecting: the user this session presents."""
    password_file: InputPath | None = None
    """Connecting: a file holding ``user``'s password (kept out of the config)."""

    def config(self) -> dict[str, Any]:
        entries: dict[str, Any] = {}
        if self.users_file is not None:
            entries["transport/auth/usrpwd/dictionary_file"] = str(self.users_file)
        if self.user is not None:
            entries["transport/auth/usrpwd/user"] = self.user
            entries["transport/auth/usrpwd/password"] = read_password(self.password_file)
        return entries


def read_password(path: Path | None) -> str:
    """The password in ``path`` (its first line), or a one-line error."""
    if path is None:
        raise EdgedepthError("auth.user needs auth.password_file (the file holding its password)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgedepthError(f"auth.password_file {path}: cannot read it ({exc})") from None
    if not lines or not lines[0]:
        raise EdgedepthError(f"auth.password_file {path}: the first line is empty")
    return lines[0]


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


def zenoh_config(
    listen: Sequence[str] = (),
    connect: Sequence[str] = (),
    tls: ZenohTls | None = None,
    auth: ZenohAuth | None = None,
) -> Any:
    """A zenoh peer config with explicit endpoints, nothing else listened on (a zenoh peer
    otherwise listens on every interface), and multicast scouting off (multicast is often
    blocked; explicit endpoints are what several machines, routers and rmw_zenoh use)."""
    zenoh = import_zenoh()
    config = zenoh.Config()
    entries: dict[str, Any] = {
        "mode": "peer",
        "scouting/multicast/enabled": False,
        "listen/endpoints": [zenoh_locator(e) for e in listen],
    }
    if connect:
        entries["connect/endpoints"] = [zenoh_locator(e) for e in connect]
    entries.update(tls.config() if tls else {})
    entries.update(auth.config() if auth else {})
    try:
        for key, value in entries.items():
            config.insert_json5(key, json.dumps(value))
    except zenoh.ZError as exc:
        raise EdgedepthError(
            f"endpoint {', '.join([*listen, *connect])}: {zenoh_error(exc)}"
        ) from None
    return config


def open_zenoh(
    listen: Sequence[str] = (),
    connect: Sequence[str] = (),
    tls: ZenohTls | None = None,
    auth: ZenohAuth | None = None,
) -> Any:
    """An open zenoh session (peer mode, see :func:`zenoh_config`)."""
    zenoh = import_zenoh()
    config = zenoh_config(listen, connect, tls, auth)
    try:
        return zenoh.open(config)
    except zenoh.ZError as exc:
        raise EdgedepthError(
            f"endpoint {', '.join([*listen, *connect])}: zenoh cannot open: {zenoh_error(exc)}"
        ) from None


def _address(locator: str) -> tuple[str, set[str], str | None]:
    """(protocol, IP addresses, port) of a locator (a name resolved; none when it cannot be)."""
    endpoint = parse_endpoint(zenoh_locator(locator))
    host = (endpoint.host or "").strip("[]")
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        addresses = set()
    return endpoint.protocol, addresses | {host}, endpoint.port


def unreached(session: Any, connect: Sequence[str]) -> list[str]:
    """The ``connect`` endpoints the session has no link to now (a link is ours to an endpoint
    when its far end is that endpoint's protocol, address and port)."""
    far_ends = [_address(str(link.dst)) for link in session.info.links()]
    missing = []
    for endpoint in connect:
        protocol, addresses, port = _address(endpoint)
        if not any(
            end[0] == protocol and end[2] == port and end[1] & addresses for end in far_ends
        ):
            missing.append(endpoint)
    return missing
