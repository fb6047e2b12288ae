"""Visual reports: what is drawn is checked against the data.

The figures are read back: SVGs are parsed, their embedded images decoded and their outline
paths mapped to image pixels; the mask outline is checked voxel edge by voxel edge against
the mask, in the SVG and in a PNG rendering. The HTML report in a browser:
test_report_html.py.
"""

from __future__ import annotations

import io
import re

import nibabel as nib
import numpy as np
import pytest
from report_data import (
    AFFINE,
    SHAPE,
    SVG,
    boundary_edges,
    displayed,
    embedded_image,
    groups,
    parse,
    path_segments,
    slice_labels,
    texts,
    tiles,
    tinted,
    unit_edges,
)

pytest.importorskip("matplotlib")
from PIL import Image  # matplotlib depends on pillow

from nipype_maskers.reporting import carpet, slices
from nipype_maskers.reporting.atlas import (
    plot_labels,
    plot_maps,
    plot_spheres,
    regions_table_html,
)
from nipype_maskers.reporting.html import inline_svg
from nipype_maskers.reporting.mask import plot_mask


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


