"""Denoising QC interfaces: DenoisingQC (per run) and QCFC (group).

Output names follow the input's BIDS entities (:func:`nipype_maskers.bids.derived_name`):

- DenoisingQC: ``sub-01_task-rest_desc-confounds_timeseries.tsv`` gives
  ``sub-01_task-rest_desc-qc_bold.tsv`` (one row, one column per figure) and its ``.json``
  sidecar (a BIDS description and unit per column);
- QCFC: ``sub-01_task-rest_atlas-X_meas-PearsonCorrelation_relmat.tsv`` (the first input)
  gives ``task-rest_atlas-X_meas-PearsonCorrelation_desc-qcfc_bold.tsv`` (the summary, one
  row) and ``..._desc-qcfcedges_bold.tsv`` (one row per edge), each with a sidecar.

Every input is read and every figure computed before anything is written: bad input raises
one error and leaves no file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from nipype.interfaces.base import (
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)
from numpy.typing import NDArray

from ..bids_names import parse_entities, sidecar_of
from ..core.io.tables import Table, format_table, read_table
from ..core.qc.denoising import QC_FIGURES, denoising_qc, kept_volumes
from ..core.qc.qcfc import (
    EDGE_FIGURES,
    QCFC_FIGURES,
    labels_img_centroids,
    pairwise_distances,
    qcfc,
)
from ..files import write_text
from .base import MaskersInputSpec, defined, read_sample_mask
from .connectivity import read_square
from .io import output_path, read_matrix, split_ext

__all__ = ["QCFC", "DenoisingQC"]

_FD_COLUMN = "framewise_displacement"
#: Columns that may name the regions of a centroids table, in the order they are looked for.
_REGION_NAME_COLUMNS = ("name", "region", "label", "index")


def _jsonable(value: Any) -> Any:
    """NaN as None (JSON has no NaN), numpy scalars as Python numbers."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def _column_descriptions(figures: dict[str, tuple[str, str | None]], columns: list[str]
                         ) -> dict[str, dict[str, str]]:  # fmt: skip
    """BIDS column descriptions (Description, Units when there is one) of ``columns``."""
    out = {}
    for column in columns:
        description, units = figures[column]
        out[column] = {"Description": description}
        if units:
            out[column]["Units"] = units
    return out


def _write_json(content: dict[str, Any], path: Path) -> str:
    return str(write_text(json.dumps(content, indent=2, sort_keys=False) + "\n", path))


# --------------------------------------------------------------------------------------------
# DenoisingQC


class _DenoisingQCInputSpec(MaskersInputSpec):
    confounds_file = File(exists=True, mandatory=True,
                          desc="fMRIPrep's *_desc-confounds_timeseries.tsv of the run "
                          "(framewise_displacement; dvars and std_dvars when present)")
    t_r = traits.Float(mandatory=True, desc="repetition time in seconds")
    sample_mask_file = File(exists=True, desc="the kept volumes, one index per line "
                            "(LoadConfounds' sample_mask_file)")
    sample_mask = traits.List(traits.Int, desc="the kept volume indices")
    sidecar_file = File(exists=True, desc="a JSON sidecar of this package's outputs: its "
                        "CensoredVolumes (none listed: nothing censored)")
    n_regressors = traits.Int(desc="confound regressors removed by the cleaning (default 0)")
    regressors_file = File(exists=True, desc="the regressors table given to the cleaning "
                           "(LoadConfounds' out_file): its columns are counted")
    filter = traits.Enum("butterworth", "cosine", usedefault=True,
                         desc="the cleaning's filter (nilearn's; 'cosine' is a high-pass only)")
    high_pass = traits.Float(desc="the cleaning's high-pass cut-off, Hz (unset: none)")
    low_pass = traits.Float(desc="the cleaning's low-pass cut-off, Hz (unset: none)")
    raw_file = File(exists=True, desc="signals before cleaning, one row per volume of the run "
                    "(*_timeseries.tsv or voxel .npy): DVARS before")
    clean_file = File(exists=True, desc="signals after cleaning (*_timeseries.tsv or voxel "
                      ".npy), one row per kept volume or per volume (censored ones n/a): "
                      "DVARS after")
    timeseries_files = InputMultiObject(
        File(exists=True), desc="region time series TSVs (one per atlas, named atlas-<label>) "
        "whose n/a columns are counted; default clean_file when it is a TSV",
    )


