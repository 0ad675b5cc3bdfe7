"""Qualcomm AI Hub's client configuration, as the ``qai-hub`` client reads it: the client.ini
($QAIHUB_CLIENT_INI or ~/.qai_hub/client.ini) with ``api_token``, ``api_url`` and ``web_url`` in
its [api] section, and the proxy its HTTP library (``requests``) will use. Shared by ``edgedepth
deploy`` (before any upload) and ``edgedepth doctor``. The token is checked, never kept or shown.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from edgedepth.api.errors import EdgedepthError

TOKEN_HELP = (
    "run `qai-hub configure --api_token YOUR_TOKEN` (token: https://workbench.aihub.qualcomm.com "
    "→ Account → Settings) or point QAIHUB_CLIENT_INI at a client.ini"
)
#: What the qai-hub client reads from the [api] section of client.ini (all three required).
CLIENT_INI_KEYS = ("api_token", "api_url", "web_url")


def client_config_path() -> Path:
    """Where qai-hub reads its token: $QAIHUB_CLIENT_INI or ~/.qai_hub/client.ini."""
    return Path(os.environ.get("QAIHUB_CLIENT_INI", "~/.qai_hub/client.ini")).expanduser()


@dataclass(frozen=True)
class ClientSettings:
    """The client.ini's service URLs (the token is checked, never kept or shown)."""

    path: Path
    api_url: str
    web_url: str


def check_credentials() -> ClientSettings:
    """The configured service; a one-line error (without the token) when client.ini is
    missing, malformed, or lacks api_token, api_url or web_url."""
    path = client_config_path()
    if path.is_dir():  # configparser skips what it cannot open, as if it were missing
        raise EdgedepthError(f"{path} is a folder, not a client.ini: {TOKEN_HELP}")
    config = configparser.ConfigParser(interpolation=None)
    try:
        found = config.read(path, encoding="utf-8")
    except configparser.Error as exc:
        # The parser's message quotes the offending line, which may hold the token.
        line = getattr(exc, "lineno", None) or next(iter(getattr(exc, "errors", [])), (None,))[0]
        where = f" (line {line})" if line else ""
        raise EdgedepthError(
            f"{path}: not a valid client.ini{where}: it needs an [api] section with "
            f"{', '.join(CLIENT_INI_KEYS)}; {TOKEN_HELP}"
        ) from None
    except UnicodeDecodeError:
        raise EdgedepthError(f"{path}: not a text file; {TOKEN_HELP}") from None
    if not found and path.exists():
        raise EdgedepthError(f"{path}: cannot read it (permissions?): {TOKEN_HELP}")
    if not found:
        raise EdgedepthError(f"no Qualcomm AI Hub token ({path} not found): {TOKEN_HELP}")
    api = config["api"] if config.has_section("api") else {}
    missing = [key for key in CLIENT_INI_KEYS if not str(api.get(key, "")).strip()]
    if missing:
        raise EdgedepthError(f"{path}: [api] has no {', '.join(missing)}: {TOKEN_HELP}")
    for key in ("api_url", "web_url"):
        parsed = urlparse(api[key].strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise EdgedepthError(f"{path}: {key} {api[key].strip()!r} is not an http(s) URL")
    return ClientSettings(path, api["api_url"].strip(), api["web_url"].strip())
