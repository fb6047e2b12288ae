"""Report interfaces and workflow, and the HTML report opened from disk by a real headless
Chromium (Debian's package, installed on first use when absent)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from report_data import (
    AFFINE,
    SHAPE,
    groups,
    parse,
)

pytest.importorskip("matplotlib")
from PIL import Image  # matplotlib depends on pillow

from nipype_maskers.reporting.html import assemble_report, read_reportlet


# --------------------------------------------------------------------------------------------
# Interfaces and the report in a browser
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reportlets(run, tmp_path_factory):
    """Every interface run once on the test run; a region masker gives the regions table."""
    from nipype_maskers.interfaces.regions import NiftiLabelsMasker
    from nipype_maskers.interfaces.reports import (
        AtlasReport,
        MaskReport,
        RunReport,
        SignalsReport,
    )

    root = tmp_path_factory.mktemp("interfaces")
    labels = np.zeros(SHAPE, np.int16)
    labels[3:11, 5:24, 4:14], labels[11:20, 5:24, 4:14] = 1, 2
    labels_file = root / "atlas-Toy_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, AFFINE), labels_file)
    rng = np.random.default_rng(1)
    confounds = root / "selected_confounds.tsv"
    confounds.write_text("trans_x\trot_x\n" + "".join(
        f"{rng.normal()}\t{rng.normal()}\n" for _ in range(16)))
    fmriprep = root / "confounds_timeseries.tsv"
    fd = np.r_[np.nan, np.abs(rng.normal(0, 0.2, 15))]
    fmriprep.write_text("trans_x\tframewise_displacement\n" + "".join(
        f"{rng.normal()}\t{'n/a' if np.isnan(f) else f}\n" for f in fd))
    sample_mask = root / "samplemask.tsv"
    kept = [i for i in range(16) if i not in (3, 4)]
    sample_mask.write_text("sample_mask\n" + "".join(f"{i}\n" for i in kept))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        masker = NiftiLabelsMasker(in_file=str(run["bold"]), labels_file=str(labels_file),
                                   mask_file=str(run["mask_file"]),
                                   sample_mask_file=str(sample_mask), detrend=True).run()
        mask = MaskReport(in_file=str(run["bold"]), mask_file=str(run["mask_file"]),
                          mask_strategy="given").run()
        mask_png = MaskReport(in_file=str(run["mean"]), mask_file=str(run["mask_file"]),
                              out_format="png").run()
        atlas = AtlasReport(in_file=str(run["mean"]), labels_file=str(labels_file),
                            regions_file=masker.outputs.regions_file, atlas_name="Toy",
                            mask_file=str(run["mask_file"])).run()
        signals = SignalsReport(in_file=str(run["bold"]), mask_file=str(run["mask_file"]),
                                confounds_file=str(confounds), fd_file=str(fmriprep),
                                sample_mask_file=str(sample_mask),
                                cleaned_files=[masker.outputs.out_file],
                                cleaned_labels=["labels Toy"], max_voxels=80).run()
        files = [mask.outputs.out_report, atlas.outputs.out_report, atlas.outputs.out_table,
                 signals.outputs.out_report]
        report = RunReport(reportlets=files, source_file=str(run["bold"]),
                           parameters={"MaskStrategy": "given", "Cleaning": {"detrend": True},
                                       "Note": "<b>escaped</b>"}).run()
    finally:
        os.chdir(cwd)
    return {"files": files, "png": mask_png.outputs.out_report,
            "html": Path(report.outputs.out_report), "masker": masker}


def test_interfaces_write_named_reportlets(reportlets):
    names = [Path(f).name for f in reportlets["files"]]
    assert names == ["sub-01_task-rest_desc-mask_report.svg",
                     "mean_atlas-Toy_desc-labels_report.svg",
                     "mean_atlas-Toy_desc-labelsregions_report.html",
                     "sub-01_task-rest_desc-signals_report.svg"]
    assert Path(reportlets["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    signals = parse(Path(reportlets["files"][3]).read_text())
    assert list(groups(signals, "panel-")) == ["panel-fd", "panel-confounds", "panel-before",
                                               "panel-after-0", "panel-after-1"]
    table = Path(reportlets["files"][2]).read_text()
    assert table.count("<tr class=") == 2 and ">Toy" not in table
    assert reportlets["html"].name == "sub-01_task-rest_report.html"


def test_html_report_is_self_contained(reportlets):
    page = reportlets["html"].read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 3 and page.count("<section") == 5
    for external in ("<script", "<link", "@import", 'src="http', "src='http", 'href="http',
                     "url(http", "<iframe"):
        assert external not in page
    assert "&lt;b&gt;escaped&lt;/b&gt;" in page and "Cleaning.detrend" in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    section = read_reportlet(reportlets["files"][0], 1)
    assert section.title == "Brain mask: given"
    assert assemble_report("t", [section]).count("<section") == 2


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium, installed with apt-get when absent (needs root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and apt-get (as root) is unavailable")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq",
                                                   "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
        if done.returncode:
            pytest.skip(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but it is not on PATH")
    return found


def screenshot(chromium, page: Path, out: Path, tmp_path: Path, height: int = 2000) -> None:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={out}",
               f"--window-size=1280,{height}", page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and out.is_file(), done.stderr[-2000:]


def test_report_renders_in_headless_chromium(reportlets, chromium, tmp_path):
    out = tmp_path / "report.png"
    screenshot(chromium, reportlets["html"], out, tmp_path)
    shot = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert shot.shape == (2000, 1280, 3)
    assert shot.std() > 30
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 500
    # the inline SVGs were drawn, not only the text: the mask outline's red and the blue tint
    red = (shot[..., 0] > 200) & (shot[..., 1] < 70) & (shot[..., 2] < 70)
    blue = shot[..., 2] - shot[..., 0] > 60
    assert red.sum() > 200 and blue.sum() > 2000
    header = shot[:60].reshape(-1, 3)  # the dark blue title bar
    assert (np.abs(header - [0x1F, 0x3A, 0x5F]).max(axis=1) < 10).mean() > 0.5


# --------------------------------------------------------------------------------------------
# Without matplotlib
# --------------------------------------------------------------------------------------------
def test_everything_imports_without_matplotlib_and_reports_say_how_to_install(run, tmp_path):
    code = textwrap.dedent(f"""
        import sys, importlib, pkgutil
        sys.modules["matplotlib"] = None  # import matplotlib -> ImportError
        import nipype_maskers, nipype_maskers.interfaces as interfaces
        for m in pkgutil.iter_modules(interfaces.__path__):
            importlib.import_module("nipype_maskers.interfaces." + m.name)
        for m in ("slices", "figures", "mask", "atlas", "carpet", "html", "surface"):
            importlib.import_module("nipype_maskers.reporting." + m)
        import nipype_maskers.workflows.reports
        from nipype_maskers.interfaces.reports import MaskReport, RunReport
        frag = {str(tmp_path / "t.html")!r}
        open(frag, "w").write("<h3>T</h3><p>x</p>")
        import os; os.chdir({str(tmp_path)!r})
        RunReport(reportlets=[frag]).run()  # the HTML needs no matplotlib
        try:
            MaskReport(in_file={str(run["mean"])!r}, mask_file={str(run["mask_file"])!r}).run()
        except ImportError as exc:
            print("ERROR:", exc)
    """)
    # run outside the repository: its nipype_maskers/ would shadow the installed package
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ERROR:" in done.stdout and "pip install nipype-maskers[reports]" in done.stdout


# --------------------------------------------------------------------------------------------
# Workflow
# --------------------------------------------------------------------------------------------
def test_report_workflow_graph_and_run(run, tmp_path, monkeypatch):
    from nipype_maskers.workflows.reports import init_report_wf
    from nipype_maskers.workflows.timeseries import LabelsAtlas, SpheresAtlas

    seeds = tmp_path / "seeds.tsv"
    seeds.write_text("x\ty\tz\tname\n-10\t-6\t0\ta\n8\t4\t9\tb\n")
    labels = [LabelsAtlas("Toy", run["mask_file"])]
    wf = init_report_wf(labels=labels, spheres=[SpheresAtlas("Balls", seeds, 5.0)])
    names = set(wf.list_node_names())
    assert {"inputnode", "summarize_bold", "report_mask", "report_labels_Toy",
            "report_spheres_Balls", "report_signals", "merge_reportlets", "run_report",
            "outputnode"} <= names
    merge = wf.get_node("merge_reportlets")
    sources = {e[0].name: e[2]["connect"] for e in wf._graph.in_edges(merge, data=True)}
    assert sources["report_labels_Toy"] == [("out_report", "in2"), ("out_table", "in3")]
    assert sources["report_signals"] == [("out_report", "in6")]
    # a real run: the spheres only (the run's own regions table from a masker)
    from nipype_maskers.interfaces.regions import NiftiSpheresMasker

    monkeypatch.chdir(tmp_path)
    spheres = NiftiSpheresMasker(in_file=str(run["bold"]), seeds_file=str(seeds),
                                 radius=5.0, mask_file=str(run["mask_file"])).run()
    wf = init_report_wf(spheres=[SpheresAtlas("Balls", seeds, 5.0)])
    wf.base_dir = str(tmp_path / "work")
    wf.inputs.inputnode.bold_file = str(run["bold"])
    wf.inputs.inputnode.mask_file = str(run["mask_file"])
    wf.inputs.inputnode.mask_strategy = "epi"
    wf.inputs.inputnode.timeseries_files = [spheres.outputs.out_file]
    wf.inputs.inputnode.regions_files = [spheres.outputs.regions_file]
    wf.inputs.inputnode.parameters = {"MaskStrategy": "epi"}
    result = wf.run()
    node = next(n for n in result.nodes() if n.name == "run_report")
    page = Path(node.result.outputs.out_report).read_text()
    assert page.count("<svg") == 3 and "Spheres atlas Balls" in page
    assert "Regions of the spheres atlas Balls" in page
