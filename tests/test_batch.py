"""``edgedepth batch``: one config over many videos on the local pool and on a real Dask cluster
(on 127.0.0.1), with failed inputs, killed workers, SIGTERM and reruns."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from edgedepth.batch.inputs import output_names
from edgedepth.engine.config import load_config
from edgedepth.engine.pipeline import BackendPool, Pipeline
from edgedepth.engine.registry import Registry
from tests.conftest import POSIX_SIGNALS, SLEEPY, last_line, run_edgedepth
from tests.dask_cluster import dask_cluster

PLUGINS = Path(SLEEPY).parent

FRAMES = 6


def write_video(path: Path, shade: int, frames: int = FRAMES) -> Path:
    """A short H.264 clip whose frames differ from every other clip's (``shade``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, : 8 + 8 * index] = (shade * 37 + index * 11) % 256
            image[24:, :, 1] = shade * 13 % 256
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def decoded_depth(video: Path) -> list[np.ndarray]:
    """What the sleepy backend makes of each frame: the mean of its decoded RGB."""
    with av.open(str(video)) as container:
        return [
            frame.to_ndarray(format="rgb24").astype(np.float32).mean(axis=2)
            for frame in container.decode(video=0)
        ]


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def batch_config(folder: Path, delay_ms: float = 0, **backend) -> Path:
    """No source (each input is one): sleepy → an mp4, a lossless mkv and .npy files."""
    config = {
        "plugins": [SLEEPY],
        "backend": {"type": "sleepy", "delay_ms": delay_ms, **backend},
        "sinks": [
            # relative_max: sleepy's depth is a mean of RGB (0..255), one lossless unit for all
            {
                "type": "video",
                "path": "depth.mp4",
                "lossless": "lossless/depth.mkv",
                "relative_max": 255.0,
            },
            {"type": "npy", "dir": "npy"},
        ],
    }
    path = folder / "batch.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def report(out: Path) -> dict:
    return json.loads((out / "batch.json").read_text())


def by_name(data: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in data["inputs"]}


def assert_complete_once(out: Path, videos: dict[str, Path]) -> None:
    """Every input's folder holds its own depth, every frame of it, once; nothing else is in
    the output folder (no duplicate, no temporary folder, no partial file)."""
    assert sorted(p.name for p in out.iterdir()) == sorted([*videos, "batch.json"])
    assert not [p for p in out.rglob("*") if "partial" in p.name]
    entries = by_name(report(out))
    for name, video in videos.items():
        entry = entries[name]
        assert entry["state"] in ("done", "skipped"), entry
        assert entry["frames"] == FRAMES and entry["error"] is None
        folder = out / name
        assert sorted(o["path"] for o in entry["outputs"]) == [
            f"{name}/depth.mp4",
            f"{name}/lossless/depth.mkv",
            f"{name}/npy",
        ]
        assert count_frames(folder / "depth.mp4") == FRAMES
        assert count_frames(folder / "lossless" / "depth.mkv") == FRAMES
        arrays = sorted((folder / "npy").iterdir())
        assert [a.name for a in arrays] == [f"{i:06d}.npy" for i in range(FRAMES)]
        for array, expected in zip(arrays, decoded_depth(video), strict=True):
            np.testing.assert_allclose(np.load(array), expected, rtol=1e-6)


