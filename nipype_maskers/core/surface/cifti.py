"""CIFTI-2 files: read and check ``.dtseries``/``.dlabel``/``.dscalar``/``.ptseries``, build them.

A CIFTI-2 file is a NIfTI-2 file whose matrix has two axes (nibabel's ``cifti2_axes``): here
the rows are time points (``SeriesAxis``), label maps (``LabelAxis``) or scalar maps
(``ScalarAxis``), the columns grayordinates (``BrainModelAxis``: surface vertices per structure,
subcortical voxels by ijk) or parcels (``ParcelsAxis``).

On disk the first CIFTI axis varies fastest: a dtseries is stored one grayordinate's whole time
series after the other, so a block of *grayordinates* (columns) is one contiguous read, and a
block of time points is not. :func:`series_data` gives the data as an array without a copy when
the file is uncompressed (a memory map, whose pages :func:`release_pages` gives back after each
block): the file is never held twice, nor even once.

The data and the atlas must describe the same grayordinates: :func:`grayordinate_index` maps each
grayordinate of the data onto the atlas (equal axes, or an atlas that is a superset resolvable by
vertex index and voxel ijk per structure) and says which structure or how many grayordinates
differ otherwise.
"""

from __future__ import annotations

import mmap
import os
from typing import Any, Literal, NamedTuple

import nibabel as nib
import numpy as np
from nibabel import cifti2
from nibabel.cifti2 import cifti2_axes
from numpy.typing import NDArray

from ..io.hashing import watching
from ..io.images import ImageError

__all__ = [
    "CiftiError",
    "CiftiFile",
    "MappedHashing",
    "dtseries_image",
    "grayordinate_index",
    "label_table",
    "load_cifti",
    "parcels_axis",
    "ptseries_image",
    "release_pages",
    "same_grayordinates",
    "series_data",
    "series_t_r",
    "structure_parts",
    "surface_mask",
]

Kind = Literal["dtseries", "dlabel", "dscalar", "ptseries"]

#: What each kind is: its file extension, the class of its row and column axes, a description.
_KINDS: dict[str, tuple[str, type, type, str]] = {
    "dtseries": (".dtseries.nii", cifti2_axes.SeriesAxis, cifti2_axes.BrainModelAxis,
                 "a dense time series (.dtseries.nii: time points x grayordinates)"),
    "dlabel": (".dlabel.nii", cifti2_axes.LabelAxis, cifti2_axes.BrainModelAxis,
               "a dense label atlas (.dlabel.nii: a label map x grayordinates)"),
    "dscalar": (".dscalar.nii", cifti2_axes.ScalarAxis, cifti2_axes.BrainModelAxis,
                "dense maps (.dscalar.nii: maps x grayordinates)"),
    "ptseries": (".ptseries.nii", cifti2_axes.SeriesAxis, cifti2_axes.ParcelsAxis,
                 "a parcellated time series (.ptseries.nii: time points x parcels)"),
}

#: The NIfTI intent of each kind, as Connectome Workbench writes it.
_INTENTS = {"dtseries": "ConnDenseSeries", "ptseries": "ConnParcelSries",
            "dscalar": "ConnDenseScalar", "dlabel": "ConnDenseLabel"}

#: Seconds per unit of a SeriesAxis (CIFTI-2 ``SeriesUnit``); HERTZ/METER/RADIAN are no TR.
_TIME_UNITS = {"SECOND": 1.0}

class CiftiError(ImageError):
    """A CIFTI file that is not what the input expects (kind, axes or grayordinates)."""


def _identify(axes: tuple) -> str | None:
    """The kind of a CIFTI matrix from its axes, or None for another kind."""
    for kind, (_, rows, columns, _) in _KINDS.items():
        if isinstance(axes[0], rows) and isinstance(axes[1], columns):
            return kind
    return None


class CiftiFile(NamedTuple):
    """A CIFTI-2 file as read by :func:`load_cifti`: its two axes and its (lazy) data.

    Lighter than nibabel's ``Cifti2Image`` (whose constructor deep-copies the XML header of a
    91k file, ~0.2 s): the NIfTI-2 data proxy and the axes parsed once.
    """

    path: str | None                 #: the file (None for an image given in memory)
    axes: tuple                      #: (row axis, column axis), nibabel's cifti2_axes
    dataobj: Any                     #: (rows, columns): an ArrayProxy (or array), not read yet

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return tuple(int(n) for n in self.dataobj.shape)


