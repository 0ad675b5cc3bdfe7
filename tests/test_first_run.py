"""The README's first command as a newcomer runs it: the sample config with the official ViT-S
checkpoint when it can be downloaded (here from a server on 127.0.0.1, through $HF_ENDPOINT as
for a Hugging Face mirror), and random weights when it cannot, said in the terminal and on the
video itself."""

from __future__ import annotations

import functools
import hashlib
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest

from edgedepth.media.colorize import CAPTION_TEXT
from tests.conftest import offline_hub, run_edgedepth
from tests.dav2_fixtures import save_official_pth

REPO = Path(__file__).resolve().parent.parent
OFFICIAL_PATH = "depth-anything/Depth-Anything-V2-Small/resolve/main/depth_anything_v2_vits.pth"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """configs/sample.yaml and samples/sample.mp4 in a folder of their own (the config writes
    beside its folder), as in a fresh clone."""
    for folder, name in (("configs", "sample.yaml"), ("samples", "sample.mp4")):
        (tmp_path / folder).mkdir()
        shutil.copy(REPO / folder / name, tmp_path / folder / name)
    return tmp_path / "configs" / "sample.yaml"


def run_sample(config: Path, endpoint: str, *overrides: str):
    return run_edgedepth(
        "run", "--config", str(config), "--set", "runtime.max_frames=2", *overrides,
        env={"HF_ENDPOINT": endpoint, "EDGEDEPTH_CACHE": str(config.parents[1] / "cache")},
    )  # fmt: skip


def first_picture(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def caption_pixels(picture: np.ndarray, rows: int) -> float:
    """Fraction of the bottom ``rows`` rows that is the caption's amber text."""
    band = picture[-rows:].reshape(-1, 3).astype(int)
    return float((np.abs(band - CAPTION_TEXT).max(axis=1) < 60).mean())


def test_sample_offline_runs_random_weights_and_says_so_in_the_terminal_and_on_the_video(sample):
    result = run_sample(sample, offline_hub()["HF_ENDPOINT"])
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "RANDOM WEIGHTS" in line]
    # One warning while starting (why, and how to get real depth), one note under the summary.
    assert len(warnings) == 2, result.stderr
    assert "cannot be downloaded" in warnings[0] and "127.0.0.1" in warnings[0]
    assert "put it there, or set backend.checkpoint" in warnings[0]
    assert warnings[1].startswith("note: RANDOM WEIGHTS")
    picture = first_picture(sample.parents[1] / "sample-depth.mp4")
    # RGB | depth | colour bar, 480 high, and the caption band under it.
    assert picture.shape[0] > 480 and picture.shape[1] >= 640 * 2 + 90
    band = picture[480:]
    assert (band.max(axis=2) < 40).mean() > 0.8 and caption_pixels(band, band.shape[0]) > 0.004
    assert (picture[440:480].max(axis=2) < 40).mean() < 0.5  # the picture itself is not covered
    # The README's command works run again: the sample says it replaces its own files.
    again = run_sample(sample, offline_hub()["HF_ENDPOINT"], "--set=runtime.max_frames=1")
    assert again.returncode == 0, again.stderr
    assert f"wrote {sample.parents[1] / 'sample-depth.mp4'}: 1 frames" in again.stderr


class _Recording(SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path):
    """A Hugging Face mirror on 127.0.0.1 holding the official ViT-S file (random weights in
    the official layout: the real file cannot be downloaded here)."""
    served = tmp_path / "mirror"
    checkpoint = served / OFFICIAL_PATH
    checkpoint.parent.mkdir(parents=True)
    save_official_pth(checkpoint, "vits", seed=3)
    handler = functools.partial(_Recording, directory=str(served))
    _Recording.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", checkpoint
    server.shutdown()
    server.server_close()


@pytest.mark.slow  # ~14 s: a 99 MB checkpoint served, exported and run
def test_sample_online_downloads_the_official_checkpoint_and_uses_it(sample, mirror):
    endpoint, served = mirror
    result = run_sample(sample, endpoint)
    assert result.returncode == 0, result.stderr
    assert "RANDOM" not in result.stderr, result.stderr
    assert _Recording.requests == [f"/{OFFICIAL_PATH}"]
    cached = sample.parents[1] / "cache" / "checkpoints" / "depth_anything_v2_vits.pth"
    digest = hashlib.sha256
    assert digest(cached.read_bytes()).digest() == digest(served.read_bytes()).digest()
    assert f"DepthAnythingV2 vits relative from {cached}" in result.stderr
    picture = first_picture(sample.parents[1] / "sample-depth.mp4")
    assert picture.shape[0] == 480  # no caption
    downloaded = np.load(sample.parents[1] / "sample-npy" / "000001.npy")

    # The depth is that of the downloaded weights: the same as naming the file explicitly.
    again = run_sample(
        sample, endpoint, f"--set=backend.checkpoint={served}", "--set=backend.random_weights=false"
    )
    assert again.returncode == 0, again.stderr
    np.testing.assert_array_equal(
        np.load(sample.parents[1] / "sample-npy" / "000001.npy"), downloaded
    )
