"""Surface maskers as interfaces: GIFTI hemisphere pairs to vertex or region signals.

Every input that is a pair (``in_file``, ``mask_file``, ``labels_file``, ``maps_file``) is
``[left, right]``; each file must say its hemisphere (``AnatomicalStructurePrimary``, else
``hemi-L``/``hemi-R`` in its name) and a pair in the wrong order is an error, never guessed
(:mod:`nipype_maskers.core.surface.gifti`). Outputs are named after the left file with the
``hemi`` entity dropped, and written only once everything is computed.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack

import numpy as np
from nipype.interfaces.base import (
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..core.io.hashing import hash_reads
from ..core.io.tables import format_table
from ..core.regions.label_names import read_lut
from ..core.surface import gifti_maskers
from ..core.surface.gifti import HEMISPHERES, split_pair, values_image
from ..core.surface.gifti_series import read_series_pair
from ..files import write_bytes, write_text
from .base import (
    CensoredSpecMixin,
    CleanSpecMixin,
    MaskersInputSpec,
    VolumeSelection,
    clean_args_from,
    defined,
    parse_volumes,
)
from .io import output_path, read_masked_matrix, save_masked_matrix
from .regions import _expected_names, _with_censored_rows

#: The columns of a surface region masker's ``regions_file``.
SURFACE_REGIONS_COLUMNS = ("index", "name", "vertex_count", "coverage")


def pair_trait(desc: str, **kwargs):
    """A ``[left, right]`` pair of existing files (one file is accepted here and refused by
    the core with a message saying a pair is expected)."""
    return InputMultiObject(File(exists=True), desc=desc, **kwargs)


class _SurfaceInputSpec(MaskersInputSpec, CleanSpecMixin, CensoredSpecMixin):
    in_file = pair_trait("[hemi-L, hemi-R] BOLD time series (.func.gii, one data array per "
                         "volume)", mandatory=True)
    mask_file = pair_trait("[hemi-L, hemi-R] vertex masks (.shape.gii/.func.gii/.label.gii): "
                           "vertices outside them are left out")
    volumes = VolumeSelection(
        desc="volumes to use: an index, a list of indices or booleans, or 'start:stop[:step]'",
    )
    dtype = traits.Enum("float32", "float64", usedefault=True,
                        desc="precision of the extracted signals")


class _SurfaceOutputSpec(TraitedSpec):
    t_r = traits.Either(None, traits.Float, desc="the TR used for cleaning")
    t_r_source = traits.Str(desc="where t_r came from: 'input t_r', 'GIFTI TimeStep' or ''")
    volumes = traits.List(traits.Int, desc="the input volume of each output row")
    in_file_sha256 = traits.List(
        traits.Str, desc="[hemi-L, hemi-R] SHA-256 (hex) of each in_file, computed while it was "
        "streamed (no second read)",
    )


def _hash_pair(stack: ExitStack, paths, known: list[str] | None = None) -> list:
    """A :func:`~..core.io.hashing.hash_reads` digest per file of the pair, fed by the stream
    that reads it (a file nibabel loads instead is read again at ``hexdigest``); ``known``:
    the pair's digests already known (from the read that made its matrix)."""
    known = known or [None] * len(paths)
    return [stack.enter_context(hash_reads(path, known=digest))
            for path, digest in zip(paths, known, strict=True)]


def _open_series(inputs):
    """The pair of time series and the cleaning arguments (``t_r``: input, else TimeStep)."""
    series = read_series_pair(list(inputs.in_file), name="in_file")
    try:
        clean_args, provenance = clean_args_from(inputs, header_t_r=series.t_r)
    except BaseException:
        series.close()  # the maskers close it once they have read it
        raise
    if provenance.get("RepetitionTimeSource") == "NIfTI header":
        provenance["RepetitionTimeSource"] = "GIFTI TimeStep"
    return series, clean_args, provenance


def _pair(value):
    return None if not isdefined(value) else list(value)


#: The ``masked_file`` input of the GIFTI region maskers.
MASKED_PAIR_DESC = (
    "in_file already read: SurfaceMasker's out_file of in_file (all_vertices=True, "
    "dtype='auto', no cleaning, every volume). Its rows are read instead of decoding the "
    "pair again: the same numbers, bit for bit. in_file's headers (first data arrays) still "
    "give the sizes, the TimeStep and the output names")


