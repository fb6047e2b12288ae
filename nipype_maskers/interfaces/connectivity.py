"""Interfaces for connectivity matrices: ConnectivityMatrix (one run), GroupConnectivity.

Both read region time series TSVs (``*_timeseries.tsv``: a header of region names, ``n/a``
columns for regions the mask emptied, ``n/a`` rows for censored volumes written with
``censored='nan'``) and write square matrix TSVs: the region names as header and as first
column (headed ``Node``, as XCP-D's ``relmat.tsv``), ``n/a`` rows and columns for ``n/a``
regions, with a JSON sidecar (kind, estimator, volumes used). Names (BEP017 style):

- ConnectivityMatrix: ``sub-01_task-rest_atlas-X_timeseries.tsv`` gives
  ``sub-01_task-rest_atlas-X_meas-PearsonCorrelation_relmat.tsv`` (+ ``.json``);
- GroupConnectivity: the entities all inputs share, e.g. ``task-rest_atlas-X_meas-
  PearsonCorrelation_desc-mean_relmat.tsv``; for ``kind='tangent'`` the geometric mean of
  the covariances ``..._meas-Covariance_desc-geometricmean_relmat.tsv`` and one
  ``sub-XX_..._meas-Tangent_relmat.tsv`` per input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from nipype.interfaces.base import (
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)
from numpy.typing import NDArray

from ..bids import derived_name
from ..bids_names import parse_entities, sidecar_of
from ..core.connectivity.measures import KINDS, embed, run_connectivity
from ..core.connectivity.tangent import GROUP_KINDS, common_signals, group_connectivity
from ..core.io.tables import format_table, read_table
from ..files import write_text
from .base import MaskersInputSpec
from .io import read_text_table

#: The ``meas`` entity of each kind (BEP017 names where it has them).
MEASURES = {
    "correlation": "PearsonCorrelation",
    "partial correlation": "PartialCorrelation",
    "covariance": "Covariance",
    "precision": "Precision",
    "tangent": "Tangent",
}

#: The estimator behind each ``shrinkage`` (scikit-learn's class names, as nilearn uses them).
ESTIMATORS = {"ledoit_wolf": "LedoitWolf", "none": "EmpiricalCovariance"}

#: The header of a matrix TSV's first column (the region names), as XCP-D's.
NODE_COLUMN = "Node"


def format_square(names: list[str], matrix: NDArray[np.float64]) -> str:
    """A square matrix TSV: ``Node`` then the region names as header, a name first per row."""
    body = format_table(names, matrix, name="connectivity matrix").splitlines()
    lines = [f"{NODE_COLUMN}\t{body[0]}"]
    lines += [f"{region}\t{row}" for region, row in zip(names, body[1:], strict=True)]
    return "\n".join(lines) + "\n"


def read_square(path: str | Path, *, name: str = "in_file"
                ) -> tuple[list[str], NDArray[np.float64]]:  # fmt: skip
    """Read a matrix TSV written by :func:`format_square`: the region names and the matrix."""
    table = read_table(path, name=name, header=True, delimiter="\t", numeric=False)
    names = table.columns[1:]
    if table.text(table.columns[0]) != names:
        raise ValueError(f"{table.source}: the first column does not repeat the header's region "
                         "names; expected a square matrix TSV")
    return names, table.numbers(names)


def read_timeseries(path: str | Path, name: str) -> tuple[list[str], NDArray[np.float64]]:
    """A time series TSV's region names and values (NaN for ``n/a``)."""
    table = read_text_table(path, name=name)
    return table.columns, table.values


def _write_matrix(path: Path, names: list[str], matrix: NDArray[np.float64],
                  sidecar: dict[str, Any]) -> tuple[str, str]:  # fmt: skip
    """Write the TSV and its JSON sidecar atomically; return both paths."""
    matrix_path = write_text(format_square(names, matrix), path)
    sidecar_path = write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n",
                              sidecar_of(path))
    return str(matrix_path), str(sidecar_path)


class _OptionsSpecMixin(traits.HasTraits):
    shrinkage = traits.Enum(
        "ledoit_wolf", "none", usedefault=True,
        desc="covariance estimator: 'ledoit_wolf' (nilearn's default LedoitWolf) or 'none' "
        "(the empirical covariance)",
    )
    fisher_z = traits.Bool(
        False, usedefault=True,
        desc="Fisher z (arctanh) of the correlations (correlation kinds only; diagonal n/a)",
    )
    discard_diagonal = traits.Bool(False, usedefault=True, desc="write the diagonal as n/a")


