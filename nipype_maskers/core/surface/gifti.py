"""GIFTI hemisphere pairs: read, check and build them (time series, labels, maps, masks).

A *pair* is ``[left, right]``: two GIFTI files of one surface space, in nilearn's vertex order
(the left hemisphere's vertices, then the right's). Each file says its hemisphere in its
``AnatomicalStructurePrimary`` meta data (``CortexLeft`` / ``CortexRight``, as fMRIPrep and
Workbench write it, in the image's or the first data array's meta data).

How a file's hemisphere is decided (the order of a pair is never guessed):

1. ``AnatomicalStructurePrimary`` when present;
2. else the BIDS ``hemi-L`` / ``hemi-R`` entity of the file name, or FreeSurfer's ``lh.`` /
   ``rh.`` prefix;
3. when both are present they must agree; when neither is, the pair is refused: a swapped
   pair gives plausible but wrong numbers that nothing downstream could detect, and the fix
   (rename the file, or set the meta data) takes seconds.

Time series (``.func.gii``) hold one data array per volume (``NIFTI_INTENT_TIME_SERIES``);
a single 2D array (vertices x volumes) is read too. :class:`.gifti_series.SeriesPair` streams
them (:mod:`.gifti_stream`: each data array is decoded when its turn comes, gathered, and
dropped), so a time series is never whole in memory; files the stream does not read (ASCII,
external data, a 2D array) are loaded by nibabel and released array by array. Atlases, maps
and masks are small and loaded by nibabel.

TR: the data arrays' ``TimeStep`` meta data. FreeSurfer's gifticlib (``mri_vol2surf``, which
fMRIPrep runs) writes ``mri->tr``, in **milliseconds**; nibabel's test file from fMRIPrep
(``task.func.gii``) holds ``TimeStep = 0.000000``, i.e. no TR. Values of 100 or more are read
as milliseconds, smaller positive ones as seconds (no BOLD TR is under 0.1 s or over 100 s, so
the two never meet; the reports read it the same way). 0, missing, or values that differ
between the two files give no TR: the ``t_r`` input (or the BIDS sidecar's RepetitionTime)
must then say it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiLabel, GiftiLabelTable, GiftiMetaData
from numpy.typing import NDArray

__all__ = [
    "HEMISPHERES",
    "STRUCTURES",
    "check_pair_paths",
    "hemisphere_of",
    "load_gifti",
    "read_labels_pair",
    "read_maps_pair",
    "read_mask_pair",
    "series_t_r",
    "split_pair",
    "t_r_from_time_steps",
    "values_image",
]

#: Hemisphere codes in nilearn's vertex order.
HEMISPHERES = ("L", "R")
#: ``AnatomicalStructurePrimary`` of each hemisphere.
STRUCTURES = {"L": "CortexLeft", "R": "CortexRight"}
_FROM_STRUCTURE = {value.lower(): key for key, value in STRUCTURES.items()}
_HEMI_ENTITY = re.compile(r"(?:^|_)hemi-([LR])(?:_|\.)")
_FREESURFER_PREFIX = re.compile(r"^([lr])h\.")
_INTENT_LABEL = "NIFTI_INTENT_LABEL"
_INTENT_SERIES = "NIFTI_INTENT_TIME_SERIES"
#: expat's text buffer when nibabel loads a file (its default, 35 MB, is allocated per load).
_PARSER_BUFFER = 1 << 20
#: TimeStep values from this one up are milliseconds, smaller ones seconds.
_MIN_TIME_STEP_MS = 100.0


def load_gifti(path: str | os.PathLike, *, name: str) -> GiftiImage:
    """A GIFTI image, or a ValueError naming the input and saying what is expected."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{name}: {path} does not exist; expected a GIFTI file (.gii)")
    try:
        if path.name.endswith(".gii"):  # nibabel's default expat buffer is 35 MB
            img = GiftiImage.from_filename(str(path), buffer_size=_PARSER_BUFFER)
        else:
            img = nib.load(str(path))  # to say what the file is instead
    except Exception as exc:  # nibabel raises many types for a bad or foreign file
        raise ValueError(f"{name}: {path.name} could not be read as GIFTI ({exc}); expected "
                         "a GIFTI file (.func.gii, .label.gii, .shape.gii)") from None
    if not isinstance(img, GiftiImage):
        raise ValueError(f"{name}: {path.name} is a {type(img).__name__}, not GIFTI; expected "
                         "a pair of GIFTI files (.gii), left then right")
    if not img.darrays:
        raise ValueError(f"{name}: {path.name} holds no data array; expected GIFTI data")
    return img


def _structure(img: GiftiImage) -> str | None:
    for meta in (img.meta, img.darrays[0].meta):
        value = (meta or {}).get("AnatomicalStructurePrimary")
        if value:
            return str(value)
    return None


def hemisphere_of(img: GiftiImage, path: str | os.PathLike, *, name: str) -> str:
    """'L' or 'R': from ``AnatomicalStructurePrimary``, else from the file name.

    Raises a ValueError when the two disagree, when the structure is not a cortex, or when
    neither says it (see the module docstring for why the pair is then refused).
    """
    return _hemisphere(_structure(img), Path(path).name, name=name)


