"""The ``npy`` sink: one file per frame, never mixed with an old run's, never half-written."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import last_line, run_edgedepth, synthetic_config


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("depth.npy", "has no {index}: every frame would overwrite one file"),
        ("{foo}_{index}.npy", "unknown field {foo} (known: {index}, {timestamp})"),
        ("{index:06d}.png", "the name must end in .npy"),
        ("{index:q}.npy", "Unknown format code 'q'"),
    ],
)
def test_bad_file_names_fail_check(tmp_path, write_config, name, expected):
    config = write_config(
        synthetic_config(tmp_path, sinks=[{"type": "npy", "dir": "out", "name": name}])
    )
    result = run_edgedepth("check", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert "sinks[0].name:" in last_line(result) and expected in last_line(result)


def test_an_old_run_is_never_mixed_with_a_new_one(tmp_path, write_config):
    config = synthetic_config(
        tmp_path, source={"type": "synthetic", "frames": 5, "width": 32, "height": 24}
    )
    assert run_edgedepth("run", "--config", str(write_config(config))).returncode == 0
    (tmp_path / "out" / "000099.npy").write_bytes(b"stale")
    refused = run_edgedepth("run", "--config", str(write_config(config)))
    assert refused.returncode == 2
    assert "holds 6 file(s) of an earlier run" in last_line(refused)
    assert "existing: clear" in last_line(refused)
    config["sinks"] = [{"type": "npy", "dir": "out", "existing": "clear"}]
    config["source"]["frames"] = 3
    assert run_edgedepth("run", "--config", str(write_config(config))).returncode == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"{i:06d}.npy" for i in range(3)
    ]


def test_full_disk_names_the_file_and_keeps_complete_frames(tmp_path, write_config, small_disk):
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": 200, "width": 64, "height": 48},
        sinks=[{"type": "npy", "dir": str(small_disk / "npy")}],
    )
    result = run_edgedepth("run", "--config", str(write_config(config)), timeout=120)
    assert result.returncode == 1, result.stderr
    line = last_line(result)
    assert "sink 'npy'" in line and "disk full" in line and str(small_disk / "npy") in line
    assert "Traceback" not in result.stderr
    files = sorted((small_disk / "npy").iterdir())
    assert files and all(f.suffix == ".npy" for f in files)  # no .partial left behind
    assert [int(f.stem) for f in files] == list(range(len(files)))
    for f in files:
        assert np.load(f).shape == (48, 64)