def _read_file(path: str, name: str, expected: str) -> CiftiFile:
    try:  # the NIfTI-2 image and its CIFTI extension, without building a Cifti2Image
        img = nib.Nifti2Image.from_filename(path)
    except Exception:  # not NIfTI-2: let nibabel say what it is
        try:
            img = nib.load(path)
        except Exception as exc:  # nibabel raises many types for unreadable files
            raise CiftiError(f"{name}: cannot read '{path}' ({exc}); expected {expected}"
                             ) from exc
    return _read_image(img, f"'{path}'", name, expected, path=path)


def _read_image(img, shown: str, name: str, expected: str, *, path: str | None = None
                ) -> CiftiFile:
    if isinstance(img, cifti2.Cifti2Image):
        header, dataobj = img.header, img.dataobj
    else:
        extension = None
        if isinstance(img, nib.Nifti2Image):
            extension = next((e for e in img.header.extensions if e.get_code() == 32), None)
        if extension is None:
            raise CiftiError(f"{name}: {shown} is a {type(img).__name__}, not a CIFTI-2 file; "
                             f"expected {expected}")
        try:
            header = extension.get_content()
            shape = header.matrix.get_data_shape()
        except Exception as exc:  # a malformed CIFTI XML header
            raise CiftiError(f"{name}: {shown}: unreadable CIFTI-2 header ({exc}); expected "
                             f"{expected}") from exc
        dataobj = img.dataobj
        if tuple(dataobj.shape[-len(shape):]) != tuple(shape):
            raise CiftiError(f"{name}: {shown}: the data shape {tuple(dataobj.shape)} does not "
                             f"match its CIFTI header {tuple(shape)}; expected {expected}")
        dataobj = dataobj.reshape(shape) if hasattr(dataobj, "reshape") else np.reshape(
            dataobj, shape)
    try:
        axes = tuple(header.get_axis(i) for i in range(len(dataobj.shape)))
    except Exception as exc:  # nibabel cannot make axes of this matrix
        raise CiftiError(f"{name}: {shown}: unsupported CIFTI-2 matrix ({exc}); expected "
                         f"{expected}") from exc
    return CiftiFile(path, axes, dataobj)


def load_cifti(path: str | os.PathLike | cifti2.Cifti2Image | CiftiFile, kind: Kind, *,
               name: str = "in_file") -> CiftiFile:
    """Load a CIFTI-2 file and check that it is of ``kind`` (its axes, not only its name).

    Parameters
    ----------
    path : path, Cifti2Image or CiftiFile
        The file.
    kind : {'dtseries', 'dlabel', 'dscalar', 'ptseries'}
        What the input expects.
    name : str
        The input's name, for the errors.

    Raises
    ------
    CiftiError
        Not a CIFTI-2 file, or a CIFTI file of another kind (e.g. a ``.dscalar.nii`` given as
        BOLD, a ``.ptseries.nii`` or a ``.dtseries.nii`` given as atlas).
    """
    extension, _, _, expected = _KINDS[kind]
    if isinstance(path, CiftiFile):
        found_file, shown = path, f"'{path.path}'" if path.path else "the image"
    elif isinstance(path, cifti2.Cifti2Image):
        found_file, shown = _read_image(path, "the image", name, expected), "the image"
    else:
        shown = f"'{os.fspath(path)}'"
        found_file = _read_file(os.fspath(path), name, expected)
    axes = found_file.axes
    found = _identify(axes) if len(axes) == 2 else None
    if found != kind:
        what = (_KINDS[found][3] if found is not None
                else " x ".join(type(axis).__name__ for axis in axes) + " axes")
        raise CiftiError(f"{name}: {shown} holds {what}; expected {expected} (files named "
                         f"*{extension})")
    return found_file


def series_t_r(img: CiftiFile) -> float | None:
    """The TR in seconds from a dtseries' SeriesAxis (its ``step``), None if not in time units."""
    axis = img.axes[0]
    scale = _TIME_UNITS.get(str(getattr(axis, "unit", "")).upper())
    if scale is None or not axis.step > 0:
        return None
    return float(axis.step) * scale


