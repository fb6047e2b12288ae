"""Signals of spheres around seed coordinates, on arrays, for streamed 4D data.

The array-level core of nilearn's ``NiftiSpheresMasker`` (``apply_mask_and_get_affinity`` and the
sphere mean). The caller reads a 4D image a few volumes at a time; voxels are addressed by flat
**Fortran-order** indices into the 3D grid (``vol.reshape(-1, order='F')`` is a free view of a
NIfTI volume). :func:`prepare_spheres` finds once the voxels of every sphere (a
``scipy.spatial.cKDTree`` over the candidate voxel centres, no scikit-learn) and
:func:`spheres_signals` is one sparse matrix product per block of volumes (nilearn rebuilds the
neighbour graph over all voxels and reshapes the whole 4D image on every call).

Which voxels form a sphere (same as nilearn 0.14.1 for ``radius > 0``):

1. candidates: the voxels of the mask, or all voxels;
2. the candidates whose centre (world mm) is at distance ``<= radius`` from the seed;
3. plus the seed's nearest voxel ``round(inv(affine) @ seed)`` (numpy rounds half to even) when
   it is a candidate, so a small sphere is never empty;
4. plus nilearn's *truncation voxel*: the first candidate, in C order, whose world coordinates
   truncated to integers equal the truncated seed. nilearn meant "the voxel containing the
   seed" but compares millimetres, not voxel indices. We keep it for parity: it is always
   within ``2*sqrt(3)`` mm of the seed (per axis less than 1 mm, or 2 mm around 0), so it only
   changes spheres of radius below about 3.5 mm.

Deliberate differences from nilearn 0.14.1:

- ``radius=None`` or ``0`` is the **single nearest voxel** (step 3 only). nilearn adds the
  truncation voxel too and may average two voxels (bug B8), or raise a ``TypeError`` inside
  scikit-learn on small candidate sets.
- A seed whose nearest voxel lies outside the grid is an error; nilearn accepts it when some
  voxel of the image is within the radius (the sphere is then cut by the border).
- Integer data gives float64 means; nilearn 0.14.1 stores the means of integer data in an
  array of the data dtype, truncating them to integers.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.spatial import cKDTree

from ..io.streaming import finite_block
from ..io.tables import read_table

__all__ = [
    "SphereRegions",
    "prepare_spheres",
    "read_seeds",
    "signals_to_spheres_image_data",
    "spheres_signals",
]


@dataclass(frozen=True, eq=False)
class SphereRegions:
    """The voxels of each sphere, as computed by :func:`prepare_spheres`.

    Attributes
    ----------
    voxel_index : ndarray of intp, shape (n_voxels,)
        Flat Fortran-order indices (ascending) of the voxels used by any sphere.
    adjacency : scipy.sparse.csr_array, shape (n_seeds, n_voxels)
        1.0 where the voxel ``voxel_index[j]`` belongs to sphere ``i``.
    sizes : ndarray of int64, shape (n_seeds,)
        Voxels per sphere (all >= 1).
    shape : tuple of 3 int
        Shape of the 3D grid.
    """

    voxel_index: NDArray[np.intp]
    adjacency: sparse.csr_array
    sizes: NDArray[np.int64]
    shape: tuple[int, int, int]

    @property
    def n_seeds(self) -> int:
        """Number of spheres (output columns)."""
        return int(self.sizes.size)


def _check_seeds(seeds: ArrayLike) -> np.ndarray:
    """Return the seeds as a finite (n, 3) float64 array or raise."""
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__"):
        raise TypeError(
            "seeds must be a sequence of (x, y, z) world coordinates in mm, "
            f"got {type(seeds).__name__}"
        )
    try:
        arr = np.asarray(seeds)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(
            f"seeds must be (n_seeds, 3) coordinates; some seed is not a triplet: {exc}"
        ) from exc
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"seeds must hold numbers (x, y, z in mm), got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise ValueError(
            f"seeds must have shape (n_seeds, 3) with n_seeds >= 1, got {arr.shape}; "
            "a single seed is [[x, y, z]]"
        )
    arr = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ValueError(f"seeds must be finite; seed {int(bad[0])} is {arr[bad[0]].tolist()}")
    return arr


def _check_radius(radius: float | None) -> float:
    """Return the radius in mm (0.0 for None) or raise."""
    if radius is None:
        return 0.0
    if isinstance(radius, bool) or not isinstance(radius, numbers.Real):
        raise TypeError(f"radius must be a number of mm or None, got {type(radius).__name__}")
    radius = float(radius)
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"radius must be a finite number of mm >= 0 (or None), got {radius}")
    return radius


def _check_grid(affine: ArrayLike, shape) -> tuple[np.ndarray, tuple[int, int, int]]:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise ValueError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError("affine is singular (its 3x3 part has no inverse)")
    shape = tuple(int(s) for s in shape)
    if len(shape) < 3 or min(shape[:3]) < 1:
        raise ValueError(f"shape must be 3 positive sizes (x, y, z), got {shape}")
    return affine, shape[:3]


def _candidates(mask_data: ArrayLike | None, shape: tuple[int, int, int]) -> np.ndarray | None:
    """Boolean candidate mask (None = every voxel)."""
    if mask_data is None:
        return None
    mask = np.asarray(mask_data)
    if mask.dtype.kind not in "biuf":
        raise TypeError(f"mask_img must hold numbers, got dtype {mask.dtype}")
    if mask.shape != shape:
        raise ValueError(
            f"mask_img has shape {mask.shape}, expected the 3D shape of the data {shape}"
        )
    mask = (np.isfinite(mask) & (mask != 0)) if mask.dtype.kind == "f" else (mask != 0)
    if not mask.any():
        raise ValueError("mask_img is empty: no voxel is non-zero")
    return mask


def _world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """World coordinates (n, 3) of voxel indices (3, n), computed as nilearn's coord_transform."""
    homogeneous = np.vstack([ijk.astype(np.float64), np.ones((1, ijk.shape[1]))])
    return np.dot(affine, homogeneous)[:3].T


