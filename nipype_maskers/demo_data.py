"""Synthetic but realistic BOLD runs on the MNI 2 mm grid, for the demo and the benchmarks.

The brain is the shipped MNI152 T1 template sampled on fMRIPrep's
``MNI152NLin2009cAsym res-2`` grid (97 x 115 x 97, 2 mm), with a T2*-like contrast, a few
"networks" with their own slow time courses, a scanner drift, motion-like global fluctuations
and thermal noise. Deterministic for a given seed.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from .data import MNI152_TEMPLATES

#: fMRIPrep's MNI152NLin2009cAsym res-2 grid.
MNI_2MM_SHAPE = (97, 115, 97)
MNI_2MM_AFFINE = np.array([
    [2.0, 0.0, 0.0, -96.0],
    [0.0, 2.0, 0.0, -132.0],
    [0.0, 0.0, 2.0, -78.0],
    [0.0, 0.0, 0.0, 1.0],
])


def template_on_grid(shape=MNI_2MM_SHAPE, affine=MNI_2MM_AFFINE, kind="whole-brain"
                     ) -> NDArray[np.float32]:
    """A shipped 1 mm template sampled (nearest voxel) on an axis-aligned grid, in [0, 1]."""
    template = nib.load(MNI152_TEMPLATES[kind])
    data = np.asanyarray(template.dataobj).astype(np.float32) / 255.0
    to_template = np.linalg.inv(template.affine) @ affine
    axes = [
        np.rint(to_template[a, a] * np.arange(shape[a]) + to_template[a, 3]).astype(int)
        for a in range(3)
    ]
    out = np.zeros(shape, dtype=np.float32)
    inside = [(idx >= 0) & (idx < data.shape[a]) for a, idx in enumerate(axes)]
    sub = data[np.ix_(axes[0][inside[0]], axes[1][inside[1]], axes[2][inside[2]])]
    out[np.ix_(inside[0], inside[1], inside[2])] = sub
    return out


def synthetic_bold(
    n_volumes: int = 100, *, t_r: float = 2.0, seed: int = 0, shape=MNI_2MM_SHAPE,
    affine=MNI_2MM_AFFINE, dtype=np.float32,
) -> tuple[nib.Nifti1Image, NDArray[np.float64], list[str]]:
    """A BOLD run and its motion-like confounds.

    Returns
    -------
    img : nibabel.Nifti1Image
        4D, ``dtype`` (float32 or int16), background exactly 0, TR in the header.
    motion : numpy.ndarray (n_volumes, 6)
        The six rigid-body parameters whose effect was added to the signal.
    names : list of str
        fMRIPrep's names for them (trans_x ... rot_z).
    """
    rng = np.random.default_rng(seed)
    t1 = template_on_grid(shape, affine)
    brain = t1 > 0.2
    gm = template_on_grid(shape, affine, "gm")
    baseline = np.where(brain, 900.0 - 350.0 * t1 + 250.0 * gm, 0.0).astype(np.float32)
    times = np.arange(n_volumes) * t_r
    n_networks = 6
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    centres = rng.uniform(-0.5, 0.5, size=(n_networks, 3))
    weights = np.stack([
        np.exp(-np.sum((grid - c[:, None, None, None]) ** 2, axis=0) / 0.05) * gm
        for c in centres
    ]).astype(np.float32)
    freqs = rng.uniform(0.01, 0.08, n_networks)
    courses = np.sin(2 * np.pi * freqs[:, None] * times + rng.uniform(0, 6, (n_networks, 1)))
    motion = np.cumsum(rng.normal(0, 0.02, size=(n_volumes, 6)), axis=0)
    global_course = motion @ rng.normal(0, 1, 6)
    drift = 1 + 0.002 * times / max(times[-1], 1)
    data = np.empty(shape + (n_volumes,), dtype=dtype, order="F")
    for t in range(n_volumes):
        volume = baseline * drift[t] * (1 + 0.004 * global_course[t])
        volume += 20.0 * np.tensordot(courses[:, t], weights, axes=1)
        volume += rng.normal(0, 12.0, shape).astype(np.float32) * brain
        data[..., t] = np.round(volume) if np.issubdtype(dtype, np.integer) else volume
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = t_r
    names = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    return img, motion, names