class _DenoisingQCOutputSpec(TraitedSpec):
    out_file = File(desc="desc-qc TSV: one row, one column per figure")
    out_sidecar = File(desc="its JSON sidecar: Description and Units of each column, and the "
                       "n/a regions per atlas (MissingRegions)")
    figures = traits.Dict(desc="the figures (NaN as None)")


class DenoisingQC(SimpleInterface):
    """Per-run denoising QC figures (:func:`~nipype_maskers.core.qc.denoising.denoising_qc`).

    Mean and maximum framewise displacement, number and percentage of censored volumes,
    DVARS (Power 2012: RMS over columns of the temporal derivative) of the signals given as
    ``raw_file`` and ``clean_file`` (region time series or voxel matrices: DVARS is computed
    on those data, not on the BOLD image), their correlation with FD, the degrees of freedom
    lost (regressors + censored volumes + what the filter removes), the remaining duration,
    and the number of ``n/a`` regions per atlas.
    """

    input_spec = _DenoisingQCInputSpec
    output_spec = _DenoisingQCOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        confounds = read_table(inputs.confounds_file, name="confounds_file", header=True,
                               delimiter="\t", numeric=False)
        fd = confounds.numbers([_FD_COLUMN])[:, 0]
        extra = {key: confounds.numbers([column])[:, 0]
                 for key, column in (("dvars_confounds", "dvars"),
                                     ("std_dvars_confounds", "std_dvars"))
                 if column in confounds.columns}  # fmt: skip
        kept = _kept_from_inputs(inputs, fd.size)
        n_regressors = _regressor_count(inputs)
        raw = _signals(inputs.raw_file, "raw_file")
        clean = _signals(inputs.clean_file, "clean_file")
        missing = _missing_regions(inputs)
        figures = denoising_qc(
            fd, t_r=inputs.t_r, kept=kept, n_regressors=n_regressors,
            high_pass=defined(inputs.high_pass), low_pass=defined(inputs.low_pass),
            filter=inputs.filter, raw_signals=raw, clean_signals=clean,
            missing_regions=missing, **extra,
        )
        columns = list(figures)
        descriptions = {**QC_FIGURES, **{
            f"n_missing_regions_{atlas}": (f"Regions of atlas {atlas} left n/a (emptied by "
                                           "the mask); their names are in MissingRegions.",
                                           None)
            for atlas in missing}}  # fmt: skip
        sidecar = _column_descriptions(descriptions, columns)
        sidecar["MissingRegions"] = {atlas: list(names) for atlas, names in missing.items()}
        sidecar["DVARSSignals"] = {"before": _name_or_none(inputs.raw_file),
                                   "after": _name_or_none(inputs.clean_file)}
        sidecar["Parameters"] = {
            "RepetitionTime": inputs.t_r, "Filter": inputs.filter,
            "HighPass": defined(inputs.high_pass), "LowPass": defined(inputs.low_pass),
            "KeptVolumesFrom": next((n for n in ("sample_mask_file", "sample_mask",
                                                 "sidecar_file")
                                     if isdefined(getattr(inputs, n))), None),
        }

        out = output_path(inputs.confounds_file, runtime.cwd, desc="qc", suffix="bold",
                          extension=".tsv")
        text = format_table(columns, [[figures[c] for c in columns]], name="out_file")
        self._results["out_file"] = str(write_text(text, out))
        self._results["out_sidecar"] = _write_json(sidecar, sidecar_of(out))
        self._results["figures"] = {k: _jsonable(v) for k, v in figures.items()}
        return runtime