# --------------------------------------------------------------------------------------------
# ConnectivityMatrix
# --------------------------------------------------------------------------------------------
class _ConnectivityMatrixInputSpec(MaskersInputSpec, _OptionsSpecMixin):
    in_file = File(exists=True, mandatory=True,
                   desc="region time series TSV (*_timeseries.tsv) with a header of names")
    kind = traits.Enum(*KINDS, usedefault=True,
                       desc="nilearn's kind: 'correlation' (default), 'partial correlation', "
                       "'covariance' or 'precision'")


class _ConnectivityMatrixOutputSpec(TraitedSpec):
    out_file = File(desc="square matrix TSV (*_meas-<Measure>_relmat.tsv)")
    out_sidecar = File(desc="its JSON sidecar: kind, estimator, volumes used, fisher_z...")
    n_volumes = traits.Int(desc="number of volumes used (the rows not all n/a)")


class ConnectivityMatrix(SimpleInterface):
    """One run's connectivity matrix, as nilearn's ``ConnectivityMeasure`` computes it.

    ``ConnectivityMeasure(kind=kind, cov_estimator=LedoitWolf())`` with nilearn's other
    defaults (signals z-scored before the estimator for 'correlation'), computed over the
    regions with a signal and the volumes not censored: ``n/a`` regions are ``n/a`` rows and
    columns, all-``n/a`` rows (volumes censored with ``censored='nan'``) are left out and
    counted in the sidecar. See :mod:`nipype_maskers.core.connectivity.measures`.
    """

    input_spec = _ConnectivityMatrixInputSpec
    output_spec = _ConnectivityMatrixOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        source = f"in_file '{inputs.in_file}'"
        names, values = read_timeseries(inputs.in_file, "in_file")
        result = run_connectivity(values, names, kind=inputs.kind, shrinkage=inputs.shrinkage,
                                  fisher_z=inputs.fisher_z,
                                  discard_diagonal=inputs.discard_diagonal, name=source)
        out = Path(runtime.cwd) / derived_name(inputs.in_file, meas=MEASURES[inputs.kind],
                                                suffix="relmat", extension=".tsv")
        sidecar = {
            "Measure": inputs.kind,
            "Estimator": ESTIMATORS[inputs.shrinkage],
            "Standardized": inputs.kind == "correlation",
            "FisherZ": bool(inputs.fisher_z),
            "DiagonalDiscarded": bool(inputs.discard_diagonal),
            "NumberOfVolumes": result.n_volumes,
            "NumberOfCensoredVolumes": result.n_censored,
            "MissingRegions": result.missing_regions,
        }
        self._results["out_file"], self._results["out_sidecar"] = _write_matrix(
            out, names, result.matrix, sidecar)
        self._results["n_volumes"] = result.n_volumes
        return runtime


# --------------------------------------------------------------------------------------------
# GroupConnectivity
# --------------------------------------------------------------------------------------------
class _GroupConnectivityInputSpec(MaskersInputSpec, _OptionsSpecMixin):
    in_files = InputMultiObject(
        File(exists=True), mandatory=True,
        desc="one region time series TSV per subject, all with the same columns",
    )
    kind = traits.Enum(*GROUP_KINDS, usedefault=True,
                       desc="'tangent' (default: geometric mean + per-subject tangent matrices) "
                       "or a kind of ConnectivityMatrix (the group mean)")


class _GroupConnectivityOutputSpec(TraitedSpec):
    mean_file = File(desc="group matrix TSV: the geometric mean of the covariances (tangent) "
                     "or the mean matrix")
    mean_sidecar = File(desc="its JSON sidecar (kind, estimator, subjects, volumes, regions "
                        "left out)")
    subject_files = traits.List(File(), desc="per-subject tangent matrices, in input order "
                                "(kind='tangent' only)")
    subject_sidecars = traits.List(File(), desc="their JSON sidecars")


def _check_same_columns(tables: list[tuple[list[str], NDArray]], paths: list[str]) -> None:
    """One error naming the first file whose columns differ from the first file's."""
    reference = tables[0][0]
    for path, (columns, _) in zip(paths[1:], tables[1:], strict=True):
        if columns == reference:
            continue
        position = next((i for i, (a, b) in enumerate(zip(columns, reference, strict=False))
                         if a != b), min(len(columns), len(reference)))
        got = columns[position] if position < len(columns) else "(none)"
        wanted = reference[position] if position < len(reference) else "(none)"
        raise ValueError(
            f"in_files '{path}': column {position + 1} is {got!r} where '{paths[0]}' has "
            f"{wanted!r} ({len(columns)} vs {len(reference)} columns); expected the same "
            "regions in every subject's time series"
        )


def _group_name(paths: list[str], **entities: str | None) -> str:
    """The first input's name without the entities that differ between inputs (sub, run...);
    ``group_...`` when an input's name is not a BIDS name."""
    try:
        parsed = [parse_entities(p) for p in paths]
    except ValueError:
        return derived_name("group.tsv", suffix="relmat", extension=".tsv", **entities)
    differing = {key: None for key in parsed[0]
                 if key not in ("suffix", "extension")
                 and any(other.get(key) != parsed[0][key] for other in parsed[1:])}
    return derived_name(paths[0], suffix="relmat", extension=".tsv",
                        **{**differing, **entities})