def label_table(img: CiftiFile, *, name: str = "labels_file"
                ) -> tuple[NDArray[np.int64], dict[int, str]]:
    """A dlabel's single label map (integer key per grayordinate) and its key -> name table.

    Raises
    ------
    CiftiError
        Several label maps, or non-integer keys.
    """
    axis = img.axes[0]
    if len(axis) != 1:
        raise CiftiError(f"{name}: {len(axis)} label maps ({', '.join(axis.name)}); expected a "
                         "dlabel with one label map (split it with wb_command -cifti-merge "
                         "-column)")
    values = np.asarray(img.dataobj[0])
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        bad = ~finite | (values != np.round(np.where(finite, values, 0)))
        if bad.any():
            example = values[np.flatnonzero(bad)[0]].item()
            raise CiftiError(f"{name}: {int(bad.sum())} grayordinates hold non-integer label "
                             f"keys such as {example!r}; expected integer keys of its label "
                             "table")
    elif values.dtype.kind not in "biu":
        raise CiftiError(f"{name}: label keys of dtype {values.dtype}; expected integers")
    table = {int(key): str(entry[0]) for key, entry in axis.label[0].items()}
    return values.astype(np.int64), table


# --------------------------------------------------------------------------- grayordinates


def _structures(axis: cifti2_axes.BrainModelAxis) -> dict[str, tuple[slice, object]]:
    # nibabel gives the last structure slice(start, None): bounded here (arange needs a stop)
    return {name: (slice(*slc.indices(len(axis))), sub)
            for name, slc, sub in axis.iter_structures()}


def surface_mask(axis: cifti2_axes.BrainModelAxis) -> NDArray[np.bool_]:
    """True for the surface vertices of a BrainModelAxis (nibabel's ``surface_mask`` calls a
    Python function per grayordinate: ~0.1 s for 91k)."""
    return np.isin(axis.name, list(axis.nvertices))


def same_grayordinates(a: cifti2_axes.BrainModelAxis, b: cifti2_axes.BrainModelAxis) -> bool:
    """``a == b`` (nibabel's BrainModelAxis equality), vectorized."""
    if len(a) != len(b) or (a.affine is None) != (b.affine is None):
        return False
    if a.affine is not None and not (np.allclose(a.affine, b.affine)
                                     and a.volume_shape == b.volume_shape):
        return False
    # vertex is -1 for voxels and voxel -1 for vertices: whole arrays compare the same
    return (a.nvertices == b.nvertices and np.array_equal(a.name, b.name)
            and np.array_equal(a.vertex, b.vertex) and np.array_equal(a.voxel, b.voxel))


def _short(structure: str) -> str:
    return structure.replace("CIFTI_STRUCTURE_", "")


def structure_parts(structure: str) -> tuple[list[str], str]:
    """A CIFTI structure's name as lower-case words and its side ('L', 'R' or '').

    Examples
    --------
    >>> structure_parts('CIFTI_STRUCTURE_DIENCEPHALON_VENTRAL_LEFT')
    (['diencephalon', 'ventral'], 'L')
    >>> structure_parts('CIFTI_STRUCTURE_BRAIN_STEM')
    (['brain', 'stem'], '')
    """
    words = _short(structure).lower().split("_")
    side = {"left": "L", "right": "R"}.get(words[-1], "")
    return (words[:-1] if side else words), side


def grayordinate_index(data_axis: cifti2_axes.BrainModelAxis,
                       atlas_axis: cifti2_axes.BrainModelAxis, *, data_name: str = "in_file",
                       atlas_name: str = "labels_file", partial: bool = False
                       ) -> NDArray[np.intp]:
    """For each grayordinate of the data, its position in the atlas' BrainModelAxis.

    Equal axes give ``arange``; otherwise every structure of the data must be in the atlas,
    on a surface of the same vertex count (the same resolution) or a voxel grid of the same
    shape and affine, with all its vertices / voxels present there.

    ``partial=True`` (the reports, which only order their rows by parcel) gives -1 for the
    grayordinates the atlas cannot place (a structure it lacks or holds on another surface or
    grid, a vertex or voxel it lacks) instead of raising.

    Raises
    ------
    CiftiError
        Naming the structure and what differs: missing structure, surface resolution, grid,
        or how many vertices / voxels of the data the atlas lacks.
    """
    if same_grayordinates(data_axis, atlas_axis):
        return np.arange(len(data_axis), dtype=np.intp)
    atlas = _structures(atlas_axis)
    missing = [s for s, _ in _structures(data_axis).items() if s not in atlas]
    if missing and not partial:
        raise CiftiError(
            f"{atlas_name}: no grayordinates for {', '.join(map(_short, missing))}, which "
            f"{data_name} has; expected an atlas covering every structure of the data "
            f"({atlas_name} has: {', '.join(map(_short, atlas)) or 'none'})")
    index = np.full(len(data_axis), -1, dtype=np.intp)
    for structure, (slc, sub) in _structures(data_axis).items():
        if structure not in atlas:
            continue
        try:
            index[slc] = _place(structure, sub, *atlas[structure], data_name=data_name,
                                atlas_name=atlas_name, partial=partial)
        except CiftiError:
            if not partial:
                raise
    return index


