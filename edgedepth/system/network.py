"""Is a service reachable from here, by the route the program that will talk to it takes?
Within a short timeout, DNS included: used before long waits (AI Hub, checkpoint downloads) and
by ``edgedepth check``.

Two HTTP stacks, two probes. ``urllib`` (the checkpoint download): a TCP connection, through
the HTTPS proxy urllib would use (an HTTP CONNECT). ``requests`` (the qai-hub client): one
request made with requests itself, so its proxy rules hold by construction: HTTPS_PROXY and
HTTP_PROXY, ALL_PROXY, NO_PROXY, ``socks5://`` proxies (with PySocks), the Windows settings."""

from __future__ import annotations

import base64
import re
import socket
import threading
from collections.abc import Callable
from typing import Literal
from urllib.parse import ParseResult, urlparse


def proxy_for(url: str) -> ParseResult | None:
    """The proxy ``requests``/``urllib`` would use for ``url``: HTTPS_PROXY / https_proxy
    (HTTP_PROXY for http URLs), unless NO_PROXY names the host; on Windows also the system
    proxy settings."""
    import urllib.request

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


def requests_proxy_for(url: str) -> str | None:
    """The proxy ``requests`` sends ``url`` through (None: direct), as its Session decides:
    the environment's proxies unless NO_PROXY names the host, then the most specific of
    ``scheme://host``, ``scheme``, ``all://host``, ``all``."""
    import requests.utils

    return requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))


def _request_with_requests(url: str, timeout: float) -> str | None:
    """One request as the qai-hub client makes them (no retries); any HTTP answer, even an
    error status, means the service was reached."""
    import requests

    try:
        with requests.Session() as session:
            session.get(url, timeout=timeout, allow_redirects=False, stream=True).close()
    except requests.exceptions.InvalidSchema as exc:  # socks5:// without PySocks
        return f"{exc} (pip install 'requests[socks]')"
    except requests.RequestException as exc:
        text = str(exc)
        # urllib3 nests the OS's words deep inside: "… [Errno 111] Connection refused'))"
        cause = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
        if isinstance(exc, requests.exceptions.ProxyError):
            return f"the proxy failed: {cause.group(1) if cause else type(exc).__name__}"
        if isinstance(exc, requests.exceptions.Timeout):
            return f"no answer in {timeout:g} s"
        return cause.group(1) if cause else text.split(" (Caused by")[0]
    return None


def unreachable(
    url: str, timeout: float = 10.0, client: Literal["urllib", "requests"] = "urllib"
) -> str | None:
    """Why ``url``'s host cannot be reached within ``timeout`` seconds by ``client``'s route
    (naming the proxy when one is used), or None when it can."""
    parsed = urlparse(url)
    host = parsed.hostname or url
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    probe: Callable[[], str | None]
    if client == "requests":
        proxy = requests_proxy_for(url)
        shown = urlparse(proxy if "://" in proxy else f"http://{proxy}") if proxy else None
        probe = lambda: _request_with_requests(url, timeout)  # noqa: E731
    else:
        shown = proxy_for(url)
        probe = lambda: _connect_and_tunnel(host, port, timeout, shown)  # noqa: E731
    failure: list[str | None] = []
    # A thread: a DNS lookup cannot be given a timeout.
    worker = threading.Thread(target=lambda: failure.append(probe()), daemon=True)
    worker.start()
    worker.join(timeout)
    via = f" through the proxy {shown.hostname}:{shown.port or 8080}" if shown else ""
    if worker.is_alive():
        return f"{host}:{port}{via} (no answer in {timeout:g} s)"
    if failure and failure[0]:
        return f"{host}:{port}{via} ({failure[0]})"
    return None
