"""The bad-input table: what a user can get wrong, and how each ends — one line naming the
file, key or value, the right exit code, never a traceback. `tests/test_bad_inputs.py` runs
every row; `python -m tests.bad_inputs` prints the table (bench/RESULTS.md keeps a copy).

Each case makes its files under a folder of its own and returns the command line; the real
`edgedepth` runs it in a subprocess."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from tests.conftest import SLEEPY, TESTS, offline_hub, run_edgedepth, synthetic_config

SLEEPY_TWIN = str(TESTS / "plugins" / "sleepy_twin.py")
HAS_TORCH = importlib.util.find_spec("torch") is not None


@dataclass(frozen=True)
class Case:
    name: str
    #: Writes what the case needs into the folder; returns the command's arguments.
    setup: Callable[[Path], list[str]]
    exit_code: int
    #: Each must be in the last line of stderr (which starts with "error: ").
    fragments: tuple[str, ...]
    needs_torch: bool = False


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
        lambda f: (f / "out").mkdir() or ((f / "out" / "000007.npy").write_bytes(b"x") and {})), 1,
        ("already holds 1 .npy file(s)", "existing: clear")),
    Case("video path is a folder",
         with_files(lambda f: (f / "rec").mkdir() or {"sinks": [{"type": "video", "path": "rec"}]},
                    command="check"), 2, ("sinks[0].path:", "is a folder")),
    Case("video folder missing",
         run(command="check", sinks=[{"type": "video", "path": "no/x.mp4"}]), 2,
         ("sinks[0].path: parent directory does not exist",)),
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
    Case("corrupt image mid-folder", with_files(lambda f: {
        "source": {"type": "images", "path": str(images(f, [(24, 32)] * 6, corrupt=4))}}), 1,
        ("source 'images'", "p04.png", "frame 4")),
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
        ("takes 126×126 images", "140×126")),
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
        "bench", "--config", str(config(f)), "--plot", str(f / "no" / "p.png")], 1,
        ("--plot", "does not exist")),
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
]  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    case: Case
    exit_code: int
    last_line: str
    traceback: bool

    @property
    def problems(self) -> list[str]:
        found = []
        if self.exit_code != self.case.exit_code:
            found.append(f"exit {self.exit_code}, expected {self.case.exit_code}")
        if not self.last_line.startswith("error: "):
            found.append("the last line is not an error line")
        found += [f"no {f!r}" for f in self.case.fragments if f not in self.last_line]
        if self.traceback:
            found.append("a traceback")
        return found


def try_case(case: Case, folder: Path) -> Outcome:
    args = case.setup(folder)
    done = run_edgedepth(*args, cwd=folder, env=offline_hub())  # no row may download anything
    lines = done.stderr.strip().splitlines() or [""]
    return Outcome(case, done.returncode, lines[-1], "Traceback" in done.stderr)


def try_all(root: Path, cases: list[Case], workers: int = 2) -> list[Outcome]:
    """Every case in a folder of its own, ``workers`` at a time."""
    folders = []
    for index in range(len(cases)):
        folder = root / f"{index:02d}"
        folder.mkdir()
        folders.append(folder)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(try_case, cases, folders))


def table(outcomes: list[Outcome]) -> str:
    rows = ["| # | bad input | exit | how it ends (the one line) |", "|---|---|---|---|"]
    for index, outcome in enumerate(outcomes, 1):
        line = outcome.last_line.replace("|", "\\|")
        if len(line) > 150:
            line = line[:147] + "…"
        rows.append(f"| {index} | {outcome.case.name} | {outcome.exit_code} | `{line}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        runnable = [case for case in CASES if HAS_TORCH or not case.needs_torch]
        results = try_all(Path(scratch), runnable)
    print(table(results))
    failed = [r for r in results if r.problems]
    print(f"\n{len(results)} bad inputs tried, {len(results) - len(failed)} end as they should")