def _hemisphere(structure: str | None, filename: str, *, name: str) -> str:
    match = _HEMI_ENTITY.search(filename) or _FREESURFER_PREFIX.match(filename)
    from_name = match.group(1).upper() if match else None
    if structure is not None:
        hemi = _FROM_STRUCTURE.get(structure.lower())
        if hemi is None:
            raise ValueError(f"{name}: {filename} is AnatomicalStructurePrimary={structure}; "
                             "expected CortexLeft or CortexRight")
        if from_name is not None and from_name != hemi:
            raise ValueError(f"{name}: {filename} is named hemi-{from_name} but its "
                             f"AnatomicalStructurePrimary is {structure}; expected both to "
                             "name the same hemisphere")
        return hemi
    if from_name is None:
        raise ValueError(
            f"{name}: {filename} does not say its hemisphere; expected the meta data "
            "AnatomicalStructurePrimary=CortexLeft|CortexRight or 'hemi-L'/'hemi-R' in the "
            "file name (the order of a pair is never guessed)"
        )
    return from_name


def check_pair_paths(paths, *, name: str) -> list[str]:
    """A pair of paths as a list of 2 str, or a ValueError saying what is expected."""
    if isinstance(paths, (str, os.PathLike)):
        raise ValueError(f"{name}: one file ({Path(paths).name}); expected a pair of GIFTI "
                         "files, [left hemisphere, right hemisphere]")
    paths = [os.fspath(p) for p in paths]
    if len(paths) != 2:
        raise ValueError(f"{name}: {len(paths)} files; expected a pair of GIFTI files, "
                         "[left hemisphere, right hemisphere]")
    return paths


def _check_order(hemis: list[str], paths: Sequence[str], *, name: str) -> None:
    if hemis != list(HEMISPHERES):
        names = [Path(p).name for p in paths]
        what = "swapped" if hemis == ["R", "L"] else f"both {hemis[0]}"
        raise ValueError(f"{name}: the pair is {what} ({names[0]} is {hemis[0]}, {names[1]} "
                         f"is {hemis[1]}); expected [left hemisphere, right hemisphere]")


def _load_pair(paths, *, name: str) -> list[GiftiImage]:
    """Load and order-check a pair (small files: atlases, maps, masks): left, then right."""
    paths = check_pair_paths(paths, name=name)
    imgs = [load_gifti(path, name=name) for path in paths]
    _check_order([hemisphere_of(img, path, name=name)
                  for img, path in zip(imgs, paths, strict=True)], paths, name=name)
    return imgs


def _vector(darray: GiftiDataArray, *, name: str, filename: str, index: int) -> NDArray:
    data = np.asarray(darray.data)
    if data.ndim == 2 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim != 1:
        raise ValueError(f"{name}: {filename} data array {index} has shape {data.shape}; "
                         "expected one value per vertex")
    if data.dtype.kind not in "biuf":
        raise ValueError(f"{name}: {filename} data array {index} has dtype {data.dtype}; "
                         "expected numbers")
    return data


def _single_vector(img: GiftiImage, *, name: str, filename: str, what: str) -> NDArray:
    if len(img.darrays) != 1:
        raise ValueError(f"{name}: {filename} holds {len(img.darrays)} data arrays; expected "
                         f"one ({what}, one value per vertex)")
    return _vector(img.darrays[0], name=name, filename=filename, index=0)


def _check_sizes(sizes: Sequence[int], other: Sequence[int], *, name: str, other_name: str):
    for hemi, n, m in zip(HEMISPHERES, sizes, other, strict=True):
        if n != m:
            raise ValueError(f"{name}: {n} vertices in the {hemi} hemisphere, {other_name} "
                             f"{m}; expected the same surface (same vertex count)")


def t_r_from_time_steps(steps: Sequence[str | None]) -> float | None:
    """The TR in seconds from ``TimeStep`` values (ms from 100 up, else seconds; see the
    module docstring), or None when they are missing, 0 or not all equal."""
    if len(set(steps)) != 1:
        return None
    try:
        value = float(steps[0])
    except (TypeError, ValueError):
        return None
    if not np.isfinite(value) or value <= 0:
        return None
    return value / 1000.0 if value >= _MIN_TIME_STEP_MS else value


def series_t_r(imgs: Sequence[GiftiImage]) -> float | None:
    """The TR in seconds from loaded images' data arrays' ``TimeStep`` (all equal), or None."""
    return t_r_from_time_steps([(d.meta or {}).get("TimeStep") for img in imgs
                                for d in img.darrays])


