"""Text that survives any console or pipe encoding.

A Windows console takes Unicode, but ``edgedepth doctor > report.txt`` or ``| more`` writes in
the ANSI or OEM code page (cp1252, cp437, …), and Python's default for such a stream is to
raise on the first character it cannot encode (``→``, ``×``, ``δ``): the command would die
with nothing printed. :func:`protect_output` makes stdout and stderr write every character the
encoding has as itself (UTF-8 streams are untouched) and an ASCII rendering of the rest
(``→`` as ``->``, ``×`` as ``x``, ``δ`` as ``d``; :mod:`anyascii` for everything else).
"""

from __future__ import annotations

import codecs
import io
import sys

from anyascii import anyascii

#: The codec error handler :func:`protect_output` installs on the standard streams.
ERROR_HANDLER = "edgedepth.ascii"
#: Where anyascii's rendering reads worse in our messages (it gives ``>`` and ``*``).
RENDERINGS = {"→": "->", "←": "<-", "↔": "<->", "⇒": "=>", "×": "x", "−": "-"}


def ascii_rendering(text: str) -> str:
    """``text`` in ASCII, readable: ``capture → preprocess`` → ``capture -> preprocess``."""
    return "".join(RENDERINGS.get(char) or anyascii(char) or "?" for char in text)


def _render_unencodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return ascii_rendering(error.object[error.start : error.end]), error.end


codecs.register_error(ERROR_HANDLER, _render_unencodable)


def protect_output(*streams: object) -> None:
    """Make text streams (default: stdout and stderr) render what their encoding cannot hold
    instead of raising; other streams (pytest's capture, None under pythonw) are left as
    they are."""
    for stream in streams or (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=ERROR_HANDLER)