def _truncation_voxels(
    seeds: np.ndarray, tree: cKDTree, world: np.ndarray, cand_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """nilearn's truncation quirk: (seed rows, candidate positions) of the added voxels.

    For each seed, the candidate with the smallest C-order index whose ``trunc(world)`` equals
    ``trunc(seed)``. Such a candidate is within 2 mm of the seed on every axis, so a
    Chebyshev-ball query finds all of them.
    """
    near = tree.query_ball_point(seeds, r=2.0, p=np.inf)
    rows, cols = [], []
    for i, positions in enumerate(near):  # loop over seeds, each a handful of voxels
        if not positions:
            continue
        positions = np.asarray(positions)
        match = (np.trunc(world[positions]) == np.trunc(seeds[i])).all(axis=1)
        if match.any():
            positions = positions[match]
            rows.append(i)
            cols.append(positions[np.argmin(cand_c[positions])])
    return np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)


def _format_seeds(indices: np.ndarray, seeds: np.ndarray, limit: int = 5) -> str:
    items = [f"{int(i)} {seeds[i].tolist()}" for i in indices[:limit]]
    more = f" and {indices.size - limit} more" if indices.size > limit else ""
    return ", ".join(items) + more


def prepare_spheres(
    seeds: ArrayLike,
    radius: float | None,
    affine: ArrayLike,
    shape,
    *,
    mask_data: ArrayLike | None = None,
    allow_overlap: bool = False,
) -> SphereRegions:
    """Compute once the voxels of spheres of ``radius`` mm around each seed.

    Parameters
    ----------
    seeds : array-like, shape (n_seeds, 3)
        World coordinates (mm) of the sphere centres, in the space of ``affine``.
    radius : float or None
        Radius in mm (inclusive: distance ``<= radius``). None or 0: the single nearest voxel.
    affine : array, shape (4, 4)
        Voxel-to-world affine of the data grid (oblique and anisotropic grids are fine).
    shape : sequence of int
        Shape of the data grid (only the first 3 sizes are used).
    mask_data : array, shape (x, y, z), optional
        Candidate voxels (non-zero, finite) on the data grid; default all voxels.
    allow_overlap : bool, default False
        If False, two spheres sharing a voxel raise ``ValueError`` naming the pair.

    Returns
    -------
    SphereRegions

    Raises
    ------
    ValueError
        Negative or non-finite radius; seeds not of shape (n, 3) or not finite; a seed whose
        nearest voxel is outside the grid; an empty sphere (no candidate voxel: seed outside
        the mask); overlapping spheres with ``allow_overlap=False``; a bad affine, shape or mask.
    TypeError
        Non-numeric seeds, radius or mask.

    Notes
    -----
    See the module docstring for the voxel rules (nilearn's, including its truncation voxel
    for ``radius > 0``) and the deliberate differences (``radius=None``).

    Examples
    --------
    >>> regions = prepare_spheres([[1.0, 1.0, 1.0]], 1.0, np.eye(4), (3, 3, 3))
    >>> regions.sizes.tolist(), regions.voxel_index.tolist()
    ([7], [4, 10, 12, 13, 14, 16, 22])
    """
    seeds, radius = _check_seeds(seeds), _check_radius(radius)
    affine, shape = _check_grid(affine, shape)
    mask = _candidates(mask_data, shape)
    n_seeds = seeds.shape[0]

    # Nearest voxel, exactly as nilearn: np.round(inv(affine) @ [x, y, z, 1]), half to even.
    nearest = np.round(_world(np.linalg.inv(affine), seeds.T)).astype(np.int64)
    outside = np.flatnonzero(((nearest < 0) | (nearest >= np.asarray(shape))).any(axis=1))
    if outside.size:
        raise ValueError(
            f"seeds outside the image (grid shape {shape}): seed "
            f"{_format_seeds(outside, seeds)}; nearest voxels "
            f"{nearest[outside[:5]].tolist()}"
        )
    nearest_flat = np.ravel_multi_index(nearest.T, shape, order="F")
    is_candidate = np.ones(n_seeds, bool) if mask is None else mask[tuple(nearest.T)]
    rows = [np.flatnonzero(is_candidate)]
    flats = [nearest_flat[is_candidate]]

    if radius > 0:
        if mask is None:
            cand_flat = np.arange(np.prod(shape), dtype=np.intp)
        else:
            cand_flat = np.flatnonzero(mask.ravel(order="F"))
        ijk = np.asarray(np.unravel_index(cand_flat, shape, order="F"))
        world = _world(affine, ijk)
        tree = cKDTree(world, balanced_tree=False, compact_nodes=False)
        in_ball = tree.query_ball_point(seeds, r=radius)
        lengths = np.fromiter((len(p) for p in in_ball), dtype=np.intp, count=n_seeds)
        if lengths.sum():
            rows.append(np.repeat(np.arange(n_seeds), lengths))
            flats.append(cand_flat[np.concatenate([np.asarray(p, np.intp) for p in in_ball])])
        cand_c = np.ravel_multi_index(ijk, shape, order="C")
        trunc_rows, trunc_cols = _truncation_voxels(seeds, tree, world, cand_c)
        rows.append(trunc_rows)
        flats.append(cand_flat[trunc_cols])

    rows_all = np.concatenate(rows).astype(np.intp)
    flats_all = np.concatenate(flats).astype(np.intp)
    voxel_index, cols = np.unique(flats_all, return_inverse=True)
    adjacency = sparse.csr_array(
        (np.ones(rows_all.size), (rows_all, cols.ravel())),
        shape=(n_seeds, voxel_index.size),
    )
    adjacency.sum_duplicates()
    adjacency.data[:] = 1.0
    sizes = np.diff(adjacency.indptr).astype(np.int64)

    empty = np.flatnonzero(sizes == 0)
    if empty.size:
        raise ValueError(
            f"empty spheres (no voxel of the sphere is in the mask): seed "
            f"{_format_seeds(empty, seeds)}"
        )
    if not allow_overlap:
        per_voxel = np.bincount(adjacency.indices, minlength=voxel_index.size)
        shared = np.flatnonzero(per_voxel > 1)
        if shared.size:
            by_voxel = adjacency.tocsc()
            j = shared[0]
            a, b = np.sort(by_voxel.indices[by_voxel.indptr[j] : by_voxel.indptr[j + 1]])[:2]
            vox = np.unravel_index(voxel_index[shared[0]], shape, order="F")
            raise ValueError(
                f"spheres {int(a)} {seeds[a].tolist()} and {int(b)} {seeds[b].tolist()} "
                f"overlap (they share voxel {tuple(int(v) for v in vox)}; "
                f"{shared.size} shared voxels in all). Pass allow_overlap=True to allow it, "
                "or use a smaller radius."
            )
    voxel_index.setflags(write=False)
    sizes.setflags(write=False)
    return SphereRegions(voxel_index=voxel_index, adjacency=adjacency, sizes=sizes, shape=shape)


