"""Visual reports: what is drawn is checked against the data, and the HTML renders in Chromium.

The figures are read back: SVGs are parsed, their embedded images decoded and their outline
paths mapped to image pixels; the mask outline is checked voxel edge by voxel edge against
the mask, in the SVG and in a PNG rendering. The HTML report is opened from disk by a real
headless Chromium (Debian's package, installed on first use when absent).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from synthetic import make_epi

pytest.importorskip("matplotlib")
from PIL import Image  # matplotlib depends on pillow

from nipype_maskers.reporting import carpet, slices
from nipype_maskers.reporting.atlas import (
    plot_labels,
    plot_maps,
    plot_spheres,
    regions_table_html,
)
from nipype_maskers.reporting.html import assemble_report, inline_svg, read_reportlet
from nipype_maskers.reporting.mask import plot_mask

SVG = "{http://www.w3.org/2000/svg}"
SHAPE = (23, 27, 19)
#: Axis-aligned RAS+ grid with anisotropic voxels: displayed pixels are voxels as stored.
AFFINE = np.array([[2.5, 0, 0, -28.0], [0, 2.0, 0, -26.0], [0, 0, 3.0, -27.0], [0, 0, 0, 1]])


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 4D run (bright ellipsoid 'brain', background 0), its mean, a mask cut on 3 sides."""
    root = tmp_path_factory.mktemp("reports")
    data, brain = make_epi(SHAPE, n_volumes=16)
    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    bold = root / "sub-01_task-rest_desc-preproc_bold.nii.gz"
    nib.save(img, bold)
    mean = root / "mean.nii.gz"
    nib.save(nib.Nifti1Image(data.mean(axis=3), AFFINE), mean)
    mask = brain.copy()
    mask[:, 20:, :] = False  # the front of the 'brain' is left out, and (so that no
    mask[:6, :, :] = False  # flip of any axis can go unnoticed) its left side and bottom
    mask[:, :, :4] = False
    mask_file = root / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), AFFINE), mask_file)
    return {"root": root, "bold": bold, "mean": mean, "data": data, "brain": brain,
            "mask": mask, "mask_file": mask_file}


def displayed(volume, axis, k):
    """What the report must show at slice k (RAS+ grid): the subject's left on the left,
    superior (axial: anterior) at the top; sagittal: posterior on the left."""
    if axis == 2:
        plane = volume[:, :, k]  # (x, y): columns x ascending, rows y descending
    elif axis == 1:
        plane = volume[:, k, :]  # (x, z)
    else:
        plane = volume[k, :, :]  # (y, z)
    return plane.T[::-1]


# --------------------------------------------------------------------------------------------
# Reading figures back
# --------------------------------------------------------------------------------------------
def parse(svg):
    return ET.fromstring(svg.encode("utf-8"))


def groups(root, prefix):
    return {g.get("id"): g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith(prefix)}


def embedded_image(group):
    """The panel's image as an RGB array and its placement (sx, sy, tx, ty) in SVG units."""
    image = next(group.iter(f"{SVG}image"))
    href = image.get("{http://www.w3.org/1999/xlink}href") or image.get("href")
    data = base64.b64decode(href.split(",", 1)[1])
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert (int(image.get("width")), int(image.get("height"))) == (rgb.shape[1], rgb.shape[0])
    a, b, c, d, e, f = (float(v) for v in re.findall(r"[-\d.e]+", image.get("transform")))
    assert b == c == 0
    return rgb, (a, d, e, f)


def path_segments(group):
    """The line segments of a path of moves and lines, in SVG units (zero-length ones,
    which matplotlib may append, dropped)."""
    d = next(group.iter(f"{SVG}path")).get("d")
    commands = re.findall(r"([A-Za-z])\s*([-\d.e]+)\s+([-\d.e]+)", d)
    assert {cmd for cmd, _, _ in commands} <= {"M", "L"}, "only straight segments expected"
    segments, current = [], None
    for cmd, x, y in commands:
        point = (float(x), float(y))
        if cmd == "L" and point != current:
            segments.append((current, point))
        current = point
    return np.array(segments)