def _place(structure: str, sub, atlas_slice: slice, atlas_sub, *, data_name: str,
           atlas_name: str, partial: bool) -> NDArray[np.intp]:
    """The atlas positions of one structure's grayordinates (-1: absent, when ``partial``)."""
    short = _short(structure)
    data_surface, atlas_surface = structure in sub.nvertices, structure in atlas_sub.nvertices
    if data_surface != atlas_surface:
        kinds = {True: "surface vertices", False: "voxels"}
        raise CiftiError(f"{atlas_name}: {short} is {kinds[atlas_surface]} in "
                         f"{atlas_name} and {kinds[data_surface]} in {data_name}; "
                         "expected the same grayordinate layout")
    if data_surface:
        n_data, n_atlas = sub.nvertices[structure], atlas_sub.nvertices[structure]
        if n_data != n_atlas:
            raise CiftiError(
                f"{atlas_name}: {short} is a surface of {n_atlas} vertices in {atlas_name} "
                f"and of {n_data} in {data_name}: another resolution (e.g. fsLR 32k vs 59k); "
                "expected an atlas on the data's surface mesh")
        lookup = np.full(n_atlas, -1, dtype=np.intp)
        lookup[atlas_sub.vertex] = np.arange(atlas_slice.start, atlas_slice.stop)
        found = lookup[sub.vertex]
        what = "vertices"
    else:
        if (tuple(sub.volume_shape) != tuple(atlas_sub.volume_shape)
                or not np.allclose(sub.affine, atlas_sub.affine)):
            raise CiftiError(
                f"{atlas_name}: the voxels of {short} are on a grid of shape "
                f"{tuple(atlas_sub.volume_shape)} in {atlas_name} and "
                f"{tuple(sub.volume_shape)} in {data_name} (or the affines differ); "
                "expected the data's voxel grid")
        shape = tuple(sub.volume_shape)
        lookup = np.full(int(np.prod(shape)), -1, dtype=np.intp)
        lookup[np.ravel_multi_index(tuple(atlas_sub.voxel.T), shape)] = np.arange(
            atlas_slice.start, atlas_slice.stop)
        found = lookup[np.ravel_multi_index(tuple(sub.voxel.T), shape)]
        what = "voxels"
    absent = int((found < 0).sum())
    if absent and not partial:
        raise CiftiError(
            f"{atlas_name}: {absent} of the {found.size} {what} of {short} in {data_name} "
            f"are not in {atlas_name} (it has {atlas_slice.stop - atlas_slice.start}); "
            "expected the same grayordinates, or an atlas holding all of the data's")
    return found


# --------------------------------------------------------------------------- data


def series_data(img: CiftiFile) -> NDArray:
    """The (rows, grayordinates) data, memory-mapped when the file allows it.

    An uncompressed, unscaled file gives a read-only memory map (nothing is read until used;
    :func:`release_pages` gives the pages read back to the OS cache); otherwise the array is
    read once.
    """
    proxy = img.dataobj
    offset = getattr(proxy, "offset", None)
    unscaled = getattr(proxy, "slope", 1.0) == 1.0 and getattr(proxy, "inter", 0.0) == 0.0
    if (img.path is not None and img.path.endswith(".nii") and offset is not None
            and unscaled and getattr(proxy, "order", "F") == "F"):
        return np.memmap(img.path, dtype=proxy.dtype, mode="r", offset=int(offset),
                         shape=img.shape, order="F")
    return np.asanyarray(proxy)


def release_pages(data: NDArray) -> None:
    """Drop the pages of a :func:`series_data` memory map from this process (not from the OS
    cache): memory then stays at one block however large the file."""
    mapping = getattr(data, "_mmap", None)
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


