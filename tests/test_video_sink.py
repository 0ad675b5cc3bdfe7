"""Video recording: playable mp4 at the right rate, lossless depth that reads back, and files
that survive SIGKILL. The lossless recordings are judged by PyAV alone, decoding with the formula
their metadata states (the README's), not by our reader; our reader must agree with it."""

from __future__ import annotations

import contextlib
import json
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from edgedepth.api.frame import DepthKind
from edgedepth.media.colorize import colorize
from edgedepth.media.recording import (
    DepthRecorder,
    read_depth_recording,
    read_depth_segments,
    recording_kind,
    recording_segments,
)
from tests.conftest import (
    POSIX_SIGNALS,
    TESTS,
    killed_run,
    last_line,
    run_edgedepth,
    synthetic_config,
)

METRIC = {"type": "sleepy", "kind": "metric-meters", "scale": 0.05}


def decoded_by_pyav(path) -> list[tuple[float, np.ndarray]]:
    """(timestamp, depth) of every frame, with PyAV alone and the formula in the file's
    metadata: depth = (stored − DEPTH_OFFSET) / DEPTH_SCALE, stored DEPTH_INVALID = NaN.
    ``read_depth_recording`` must give the same."""
    with av.open(str(path)) as container:
        tags = {key.upper(): value for key, value in container.metadata.items()}
        scale, offset = float(tags["DEPTH_SCALE"]), float(tags["DEPTH_OFFSET"])
        invalid = int(tags["DEPTH_INVALID"])
        frames = []
        with contextlib.suppress(av.error.InvalidDataError):  # the cut-off tail of a killed file
            for frame in container.decode(video=0):
                assert frame.format.name == "gray16le"
                stored = frame.to_ndarray()
                depth = (stored.astype(np.float64) - offset) / scale
                depth[stored == invalid] = np.nan
                frames.append((float(frame.time), depth))
    ours = list(read_depth_recording(path))
    assert len(ours) == len(frames)
    for (time, depth), (our_time, our_depth) in zip(frames, ours, strict=True):
        assert our_time == time
        np.testing.assert_allclose(our_depth, depth, rtol=1e-6, atol=1e-6, equal_nan=True)
    return frames


@pytest.mark.parametrize("lossless", ["depth.mkv", "depth.nut"])
def test_mp4_and_lossless_metric_recording(tmp_path, write_config, lossless):
    config = write_config(
        synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": 60, "width": 96, "height": 64, "fps": 29.97},
            backend=METRIC,
            sinks=[
                {
                    "type": "video",
                    "path": "depth.mp4",
                    "lossless": lossless,
                    "layout": "side-by-side",
                },
                {"type": "npy", "dir": "out"},
            ],
        )
    )
    result = run_edgedepth("run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "depth.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(30000, 1001)  # 29.97 stays 29.97
        frames = list(container.decode(stream))
    assert len(frames) == 60
    assert (frames[0].width, frames[0].height) == (96 + 96 + 90, 64)  # RGB | depth | colour bar
    assert frames[-1].time == pytest.approx(59 * 1001 / 30000, abs=2e-3)
    with av.open(str(tmp_path / lossless)) as container:
        codec = container.streams.video[0].codec_context.name
    assert codec == {"depth.mkv": "ffv1", "depth.nut": "ffvhuff"}[lossless]
    recorded = decoded_by_pyav(tmp_path / lossless)
    assert recording_kind(tmp_path / lossless) == DepthKind.METRIC_METERS
    assert len(recorded) == 60
    for index in (0, 31, 59):
        timestamp, depth = recorded[index]
        produced = np.load(tmp_path / "out" / f"{index:06d}.npy")
        assert timestamp == pytest.approx(index * 1001 / 30000, abs=1e-3)
        assert np.abs(depth - produced).max() <= 0.0005 + 1e-6  # within 1 mm (0.5 mm rounding)


def test_relative_recording_stores_its_scale(tmp_path, write_config):
    config = write_config(
        synthetic_config(
            tmp_path,
            sinks=[{"type": "video", "lossless": "rel.mkv"}, {"type": "npy", "dir": "out"}],
        )
    )
    assert run_edgedepth("run", "--config", str(config)).returncode == 0
    recorded = decoded_by_pyav(tmp_path / "rel.mkv")
    assert recording_kind(tmp_path / "rel.mkv") == DepthKind.RELATIVE_DISPARITY
    produced = np.load(tmp_path / "out" / "000004.npy")
    step = produced.max() * 2 / 65535  # the quantisation step: 0..2×max of frame 0 in 16 bits
    assert np.abs(recorded[4][1] - produced).max() <= step


@POSIX_SIGNALS
@pytest.mark.parametrize("lossless", ["d.mkv", "d.nut"])
def test_recordings_survive_sigkill(tmp_path, write_config, lossless):
    config = write_config(
        synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": 600, "width": 96, "height": 64},
            backend={**METRIC, "delay_ms": 30},
            sinks=[
                {"type": "video", "path": "d.mp4", "lossless": lossless},
                {"type": "npy", "dir": "out"},
            ],
        )
    )
    written = killed_run(config, tmp_path / "out", 30)
    assert written >= 30
    recorded = decoded_by_pyav(tmp_path / lossless)
    # Every frame before the kill is readable, bit-exact, except those still in flight.
    assert len(recorded) >= written - 3, (len(recorded), written)
    for index in (0, 10, len(recorded) - 1):
        produced = np.load(tmp_path / "out" / f"{index:06d}.npy")
        assert np.abs(recorded[index][1] - produced).max() <= 0.0005 + 1e-6
    with av.open(str(tmp_path / "d.mp4")) as container:
        playable = sum(1 for _ in container.decode(video=0))
    print(json.dumps({"npy": written, "mkv": len(recorded), "mp4": playable}))
    assert playable >= written - 3  # one fragment per frame


