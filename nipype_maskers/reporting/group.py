"""The group HTML report: per-run QC with the flagged runs, QC-FC and the group matrices.

One section for the runs (mean FD, % censored..., flagged rows highlighted, with the reason),
then per atlas group a figure (QC-FC histogram, QC-FC against inter-region distance when the
atlas has centroids, the group mean matrix) and the QC-FC summary. Figures are inline SVG
(:mod:`.figures`), the page is :func:`.html.assemble_report`'s: self-contained, no script.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .figures import FIG_WIDTH, new_figure, save
from .html import Section, assemble_report, inline_svg

#: QC figures shown per run (the desc-qc table's columns), with their headings.
QC_COLUMNS = (("mean_fd", "mean FD (mm)"), ("max_fd", "max FD (mm)"),
              ("percent_censored", "% censored"), ("dof_remaining", "dof left"),
              ("remaining_duration", "duration left (s)"))
#: QC-FC summary figures shown per atlas, with their headings.
SUMMARY_COLUMNS = (("n_subjects", "runs"), ("n_edges", "edges"),
                   ("median_abs_qcfc", "median |QC-FC|"),
                   ("percent_significant", "% edges p < 0.05"),
                   ("percent_significant_fdr", "% edges q < 0.05 (FDR)"),
                   ("distance_dependence", "distance dependence (r)"))


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def subjects_table(samples: Sequence[Any], *, fd_max: float, censored_max: float,
                   include_flagged: bool) -> str:
    """The runs' QC as an HTML table; flagged rows have class ``bad`` and say why."""
    unique = list({s.label: s for s in samples}.values())
    flagged = [s for s in unique if s.flags]
    fate = "kept in" if include_flagged else "left out of"
    listed = (f" ({html.escape(', '.join(s.label for s in flagged))}), {fate} the group "
              "matrices and QC-FC" if flagged else "")
    lines = [f"<p>{len(unique)} run(s); flagged when mean FD &gt; {fd_max:g} mm or more than "
             f"{censored_max:g}% of the volumes are censored: {len(flagged)}{listed}.</p>",
             '<div class="regions"><table><thead><tr><th>run</th>'
             + "".join(f"<th>{title}</th>" for _, title in QC_COLUMNS)
             + "<th>flagged</th></tr></thead><tbody>"]
    for sample in unique:
        css = ' class="bad"' if sample.flags else ""
        cells = "".join(f'<td class="value">{_cell(sample.qc.get(key))}</td>'
                        for key, _ in QC_COLUMNS)
        lines.append(f"<tr{css}><td>{html.escape(sample.label)}</td>{cells}"
                     f"<td>{html.escape('; '.join(sample.flags))}</td></tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def summary_table(summary: Mapping[str, Any]) -> str:
    """The QC-FC summary of one atlas as a one-row HTML table."""
    head = "".join(f"<th>{title}</th>" for _, title in SUMMARY_COLUMNS)
    row = "".join(f'<td class="value">{_cell(summary.get(key))}</td>'
                  for key, _ in SUMMARY_COLUMNS)
    return f"<table><thead><tr>{head}</tr></thead><tbody><tr>{row}</tr></tbody></table>"


def qcfc_figure(qcfc: np.ndarray, distance: np.ndarray, matrix: np.ndarray | None, *,
                title: str, matrix_title: str, no_distance: str) -> str:
    """SVG: QC-FC histogram, QC-FC against distance (or why not), the group matrix."""
    fig = new_figure(3.6, FIG_WIDTH)
    fig.suptitle(title, x=0.02, ha="left", fontsize=11, fontweight="bold")
    finite = np.isfinite(qcfc)
    hist = fig.add_axes((0.05, 0.14, 0.27, 0.68))
    hist.set_gid("panel-qcfc-histogram")
    hist.hist(qcfc[finite], bins=30, range=(-1, 1), color="#1f3a5f")
    hist.axvline(0, color="#b3261e", linewidth=0.8)
    from matplotlib.ticker import MaxNLocator

    hist.yaxis.set_major_locator(MaxNLocator(integer=True))  # edge counts
    hist.set_xlabel("QC-FC (r between edge and mean FD)")
    hist.set_ylabel("edges")
    hist.set_title(f"QC-FC over {int(finite.sum())} edges", fontsize=9)
    scatter = fig.add_axes((0.39, 0.14, 0.27, 0.68))
    scatter.set_gid("panel-distance-dependence")
    both = finite & np.isfinite(distance)
    if both.any():
        scatter.scatter(distance[both], qcfc[both], s=3, alpha=0.5, color="#1f3a5f",
                        rasterized=True)
        scatter.axhline(0, color="#b3261e", linewidth=0.8)
        scatter.set_xlabel("distance between regions (mm)")
        scatter.set_ylabel("QC-FC")
        scatter.set_title("distance dependence", fontsize=9)
    else:
        scatter.set_axis_off()
        scatter.text(0.5, 0.5, no_distance, ha="center", va="center", fontsize=9)
    heat = fig.add_axes((0.72, 0.14, 0.22, 0.68))
    heat.set_gid("panel-group-matrix")
    if matrix is not None:
        limit = float(np.nanmax(np.abs(matrix - np.diag(np.diag(matrix))))) or 1.0
        image = heat.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit,
                            interpolation="nearest")
        fig.colorbar(image, ax=heat, fraction=0.046, pad=0.04)
        heat.set_title(matrix_title, fontsize=9)
        heat.set_xticks([])
        heat.set_yticks([])
    else:
        heat.set_axis_off()
    return save(fig, "svg", title=title)