def tree_state(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


@pytest.fixture
def videos(tmp_path: Path) -> dict[str, Path]:
    return {f"clip{i}": write_video(tmp_path / "library" / f"clip{i}.mp4", i) for i in range(4)}


def start_batch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "batch", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


#: ``.<name>.<host>-<pid>-<random>.partial``: the folder of an attempt in progress.
ATTEMPT = re.compile(r"^\.(?P<name>.+)\.(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{4}\.partial$")


def running_attempt(out: Path, process: subprocess.Popen[str], pids: set[int] | None = None):
    """(name, pid) of the first input a worker (one of ``pids``) is running, once it has
    written a frame of it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the batch ended first: {process.communicate()[1][-3000:]}")
        for folder in out.glob(".*.partial") if out.is_dir() else []:
            match = ATTEMPT.match(folder.name)
            ours = match and (pids is None or int(match["pid"]) in pids)
            if ours and (folder / "npy" / "000000.npy").exists():
                return match["name"], int(match["pid"])
        time.sleep(0.02)
    process.kill()
    pytest.fail("no input was started")


# --- the local pool -------------------------------------------------------------------------------


def test_local_batch_with_failed_inputs_then_a_rerun_that_skips_everything(tmp_path, videos):
    broken = tmp_path / "library" / "broken.mp4"
    broken.write_bytes(b"not a video")
    missing = Path("missing.mp4").absolute()
    config = batch_config(tmp_path, build_ms=300)
    out = tmp_path / "out"
    args = ("batch", "--config", str(config), "--out", str(out), "--workers", "2")
    first = run_edgedepth(*args, *map(str, videos.values()), str(broken), str(missing))
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    data = report(out)
    assert data["executor"] == "local pool of 2 worker processes"
    assert data["counts"] == {"done": 4, "failed": 2}
    entries = by_name(data)
    assert entries["broken"]["state"] == "failed"
    assert "broken.mp4: cannot open video" in entries["broken"]["error"]
    unusable = [entry for entry in data["inputs"] if entry["name"] is None]
    assert [entry["error"] for entry in unusable] == [f"{missing}: not found"]
    assert f"failed: {broken}: " in first.stderr
    assert f"failed: {missing}: {missing}: not found" in first.stderr
    # The failed inputs left nothing (the broken one wrote no file), the others are complete.
    assert_complete_once(out, videos)
    # The model is loaded once per worker process, then reused for its other inputs.
    done = [entry for entry in data["inputs"] if entry["state"] == "done"]
    builds = Counter(entry["worker"] for entry in done if entry["backend_built"])
    assert set(builds.values()) == {1}
    assert set(builds) == {entry["worker"] for entry in done}
    assert all(entry["attempts"] == 1 for entry in done)

    # A rerun of the library: every input is skipped, no file is touched.
    before = tree_state(out)
    again = run_edgedepth(*args, *map(str, videos.values()))
    assert again.returncode == 0, again.stderr
    assert "4 input(s) finished in an earlier run: skipped" in again.stderr
    data = report(out)
    assert data["counts"] == {"skipped": 4}
    assert data["executor"] is None  # no worker was started
    assert {k: v for k, v in tree_state(out).items() if not k.endswith("batch.json")} == {
        k: v for k, v in before.items() if not k.endswith("batch.json")
    }
    assert_complete_once(out, videos)  # the report still describes each input's outputs


def test_a_failed_input_keeps_what_it_wrote_aside_and_a_rerun_redoes_it(tmp_path, videos):
    config = batch_config(tmp_path)
    out = tmp_path / "out"
    args = ("batch", "--config", str(config), "--out", str(out), str(videos["clip1"]))
    failed = run_edgedepth(*args, "--set", "backend.fail_at=3")
    assert failed.returncode == 1
    entry = by_name(report(out))["clip1"]
    assert entry["state"] == "failed"
    assert entry["error"] == (
        f"backend 'sleepy' (plugin {SLEEPY}) failed on frame 3: RuntimeError: boom"
    )
    assert last_line(failed) == f"failed: {videos['clip1']}: {entry['error']}"
    # The frames before the failure are kept, never under the input's own name.
    assert not (out / "clip1").exists()
    kept = out / ".clip1.failed"
    assert sorted(p.name for p in (kept / "npy").iterdir()) == [f"{i:06d}.npy" for i in range(3)]
    assert {o["path"] for o in entry["outputs"]} >= {".clip1.failed/npy"}

    redone = run_edgedepth(*args)
    assert redone.returncode == 0, redone.stderr
    assert report(out)["counts"] == {"done": 1}
    assert_complete_once(out, {"clip1": videos["clip1"]})  # the failed folder is gone too


def test_inputs_of_the_same_stem_list_files_and_image_folders(tmp_path):
    cam1 = write_video(tmp_path / "cam1" / "clip.mp4", 1)
    cam2 = write_video(tmp_path / "cam2" / "clip.mp4", 2)
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(3):
        image = np.full((30 + 2 * index, 40, 3), 60 * index, np.uint8)
        av.VideoFrame.from_ndarray(image, format="rgb24").to_image().save(photos / f"{index}.png")
    listing = tmp_path / "library.txt"
    listing.write_text("# the cameras\ncam1/clip.mp4\n\ncam2/clip.mp4\n")
    config = {
        "plugins": [SLEEPY],
        "source": {"type": "images", "path": "unused", "fps": 5},  # its fps is kept
        "backend": {"type": "sleepy"},
        "sinks": [{"type": "npy", "dir": "."}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    args = ("batch", "-c", str(tmp_path / "c.yaml"), "-o", str(out), "--workers", "1")
    result = run_edgedepth(*args, str(listing), str(photos), str(cam2))
    assert result.returncode == 0, result.stderr
    entries = by_name(report(out))
    assert {name: entry["input"] for name, entry in entries.items()} == {
        "cam1-clip": str(cam1),
        "cam2-clip": str(cam2),
        "photos": str(photos),
    }
    assert [entry["frames"] for entry in entries.values()] == [FRAMES, FRAMES, 3]
    for name, video in (("cam1-clip", cam1), ("cam2-clip", cam2)):
        arrays = sorted((out / name).glob("*.npy"))
        for array, expected in zip(arrays, decoded_depth(video), strict=True):
            np.testing.assert_allclose(np.load(array), expected, rtol=1e-6)
    assert np.load(out / "photos" / "000002.npy").shape == (34, 40)


def test_output_names(tmp_path):
    a, b, c, mkv = (
        write_video(tmp_path / name, 0, frames=1)
        for name in ("cam1/clip.mp4", "cam2/clip.mp4", "cam1-clip.mp4", "cam1/clip.mkv")
    )
    root = tmp_path.name
    # Unique stems are kept; a clash is told apart by parent folders, and a name that is
    # another input's stem is never given to one of them.
    assert output_names([a, b]) == {a: "cam1-clip", b: "cam2-clip"}
    assert output_names([a, b, c]) == {
        a: f"{root}-cam1-clip",
        b: f"{root}-cam2-clip",
        c: "cam1-clip",
    }
    # The same folder: by suffix.
    assert output_names([a, mkv]) == {a: "clip.mp4", mkv: "clip.mkv"}
    # A rerun keeps the names the earlier run gave, whatever joined the library since.
    assert output_names([a, b], {a: "clip"}) == {a: "clip", b: "cam2-clip"}


# --- errors before anything runs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sink_path", "problem"),
    [("/abs/depth.mp4", "/abs/depth.mp4"), ("../depth.mp4", "../depth.mp4")],
)
def test_a_sink_path_outside_the_input_folder_is_refused(tmp_path, videos, sink_path, problem):
    config = batch_config(tmp_path)
    out = tmp_path / "out"
    result = run_edgedepth(
        "batch", "-c", str(config), "-o", str(out), str(videos["clip0"]),
        "--set", f"sinks[0].path={sink_path}",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: batch.yaml: sinks[0].path: {problem}: in a batch, sink paths are relative to "
        "each input's own folder (OUT/<input>/): give a path inside it"
    )
    assert not (out / "batch.json").exists()


def test_only_batch_takes_a_config_without_a_source(tmp_path):
    config = batch_config(tmp_path)
    for command in ("run", "check"):
        result = run_edgedepth(command, "--config", str(config))
        assert result.returncode == 2
        assert result.stderr.startswith(
            "error: batch.yaml: source: required key is missing (only `edgedepth batch` runs a "
            "config without one: each of its inputs is the source)"
        )


def test_workers_belong_to_the_local_pool(tmp_path):
    result = run_edgedepth(
        "batch", "-c", str(batch_config(tmp_path)), "-o", str(tmp_path / "out"),
        "--scheduler", "tcp://127.0.0.1:1", "--workers", "2", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    assert last_line(result).startswith("error: --workers is for the local pool")


# --- killed workers and stops ---------------------------------------------------------------------


@POSIX_SIGNALS
def test_a_killed_local_worker_is_replaced_and_its_input_redone(tmp_path, videos):
    out = tmp_path / "out"
    config = batch_config(tmp_path, delay_ms=150)  # about a second an input
    process = start_batch(
        "-c", str(config), "-o", str(out), "--workers", "2", *map(str, videos.values())
    )
    name, pid = running_attempt(out, process)
    os.kill(pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr
    assert f"a worker died (exit code -9) running {videos[name]}: retrying it" in stderr
    entries = by_name(report(out))
    assert [n for n, entry in entries.items() if entry["attempts"] != 1] == [name]
    assert entries[name]["attempts"] == 2
    assert entries[name]["worker"] != f"{socket.gethostname()}:{pid}"
    assert_complete_once(out, videos)


@POSIX_SIGNALS
@pytest.mark.slow  # two batches, a stop: ~30 s on a loaded 2-core machine
def test_sigterm_stops_a_batch_cleanly_and_a_rerun_finishes_it(tmp_path, videos):
    out = tmp_path / "out"
    config = batch_config(tmp_path, delay_ms=150)
    args = ("-c", str(config), "-o", str(out), "--workers", "2", *map(str, videos.values()))
    process = start_batch(*args)
    running_attempt(out, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    data = report(out)
    states = Counter(entry["state"] for entry in data["inputs"])
    assert states["interrupted"] >= 1 and states["done"] < 4, data
    assert f"({out / 'batch.json'})" in stderr.strip().splitlines()[-1]  # the summary
    # Stopped inputs leave nothing behind: no folder of theirs, no temporary one.
    interrupted = [e["name"] for e in data["inputs"] if e["state"] in ("interrupted", "pending")]
    assert not [p for p in out.iterdir() if p.name in interrupted or "partial" in p.name]

    rerun = run_edgedepth("batch", *args)
    assert rerun.returncode == 0, rerun.stderr
    assert_complete_once(out, videos)


# --- the engine: one loaded model for many runs ---------------------------------------------------


def test_a_backend_pool_lends_one_loaded_model_to_runs_of_other_sources(tmp_path):
    from tests.onnx_models import conv_stack

    model = conv_stack(tmp_path / "model.onnx", layers=2, channels=8)
    registry = Registry()  # of its own: the test plugins stay out of this process's registry
    registry.load_builtins()
    for plugin in ("full_disk.py", "broken_source.py"):
        registry.load_spec(str(PLUGINS / plugin), PLUGINS, "test")

    def pipeline(name: str, source: dict, sinks: list[dict], pool: BackendPool | None):
        config = {
            "source": source,
            "preprocess": {"resize": {"policy": "fixed", "width": 126, "height": 126}},
            "backend": {"type": "dav2-relative", "model": str(model), "runtime": "onnx-cpu"},
            "sinks": sinks,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return Pipeline.from_config(load_config(path), registry, backends=pool)

    def synthetic(seed: int) -> dict:
        return {"type": "synthetic", "frames": 3, "width": 80, "height": 60, "seed": seed}

    pool = BackendPool()
    first = pipeline("first", synthetic(0), [{"type": "npy", "dir": "first"}], pool)
    backend = first.backend.obj
    assert first.run().error is None
    assert backend._single is not None  # the run left its session open
    second = pipeline("second", synthetic(1), [{"type": "npy", "dir": "second"}], pool)
    assert second.backend.obj is backend and not second.backend_built
    assert second.run().error is None
    # Its depth is what a backend of its own would give: nothing of the first run carried over.
    alone = pipeline("alone", synthetic(1), [{"type": "npy", "dir": "alone"}], None)
    assert alone.run().error is None and alone.backend.obj._single is None  # closed: its own
    for index in range(3):
        name = f"{index:06d}.npy"
        np.testing.assert_array_equal(
            np.load(tmp_path / "second" / name), np.load(tmp_path / "alone" / name)
        )
    # A source that fails is an end of stream: the backend is still good.
    broken = pipeline("broken", {"type": "broken", "fail_at": 1}, [], pool)
    assert broken.run().error is not None and broken.backend.obj is backend
    # A run that failed in a sink was stopped (its backend cancelled): never lent again.
    failed = pipeline("failed", synthetic(2), [{"type": "full-disk", "fail_at": 1}], pool)
    assert failed.backend.obj is backend
    assert failed.run().error is not None and backend._single is None
    third = pipeline("third", synthetic(2), [], pool)
    assert third.backend.obj is not backend and third.backend_built and pool.built == 2
    assert third.run().error is None
    pool.close()
    assert third.backend.obj._single is None


# --- a real Dask cluster on 127.0.0.1 -------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-threaded workers, started with the `dask` command line;
    every port any of them listens on is on 127.0.0.1."""
    pytest.importorskip("distributed")
    psutil = pytest.importorskip("psutil")
    with dask_cluster(tmp_path) as (address, workers):
        scheduler = next(
            p for p in psutil.Process().children(recursive=True) if "scheduler" in p.cmdline()
        )
        for process in [scheduler, *map(psutil.Process, workers)]:
            listening = [
                c.laddr for c in process.net_connections("inet") if c.status == psutil.CONN_LISTEN
            ]
            assert listening and {laddr.ip for laddr in listening} == {"127.0.0.1"}, listening
        yield address, workers


@POSIX_SIGNALS
@pytest.mark.slow  # a cluster started, two batches: ~35 s on a loaded 2-core machine
def test_dask_cluster_a_killed_worker_then_a_rerun(tmp_path, videos, cluster):
    address, workers = cluster
    library = {
        **videos,
        **{f"clip{i}": write_video(tmp_path / "library" / f"clip{i}.mp4", i) for i in (4, 5)},
    }
    out = tmp_path / "out"
    config = batch_config(tmp_path, delay_ms=150)  # about a second an input
    args = ("-c", str(config), "-o", str(out), "--scheduler", address, *map(str, library.values()))
    process = start_batch(*args)
    name, victim = running_attempt(out, process, set(workers))
    os.kill(victim, signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    data = report(out)
    assert data["executor"] == f"Dask scheduler {address}"
    assert data["counts"] == {"done": 6}
    entries = by_name(data)
    # The killed worker's input was run again, to the end, by the other worker.
    survivor = next(worker for pid, worker in workers.items() if pid != victim)
    assert entries[name]["attempts"] == 2 and entries[name]["worker"] == survivor
    assert {entry["worker"] for entry in entries.values()} <= set(workers.values())
    # Each worker loaded the model once (the victim before it died, if it got that far).
    builds = Counter(entry["worker"] for entry in entries.values() if entry["backend_built"])
    assert builds[survivor] == 1 and set(builds.values()) == {1}
    assert_complete_once(out, library)

    # The same library again: everything is skipped, nothing is sent to the cluster.
    before = tree_state(out)
    rerun = run_edgedepth("batch", *args)
    assert rerun.returncode == 0, rerun.stderr
    assert report(out)["counts"] == {"skipped": 6}
    after = tree_state(out)
    assert {k: v for k, v in after.items() if "batch.json" not in k} == {
        k: v for k, v in before.items() if "batch.json" not in k
    }


def test_a_scheduler_that_is_not_there_is_one_line(tmp_path, videos):
    pytest.importorskip("distributed")
    config, clip = str(batch_config(tmp_path)), str(videos["clip0"])
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    out = tmp_path / "out"
    wrong = run_edgedepth("batch", "-c", config, "-o", str(out), "--scheduler", "nonsense", clip)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == (
        "error: --scheduler nonsense: not a scheduler address such as tcp://HOST:8786 "
        "(missing port number in address 'nonsense')"
    )
    assert not out.exists()
    down = run_edgedepth("batch", "-c", config, "-o", str(out), "--scheduler", closed, clip)
    assert down.returncode == 1
    assert down.stderr.strip() == (
        f"error: --scheduler {closed}: cannot reach the Dask scheduler (Timed out trying to "
        f"connect to {closed} after 10 s)"
    )
    assert report(out)["counts"] == {"pending": 1}
