"""``images``: a folder of images or a glob, in natural sort order (img2 before img10).

The images may have different sizes: each frame keeps its own (``info`` gives the first one's,
as a start for sizing the backend). Photos are turned upright by their EXIF orientation, as
OpenCV's ``imread`` does for the official DepthAnythingV2 scripts."""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import Frame
from edgedepth.api.options import StrictModel
from edgedepth.api.stages import BuildContext, SourceInfo
from edgedepth.media.imageops import IMAGE_SUFFIXES, natural_key, read_rgb


class ImagesOptions(StrictModel):
    path: str
    """A folder (every image in it) or a glob such as ``frames/*.png`` (relative to the config)."""
    fps: float = Field(30.0, gt=0)
    """Rate used for the frames' timestamps (and for pacing in live mode)."""


class ImagesSource:
    def __init__(self, options: ImagesOptions, context: BuildContext) -> None:
        pattern = Path(options.path).expanduser()
        if not pattern.is_absolute():
            pattern = context.base_dir / pattern
        if glob.has_magic(str(pattern)):
            paths = [Path(p) for p in glob.glob(str(pattern)) if Path(p).is_file()]
        elif pattern.is_dir():
            paths = [p for p in pattern.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        elif pattern.is_file():
            paths = [pattern]
        else:
            raise EdgedepthError(f"{pattern}: no such folder or file")
        if not paths:
            raise EdgedepthError(f"{pattern}: no images found")
        self.paths = sorted(paths, key=natural_key)
        self._fps = options.fps
        first = read_rgb(self.paths[0])
        self.info = SourceInfo(
            width=first.shape[1],
            height=first.shape[0],
            fps=options.fps,
            live=False,
            frame_count=len(self.paths),
            description=str(pattern),
        )

    def frames(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            image = read_rgb(path)
            yield Frame(
                index=index,
                timestamp=index / self._fps,
                image=image,
                captured_at=time.perf_counter(),
                extras={"path": str(path)},
            )


@edgedepth.hookimpl
def register_sources(register):
    register("images", ImagesOptions, ImagesSource, description="a folder or glob of images")
