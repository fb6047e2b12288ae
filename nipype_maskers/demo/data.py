"""Synthetic but realistic BOLD runs on the MNI 2 mm grid, for the demo and the benchmarks.

The brain is the shipped MNI152 T1 template sampled on fMRIPrep's
``MNI152NLin2009cAsym res-2`` grid (97 x 115 x 97, 2 mm), with a T2*-like contrast, six
"networks" with their own band-limited time courses, physiological noise strongest in the CSF,
residual head-motion artefacts (the intensity gradient times the displacement) with a couple of
sudden jerks, non-steady-state first volumes, a scanner drift and thermal noise. Only brain
voxels are simulated (as a ``(n_volumes, n_brain_voxels)`` matrix: one low-rank product plus
noise drawn in float32), so a 100-volume run takes well under a second; the background is
exactly 0. Deterministic for a given seed.

The demo's files come from two sibling modules, re-exported here:
:func:`write_fmriprep_dataset` (:mod:`nipype_maskers.demo.fmriprep`: BOLD runs, brain masks
and confounds laid out as fMRIPrep derivatives) and :func:`write_demo_atlases`
(:mod:`nipype_maskers.demo.atlases`: labels, maps and seeds on the same grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..data import MNI152_TEMPLATES

#: fMRIPrep's MNI152NLin2009cAsym res-2 grid.
MNI_2MM_SHAPE = (97, 115, 97)
MNI_2MM_AFFINE = np.array([
    [2.0, 0.0, 0.0, -96.0],
    [0.0, 2.0, 0.0, -132.0],
    [0.0, 0.0, 2.0, -78.0],
    [0.0, 0.0, 0.0, 1.0],
])
#: Values are rounded to multiples of 1/16 (exact in binary), which makes the gzipped BOLD
#: ~35% smaller, and faster to write and to read, at no visible cost (noise sd is 12).
QUANTUM = 1.0 / 16.0
#: Bumped whenever the simulation changes, so that an old dataset is rebuilt, not reused.
GENERATOR_VERSION = 2
_NOISE_SD = 12.0
_BLOCK = 16  # volumes per noise block

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


# --------------------------------------------------------------------------------------------
# The anatomy of a grid (computed once per grid and process)
# --------------------------------------------------------------------------------------------
class Anatomy(NamedTuple):
    """The brain on a grid; per-voxel arrays are over the brain voxels, in F (file) order."""

    shape: tuple[int, int, int]
    affine: NDArray[np.float64]
    brain: NDArray[np.bool_]  #: 3D brain mask (template > 0.2)
    index: NDArray[np.intp]  #: F-order flat indices of the brain voxels, ascending
    coords: NDArray[np.float32]  #: (n, 3) world coordinates in mm
    gm: NDArray[np.float32]  #: grey-matter probability
    csf: NDArray[np.float32]  #: 1 - gm - wm, clipped
    baseline: NDArray[np.float32]  #: T2*-like mean intensity
    motion_maps: NDArray[np.float32]  #: (6, n) intensity change per mm / radian of motion
    csf_mask: NDArray[np.bool_]  #: fMRIPrep-like aCompCor CSF mask
    wm_mask: NDArray[np.bool_]  #: fMRIPrep-like aCompCor WM mask (eroded)


def check_grid(shape: Sequence[int], affine: Any) -> tuple[tuple[int, int, int], NDArray]:
    """Check a 3D grid (``shape``, axis-aligned 4x4 ``affine``); return it as tuple, array."""
    shape = tuple(int(s) for s in shape)
    affine = np.asarray(affine, dtype=np.float64)
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"shape must be 3 sizes >= 4; got {shape}")
    if affine.shape != (4, 4) or not np.allclose(affine[:3, :3], np.diag(np.diag(affine)[:3])):
        raise ValueError("affine must be an axis-aligned 4x4 matrix (the template is sampled "
                         f"axis by axis); got\n{affine}")  # fmt: skip
    return shape, affine


def anatomy(shape: Sequence[int] = MNI_2MM_SHAPE, affine: Any = MNI_2MM_AFFINE) -> Anatomy:
    """The simulated brain on a grid (cached: the templates are sampled once per grid)."""
    shape, affine = check_grid(shape, affine)
    return _anatomy(shape, affine.tobytes())


@lru_cache(maxsize=4)
def _anatomy(shape: tuple[int, int, int], affine_bytes: bytes) -> Anatomy:
    affine = np.frombuffer(affine_bytes).reshape(4, 4)
    t1 = template_on_grid(shape, affine)
    gm3 = template_on_grid(shape, affine, "gm")
    wm3 = template_on_grid(shape, affine, "wm")
    brain = t1 > 0.2
    baseline3 = np.where(brain, 900.0 - 350.0 * t1 + 250.0 * gm3, 0.0).astype(np.float32)
    index = np.flatnonzero(brain.ravel(order="F"))
    ijk = np.unravel_index(index, shape, order="F")
    coords = (np.column_stack(ijk) @ affine[:3, :3].T + affine[:3, 3]).astype(np.float32)
    # World-space intensity gradient (per mm): inv(A)^T times the voxel-space gradient.
    grad_vox = np.stack([g[ijk] for g in np.gradient(baseline3)])
    grad = (np.linalg.inv(affine[:3, :3]).T @ grad_vox).astype(np.float32)
    # A displacement d(x) = t + w x r (r from the brain's centre) changes I(x) by -grad . d
    # = -(grad . t + w . (r x grad)): six maps, one per motion parameter.
    rel = coords - coords.mean(axis=0)
    motion_maps = np.concatenate([grad, np.cross(rel, grad.T).T]).astype(np.float32)
    gm, wm = gm3[ijk], wm3[ijk]
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    deep = ndimage.binary_erosion(brain, iterations=2)[ijk]
    wm_core = ndimage.binary_erosion(wm3 > 0.9)[ijk]
    return Anatomy(shape, affine, brain, index, coords, gm, csf, baseline3[ijk],
                   motion_maps, (csf > 0.6) & deep, wm_core)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------
class SimulatedRun(NamedTuple):
    """A simulated run: the brain voxels' signals and what went into them."""

    signals: NDArray[np.float32]  #: (n_volumes, n_brain_voxels), multiples of QUANTUM
    motion: NDArray[np.float64]  #: (n_volumes, 6): trans_x/y/z (mm), rot_x/y/z (rad)
    anatomy: Anatomy
    t_r: float
    n_dummy: int  #: non-steady-state volumes at the start
    spikes: NDArray[np.intp]  #: volumes with a sudden head jerk