def group_report(groups: Sequence[Any], results: Sequence[Mapping[str, Any]], *,
                 kinds: Sequence[str], fd_max: float, censored_max: float,
                 include_flagged: bool) -> str:
    """The whole group report (HTML text) from the atlas groups and their results."""
    from ..core.io.tables import read_table
    from ..interfaces.connectivity import read_square

    samples = [s for g in groups for s in g.samples]
    sections = [Section("Runs and QC", subjects_table(
        samples, fd_max=fd_max, censored_max=censored_max, include_flagged=include_flagged))]
    for number, (atlas_group, result) in enumerate(zip(groups, results, strict=True)):
        edges = read_table(result["edges_file"], name="QC-FC edges", header=True,
                           delimiter="\t", numeric=False)
        qcfc, distance = edges.numbers(["qcfc"])[:, 0], edges.numbers(["distance"])[:, 0]
        kind = next((k for k in kinds if k == "correlation"), kinds[0] if kinds else None)
        matrix, matrix_title = None, ""
        if kind is not None:
            _, matrix = read_square(result["mean_files"][kind], name="group matrix")
            matrix_title = ("geometric mean covariance" if kind == "tangent"
                            else f"group mean {kind.replace('_', ' ')}")
        name = f"atlas {atlas_group.atlas}" + (f" ({atlas_group.key})" if atlas_group.key
                                                else "")
        no_distance = ("no distance dependence:\na maps atlas or a surface atlas\n"
                       "has no region centroids")
        svg = qcfc_figure(qcfc, distance, matrix, title=f"QC-FC, {name}",
                          matrix_title=matrix_title, no_distance=no_distance)
        files = ", ".join(html.escape(str(path).rsplit("/", 1)[-1])
                          for path in result["mean_files"].values())
        body = (f'<div class="reportlet">{inline_svg(svg, f"g{number}-")}</div>\n'
                f"<p>{len(result['kept'])} run(s). Group matrices: {files}.</p>\n"
                + summary_table(result["summary"]))
        sections.append(Section(f"QC-FC and group matrix: {name}", body))
    parameters = {"qc_fd_max_mm": fd_max, "qc_censored_max_percent": censored_max,
                  "flagged_runs": "kept" if include_flagged else "left out",
                  "connectivity": list(kinds)}
    return assemble_report("nipype-maskers group report", sections, parameters,
                           subtitle=f"{len({s.label for s in samples})} run(s), "
                           f"{len(groups)} atlas group(s)")