def spheres_signals(values: ArrayLike, regions: SphereRegions) -> NDArray[np.floating]:
    """Unweighted mean of the voxels of each sphere, for a block of volumes.

    Parameters
    ----------
    values : array, shape (n_samples, n_voxels)
        The voxels ``regions.voxel_index`` of ``n_samples`` volumes. Non-finite values count as
        0 (as nilearn, which cleans the data with ``ensure_finite``). Never modified.
    regions : SphereRegions
        From :func:`prepare_spheres`.

    Returns
    -------
    ndarray, shape (n_samples, n_seeds)
        Accumulated in float64; float32 data gives float32, integer data float64.

    Examples
    --------
    >>> regions = prepare_spheres([[0.0, 0.0, 0.0]], 1.0, np.eye(4), (2, 2, 2))
    >>> spheres_signals(np.array([[1.0, 2.0, 3.0, 4.0]]), regions).tolist()
    [[2.5]]
    """
    if not isinstance(regions, SphereRegions):
        raise TypeError(f"regions must be a SphereRegions, got {type(regions).__name__}")
    values = np.asarray(values)
    out_dtype = values.dtype if values.dtype.kind == "f" else np.dtype(np.float64)
    block = finite_block(values, regions.voxel_index.size, np.dtype(np.float64))
    sums = regions.adjacency @ block.T  # (n_seeds, n_samples)
    return (sums.T / regions.sizes).astype(out_dtype, copy=False)


