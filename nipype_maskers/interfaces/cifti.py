"""CIFTI-2 region maskers: a ``.dtseries.nii`` to BIDS ``*_timeseries.tsv`` by parcel or map.

:class:`CiftiLabelsMasker` parcellates with a ``.dlabel.nii`` (Connectome Workbench's
``-cifti-parcellate -method MEAN`` with XCP-D's rule for all-zero and non-finite
grayordinates) and can also write the ``.ptseries.nii``; :class:`CiftiMapsMasker` fits
``.dscalar.nii`` maps by least squares. Both write ``out_file`` and ``regions_file`` as the
volume region maskers do, with the kept vertex and subcortical voxel counts of each region.
:class:`CiftiMasker` reads a run once into a matrix that both take as ``masked_file``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nipype.interfaces.base import File, SimpleInterface, TraitedSpec, isdefined, traits

from ..core.io.hashing import hash_reads
from ..core.io.tables import format_table
from ..core.surface import cifti as cifti_files
from ..core.surface import cifti_maskers
from ..files import save_nifti, write_text
from .base import (
    CensoredSpecMixin,
    CleanSpecMixin,
    MaskersInputSpec,
    RegionExtractionSpecMixin,
    clean_args_from,
    defined,
    parse_volumes,
)
from .io import output_path, read_masked_matrix, save_masked_matrix
from .regions import REGIONS_COLUMNS, _RegionMaskerOutputSpec, _with_censored_rows

#: ``regions_file``'s columns: the volume maskers' (``voxel_count`` counts the grayordinates
#: used), then how many of them are surface vertices and subcortical voxels.
CIFTI_REGIONS_COLUMNS = (*REGIONS_COLUMNS, "vertex_count", "subcortical_voxel_count")

#: Where ``t_r`` came from when the dtseries gave it.
_T_R_SOURCE = "CIFTI SeriesAxis"


#: The ``masked_file`` input of the CIFTI region maskers.
MASKED_SERIES_DESC = (
    "in_file already read: CiftiMasker's out_file of in_file. Its rows are read (into "
    "memory: the whole matrix) instead of reading and hashing in_file again: the same "
    "numbers, bit for bit. in_file's header still gives the grayordinates, the TR and the "
    "output names")


class _CiftiMaskerInputSpec(MaskersInputSpec, CleanSpecMixin, CensoredSpecMixin,
                            RegionExtractionSpecMixin):
    in_file = File(exists=True, mandatory=True,
                   desc="dense time series (.dtseries.nii: time points x grayordinates)")
    min_coverage = traits.Range(
        0.0, 1.0, desc="regions with a smaller fraction of their grayordinates kept become n/a"
    )
    masked_file = File(exists=True, desc=MASKED_SERIES_DESC)


class _CiftiLabelsInputSpec(_CiftiMaskerInputSpec):
    labels_file = File(exists=True, mandatory=True,
                       desc="dense label atlas (.dlabel.nii, one label map; names from its "
                       "label table) on the data's grayordinates or a superset")
    background_label = traits.Int(0, usedefault=True, desc="the key of 'no parcel'")
    strategy = traits.Enum(
        "mean", "median", "sum", "minimum", "maximum", "standard_deviation", "variance",
        usedefault=True, desc="reduction over each parcel's kept grayordinates",
    )
    write_ptseries = traits.Bool(False, usedefault=True,
                                 desc="also write the signals as a .ptseries.nii")


class _CiftiMapsInputSpec(_CiftiMaskerInputSpec):
    maps_file = File(exists=True, mandatory=True,
                     desc="dense maps (.dscalar.nii, one map per row) on the data's "
                     "grayordinates or a superset")


class _CiftiLabelsOutputSpec(_RegionMaskerOutputSpec):
    ptseries_file = File(desc="the signals as a parcellated time series (write_ptseries)")


class _CiftiMasker(SimpleInterface):
    """Shared run: the dtseries' TR, cleaning arguments, the two TSVs (and a ptseries)."""

    output_spec = _RegionMaskerOutputSpec
    _kind = ""

    def _extract(self, img, common) -> cifti_maskers.CiftiSignals:  # pragma: no cover
        raise NotImplementedError

    def _run_interface(self, runtime):
        img = cifti_files.load_cifti(self.inputs.in_file, "dtseries", name="in_file")
        clean_args, provenance = clean_args_from(self.inputs,
                                                 header_t_r=cifti_files.series_t_r(img))
        if provenance.get("RepetitionTimeSource") == "NIfTI header":
            provenance["RepetitionTimeSource"] = _T_R_SOURCE
        data, masked_sha256 = _masked_series(self.inputs, img)
        common = {"volumes": parse_volumes(defined(self.inputs.volumes)),
                  "dtype": self.inputs.dtype, "clean_args": clean_args,
                  "min_coverage": defined(self.inputs.min_coverage),
                  "drop_empty": self.inputs.drop_empty, "data": data}
        # hashed from the maskers' own read; the matrix has the digest from its own read
        with hash_reads(self.inputs.in_file, known=masked_sha256) as digest:
            found = self._extract(img, common)
        result = found.regions
        signals, volumes = result.signals, result.volumes
        if self.inputs.censored == "nan":
            signals, volumes = _with_censored_rows(result, img.shape[0], common["volumes"])
        rows = zip(np.asarray(result.ids).tolist(), result.names,
                   np.asarray(result.sizes).tolist(), np.asarray(result.coverage).tolist(),
                   found.vertex_counts.tolist(), found.voxel_counts.tolist(), strict=True)
        # everything is built before anything is written: an error leaves no file behind
        regions_text = format_table(
            CIFTI_REGIONS_COLUMNS,
            [(int(i), name, int(n), float(c), int(v), int(x)) for i, name, n, c, v, x in rows],
            name="regions_file")
        signals_text = format_table(result.names, np.atleast_2d(signals), name="out_file")
        ptseries = self._ptseries(found, signals, provenance.get("RepetitionTime"))
        source = self.inputs.in_file
        names = {suffix: output_path(source, runtime.cwd, desc=self._kind, suffix=suffix,
                                     extension=".tsv") for suffix in ("timeseries", "regions")}
        self._results["regions_file"] = str(write_text(regions_text, names["regions"]))
        self._results["out_file"] = str(write_text(signals_text, names["timeseries"]))
        if ptseries is not None:
            path = output_path(source, runtime.cwd, desc=self._kind, suffix="timeseries",
                               extension=".ptseries.nii")
            self._results["ptseries_file"] = str(save_nifti(ptseries, path))
        self._results["t_r"] = provenance.get("RepetitionTime")
        self._results["t_r_source"] = provenance.get("RepetitionTimeSource", "")
        self._results["volumes"] = [int(v) for v in volumes]
        self._results["in_file_sha256"] = digest.hexdigest()
        return runtime

    def _ptseries(self, found, signals, t_r):
        return None


