"""The bad-input table: what a user can get wrong, and how each ends — one line naming the
file, key or value, the right exit code, never a traceback. `tests/test_bad_inputs.py` runs
every row, and for every row of `run` or `check` that fails at start, the other command too:
`check` fails exactly as `run` does. `python -m tests.bad_inputs` prints the table
(bench/RESULTS.md keeps a copy).

Each case makes its files under a folder of its own and returns the command line; the real
`edgedepth` runs it in a subprocess. A few rows end well on purpose (a damaged cache rebuilt, a
warning): their line is the one that says so."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from tests.conftest import SLEEPY, TESTS, offline_hub, run_edgedepth, synthetic_config

SLEEPY_TWIN = str(TESTS / "plugins" / "sleepy_twin.py")
SLOW_CLOSE = str(TESTS / "plugins" / "slow_close.py")
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_ZENOH = importlib.util.find_spec("zenoh") is not None
LINUX = sys.platform == "linux"
#: Sockets a case holds while its command runs (a port in use).
HELD: list[socket.socket] = []


@dataclass(frozen=True)
class Case:
    name: str
    #: Writes what the case needs into the folder; returns the command's arguments.
    setup: Callable[[Path], list[str]]
    exit_code: int
    #: Each must be in the last line of stderr (which starts with "error: "); for a case that
    #: ends well (``error=False``), in the line of stderr that holds the first of them.
    fragments: tuple[str, ...]
    needs_torch: bool = False
    #: Environment of the command (given the case's folder).
    env: Callable[[Path], dict[str, str]] | None = None
    #: The case ends in an error (else: it is fixed, and a line says what happened).
    error: bool = True
    #: Text that must appear nowhere in stderr.
    absent: tuple[str, ...] = ()
    #: A `run` or `check` that fails before the first frame: `check` must fail as `run` does.
    at_start: bool = True
    #: Runs the command its own way (a signal sent mid-way): (exit code, stderr).
    runner: Callable[[list[str], Path, dict[str, str]], tuple[int, str]] | None = None
    #: Only where this holds (a platform, an installed package).
    runs_here: bool = True


def config(folder: Path, name: str = "c.yaml", **sections: object) -> Path:
    """A small synthetic → sleepy → npy config (3 frames) with ``sections`` replaced."""
    three_frames = {"type": "synthetic", "frames": 3, "width": 64, "height": 48}
    content = synthetic_config(folder, **{"source": three_frames, **sections})
    path = folder / name
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def run(*sections_and_args: object, command: str = "run", **sections: object):
    """A setup that writes ``config(**sections)`` and runs ``edgedepth COMMAND --config``."""

    def setup(folder: Path) -> list[str]:
        return [command, "--config", str(config(folder, **sections)), *map(str, sections_and_args)]

    return setup


def raw_config(text: bytes | str, command: str = "check"):
    def setup(folder: Path) -> list[str]:
        path = folder / "raw.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return [command, "--config", str(path)]

    return setup


def with_files(make: Callable[[Path], dict[str, object]], command: str = "run"):
    """A setup whose config sections depend on files it makes first."""

    def setup(folder: Path) -> list[str]:
        return [command, "--config", str(config(folder, **make(folder)))]

    return setup


def images(folder: Path, sizes: list[tuple[int, int]], corrupt: int | None = None) -> Path:
    photos = folder / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate(sizes):
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"p{index:02d}.png")
    if corrupt is not None:
        (photos / f"p{corrupt:02d}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return photos


def plugin_file(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text)
    return str(folder / name)


def checkpoint_case(make: Callable[[Path], Path], backend_type: str = "dav2-relative"):
    return with_files(
        lambda folder: {
            "plugins": [],
            "backend": {"type": backend_type, "checkpoint": str(make(folder))},
            "preprocess": {"resize": {"policy": "fixed", "width": 126, "height": 126}},
            "runtime": {"cache_dir": str(folder / "cache")},
        }
    )


def hf_folder(folder: Path, config_json: str) -> Path:
    model = folder / "model-hf"
    model.mkdir()
    (model / "config.json").write_text(config_json)
    (model / "model.safetensors").write_bytes(b"")
    return model


def hf_checkpoint(folder: Path, kind: str) -> Path:
    """A real Hugging Face ``*-hf`` folder of ``kind`` (small random weights)."""
    from tests.dav2_fixtures import save_hf

    save_hf(folder / "model-hf", kind)
    return folder / "model-hf"


def evil_pickle(folder: Path) -> Path:
    path = folder / "evil.pth"
    # A pickle that calls os.system: protocol 2, GLOBAL posix.system, REDUCE.
    path.write_bytes(b"\x80\x02cposix\nsystem\nq\x00X\x05\x00\x00\x00touchq\x01\x85q\x02Rq\x03.")
    return path


def ready_model(folder: Path) -> Path:
    """A static ONNX model (1×3×126×126 → 1×1×126×126) made with onnx's helpers."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("ReduceMean", ["image"], ["depth"], axes=[1], keepdims=1)
    graph = helper.make_graph(
        [node],
        "m",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 126, 126])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, 126, 126])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "ready.onnx"
    onnx.save(model, path)
    return path


