"""Nothing recorded is replaced unasked: every file a run or a command writes follows one
``existing`` policy (refuse, overwrite, new-name), applied before any work, in ``check`` too."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest

from edgedepth.topic.mcap_recording import read_mcap
from tests.conftest import last_line, run_edgedepth, synthetic_config

#: One sink of each kind that records, the files its first run leaves, and the policy that
#: replaces them (a folder of frames: ``clear``; its ``overwrite`` keeps other names).
RECORDERS = {
    "video": (
        {"type": "video", "path": "rec.mp4", "lossless": "rec.mkv"},
        ["rec.mp4", "rec.mkv"],
        "overwrite",
    ),
    "mcap": ({"type": "mcap", "path": "rec.mcap"}, ["rec.mcap"], "overwrite"),
    "npy": ({"type": "npy", "dir": "frames"}, ["frames"], "clear"),
}


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` → its sha256."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix != ".yaml"
    }


def frames_in(path: Path) -> int:
    if path.suffix == ".mcap":
        return sum(1 for m in read_mcap(path) if m.topic.startswith("/depth/relative"))
    if path.is_dir():
        return len(list(path.glob("*.npy")))
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


@pytest.mark.parametrize("kind", RECORDERS)
def test_a_second_run_refuses_then_overwrite_replaces(tmp_path, write_config, kind):
    sink, files, replace = RECORDERS[kind]
    config = write_config(synthetic_config(tmp_path, sinks=[sink]))
    first = run_edgedepth("run", "--config", str(config), "--set", "source.frames=3")
    assert first.returncode == 0, first.stderr
    recorded = digests(tmp_path)
    assert recorded and all(frames_in(tmp_path / name) == 3 for name in files)

    for command in ("run", "check"):
        again = run_edgedepth(command, "--config", str(config))
        assert again.returncode == 2, again.stderr
        line = last_line(again)
        assert line.startswith(
            f"error: pipeline.yaml: sinks[0].{'dir' if kind == 'npy' else 'path'}"
        )
        assert str(tmp_path / files[0]) in line and "existing: overwrite" in line
        assert "pipeline:" not in again.stderr  # refused before anything was opened
        assert digests(tmp_path) == recorded  # byte for byte

    replaced = run_edgedepth(
        "run", "--config", str(config), "--set", f"sinks[0].existing={replace}",
        "--set", "source.frames=2",
    )  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert all(frames_in(tmp_path / name) == 2 for name in files)


def test_new_name_writes_beside_the_earlier_recording(tmp_path, write_config):
    sink = {"type": "video", "path": "rec.mp4", "lossless": "rec.mkv", "existing": "new-name"}
    config = write_config(synthetic_config(tmp_path, sinks=[sink]))
    assert run_edgedepth("run", "--config", str(config)).returncode == 0
    recorded = digests(tmp_path)
    again = run_edgedepth("run", "--config", str(config), "--set", "source.frames=2")
    assert again.returncode == 0, again.stderr
    assert "rec.mp4 exists: writing" in again.stderr
    assert f"wrote {tmp_path / 'rec-2.mp4'}: 2 frames" in again.stderr
    assert f"wrote {tmp_path / 'rec-2.mkv'}: 2 frames" in again.stderr
    assert {k: v for k, v in digests(tmp_path).items() if k in recorded} == recorded


def test_a_recordings_segments_are_part_of_it(tmp_path, write_config):
    """A lossless recording is its file and its name.partN segments: a segment left on its own
    is refused too, and an overwrite replaces every segment of the earlier recording."""
    (tmp_path / "rec.part2.mkv").write_bytes(b"an earlier recording's second segment")
    sink = {"type": "video", "lossless": "rec.mkv"}
    config = write_config(synthetic_config(tmp_path, sinks=[sink]))
    refused = run_edgedepth("check", "--config", str(config))
    assert refused.returncode == 2
    assert "holds 1 file(s) of an earlier run (e.g. rec.part2.mkv)" in last_line(refused)
    replaced = run_edgedepth("run", "--config", str(config), "--set", "sinks[0].existing=overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert not (tmp_path / "rec.part2.mkv").exists()


def test_two_outputs_of_one_run_cannot_share_a_file(tmp_path, write_config):
    sinks = [{"type": "mcap", "path": "rec.mcap"}, {"type": "mcap", "path": "rec.mcap"}]
    config = write_config(synthetic_config(tmp_path, sinks=sinks))
    result = run_edgedepth("check", "--config", str(config))
    assert result.returncode == 2
    assert "sinks[1].path" in last_line(result) and "another output of this run" in last_line(
        result
    )


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        ({"type": "mcap", "path": "run.bag"}, "run.bag: an MCAP recording is named .mcap"),
        ({"type": "video", "path": "run.mkv"}, "run.mkv: the colourised video is an MP4 file"),
    ],
)
def test_a_recording_is_never_written_under_another_formats_name(
    tmp_path, write_config, sink, expected
):
    config = write_config(synthetic_config(tmp_path, sinks=[sink]))
    result = run_edgedepth("check", "--config", str(config))
    assert result.returncode == 2 and expected in last_line(result)


def test_commands_claim_their_files_before_any_work(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path, sinks=[]))
    plot = tmp_path / "bench.png"
    plot.write_bytes(b"an earlier plot")
    bench = ["bench", "--config", str(config), "--frames", "2", "--plot", str(plot)]
    refused = run_edgedepth(*bench)
    assert refused.returncode == 2
    assert last_line(refused).startswith(f"error: --plot: {plot} exists")
    assert "--existing overwrite" in last_line(refused) and "bench: " not in refused.stderr
    assert plot.read_bytes() == b"an earlier plot"
    beside = run_edgedepth(*bench, "--existing", "new-name")
    assert beside.returncode == 0, beside.stderr
    assert (tmp_path / "bench-2.png").stat().st_size > 0 and plot.read_bytes() == b"an earlier plot"

    stats = tmp_path / "stats.json"
    stats.write_text("{}")
    run = run_edgedepth("run", "--config", str(config), "--stats-json", str(stats))
    assert run.returncode == 2 and "--stats-json" in last_line(run)
    assert "pipeline:" not in run.stderr and stats.read_text() == "{}"
    run = run_edgedepth(
        "run", "--config", str(config), "--stats-json", str(stats), "--existing", "overwrite"
    )
    assert run.returncode == 0 and "stages" in stats.read_text()


def test_eval_out_refuses_an_earlier_evaluation(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path, sinks=[]))
    out = tmp_path / "scores"
    score = ["eval", "--config", str(config), "--synthetic", "2", "--out", str(out)]
    assert run_edgedepth(*score).returncode == 0
    metrics = (out / "metrics.csv").read_bytes()
    refused = run_edgedepth(*score)
    assert refused.returncode == 2
    assert f"--out: {out} holds" in last_line(refused) and "metrics.csv" in last_line(refused)
    assert (out / "metrics.csv").read_bytes() == metrics
    beside = run_edgedepth(*score, "--existing", "new-name")
    assert beside.returncode == 0, beside.stderr
    assert (tmp_path / "scores-2" / "metrics.csv").exists()
    assert np.isfinite(float((out / "metrics.csv").read_text().splitlines()[1].split(",")[1]))