def _masked_series(inputs, img) -> tuple[np.ndarray | None, str | None]:
    """CiftiMasker's matrix of ``in_file`` as the maskers' ``data``, and ``in_file``'s digest
    from the matrix's trailer; (None, None) without ``masked_file``. See
    :func:`~.io.read_masked_matrix` for what is refused."""
    if not isdefined(inputs.masked_file):
        return None, None
    rows, fields, mask = read_masked_matrix(inputs.masked_file, inputs.in_file,
                                            writer="CiftiMasker")
    if mask is not None:
        raise ValueError(f"masked_file: {int(mask.sum())} of {mask.size} columns kept by a "
                         "mask; expected CiftiMasker's matrix of every grayordinate")
    return (cifti_maskers.series_from_rows(img, rows, name="in_file"),
            str(fields["SourceSHA256"]))


class CiftiLabelsMasker(_CiftiMasker):
    """Parcel signals of a ``.dtseries.nii`` with a ``.dlabel.nii``: Workbench's
    ``-cifti-parcellate`` (and nilearn's strategies), all-zero and non-finite grayordinates
    left out of their parcel (XCP-D's rule)."""

    input_spec = _CiftiLabelsInputSpec
    output_spec = _CiftiLabelsOutputSpec
    _kind = "labels"

    def _extract(self, img, common):
        return cifti_maskers.cifti_labels_masker(
            img, self.inputs.labels_file, strategy=self.inputs.strategy,
            background_label=self.inputs.background_label, **common)

    def _ptseries(self, found, signals, t_r):
        if not self.inputs.write_ptseries:
            return None
        return cifti_files.ptseries_image(signals, found.parcels(),
                                          step=t_r if t_r is not None else 1.0)