def unit_edges(segments, placement):
    """Segments in image pixel units, split into unit edges ('v'|'h', column, row)."""
    sx, sy, tx, ty = placement
    uv = np.stack([(segments[..., 0] - tx) / sx, (segments[..., 1] - ty) / sy], axis=-1)
    assert np.allclose(uv, np.rint(uv), atol=2e-3), "outline vertices must lie on pixel edges"
    uv = np.rint(uv).astype(int)
    out = set()
    for (u0, v0), (u1, v1) in uv:
        if u0 == u1:
            out.update(("v", u0, v) for v in range(min(v0, v1), max(v0, v1)))
        else:
            assert v0 == v1
            out.update(("h", u, v0) for u in range(min(u0, u1), max(u0, u1)))
    return out


def boundary_edges(region):
    """Unit edges between pixels in and out of ``region`` (outside the image is out)."""
    padded = np.pad(region, 1)
    rows, cols = np.nonzero(padded[1:-1, 1:] != padded[1:-1, :-1])
    edges = {("v", c, r) for r, c in zip(rows, cols, strict=True)}
    rows, cols = np.nonzero(padded[1:, 1:-1] != padded[:-1, 1:-1])
    return edges | {("h", c, r) for r, c in zip(rows, cols, strict=True)}


def tinted(rgb):
    """Pixels tinted with the kept-voxel blue (grey pixels have R == B)."""
    return rgb[..., 2].astype(int) - rgb[..., 0].astype(int) > 40


def tiles(rgb):
    """Column ranges of the tiles (separated by all-white columns)."""
    content = ~(rgb == 255).all(axis=(0, 2))
    step = np.diff(np.r_[0, content.astype(int), 0])
    return list(zip(np.flatnonzero(step == 1), np.flatnonzero(step == -1), strict=True))


def slice_labels(group):
    return [(m.group(1), float(m.group(2))) for t in group.iter(f"{SVG}text")
            if (m := re.fullmatch(r"([xyz]) = (-?\d+) mm", "".join(t.itertext()).strip()))]


def texts(root):
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


# --------------------------------------------------------------------------------------------
# Mask report
# --------------------------------------------------------------------------------------------
def test_mask_report_panels_and_numbers(run):
    svg = plot_mask(run["mean"], run["mask_file"], strategy="epi")
    root = parse(svg)
    assert sorted(groups(root, "panel-")) == ["panel-axial", "panel-coronal", "panel-sagittal"]
    n = int(run["mask"].sum())
    words = " ".join(texts(root))
    assert "Brain mask: epi" in words
    assert f"{n:,} voxels kept = {n * 2.5 * 2.0 * 3.0 / 1000:,.1f} mL" in words
    left_out = (run["brain"] & ~run["mask"]).sum() / run["brain"].sum()
    assert f"bright voxels left out: {left_out:.1%}" in words
    assert "CHECK THE MASK" in words  # the front is cut: flagged
    assert root.find(f"{SVG}title").text == "Brain mask: epi"


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_mask_outline_is_the_mask_boundary_in_the_svg(run, axis):
    """The tinted voxels of each tile are the mask's section at the labelled coordinate, and
    the outline path runs exactly along their boundary (every edge, nothing else)."""
    root = parse(plot_mask(run["mean"], run["mask_file"], n_slices=5))
    name = slices.AXIS_NAMES[axis][0]
    panel = groups(root, "panel-")[f"panel-{name}"]
    rgb, placement = embedded_image(panel)
    kept = tinted(rgb)
    labels = slice_labels(panel)
    columns = tiles(rgb)
    assert len(labels) == len(columns) == 5
    checked = 0
    for (letter, coord), (c0, c1) in zip(labels, columns, strict=True):
        assert letter == "xyz"[axis]
        k = round(float((coord - AFFINE[axis, 3]) / AFFINE[axis, axis]))
        expected = displayed(run["mask"], axis, k)
        tile = kept[:, c0:c1]
        assert tile.sum() == expected.sum()  # the whole section is shown
        if not expected.any():
            continue
        (r_t, c_t), (r_e, c_e) = (np.argwhere(x).min(axis=0) for x in (tile, expected))
        r, c = r_e - r_t, c_e - c_t
        window = expected[r:r + tile.shape[0], c:c + tile.shape[1]]
        np.testing.assert_array_equal(tile, window)
        checked += 1
    assert checked >= 4
    outline = groups(root, "outline-")[f"outline-{name}"]
    assert unit_edges(path_segments(outline), placement) == boundary_edges(kept)


