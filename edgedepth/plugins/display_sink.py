"""``display``: a window with RGB | depth side by side, a colour bar with units, FPS and
latency. Keys: ``q`` / Esc quit (the run ends cleanly), ``c`` next colour map, ``s`` snapshot
PNG. Closing the window also ends the run.

The window lives entirely in the sink's own thread, so it needs a toolkit that works off the
main thread: Tk from the standard library does, everywhere (and Windows on Arm64 has no OpenCV
wheel), so ``auto`` uses Tk. ``toolkit: opencv`` uses OpenCV's window; its Qt builds (the
Linux wheels) only open windows from the main thread, so that is for Windows/macOS builds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import Field

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import Frame
from edgedepth.api.options import OutputDir
from edgedepth.api.outputs import Existing, WritesFiles, claim_output
from edgedepth.api.stages import BuildContext, StopPipeline
from edgedepth.media.colorize import (
    COLORMAPS,
    ColormapName,
    DisplayRange,
    caption,
    colorize,
    colour_bar,
    side_by_side,
)

log = logging.getLogger("edgedepth")


class DisplayOptions(WritesFiles):
    toolkit: Literal["auto", "opencv", "tk"] = "auto"
    """Window toolkit: ``auto`` is Tk (works off the main thread everywhere)."""
    title: str | None = None
    """Window title; omitted: ``edgedepth — <config file name>``."""
    colormap: ColormapName = "turbo"
    """First colour map (``c`` cycles): turbo | inferno | spectral_r | gray."""
    range: tuple[float, float] | None = None
    """Fixed display range (metres for metric depth); omitted: a smoothed range."""
    snapshot_dir: OutputDir = Path(".")
    """Where ``s`` saves snapshots (``edgedepth-<frame>.png``)."""
    existing: Existing = "new-name"
    """A snapshot whose name is taken (an earlier run's of the same frame): ``new-name``
    (``edgedepth-000120-2.png``), ``overwrite``, or ``refuse`` (not saved, a warning)."""
    fps_smoothing: float = Field(0.1, gt=0, le=1)
    """Weight of the newest frame in the displayed FPS."""

    def occupied(self, field: str, path: Path) -> list[Path]:
        return []  # a folder shared with other files: each snapshot is claimed when taken


class Window(Protocol):
    def show(self, picture: np.ndarray) -> list[str]:
        """Show an RGB picture; return the keys pressed since the last call."""
        ...

    def close(self) -> None: ...


class TkWindow:
    def __init__(self, title: str) -> None:
        import tkinter

        self._tk = tkinter
        try:
            self.root = tkinter.Tk()
        except tkinter.TclError as exc:
            raise EdgedepthError(f"display: cannot open a window: {exc}") from None
        self.root.title(title)
        self.label = tkinter.Label(self.root, borderwidth=0)
        self.label.pack()
        self.keys: list[str] = []
        self.root.bind("<Key>", lambda event: self.keys.append(event.keysym))
        self.root.protocol("WM_DELETE_WINDOW", lambda: self.keys.append("q"))

    def show(self, picture: np.ndarray) -> list[str]:
        height, width = picture.shape[:2]
        ppm = b"P6 %d %d 255\n" % (width, height) + np.ascontiguousarray(picture).tobytes()
        photo = self._tk.PhotoImage(data=ppm, format="PPM")
        self.label.configure(image=photo)
        self.label.image = photo  # Tk does not keep a reference itself
        self.root.update()
        keys, self.keys = self.keys, []
        return keys

    def close(self) -> None:
        with contextlib.suppress(self._tk.TclError):
            self.root.destroy()


class OpenCVWindow:
    def __init__(self, title: str) -> None:
        import cv2

        self.cv2, self.title = cv2, title
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def show(self, picture: np.ndarray) -> list[str]:
        cv2 = self.cv2
        cv2.imshow(self.title, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        keys = [] if key == 0xFF else ["Escape" if key == 27 else chr(key)]
        if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            keys.append("q")  # the window was closed
        return keys

    def close(self) -> None:
        self.cv2.destroyWindow(self.title)
        self.cv2.waitKey(1)


def _has_opencv() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


class DisplaySink:
    def __init__(self, options: DisplayOptions, context: BuildContext) -> None:
        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise EdgedepthError("display: no screen (DISPLAY is not set); remove the display sink")
        if options.toolkit == "opencv" and not _has_opencv():
            raise EdgedepthError(
                'display: toolkit opencv needs OpenCV: pip install "edgedepth[cv]"'
            )
        self.options = options
        config = context.config_path
        self.title = options.title or ("edgedepth — " + config.name if config else "edgedepth")
        self.use_opencv = options.toolkit == "opencv"
        self.colormap: ColormapName = options.colormap
        self.display_range = DisplayRange(fixed=options.range)
        self.window: Window | None = None  # created in the sink thread, on the first frame
        self.fps = 0.0
        self._last_shown: float | None = None
        self.snapshots: list[Path] = []
        #: Captions on every picture (e.g. random weights), from the stages built before.
        self.notes = list(context.notes)

    def compose(self, frame: Frame) -> np.ndarray:
        low, high = self.display_range.update(frame.depth)
        depth_rgb = colorize(frame.depth, frame.depth_kind, low, high, self.colormap)
        bar = colour_bar(frame.height, frame.depth_kind, low, high, self.colormap)
        latency_ms = (time.perf_counter() - frame.captured_at) * 1000
        text = f"{self.fps:5.1f} FPS  {latency_ms:4.0f} ms  #{frame.index}  {self.colormap}"
        return caption(side_by_side(frame.image, depth_rgb, bar, text), self.notes)

    def write(self, frame: Frame) -> None:
        now = time.perf_counter()
        if self._last_shown is not None:
            rate = 1.0 / max(now - self._last_shown, 1e-6)
            a = self.options.fps_smoothing
            self.fps = rate if self.fps == 0 else (1 - a) * self.fps + a * rate
        self._last_shown = now
        picture = self.compose(frame)
        if self.window is None:
            self.window = OpenCVWindow(self.title) if self.use_opencv else TkWindow(self.title)
        for key in self.window.show(picture):
            if key in ("q", "Q", "Escape"):
                raise StopPipeline("quit from the display window")
            if key == "c":
                self.colormap = COLORMAPS[(COLORMAPS.index(self.colormap) + 1) % len(COLORMAPS)]
            elif key == "s":
                self.snapshot(picture, frame.index)

    def snapshot(self, picture: np.ndarray, index: int) -> None:
        from PIL import Image

        directory = Path(self.options.snapshot_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = claim_output(
                directory / f"edgedepth-{index:06d}.png", self.options.existing, "display"
            )
            Image.fromarray(picture).save(path)
        except (OSError, ValueError) as exc:
            log.warning("warning: display: snapshot of frame %d not saved: %s", index, exc)
            return
        self.snapshots.append(path)
        log.info("display: saved %s", path.resolve())

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
            self.window = None


@edgedepth.hookimpl
def register_sinks(register):
    register("display", DisplayOptions, DisplaySink, description="window: RGB | depth, FPS, keys")
