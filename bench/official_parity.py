"""`edgedepth run` against the official DepthAnythingV2 code, end to end, on the official demo
photos (different sizes), with the same weights. Prints numbers; results go in bench/RESULTS.md.

    python bench/official_parity.py --official ~/src/Depth-Anything-V2

``--official`` is a local checkout of github.com/DepthAnything/Depth-Anything-V2 (imported from
there by this script only; edgedepth never ships its code). Random ViT-S weights in the official
``.pth`` layout (relative, and metric Hypersim) are loaded into the official ``DepthAnythingV2``,
which runs ``infer_image(cv2.imread(photo), 518)`` on each ``assets/examples/*.jpg``; edgedepth
runs an images source on the same folder (keep-aspect 518, ``backend.checkpoint`` = that file,
npy sink) on onnx-cpu and torch. With random weights the depth is a function of the input only:
this is exact-function parity. Goals: max |Δ|/max per image < 1e-3; the same run without OpenCV
importable vs with it < 1e-5.

The official code imports ``torchvision.transforms.Compose`` only to chain its transforms; where
torchvision is not installed, an equivalent (apply each in order) stands in for it.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from edgedepth.media.imageops import resize
from edgedepth.models.dav2.checkpoint import randomize
from edgedepth.models.dav2.weights import official_filename

KINDS = ("relative", "metric")
VITS = {"encoder": "vits", "features": 64, "out_channels": [48, 96, 192, 384]}
#: Runs edgedepth with ``import cv2`` failing, as on an install without OpenCV.
WITHOUT_CV2 = "import sys; sys.modules['cv2'] = None; from edgedepth.cli import main; main()"


def check_checkout(official: Path) -> list[Path]:
    """The demo photos; exits with a one-line message if ``official`` is not a checkout."""
    needed = [
        official / "depth_anything_v2" / "dpt.py",
        official / "metric_depth" / "depth_anything_v2" / "dpt.py",
    ]
    photos = sorted((official / "assets" / "examples").glob("*.jpg"))
    missing = [str(path) for path in needed if not path.is_file()]
    if missing or not photos:
        what = ", ".join(missing) or f"{official}/assets/examples/*.jpg"
        sys.exit(
            f"error: --official {official}: not a checkout of DepthAnything/Depth-Anything-V2 "
            f"(missing {what})"
        )
    return photos


def provide_compose() -> None:
    """``torchvision.transforms.Compose`` (apply each transform in order) if torchvision is
    absent, or built for another torch (its import fails registering its operators): the
    official code imports nothing else from it."""
    try:
        import torchvision.transforms  # noqa: F401
    except Exception:
        import types

        for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"]:
            del sys.modules[name]  # a half-imported torchvision

        class Compose:
            def __init__(self, transforms):
                self.transforms = transforms

            def __call__(self, sample):
                for transform in self.transforms:
                    sample = transform(sample)
                return sample

        package, module = types.ModuleType("torchvision"), types.ModuleType("transforms")
        module.Compose, package.transforms = Compose, module
        sys.modules.update({"torchvision": package, "torchvision.transforms": module})


def official_model(official: Path, kind: str) -> torch.nn.Module:
    """The official class of this kind (the metric one lives in metric_depth/)."""
    provide_compose()
    for name in [name for name in sys.modules if name.startswith("depth_anything_v2")]:
        del sys.modules[name]  # both folders hold a package of this name
    root = official / "metric_depth" if kind == "metric" else official
    sys.path.insert(0, str(root))
    try:
        from depth_anything_v2.dpt import DepthAnythingV2
    finally:
        sys.path.remove(str(root))
    extra = {"max_depth": 20.0} if kind == "metric" else {}
    return DepthAnythingV2(**VITS, **extra).eval()


def edgedepth_run(work: Path, photos: Path, checkpoint: Path, kind: str, runtime: str, out: str,
                  without_cv2: bool = False) -> tuple[list[np.ndarray], float]:  # fmt: skip
    config = {
        "source": {"type": "images", "path": str(photos)},
        "preprocess": {"resize": {"policy": "keep-aspect", "lower_bound": 518}},
        "backend": {"type": f"dav2-{kind}", "checkpoint": str(checkpoint), "runtime": runtime},
        "sinks": [{"type": "npy", "dir": str(work / out), "existing": "overwrite"}],
        "runtime": {"cache_dir": str(work / "cache"), "progress": False},
    }
    path = work / f"{out}.yaml"
    path.write_text(yaml.safe_dump(config))
    entry = ["-c", WITHOUT_CV2] if without_cv2 else ["-m", "edgedepth"]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *entry, "run", "--config", str(path)], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"error: edgedepth run ({kind}, {runtime}) failed:\n{result.stderr}")
    seconds = time.perf_counter() - started
    count = len(list(photos.glob("*.jpg")))
    return [np.load(work / out / f"{index:06d}.npy") for index in range(count)], seconds


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    if ours.shape != reference.shape:
        return float("inf")
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def host_resize_report(photos: list[Path]) -> None:
    """The host bicubic: float32 on 0–255 (what the pipeline runs) vs OpenCV float64 on / 255
    (the official code), and its cost."""
    import cv2

    from edgedepth.media.imageops import keep_aspect_size

    worst = 0.0
    for photo in photos:
        rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
        size = keep_aspect_size(*rgb.shape[:2], 518, 14)
        official = cv2.resize(rgb / 255.0, size[::-1], interpolation=cv2.INTER_CUBIC)
        ours = resize(rgb, size, "bicubic").astype(np.float64) / 255.0
        worst = max(worst, float(np.abs(ours - official).max()))
    print(f"host bicubic, float32 0-255 vs official float64 /255: max |Δ| {worst:.1e} (of 1)")
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for label, data in (("uint8→float32", image), ("float64", image / 255.0)):
        resize(data, (518, 686), "bicubic")
        timings = []
        for _ in range(30):
            started = time.perf_counter()
            resize(data, (518, 686), "bicubic")
            timings.append(time.perf_counter() - started)
        print(f"host bicubic 480×640×3 → 518×686 ({label}): {np.median(timings) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True,
                        help="local checkout of DepthAnything/Depth-Anything-V2")  # fmt: skip
    parser.add_argument("--runtimes", nargs="+", default=["onnx-cpu", "torch"])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    photo_paths = check_checkout(args.official.expanduser())
    photos = photo_paths[0].parent
    import cv2

    work = args.work or Path(tempfile.mkdtemp(prefix="edgedepth-parity-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, torch {torch.__version__}, "
          f"OpenCV {cv2.__version__}")  # fmt: skip
    sizes = sorted({tuple(cv2.imread(str(p)).shape[:2]) for p in photo_paths})
    print(f"{len(photo_paths)} photos from {photos}, {len(sizes)} sizes (h×w): "
          + ", ".join(f"{h}×{w}" for h, w in sizes))  # fmt: skip
    host_resize_report(photo_paths)
    summary = []
    for kind in args.kinds:
        model = official_model(args.official.expanduser(), kind)
        randomize(model, seed=12, biases=True)
        with torch.no_grad():  # keep the relative head's final ReLU mostly active
            model.depth_head.scratch.output_conv2[2].bias.fill_(1.0 if kind == "relative" else 0)
        checkpoint = work / official_filename(kind, "vits")
        torch.save(model.state_dict(), checkpoint)
        started = time.perf_counter()
        with torch.no_grad():
            official = [model.infer_image(cv2.imread(str(photo)), 518) for photo in photo_paths]
        low = min(float(depth.min()) for depth in official)
        high = max(float(depth.max()) for depth in official)
        print(f"\n{kind}: official infer_image on {len(photo_paths)} photos in "
              f"{time.perf_counter() - started:.0f} s, depth {low:.3g} … {high:.3g}")  # fmt: skip
        for runtime in args.runtimes:
            ours, seconds = edgedepth_run(
                work, photos, checkpoint, kind, runtime, f"{kind}-{runtime}"
            )
            errors = [relative_error(a, b) for a, b in zip(ours, official, strict=True)]
            print(f"{kind} {runtime}: edgedepth run {seconds:.0f} s; max|Δ|/max per image:")
            for photo, depth, error in zip(photo_paths, official, errors, strict=True):
                print(f"  {photo.name} {depth.shape[0]}×{depth.shape[1]}  {error:.2e}")
            worst = max(errors)
            print(f"  worst {worst:.2e}  (goal < 1e-3: {'met' if worst < 1e-3 else 'NOT met'})")
            summary.append((kind, runtime, worst))
    kind = args.kinds[0]
    checkpoint = work / official_filename(kind, "vits")
    with_cv2, _ = edgedepth_run(work, photos, checkpoint, kind, "onnx-cpu", "with-cv2")
    without, _ = edgedepth_run(work, photos, checkpoint, kind, "onnx-cpu", "no-cv2", True)
    install = max(relative_error(a, b) for a, b in zip(without, with_cv2, strict=True))
    verdict = "met" if install < 1e-5 else "NOT met"
    print(f"\nsame input, OpenCV unimportable vs importable ({kind}, onnx-cpu): "
          f"max|Δ|/max {install:.2e} (goal < 1e-5: {verdict})")  # fmt: skip
    print("\nsummary (worst max|Δ|/max over the photos):")
    for kind, runtime, worst in summary:
        print(f"  {kind:8s} {runtime:8s} {worst:.2e}")


if __name__ == "__main__":
    main()