class _SurfaceMaskerInputSpec(_SurfaceInputSpec):
    dtype = traits.Enum(
        "float32", "float64", "auto", usedefault=True,
        desc="output matrix dtype; 'auto': the pair's precision (float64 data stay float64, "
        "else float32), what masked_file readers expect")
    all_vertices = traits.Bool(
        False, usedefault=True,
        desc="keep every vertex, finite or not, instead of nilearn's computed mask (not with "
        "mask_file): the pair read once, for the region maskers' masked_file")


class _SurfaceMaskerOutputSpec(_SurfaceOutputSpec):
    out_file = File(desc=".npy float32/float64, volumes x vertices in the mask, left then "
                    "right; after the array (numpy.load stops before it) the file describes "
                    "the pair it holds, for the region maskers that take it as masked_file")
    mask_file = traits.List(File(), desc="[hemi-L, hemi-R] the masks used (.shape.gii, 0/1)")


def _auto_dtype(series) -> np.dtype:
    """'auto': the precision the region maskers compute the pair's values in (float16 data
    become float32, exactly)."""
    return np.result_type(series.dtype, np.float32)


class SurfaceMasker(SimpleInterface):
    """nilearn's ``SurfaceMasker.fit_transform``: the vertex time series of a GIFTI pair.

    Without ``mask_file`` the vertices whose values are finite in every volume are kept
    (nilearn's computed mask; ``all_vertices``: every vertex); ``mask_file`` (output) holds
    the masks used either way.

    The matrix is also the pair read once for the region maskers: with ``all_vertices``,
    ``dtype='auto'``, no cleaning and every volume, SurfaceLabelsMasker and SurfaceMapsMasker
    take it as ``masked_file`` and read its rows instead of decoding the pair again (base64,
    zlib and XML: most of a GIFTI masker's time). The file says what it holds after the array.
    """

    input_spec = _SurfaceMaskerInputSpec
    output_spec = _SurfaceMaskerOutputSpec

    def _run_interface(self, runtime):
        with ExitStack() as stack:
            digests = _hash_pair(stack, self.inputs.in_file)
            series, clean_args, provenance = _open_series(self.inputs)
            dtype = _auto_dtype(series) if self.inputs.dtype == "auto" else self.inputs.dtype
            result = gifti_maskers.surface_masker(
                series, mask=_pair(self.inputs.mask_file),
                volumes=parse_volumes(defined(self.inputs.volumes)), dtype=dtype,
                clean_args=clean_args, all_vertices=self.inputs.all_vertices,
            )
        signals, volumes = result.signals, result.volumes
        if self.inputs.censored == "nan":
            signals, volumes = _with_censored_rows(result, series.n_volumes,
                                                   parse_volumes(defined(self.inputs.volumes)))
        source = self.inputs.in_file[0]
        masks = [values_image(part.astype(np.uint8), hemi, intent="NIFTI_INTENT_NONE")
                 for part, hemi in zip(split_pair(result.mask, result.sizes), HEMISPHERES,
                                       strict=True)]
        mask_paths = [output_path(path, runtime.cwd, suffix="mask", extension=".shape.gii")
                      for path in self.inputs.in_file]
        out = output_path(source, runtime.cwd, hemi=None, suffix="signals", extension=".npy")
        self._results["in_file_sha256"] = [digest.hexdigest() for digest in digests]
        self._results["mask_file"] = [str(write_bytes(img.to_xml(), path))
                                      for img, path in zip(masks, mask_paths, strict=True)]
        self._results["out_file"] = str(save_masked_matrix(
            signals, out, mask=None if result.mask.all() else result.mask, affine=None,
            source=list(self.inputs.in_file), source_sha256=self._results["in_file_sha256"],
            all_volumes=np.array_equal(volumes, np.arange(series.n_volumes)),
            cleaned=bool(clean_args)))
        self._results["t_r"] = provenance.get("RepetitionTime")
        self._results["t_r_source"] = provenance.get("RepetitionTimeSource", "")
        self._results["volumes"] = [int(v) for v in volumes]
        return runtime


