"""CombineRuns: several runs' region time series as one TSV (z-scored, concatenated).

For ``--combine-runs``: the output is named after the first input with its ``run`` entity
removed (``sub-01_task-rest_run-1_atlas-X_timeseries.tsv`` gives
``sub-01_task-rest_atlas-X_timeseries.tsv``), for ConnectivityMatrix to name its matrix
after it. See :func:`nipype_maskers.core.connectivity.combine.combine_runs`.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import File, InputMultiObject, SimpleInterface, TraitedSpec, traits

from ..core.connectivity.combine import combine_runs
from ..core.io.tables import format_table
from ..files import write_text
from .base import MaskersInputSpec
from .connectivity import read_timeseries
from .io import output_path


class _CombineRunsInputSpec(MaskersInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="the runs' region time series TSVs (same columns), in "
                                "run order")


class _CombineRunsOutputSpec(TraitedSpec):
    out_file = File(desc="the z-scored runs concatenated: a time series TSV")
    n_volumes = traits.List(traits.Int, desc="kept volumes of each run, in input order")
    n_censored = traits.List(traits.Int, desc="all-n/a (censored) rows dropped per run")
    missing_regions = traits.List(traits.Str, desc="regions n/a in any run (n/a throughout)")
    sources = traits.List(traits.Str, desc="the input file names, in order")


class CombineRuns(SimpleInterface):
    """Each run's region signals z-scored over its kept volumes, then concatenated."""

    input_spec = _CombineRunsInputSpec
    output_spec = _CombineRunsOutputSpec

    def _run_interface(self, runtime):
        paths = [str(p) for p in self.inputs.in_files]
        tables = [read_timeseries(p, "in_files") for p in paths]
        names = tables[0][0]
        for path, (columns, _) in zip(paths[1:], tables[1:], strict=True):
            if columns != names:
                raise ValueError(f"in_files '{path}': regions {columns[:3]}... differ from "
                                 f"'{paths[0]}''s {names[:3]}...; expected runs of one atlas")
        combined = combine_runs([values for _, values in tables], names,
                                labels=[f"in_files '{p}'" for p in paths])
        out = output_path(paths[0], runtime.cwd, run=None)
        text = format_table(names, combined.signals, name="out_file")
        self._results["out_file"] = str(write_text(text, out))
        self._results["n_volumes"] = combined.n_volumes
        self._results["n_censored"] = combined.n_censored
        self._results["missing_regions"] = combined.missing
        self._results["sources"] = [Path(p).name for p in paths]
        return runtime