def _name_or_none(path: Any) -> str | None:
    return Path(path).name if isdefined(path) else None


def _kept_from_inputs(inputs: Any, n_volumes: int) -> NDArray[np.intp]:
    """The kept volumes from sample_mask_file, sample_mask or sidecar_file (at most one)."""
    given = [name for name in ("sample_mask_file", "sample_mask", "sidecar_file")
             if isdefined(getattr(inputs, name))]
    if len(given) > 1:
        raise ValueError(f"{' and '.join(given)}: give one of them, not several (they all "
                         "say which volumes were kept)")
    if not given:
        return kept_volumes(n_volumes)
    if given[0] == "sample_mask_file":
        return kept_volumes(n_volumes, sample_mask=read_sample_mask(inputs.sample_mask_file))
    if given[0] == "sample_mask":
        return kept_volumes(n_volumes, sample_mask=list(inputs.sample_mask))
    path = Path(inputs.sidecar_file)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"sidecar_file '{path}': not readable JSON ({exc}); expected a "
                         "sidecar of this package's outputs") from None
    censored = metadata.get("CensoredVolumes", []) if isinstance(metadata, dict) else []
    if not isinstance(censored, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in censored):
        raise ValueError(f"sidecar_file '{path}': CensoredVolumes is {censored!r}; expected "
                         "a list of volume indices")
    return kept_volumes(n_volumes, censored_volumes=censored)


def _regressor_count(inputs: Any) -> int:
    if isdefined(inputs.n_regressors) and isdefined(inputs.regressors_file):
        raise ValueError("n_regressors and regressors_file: give one or the other, not both")
    if isdefined(inputs.regressors_file):
        table = read_table(inputs.regressors_file, name="regressors_file", header=True,
                           numeric=False)
        return len(table.columns)
    n_regressors = defined(inputs.n_regressors, 0)
    if n_regressors < 0:
        raise ValueError(f"n_regressors={n_regressors}; expected a count (>= 0)")
    return n_regressors


def _signals(path: Any, name: str) -> NDArray | None:
    if not isdefined(path):
        return None
    values, _ = read_matrix(path, name=name)
    return values if values.ndim == 2 else values[:, None]


def _atlas_label(path: str) -> str:
    """The atlas entity of a time series name, else its stem."""
    try:
        atlas = parse_entities(path).get("atlas")
    except ValueError:
        atlas = None
    return str(atlas) if atlas else split_ext(path)[0]


def _missing_regions(inputs: Any) -> dict[str, list[str]]:
    """Per atlas, the columns of its time series TSV that are entirely n/a."""
    files = list(defined(inputs.timeseries_files, []))
    if not files and isdefined(inputs.clean_file) and split_ext(inputs.clean_file)[1] == ".tsv":
        files = [inputs.clean_file]
    missing: dict[str, list[str]] = {}
    for path in files:
        atlas = _atlas_label(path)
        if atlas in missing:
            raise ValueError(f"timeseries_files: two files of atlas {atlas!r}; expected one "
                             "time series TSV per atlas")
        table = read_table(path, name="timeseries_files", header=True, delimiter="\t")
        empty = np.all(np.isnan(table.values), axis=0)
        missing[atlas] = [c for c, e in zip(table.columns, empty, strict=True) if e]
    return missing


# --------------------------------------------------------------------------------------------
# QCFC


