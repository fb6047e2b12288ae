"""Demo atlases on the grid of the demo data: labels (dseg), probabilistic maps and seeds.

All three are deterministic (no random numbers) and symmetric across the midline:

- ``atlas-DemoParcels_dseg.nii.gz``: 50 parcels (25 per hemisphere, mirrored) of the grey
  matter, the Voronoi cells of k-means centres of the left hemisphere's grey matter, int16,
  with the BIDS look-up table ``atlas-DemoParcels_dseg.tsv`` (``index``, ``name``);
- ``atlas-DemoMaps_probseg.nii.gz``: 16 smooth maps (8 mirrored pairs, Gaussians of 12 mm SD
  weighted by the grey matter, in [0, 1], 0 below 0.05), float32 4D, with
  ``atlas-DemoMaps_probseg.tsv`` (``index`` = volume number from 1, ``name``);
- ``atlas-DemoSeeds_seeds.tsv``: 20 classic MNI coordinates (``x y z name``, mm) of default-mode,
  sensorimotor, visual, salience, fronto-parietal and subcortical regions, all in the brain and
  at least 20 mm apart, so that 5 mm spheres never share a voxel (10 mm would do).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from ..core.io.tables import format_table
from .data import MNI_2MM_AFFINE, MNI_2MM_SHAPE, anatomy, check_grid
from .fmriprep import SPACE, header_matches, save_image, write_json, write_text

#: (name, x, y, z) in MNI mm: well-known network nodes, rounded to the 2 mm grid.
DEMO_SEEDS: tuple[tuple[str, int, int, int], ...] = (
    ("PCC", 0, -52, 26), ("mPFC", 0, 50, -4), ("L_AG", -46, -66, 30), ("R_AG", 48, -62, 30),
    ("L_M1", -38, -24, 50), ("R_M1", 38, -24, 50), ("SMA", 0, -6, 58),
    ("L_V1", -10, -88, 2), ("R_V1", 10, -88, 2), ("L_AI", -36, 18, 2), ("R_AI", 38, 18, 2),
    ("dACC", 0, 24, 30), ("L_DLPFC", -42, 28, 22), ("R_DLPFC", 42, 28, 22),
    ("L_IPS", -30, -52, 44), ("R_IPS", 30, -52, 44), ("L_THA", -10, -18, 8),
    ("R_THA", 10, -18, 8), ("L_HIP", -26, -22, -14), ("R_HIP", 26, -22, -14),
)  # fmt: skip


class DemoAtlases(NamedTuple):
    """The written atlas files and the region names."""

    labels: Path  #: 3D int16 labels image (dseg)
    labels_lut: Path  #: its BIDS look-up table (index, name)
    maps: Path  #: 4D float32 probabilistic maps
    maps_lut: Path  #: index (volume number from 1) and name of each map
    maps_names: list[str]  #: one name per map, in volume order
    seeds: Path  #: TSV with x, y, z (mm) and name
    cifti_labels: Path | None = None  #: CIFTI parcels (``.dlabel.nii``), when asked for
    cifti_maps: Path | None = None  #: CIFTI maps (``.dscalar.nii``), when asked for
    cifti_maps_names: list[str] | None = None  #: one name per CIFTI map, in row order


def _kmeans_centres(points: NDArray, k: int, iterations: int = 15) -> NDArray[np.float64]:
    """Deterministic k-means: farthest-point initialisation, then Lloyd's iterations.

    Runs on at most ~20,000 of the points (a regular subsample): the centres barely move.
    """
    points = points[:: max(1, points.shape[0] // 20000)].astype(np.float64)
    start = int(np.argmin(points[:, 1]))  # the most posterior point
    centres = [points[start]]
    dist = np.sum((points - centres[0]) ** 2, axis=1)
    for _ in range(1, k):
        centres.append(points[int(np.argmax(dist))])
        dist = np.minimum(dist, np.sum((points - centres[-1]) ** 2, axis=1))
    centres = np.array(centres)
    for _ in range(iterations):
        _, nearest = cKDTree(centres).query(points)
        counts = np.bincount(nearest, minlength=k)
        for axis in range(3):
            sums = np.bincount(nearest, weights=points[:, axis], minlength=k)
            centres[:, axis] = np.where(counts > 0, sums / np.maximum(counts, 1), centres[:, axis])
    return centres


def _mirrored(centres: NDArray) -> NDArray[np.float64]:
    """Left centres followed by their mirror images (x -> -x)."""
    right = centres * [-1.0, 1.0, 1.0]
    return np.vstack([centres, right])


def demo_atlas_data(shape: Sequence[int] = MNI_2MM_SHAPE, affine: Any = MNI_2MM_AFFINE, *,
                    n_parcels: int = 50, n_maps: int = 16
                    ) -> tuple[NDArray[np.int16], list[str], NDArray[np.float32], list[str]]:
    """The labels and maps arrays of the demo atlases, and their region names.

    Parameters
    ----------
    shape, affine : grid
        An axis-aligned grid (the demo data's).
    n_parcels, n_maps : int
        Even numbers of regions (half per hemisphere).

    Returns
    -------
    labels : ndarray of int16, 3D
        0 outside the grey matter, 1..n_parcels inside (left hemisphere first).
    label_names : list of str
        ``L_parcel_01``..., ``R_parcel_01``...
    maps : ndarray of float32, 4D
        One map per volume.
    map_names : list of str
        ``L_map_01``..., ``R_map_01``...
    """
    for name, value in (("n_parcels", n_parcels), ("n_maps", n_maps)):
        if int(value) != value or value < 2 or value % 2:
            raise ValueError(f"{name} must be an even integer >= 2; got {value!r}")
    anat = anatomy(shape, affine)
    grey = anat.gm > 0.3
    coords = anat.coords[grey]
    half = n_parcels // 2
    centres = _mirrored(_kmeans_centres(coords[coords[:, 0] < 0], half))
    _, nearest = cKDTree(centres).query(coords)
    values = np.zeros(anat.coords.shape[0], dtype=np.int16)
    values[grey] = nearest + 1
    labels = np.zeros(int(np.prod(anat.shape)), dtype=np.int16)
    labels[anat.index] = values
    labels = labels.reshape(anat.shape, order="F")
    label_names = _region_names("parcel", n_parcels)

    half_maps = n_maps // 2
    map_centres = _mirrored(_kmeans_centres(coords[coords[:, 0] < 0], half_maps))
    weight = 0.3 + 0.7 * anat.gm
    maps = np.zeros((int(np.prod(anat.shape)), n_maps), dtype=np.float32)
    for k, centre in enumerate(map_centres):
        value = np.exp(-np.sum((anat.coords - centre) ** 2, axis=1) / (2 * 12.0**2)) * weight
        value /= value.max()
        maps[anat.index, k] = np.where(value >= 0.05, value, 0.0)
    maps = maps.reshape((*anat.shape, n_maps), order="F")
    map_names = _region_names("map", n_maps)
    return labels, label_names, maps, map_names


def _region_names(kind: str, n: int) -> list[str]:
    """``L_<kind>_01``... then ``R_<kind>_01``...: the left hemisphere's regions first."""
    return [f"{h}_{kind}_{i:02d}" for h in "LR" for i in range(1, n // 2 + 1)]


def _lut_text(names: Sequence[str]) -> str:
    return format_table(["index", "name"], enumerate(names, start=1), name="demo LUT")


def write_demo_atlases(folder: str | os.PathLike, *, shape: Sequence[int] = MNI_2MM_SHAPE,
                       affine: Any = MNI_2MM_AFFINE, cifti: bool = False,
                       cifti_layout: Any = None) -> DemoAtlases:
    """Write the demo atlases into ``folder`` (created if needed); see the module docstring.

    With ``cifti``, also the CIFTI atlases on the demo's grayordinates
    (:func:`nipype_maskers.demo.cifti.write_cifti_atlases`, ``cifti_layout`` by default
    :data:`~nipype_maskers.demo.cifti.LAYOUT_91K`):
    ``tpl-fsLR_den-91k_atlas-DemoCiftiParcels_dseg.dlabel.nii`` (99 parcels with a label table)
    and ``tpl-fsLR_den-91k_atlas-DemoCiftiMaps_probseg.dscalar.nii`` (8 maps).

    Files are written atomically; an image already there with the expected shape and type and a
    text file with the expected content are left untouched.

    Returns
    -------
    DemoAtlases
    """
    shape, affine = check_grid(shape, affine)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = DemoAtlases(
        folder / "atlas-DemoParcels_dseg.nii.gz", folder / "atlas-DemoParcels_dseg.tsv",
        folder / "atlas-DemoMaps_probseg.nii.gz", folder / "atlas-DemoMaps_probseg.tsv", [],
        folder / "atlas-DemoSeeds_seeds.tsv",
    )  # fmt: skip
    n_parcels, n_maps = 50, 16
    label_names, map_names = _region_names("parcel", n_parcels), _region_names("map", n_maps)
    labels_ok = header_matches(out.labels, shape, np.dtype(np.int16), affine=affine)
    maps_ok = header_matches(out.maps, (*shape, n_maps), np.dtype(np.float32), affine=affine)
    if not (labels_ok and maps_ok):
        labels, _, maps, _ = demo_atlas_data(shape, affine, n_parcels=n_parcels, n_maps=n_maps)
        if not labels_ok:
            save_image(labels, affine, out.labels)
        if not maps_ok:
            save_image(maps, affine, out.maps)
    write_text(_lut_text(label_names), out.labels_lut)
    write_text(_lut_text(map_names), out.maps_lut)
    seeds = [(x, y, z, name) for name, x, y, z in DEMO_SEEDS]
    write_text(format_table(["x", "y", "z", "name"], seeds, name="demo seeds"), out.seeds)
    # each atlas states its space, so that one command applies them to runs in several
    # spaces (the volume atlases to the MNI runs, the CIFTI ones to the fsLR runs)
    for path in (out.labels, out.maps, out.seeds):
        stem = path.name.split(".")[0]
        write_json({"SpatialReference": SPACE}, path.with_name(f"{stem}.json"))
    out = out._replace(maps_names=list(map_names))
    if cifti:
        from .cifti import LAYOUT_91K, write_cifti_atlases

        written = write_cifti_atlases(folder, cifti_layout or LAYOUT_91K)
        out = out._replace(cifti_labels=written.labels, cifti_maps=written.maps,
                           cifti_maps_names=written.maps_names)
    return out
