"""Signals of probabilistic (or binary) maps, on arrays, for streamed 4D data.

The array-level core of nilearn's ``NiftiMapsMasker`` (``img_to_signals_maps``,
``signals_to_img_maps`` and ``_trim_maps``). The region signals are the least-squares fit of the
data by the maps, voxel by voxel::

    region_signals = argmin_S || maps[vox] @ S.T - data[vox] ||  (minimum-norm solution)

The caller reads a 4D image a few volumes at a time; voxels are addressed by flat
**Fortran-order** indices into the 3D grid (``vol.reshape(-1, order='F')`` is a free view of a
NIfTI volume). :func:`prepare_maps` computes once the support voxels and the pseudo-inverse of the
``(n_voxels, n_maps)`` matrix of the maps; :func:`maps_signals` is then one matrix product per
block of volumes (nilearn re-factorizes the maps with ``scipy.linalg.lstsq`` on every call, and
holds the whole 4D image in memory).

Deliberate differences from nilearn 0.14.1:

- **Stable columns** (nilearn bug B4). A map emptied by the mask keeps its column, filled with
  NaN (n/a); nilearn drops the column, so its ``inverse_transform(transform(x))`` fails with a
  shape error. :func:`signals_to_maps_image_data` accepts our output as it is.
- **The caller's maps are never modified** (nilearn bug B3). With ``allow_overlap=False``, nilearn
  sets the map weights below ``eps`` (so all negative weights) to 0 *in place* in its fitted maps,
  which changes the signals of maps with negative lobes (ICA maps) even when nothing overlaps.
  Here the check only reads the maps and the signals are those of ``allow_overlap=True``.
- The operator is computed from the Gram matrix of the maps (see :func:`prepare_maps`):
  singular values below ``sqrt(n_maps * eps64)`` times the largest are treated as zero, where
  ``lstsq`` cuts at ``eps`` times the largest. The two differ only for maps that are
  numerically rank-deficient to 7 digits, where nilearn's signals are noise amplified by more
  than 10^7 anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ..io.streaming import finite_block, prefaulted_empty

__all__ = [
    "MapsRegions",
    "maps_signals",
    "prepare_maps",
    "signals_to_maps_image_data",
]

#: Elements (voxels x maps) processed at once when scanning the maps: bounds the temporaries.
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True, eq=False)
class MapsRegions:
    """The support voxels of a set of maps and their least-squares operator.

    Computed by :func:`prepare_maps`; used by :func:`maps_signals`.

    Attributes
    ----------
    voxel_index : ndarray of intp, shape (n_voxels,)
        Flat Fortran-order indices (ascending) of the voxels to gather: the union of the
        non-zero voxels of the maps, restricted to the mask.
    pinv : ndarray, shape (n_maps, n_voxels)
        Minimum-norm least-squares operator: ``signals = values @ pinv.T``. The rows of maps
        emptied by the mask are 0.
    kept : ndarray of bool, shape (n_maps,)
        False for a map with no non-zero voxel in the mask (only when a mask was given); its
        signal is NaN.
    shape : tuple of 3 int
        Shape of the 3D grid.
    """

    voxel_index: NDArray[np.intp]
    pinv: NDArray[np.floating]
    kept: NDArray[np.bool_]
    shape: tuple[int, int, int]

    @property
    def n_maps(self) -> int:
        """Number of maps (output columns)."""
        return int(self.pinv.shape[0])


def _check_maps(maps_data: ArrayLike) -> np.ndarray:
    """Return the maps as a 4D numeric array (no copy) or raise."""
    if not isinstance(maps_data, np.ndarray):
        try:
            maps_data = np.asarray(maps_data)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"maps_img must be a 4D numeric array, got {type(maps_data).__name__}"
            ) from exc
    if maps_data.dtype.kind not in "biuf":
        raise TypeError(
            f"maps_img must hold real numbers, got dtype {maps_data.dtype}; "
            "accepted: bool, integer or floating-point data"
        )
    if maps_data.ndim != 4:
        hint = (
            " (a 3D image is a single map: add a 4th axis of length 1, or use a labels atlas)"
            if maps_data.ndim == 3
            else ""
        )
        raise ValueError(
            f"maps_img must be 4D (x, y, z, n_maps), got {maps_data.ndim}D with shape "
            f"{maps_data.shape}{hint}"
        )
    if maps_data.shape[3] == 0 or 0 in maps_data.shape[:3]:
        raise ValueError(f"maps_img is empty: shape {maps_data.shape}")
    return maps_data


def _check_mask(mask_data: ArrayLike | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """Binarize a mask like nilearn (non-finite -> 0, then != 0) after checking its shape."""
    if mask_data is None:
        return None
    mask = np.asarray(mask_data)
    if mask.dtype.kind not in "biuf":
        raise TypeError(f"mask_img must hold numbers, got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ValueError(
            f"mask_img has shape {mask.shape}, expected the 3D shape of the maps {tuple(shape)}"
        )
    if mask.dtype.kind == "f":
        return np.isfinite(mask) & (mask != 0)
    return mask != 0


def _slabs(shape: tuple[int, ...], per_voxel: int):
    """Yield ``slice`` objects over axis 2 bounding ``nx*ny*dz*per_voxel`` elements."""
    nz = shape[2]
    dz = max(1, _CHUNK_ELEMENTS // max(1, shape[0] * shape[1] * per_voxel))
    for z0 in range(0, nz, dz):
        yield slice(z0, min(nz, z0 + dz))


def _scan_maps(
    maps: np.ndarray, check_overlap: bool
) -> tuple[np.ndarray, tuple[int, int, tuple[int, int, int]] | None]:
    """Support of the maps (any finite non-zero weight) and the first overlap, slab by slab.

    The overlap rule is nilearn's: a map is present at a voxel when its finite weight is at
    least ``eps`` of the map dtype (``> 0`` for integer maps). The first overlap is the one with
    the smallest Fortran-order voxel index; it is reported as ``(map_a, map_b, ijk)``.
    """
    shape = maps.shape[:3]
    support = np.zeros(shape, dtype=bool, order="F")
    floating = maps.dtype.kind == "f"
    eps = np.finfo(maps.dtype).eps if floating else 0
    for sl in _slabs(shape, maps.shape[3]):
        slab = maps[:, :, sl, :]
        finite = np.isfinite(slab) if floating else None
        nonzero = slab != 0
        if finite is not None:
            nonzero &= finite
        support[:, :, sl] = nonzero.any(axis=3)
        if not check_overlap:
            continue
        present = (slab >= eps) if floating else (slab > 0)
        if finite is not None:
            present &= finite
        overlap = np.count_nonzero(present, axis=3) > 1
        if overlap.any():
            flat = np.flatnonzero(overlap.ravel(order="F"))[0]
            i, j, k = np.unravel_index(flat, overlap.shape, order="F")
            a, b = np.flatnonzero(present[i, j, k])[:2]
            return support, (int(a), int(b), (int(i), int(j), int(k + sl.start)))
    return support, None


def _support_rows(maps: np.ndarray, voxel_index: np.ndarray) -> np.ndarray:
    """``maps`` at the voxels ``voxel_index`` (flat Fortran-order), as (n_voxels, n_maps).

    Map by map when the maps are Fortran-ordered (as read from a NIfTI file): each map is
    one contiguous volume, so each gather stays in it (a 4D fancy index jumps across all
    maps for every voxel: several times slower for 64 MNI 2 mm maps).
    """
    if not maps.flags.f_contiguous:
        return maps[np.unravel_index(voxel_index, maps.shape[:3], order="F")]
    flat = maps.reshape(-1, maps.shape[3], order="F")
    out = np.empty((voxel_index.size, maps.shape[3]), dtype=maps.dtype)
    for k in range(maps.shape[3]):
        out[:, k] = flat[:, k].take(voxel_index)
    return out


def _operator_dtype(maps_dtype: np.dtype, dtype: DTypeLike | None) -> np.dtype:
    """float32 for float32 (or smaller float) maps, float64 otherwise, unless ``dtype`` says."""
    if dtype is not None:
        out = np.dtype(dtype)
        if out not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32, float64 or None, got {out}")
        return out
    if maps_dtype.kind == "f" and maps_dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _pinv_from_gram(m: np.ndarray, out_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-inverse of ``m`` (n_voxels, n_maps) through its Gram matrix, in row chunks.

    ``G = m.T @ m`` is accumulated in float64, ``G = V diag(lam) V.T`` (``eigh``), eigenvalues
    ``<= n_maps * eps64 * max(lam)`` are dropped, and ``pinv = V diag(1/lam) V.T @ m.T``. This
    is the minimum-norm least-squares operator, as ``lstsq``; it never forms float64 copies of
    ``m`` larger than one chunk. Returns ``(pinv, abs_sums)``, the latter the per-map sum of
    absolute weights (nilearn's emptiness test).
    """
    n_vox, n_maps = m.shape
    rows = max(1, _CHUNK_ELEMENTS // n_maps)
    gram = np.zeros((n_maps, n_maps))
    abs_sums = np.zeros(n_maps)
    # two float64 chunk buffers, reused: a fresh array per chunk paid its page faults each
    # time (a 64-map MNI atlas: 0.3 s of 0.4)
    buffer = prefaulted_empty((min(rows, n_vox), n_maps), np.float64)
    magnitudes = prefaulted_empty(buffer.shape, np.float64)

    def float64_rows(r0: int) -> np.ndarray:
        chunk = buffer[: min(rows, n_vox - r0)]
        np.copyto(chunk, m[r0 : r0 + rows], casting="unsafe")
        return chunk

    for r0 in range(0, n_vox, rows):
        chunk = float64_rows(r0)
        gram += chunk.T @ chunk
        abs_sums += np.abs(chunk, out=magnitudes[: len(chunk)]).sum(axis=0)
    lam, vec = np.linalg.eigh(gram)
    if n_vox == 0 or lam[-1] <= 0:
        return np.zeros((n_maps, n_vox), dtype=out_dtype), abs_sums
    pinv = prefaulted_empty((n_maps, n_vox), out_dtype)  # every column written below
    keep = lam > n_maps * np.finfo(np.float64).eps * lam[-1]
    vec = vec[:, keep]
    inv_gram = (vec / lam[keep]) @ vec.T
    for r0 in range(0, n_vox, rows):
        pinv[:, r0 : r0 + rows] = inv_gram @ float64_rows(r0).T
    return pinv, abs_sums


def prepare_maps(
    maps_data: ArrayLike,
    mask_data: ArrayLike | None = None,
    *,
    allow_overlap: bool = True,
    dtype: DTypeLike | None = None,
) -> MapsRegions:
    """Compute once the support voxels of the maps and their least-squares operator.

    Parameters
    ----------
    maps_data : array, shape (x, y, z, n_maps)
        The maps (``maps_img`` data), on the grid of the data. Non-finite weights count as 0
        (nilearn cleans the maps with ``ensure_finite``). Never modified.
    mask_data : array, shape (x, y, z), optional
        Voxels outside the mask (0 or non-finite) are ignored; a map with no non-zero weight in
        the mask is *kept* with a NaN signal (nilearn drops it: bug B4).
    allow_overlap : bool, default True
        If False, raise ``ValueError`` naming the first pair of maps that both have a weight
        ``>= eps`` at one voxel (anywhere in the grid, as nilearn). Unlike nilearn (bug B3),
        the maps are not modified and the signals are those of ``allow_overlap=True``.
    dtype : {None, float32, float64}
        Dtype of the stored operator and of the computation in :func:`maps_signals`. Default:
        float32 for float32 maps (as nilearn's ``lstsq`` on float32 maps and data), float64
        otherwise.

    Returns
    -------
    MapsRegions

    Raises
    ------
    ValueError
        ``maps_data`` is not 4D (a 3D array names ``maps_img``), the mask shape differs, the
        mask removes every map (as nilearn), or maps overlap with ``allow_overlap=False``.
    TypeError
        Non-numeric maps or mask.

    Notes
    -----
    The signals equal those of nilearn's ``scipy.linalg.lstsq(maps[vox], data[vox])`` (zero
    rows do not change a least-squares solution, so restricting to the support is exact); the
    factorization of the small ``(n_voxels, n_maps)`` matrix is done once here instead of on
    every call. See the module docstring for the rank cut-off.

    Examples
    --------
    >>> maps = np.zeros((3, 2, 1, 2)); maps[0, 0, 0, 0] = 1; maps[1, 0, 0, 1] = 2
    >>> regions = prepare_maps(maps)
    >>> regions.voxel_index.tolist(), regions.pinv.tolist()
    ([0, 1], [[1.0, 0.0], [0.0, 0.5]])
    """
    maps = _check_maps(maps_data)
    shape = tuple(int(s) for s in maps.shape[:3])
    mask = _check_mask(mask_data, shape)
    out_dtype = _operator_dtype(maps.dtype, dtype)

    support, overlap = _scan_maps(maps, check_overlap=not allow_overlap)
    if overlap is not None:
        a, b, ijk = overlap
        raise ValueError(
            f"maps_img: maps {a} and {b} overlap at voxel {ijk} (both weights >= eps); "
            "allow_overlap=False requires at most one map per voxel. Pass allow_overlap=True "
            "to extract overlapping maps (least squares)."
        )
    if mask is not None:
        support &= mask
    voxel_index = np.flatnonzero(support.ravel(order="F"))
    m = _support_rows(maps, voxel_index)  # a copy, safe to clean in place
    if m.dtype.kind == "f":
        m[~np.isfinite(m)] = 0

    pinv, abs_sums = _pinv_from_gram(m, out_dtype)
    if mask is None:
        kept = np.ones(maps.shape[3], dtype=bool)  # nilearn: an all-zero map gives 0, kept
    else:
        kept = abs_sums > 0
        if not kept.any():
            raise ValueError(
                "No map left after applying mask_img to maps_img: no map has a non-zero "
                "weight inside the mask (are the mask and the maps in the same space?)"
            )
    pinv.setflags(write=False)
    voxel_index.setflags(write=False)
    kept.setflags(write=False)
    return MapsRegions(voxel_index=voxel_index, pinv=pinv, kept=kept, shape=shape)


def maps_signals(values: ArrayLike, regions: MapsRegions) -> NDArray[np.floating]:
    """Least-squares signals of the maps for a block of volumes.

    Parameters
    ----------
    values : array, shape (n_samples, n_voxels)
        The voxels ``regions.voxel_index`` of ``n_samples`` volumes. Non-finite values count as
        0 (as nilearn). Never modified.
    regions : MapsRegions
        From :func:`prepare_maps`.

    Returns
    -------
    ndarray, shape (n_samples, n_maps)
        Computed in ``regions.pinv.dtype``; returned in the common dtype of ``values`` and the
        operator (float64 if either is float64). Maps emptied by the mask are NaN columns.

    Examples
    --------
    >>> maps = np.zeros((3, 2, 1, 2)); maps[0, 0, 0, 0] = 1; maps[1, 0, 0, 1] = 2
    >>> maps_signals(np.array([[3.0, 4.0]]), prepare_maps(maps)).tolist()
    [[3.0, 2.0]]
    """
    if not isinstance(regions, MapsRegions):
        raise TypeError(f"regions must be a MapsRegions, got {type(regions).__name__}")
    raw_dtype = np.asarray(values).dtype
    block = finite_block(values, regions.voxel_index.size, regions.pinv.dtype)
    signals = block @ regions.pinv.T
    if raw_dtype.kind == "f":
        signals = signals.astype(np.result_type(raw_dtype, signals.dtype), copy=False)
    if not regions.kept.all():
        signals[:, ~regions.kept] = np.nan
    return signals


def signals_to_maps_image_data(
    signals: ArrayLike,
    maps_data: ArrayLike,
    *,
    mask_data: ArrayLike | None = None,
) -> NDArray[np.floating]:
    """Voxel data from region signals: a linear combination of the maps (nilearn's inverse).

    As nilearn's ``signals_to_img_maps``: ``signals @ maps[vox].T`` on the support of the maps
    restricted to the mask, 0 elsewhere. This is not a pseudo-inverse of :func:`maps_signals`.

    Parameters
    ----------
    signals : array, shape (n_maps,) or (n_samples, n_maps)
        Region signals, e.g. the output of :func:`maps_signals`. A column of a map with no
        non-zero weight in the mask (NaN in our output) contributes nothing.
    maps_data : array, shape (x, y, z, n_maps)
        The maps; non-finite weights count as 0.
    mask_data : array, shape (x, y, z), optional
        Weights outside the mask count as 0.

    Returns
    -------
    ndarray, shape (x, y, z) for 1D signals, (x, y, z, n_samples) for 2D signals
        Fortran-ordered, in the common floating dtype of the signals and the maps.
    """
    maps = _check_maps(maps_data)
    shape = tuple(int(s) for s in maps.shape[:3])
    n_maps = maps.shape[3]
    signals = np.asarray(signals)
    if signals.dtype.kind not in "biuf":
        raise TypeError(f"region_signals must hold real numbers, got dtype {signals.dtype}")
    if signals.ndim not in (1, 2) or signals.shape[-1] != n_maps:
        raise ValueError(
            f"region_signals must have shape ({n_maps},) or (n_samples, {n_maps}) for "
            f"{n_maps} maps, got {signals.shape}"
        )
    mask = _check_mask(mask_data, shape)
    support, _ = _scan_maps(maps, check_overlap=False)
    if mask is not None:
        support &= mask
    voxel_index = np.flatnonzero(support.ravel(order="F"))
    m = maps[np.unravel_index(voxel_index, shape, order="F")]
    if m.dtype.kind == "f":
        m[~np.isfinite(m)] = 0

    out_dtype = np.result_type(signals.dtype, m.dtype, np.float32)
    signals2d = np.atleast_2d(signals).astype(out_dtype, copy=False)
    empty = ~m.any(axis=0)
    if empty.any():  # emptied maps: NaN (our stable columns) must not leak into the image
        signals2d = signals2d.copy()
        signals2d[:, empty] = 0
    n_samples = signals2d.shape[0]
    out = np.zeros((*shape, n_samples), dtype=out_dtype, order="F")
    out.reshape(-1, n_samples, order="F")[voxel_index] = m.astype(out_dtype, copy=False) @ (
        signals2d.T
    )
    return out[..., 0] if signals.ndim == 1 else out
