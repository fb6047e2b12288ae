"""A run read once: its volumes masked (and smoothed) into rows, shared by every later step.

Decompressing a ``.nii.gz`` is most of what a masker costs. A workflow that extracts several
atlases and the denoised BOLD from one run therefore reads the run once, into the matrix of
its brain voxels (NiftiMasker's output, uncompressed), and every step after it takes its rows
from that matrix instead of decompressing the run again: :class:`MaskedRun` is that matrix
with what it must agree with (its mask, its smoothing, the run it was read from).

The numbers are the same bit for bit as reading the run itself: the rows hold exactly the
values a streaming pass gathers (finite, resampled nowhere, smoothed on the whole volume), and
the maskers reduce the same blocks of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..io.images import ImageError, compute_dtype, n_volumes, same_grid
from ..spatial.masking import flat_indices
from ..spatial.smoothing import Fwhm, check_fwhm


@dataclass(frozen=True)
class MaskedRun:
    """The rows of a run's voxels inside its mask, already read.

    Attributes
    ----------
    rows : array-like
        (n_volumes, n_voxels): one row per volume of the run, in order; one column per voxel
        of ``mask`` in its C order (nilearn's). Anything that gives an array for a slice of
        rows (``rows[start:stop]``), with ``shape`` and ``dtype``: a numpy array or a reader
        of a file of rows.
    mask : numpy.ndarray of bool
        3D, on the run's grid.
    affine : numpy.ndarray
        The run's (and the mask's) affine.
    smoothing_fwhm : float, 3 floats or None
        The smoothing (mm) the rows got before masking.
    """

    rows: Any
    mask: NDArray[np.bool_]
    affine: NDArray
    smoothing_fwhm: Fwhm = None

    @property
    def n_volumes(self) -> int:
        return int(self.rows.shape[0])

    def check_source(self, img, *, name: str = "in_file",
                     what: str = "masked_file") -> None:
        """Refuse rows that were not read from ``img``: another grid, another number of
        volumes, or another precision than the one ``img`` is computed in."""
        if self.rows.ndim != 2 or self.rows.shape[1] != int(self.mask.sum()):
            raise ImageError(
                f"{what}: {self.rows.shape} values for a mask of {int(self.mask.sum())} "
                "voxels; expected (volumes, mask voxels)")
        if not same_grid(self.mask.shape, self.affine, img.shape, img.affine):
            raise ImageError(f"{what}: its mask is not on {name}'s grid; expected the matrix "
                             f"read from {name} (NiftiMasker without target grid)")
        if self.n_volumes != n_volumes(img):
            raise ImageError(f"{what}: {self.n_volumes} rows for the {n_volumes(img)} volumes "
                             f"of {name}; expected one row per volume (no volume selection)")
        if np.dtype(self.rows.dtype) != compute_dtype(img):
            raise ImageError(
                f"{what}: {np.dtype(self.rows.dtype)} rows, but {name}'s volumes are computed "
                f"in {compute_dtype(img)}; expected NiftiMasker's dtype='auto' matrix")

    def check_smoothing(self, fwhm: Fwhm, *, what: str = "masked_file") -> None:
        """Refuse a step that asks for another smoothing than the rows got."""
        asked, done = check_fwhm(fwhm), check_fwhm(self.smoothing_fwhm)
        if (asked is None) != (done is None) or (
                asked is not None and not np.array_equal(asked, done)):
            shown = "none" if done is None else f"{done.tolist()} mm"
            wanted = "none" if asked is None else f"{asked.tolist()} mm"
            raise ValueError(f"smoothing_fwhm: {wanted}, but {what} was smoothed with {shown}; "
                             "expected the same smoothing (or leave masked_file unset)")

    def columns(self, voxel_index: NDArray[np.intp], *, what: str = "masked_file"
                ) -> NDArray[np.intp]:
        """The columns of voxels given as flat Fortran-order indices on the run's grid."""
        column_of = np.full(self.mask.size, -1, dtype=np.intp)
        column_of[flat_indices(self.mask)] = np.arange(int(self.mask.sum()))
        columns = column_of[np.asarray(voxel_index, dtype=np.intp)]
        outside = int(np.count_nonzero(columns < 0))
        if outside:
            raise ValueError(
                f"mask_file: {outside} voxels of the regions lie outside the mask of "
                f"{what}, which holds only its mask's voxels; expected that mask (or one "
                "inside it) as mask_file")
        return columns

    def blocks(self, volumes: NDArray[np.intp], columns: NDArray[np.intp], block_rows: int
               ) -> Iterator[tuple[list[NDArray[np.intp]], NDArray]]:
        """Yield blocks of the selected volumes' values at ``columns``: the positions in
        ``volumes`` each row fills and the (rows, columns) block, in the order and with the
        grouping of a streaming pass (distinct volumes in file order, ``block_rows`` at a
        time), so that a reduction over a block sees the same blocks."""
        volumes = np.asarray(volumes, dtype=np.intp)
        order = np.argsort(volumes, kind="stable")
        wanted, starts = np.unique(volumes[order], return_index=True)
        groups = np.split(order, starts[1:]) if wanted.size else []
        # a reader of a file of rows reads each block into one buffer, reused
        reusable = getattr(self.rows, "read", None)
        buffer = (np.empty((min(block_rows, wanted.size), self.rows.shape[1]),
                           dtype=self.rows.dtype) if reusable and wanted.size else None)
        for first in range(0, wanted.size, block_rows):
            chosen = wanted[first:first + block_rows]
            yield groups[first:first + block_rows], self.take(chosen, columns, buffer=buffer)

    def take(self, volumes: NDArray[np.intp], columns: NDArray[np.intp] | None = None, *,
             buffer: NDArray | None = None) -> NDArray:
        """The rows of ``volumes`` (ascending), all columns or ``columns``; a new array.
        ``buffer``: where a reader of a file of rows may read them first (with ``columns``)."""
        rows: list[NDArray] = []
        # consecutive volumes are one slice: one read of a file of rows
        breaks = np.flatnonzero(np.diff(volumes) != 1) + 1
        for run in np.split(volumes, breaks):
            span = slice(int(run[0]), int(run[-1]) + 1)
            if columns is not None and buffer is not None:
                part = self.rows.read(span, out=buffer)
            else:
                part = self.rows[span]
            if columns is not None:
                rows.append(np.asarray(part).take(columns, axis=1))
            else:  # a slice of an array is a view: the caller may work in place
                rows.append(part.copy() if isinstance(self.rows, np.ndarray)
                            else np.asarray(part))
        return rows[0] if len(rows) == 1 else np.concatenate(rows)