def read_labels_pair(paths, *, name: str = "labels_file", sizes: Sequence[int] | None = None
                     ) -> tuple[NDArray[np.int64], list[dict[int, str]], tuple[int, int]]:
    """Integer labels of a pair, concatenated left then right, and each file's label table.

    ``.label.gii`` (``NIFTI_INTENT_LABEL`` with a LabelTable) or integer-valued
    ``.func.gii``/``.shape.gii``; one data array per file. Floats must hold integers
    (NaN is background). ``sizes``: the data's vertex counts, checked.
    """
    paths = check_pair_paths(paths, name=name)
    values, tables = [], []
    for img, path in zip(_load_pair(paths, name=name), paths, strict=True):
        filename = Path(path).name
        data = _single_vector(img, name=name, filename=filename, what="integer labels")
        if data.dtype.kind == "f":
            finite = np.isfinite(data)
            bad = finite & (data != np.round(data))
            if bad.any():
                example = data[np.flatnonzero(bad)[0]].item()
                raise ValueError(f"{name}: {filename} holds {int(bad.sum())} non-integer "
                                 f"labels such as {example!r}; expected integer labels")
            data = np.where(finite, data, 0)
        values.append(data.astype(np.int64))
        table = img.labeltable.get_labels_as_dict() if img.labeltable else {}
        tables.append({int(k): str(v) for k, v in table.items()})
    found = tuple(int(v.size) for v in values)
    if sizes is not None:
        _check_sizes(sizes, found, name="in_file", other_name=f"{name} has")
    return np.concatenate(values), tables, found


def read_mask_pair(paths, *, name: str = "mask_file", sizes: Sequence[int] | None = None
                   ) -> tuple[NDArray[np.bool_], tuple[int, int]]:
    """A vertex mask of a pair, left then right (finite non-zero values are in), and the
    vertices of each hemisphere."""
    paths = check_pair_paths(paths, name=name)
    parts = []
    for img, path in zip(_load_pair(paths, name=name), paths, strict=True):
        data = _single_vector(img, name=name, filename=Path(path).name, what="a mask")
        parts.append(np.isfinite(data) & (data != 0) if data.dtype.kind == "f" else data != 0)
    if sizes is not None:
        _check_sizes(sizes, [p.size for p in parts], name="in_file",
                     other_name=f"{name} has")
    return np.concatenate(parts), (int(parts[0].size), int(parts[1].size))


def read_maps_pair(paths, *, name: str = "maps_file", sizes: Sequence[int] | None = None
                   ) -> tuple[NDArray[np.floating], tuple[int, int]]:
    """Maps of a pair, shape (vertices, maps), left then right (one map per data array), and
    the vertices of each hemisphere."""
    paths = check_pair_paths(paths, name=name)
    parts = []
    for img, path in zip(_load_pair(paths, name=name), paths, strict=True):
        filename = Path(path).name
        if len(img.darrays) == 1 and np.ndim(img.darrays[0].data) == 2:
            part = np.asarray(img.darrays[0].data)
        else:
            columns = [_vector(d, name=name, filename=filename, index=i)
                       for i, d in enumerate(img.darrays)]
            if len({c.size for c in columns}) > 1:
                raise ValueError(f"{name}: {filename} has data arrays of different lengths "
                                 f"{sorted({c.size for c in columns})}; expected one value "
                                 "per vertex in every map")
            part = np.stack(columns, axis=1)
        if part.dtype.kind not in "f":
            part = part.astype(np.float32)
        parts.append(part)
    if parts[0].shape[1] != parts[1].shape[1]:
        raise ValueError(f"{name}: {parts[0].shape[1]} maps in the left file, "
                         f"{parts[1].shape[1]} in the right; expected the same maps in both")
    if sizes is not None:
        _check_sizes(sizes, [p.shape[0] for p in parts], name="in_file",
                     other_name=f"{name} has")
    return np.concatenate(parts, axis=0), (int(parts[0].shape[0]), int(parts[1].shape[0]))


def split_pair(values: NDArray, sizes: Sequence[int]) -> tuple[NDArray, NDArray]:
    """Split an array over both hemispheres (first axis) into left and right."""
    return values[:sizes[0]], values[sizes[0]:sizes[0] + sizes[1]]


def values_image(columns: NDArray, hemi: str, *, intent: str = _INTENT_SERIES,
                 t_r: float | None = None, label_table: dict[int, str] | None = None
                 ) -> GiftiImage:
    """A GIFTI image of one hemisphere: one data array per column of ``columns``.

    ``columns`` has shape (vertices,) or (vertices, n); ``t_r`` (seconds) becomes each array's
    ``TimeStep`` (ms); ``label_table`` {key: name} makes a label image.
    """
    columns = np.asarray(columns)
    if columns.ndim == 1:
        columns = columns[:, None]
    meta = GiftiMetaData({"AnatomicalStructurePrimary": STRUCTURES[hemi]})
    darray_meta = {} if t_r is None else {"TimeStep": f"{t_r * 1000.0:.6f}"}
    img = GiftiImage(meta=meta)
    if label_table is not None:
        table = GiftiLabelTable()
        for key, label_name in sorted(label_table.items()):
            label = GiftiLabel(key=int(key))
            label.label = label_name
            table.labels.append(label)
        img.labeltable = table
    for k in range(columns.shape[1]):
        img.add_gifti_data_array(GiftiDataArray(
            np.ascontiguousarray(columns[:, k]), intent=intent,
            datatype=columns.dtype, meta=GiftiMetaData(darray_meta),
        ))
    return img