class _QCFCInputSpec(MaskersInputSpec):
    in_files = InputMultiObject(
        File(exists=True), mandatory=True,
        desc="one connectivity matrix TSV per subject (ConnectivityMatrix's out_file: region "
        "names as header and first column), same regions",
    )
    mean_fd = traits.List(traits.Float, desc="each subject's mean framewise displacement (mm), "
                          "in the order of in_files")
    qc_files = InputMultiObject(File(exists=True), desc="DenoisingQC tables (their mean_fd), "
                                "in the order of in_files")
    regions_file = File(exists=True, desc="region centroids (mm): a TSV with x, y, z columns, "
                        "and a name/region/label/index column matching the matrices' names "
                        "(without one: one row per region, in the matrices' order)")
    labels_file = File(exists=True, desc="the atlas's labels image (3D NIfTI): centroids of "
                       "its labels, when the matrices' region names are label values")


class _QCFCOutputSpec(TraitedSpec):
    out_file = File(desc="the summary figures: one row, one column per figure")
    out_sidecar = File(desc="JSON sidecar of out_file (Description and Units per column)")
    edges_file = File(desc="one row per edge: region_a, region_b, qcfc, p, p_fdr, distance")
    edges_sidecar = File(desc="JSON sidecar of edges_file")
    summary = traits.Dict(desc="the summary figures (NaN as None)")


class QCFC(SimpleInterface):
    """Group QC-FC (:func:`~nipype_maskers.core.qc.qcfc.qcfc`): per edge, the correlation
    across subjects between connectivity and mean FD; the median of its absolute value, the
    percentage of significant edges (uncorrected and FDR) and, with region centroids, its
    correlation with inter-region distance. Fewer than 3 subjects is an error.
    """

    input_spec = _QCFCInputSpec
    output_spec = _QCFCOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        files = list(inputs.in_files)
        if len(files) < 3:
            raise ValueError(f"in_files: {len(files)} matrices; QC-FC needs at least 3 "
                             "subjects")
        mean_fd = _mean_fd(inputs, len(files))
        names, first = read_square(files[0], name="in_files")
        matrices = np.empty((len(files), *first.shape))
        matrices[0] = first
        for i, path in enumerate(files[1:], start=1):
            matrices[i] = _same_regions(path, names)
        distances = _distances(inputs, names)
        result = qcfc(matrices, mean_fd, distances=distances)

        summary_columns = list(result.summary)
        summary_text = format_table(summary_columns,
                                    [[result.summary[c] for c in summary_columns]],
                                    name="out_file")
        edge_columns = ["region_a", "region_b", *EDGE_FIGURES]
        edge_rows = zip([names[i] for i in result.rows], [names[j] for j in result.cols],
                        result.r.tolist(), result.p.tolist(), result.p_fdr.tolist(),
                        result.distance.tolist(), strict=True)
        edges_text = format_table(edge_columns, edge_rows, name="edges_file")
        edge_descriptions = _column_descriptions(EDGE_FIGURES, list(EDGE_FIGURES))
        edge_descriptions = {
            "region_a": {"Description": "First region of the edge (a matrix row name)."},
            "region_b": {"Description": "Second region of the edge (a matrix column name)."},
            **edge_descriptions,
        }
        summary_sidecar = _column_descriptions(QCFC_FIGURES, summary_columns)
        summary_sidecar["Sources"] = [Path(f).name for f in files]
        summary_sidecar["MeanFramewiseDisplacement"] = [float(v) for v in mean_fd]

        entities = {"sub": None, "ses": None, "run": None}
        out = output_path(files[0], runtime.cwd, desc="qcfc", suffix="bold",
                          extension=".tsv", **entities)
        edges = output_path(files[0], runtime.cwd, desc="qcfcedges", suffix="bold",
                            extension=".tsv", **entities)
        self._results["out_file"] = str(write_text(summary_text, out))
        self._results["out_sidecar"] = _write_json(summary_sidecar, sidecar_of(out))
        self._results["edges_file"] = str(write_text(edges_text, edges))
        self._results["edges_sidecar"] = _write_json(edge_descriptions, sidecar_of(edges))
        self._results["summary"] = {k: _jsonable(v) for k, v in result.summary.items()}
        return runtime


