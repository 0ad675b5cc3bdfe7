"""Start-up: a command imports only what it uses. Every command imports every plugin module (the
commands and the registry come from them), so a plugin module that imports ONNX Runtime, PyAV,
Pillow or a transport at its top makes `edgedepth --help` pay for them (the speed itself is
measured by bench/fast_start.py, not here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: What `--help`, `plugins` and `check` of a config never need.
HEAVY = (
    "onnxruntime",
    "av",
    "PIL",
    "tqdm",
    "torch",
    "cv2",
    "onnx",
    "zmq",
    "zenoh",
    "mcap",
    "http.client",
    "multiprocessing",
    "asyncio",
)

PROBE = """
import json, sys
from edgedepth.cli import main
sys.argv = ["edgedepth", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
print("\\n" + json.dumps(sorted(set(sys.modules))), file=sys.stderr)
"""


def imported_by(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [("--help",), ("plugins",), ("plugins", "--verbose")])
def test_commands_that_run_nothing_import_no_runtime(args):
    modules = imported_by(*args)
    assert "edgedepth.plugins.dav2_backend" in modules  # the plugins were loaded
    assert not sorted(name for name in HEAVY if name in modules)


def test_options_models_are_built_when_they_validate():
    """A plugin's options model builds its validator on first use (pydantic's defer_build),
    not when its module is imported: a run pays only for the models its config names."""
    probe = """
from edgedepth.engine.registry import load_registry
registry = load_registry()
npy = registry.get("sinks", "npy", "test").options
ply = registry.get("sinks", "ply", "test").options
before = (npy.__pydantic_complete__, ply.__pydantic_complete__)
npy.model_validate({"dir": "out"})
print(before, (npy.__pydantic_complete__, ply.__pydantic_complete__))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["(False,", "False)", "(True,", "False)"]