def _band_limited(rng: np.random.Generator, n_volumes: int, t_r: float, n: int,
                  low: float, high: float) -> NDArray[np.float64]:
    """``n`` unit-variance time courses with power only between ``low`` and ``high`` Hz."""
    freqs = np.fft.rfftfreq(n_volumes, t_r)
    band = (freqs >= low) & (freqs <= high)
    if not band.any():  # a very short run: keep the lowest non-zero frequency
        band[min(1, freqs.size - 1)] = True
    spectrum = np.zeros((freqs.size, n), dtype=np.complex128)
    spectrum[band] = rng.normal(size=(band.sum(), n)) + 1j * rng.normal(size=(band.sum(), n))
    courses = np.fft.irfft(spectrum, n=n_volumes, axis=0)
    courses -= courses.mean(axis=0)
    return courses / np.maximum(courses.std(axis=0), 1e-12)


def _smooth_fields(rng: np.random.Generator, coords: NDArray, n: int, n_blobs: int = 6,
                   sd: float = 20.0) -> NDArray[np.float32]:
    """``n`` smooth random fields over the voxels (Gaussian blobs of random signs), max |1|."""
    centres = coords[rng.choice(coords.shape[0], (n, n_blobs))]
    signs = rng.choice([-1.0, 1.0], (n, n_blobs))
    fields = np.zeros((n, coords.shape[0]), dtype=np.float32)
    for k in range(n):
        for c, sign in zip(centres[k], signs[k], strict=True):
            fields[k] += sign * np.exp(-np.sum((coords - c) ** 2, axis=1) / (2 * sd**2))
    return fields / np.abs(fields).max(axis=1, keepdims=True)