class GroupConnectivity(SimpleInterface):
    """The group's connectivity: tangent-space matrices, or the mean of another kind.

    ``kind='tangent'`` is nilearn's ``ConnectivityMeasure(kind='tangent')``: each subject's
    covariance (Ledoit-Wolf by default), their geometric mean (``mean_file``, with nilearn's
    stopping rule, hence its numbers) and each subject's tangent matrix (``subject_files``,
    input order). Another kind gives the mean of the subjects' matrices (nilearn's
    ``mean_``; with ``fisher_z``, the mean of the z-transformed matrices).

    A region ``n/a`` in any subject is left out of the whole group (the tangent space and the
    mean need every subject on the same regions) and written as ``n/a`` rows and columns;
    the sidecar lists it with the subjects where it is ``n/a``. Censored (all-``n/a``) rows
    are left out per subject.
    """

    input_spec = _GroupConnectivityInputSpec
    output_spec = _GroupConnectivityOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        paths = [str(p) for p in inputs.in_files]
        stems = [Path(p).name for p in paths]
        if len(set(stems)) != len(stems):
            duplicate = next(s for s in stems if stems.count(s) > 1)
            raise ValueError(f"in_files: '{duplicate}' is given more than once (by name); "
                             "expected one time series per subject")
        tables = [read_timeseries(p, "in_files") for p in paths]
        _check_same_columns(tables, paths)
        names = tables[0][0]
        labels = [f"in_files '{p}'" for p in paths]
        common = common_signals([values for _, values in tables], names, labels)
        del tables
        group = group_connectivity(common.signals, kind=inputs.kind, shrinkage=inputs.shrinkage,
                                   fisher_z=inputs.fisher_z, names=labels)
        sidecar = {
            "Measure": inputs.kind,
            "Estimator": ESTIMATORS[inputs.shrinkage],
            "Standardized": inputs.kind == "correlation",
            "FisherZ": bool(inputs.fisher_z),
            "DiagonalDiscarded": bool(inputs.discard_diagonal),
            "NumberOfSubjects": len(paths),
            "NumberOfVolumes": [int(s.shape[0]) for s in common.signals],
            "NumberOfCensoredVolumes": common.n_censored,
            "Sources": stems,
            # each left-out region -> the files where it is n/a
            "MissingRegions": {region: [stems[labels.index(label)] for label in where]
                               for region, where in common.missing.items()},
        }
        if common.missing:
            sidecar["MissingRegionsNote"] = (
                "regions n/a in any subject are left out of the whole group (computed without "
                "them) and written as n/a")
        if inputs.kind == "tangent":
            mean_name = _group_name(paths, meas="Covariance", desc="geometricmean")
            sidecar["GeometricMean"] = ("nilearn's gradient descent and stopping rule "
                                        "(max_iter=30, tol=1e-7)")
        else:
            mean_name = _group_name(paths, meas=MEASURES[inputs.kind], desc="mean")
        self._results["mean_file"], self._results["mean_sidecar"] = _write_matrix(
            Path(runtime.cwd) / mean_name, names, self._full(group.mean, common.regions),
            sidecar)
        files, sidecars = [], []
        if group.subjects is not None:
            for index, (path, matrix) in enumerate(zip(paths, group.subjects, strict=True)):
                out = Path(runtime.cwd) / derived_name(path, meas="Tangent", suffix="relmat",
                                                        extension=".tsv")
                subject_sidecar = {
                    "Measure": "tangent",
                    "Estimator": ESTIMATORS[inputs.shrinkage],
                    "DiagonalDiscarded": bool(inputs.discard_diagonal),
                    "NumberOfVolumes": int(common.signals[index].shape[0]),
                    "NumberOfCensoredVolumes": common.n_censored[index],
                    "ReferenceMean": mean_name,
                    "MissingRegions": list(common.missing),
                }
                written = _write_matrix(out, names, self._full(matrix, common.regions),
                                        subject_sidecar)
                files.append(written[0])
                sidecars.append(written[1])
        self._results["subject_files"] = files
        self._results["subject_sidecars"] = sidecars
        return runtime

    def _full(self, matrix: NDArray[np.float64], regions: NDArray[np.bool_]
              ) -> NDArray[np.float64]:  # fmt: skip
        """The matrix over all regions (n/a for the left-out ones), diagonal discarded if asked."""
        full = embed(matrix, regions) if not regions.all() else matrix.copy()
        if self.inputs.discard_diagonal:
            np.fill_diagonal(full, np.nan)
        return full