class _SurfaceRegionsOutputSpec(_SurfaceOutputSpec):
    out_file = File(desc="region signals: TSV, header = region names, one row per kept volume")
    regions_file = File(desc="TSV: index, name, vertex_count, coverage per region")


class _SurfaceRegionsInputSpec(_SurfaceInputSpec):
    min_coverage = traits.Range(
        0.0, 1.0, desc="regions with a smaller fraction of their vertices kept become n/a"
    )
    drop_empty = traits.Bool(
        False, usedefault=True,
        desc="drop empty regions' columns, as nilearn does (default: keep them as n/a)",
    )
    masked_file = File(exists=True, desc=MASKED_PAIR_DESC)


def _masked_pair(inputs) -> tuple[object | None, list[str] | None]:
    """SurfaceMasker's matrix of the pair (its rows, on demand) and the pair's digests from
    its trailer, or (None, None) without ``masked_file``; a matrix of some vertices only is
    refused (see :func:`~.io.read_masked_matrix` for the other refusals)."""
    if not isdefined(inputs.masked_file):
        return None, None
    rows, fields, mask = read_masked_matrix(inputs.masked_file, list(inputs.in_file),
                                            writer="SurfaceMasker")
    if mask is not None:
        raise ValueError(
            f"masked_file: {int(mask.sum())} of the pair's {mask.size} vertices (a mask_file, "
            "or nilearn's computed mask dropped non-finite vertices); expected every vertex "
            "(SurfaceMasker with all_vertices=True)")
    return rows, [str(digest) for digest in fields["SourceSHA256"]]


class _SurfaceRegionMasker(SimpleInterface):
    """Shared run: the pair in, the two TSVs out; subclasses call their core."""

    output_spec = _SurfaceRegionsOutputSpec
    _kind = ""

    def _extract(self, series, common):  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_interface(self, runtime):
        rows, masked_digests = _masked_pair(self.inputs)
        with ExitStack() as stack:
            # hashed as it is streamed; the matrix knows them from its own read
            digests = _hash_pair(stack, self.inputs.in_file, known=masked_digests)
            series, clean_args, provenance = _open_series(self.inputs)
            if rows is not None:  # only the headers (first data arrays) were decoded
                stack.callback(series.close)
                series.rows_from(rows)
            common = {
                "mask": _pair(self.inputs.mask_file),
                "volumes": parse_volumes(defined(self.inputs.volumes)),
                "dtype": self.inputs.dtype,
                "clean_args": clean_args,
                "min_coverage": defined(self.inputs.min_coverage),
                "drop_empty": self.inputs.drop_empty,
            }
            n_volumes = series.n_volumes
            result = self._extract(series, common)
        signals, volumes = result.signals, result.volumes
        if self.inputs.censored == "nan":
            signals, volumes = _with_censored_rows(result, n_volumes, common["volumes"])
        source = self.inputs.in_file[0]
        out = output_path(source, runtime.cwd, hemi=None, desc=self._kind,
                          suffix="timeseries", extension=".tsv")
        regions = output_path(source, runtime.cwd, hemi=None, desc=self._kind,
                              suffix="regions", extension=".tsv")
        rows = zip(np.asarray(result.ids).tolist(), result.names,
                   np.asarray(result.sizes).tolist(), np.asarray(result.coverage).tolist(),
                   strict=True)
        regions_text = format_table(SURFACE_REGIONS_COLUMNS,
                                    [(int(i), name, int(n), float(c)) for i, name, n, c in rows],
                                    name="regions_file")
        signals_text = format_table(result.names, np.atleast_2d(signals), name="out_file")
        self._results["regions_file"] = str(write_text(regions_text, regions))
        self._results["out_file"] = str(write_text(signals_text, out))
        self._results["t_r"] = provenance.get("RepetitionTime")
        self._results["t_r_source"] = provenance.get("RepetitionTimeSource", "")
        self._results["volumes"] = [int(v) for v in volumes]
        self._results["in_file_sha256"] = [digest.hexdigest() for digest in digests]
        return runtime


