"""Fast start: from `edgedepth run` to the first depth frame, ViT-S 350², export already cached,
with ``backend.checkpoint: depth_anything_v2_vits.pth`` and with ``backend.model`` (the export),
and the peak RSS of each; `edgedepth --help`; and the floor they are judged against: a Python
that only imports onnxruntime, numpy, av, pydantic, yaml and click, and one inference of the
export (a warm ``session.run`` of edgedepth's CPU session), and the creation of that session
(ONNX Runtime's, the first in a process). Goals: ``--help`` within 1.5× the import floor; the
first frame within floor + one inference + 0.25 s.

    python bench/fast_start.py [--repeats 7] [--before DIR]

``--before DIR``: a checkout of an earlier version (its ``edgedepth`` package importable from
DIR, e.g. with ``edgedepth/plugins`` and ``edgedepth/deploy`` linked to its ``plugins/`` and
``deploy/``): its two configurations run in the same interleaved rounds, with PYTHONPATH=DIR.

The checkpoint is ViT-S with random weights saved in the official layout (99 MB; loading and
hashing cost the same as for the real file). Each run is its own process: one 640×480 JPEG (the
images source) to the npy sink; "first frame" is the time from starting the process to the first
.npy file's modification time. Python's bytecode cache is on (as in any install; the
PYTHONDONTWRITEBYTECODE of a sandbox would recompile every module on every start), kept in a
temporary folder. The two configurations alternate (A B A B …) so both see
the same load; medians are printed with the spread. Then the heaviest imports of a run
(``python -X importtime``) and whether torch, scipy, matplotlib or OpenCV were imported.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image

HEAVY = ("torch", "scipy", "matplotlib", "cv2")
FLOOR = "import onnxruntime, numpy, av, pydantic, yaml, click"
INFERENCE = """
import sys, time
import numpy as np
import onnxruntime
from pathlib import Path
from edgedepth.runtime.sessions import cpu_session
imported = time.perf_counter()
session = cpu_session(Path(sys.argv[1]))
opened = time.perf_counter()
(tensor,) = session.get_inputs()
feed = {tensor.name: np.random.rand(*tensor.shape).astype(np.float32)}
times = []
for _ in range(6):
    started = time.perf_counter()
    session.run(None, feed)
    times.append(time.perf_counter() - started)
