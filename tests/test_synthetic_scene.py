"""The synthetic scene is the ground truth of the project: check its geometry, not its looks."""

from __future__ import annotations

import numpy as np

from edgedepth.media.synthetic_scene import CAMERA_HEIGHT, SyntheticScene


def back_project(scene: SyntheticScene, index: int, depth: np.ndarray) -> np.ndarray:
    """World points (H×W×3) of every pixel, from depth, K and the pose."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w] + 0.5
    rays = np.stack(
        [(u - scene.K[0, 2]) / scene.K[0, 0], (v - scene.K[1, 2]) / scene.K[1, 1], np.ones_like(u)],
        -1,
    )
    pose = scene.pose(index)
    return pose.position + (rays * depth[..., None]) @ pose.rotation.T


def test_deterministic_and_seeded():
    a = SyntheticScene(seed=3, width=80, height=64).render(7)
    b = SyntheticScene(seed=3, width=80, height=64).render(7)
    c = SyntheticScene(seed=4, width=80, height=64).render(7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    image, depth = a
    assert image.shape == (64, 80, 3) and image.dtype == np.uint8
    assert depth.shape == (64, 80) and depth.dtype == np.float32
    assert depth.min() > 0.3 and depth.max() < 60


def test_bottom_rows_hit_the_floor_at_the_analytic_depth():
    scene = SyntheticScene(seed=0, width=80, height=64, motion="static")
    _, depth = scene.render(0)
    points = back_project(scene, 0, depth.astype(np.float64))
    # The bottom row looks at the floor just in front of the camera (no box is that close).
    np.testing.assert_allclose(points[-1, :, 1], 0.0, atol=1e-4)
    # Analytic: ray (x, y, 1) in camera space hits y_world = 0 at t = height / (-dir_y_world).
    pose = scene.pose(0)
    v = 63.5
    ray = pose.rotation @ np.array([0.0, (v - scene.K[1, 2]) / scene.K[1, 1], 1.0])
    expected = CAMERA_HEIGHT / -ray[1]
    assert abs(depth[-1, 40] - expected) < 1e-3 * expected + 0.02  # pixel 40 is off-centre by 0.5


def test_every_point_lies_on_a_surface():
    scene = SyntheticScene(seed=1, width=96, height=72)
    _, depth = scene.render(30)
    points = back_project(scene, 30, depth.astype(np.float64)).reshape(-1, 3)
    on_floor = np.abs(points[:, 1]) < 1e-3
    on_room = (np.abs(np.abs(points[:, 0]) - 20) < 1e-2) | (np.abs(points[:, 1] - 12) < 1e-2)
    on_room |= (np.abs(points[:, 2] + 12) < 1e-2) | (np.abs(points[:, 2] - 28) < 1e-2)
    on_box = np.zeros(len(points), bool)
    for box in scene.boxes:
        inside = np.all((points > box.lower - 1e-3) & (points < box.upper + 1e-3), axis=1)
        face = np.any(
            (np.abs(points - box.lower) < 1e-3) | (np.abs(points - box.upper) < 1e-3), axis=1
        )
        on_box |= inside & face
    assert on_box.any() and on_floor.any()
    assert (on_floor | on_room | on_box).all()


def test_motion():
    static = SyntheticScene(seed=0, width=48, height=32, motion="static")
    assert np.array_equal(static.render(0)[1], static.render(50)[1])
    for motion in ("orbit", "dolly"):
        moving = SyntheticScene(seed=0, width=48, height=32, motion=motion)
        assert not np.array_equal(moving.render(0)[1], moving.render(30)[1])
