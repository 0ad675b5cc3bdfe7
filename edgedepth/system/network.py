"""Is a service reachable from here? A TCP connection (through the HTTPS proxy the user's
tools would use, with an HTTP CONNECT) within a short timeout, DNS included: used before long
waits (AI Hub, checkpoint downloads) and by ``edgedepth check``."""

from __future__ import annotations

import base64
import socket
import threading
import urllib.request
from urllib.parse import ParseResult, urlparse


def proxy_for(url: str) -> ParseResult | None:
    """The proxy ``requests``/``urllib`` would use for ``url``: HTTPS_PROXY / https_proxy
    (HTTP_PROXY for http URLs), unless NO_PROXY names the host; on Windows also the system
    proxy settings."""
    parsed = urlparse(url)
    if urllib.request.proxy_bypass(parsed.hostname or ""):
        return None
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if not proxy:
        return None
    return urlparse(proxy if "://" in proxy else f"http://{proxy}")


def _connect_and_tunnel(
    host: str, port: int, timeout: float, proxy: ParseResult | None
) -> str | None:
    """Connect to host:port, through ``proxy`` (HTTP CONNECT) when given; the reason it failed,
    or None."""
    address = (proxy.hostname or "", proxy.port or 8080) if proxy else (host, port)
    try:
        with socket.create_connection(address, timeout=timeout) as connection:
            if proxy is None:
                return None
            request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            if proxy.username:
                secret = f"{proxy.username}:{proxy.password or ''}".encode()
                request += f"Proxy-Authorization: Basic {base64.b64encode(secret).decode()}\r\n"
            connection.sendall((request + "\r\n").encode())
            status_line = connection.makefile("rb").readline().decode("latin-1").strip()
    except OSError as exc:
        return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    parts = status_line.split(" ", 2)
    if len(parts) >= 2 and parts[1] == "200":
        return None
    return f"the proxy answered {status_line or 'nothing'!r} to CONNECT"


def unreachable(url: str, timeout: float = 10.0) -> str | None:
    """Why ``url``'s host cannot be reached within ``timeout`` seconds (naming the proxy when
    one is used), or None when it can."""
    parsed = urlparse(url)
    host = parsed.hostname or url
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    proxy = proxy_for(url)
    failure: list[str | None] = []
    # A thread: a DNS lookup cannot be given a timeout.
    probe = threading.Thread(
        target=lambda: failure.append(_connect_and_tunnel(host, port, timeout, proxy)),
        daemon=True,
    )
    probe.start()
    probe.join(timeout)
    via = f" through the proxy {proxy.hostname}:{proxy.port or 8080}" if proxy else ""
    if probe.is_alive():
        return f"{host}:{port}{via} (no answer in {timeout:g} s)"
    if failure and failure[0]:
        return f"{host}:{port}{via} ({failure[0]})"
    return None
