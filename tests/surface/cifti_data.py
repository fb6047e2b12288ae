"""Small CIFTI-2 files for the CIFTI tests: a scaled-down 91k-like grayordinate layout.

Both cortical surfaces with a "medial wall" left out and subcortical structures as voxels on
one grid, as fMRIPrep's ``space-fsLR_den-91k`` dtseries (29,696 + 29,716 vertices of 32,492,
31,870 voxels); :func:`layout` at ``full=True`` builds that size.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes

#: Subcortical structures of the layout and their share of the voxels.
SUBCORTICAL = ("CIFTI_STRUCTURE_THALAMUS_LEFT", "CIFTI_STRUCTURE_THALAMUS_RIGHT",
               "CIFTI_STRUCTURE_CEREBELLUM_LEFT")

#: The 2 mm grid of the voxels (MNI152NLin6Asym's, as in the 91k files).
AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])


def layout(*, n_vertex: int = 120, n_voxels: int = 60, full: bool = False,
           seed: int = 0) -> cifti2_axes.BrainModelAxis:
    """Left and right cortex (each with a tenth of its vertices left out as "medial wall")
    then subcortical voxels in three structures. ``full``: the 91,282 grayordinates."""
    rng = np.random.default_rng(seed)
    if full:
        n_vertex, kept_counts, n_voxels = 32492, (29696, 29716), 31870
        shape = (91, 109, 91)
    else:
        kept_counts = (n_vertex - n_vertex // 10, n_vertex - n_vertex // 8)
        shape = (6, 7, 5)
    axis = None
    for structure, n_kept in zip(("CortexLeft", "CortexRight"), kept_counts, strict=True):
        vertices = np.sort(rng.choice(n_vertex, n_kept, replace=False))
        part = cifti2_axes.BrainModelAxis.from_surface(vertices, n_vertex, structure)
        axis = part if axis is None else axis + part
    flat = rng.choice(int(np.prod(shape)), n_voxels, replace=False)
    owner = rng.integers(0, len(SUBCORTICAL), n_voxels)
    for k, structure in enumerate(SUBCORTICAL):
        mask = np.zeros(int(np.prod(shape)), dtype=bool)
        mask[flat[owner == k]] = True
        axis = axis + cifti2_axes.BrainModelAxis.from_mask(mask.reshape(shape), structure,
                                                          affine=AFFINE)
    return axis


def series(n_time: int, n_gray: int, *, seed: int = 1, dtype=np.float32) -> np.ndarray:
    """Positive BOLD-like series: a baseline per grayordinate plus noise."""
    rng = np.random.default_rng(seed)
    baseline = rng.uniform(500, 1500, n_gray)
    return (baseline + 20 * rng.standard_normal((n_time, n_gray))).astype(dtype)


def parcel_keys(axis: cifti2_axes.BrainModelAxis, n_parcels: int, *, seed: int = 2,
                background_share: float = 0.1) -> np.ndarray:
    """A key per grayordinate: parcels 1..n_parcels in runs, some background (0)."""
    rng = np.random.default_rng(seed)
    keys = np.sort(rng.integers(1, n_parcels + 1, len(axis)))
    keys[rng.random(len(axis)) < background_share] = 0
    return keys


def label_dict(n_parcels: int) -> dict[int, tuple[str, tuple[float, ...]]]:
    """Workbench's label table: key 0 '???' and a name and colour per parcel."""
    rng = np.random.default_rng(3)
    table = {0: ("???", (1.0, 1.0, 1.0, 0.0))}
    for key in range(1, n_parcels + 1):
        table[key] = (f"parcel{key:03d}", (*rng.random(3).round(3).tolist(), 1.0))
    return table


def save_dtseries(path: Path, data: np.ndarray, axis, *, step: float = 2.0) -> Path:
    """A ``.dtseries.nii`` (time x grayordinates), TR ``step`` seconds."""
    data = np.atleast_2d(data)
    series_axis = cifti2_axes.SeriesAxis(0, step, data.shape[0], unit="SECOND")
    img = nib.Cifti2Image(data, header=(series_axis, axis))
    img.nifti_header.set_intent("ConnDenseSeries")
    img.to_filename(path)
    return Path(path)


def save_dlabel(path: Path, keys: np.ndarray, axis, table=None) -> Path:
    """A ``.dlabel.nii`` with one label map (``keys``, one per grayordinate)."""
    table = label_dict(int(keys.max())) if table is None else table
    label_axis = cifti2_axes.LabelAxis(["parcellation"], [table])
    img = nib.Cifti2Image(np.asarray(keys, dtype=np.float32)[None], header=(label_axis, axis))
    img.nifti_header.set_intent("ConnDenseLabel")
    img.to_filename(path)
    return Path(path)


def save_dscalar(path: Path, maps: np.ndarray, axis, names=None) -> Path:
    """A ``.dscalar.nii``: one map per row."""
    maps = np.atleast_2d(maps)
    names = [f"map{i}" for i in range(maps.shape[0])] if names is None else names
    img = nib.Cifti2Image(maps.astype(np.float32),
                          header=(cifti2_axes.ScalarAxis(names), axis))
    img.nifti_header.set_intent("ConnDenseScalar")
    img.to_filename(path)
    return Path(path)


def save_ptseries(path: Path, data: np.ndarray, parcels, *, step: float = 2.0) -> Path:
    """A ``.ptseries.nii`` (time x parcels)."""
    series_axis = cifti2_axes.SeriesAxis(0, step, data.shape[0], unit="SECOND")
    img = nib.Cifti2Image(np.asarray(data, np.float32), header=(series_axis, parcels))
    img.nifti_header.set_intent("ConnParcelSries")
    img.to_filename(path)
    return Path(path)


# --------------------------------------------------------------------------- Workbench

WB_COMMAND = shutil.which("wb_command")

#: Skips a test that needs Connectome Workbench, with the reason.
needs_wb = pytest.mark.skipif(
    WB_COMMAND is None,
    reason="wb_command (Connectome Workbench, the CIFTI reference) is not installed: "
    "apt-get install connectome-workbench (.ci/run does it when it can)")


def wb(*args: object) -> None:
    """Run ``wb_command`` with ``args``; fail the test with its output if it fails."""
    done = subprocess.run([WB_COMMAND, *map(str, args)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"wb_command {' '.join(map(str, args))} failed: {done.stderr}{done.stdout}")


def wb_parcellate(dtseries: Path, dlabel: Path, out: Path, *, kept=None, axis=None
                  ) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Workbench's parcel means (time x parcels), parcel names, and the coverage.

    With ``kept`` (a boolean per grayordinate), XCP-D's call: the kept mask as
    ``-cifti-weights`` with ``-only-numeric``, and the coverage the MEAN of the mask per
    parcel.
    """
    args = [dtseries, dlabel, "COLUMN", out, "-method", "MEAN"]
    coverage = None
    if kept is not None:
        mask = save_dscalar(out.with_name("kept.dscalar.nii"),
                            np.asarray(kept, np.float32)[None], axis, names=["kept"])
        args += ["-cifti-weights", mask, "-only-numeric"]
        pscalar = out.with_name("coverage.pscalar.nii")
        wb("-cifti-parcellate", mask, dlabel, "COLUMN", pscalar, "-method", "MEAN")
        coverage = np.asarray(nib.load(pscalar).get_fdata())[0]
    wb("-cifti-parcellate", *args)
    img = nib.load(out)
    return np.asarray(img.get_fdata()), list(img.header.get_axis(1).name), coverage