def test_sink_option_errors(tmp_path, write_config):
    config = write_config(
        synthetic_config(tmp_path, sinks=[{"type": "video", "path": "nodir/x.mp4"}])
    )
    result = run_edgedepth("check", "--config", str(config))
    assert result.returncode == 2
    assert "pipeline.yaml: sinks[0].path: parent directory does not exist" in result.stderr
    config = write_config(synthetic_config(tmp_path, sinks=[{"type": "video", "layout": "depth"}]))
    result = run_edgedepth("check", "--config", str(config))
    assert "sinks[0]: give `path` (mp4), `lossless` (mkv), or both" in result.stderr
    config = write_config(
        synthetic_config(tmp_path, sinks=[{"type": "video", "lossless": "d.avi"}])
    )
    result = run_edgedepth("check", "--config", str(config))
    assert result.returncode == 2
    assert "sinks[0]: lossless: d.avi: use .mkv (FFV1) or .nut (FFVHuff, less CPU)" in result.stderr


def test_depth_mp4_shows_the_colourised_depth(tmp_path, write_config):
    """The depth layout goes to the encoder as RGBA: the decoded mp4 shows colorize's colours."""
    config = write_config(
        synthetic_config(
            tmp_path,
            plugins=[str(TESTS / "plugins" / "ramp.py")],
            source={"type": "synthetic", "frames": 3, "width": 96, "height": 64},
            backend={"type": "ramp", "max_depth": 10.0},
            sinks=[
                {"type": "video", "path": "d.mp4", "range": [0.0, 10.0], "crf": 0},
                {"type": "npy", "dir": "out"},
            ],
        )
    )
    result = run_edgedepth("run", "--config", str(config))
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "d.mp4")) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 3
    for index, picture in enumerate(decoded):
        depth = np.load(tmp_path / "out" / f"{index:06d}.npy")
        expected = colorize(depth, DepthKind.METRIC_METERS, 0.0, 10.0, "turbo")
        assert picture.shape == expected.shape
        # 4:2:0 chroma and rounding: close, not bit-exact
        assert np.abs(picture.astype(int) - expected).mean() < 4


def test_failing_sink_stops_the_run_and_the_others_finalise(tmp_path, write_config):
    config = synthetic_config(
        tmp_path,
        plugins=[str(TESTS / "plugins" / "sleepy.py"), str(TESTS / "plugins" / "full_disk.py")],
        source={"type": "synthetic", "frames": 60, "width": 64, "height": 48},
        backend=METRIC,
        sinks=[
            {"type": "video", "path": "depth.mp4", "lossless": "depth.mkv"},
            {"type": "full-disk", "fail_at": 10},
        ],
    )
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "sink 'full-disk'" in line and "No space left on device" in line
    with av.open(str(tmp_path / "depth.mp4")) as container:
        played = sum(1 for _ in container.decode(video=0))
    recorded = list(read_depth_recording(tmp_path / "depth.mkv"))
    assert played >= 10 and len(recorded) >= 10  # everything written before the failure