def _same_regions(path: str, names: list[str]) -> NDArray[np.float64]:
    """The values of a matrix TSV whose regions must be ``names``."""
    other, values = read_square(path, name="in_files")
    if other != names:
        raise ValueError(f"in_files '{path}': regions {other[:3]}... ({len(other)}) differ "
                         f"from the first matrix's {names[:3]}... ({len(names)}); expected "
                         "matrices of the same atlas, same regions in the same order")
    return values


def _mean_fd(inputs: Any, n_subjects: int) -> NDArray[np.float64]:
    if isdefined(inputs.mean_fd) == isdefined(inputs.qc_files):
        given = "both" if isdefined(inputs.mean_fd) else "neither"
        raise ValueError(f"mean_fd and qc_files: give exactly one of them, got {given}")
    if isdefined(inputs.mean_fd):
        values = [float(v) for v in inputs.mean_fd]
        name = "mean_fd"
    else:
        values = []
        for path in inputs.qc_files:
            table = read_table(path, name="qc_files", header=True, delimiter="\t",
                               numeric=False)
            column = table.numbers(["mean_fd"])[:, 0]
            if column.size != 1:
                raise ValueError(f"{table.source}: {column.size} rows; expected the one row "
                                 "of a DenoisingQC table")
            values.append(float(column[0]))
        name = "qc_files"
    if len(values) != n_subjects:
        raise ValueError(f"{name}: {len(values)} values for {n_subjects} in_files; expected "
                         "one per subject, in the same order")
    return np.asarray(values)


def _distances(inputs: Any, names: list[str]) -> NDArray[np.float64] | None:
    """Inter-region distances from regions_file or labels_file (at most one), or None."""
    if isdefined(inputs.regions_file) and isdefined(inputs.labels_file):
        raise ValueError("regions_file and labels_file: give one or the other, not both (both "
                         "give the region centroids)")
    if isdefined(inputs.regions_file):
        return pairwise_distances(_read_centroids(inputs.regions_file, names))
    if not isdefined(inputs.labels_file):
        return None
    values, centroids = labels_img_centroids(inputs.labels_file)
    position = {str(int(v)): i for i, v in enumerate(values)}
    found = [position.get(_normal_name(n)) for n in names]
    absent = [n for n, i in zip(names, found, strict=True) if i is None]
    if absent:
        raise ValueError(f"labels_file '{inputs.labels_file}': regions {absent[:5]} of the "
                         f"matrices are not among its label values {values[:5].tolist()}...; "
                         "expected matrices whose region names are the image's label values "
                         "(else give a regions_file of centroids)")
    return pairwise_distances(centroids[found])


def _read_centroids(path: str, names: list[str]) -> NDArray[np.float64]:
    """The x, y, z of each region in ``names`` order, from a centroids TSV."""
    table: Table = read_table(path, name="regions_file", header=True, numeric=False)
    xyz = table.numbers(["x", "y", "z"])
    key = next((c for c in _REGION_NAME_COLUMNS if c in table.columns), None)
    if key is None:
        if xyz.shape[0] != len(names):
            raise ValueError(f"{table.source}: {xyz.shape[0]} rows and no name column "
                             f"({'/'.join(_REGION_NAME_COLUMNS)}); expected one row per "
                             f"region of the matrices ({len(names)}), in their order")
        return xyz
    position = {_normal_name(n): i for i, n in enumerate(table.text(key))}
    found = [position.get(_normal_name(n)) for n in names]
    absent = [n for n, i in zip(names, found, strict=True) if i is None]
    if absent:
        raise ValueError(f"{table.source}: regions {absent[:5]} of the matrices are not in "
                         f"its {key!r} column; expected a centroid for every region")
    return xyz[found]


def _normal_name(name: str) -> str:
    """A region name as text; numbers in one form (label ``1`` matches ``1.0``)."""
    try:
        number = float(name)
    except ValueError:
        return name
    return str(int(number)) if number.is_integer() else repr(number)
