"""Where a topic listens, and who can reach it: ZeroMQ endpoints (``tcp://HOST:PORT``) and
zenoh locators (``tcp/HOST:PORT``, ``tls/HOST:PORT``) taken apart, and whether binding one
serves only this machine (loopback, ``ipc``, a Unix socket) or the networks it is on."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

#: Protocols whose endpoints never leave this machine.
LOCAL_PROTOCOLS = {"ipc", "inproc", "unixsock-stream", "unixpipe", "vsock"}
#: Hosts that mean "every interface".
EVERY_INTERFACE = {"*", "0.0.0.0", "::", "[::]"}
#: Interface names of the loopback device (a ZeroMQ endpoint may name an interface).
LOOPBACK_INTERFACES = {"lo", "lo0"}


@dataclass(frozen=True)
class Endpoint:
    """An endpoint taken apart: ``tcp://127.0.0.1:5556`` → tcp, 127.0.0.1, 5556."""

    text: str
    protocol: str
    #: Host, IP address or interface (None for ipc, inproc and Unix sockets).
    host: str | None
    #: A number, or ``*`` / ``0`` for a port the system picks.
    port: str | None


def parse_endpoint(text: str) -> Endpoint:
    """A ZeroMQ endpoint (``tcp://HOST:PORT``) or zenoh locator (``tcp/HOST:PORT``, with
    optional ``?metadata`` / ``#config``); ValueError saying what is wrong with it."""
    if "://" in text:
        protocol, _, address = text.partition("://")
    elif "/" in text:
        protocol, _, address = text.partition("/")
    else:
        raise ValueError(f"{text!r} is not an endpoint (e.g. tcp://127.0.0.1:5556)")
    protocol = protocol.lower()
    address = address.split("?", 1)[0].split("#", 1)[0]
    if protocol in LOCAL_PROTOCOLS:
        return Endpoint(text, protocol, None, None)
    host, colon, port = address.rpartition(":")
    if not colon or not host:
        raise ValueError(f"{text!r}: expected {protocol}://HOST:PORT (e.g. tcp://127.0.0.1:5556)")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"{text!r}: unbalanced [ ] around an IPv6 address")
    if port != "*" and not (port.isdigit() and 0 <= int(port) <= 65535):
        raise ValueError(f"{text!r}: port {port!r} is not a number from 0 to 65535")
    return Endpoint(text, protocol, host, port)


def exposure(endpoint: Endpoint) -> str | None:
    """None when binding ``endpoint`` serves this machine only; else who can reach it
    (``every network this machine is on``, ``the network of 192.168.1.20``). ValueError for a
    host that is neither an address, a name that resolves nor an interface."""
    if endpoint.host is None:
        return None
    host = endpoint.host
    if host in EVERY_INTERFACE:
        return "every network this machine is on"
    if host in LOOPBACK_INTERFACES or host == "localhost":
        return None
    addresses = _addresses(host)
    if not addresses:
        if host in {name for _, name in socket.if_nameindex()}:
            return f"the network of interface {host}"
        raise ValueError(
            f"{endpoint.text!r}: host {host!r} is not an address, a name this machine can "
            "resolve or one of its network interfaces"
        )
    if all(address.is_loopback for address in addresses):
        return None
    return f"the network of {host}"


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The IP addresses ``host`` stands for (an IP literal, or a name looked up); empty when
    it cannot be resolved (an interface name, an unknown host)."""
    bare = host.strip("[]").split("%", 1)[0]
    try:
        return [ipaddress.ip_address(bare)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(bare, None)
    except (OSError, UnicodeError):
        return []
    found = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        found.append(ipaddress.ip_address(address))
    return found
