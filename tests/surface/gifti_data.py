"""Small synthetic GIFTI pairs for the surface tests (no mesh needed by our maskers)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiLabel, GiftiLabelTable, GiftiMetaData

STRUCTURES = {"L": "CortexLeft", "R": "CortexRight"}


def gifti(columns, hemi: str | None, *, intent: str = "NIFTI_INTENT_TIME_SERIES",
          time_step: float | None = None, table: dict[int, str] | None = None) -> GiftiImage:
    """One hemisphere: a data array per column of ``columns`` (vertices[, n])."""
    columns = np.asarray(columns)
    if columns.ndim == 1:
        columns = columns[:, None]
    meta = {} if hemi is None else {"AnatomicalStructurePrimary": STRUCTURES[hemi]}
    img = GiftiImage(meta=GiftiMetaData(meta))
    if table is not None:
        labels = GiftiLabelTable()
        for key, name in table.items():
            label = GiftiLabel(key=key)
            label.label = name
            labels.labels.append(label)
        img.labeltable = labels
    darray_meta = {} if time_step is None else {"TimeStep": f"{time_step:.6f}"}
    for k in range(columns.shape[1]):
        img.add_gifti_data_array(GiftiDataArray(np.ascontiguousarray(columns[:, k]),
                                                intent=intent, datatype=columns.dtype,
                                                meta=GiftiMetaData(darray_meta)))
    return img


def save_pair(folder: Path, stem: str, suffix: str, left, right, *, meta: bool = True,
              **kwargs) -> list[str]:
    """``sub-01_hemi-L_<stem>_<suffix>`` and ``..hemi-R..`` under ``folder``; ``[L, R]``."""
    paths = []
    for hemi, data in (("L", left), ("R", right)):
        path = Path(folder) / f"sub-01_task-rest_hemi-{hemi}_{stem}_{suffix}"
        nib.save(gifti(data, hemi if meta else None, **kwargs), path)
        paths.append(str(path))
    return paths


def make_pair_data(n_left: int = 300, n_right: int = 280, n_volumes: int = 40, *,
                   seed: int = 0, dtype=np.float32):
    """Smooth-ish random time series (vertices, volumes) per hemisphere, with a signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_volumes)
    left = (100 + rng.normal(size=(n_left, n_volumes)) * 5
            + np.outer(rng.normal(size=n_left), np.sin(t / 3.0)) * 3 + 0.05 * t)
    right = (80 + rng.normal(size=(n_right, n_volumes)) * 4
             + np.outer(rng.normal(size=n_right), np.cos(t / 5.0)) * 2 - 0.03 * t)
    return left.astype(dtype), right.astype(dtype)


def make_labels(n_left: int = 300, n_right: int = 280, *, seed: int = 1):
    """Integer labels 0..6 per hemisphere: 0 is background; 1-3 left only, 4-5 right only,
    6 in both (one region across the pair, as nilearn reads it)."""
    rng = np.random.default_rng(seed)
    left = rng.choice([0, 1, 2, 3, 6], size=n_left).astype(np.int32)
    right = rng.choice([0, 4, 5, 6], size=n_right).astype(np.int32)
    return left, right


LEFT_TABLE = {0: "???", 1: "L_a", 2: "L_b", 3: "L_c", 6: "both"}
RIGHT_TABLE = {0: "???", 4: "R_a", 5: "R_b", 6: "both"}


def make_maps(n_left: int = 300, n_right: int = 280, n_maps: int = 4, *, seed: int = 2):
    """Non-negative sparse maps (vertices, maps) per hemisphere."""
    rng = np.random.default_rng(seed)
    maps = []
    for n in (n_left, n_right):
        m = rng.uniform(size=(n, n_maps)) * (rng.uniform(size=(n, n_maps)) < 0.4)
        maps.append(m.astype(np.float32))
    return maps[0], maps[1]


def nilearn_surface(left, right):
    """A nilearn SurfaceImage on a fake two-part mesh of the right sizes (tests only)."""
    from nilearn.surface import InMemoryMesh, PolyMesh, SurfaceImage

    def mesh(n):
        coordinates = np.zeros((n, 3))
        coordinates[:, 0] = np.arange(n)
        faces = np.array([[i, i + 1, i + 2] for i in range(n - 2)])
        return InMemoryMesh(coordinates, faces)

    polymesh = PolyMesh(left=mesh(left.shape[0]), right=mesh(right.shape[0]))
    return SurfaceImage(mesh=polymesh, data={"left": left, "right": right})
