"""Memory estimates for each kind of node, from the data it will hold.

The interfaces stream 4D images volume by volume, so what a node holds is known from the BOLD
run's shape: a few volumes, plus the (volumes x voxels) float32 matrix for the voxel-wise steps.
These estimates are each node's ``mem_gb`` (MultiProc schedules with them) and, through
per-node plugin arguments, what a cluster job asks for.
"""

from __future__ import annotations

from collections.abc import Sequence

_GB = 1024**3
#: The interpreter, numpy/scipy/nibabel/nipype imported: what any node costs before its data
#: (measured 0.09-0.10 GB; 0.15 before scipy.signal was no longer imported).
BASE_GB = 0.11
#: Fraction of the brain inside the field of view of a typical BOLD run (MNI grid).
BRAIN_FRACTION = 0.25


def _volume_gb(shape: Sequence[int], bytes_per_value: int = 4) -> float:
    return shape[0] * shape[1] * shape[2] * bytes_per_value / _GB


def estimate_mem_gb(kind: str, bold_shape: Sequence[int], *, n_maps: int = 0) -> float:
    """Estimated peak memory (GB) of one node working on a run of shape ``bold_shape``.

    Parameters
    ----------
    kind : str
        'mask', 'confounds', 'clean_image', 'nifti_masker', 'labels', 'maps', 'spheres',
        'sink'.
    bold_shape : (x, y, z, t)
        Shape of the BOLD run.
    n_maps : int
        Number of maps, for 'maps' (their (voxels x maps) matrix is held).

    Examples
    --------
    >>> round(estimate_mem_gb('clean_image', (97, 115, 97, 300)), 2)
    0.54
    >>> labels = [estimate_mem_gb('labels', (97, 115, 97, t)) for t in (300, 1200)]
    >>> labels[0] == labels[1]  # streamed: independent of the number of volumes
    True
    """
    n_volumes = bold_shape[3] if len(bold_shape) > 3 else 1
    volume = _volume_gb(bold_shape)
    matrix = volume * BRAIN_FRACTION * n_volumes  # the mask's voxels: a brain in an MNI FOV
    few_volumes = 8 * volume  # read-ahead, resampling and smoothing buffers, the mean
    if kind in ("confounds", "sink"):
        return BASE_GB
    if kind == "mask":
        return BASE_GB + few_volumes
    if kind == "nifti_masker":
        return BASE_GB + few_volumes + 1.3 * matrix
    if kind == "clean_image":
        # the matrix, cleaned in place, then written back volume by volume
        return BASE_GB + few_volumes + 1.3 * matrix + volume
    if kind == "labels":
        return BASE_GB + few_volumes + 2 * volume  # the labels image as 8-byte integers
    if kind == "spheres":
        return BASE_GB + few_volumes
    if kind == "maps":
        # the maps (float32, 4 bytes a voxel) and their least-squares operator on the support
        return BASE_GB + few_volumes + 2 * n_maps * volume
    raise ValueError(f"kind: unknown {kind!r}")


def estimate_surface_mem_gb(kind: str, shape: Sequence[int], *, n_maps: int = 0) -> float:
    """Estimated peak memory (GB) of a surface or CIFTI masker node.

    Parameters
    ----------
    kind : str
        'labels' or 'maps'.
    shape : (volumes, grayordinates)
        The run's shape (a GIFTI pair: both hemispheres' vertices).
    n_maps : int
        Number of maps, for 'maps' (their grayordinates x maps matrix and its operator).

    Notes
    -----
    A GIFTI hemisphere is read whole (nibabel decodes every data array), so a node may hold
    the run's (volumes x vertices) float32 matrix and its decoded copy; the CIFTI readers
    stream rows, which makes this an upper bound for them.

    Examples
    --------
    >>> round(estimate_surface_mem_gb('labels', (1200, 91282)), 2)
    0.93
    """
    n_volumes, n_points = int(shape[0]), int(shape[1])
    matrix = n_volumes * n_points * 4 / _GB
    if kind == "labels":
        return BASE_GB + 2 * matrix + n_points * 8 / _GB
    if kind == "maps":
        return BASE_GB + 2 * matrix + 2 * n_maps * n_points * 8 / _GB
    raise ValueError(f"kind: unknown {kind!r}; expected 'labels' or 'maps'")