class CiftiMapsMasker(_CiftiMasker):
    """Least-squares signals of ``.dscalar.nii`` maps in a ``.dtseries.nii`` (NiftiMapsMasker's
    math), all-zero and non-finite grayordinates left out of the fit."""

    input_spec = _CiftiMapsInputSpec
    _kind = "maps"

    def _extract(self, img, common):
        return cifti_maskers.cifti_maps_masker(img, self.inputs.maps_file, **common)


class _CiftiReadInputSpec(MaskersInputSpec):
    in_file = File(exists=True, mandatory=True,
                   desc="dense time series (.dtseries.nii: time points x grayordinates)")


class _CiftiReadOutputSpec(TraitedSpec):
    out_file = File(desc="(time points x grayordinates) matrix, .npy, every grayordinate in "
                    "the file's order, in the data's precision (integers as float64); after "
                    "the array (numpy.load stops before it) the file describes the run it "
                    "holds, for the CIFTI maskers that take it as masked_file")
    in_file_sha256 = traits.Str(
        desc="SHA-256 (hex) of in_file's bytes, computed while it was read (no second read)")


class CiftiMasker(SimpleInterface):
    """A ``.dtseries.nii`` read once: its (time points x grayordinates) matrix.

    CiftiLabelsMasker and CiftiMapsMasker take it as ``masked_file`` and read its rows
    instead of reading and hashing the run again (a 91k run's SHA-256 is a large part of
    their time): one read per run whatever the number of atlases. No cleaning, no
    selection: the matrix stands for the run itself.
    """

    input_spec = _CiftiReadInputSpec
    output_spec = _CiftiReadOutputSpec

    def _run_interface(self, runtime):
        source = self.inputs.in_file
        with hash_reads(source) as digest:  # fed by the matrix's own read of the file
            matrix = cifti_maskers.series_matrix(source, name="in_file")
        self._results["in_file_sha256"] = digest.hexdigest()
        out = output_path(source, runtime.cwd, suffix="signals", extension=".npy")
        self._results["out_file"] = str(save_masked_matrix(
            matrix, out, mask=None, affine=None, source=source,
            source_sha256=self._results["in_file_sha256"]))
        return runtime


#: File names of CIFTI-2 files (SignalsToImage sends these atlases here).
_CIFTI_EXTENSIONS = (".dtseries.nii", ".dlabel.nii", ".dscalar.nii", ".ptseries.nii",
                     ".pscalar.nii", ".plabel.nii", ".pconn.nii", ".dconn.nii")


def _is_cifti(path) -> bool:
    return isinstance(path, str) and path.endswith(_CIFTI_EXTENSIONS)


def cifti_signals_image(signals: np.ndarray, inputs, cwd) -> Path | None:
    """SignalsToImage for CIFTI atlases: the ``.dtseries.nii`` written, or None (not CIFTI).

    ``labels_file`` (a ``.dlabel.nii``) or ``maps_file`` (a ``.dscalar.nii``) gives the
    grayordinates; ``t_r`` the SeriesAxis step (default 1 s).
    """
    labels, maps = defined(inputs.labels_file), defined(inputs.maps_file)
    if not (_is_cifti(labels) or _is_cifti(maps)):
        return None
    if defined(inputs.mask_file) is not None:
        raise ValueError("mask_file: not used with a CIFTI atlas (the output covers the atlas' "
                         "grayordinates); leave it unset")
    step = defined(inputs.t_r, 1.0)
    if labels is not None:
        img = cifti_maskers.cifti_labels_image(signals, labels,
                                               background_label=inputs.background_label,
                                               step=step)
    else:
        img = cifti_maskers.cifti_maps_image(signals, maps, step=step)
    out = output_path(inputs.in_file, cwd, suffix="unmasked", extension=".dtseries.nii")
    return save_nifti(img, out)