def two_input_model(folder: Path) -> Path:
    """An ONNX model that takes two inputs (image, bias): not a depth model any backend feeds."""
    import onnx
    from onnx import TensorProto, helper

    mean = helper.make_node("ReduceMean", ["image"], ["m"], axes=[1], keepdims=1)
    add = helper.make_node("Add", ["m", "bias"], ["depth"])
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 126, 126])
    bias = helper.make_tensor_value_info("bias", TensorProto.FLOAT, [1, 1, 126, 126])
    depth = helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, 126, 126])
    model = helper.make_model(
        helper.make_graph([mean, add], "m", [image, bias], [depth]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    path = folder / "two.onnx"
    onnx.save(model, path)
    return path


def ready_backend(folder: Path, cache: bool = True, **options: object) -> dict[str, object]:
    """Sections running ``ready_model`` at its own size (``cache``: in the case's folder; else
    where $EDGEDEPTH_CACHE says)."""
    sections: dict[str, object] = {
        "plugins": [],
        "backend": {"type": "dav2-relative", "model": str(ready_model(folder)), **options},
        "preprocess": {"resize": {"policy": "fixed", "width": 126, "height": 126}},
    }
    if cache:
        sections["runtime"] = {"cache_dir": str(folder / "cache")}
    return sections


def huge_png(folder: Path) -> Path:
    """A PNG whose header says 15000×15000 (its pixels are never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 15000, 15000, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 15001)  # one row; the header is what is refused
    photos = folder / "photos"
    photos.mkdir()
    path = photos / "huge.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
    return path


def mp4_cut_in_its_moov(folder: Path) -> Path:
    """A playable mp4 with its index (moov) first, cut a third of the way into that index."""
    import av

    path = folder / "whole.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(10):
            picture = np.full((48, 64, 3), index * 20, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    moov = data.index(b"moov") - 4
    cut = folder / "cut.mp4"
    # The first cut FFmpeg still opens, with a stream it has no decoder or frame size for.
    for end in range(moov + 8, moov + int.from_bytes(data[moov : moov + 4], "big")):
        cut.write_bytes(data[:end])
        try:
            with av.open(str(cut)) as container:
                streams = container.streams.video
                if streams and streams[0].codec_context is None:
                    return cut
        except (av.FFmpegError, OSError):
            continue
    raise AssertionError("no cut of the moov leaves a stream without a decoder")


def recorded(*names: str):
    """Files an earlier run left (a recording of a few bytes each)."""

    def make(folder: Path) -> None:
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"an earlier run's recording")

    return make


def held_port(folder: Path) -> int:
    """A port on 127.0.0.1 that another program listens on while the case runs."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    HELD.append(taken)
    return taken.getsockname()[1]


def alias_bomb() -> str:
    """Nine levels of nine aliases: a billion values once expanded, 1 kB of YAML."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join([*lines, "source: *i", ""])


class Started:
    """An `edgedepth` subprocess (or ``command``) whose stderr lines are collected as they come,
    to signal it at the right moment."""

    def __init__(
        self,
        args: list[str],
        folder: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "edgedepth"]), *args],
            stderr=subprocess.PIPE,
            text=True,
            cwd=folder,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        self.lines.extend(self.process.stderr)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def until(self, done: Callable[[], bool], timeout: float = 120) -> None:
        """Wait until ``done()`` (or the process ends, or ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while not done() and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """(exit code, stderr) once it ends."""
        self.process.wait(timeout)
        self._reader.join(10)
        return self.process.returncode, "".join(self.lines)


def interrupted_when(marker: str):
    """A runner that sends SIGINT once the file ``marker`` (in the case's folder) exists."""

    def run(args: list[str], folder: Path, env: dict[str, str]) -> tuple[int, str]:
        started = Started(args, folder, env)
        started.until((folder / marker).exists)
        started.interrupt()
        return started.finish()

    return run


def slow_import(folder: Path) -> dict[str, str]:
    """An environment in which importing pluggy takes a minute (a module of that name first
    on the path, which touches ``importing`` when it is reached)."""
    slow = folder / "slow-imports"
    slow.mkdir(exist_ok=True)
    marker = folder / "importing"
    (slow / "pluggy.py").write_text(
        f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(60)\n"
    )
    return {"PYTHONPATH": str(slow)}


def slow_close_run(folder: Path) -> list[str]:
    """A long run whose second sink takes two minutes to close (in Python): interrupted
    after its first frame, it waits for that sink, and says so."""
    path = config(
        folder,
        plugins=[SLEEPY, SLOW_CLOSE],
        source={"type": "synthetic", "frames": 5000, "width": 32, "height": 24},
        backend={"type": "sleepy", "delay_ms": 5},
        sinks=[{"type": "npy", "dir": "out"}, {"type": "slow-close", "close_seconds": 120}],
    )
    return ["run", "--config", str(path)]


def interrupted_twice(args: list[str], folder: Path, env: dict[str, str]) -> tuple[int, str]:
    """SIGINT after the first frame, then again once the run says it is waiting."""
    started = Started(args, folder, env)
    started.until((folder / "out" / "000000.npy").exists)
    started.interrupt()
    started.until(lambda: started.said("Ctrl-C again"))
    started.interrupt()
    return started.finish()


def damaged_int8_cache(folder: Path) -> list[str]:
    """A ready model run in int8 once (its int8 graph cached), then the cached graph damaged."""
    path = config(folder, **ready_backend(folder, precision="int8"), sinks=[])
    args = ["run", "--config", str(path)]
    assert run_edgedepth(*args, cwd=folder).returncode == 0
    (cached,) = (folder / "cache" / "int8").rglob("*.onnx")
    cached.write_bytes(b"half a graph")
    return args


CASES: list[Case] = [
    # --- the config file ---------------------------------------------------------------------
    Case("config file missing", lambda f: ["check", "--config", str(f / "nope.yaml")], 2,
         ("nope.yaml: config file not found",)),
    Case("invalid YAML", raw_config("source: {type: synthetic\nbackend: x\n"), 2,
         ("raw.yaml: invalid YAML (line",)),
    Case("binary config", raw_config(b"\xff\xfe\x00\x01 source: x\n"), 2,
         ("raw.yaml: not a text file",)),
    Case("a list at the top", raw_config("- source\n- backend\n"), 2,
         ("top level must be a mapping",)),
    Case("typo in a key", run(command="check", sinkz=[]), 2,
         ("sinkz: unknown key; did you mean 'sinks'?",)),
    Case("unknown backend", run(command="check", backend={"type": "nope"}), 2,
         ("backend.type: unknown backend 'nope'",)),
    Case("queue size 0", run(command="check", runtime={"queue_size": 0}), 2,
         ("runtime.queue_size",)),
    Case("bad --set path", run("--set", "sinks[4].dir=x", command="check"), 2,
         ("--set sinks[4].dir: sinks[4]: no such list item",)),
    Case("--set without =", run("--set", "novalue", command="check"), 2,
         ("expected KEY.PATH=VALUE",)),
    # --- plugins -----------------------------------------------------------------------------
    Case("plugin file missing", run(command="check", plugins=["nowhere/p.py"]), 2,
         ("plugins[0]: plugin file not found",)),
    Case("plugin module missing", run(command="check", plugins=["no_such_module_xyz"]), 2,
         ("cannot import plugin 'no_such_module_xyz'",)),
    Case("plugin exits on import",
         with_files(lambda f: {"plugins": [plugin_file(f, "rude.py", "raise SystemExit(3)\n")]},
                    command="check"), 2, ("rude.py", "SystemExit(3)")),
    Case("two plugins, one name", run(command="check", plugins=[SLEEPY, SLEEPY_TWIN]), 2,
         ("registered by two plugins",)),
    # --- outputs -----------------------------------------------------------------------------
    Case("npy name without {index}",
         run(command="check", sinks=[{"type": "npy", "dir": "o", "name": "d.npy"}]), 2,
         ("sinks[0].name:", "has no {index}")),
    Case("npy name with {foo}",
         run(command="check", sinks=[{"type": "npy", "dir": "o", "name": "{foo}{index}.npy"}]),
         2, ("sinks[0].name:", "unknown field {foo}")),
    Case("npy folder of an old run", with_files(
        lambda f: (f / "out").mkdir() or ((f / "out" / "000007.npy").write_bytes(b"x") and {})), 2,
        ("sinks[0].dir:", "holds 1 file(s) of an earlier run (e.g. 000007.npy)",
         "existing: clear")),
    Case("a second run over its mp4", with_files(lambda f: recorded("rec.mp4")(f) or {
        "sinks": [{"type": "video", "path": "rec.mp4"}]}), 2,
        ("sinks[0].path:", "rec.mp4 exists (the output of an earlier run)",
         "existing: overwrite")),
    Case("a second run over its lossless recording", with_files(
        lambda f: recorded("d.mkv")(f) or {"sinks": [{"type": "video", "lossless": "d.mkv"}]}), 2,
        ("sinks[0].lossless:", "d.mkv exists", "existing: new-name")),
    Case("a segment of an earlier recording", with_files(lambda f: recorded("d.part3.mkv")(f) or {
        "sinks": [{"type": "video", "lossless": "d.mkv"}]}), 2,
        ("sinks[0].lossless:", "(e.g. d.part3.mkv)")),
    Case("a second run over its MCAP", with_files(lambda f: recorded("r.mcap")(f) or {
        "sinks": [{"type": "mcap", "path": "r.mcap"}]}), 2, ("sinks[0].path:", "r.mcap exists")),
    Case("MCAP bytes under a .bag name", run(sinks=[{"type": "mcap", "path": "run.bag"}]), 2,
         ("sinks[0].path:", "run.bag: an MCAP recording is named .mcap")),
    Case("two sinks, one file", run(sinks=[{"type": "mcap", "path": "r.mcap"},
                                           {"type": "mcap", "path": "r.mcap"}]), 2,
         ("sinks[1].path:", "is also written by another output of this run")),
    Case("MCAP path under a file", with_files(lambda f: recorded("file")(f) or {
        "sinks": [{"type": "mcap", "path": "file/d.mcap"}]}), 2,
        ("sinks[0].path:", "file is a file, not a folder")),
    Case("MCAP in /proc", run(sinks=[{"type": "mcap", "path": "/proc/d.mcap"}]), 2,
         ("sinks[0].path:", "cannot create files in /proc"), runs_here=LINUX),
    Case("run --stats-json over an earlier file", lambda f: recorded("stats.json")(f) or [
        "run", "--config", str(config(f)), "--stats-json", str(f / "stats.json")], 2,
        ("--stats-json:", "stats.json exists", "--existing overwrite"), at_start=False),
    Case("video path is a folder",
         with_files(lambda f: (f / "rec").mkdir() or {"sinks": [{"type": "video", "path": "rec"}]},
                    command="check"), 2, ("sinks[0].path:", "is a folder")),
    Case("video folder missing",
         run(command="check", sinks=[{"type": "video", "path": "no/x.mp4"}]), 2,
         ("sinks[0].path: parent directory does not exist",)),
    Case("topic on every network (ZeroMQ 0.0.0.0)", run(sinks=[
        {"type": "topic", "endpoint": "tcp://0.0.0.0:5556"}]), 2,
        ("sinks[0]: endpoint tcp://0.0.0.0:5556 serves every network", "expose_to_network: true")),
    Case("topic on every network (ZeroMQ *)", run(sinks=[
        {"type": "topic", "endpoint": "tcp://*:5556"}]), 2,
        ("endpoint tcp://*:5556 serves every network", "expose_to_network: true")),
    Case("topic on every network (zenoh 0.0.0.0)", run(sinks=[
        {"type": "topic", "transport": "zenoh", "endpoint": "tcp/0.0.0.0:7447"}]), 2,
        ("endpoint tcp/0.0.0.0:7447 serves every network", "expose_to_network: true")),
    Case("topic port not a number", run(sinks=[
        {"type": "topic", "endpoint": "tcp://nonsense:abc"}]), 2,
        ("sinks[0].endpoint:", "port 'abc' is not a number")),
    Case("topic host unknown", run(sinks=[{"type": "topic", "endpoint": "tcp://nonsense:5556"}]),
         2, ("host 'nonsense' is not an address",)),
    Case("topic port in use (ZeroMQ)", with_files(lambda f: {"sinks": [
        {"type": "topic", "endpoint": f"tcp://127.0.0.1:{held_port(f)}"}]}), 1,
        ("sinks[0]: endpoint tcp://127.0.0.1:", "cannot bind: Address already in use")),
    Case("topic port in use (zenoh)", with_files(lambda f: {"sinks": [
        {"type": "topic", "transport": "zenoh", "endpoint": f"tcp/127.0.0.1:{held_port(f)}"}]}),
        1, ("sinks[0]: endpoint tcp/127.0.0.1:", "Address already in use"), runs_here=HAS_ZENOH),
    Case("graph.resize_to negative", run(command="check", plugins=[], backend={
        "type": "dav2-relative", "random_weights": True, "graph": {"resize_to": [-14, 14]}}), 2,
        ("backend.graph", "sides must be positive")),
    Case("graph.output_size zero", run(command="check", plugins=[], backend={
        "type": "dav2-relative", "random_weights": True, "graph": {"output_size": [0, 640]}}), 2,
        ("backend.graph", "sides must be positive")),
    # --- sources -----------------------------------------------------------------------------
    Case("video file missing", run(command="check", source={"type": "video", "path": "no.mp4"}),
         2, ("source.path: file not found",)),
    Case("not a video", with_files(lambda f: (f / "g.mp4").write_bytes(b"\0garbage" * 50) and {
        "source": {"type": "video", "path": "g.mp4"}}, command="check"), 1,
        ("source:", "g.mp4: cannot open video")),
    Case("image folder missing", run(command="check", source={"type": "images", "path": "no"}),
         1, ("source:", "no such folder or file")),
    Case("image folder empty", with_files(lambda f: (f / "e").mkdir() or {
        "source": {"type": "images", "path": "e"}}, command="check"), 1,
        ("source:", "no images found")),
    Case("camera missing", run(command="check", source={"type": "camera", "device": 63}), 1,
         ("camera:", "not found")),
    Case("mp4 cut inside its moov", with_files(lambda f: {
        "source": {"type": "video", "path": str(mp4_cut_in_its_moov(f))}}), 1,
        ("source:", "cut.mp4: video stream #0 cannot be decoded", "cut short or damaged")),
    Case("a 15000² image", with_files(lambda f: huge_png(f) and {
        "source": {"type": "images", "path": "photos"}}), 1,
        ("source:", "photos/huge.png", "225000000 pixels", "178956970")),
    Case("corrupt image mid-folder", with_files(lambda f: {
        "source": {"type": "images", "path": str(images(f, [(24, 32)] * 6, corrupt=4))}}), 1,
        ("source 'images'", "p04.png", "frame 4"), at_start=False),
    # --- backends ----------------------------------------------------------------------------
    Case("checkpoint missing", run(command="check", plugins=[], backend={
        "type": "dav2-relative", "checkpoint": "none.pth"}), 2,
        ("backend.checkpoint: file not found",)),
    Case("official checkpoint offline", with_files(lambda f: {
        "plugins": [], "backend": {"type": "dav2-metric", "dataset": "vkitti"},
        "runtime": {"cache_dir": str(f / "cache")}}, command="check"), 1,
        ("depth_anything_v2_metric_vkitti_vits.pth", "cannot be downloaded")),
    Case("random bytes as .pth", checkpoint_case(
        lambda f: (f / "r.pth").write_bytes(random.Random(0).randbytes(4096)) and f / "r.pth"), 1,
        ("r.pth", "not a PyTorch checkpoint"), needs_torch=True),
    Case("pickle with code", checkpoint_case(evil_pickle), 1, ("refused", "evil.pth"),
         needs_torch=True),
    Case("config.json is a list", checkpoint_case(lambda f: hf_folder(f, "[1, 2]")), 1,
         ("config.json", "JSON object"), needs_torch=True),
    Case("metric config.json without max_depth", checkpoint_case(
        lambda f: hf_folder(f, '{"depth_estimation_type": "metric"}'), "dav2-metric"), 1,
        ("config.json", "max_depth"), needs_torch=True),
    Case("ready model of another size", with_files(lambda f: {
        "plugins": [], "backend": {"type": "dav2-relative", "model": str(ready_model(f))},
        "preprocess": {"resize": {"policy": "fixed", "width": 140, "height": 140}}},
        command="check"), 2, ("takes 126×126 images", "delivers 140×140")),
    Case("photos of other sizes, static model", with_files(lambda f: {
        "plugins": [], "source": {"type": "images", "path": str(
            images(f, [(126, 126), (126, 126), (140, 126)]))},
        "backend": {"type": "dav2-relative", "model": str(ready_model(f))},
        "preprocess": {"resize": {"policy": "none"}}}), 1,
        ("takes 126×126 images", "140×126"), at_start=False),
    Case("ONNX model with two inputs", with_files(lambda f: {**ready_backend(f), "backend": {
        "type": "dav2-relative", "model": str(two_input_model(f))}}), 2,
        ("two.onnx takes the inputs image, bias, but this backend feeds image",)),
    Case("zero-byte .pth", checkpoint_case(
        lambda f: (f / "z.pth").write_bytes(b"") or f / "z.pth"), 1,
        ("z.pth", "not a PyTorch checkpoint"), needs_torch=True),
    Case("junk .safetensors", checkpoint_case(
        lambda f: (f / "j.safetensors").write_bytes(random.Random(1).randbytes(3000))
        and f / "j.safetensors"), 1, ("j.safetensors", "not safetensors"), needs_torch=True),
    Case("relative HF checkpoint as dav2-metric", checkpoint_case(
        lambda f: hf_checkpoint(f, "relative"), "dav2-metric"), 1,
        ("model-hf is a relative checkpoint", "dav2-relative"), needs_torch=True),
    Case("graph cache that cannot be written", with_files(lambda f: {
        "plugins": [], "backend": {"type": "dav2-relative", "random_weights": True},
        "preprocess": {"resize": {"policy": "fixed", "width": 126, "height": 126}},
        "runtime": {"cache_dir": "/proc/edgedepth-cache"}}), 1,
        ("the graph cache /proc/edgedepth-cache/exports cannot be written",
         "set runtime.cache_dir (or $EDGEDEPTH_CACHE)"), needs_torch=True, runs_here=LINUX),
    Case("read-only EDGEDEPTH_CACHE (int8)", with_files(
        lambda f: ready_backend(f, cache=False, precision="int8")), 1,
        ("the int8 cache /proc/edgedepth-cache/int8/", "$EDGEDEPTH_CACHE"),
         env=lambda f: {"EDGEDEPTH_CACHE": "/proc/edgedepth-cache"}, runs_here=LINUX),
    Case("damaged cached int8 graph (made again)", damaged_int8_cache, 0,
         ("ONNX Runtime cannot load the model", "quantising again"), error=False, at_start=False),
    Case("int8 on a ready model (each line once)", with_files(
        lambda f: ready_backend(f, precision="int8")), 0, ("quantising",), error=False,
        absent=("INFO:edgedepth:",), at_start=False),
    Case("backend returning NaN only", run(backend={"type": "sleepy", "scale": float("nan")}), 0,
         ("no valid depth for frame 0", "every value NaN or infinite"), error=False,
         at_start=False),
    Case("backend returning negative metres", run(backend={
        "type": "sleepy", "kind": "metric-meters", "scale": -1.0}), 0,
        ("no valid depth for frame 0", "≤ 0 m"), error=False, at_start=False),
    Case("unknown QNN option", run(command="check", plugins=[], backend={
        "type": "dav2-relative", "random_weights": True,
        "qnn": {"provider_options": {"htp_perf_mode": "burst"}}}), 2,
        ("provider_options: htp_perf_mode", "not a QNN EP option")),
    # --- commands ----------------------------------------------------------------------------
    Case("calibration synthetic:abc", lambda f: [
        "deploy", "quantize", "--config", str(config(f, plugins=[], backend={
            "type": "dav2-relative", "random_weights": True})),
        "--calibration", "synthetic:abc", "--out", str(f / "q")], 1,
        ("--calibration synthetic:abc", "number of frames")),
    Case("deploy export to a file", lambda f: (f / "taken").write_text("x") and [
        "deploy", "export", "--config", str(config(f, plugins=[], backend={
            "type": "dav2-relative", "random_weights": True})), "--out", str(f / "taken")], 2,
        ("Invalid value for '--out'", "is a file", "deploy export --help")),
    Case("bench --plot in a missing folder", lambda f: [
        "bench", "--config", str(config(f)), "--plot", str(f / "no" / "p.png")], 2,
        ("--plot", "does not exist")),
    Case("bench --plot over an earlier plot", lambda f: recorded("p.png")(f) or [
        "bench", "--config", str(config(f)), "--plot", str(f / "p.png")], 2,
        ("--plot:", "p.png exists", "--existing new-name")),
    Case("eval --out over an earlier evaluation", lambda f: recorded("s/metrics.csv")(f) or [
        "eval", "--config", str(config(f)), "--synthetic", "2", "--out", str(f / "s")], 2,
        ("--out:", "holds 1 file(s) of an earlier run (e.g. metrics.csv)")),
    Case("QAIHUB_CLIENT_INI is a folder", lambda f: (f / "hub").mkdir() or [
        "deploy", "compile", "--config", str(config(f, plugins=[], backend={
            "type": "dav2-relative", "random_weights": True})),
        "--out", str(f / "o"), "--aihub", "--device", "Snapdragon X Elite CRD"], 1,
        ("hub is a folder, not a client.ini",),
        env=lambda f: {"QAIHUB_CLIENT_INI": str(f / "hub")}),
    Case("eval of an empty prediction", lambda f: (
        (f / "pred").mkdir(), (f / "gt").mkdir(),
        np.save(f / "pred" / "a.npy", np.zeros((0, 0), np.float32)),
        Image.fromarray(np.ones((6, 8), np.uint16)).save(f / "gt" / "a.png"),
    ) and ["eval", "--pred", str(f / "pred"), "--gt", str(f / "gt")], 1,
        ("a.npy: prediction of shape (0, 0)",)),
    Case("eval --pred without --gt", lambda f: ["eval", "--pred", str(f)], 1,
         ("--pred and --gt go together",)),
    Case("unknown plugin name", lambda f: ["plugins", "npz"], 1, ("no plugin registers 'npz'",)),
    Case("missing option", lambda f: ["run"], 2, ("Missing option '--config'", "run --help")),
    Case("unknown command", lambda f: ["rnu"], 2, ("No such command 'rnu'",)),
    # --- the config's YAML -------------------------------------------------------------------
    Case("YAML alias bomb", raw_config(alias_bomb()), 2,
         ("raw.yaml: invalid YAML (line", "aliases expand to more than 100000 values")),
    Case("YAML recursive alias", raw_config("source: &s\n  type: synthetic\n  again: *s\n"), 2,
         ("raw.yaml: invalid YAML (line 1", "a recursive alias")),
    Case("YAML key given twice", raw_config("source: {type: synthetic}\nbackend: {type: x}\n"
                                            "source: {type: video}\n"), 2,
         ("raw.yaml: invalid YAML (line 3", "key 'source' appears twice", "first on line 1")),
    Case("plugins: [../../etc/passwd]", with_files(lambda f: recorded("etc/passwd")(f) or {
        "plugins": ["etc/passwd"]}), 2, ("plugins[0]:", "passwd is not a plugin", ".py file")),
    # --- Ctrl-C ------------------------------------------------------------------------------
    Case("Ctrl-C while edgedepth loads", lambda f: ["plugins"], 130,
         ("error: interrupted by SIGINT",), env=slow_import,
         runner=interrupted_when("importing"), runs_here=LINUX),
    Case("Ctrl-C, then again, while a sink's close() works", slow_close_run, 130,
         ("not waiting for sink 'slow-close' (at slow_close.py:", "in close)"), error=False,
         absent=("native",), runner=interrupted_twice, at_start=False, runs_here=LINUX),
]  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    case: Case
    exit_code: int
    #: The last line of stderr (for a case that ends well, the line that says what happened).
    last_line: str
    traceback: bool
    stderr: str = field(default="", repr=False)
    #: The command line as the case made it (before another command was put in its place).
    args: tuple[str, ...] = ()
    folder: Path | None = None

    @property
    def same_line(self) -> str:
        """The line with what differs between two tries of a case (its folder, the port it
        held) taken out."""
        line = (
            self.last_line.replace(str(self.folder), "<folder>") if self.folder else self.last_line
        )
        return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", line)

    @property
    def fails_at_start(self) -> bool:
        """A `run` or `check` that fails before the first frame (`check` must fail as `run`)."""
        case = self.case
        return (
            self.args[:1] in (("run",), ("check",))
            and "--config" in self.args
            and case.error
            and case.at_start
            and case.runner is None
        )

    @property
    def problems(self) -> list[str]:
        found = []
        if self.exit_code != self.case.exit_code:
            found.append(f"exit {self.exit_code}, expected {self.case.exit_code}")
        if self.case.error and not self.last_line.startswith("error: "):
            found.append("the last line is not an error line")
        found += [f"no {f!r}" for f in self.case.fragments if f not in self.last_line]
        found += [f"{a!r} in stderr" for a in self.case.absent if a in self.stderr]
        if self.traceback:
            found.append("a traceback")
        return found


def try_case(case: Case, folder: Path, command: str | None = None) -> Outcome:
    """Run ``case`` in ``folder`` (with ``command`` instead of its own: check for run)."""
    args = own_args = case.setup(folder)
    if command is not None:
        args = [command, *args[1:]]
    env = {**offline_hub(), **(case.env(folder) if case.env else {})}  # nothing downloads
    if case.runner is not None:
        code, stderr = case.runner(args, folder, env)
    else:
        done = run_edgedepth(*args, cwd=folder, env=env)
        code, stderr = done.returncode, done.stderr
    lines = stderr.strip().splitlines() or [""]
    line = lines[-1]
    if not case.error:  # the line that says what happened
        line = next((text for text in lines if case.fragments[0] in text), line)
    return Outcome(case, code, line, "Traceback" in stderr, stderr, tuple(own_args), folder)


def runnable(cases: list[Case]) -> list[Case]:
    """The cases this machine can run (torch installed, the platform)."""
    return [case for case in cases if case.runs_here and (HAS_TORCH or not case.needs_torch)]


def try_all(
    root: Path, cases: list[Case], workers: int = 2, command: str | None = None
) -> list[Outcome]:
    """Every case in a folder of its own, ``workers`` at a time (``command``: instead of the
    cases' own)."""
    folders = []
    for index in range(len(cases)):
        folder = root / f"{index:02d}"
        folder.mkdir()
        folders.append(folder)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda c, f: try_case(c, f, command), cases, folders))


def table(outcomes: list[Outcome], root: Path | None = None) -> str:
    """The outcomes as a Markdown table (paths under ``root`` and the repository shortened)."""
    rows = ["| # | bad input | exit | how it ends (the one line) |", "|---|---|---|---|"]
    for index, outcome in enumerate(outcomes, 1):
        line = outcome.last_line
        for prefix in [str(root)] if root else []:
            line = line.replace(prefix, "…")
        line = line.replace(str(TESTS.parent), "…").replace("|", "\\|")
        if len(line) > 150:
            line = line[:147] + "…"
        rows.append(f"| {index} | {outcome.case.name} | {outcome.exit_code} | `{line}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        results = try_all(Path(scratch), runnable(CASES))
        print(table(results, Path(scratch)))
    failed = [r for r in results if r.problems]
    print(f"\n{len(results)} bad inputs tried, {len(results) - len(failed)} end as they should")
