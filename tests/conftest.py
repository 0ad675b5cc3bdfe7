from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

TESTS = Path(__file__).parent
SLEEPY = str(TESTS / "plugins" / "sleepy.py")


def run_edgedepth(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real command line, in a subprocess: real exit codes, real stderr."""
    return subprocess.run(
        [sys.executable, "-m", "edgedepth", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def synthetic_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A small synthetic → sleepy → npy pipeline."""
    config: dict[str, Any] = {
        "plugins": [SLEEPY],
        "source": {"type": "synthetic", "frames": 12, "width": 64, "height": 48},
        "backend": {"type": "sleepy"},
        "sinks": [{"type": "npy", "dir": "out"}],
    }
    config.update(overrides)
    return config


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(config: dict[str, Any], name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


@pytest.fixture
def small_disk(tmp_path: Path):
    """A folder on a tmpfs of 256 KiB, to fill up for real (needs root, as in CI)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); CI runs as root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
