"""The run report's connectivity section: matrix heatmaps and the denoising QC table.

A reportlet (an HTML fragment) for :class:`~nipype_maskers.interfaces.reports.RunReport`,
kept apart from :mod:`.reports` (which is near its size budget). Needs matplotlib.
"""

from __future__ import annotations

import json
from pathlib import Path

from nipype.interfaces.base import (
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
)

from ..bids_names import parse_entities, sidecar_of
from ..core.io.tables import read_table
from ..files import write_text
from ..reporting import require_matplotlib
from .base import MaskersInputSpec
from .connectivity import read_square
from .io import output_path


class _ConnectivityReportInputSpec(MaskersInputSpec):
    matrix_files = InputMultiObject(
        File(exists=True), desc="square matrix TSVs (ConnectivityMatrix's out_file), each "
        "drawn as a heatmap; their JSON sidecars (next to them) give the captions' details")
    qc_file = File(exists=True, desc="a DenoisingQC table (desc-qc_bold.tsv), shown as a "
                   "table with the units and descriptions of its sidecar")


class _ConnectivityReportOutputSpec(TraitedSpec):
    out_report = File(desc="the HTML fragment (a reportlet of RunReport)")


def _caption(path: str) -> str:
    """'atlas X: PearsonCorrelation (LedoitWolf, 95 volumes)' from the name and sidecar."""
    try:
        entities = parse_entities(path)
    except ValueError:
        entities = {}
    caption = f"atlas {entities.get('atlas', '?')}: {entities.get('meas', Path(path).stem)}"
    sidecar = sidecar_of(path)
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        details = [str(meta[key]) for key in ("Estimator",) if key in meta]
        if "NumberOfVolumes" in meta:
            details.append(f"{meta['NumberOfVolumes']} volumes")
        if meta.get("FisherZ"):
            details.append("Fisher z")
        if details:
            caption += f" ({', '.join(details)})"
    return caption


class ConnectivityReport(SimpleInterface):
    """One HTML fragment: the run's denoising QC table, then a heatmap per matrix."""

    input_spec = _ConnectivityReportInputSpec
    output_spec = _ConnectivityReportOutputSpec

    def _run_interface(self, runtime):
        require_matplotlib()
        from ..reporting.connectivity import connectivity_section, plot_matrix

        files = [str(f) for f in self.inputs.matrix_files] if isdefined(
            self.inputs.matrix_files) else []
        matrices = []
        for path in files:
            names, values = read_square(path, name="matrix_files")
            caption = _caption(path)
            matrices.append((caption, plot_matrix(values, names, title=caption)))
        qc = None
        if isdefined(self.inputs.qc_file):
            table = read_table(self.inputs.qc_file, name="qc_file", header=True,
                               delimiter="\t", numeric=False)
            figures = {}
            for column in table.columns:
                text = table.text(column)[0]
                try:
                    figures[column] = float(text)
                except ValueError:
                    figures[column] = None  # n/a
            sidecar = sidecar_of(self.inputs.qc_file)
            descriptions = (json.loads(sidecar.read_text(encoding="utf-8"))
                            if sidecar.is_file() else {})
            qc = (figures, descriptions)
        if not files and qc is None:
            raise ValueError("ConnectivityReport: give matrix_files or qc_file (nothing to "
                             "show)")
        source = files[0] if files else self.inputs.qc_file
        out = output_path(source, runtime.cwd, desc="connectivity", suffix="report",
                          extension=".html", meas=None, atlas=None)
        self._results["out_report"] = str(write_text(connectivity_section(matrices, qc), out))
        return runtime