def signals_to_spheres_image_data(
    signals: ArrayLike, regions: SphereRegions
) -> NDArray[np.floating]:
    """Voxel data from sphere signals (nilearn's ``inverse_transform``).

    Each voxel of a sphere gets the mean of the signals of the spheres covering it (its
    sphere's signal when spheres do not overlap); voxels outside all spheres are 0.

    Parameters
    ----------
    signals : array, shape (n_seeds,) or (n_samples, n_seeds)
    regions : SphereRegions

    Returns
    -------
    ndarray, shape (x, y, z) for 1D signals, (x, y, z, n_samples) for 2D signals
        Fortran-ordered, float64 (float32 for float32 signals).
    """
    if not isinstance(regions, SphereRegions):
        raise TypeError(f"regions must be a SphereRegions, got {type(regions).__name__}")
    signals = np.asarray(signals)
    n_seeds = regions.n_seeds
    if signals.dtype.kind not in "biuf":
        raise TypeError(f"region_signals must hold real numbers, got dtype {signals.dtype}")
    if signals.ndim not in (1, 2) or signals.shape[-1] != n_seeds:
        raise ValueError(
            f"region_signals must have shape ({n_seeds},) or (n_samples, {n_seeds}) for "
            f"{n_seeds} seeds, got {signals.shape}"
        )
    out_dtype = signals.dtype if signals.dtype.kind == "f" else np.dtype(np.float64)
    signals2d = np.atleast_2d(signals).astype(np.float64, copy=False)
    counts = np.bincount(regions.adjacency.indices, minlength=regions.voxel_index.size)
    voxels = (regions.adjacency.T @ signals2d.T) / counts[:, None]  # (n_voxels, n_samples)
    n_samples = signals2d.shape[0]
    out = np.zeros((*regions.shape, n_samples), dtype=out_dtype, order="F")
    out.reshape(-1, n_samples, order="F")[regions.voxel_index] = voxels
    return out[..., 0] if signals.ndim == 1 else out


