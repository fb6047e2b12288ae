"""Synthetic NIfTI data for the tests: odd shapes, non-identity affines."""

from __future__ import annotations

import numpy as np

SHAPE = (17, 19, 15)


def oblique_affine() -> np.ndarray:
    """Anisotropic voxels, a small rotation and an offset: swapped axes cannot hide."""
    angle = 0.1
    rotation = np.array([
        [np.cos(angle), -np.sin(angle), 0],
        [np.sin(angle), np.cos(angle), 0],
        [0, 0, 1],
    ])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([3.0, 2.5, 3.5])
    affine[:3, 3] = [-25.0, -30.0, -20.0]
    return affine


def make_epi(shape=SHAPE, n_volumes=12, *, dtype=np.float32, seed=0, background=0.0):
    """An EPI-like 4D array: a bright ellipsoidal 'brain' with structure, noise and a drift.

    The background is exactly ``background`` so that nilearn's background strategy finds it.
    """
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    radius = (grid[0] / 0.75) ** 2 + (grid[1] / 0.8) ** 2 + (grid[2] / 0.7) ** 2
    brain = radius < 1
    base = np.where(brain, 600 + 300 * np.cos(2 * grid[0]) * np.sin(3 * grid[1]), background)
    data = np.empty(shape + (n_volumes,), dtype=np.float64, order="F")
    for t in range(n_volumes):
        noise = rng.normal(0, 15, shape)
        data[..., t] = np.where(brain, base * (1 + 0.01 * np.sin(t / 3)) + noise, background)
    if np.issubdtype(dtype, np.integer):
        data = np.round(data)
    return np.asfortranarray(data.astype(dtype)), brain