def test_frames_of_different_sizes(tmp_path, write_config):
    """Photos of two sizes: the mp4 keeps the first size and letterboxes the others (it used to
    crash on a taller frame and smear the edge of a smaller one); the lossless recording starts
    a new segment per size and every segment round-trips exactly."""
    photos = tmp_path / "photos"
    photos.mkdir()
    sizes = [(64, 96), (64, 96), (80, 60), (80, 60), (64, 96), (32, 48)]  # (height, width)
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate(sizes):
        image = rng.integers(40, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(image).save(photos / f"img{index}.png")
    config = synthetic_config(
        tmp_path,
        source={"type": "images", "path": "photos"},
        backend=METRIC,
        sinks=[
            {"type": "video", "path": "depth.mp4", "lossless": "depth.mkv"},
            {"type": "npy", "dir": "out"},
        ],
    )
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("scaled to fit and padded with black") == 1
    with av.open(str(tmp_path / "depth.mp4")) as container:
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(pictures) == len(sizes)
    assert all(picture.shape == (64, 96, 3) for picture in pictures)
    # 80×60 fits as 64×48, centred: black bars of 24 columns on each side.
    portrait = pictures[2].astype(int)
    assert portrait[:, :20].max() < 16 and portrait[:, 76:].max() < 16
    assert portrait[:, 28:68].mean() > 40
    # 32×48 is scaled up to fill the frame: no bars.
    assert pictures[5][:, :4].mean() > 40 and pictures[5][:4].mean() > 40

    segments = recording_segments(tmp_path / "depth.mkv")
    assert [p.name for p in segments] == [
        "depth.mkv",
        "depth.part2.mkv",
        "depth.part3.mkv",
        "depth.part4.mkv",
    ]
    assert [len(decoded_by_pyav(p)) for p in segments] == [2, 2, 1, 1]
    recorded = list(read_depth_segments(tmp_path / "depth.mkv"))
    assert len(recorded) == len(sizes)
    for index, (timestamp, depth) in enumerate(recorded):
        produced = np.load(tmp_path / "out" / f"{index:06d}.npy")
        assert depth.shape == produced.shape == sizes[index]
        assert timestamp == pytest.approx(index / 30, abs=1e-3)
        # The 16-bit millimetre values come back exactly.
        assert np.array_equal(np.rint(depth * 1000), np.rint(produced * 1000))


def test_segments_of_an_older_recording_are_not_read(tmp_path):
    """A leftover depth.part2.mkv from an earlier run under the same name is not part of a new
    one-segment recording."""
    old = DepthRecorder(tmp_path / "depth.mkv", 30.0)
    old.write(np.ones((4, 6), np.float32), DepthKind.METRIC_METERS, 0.0)
    old.write(np.ones((6, 4), np.float32), DepthKind.METRIC_METERS, 0.1)
    old.close()
    assert (tmp_path / "depth.part2.mkv").exists()
    new = DepthRecorder(tmp_path / "depth.mkv", 30.0)
    new.write(np.full((4, 6), 2.0, np.float32), DepthKind.METRIC_METERS, 0.0)
    new.close()
    assert recording_segments(tmp_path / "depth.mkv") == [tmp_path / "depth.mkv"]
    assert not (tmp_path / "depth.part2.mkv").exists()  # replaced with the rest of it
    ((_, depth),) = list(read_depth_segments(tmp_path / "depth.mkv"))
    assert np.array_equal(depth, np.full((4, 6), 2.0, np.float32))


RAMP = str(TESTS / "plugins" / "ramp.py")


def lossless_run(tmp_path, write_config, backend, frames=4, **video):
    config = synthetic_config(
        tmp_path,
        plugins=[RAMP],
        source={"type": "synthetic", "frames": frames, "width": 64, "height": 48},
        backend={"type": "ramp", **backend},
        sinks=[
            {"type": "video", "lossless": "d.mkv", "existing": "overwrite", **video},
            {"type": "npy", "dir": "out", "existing": "clear"},
        ],
    )
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 0, result.stderr
    # Each segment (a new unit or size continues in a new file) decoded by PyAV alone.
    segments = recording_segments(tmp_path / "d.mkv")
    recorded = [depth for segment in segments for _, depth in decoded_by_pyav(segment)]
    produced = [np.load(tmp_path / "out" / f"{i:06d}.npy") for i in range(frames)]
    return result, recorded, produced


def segment_units(path):
    """Each segment's unit and frame count, read from the files' own metadata."""
    units = []
    for segment in recording_segments(path):
        with av.open(str(segment)) as container:
            scale = float(container.metadata["DEPTH_SCALE"])
            units += [1 / scale] * sum(1 for _ in container.demux(video=0) if _.size)
    return units


def test_lossless_metric_covers_the_models_range_and_marks_invalid_pixels(tmp_path, write_config):
    # The outdoor model reaches 80 m: millimetres in 16 bits stop at 65.535 m.
    result, recorded, produced = lossless_run(
        tmp_path, write_config, {"max_depth": 80.0, "nan_rows": 3}
    )
    for got, want in zip(recorded, produced, strict=True):
        assert np.isnan(got[:3]).all()  # invalid pixels stay invalid, explicitly
        assert np.nanmax(got) > 74.9  # beyond the 65.535 m of millimetres
        assert np.abs(got[3:] - want[3:]).max() <= 0.001 + 1e-5  # 2 mm steps: exact to 1 mm
    assert "wrote" in result.stderr and "2 mm steps" in result.stderr
    assert "warning" not in result.stderr


def test_lossless_metric_without_a_declared_range_is_never_clipped(tmp_path, write_config):
    # 0.5 to 150 m from a backend that does not declare its range: 150 m on the first frame.
    metric = {"max_depth": 150.0, "min_depth": 0.5, "declare_range": False}
    result, recorded, produced = lossless_run(tmp_path, write_config, metric)
    assert segment_units(tmp_path / "d.mkv") == [0.005] * 4  # the finest unit reaching 150 m
    for got, want in zip(recorded, produced, strict=True):
        assert np.nanmax(want) > 149.9 and np.nanmin(want) < 0.51
        assert np.abs(got - want).max() <= 0.0025 + 1e-4
    assert "warning" not in result.stderr


def test_lossless_metric_that_grows_continues_in_coarser_units(tmp_path, write_config):
    # 30 m first (1 mm steps), then × 1.5 a frame up to 152 m: a new segment per coarser unit.
    metric = {"max_depth": 30.0, "min_depth": 0.5, "declare_range": False, "growth": 1.5}
    result, recorded, produced = lossless_run(tmp_path, write_config, metric, frames=5)
    units = segment_units(tmp_path / "d.mkv")
    assert units == [0.001, 0.001, 0.002, 0.002, 0.005]
    assert len(recording_segments(tmp_path / "d.mkv")) == 3
    for got, want, unit in zip(recorded, produced, units, strict=True):
        assert np.abs(got - want).max() <= unit / 2 + 1e-4
    assert np.nanmax(recorded[-1]) > 151.8
    warnings = [line for line in result.stderr.splitlines() if "beyond" in line]
    assert len(warnings) == 2 and all("set metric_max:" in line for line in warnings)
    # The advice works: one file, one unit, from the start.
    largest = warnings[-1].split("set metric_max: ")[1].split()[0]
    result, recorded, produced = lossless_run(
        tmp_path, write_config, metric, frames=5, metric_max=float(largest)
    )
    assert segment_units(tmp_path / "d.mkv") == [0.005] * 5
    assert "warning" not in result.stderr


def test_lossless_relative_grows_without_clipping(tmp_path, write_config):
    relative = {"kind": "relative-disparity", "max_depth": 5.0}
    # Growing to 3× the first frame: inside the 4× headroom, one segment.
    _, recorded, produced = lossless_run(tmp_path, write_config, {**relative, "growth": 1.44})
    step = 4 * 5.0 / 65534
    for got, want in zip(recorded, produced, strict=True):
        assert np.abs(got - want).max() <= step / 2 + 1e-5
    assert len(recording_segments(tmp_path / "d.mkv")) == 1
    # Growing to 8×: beyond the range, a coarser segment, said with advice; nothing clipped.
    result, recorded, produced = lossless_run(tmp_path, write_config, {**relative, "growth": 2.0})
    assert result.stderr.count("set relative_max:") == 1
    units = segment_units(tmp_path / "d.mkv")
    for got, want, unit in zip(recorded, produced, units, strict=True):
        assert np.abs(got - want).max() <= unit / 2 + 1e-5


def test_lossless_after_an_all_nan_first_frame(tmp_path, write_config):
    relative = {"kind": "relative-disparity", "max_depth": 5.0, "nan_first_frame": True}
    _, recorded, produced = lossless_run(tmp_path, write_config, relative)
    assert np.isnan(recorded[0]).all()
    for got, want in zip(recorded[1:], produced[1:], strict=True):
        assert np.isfinite(got).all() and np.abs(got - want).max() <= 20.0 / 65534


def test_full_disk_reports_what_the_recording_holds(tmp_path, write_config, small_disk):
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": 400, "width": 64, "height": 48},
        sinks=[{"type": "video", "lossless": str(small_disk / "d.mkv")}],
    )
    result = run_edgedepth("run", "--config", str(write_config(config)), timeout=120)
    assert result.returncode == 1, result.stderr
    assert f"cannot write {small_disk / 'd.mkv'}: disk full" in last_line(result)
    assert "Traceback" not in result.stderr
    readable = len(list(read_depth_recording(small_disk / "d.mkv")))
    assert readable > 0
    assert f"wrote {small_disk / 'd.mkv'}: {readable} frames" in result.stderr  # what it holds


def test_a_recording_of_invalid_frames_only(tmp_path):
    recorder = DepthRecorder(tmp_path / "nan.mkv", 30.0)
    for index in range(3):
        recorder.write(np.full((8, 10), np.nan, np.float32), DepthKind.RELATIVE_DEPTH, index / 30)
    recorder.close()
    recorded = decoded_by_pyav(tmp_path / "nan.mkv")
    assert len(recorded) == 3 and all(np.isnan(depth).all() for _, depth in recorded)
    with av.open(str(tmp_path / "nan.mkv")) as container:
        assert np.isfinite(float(container.metadata["DEPTH_SCALE"]))  # a usable unit all the same