# ---------------------------------------------------------------------------------------------
# Seed files

_COORD_COLUMNS = ("x", "y", "z")


def read_seeds(path: str | os.PathLike) -> tuple[NDArray[np.float64], list[str] | None]:
    """Read seed coordinates from a TSV, CSV or whitespace-separated text file.

    The first line is a header naming the columns ``x``, ``y`` and ``z`` (any case, any
    order, other columns ignored) and optionally ``name``. nilearn's bundled
    ``power_2011.csv`` (``ROI,X,Y,Z``) and ``dosenbach_2010.csv``
    (``number,x,y,z,name,network``) are read as they are. A file without header is accepted
    when every row holds exactly 3 numbers (x, y, z). The delimiter (tab, comma or whitespace)
    is taken from the first line; blank lines and lines starting with ``#`` are skipped.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    coords : ndarray of float64, shape (n_seeds, 3)
        World coordinates in mm, in file order.
    names : list of str or None
        The ``name`` column, as written (names may repeat, as in Dosenbach 2010), or None.

    Raises
    ------
    ValueError
        Empty file, missing x/y/z columns, duplicated column names, rows with a wrong number
        of cells, non-numeric or non-finite coordinates.
    FileNotFoundError
        The file does not exist.
    """
    table = read_table(path, name="seeds_file", header="infer", comment="#", numeric=False)
    source = table.source
    if not table.has_header:
        if len(table.columns) != 3:
            raise ValueError(
                f"{source}: line {table.lines[0]} has {len(table.columns)} cells; a file "
                "without header must have 3 columns (x, y, z), else a header row naming x, y, "
                "z (and name)"
            )
        table = table._replace(columns=list(_COORD_COLUMNS))
    else:
        header = [column.lower() for column in table.columns]
        duplicated = sorted({c for c in header if header.count(c) > 1 and c})
        if duplicated:
            raise ValueError(f"{source}: duplicated columns {duplicated} in the header; "
                             "expected each column once (names are read in any case)")
        missing = [c for c in _COORD_COLUMNS if c not in header]
        if missing:
            raise ValueError(
                f"{source}: the header must name the columns x, y, z (any case); missing "
                f"{missing}, found {table.columns}"
            )
        table = table._replace(columns=header)
    if not table.cells:
        raise ValueError(f"{source}: no seeds (only a header); expected one row per seed")
    coords = table.numbers(list(_COORD_COLUMNS))
    bad_row, bad_col = np.nonzero(~np.isfinite(coords))
    if bad_row.size:
        row, col = int(bad_row[0]), int(bad_col[0])
        cell = table.cells[row][table.columns.index(_COORD_COLUMNS[col])]
        raise ValueError(
            f"{source}: line {table.lines[row]}: column {_COORD_COLUMNS[col]!r} is not finite "
            f"({cell!r}); expected finite coordinates in mm"
        )
    names = table.text("name") if "name" in table.columns else None
    return coords, names