class MappedHashing:
    """Feed the digests :func:`~..io.hashing.hash_reads` opened on a CIFTI file with the bytes
    of its :func:`series_data` memory map, in file order, while the maskers read it.

    The maskers read blocks of grayordinates in parcel order, not in file order; SHA-256
    needs the bytes in order, so :meth:`upto` hashes the file's next share from the mapped
    pages (in the OS cache: no second read from disk, memory released as it goes). The
    header (before the data) is read once, here. Nothing happens when no digest is asked
    for or the data are not memory-mapped (the digest then reads the file itself).
    """

    #: Bytes hashed between two releases of the mapped pages.
    _CHUNK = 1 << 24

    def __init__(self, img: CiftiFile, data: NDArray) -> None:
        mapped = isinstance(data, np.memmap) and img.path is not None
        self._digests = watching(img.path) if mapped else []
        if not self._digests:
            return
        self._data, self._offset = data, int(data.offset)
        self._bytes = data.T.reshape(-1).view(np.uint8)  # file order (Fortran order on disk)
        with open(img.path, "rb") as stream:
            header = stream.read(self._offset)
        for digest in self._digests:
            digest.feed(0, header)

    def upto(self, fraction: float) -> None:
        """Hash the data up to ``fraction`` (0 to 1) of their bytes."""
        if not self._digests:
            return
        stop = self._offset + round(self._bytes.size * min(fraction, 1.0))
        for digest in self._digests:
            start = digest.hashed
            while self._offset <= start < stop:
                end = min(stop, start + self._CHUNK)
                digest.feed(start, self._bytes[start - self._offset:end - self._offset])
                release_pages(self._data)
                if digest.hashed != end:  # a digest already final takes no more
                    break
                start = end


# --------------------------------------------------------------------------- writers


def _image(data: NDArray, axes: tuple, kind: Kind) -> cifti2.Cifti2Image:
    img = cifti2.Cifti2Image(np.asarray(data), header=axes)
    img.nifti_header.set_intent(_INTENTS[kind], name=_INTENTS[kind])  # as Workbench
    return img


def dtseries_image(data: NDArray, brain_models: cifti2_axes.BrainModelAxis, *,
                   step: float = 1.0, start: float = 0.0) -> cifti2.Cifti2Image:
    """A ``.dtseries.nii`` image: ``data`` (time points, grayordinates) on ``brain_models``."""
    data = np.atleast_2d(data)
    series = cifti2_axes.SeriesAxis(start=start, step=step, size=data.shape[0], unit="SECOND")
    return _image(data, (series, brain_models), "dtseries")


def parcels_axis(brain_models: cifti2_axes.BrainModelAxis, keys: NDArray[np.int64],
                 labels: NDArray[np.int64], names: list[str]) -> cifti2_axes.ParcelsAxis:
    """One parcel per label of ``labels`` (named ``names``): its grayordinates in ``keys``.

    ``keys`` holds the label of each grayordinate of ``brain_models``. As Workbench's
    ``-cifti-parcellate`` writes it: vertices ascending per structure, voxels in (k, j, i)
    order (nibabel's ``from_brain_models`` keeps the axis order and is ~10x slower).
    """
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    bounds = np.searchsorted(sorted_keys, np.stack([labels, labels]), side="left")
    bounds[1] = np.searchsorted(sorted_keys, labels, side="right")
    surface = surface_mask(brain_models)
    voxels = np.empty(len(labels), dtype=object)
    vertices = np.empty(len(labels), dtype=object)
    nvertices: dict[str, int] = {}
    has_voxels = False
    for j, (start, stop) in enumerate(bounds.T.tolist()):
        members = order[start:stop]  # ascending grayordinates of this label
        on_surface = surface[members]
        ijk = brain_models.voxel[members[~on_surface]]
        voxels[j] = ijk[np.lexsort(ijk.T)] if ijk.size else np.zeros((0, 3), dtype=int)
        has_voxels |= bool(ijk.size)
        members, structures = members[on_surface], brain_models.name[members[on_surface]]
        vertices[j] = {}
        for structure in dict.fromkeys(structures.tolist()):
            vertices[j][structure] = brain_models.vertex[members[structures == structure]]
            nvertices[structure] = brain_models.nvertices[structure]
    return cifti2_axes.ParcelsAxis(
        names, voxels, vertices, brain_models.affine if has_voxels else None,
        brain_models.volume_shape if has_voxels else None, nvertices)


def ptseries_image(signals: NDArray, parcels: cifti2_axes.ParcelsAxis, *, step: float = 1.0,
                   start: float = 0.0) -> cifti2.Cifti2Image:
    """A ``.ptseries.nii`` image: ``signals`` (time points, parcels)."""
    signals = np.atleast_2d(signals)
    series = cifti2_axes.SeriesAxis(start=start, step=step, size=signals.shape[0], unit="SECOND")
    return _image(signals, (series, parcels), "ptseries")