class _SurfaceLabelsInputSpec(_SurfaceRegionsInputSpec):
    labels_file = pair_trait(
        "[hemi-L, hemi-R] labels: .label.gii (names from their label tables), or integer "
        ".func.gii/.shape.gii", mandatory=True,
    )
    labels = traits.List(traits.Str, xor=["lut_file"],
                         desc="region names in ascending label order (one per region, or one "
                         "per label value with the background's at its position)")
    lut_file = File(exists=True, xor=["labels"],
                    desc="BIDS dseg.tsv look-up table with 'index' and 'name' columns")
    background_label = traits.Int(0, usedefault=True, desc="the label of 'no region'")
    strategy = traits.Enum(
        "mean", "median", "sum", "minimum", "maximum", "standard_deviation", "variance",
        usedefault=True, desc="reduction over each region's vertices",
    )


class SurfaceLabelsMasker(_SurfaceRegionMasker):
    """nilearn's ``SurfaceLabelsMasker.fit_transform``: one signal per label of a pair.

    A label value used in both hemispheres is one region (nilearn's reading of a pair).
    """

    input_spec = _SurfaceLabelsInputSpec
    _kind = "labels"

    def _extract(self, series, common):
        lut = read_lut(self.inputs.lut_file) if isdefined(self.inputs.lut_file) else None
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="labels has ", category=UserWarning)
            try:
                return gifti_maskers.surface_labels_masker(
                    series, list(self.inputs.labels_file),
                    background_label=self.inputs.background_label,
                    strategy=self.inputs.strategy, names=defined(self.inputs.labels), lut=lut,
                    **common,
                )
            except UserWarning as exc:
                counts = str(exc).split(";")[0]
                raise ValueError(f"{counts}; {_expected_names(counts)}") from None


class _SurfaceMapsInputSpec(_SurfaceRegionsInputSpec):
    maps_file = pair_trait("[hemi-L, hemi-R] maps (.func.gii, one map per data array, the same "
                           "maps in both)", mandatory=True)
    labels = traits.List(traits.Str, desc="one name per map (default: the map's index)")
    allow_overlap = traits.Bool(True, usedefault=True,
                                desc="allow maps to overlap (False: error naming the pair)")


class SurfaceMapsMasker(_SurfaceRegionMasker):
    """nilearn's ``SurfaceMapsMasker.fit_transform``: least-squares signals of the maps."""

    input_spec = _SurfaceMapsInputSpec
    _kind = "maps"

    def _extract(self, series, common):
        return gifti_maskers.surface_maps_masker(
            series, list(self.inputs.maps_file), allow_overlap=self.inputs.allow_overlap,
            names=defined(self.inputs.labels), **common,
        )


def _is_pair(value) -> bool:
    return isdefined(value) and isinstance(value, (list, tuple))


def gifti_signals_images(signals: np.ndarray, inputs, cwd) -> list[str] | None:
    """SignalsToImage for GIFTI pairs: the two ``.func.gii`` written, or None (not a pair).

    ``labels_file`` pair: labels painted; ``maps_file`` pair: maps weighted; only a
    ``mask_file`` pair: SurfaceMasker's ``.npy`` back on its mask. Both images are built
    before either is written; ``t_r`` (if set) becomes the arrays' ``TimeStep``.
    """
    labels, maps, mask = inputs.labels_file, inputs.maps_file, inputs.mask_file
    if not (_is_pair(labels) or _is_pair(maps) or _is_pair(mask)):
        return None
    for name, value in (("labels_file", labels), ("maps_file", maps), ("mask_file", mask)):
        if isdefined(value) and not _is_pair(value):
            raise ValueError(f"{name}: one file; expected a [hemi-L, hemi-R] GIFTI pair like "
                             "the other atlas inputs")
    t_r = defined(inputs.t_r)
    mask = _pair(mask)
    if _is_pair(labels):
        imgs = gifti_maskers.labels_pair_images(signals, list(labels), mask=mask,
                                                background_label=inputs.background_label,
                                                t_r=t_r)
    elif _is_pair(maps):
        imgs = gifti_maskers.maps_pair_images(signals, list(maps), mask=mask, t_r=t_r)
    else:
        imgs = gifti_maskers.vertices_pair_images(signals, mask, t_r=t_r)
    return [str(write_bytes(img.to_xml(), output_path(inputs.in_file, cwd, hemi=hemi,
                                                      suffix="unmasked",
                                                      extension=".func.gii")))
            for img, hemi in zip(imgs, HEMISPHERES, strict=True)]
