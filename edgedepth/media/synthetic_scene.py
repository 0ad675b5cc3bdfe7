"""A procedural 3-D scene rendered by ray casting in numpy, with exact metric depth.

World: y up, floor at y = 0, inside a 40 m × 12 m × 40 m room (so every pixel hits a surface
and has a valid depth), with a few boxes standing on the floor. The camera is a pinhole with
a 60° horizontal field of view at about 1.5 m height. Depth is the z-depth along the optical
axis (the depth-map convention, and LPCVC's), not the ray length.

Deterministic: the same seed and frame index give bit-identical images and depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgedepth.api.frame import Intrinsics

Motion = Literal["orbit", "dolly", "static"]

ROOM_MIN = np.array([-20.0, 0.0, -12.0])
ROOM_MAX = np.array([20.0, 12.0, 28.0])
SCENE_CENTER = np.array([0.0, 0.0, 8.0])
CAMERA_HEIGHT = 1.5
ORBIT_RADIUS = 8.0
ORBIT_SPEED = 0.15  # rad/s: a 30 FPS clip of 300 frames sweeps 86°
DOLLY_SPEED = 0.4  # m/s, back and forth over 6 m
LIGHT = np.array([0.4, 0.8, -0.45]) / np.linalg.norm([0.4, 0.8, -0.45])
FOG_METERS = 45.0
SKY = np.array([0.72, 0.78, 0.86])


@dataclass(frozen=True)
class Box:
    lower: np.ndarray  # (3,) min corner
    upper: np.ndarray  # (3,) max corner
    color: np.ndarray  # (3,) RGB in 0..1


@dataclass(frozen=True)
class Pose:
    """Camera-to-world rotation (columns: right, down, forward) and position."""

    rotation: np.ndarray
    position: np.ndarray


def _look_at(position: np.ndarray, target: np.ndarray) -> Pose:
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])  # y up: forward × up points right
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return Pose(np.stack([right, down, forward], axis=1), position)


class SyntheticScene:
    def __init__(
        self,
        seed: int = 0,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        motion: Motion = "orbit",
        boxes: int = 8,
        fov_degrees: float = 60.0,
    ) -> None:
        self.seed, self.width, self.height, self.fps, self.motion = seed, width, height, fps, motion
        focal = (width / 2) / math.tan(math.radians(fov_degrees) / 2)
        #: Pinhole intrinsics of the rendered images (pixel centres at integer + 0.5).
        self.K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
        rng = np.random.default_rng(seed)
        self.boxes: list[Box] = []
        for _ in range(boxes):
            angle, radius = rng.uniform(0, 2 * math.pi), rng.uniform(0.5, 4.5)
            size = rng.uniform([0.4, 0.3, 0.4], [1.6, 2.2, 1.6])
            center = SCENE_CENTER + [radius * math.cos(angle), 0.0, radius * math.sin(angle)]
            lower = center - [size[0] / 2, 0.0, size[2] / 2]
            self.boxes.append(Box(lower, lower + size, rng.uniform(0.15, 0.95, 3)))
        self._floor_phase = rng.uniform(0, 1, 2)
        # Camera-space ray directions with forward component 1, so hit distance t = z-depth.
        u = (np.arange(width) + 0.5 - self.K[0, 2]) / focal
        v = (np.arange(height) + 0.5 - self.K[1, 2]) / focal
        uu, vv = np.meshgrid(u, v)
        rays = np.stack([uu, vv, np.ones_like(uu)], axis=-1).reshape(-1, 3)
        self._camera_rays = rays.astype(np.float32)

    @property
    def intrinsics(self) -> Intrinsics:
        """:attr:`K` in the OpenCV/ROS convention (pixel centres at integer coordinates): what
        a ``CameraInfo`` of these images holds."""
        return Intrinsics(self.K[0, 0], self.K[1, 1], self.K[0, 2] - 0.5, self.K[1, 2] - 0.5)

    def pose(self, index: int) -> Pose:
        """The camera pose at frame ``index`` (a pure function of the frame time)."""
        seconds = index / self.fps
        if self.motion == "dolly":
            travel = (seconds * DOLLY_SPEED) % 12.0
            z = -1.0 + (travel if travel <= 6.0 else 12.0 - travel)
            position = np.array([0.3, CAMERA_HEIGHT, z])
            return _look_at(position, position + [0.0, -0.25, 1.0])
        angle = seconds * ORBIT_SPEED if self.motion == "orbit" else 0.0
        position = SCENE_CENTER + [
            -ORBIT_RADIUS * math.sin(angle),
            CAMERA_HEIGHT,
            -ORBIT_RADIUS * math.cos(angle),
        ]
        return _look_at(position, SCENE_CENTER + [0.0, 0.4, 0.0])

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 H×W×3, z-depth float32 H×W in metres) of frame ``index``."""
        pose = self.pose(index)
        # World ray directions, one contiguous float32 array per axis (fast elementwise numpy).
        rays = [np.ascontiguousarray(a) for a in (self._camera_rays @ pose.rotation.T).T]
        with np.errstate(divide="ignore"):
            inverse = [1.0 / a for a in rays]
        origin = [float(c) for c in pose.position]
        # Room: the ray starts inside, so its exit distance is the nearest wall/ceiling/floor.
        exits = [
            np.maximum((float(lo) - o) * inv, (float(hi) - o) * inv)
            for lo, hi, o, inv in zip(ROOM_MIN, ROOM_MAX, origin, inverse, strict=True)
        ]
        depth = np.minimum(np.minimum(exits[0], exits[1]), exits[2])
        surface = np.full(depth.shape, -1, dtype=np.int16)  # -1 room, -2 floor, i: box i
        surface[(exits[1] == depth) & (rays[1] < 0)] = -2
        for i, box in enumerate(self.boxes):
            t_near, t_far = None, None
            for lo, hi, o, inv in zip(box.lower, box.upper, origin, inverse, strict=True):
                t_lo, t_hi = (float(lo) - o) * inv, (float(hi) - o) * inv
                near, far = np.minimum(t_lo, t_hi), np.maximum(t_lo, t_hi)
                t_near = near if t_near is None else np.maximum(t_near, near)
                t_far = far if t_far is None else np.minimum(t_far, far)
            hit = (t_near <= t_far) & (t_near > 1e-6) & (t_near < depth)
            depth = np.where(hit, t_near, depth)
            surface[hit] = i
        points = np.stack([o + r * depth for o, r in zip(origin, rays, strict=True)], axis=-1)
        color = self._shade(points, depth, surface, exits)
        fog = np.exp(-depth / FOG_METERS)[:, None]
        color = color * fog + SKY * (1 - fog)
        image = np.clip(color * 255.0 + 0.5, 0, 255).astype(np.uint8)
        shape = (self.height, self.width)
        return image.reshape(*shape, 3), depth.astype(np.float32).reshape(shape)

    def _normals(
        self, points: np.ndarray, depth: np.ndarray, surface: np.ndarray, exits: list[np.ndarray]
    ) -> np.ndarray:
        normals = np.zeros_like(points)
        room = surface < 0
        # Room surfaces face inwards: the wall the ray left through.
        axis = np.where(exits[0] == depth, 0, np.where(exits[1] == depth, 1, 2))[room]
        center = (ROOM_MIN + ROOM_MAX) / 2
        rows = np.flatnonzero(room)
        normals[rows, axis] = np.sign(center[axis] - points[rows, axis])
        for i, box in enumerate(self.boxes):
            rows = np.flatnonzero(surface == i)
            if rows.size == 0:
                continue
            to_lower = np.abs(points[rows] - box.lower)
            to_upper = np.abs(points[rows] - box.upper)
            axis = np.minimum(to_lower, to_upper).argmin(1)
            picked = np.arange(rows.size)
            normals[rows, axis] = np.where(to_upper[picked, axis] < to_lower[picked, axis], 1, -1)
        return normals

    def _shade(
        self, points: np.ndarray, depth: np.ndarray, surface: np.ndarray, exits: list[np.ndarray]
    ) -> np.ndarray:
        normals = self._normals(points, depth, surface, exits)
        lambert = 0.35 + 0.65 * np.clip(normals @ LIGHT.astype(np.float32), 0, 1)
        color = np.empty_like(points)
        # Floor: 1 m checkerboard, per-tile brightness from a hash, fine stripes for texture.
        floor = surface == -2
        x, z = points[floor, 0] + self._floor_phase[0], points[floor, 2] + self._floor_phase[1]
        tile_x, tile_z = np.floor(x).astype(np.int64), np.floor(z).astype(np.int64)
        checker = (tile_x + tile_z) & 1
        tile_hash = ((tile_x * 73856093) ^ (tile_z * 19349663) ^ (self.seed * 83492791)) & 255
        stripes = 0.06 * np.sin(x * 25.0) * np.sin(z * 25.0)
        base = 0.35 + 0.3 * checker + 0.15 * tile_hash / 255.0 + stripes
        color[floor] = base[:, None] * [0.95, 0.9, 0.8]
        # Room walls and ceiling: a soft vertical gradient with a coarse grid.
        room = surface == -1
        height = points[room, 1] / ROOM_MAX[1]
        grid = (np.abs(np.sin(points[room, 0] * 1.5) * np.sin(points[room, 2] * 1.5)) > 0.97) * 0.1
        color[room] = (0.55 + 0.25 * height - grid)[:, None] * [0.8, 0.85, 0.95]
        # Boxes: own colour, with a 25 cm grid on every face.
        for i, box in enumerate(self.boxes):
            on_box = surface == i
            if not on_box.any():
                continue
            grid_lines = np.any(np.abs(((points[on_box] - box.lower) / 0.25) % 1 - 0.5) > 0.46, 1)
            color[on_box] = box.color * (1.0 - 0.35 * grid_lines[:, None])
        return color * lambert[:, None]


def sample_images(height: int, width: int, count: int) -> list[np.ndarray]:
    """``count`` views of the scene from around the orbit (each from another side), rendered at
    height×width as a backend is given frames: float32 RGB on the 0–255 scale. What a model is
    calibrated and checked on when no frames of the user's are at hand."""
    scene = SyntheticScene(seed=0, width=width, height=height, motion="orbit")
    full_turn = round(2 * math.pi / ORBIT_SPEED * scene.fps)
    return [scene.render(i * full_turn // count)[0].astype(np.float32) for i in range(count)]
