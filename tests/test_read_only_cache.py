"""A cache that cannot be written (a read-only mount, as root can meet it too): `check` and
`run` fail alike, in one line with the way out, when a graph for a new input size would have to
be written there; the sizes already cached still run."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import last_line, run_edgedepth, synthetic_config


@pytest.fixture
def read_only_cache(tmp_path):
    """A cache folder that a first run fills, then mounted read-only (needs root, as in CI)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(cache)], capture_output=True)
    if mounted.returncode != 0:
        if os.environ.get("CI"):  # .ci/run runs as root: tested there
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr!r}")
        pytest.skip("mounting needs root; CI runs as root")

    def make_read_only() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)

    try:
        yield cache, make_read_only
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False)


def test_a_new_input_size_in_a_read_only_cache(tmp_path, write_config, read_only_cache):
    cache, make_read_only = read_only_cache
    config = write_config(
        synthetic_config(
            tmp_path,
            plugins=[],
            backend={"type": "dav2-relative", "random_weights": True},
            preprocess={"resize": {"policy": "fixed", "width": 126, "height": 126}},
            runtime={"cache_dir": str(cache)},
            sinks=[],
        )
    )
    assert run_edgedepth("run", "--config", str(config)).returncode == 0  # 126² cached
    make_read_only()
    cached = run_edgedepth("run", "--config", str(config))
    assert cached.returncode == 0, cached.stderr
    new_size = ["--set", "preprocess.resize.width=140", "--set", "preprocess.resize.height=140"]
    lines = set()
    for command in ("check", "run"):
        result = run_edgedepth(command, "--config", str(config), *new_size)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        lines.add(last_line(result))
    (line,) = lines  # the same in check and run
    assert f"the graph cache {cache / 'exports'} cannot be written (Read-only file system)" in line
    assert "set runtime.cache_dir (or $EDGEDEPTH_CACHE)" in line