def test_mask_outline_pixels_lie_on_the_mask_boundary_in_the_png(run):
    """Rendered to PNG, the red pixels of every panel sit on the mask's boundary voxels,
    and the outline is drawn along (nearly) all of it."""
    root = parse(plot_mask(run["mean"], run["mask_file"]))
    png = np.asarray(Image.open(io.BytesIO(plot_mask(run["mean"], run["mask_file"],
                                                     fmt="png"))).convert("RGB")).astype(int)
    scale = 100 / 72  # PNG pixels per SVG unit (pt)
    red = (png[..., 0] > 180) & (png[..., 1] < 90) & (png[..., 2] < 90)
    for name, panel in groups(root, "panel-").items():
        rgb, (sx, sy, tx, ty) = embedded_image(panel)
        kept = tinted(rgb)
        padded = np.pad(kept, 1)
        differs = np.zeros_like(kept)  # voxels touching the boundary (by an edge or corner)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                differs |= kept != padded[1 + dr:1 + dr + kept.shape[0],
                                          1 + dc:1 + dc + kept.shape[1]]
        x0, x1 = int(tx * scale), int(np.ceil((tx + sx * kept.shape[1]) * scale))
        y0, y1 = int(ty * scale), int(np.ceil((ty + sy * kept.shape[0]) * scale))
        ys, xs = np.nonzero(red[y0:y1, x0:x1])
        u = np.floor(((xs + x0 + 0.5) / scale - tx) / sx).astype(int)
        v = np.floor(((ys + y0 + 0.5) / scale - ty) / sy).astype(int)
        inside = (u >= 0) & (u < kept.shape[1]) & (v >= 0) & (v < kept.shape[0])
        assert inside.all() and len(u) > 100, name
        assert differs[v, u].mean() > 0.99, f"{name}: red pixels off the mask's boundary"
        edges = boundary_edges(kept)
        hits = 0
        for kind, c, r in edges:
            mu, mv = (c, r + 0.5) if kind == "v" else (c + 0.5, r)
            px, py = int((tx + sx * mu) * scale), int((ty + sy * mv) * scale)
            hits += red[py - 1:py + 2, px - 1:px + 2].any()
        assert hits / len(edges) > 0.95, f"{name}: outline missing along the boundary"


def test_wrong_masks_are_flagged(run, tmp_path):
    brain = run["brain"]
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), AFFINE), good)
    assert "CHECK THE MASK" not in " ".join(texts(parse(plot_mask(run["mean"], good))))
    background = brain.copy()
    background[1:-1, 1:-1, 1:-1] = True  # skull and background included
    path = tmp_path / "background.nii.gz"
    nib.save(nib.Nifti1Image(background.astype(np.uint8), AFFINE), path)
    words = " ".join(texts(parse(plot_mask(run["mean"], path))))
    dark = (background & ~brain).sum() / background.sum()
    assert f"mask voxels in the dark background: {dark:.1%}" in words
    assert "CHECK THE MASK" in words and dark > 0.3


def test_a_mask_on_another_grid_is_resampled_for_display_only(run):
    fine = AFFINE.copy()
    fine[:3, :3] /= 2
    fine[:3, 3] -= np.diag(fine)[:3] / 2  # the same field of view, voxels halved
    mask = np.repeat(np.repeat(np.repeat(run["mask"], 2, 0), 2, 1), 2, 2).astype(np.uint8)
    root = parse(plot_mask(run["mean"], nib.Nifti1Image(mask, fine)))
    words = " ".join(texts(root))
    n = int(mask.sum())
    assert f"{n:,} voxels kept = {n * 15 / 8 / 1000:,.1f} mL" in words
    assert "mask resampled onto the image's grid for display" in words
    rgb, _ = embedded_image(groups(root, "panel-")["panel-axial"])
    reference, _ = embedded_image(groups(parse(plot_mask(run["mean"], run["mask_file"])),
                                         "panel-")["panel-axial"])
    np.testing.assert_array_equal(tinted(rgb), tinted(reference))


