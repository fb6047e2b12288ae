"""Reports of surface and CIFTI runs: the sampled carpet (ordered by structure, then parcel),
the structures and coverage tables, the interface, the workflow, and the page in Chromium.

The CIFTI run is the demo's small layout (1,496 grayordinates, some voxels all zero); the
GIFTI pair is built here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from report_data import groups, parse

pytest.importorskip("matplotlib")
from PIL import Image  # matplotlib depends on pillow

from nipype_maskers.demo import cifti as demo_cifti
from nipype_maskers.reporting.surface import (
    cifti_labels_on,
    plot_surface_carpet,
    structure_label,
    structures_table_html,
    summarize_surface_run,
)

LAYOUT = demo_cifti.LAYOUT_SMALL
N_VOLUMES, T_R = 40, 1.5


@pytest.fixture(scope="module")
def cifti(tmp_path_factory):
    """The small-layout demo run (2 non-steady-state volumes), its atlases, the masker-like
    outputs computed here by hand (parcel means over the non-empty grayordinates)."""
    root = tmp_path_factory.mktemp("cifti")
    rng = np.random.default_rng(0)
    motion = np.cumsum(rng.normal(0, 0.05, (N_VOLUMES, 6)), axis=0) * [1, 1, 1, .01, .01, .01]
    run = demo_cifti.write_dtseries(
        root / "sub-01_task-rest_space-fsLR_den-91k_bold.dtseries.nii", LAYOUT, motion,
        t_r=T_R, seed=0, n_dummy=2)
    atlases = demo_cifti.write_cifti_atlases(root, LAYOUT)
    data = nib.load(run).get_fdata(dtype=np.float32)
    labels = np.asanyarray(nib.load(atlases.labels).dataobj)[0].astype(int)
    table = nib.load(atlases.labels).header.get_axis(0).label[0]
    kept = (data != 0).any(axis=0)
    keys = list(range(1, 100))
    regions = root / "sub-01_task-rest_space-fsLR_den-91k_atlas-X_regions.tsv"
    lines = ["index\tname\tvoxel_count\tcoverage\tvertex_count\tsubcortical_voxel_count"]
    grid = demo_cifti.grayordinates(LAYOUT)
    for key in keys:  # CiftiLabelsMasker's columns
        inside = labels == key
        vertices = int((inside & (grid.structure < 2)).sum())
        lines.append(f"{key}\t{table[key][0]}\t{int(inside.sum())}\t{kept[inside].mean():.4f}"
                     f"\t{vertices}\t{int(inside.sum()) - vertices}")
    regions.write_text("\n".join(lines) + "\n")
    means = np.column_stack([data[:, (labels == k) & kept].mean(axis=1) for k in keys])
    series = root / "sub-01_task-rest_space-fsLR_den-91k_atlas-X_timeseries.tsv"
    series.write_text("\t".join(table[k][0] for k in keys) + "\n" + "".join(
        "\t".join(f"{v:.3f}" for v in row) + "\n" for row in means))
    confounds = root / "regressors.tsv"
    confounds.write_text("trans_x\trot_z\n" + "".join(f"{a}\t{b}\n" for a, b in motion[:, [0, 5]]))
    fd = root / "fmriprep_confounds.tsv"
    fd.write_text("framewise_displacement\nn/a\n" + "".join(
        f"{v}\n" for v in np.abs(np.diff(motion[:, 0])) * 10))
    sample_mask = root / "sample_mask.tsv"
    sample_mask.write_text("sample_mask\n" + "".join(f"{i}\n" for i in range(2, N_VOLUMES)
                                                     if i != 20))
    return {"root": root, "run": run, "atlases": atlases, "data": data, "labels": labels,
            "kept": kept, "regions": regions, "series": series, "confounds": confounds,
            "fd": fd, "sample_mask": sample_mask, "structure": grid.structure}


@pytest.fixture(scope="module")
def gifti(tmp_path_factory):
    """A GIFTI pair (60 + 50 vertices, 12 volumes, TimeStep 2000 ms as some tools write):
    left vertex 3 all zero, right vertex 7 with a NaN; a label pair."""
    root = tmp_path_factory.mktemp("gifti")
    rng = np.random.default_rng(1)
    data = [rng.normal(100, 5, (12, 60)).astype(np.float32),
            rng.normal(100, 5, (12, 50)).astype(np.float32)]
    data[0][:, 3] = 0
    data[1][4, 7] = np.nan
    paths, labels = [], []
    for hemi, values, structure in (("L", data[0], "CortexLeft"), ("R", data[1], "CortexRight")):
        img = nib.GiftiImage(meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary":
                                                           structure}))
        for volume in values:
            img.add_gifti_data_array(nib.gifti.GiftiDataArray(
                volume, intent="NIFTI_INTENT_TIME_SERIES", datatype="NIFTI_TYPE_FLOAT32",
                meta={"TimeStep": "2000"}))
        path = root / f"sub-01_task-rest_hemi-{hemi}_space-fsaverage5_bold.func.gii"
        nib.save(img, path)
        paths.append(path)
        parcels = (np.arange(values.shape[1]) * 7 % 3 + 1).astype(np.int32)  # 1, 2, 3 mixed
        label_img = nib.GiftiImage(darrays=[nib.gifti.GiftiDataArray(
            parcels, intent="NIFTI_INTENT_LABEL", datatype="NIFTI_TYPE_INT32")])
        labels.append(root / f"hemi-{hemi}_atlas-Toy_dseg.label.gii")
        nib.save(label_img, labels[-1])
    return {"paths": paths, "labels": labels, "data": np.hstack(data)}


# --------------------------------------------------------------------------------------------
# Reading a run
# --------------------------------------------------------------------------------------------
def test_cifti_summary_samples_non_empty_grayordinates_by_structure_then_parcel(cifti):
    summary = summarize_surface_run([cifti["run"]], labels_file=[cifti["atlases"].labels],
                                    max_rows=300)
    rows = summary.rows
    assert summary.kind == "CIFTI" and summary.t_r == T_R and rows.size == 300
    np.testing.assert_array_equal(summary.carpet, cifti["data"][:, rows])
    assert cifti["kept"][rows].all()  # the empty grayordinates are not shown
    structure, parcel = cifti["structure"][rows], cifti["labels"][rows]
    assert np.all(np.diff(structure) >= 0)
    for s in np.unique(structure):  # within a structure, parcel by parcel
        assert np.all(np.diff(parcel[structure == s]) >= 0)
    assert [name for name, _ in summary.row_groups][:3] == [
        "CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT",
        "CIFTI_STRUCTURE_ACCUMBENS_LEFT"]
    assert sum(n for _, n in summary.row_groups) == 300
    # the structures: sizes of the layout, empty = the voxels under the field of view
    assert len(summary.structures) == 21
    assert [n for _, n, _ in summary.structures] == [586, 588, *LAYOUT.voxel_counts]
    empties = {name: e for name, _, e in summary.structures}
    assert sum(empties.values()) == int((~cifti["kept"]).sum()) > 0
    assert empties["CIFTI_STRUCTURE_CORTEX_LEFT"] == 0


def test_cifti_summary_without_atlas_keeps_file_order_and_takes_all_when_few(cifti):
    summary = summarize_surface_run(cifti["run"], max_rows=5000)
    assert summary.rows.tolist() == np.flatnonzero(cifti["kept"]).tolist()


def test_dlabel_is_matched_by_vertex_and_voxel_when_it_holds_more(cifti, tmp_path):
    """A run whose grayordinates are a subset of the atlas's (some vertices and a structure
    fewer): each grayordinate gets its own parcel."""
    full = demo_cifti.grayordinates(LAYOUT).axis
    subset = full[np.r_[10:580, 700:1300]]  # part of both cortices, some voxels
    parcels = cifti_labels_on(subset, cifti["atlases"].labels)
    np.testing.assert_array_equal(parcels, cifti["labels"][np.r_[10:580, 700:1300]])


def test_gifti_pair_summary(gifti):
    summary = summarize_surface_run(gifti["paths"], labels_file=gifti["labels"], max_rows=500)
    assert summary.kind == "GIFTI" and summary.t_r == 2.0  # TimeStep in ms
    assert summary.structures == [("CIFTI_STRUCTURE_CORTEX_LEFT", 60, 1),
                                  ("CIFTI_STRUCTURE_CORTEX_RIGHT", 50, 1)]
    assert 3 not in summary.rows and 60 + 7 not in summary.rows and summary.rows.size == 108
    np.testing.assert_array_equal(summary.carpet, gifti["data"][:, summary.rows])
    left = summary.rows[summary.rows < 60]
    assert np.all(np.diff(left * 7 % 3 + 1) >= 0)  # ordered by parcel within the hemisphere


@pytest.mark.parametrize("bad", [["a.func.gii"], ["a.dtseries.nii", "b.dtseries.nii"],
                                 ["a.nii.gz"]])
def test_bad_inputs_name_the_input(bad):
    with pytest.raises(ValueError, match=r"in_file: got .*expected one CIFTI file"):
        summarize_surface_run(bad)


def test_structure_labels():
    assert structure_label("CIFTI_STRUCTURE_DIENCEPHALON_VENTRAL_RIGHT") == (
        "diencephalon ventral R")


# --------------------------------------------------------------------------------------------
# Figure and tables
# --------------------------------------------------------------------------------------------
def test_carpet_figure_names_and_separates_structures(cifti):
    summary = summarize_surface_run(cifti["run"], labels_file=cifti["atlases"].labels)
    svg = plot_surface_carpet(summary, cleaned=[("after", summary.carpet[2:])],
                              sample_mask=list(range(2, N_VOLUMES)))
    root = parse(svg)
    assert list(groups(root, "panel-")) == ["panel-before", "panel-after-0"]
    names = [g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")
             if (g.get("id") or "").startswith("groups-")]
    # 21 structures: 20 separators per panel; the two cortices (and the cerebella) named
    for panel in ("before", "after-0"):
        assert sum(n.startswith(f"groups-{panel}-line-") for n in names) == 20
        assert f"groups-{panel}-name-0" in names
    assert "cortex L" in svg and "cortex R" in svg and "accumbens L" not in svg
    assert "grayordinates (sampled)" in svg and "TR 1.5 s" in svg


def test_structures_table(cifti):
    summary = summarize_surface_run(cifti["run"])
    table = structures_table_html(summary)
    assert table.count("<tr class=") == 21
    empty = int((~cifti["kept"]).sum())
    assert "1,496 grayordinates" in table and f"{empty:,} empty" in table
    assert re.search(r'<tr class="warn"><td>brain stem</td><td>\d+</td><td>[1-9]', table)


# --------------------------------------------------------------------------------------------
# Interface, workflow and browser
# --------------------------------------------------------------------------------------------
def test_interface_writes_one_fragment(cifti, tmp_path, monkeypatch):
    from nipype_maskers.interfaces.reports import SurfaceSignalsReport

    monkeypatch.chdir(tmp_path)
    result = SurfaceSignalsReport(
        in_file=str(cifti["run"]), labels_file=str(cifti["atlases"].labels),
        timeseries_files=[str(cifti["series"])], regions_files=[str(cifti["regions"])],
        atlas_names=["X"], confounds_file=str(cifti["confounds"]), fd_file=str(cifti["fd"]),
        sample_mask_file=str(cifti["sample_mask"]), max_grayordinates=200).run()
    out = Path(result.outputs.out_report)
    assert out.name == "sub-01_task-rest_space-fsLR_den-91k_desc-signals_report.html"
    assert Path(result.outputs.source_file).name == (
        "sub-01_task-rest_space-fsLR_den-91k_bold.dtseries.nii")
    fragment = out.read_text()
    assert fragment.startswith("<h3>Signals of the grayordinates (CIFTI)</h3>")
    assert fragment.count("<svg") == 1 and "Parcels of the atlas X" in fragment
    svg = parse(fragment[fragment.index("<svg"):fragment.index("</svg>") + 6])
    ids = [e.get("id") for e in svg.iter() if e.get("id")]
    assert ids and all(re.fullmatch(r"s[0-9a-f]{8}-.+", i) for i in ids)  # prefixed
    panels = [i.split("-", 1)[1] for i in ids if "-panel-" in i]
    assert panels == ["panel-fd", "panel-confounds", "panel-before", "panel-after-0",
                      "panel-after-1"]
    # the coverage table: counts are vertices + voxels, low coverage flagged
    parcels = fragment[fragment.index("Parcels of the atlas X"):]
    assert parcels.count("<tr class=") == 99 and "<th>grayordinates</th>" in parcels
    labels, kept = cifti["labels"], cifti["kept"]
    low = sum(1 for k in range(1, 100) if kept[labels == k].mean() < 0.5)
    assert f"{low} with less than 50% of their grayordinates with signal" in parcels
    count = int((labels == 85).sum())
    assert re.search(rf"<td>85</td><td>brain_stem</td><td>{count}</td>", parcels)
    # the swatches are the dlabel's colours
    rgba = nib.load(cifti["atlases"].labels).header.get_axis(0).label[0][85][1]
    colour = "#" + "".join(f"{round(255 * c):02x}" for c in rgba[:3])
    assert re.search(rf'background:{colour}"></span></td><td>85</td>', parcels)


def test_interface_gifti_pair_drops_the_hemisphere(gifti, tmp_path, monkeypatch):
    from nipype_maskers.interfaces.reports import SurfaceSignalsReport

    monkeypatch.chdir(tmp_path)
    result = SurfaceSignalsReport(in_file=[str(p) for p in gifti["paths"]],
                                  labels_file=[str(p) for p in gifti["labels"]]).run()
    assert Path(result.outputs.out_report).name == (
        "sub-01_task-rest_space-fsaverage5_desc-signals_report.html")
    assert "hemi-" not in Path(result.outputs.source_file).name
    fragment = Path(result.outputs.out_report).read_text()
    assert "Signals of the vertices (GIFTI)" in fragment and "vertices (sampled)" in fragment


def test_interface_errors(cifti, tmp_path, monkeypatch):
    from nipype_maskers.interfaces.reports import SurfaceSignalsReport

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="atlas_names: 2 names for 1 timeseries_files"):
        SurfaceSignalsReport(in_file=str(cifti["run"]), timeseries_files=[str(cifti["series"])],
                             atlas_names=["a", "b"]).run()
    bad = tmp_path / "regions.tsv"
    bad.write_text("index\tname\tcoverage\n1\ta\t1.0\n")
    with pytest.raises(ValueError, match="expected index, name, coverage and a count"):
        SurfaceSignalsReport(in_file=str(cifti["run"]), regions_files=[str(bad)]).run()


def test_regions_table_count_is_the_total_else_the_sum_of_parts(tmp_path):
    from nipype_maskers.reporting.surface import read_surface_regions_table

    total = tmp_path / "total.tsv"
    total.write_text("index\tname\tvoxel_count\tcoverage\tvertex_count\t"
                     "subcortical_voxel_count\n3\ta\t10\t0.5\t4\t6\n")
    assert read_surface_regions_table(str(total)) == [(3, "a", 10, 0.5)]
    parts = tmp_path / "parts.tsv"
    parts.write_text("index\tname\tcoverage\tvertex_count\tsubcortical_voxel_count\n"
                     "3\ta\t0.5\t4\t6\n")
    assert read_surface_regions_table(str(parts)) == [(3, "a", 10, 0.5)]
    parts.write_text("index\tname\tcoverage\tvertex_count\n3\ta\t0.5\t4.5\n")
    with pytest.raises(ValueError, match=r"line 2: vertex_count '4.5' is not an integer"):
        read_surface_regions_table(str(parts))


@pytest.fixture(scope="module")
def page(cifti, tmp_path_factory):
    from nipype_maskers.workflows.reports import init_surface_report_wf

    wf = init_surface_report_wf(atlas_names=["X"])
    wf.base_dir = str(tmp_path_factory.mktemp("work"))
    inputs = wf.inputs.inputnode
    inputs.bold_file = str(cifti["run"])
    inputs.labels_file = str(cifti["atlases"].labels)
    inputs.regressors_file = str(cifti["confounds"])
    inputs.sample_mask_file = str(cifti["sample_mask"])
    inputs.fd_file = str(cifti["fd"])
    inputs.timeseries_files = [str(cifti["series"])]
    inputs.regions_files = [str(cifti["regions"])]
    inputs.parameters = {"Space": "fsLR:den-91k"}
    result = wf.run()
    node = next(n for n in result.nodes() if n.name == "run_report")
    return Path(node.result.outputs.out_report)


def test_workflow_writes_the_runs_page(page):
    assert page.name == "sub-01_task-rest_space-fsLR_den-91k_report.html"
    text = page.read_text()
    assert text.count("<svg") == 1 and text.count("<section") == 2
    assert "Signals of the grayordinates (CIFTI)" in text and "fsLR:den-91k" in text
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="session")
def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed (tests/reports/test_report_html.py installs it)")
    return found


def test_page_renders_in_headless_chromium(page, chromium, tmp_path):
    out = tmp_path / "page.png"
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={out}",
               "--window-size=1280,1600", page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**os.environ})
    assert done.returncode == 0 and out.is_file(), done.stderr[-2000:]
    shot = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert shot.shape == (1600, 1280, 3)
    carpet = (np.abs(shot[..., 0] - shot[..., 1]) < 8) & (np.abs(shot[..., 1] - shot[..., 2])
                                                          < 8)
    grey = carpet & (shot[..., 0] > 30) & (shot[..., 0] < 220)
    assert grey.sum() > 100_000  # the carpets were drawn (grey levels), not only the text
    orange = (shot[..., 0] > 200) & (np.abs(shot[..., 1] - 140) < 50) & (shot[..., 2] < 90)
    assert orange.sum() > 500  # the structures' separators
    header = shot[:60].reshape(-1, 3)
    assert (np.abs(header - [0x1F, 0x3A, 0x5F]).max(axis=1) < 10).mean() > 0.5