def _motion(rng: np.random.Generator, n_volumes: int, n_dummy: int, n_spikes: int
            ) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Slow head drift (random walk) plus ``n_spikes`` jerks there and back (FD ~0.6-1.3 mm)."""
    steps = rng.normal(0.0, 1.0, size=(n_volumes, 6)) * [0.03, 0.03, 0.04, 5e-4, 4e-4, 4e-4]
    steps[0] = 0.0
    motion = np.cumsum(steps, axis=0)
    candidates = np.arange(n_dummy + 2, n_volumes - 1)
    n_spikes = min(n_spikes, candidates.size // 4)
    spikes = np.sort(rng.choice(candidates, size=n_spikes, replace=False)) if n_spikes else \
        np.zeros(0, dtype=np.intp)  # fmt: skip
    for t in spikes:
        motion[t, :3] += rng.uniform(0.15, 0.35, 3) * rng.choice([-1.0, 1.0], 3)
        motion[t, 3:] += rng.uniform(-1.5e-3, 1.5e-3, 3)
    return motion, spikes.astype(np.intp)


def simulate_run(
    n_volumes: int = 100, *, t_r: float = 2.0, seed: int | Sequence[int] = 0,
    shape: Sequence[int] = MNI_2MM_SHAPE, affine: Any = MNI_2MM_AFFINE, n_dummy: int = 0,
    n_spikes: int = 2,
) -> SimulatedRun:
    """Simulate one run's brain-voxel signals (see the module docstring for the model).

    Parameters
    ----------
    n_volumes : int
        Number of volumes (>= 2).
    t_r : float
        Repetition time in seconds.
    seed : int or sequence of int
        Seed of :func:`numpy.random.default_rng`.
    shape, affine : grid
        An axis-aligned grid; by default fMRIPrep's MNI 2 mm grid.
    n_dummy : int
        Non-steady-state volumes at the start (brighter: T1 not yet at equilibrium).
    n_spikes : int
        Sudden head jerks (framewise displacement above 0.5 mm), if the run is long enough.

    Returns
    -------
    SimulatedRun
    """
    if int(n_volumes) != n_volumes or n_volumes < 2:
        raise ValueError(f"n_volumes must be an integer >= 2; got {n_volumes!r}")
    if not t_r > 0:
        raise ValueError(f"t_r must be > 0 seconds; got {t_r!r}")
    if not 0 <= n_dummy < n_volumes:
        raise ValueError(f"n_dummy must be in [0, n_volumes); got {n_dummy!r}")
    n_volumes = int(n_volumes)
    anat = anatomy(shape, affine)
    rng = np.random.default_rng(seed)
    times = np.arange(n_volumes) * t_r
    coords = anat.coords

    # Six networks: Gaussian blobs (sd 25 mm) on the grey matter, band-limited 0.01-0.1 Hz.
    n_net = 6
    centres = coords[rng.choice(np.flatnonzero(anat.gm > 0.5), n_net, replace=False)]
    weights = np.stack([np.exp(-np.sum((coords - c) ** 2, axis=1) / (2 * 25.0**2)) * anat.gm
                        for c in centres])  # fmt: skip
    courses = 18.0 * _band_limited(rng, n_volumes, t_r, n_net, 0.01, 0.1)
    # Physiological noise: aliased cardiac and respiratory cycles (and their harmonics) and a
    # slow CO2-like fluctuation, each with its own smooth spatial pattern, strongest in the CSF.
    f_card, f_resp = rng.uniform(0.9, 1.3), rng.uniform(0.2, 0.35)
    phase = np.cumsum(rng.normal(0.0, 0.3, size=(n_volumes, 2)), axis=0)
    cycles = [2 * np.pi * f * times + phase[:, i] for i, f in enumerate((f_card, f_resp))]
    physio = np.column_stack([
        np.sin(cycles[0]), np.sin(2 * cycles[0]), np.sin(cycles[1]), np.sin(2 * cycles[1]),
        _band_limited(rng, n_volumes, t_r, 1, 0.005, 0.05)[:, 0],
    ]) * [50.0, 25.0, 40.0, 20.0, 15.0]
    physio_maps = _smooth_fields(rng, coords, 5) * np.stack(
        [0.2 + anat.csf + 0.5 * (1.0 - anat.gm)] * 4 + [0.5 + anat.gm])
    motion, spikes = _motion(rng, n_volumes, n_dummy, n_spikes)
    # Intensity scale over time: gain, drift, non-steady state, signal drop at the jerks.
    scale = rng.uniform(0.9, 1.1) * (1.0 + 0.01 * (times / max(times[-1], 1.0)) ** 2)
    scale[:n_dummy] *= 1.0 + 0.6 * np.exp(-1.2 * np.arange(n_dummy))
    scale[spikes] *= 0.98
    # Everything but the thermal noise is low rank: one product.
    left = np.column_stack([scale, courses, physio, -0.3 * motion]).astype(np.float32)
    right = np.vstack([anat.baseline, weights, physio_maps, anat.motion_maps]).astype(np.float32)
    signals = left @ right
    noise_sd = np.float32(_NOISE_SD * scale[n_dummy])
    for start in range(0, n_volumes, _BLOCK):
        block = signals[start:start + _BLOCK]
        noise = rng.standard_normal(block.shape, dtype=np.float32)
        noise *= noise_sd
        block += noise
    signals *= np.float32(1.0 / QUANTUM)
    np.rint(signals, out=signals)
    signals *= np.float32(QUANTUM)
    return SimulatedRun(signals, motion, anat, float(t_r), int(n_dummy), spikes)


def run_to_array(run: SimulatedRun, dtype=np.float32) -> NDArray:
    """The run as a 4D F-ordered array (background 0); integer dtypes are rounded."""
    anat = run.anatomy
    n_volumes = run.signals.shape[0]
    data = np.zeros((*anat.shape, n_volumes), dtype=dtype, order="F")
    flat = data.reshape(-1, n_volumes, order="F")  # a view of the F-ordered array
    values = run.signals.T
    flat[anat.index] = np.rint(values) if np.issubdtype(dtype, np.integer) else values
    return data


def synthetic_bold(
    n_volumes: int = 100, *, t_r: float = 2.0, seed: int = 0, shape=MNI_2MM_SHAPE,
    affine=MNI_2MM_AFFINE, dtype=np.float32, n_dummy: int = 0,
) -> tuple[nib.Nifti1Image, NDArray[np.float64], list[str]]:
    """A BOLD run and its motion parameters.

    Returns
    -------
    img : nibabel.Nifti1Image
        4D, ``dtype`` (float32 or int16), background exactly 0, TR in the header.
    motion : numpy.ndarray (n_volumes, 6)
        The six rigid-body parameters (mm, radians) whose effect was added to the signal.
    names : list of str
        fMRIPrep's names for them (trans_x ... rot_z).
    """
    run = simulate_run(n_volumes, t_r=t_r, seed=seed, shape=shape, affine=affine,
                       n_dummy=n_dummy)  # fmt: skip
    img = nib.Nifti1Image(run_to_array(run, dtype), run.anatomy.affine,
                          nifti_header((*run.anatomy.shape, n_volumes), run.anatomy.affine,
                                       np.dtype(dtype), t_r))  # fmt: skip
    names = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    return img, run.motion, names


def nifti_header(shape: tuple[int, ...], affine: NDArray, dtype: np.dtype,
                 t_r: float | None = None) -> nib.Nifti1Header:
    """A NIfTI-1 header for MNI-space data: s/q-form codes 4 (MNI), mm and seconds."""
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    header.set_sform(affine, code=4)
    header.set_qform(affine, code=4)
    header.set_xyzt_units("mm", "sec")
    if t_r is not None and len(shape) == 4:
        header["pixdim"][4] = t_r
    return header
