"""edgedepth's built-in plugins.

Each module here is an ordinary plugin: it only uses the hooks of :mod:`edgedepth.api.hookspecs`,
exactly as a third-party package registered under the ``edgedepth`` entry-point group would.
Read one to learn the extension API.
"""