def test_orientation_follows_the_affine_not_the_voxel_order(run):
    """A run stored LPS (x and y flipped) is shown exactly as the same run stored RAS."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps = AFFINE.copy()
    lps[:3, :3] = AFFINE[:3, :3] @ flip[:3, :3]
    lps[:3, 3] = AFFINE[:3, :3] @ [SHAPE[0] - 1, SHAPE[1] - 1, 0] + AFFINE[:3, 3]
    data = nib.load(run["mean"]).get_fdata(dtype=np.float32)
    mask = run["mask"].astype(np.uint8)
    ras = plot_mask(nib.Nifti1Image(data, AFFINE), nib.Nifti1Image(mask, AFFINE))
    flipped = plot_mask(nib.Nifti1Image(data[::-1, ::-1].copy(), lps),
                        nib.Nifti1Image(mask[::-1, ::-1].copy(), lps))
    for name, panel in groups(parse(ras), "panel-").items():
        other = groups(parse(flipped), "panel-")[name]
        np.testing.assert_array_equal(embedded_image(panel)[0], embedded_image(other)[0])
        assert slice_labels(panel) == slice_labels(other)


# --------------------------------------------------------------------------------------------
# Atlas reports
# --------------------------------------------------------------------------------------------
def test_labels_report_colours_match_the_regions_table(run, tmp_path):
    labels = np.zeros(SHAPE, np.int16)
    labels[3:11, 5:20, 4:14] = 2
    labels[11:20, 5:20, 4:14] = 7
    svg = plot_labels(run["mean"], nib.Nifti1Image(labels, AFFINE), mask=run["mask_file"])
    root = parse(svg)
    assert len(groups(root, "panel-")) == 3
    assert len(groups(root, "outline-")) == 3
    for panel in groups(root, "panel-").values():  # the data, and the borders rasterized
        assert len(list(panel.iter(f"{SVG}image"))) == 2
    rgb, _ = embedded_image(groups(root, "panel-")["panel-axial"])
    for value in (2, 7):  # each label's hue is in the picture: grey * 0.55 + colour * 0.45
        colour = slices.hex_rgb(slices.region_colour(value)) * 255
        chroma = rgb.astype(float) - rgb.mean(axis=-1, keepdims=True)
        target = colour - colour.mean()
        match = np.abs(chroma - 0.45 * target).max(axis=-1) < 4
        assert match.sum() > 20, value
    table = regions_table_html([(2, "left", 120, 1.0), (7, "right", 80, 0.25),
                                (9, "gone", 0, float("nan"))], title="Regions")
    assert table.count("<tr class=") == 3
    assert f'background:{slices.region_colour(7)}' in table
    assert '<tr class="warn"><td>' in table and '<tr class="bad"><td>' in table
    assert "1 empty" in table and "1 with less than 50%" in table


def test_maps_report_draws_the_strongest_maps(run):
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1)
    centres, widths = [(6, 8, 8), (16, 10, 10), (11, 18, 7)], [2.0, 3.0, 1.0]
    maps = np.stack([np.exp(-((grid - c) ** 2).sum(-1) / (2 * w**2)) for c, w in
                     zip(centres, widths, strict=True)], axis=-1).astype(np.float32)
    root = parse(plot_maps(run["mean"], nib.Nifti1Image(maps, AFFINE), n_maps=2))
    assert len(groups(root, "panel-")) == 3
    drawn = {g.split("-")[1] for g in groups(root, "map-")}
    assert drawn == {"0", "1"}  # the narrow map 2 has the least weight
    axial = slice_labels(groups(root, "panel-")["panel-axial"])
    assert sorted(round((z - AFFINE[2, 3]) / 3.0) for _, z in axial) == [8, 10]  # the peaks


def test_spheres_report_marks_every_seed(run):
    seeds = np.array([[-10.0, -6.0, 0.0], [8.0, 4.0, 9.0]])
    root = parse(plot_spheres(run["mean"], seeds, 5.0, mask=run["mask_file"]))
    assert len(groups(root, "panel-")) == 3
    circles = groups(root, "sphere-")
    assert {name.split("-")[1] for name in circles} == {"0", "1"}
    for axis in range(3):
        panel = groups(root, "panel-")[f"panel-{slices.AXIS_NAMES[axis][0]}"]
        coords = sorted(c for _, c in slice_labels(panel))
        want = sorted(AFFINE[axis, axis] * round((s[axis] - AFFINE[axis, 3]) /
                                                 AFFINE[axis, axis]) + AFFINE[axis, 3]
                      for s in seeds)
        np.testing.assert_allclose(coords, np.round(want), atol=0.5)


# --------------------------------------------------------------------------------------------
# Carpet
# --------------------------------------------------------------------------------------------
def test_summarize_bold_is_one_pass_of_the_mean_and_sampled_voxels(run):
    summary = carpet.summarize_bold(run["bold"], run["mask_file"], max_voxels=50)
    np.testing.assert_allclose(summary.mean.get_fdata(), run["data"].mean(axis=3),
                               rtol=1e-6, atol=1e-4)
    flat = run["data"].reshape(-1, run["data"].shape[3], order="F")
    np.testing.assert_array_equal(summary.carpet, flat[summary.voxels].T)
    assert len(summary.voxels) == 50
    assert run["mask"].ravel(order="F")[summary.voxels].all()


def test_carpet_panels_and_censored_volumes(rng):
    raw = rng.normal(size=(30, 40)).astype(np.float32)
    raw[12] += 6.0  # a spike
    kept = [i for i in range(30) if i not in (0, 1, 12, 13)]
    confounds = rng.normal(size=(30, 3))
    fd = np.abs(rng.normal(0, 0.1, 30))
    cleaned = carpet.clean_for_display(raw, confounds=confounds, sample_mask=kept)
    svg = carpet.plot_carpet(raw, cleaned=[("cleaned", cleaned), ("regions", raw[kept, :5])],
                             confounds=confounds, confound_names=["a", "b", "c"],
                             sample_mask=kept, fd=fd, fd_threshold=0.2, t_r=2.0)
    root = parse(svg)
    assert list(groups(root, "panel-")) == ["panel-fd", "panel-confounds", "panel-before",
                                            "panel-after-0", "panel-after-1"]
    assert "30 volumes (TR 2 s); 4 censored (13%), 26 kept; 3 confounds" in " ".join(
        texts(root))
    for name in ("panel-after-0", "panel-after-1"):
        rgb, _ = embedded_image(groups(root, "panel-")[name])
        assert rgb.shape[1] == 30  # one column per volume
        blank = (rgb == [244, 199, 199]).all(axis=-1).all(axis=0)
        assert np.flatnonzero(blank).tolist() == [0, 1, 12, 13]
    rgb, _ = embedded_image(groups(root, "panel-")["panel-before"])
    assert rgb[:, 12].mean() > rgb[:, 20].mean() + 60  # the spike stands out, white
    only = parse(carpet.plot_carpet(raw))
    assert list(groups(only, "panel-")) == ["panel-before"]
    with pytest.raises(ValueError, match="cleaned: has 7 rows; expected 30 .* or 26"):
        carpet.plot_carpet(raw, cleaned=[("cleaned", raw[:7])], sample_mask=kept)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------
def test_inline_svgs_get_unique_ids(run):
    svg = plot_mask(run["mean"], run["mask_file"])
    first, second = inline_svg(svg, "r1-"), inline_svg(svg, "r2-")
    ids = re.findall(r'\bid="([^"]+)"', first + second)
    assert len(ids) == len(set(ids)) > 10
    refs = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', first)
    assert refs and all((a or b).startswith("r1-") for a, b in refs)
    assert not first.startswith("<?xml")


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
        for m in ("slices", "figures", "mask", "atlas", "carpet", "html"):
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
