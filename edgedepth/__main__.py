"""The ``edgedepth`` command (also ``python -m edgedepth``). Only this module loads before the
``try``: a Ctrl-C while the rest of edgedepth loads is one line and exit 130, like one during a
run, never a traceback."""

import sys


def main() -> None:
    try:
        from edgedepth.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:  # a command reports its own; this is while edgedepth loads
        sys.stderr.write("error: interrupted by SIGINT\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