print(opened - imported, sorted(times[1:])[2])
"""


def timed_process(command: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from start to exit of ``command`` (its output discarded)."""
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, env=env, cwd=cwd, check=True)
    return time.perf_counter() - started


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def write_config(work: Path, name: str, backend: dict, cache: str) -> Path:
    config = {
        "source": {"type": "images", "path": str(work / "photo.jpg")},
        "preprocess": {"resize": {"policy": "fixed", "width": 350, "height": 350}},
        "backend": {"type": "dav2-relative", "runtime": "onnx-cpu", **backend},
        "sinks": [{"type": "npy", "dir": f"out-{name}"}],  # emptied before each run
        "runtime": {"cache_dir": str(work / cache), "progress": False},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def timed_run(config: Path, out: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(seconds to the first depth frame, seconds to exit, peak RSS MB) of one run."""
    shutil.rmtree(out, ignore_errors=True)  # (an earlier version has no `existing: clear`)
    started = time.time()
    process = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=out.parent,  # not a source tree: `-m` puts the working directory first on the path
    )
    _, status, usage = os.wait4(process.pid, 0)
    ended = time.time()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{config}: exit {process.returncode}: {process.stderr.read().decode()}")
    first = (out / "000000.npy").stat().st_mtime - started
    return first, ended - started, usage.ru_maxrss / 1024


def top_imports(config: Path, count: int) -> tuple[list[tuple[int, str]], list[str]]:
    shutil.rmtree(config.parent / f"out-{config.stem}", ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "edgedepth", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
        cwd=config.parent,
    )
    rows, heavy = [], set()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if len(name) - len(name.lstrip()) <= 2:  # imported by the program, not by a package
            rows.append((int(cumulative), name.strip()))
        if name.strip().split(".")[0] in HEAVY:
            heavy.add(name.strip().split(".")[0])
    return sorted(rows, reverse=True)[:count], sorted(heavy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--before", type=Path, help="checkout of an earlier version to compare")
    args = parser.parse_args()
    import torch

    from edgedepth.models.dav2.checkpoint import random_model
    from edgedepth.models.dav2.network import config_for

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; ViT-S random weights, 350², onnx-cpu, export cached"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        from edgedepth.media.synthetic_scene import SyntheticScene

        image, _ = SyntheticScene(seed=0, width=640, height=480).render(0)
        Image.fromarray(image).save(work / "photo.jpg", quality=90)
        checkpoint = work / "depth_anything_v2_vits.pth"
        torch.save(random_model(config_for("vits")).state_dict(), checkpoint)
        versions = {"": ENV}
        if args.before:
            versions[" (before)"] = {**ENV, "PYTHONPATH": str(args.before.resolve())}
        configs = {}
        for suffix, env in versions.items():
            name = f"checkpoint{suffix}".replace(" ", "-").replace("(", "").replace(")", "")
            config = write_config(work, name, {"checkpoint": str(checkpoint)}, f"cache{suffix}")
            timed_run(config, work / f"out-{name}", env)  # exports
            (export,) = (work / f"cache{suffix}" / "exports").iterdir()
            model_name = name.replace("checkpoint", "model")
            configs[f"checkpoint{suffix}"] = (config, work / f"out-{name}", env)
            configs[f"model{suffix}"] = (
                write_config(work, model_name, {"model": str(export)}, f"cache{suffix}"),
                work / f"out-{model_name}",
                env,
            )
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in configs}
        for config, out, env in configs.values():  # warm the file cache
            timed_run(config, out, env)
        floor, help_, inference, session = [], [], [], []
        (export,) = (work / "cache" / "exports").iterdir()
        model_file = next(export.glob("*.onnx"))
        for _ in range(args.repeats):
            for name, (config, out, env) in configs.items():
                results[name].append(timed_run(config, out, env))
            floor.append(timed_process([sys.executable, "-c", FLOOR], ENV, work))
            help_.append(timed_process([sys.executable, "-m", "edgedepth", "--help"], ENV, work))
        for _ in range(3):
            done = subprocess.run(
                [sys.executable, "-c", INFERENCE, str(model_file)],
                capture_output=True,
                text=True,
                env=ENV,
                cwd=work,
                check=True,
            )
            opened, ran = (float(word) for word in done.stdout.split())
            session.append(opened)
            inference.append(ran)
        from_checkpoint = configs["checkpoint"][0]
        print(f"{'config':21} {'first frame s':>14} {'(min–max)':>12} {'exit s':>7} {'peak MB':>8}")
        for name, rows in results.items():
            firsts = [row[0] for row in rows]
            print(
                f"{name:21} {statistics.median(firsts):>14.2f} "
                f"{min(firsts):>5.2f}–{max(firsts):<5.2f} "
                f"{statistics.median(row[1] for row in rows):>7.2f} "
                f"{statistics.median(row[2] for row in rows):>8.0f}"
            )
        floor_s, help_s = statistics.median(floor), statistics.median(help_)
        inference_s = statistics.median(inference)
        print(f"import floor ({FLOOR}): {floor_s:.3f} s ({min(floor):.3f}–{max(floor):.3f})")
        print(
            f"edgedepth --help: {help_s:.3f} s ({min(help_):.3f}–{max(help_):.3f}) = "
            f"{help_s / floor_s:.2f}× the floor (goal ≤ 1.5×)"
        )
        session_s = statistics.median(session)
        print(f"one inference (warm session.run, 350²): {inference_s:.3f} s")
        print(f"ONNX Runtime's first session of the export in a process: {session_s:.3f} s")
        bound = floor_s + inference_s + 0.25
        for name in ("checkpoint", "model"):
            first = statistics.median(row[0] for row in results[name])
            print(
                f"first frame from the {name}: {first:.3f} s; floor + inference + 0.25 s = "
                f"{bound:.3f} s: {'met' if first <= bound else 'NOT met'} "
                f"(over the floor + inference by {first - floor_s - inference_s:+.3f} s; "
                f"edgedepth's own, the session also taken off: "
                f"{first - floor_s - inference_s - session_s:+.3f} s)"
            )
        rows, heavy = top_imports(from_checkpoint, 12)
        print("heaviest imports of a run from the checkpoint (python -X importtime, cumulative):")
        for microseconds, name in rows:
            print(f"  {microseconds / 1000:7.1f} ms  {name}")
        print(f"torch/scipy/matplotlib/cv2 imported: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
