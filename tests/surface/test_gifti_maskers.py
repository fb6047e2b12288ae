"""GIFTI pair maskers against nilearn 0.14.1's SurfaceMasker / SurfaceLabelsMasker /
SurfaceMapsMasker (the reference, used only here), and where we differ on purpose."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from surface.gifti_data import (
    LEFT_TABLE,
    RIGHT_TABLE,
    gifti,
    make_labels,
    make_maps,
    make_pair_data,
    nilearn_surface,
    save_pair,
)

from nipype_maskers.core.io.tables import read_table
from nipype_maskers.core.surface.gifti_maskers import (
    surface_labels_masker,
    surface_maps_masker,
    surface_masker,
)
from nipype_maskers.core.surface.gifti_series import read_series_pair
from nipype_maskers.interfaces.surface import (
    SurfaceLabelsMasker,
    SurfaceMapsMasker,
    SurfaceMasker,
)

nilearn_maskers = pytest.importorskip("nilearn.maskers")
STRATEGIES = ("mean", "median", "sum", "minimum", "maximum", "standard_deviation", "variance")
LABEL = {"intent": "NIFTI_INTENT_LABEL"}


def _close(ours, theirs, rtol=2e-6):
    """Equal to float32 round-off, relative to the signals' scale."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape
    scale = max(np.nanmax(np.abs(theirs)), 1e-30)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=rtol * scale * 4)


def _clean_args(**options):
    """The keyword arguments the interfaces build (clean_args_from), for the core."""
    args = {"detrend": False, "standardize": None, "standardize_confounds": True,
            "low_pass": None, "high_pass": None, "t_r": None, "filter": "butterworth",
            "butterworth_order": 5, "extrapolate": False, "ensure_finite": False}
    args.update(options)
    if args["low_pass"] is None and args["high_pass"] is None:
        args["filter"] = None
    return args


@pytest.fixture
def pair(tmp_path):
    left, right = make_pair_data()
    paths = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right)
    return paths, left, right


@pytest.fixture
def atlas(tmp_path):
    left, right = make_labels()
    paths = save_pair(tmp_path, "atlas-test", "dseg.label.gii", left, right,
                      **LABEL)
    return paths, left, right


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_labels_strategies_match_nilearn(pair, atlas, strategy):
    paths, left, right = pair
    ours = surface_labels_masker(paths, atlas[0], strategy=strategy)
    masker = nilearn_maskers.SurfaceLabelsMasker(nilearn_surface(*atlas[1:]), strategy=strategy,
                                                 standardize=None)
    theirs = masker.fit_transform(nilearn_surface(left, right))
    _close(ours.signals, theirs)
    assert ours.signals.dtype == np.float32
    assert ours.ids.tolist() == [1, 2, 3, 4, 5, 6]  # 6 is in both hemispheres: one region
    labels_l, labels_r = atlas[1:]
    sizes = [int((labels_l == k).sum() + (labels_r == k).sum()) for k in range(1, 7)]
    assert ours.sizes.tolist() == sizes


CLEANING = {
    "detrend": {"detrend": True},
    "standardize": {"standardize": "zscore_sample"},
    "bandpass": {"low_pass": 0.1, "high_pass": 0.01, "t_r": 2.0},
    "confounds": {"confounds": True},
    "sample_mask": {"sample_mask": True, "detrend": True},
    "all": {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.1,
            "high_pass": 0.01, "t_r": 2.0, "confounds": True, "sample_mask": True},
}


def _split_cleaning(options, n_volumes):
    rng = np.random.default_rng(5)
    options = dict(options)
    extra = {}
    if options.pop("confounds", False):
        extra["confounds"] = rng.normal(size=(n_volumes, 3))
    if options.pop("sample_mask", False):
        extra["sample_mask"] = np.setdiff1d(np.arange(n_volumes), [0, 1, 17, 30])
    return options, extra


@pytest.mark.parametrize("name", list(CLEANING))
def test_labels_cleaning_matches_nilearn(pair, atlas, name):
    paths, left, right = pair
    options, extra = _split_cleaning(CLEANING[name], left.shape[1])
    ours = surface_labels_masker(paths, atlas[0], clean_args=_clean_args(**options, **extra))
    masker = nilearn_maskers.SurfaceLabelsMasker(
        nilearn_surface(*atlas[1:]), **{"standardize": None, **options})
    theirs = masker.fit_transform(nilearn_surface(left, right), **extra)
    _close(ours.signals, theirs, rtol=1e-5)
    if "sample_mask" in extra:
        assert ours.volumes.tolist() == extra["sample_mask"].tolist()


@pytest.mark.parametrize("name", ["none", "all"])
def test_surface_masker_matches_nilearn(pair, tmp_path, name):
    paths, left, right = pair
    options, extra = _split_cleaning(CLEANING.get(name, {}), left.shape[1])
    mask_l = (np.arange(left.shape[0]) % 3 != 0).astype(np.uint8)
    mask_r = (np.arange(right.shape[0]) % 4 != 1).astype(np.uint8)
    masks = save_pair(tmp_path, "space-fsaverage5", "mask.shape.gii", mask_l, mask_r,
                      intent="NIFTI_INTENT_NONE")
    ours = surface_masker(paths, mask=masks, clean_args=_clean_args(**options, **extra))
    masker = nilearn_maskers.SurfaceMasker(
        nilearn_surface(mask_l.astype(bool), mask_r.astype(bool)),
        **{"standardize": None, **options})
    theirs = masker.fit_transform(nilearn_surface(left, right), **extra)
    _close(ours.signals, theirs, rtol=1e-5)
    assert ours.signals.shape[1] == mask_l.sum() + mask_r.sum()


def test_surface_masker_computed_mask_drops_nonfinite_vertices(tmp_path):
    """Without a mask, as nilearn: the vertices finite in every volume (left then right)."""
    left, right = make_pair_data()
    left[5, 3] = np.nan
    right[0, 0] = np.inf
    paths = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right)
    ours = surface_masker(paths)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nilearn warns about the NaN vertices
        theirs = nilearn_maskers.SurfaceMasker(standardize=None).fit_transform(
            nilearn_surface(left, right))
    assert ours.signals.shape == theirs.shape == (40, left.shape[0] + right.shape[0] - 2)
    _close(ours.signals, theirs)
    assert not ours.mask[5] and not ours.mask[left.shape[0]] and ours.mask.sum() == 578


@pytest.mark.parametrize("masked", [False, True])
def test_maps_match_nilearn(pair, tmp_path, masked):
    paths, left, right = pair
    maps_l, maps_r = make_maps()
    maps = save_pair(tmp_path, "atlas-ica", "probseg.func.gii", maps_l, maps_r,
                     intent="NIFTI_INTENT_NONE")
    options, extra = _split_cleaning(CLEANING["all"], left.shape[1])
    mask_l = np.arange(left.shape[0]) < 250
    mask_r = np.arange(right.shape[0]) > 20
    masks = save_pair(tmp_path, "space-fsaverage5", "mask.shape.gii", mask_l.astype(np.uint8),
                      mask_r.astype(np.uint8), intent="NIFTI_INTENT_NONE") if masked else None
    ours = surface_maps_masker(paths, maps, mask=masks,
                               clean_args=_clean_args(**options, **extra))
    masker = nilearn_maskers.SurfaceMapsMasker(
        nilearn_surface(maps_l, maps_r),
        mask_img=nilearn_surface(mask_l, mask_r) if masked else None,
        **{"standardize": None, **options})
    theirs = masker.fit_transform(nilearn_surface(left, right), **extra)
    _close(ours.signals, theirs, rtol=1e-5)


def test_fsaverage5_size_labels_and_masker_match_nilearn(tmp_path):
    """One run at fsaverage5 size (10,242 vertices per hemisphere) with nilearn's real mesh."""
    from nilearn.datasets import load_fsaverage
    from nilearn.surface import SurfaceImage

    mesh = load_fsaverage("fsaverage5")["pial"]
    n = mesh.parts["left"].n_vertices
    assert n == 10242
    left, right = make_pair_data(n, n, 24, seed=3)
    rng = np.random.default_rng(4)
    labels_l = rng.integers(0, 40, n).astype(np.int32)
    labels_r = (rng.integers(0, 40, n) + 40 * (rng.uniform(size=n) < 0.5)).astype(np.int32)
    paths = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right)
    atlas = save_pair(tmp_path, "atlas-x", "dseg.label.gii", labels_l, labels_r, **LABEL)
    image = SurfaceImage(mesh=mesh, data={"left": left, "right": right})
    atlas_image = SurfaceImage(mesh=mesh, data={"left": labels_l, "right": labels_r})
    options = {"detrend": True, "low_pass": 0.1, "t_r": 2.0}
    ours = surface_labels_masker(paths, atlas, clean_args=_clean_args(**options))
    theirs = nilearn_maskers.SurfaceLabelsMasker(
        atlas_image, standardize=None, **options).fit_transform(image)
    _close(ours.signals, theirs, rtol=1e-5)
    vertices = surface_masker(paths)
    theirs = nilearn_maskers.SurfaceMasker(standardize=None).fit_transform(image)
    _close(vertices.signals, theirs)


# --------------------------------------------------------------------------- on purpose


def test_stable_columns_where_nilearn_drops_a_masked_label(pair, atlas, tmp_path):
    """nilearn drops a label emptied by the mask (the columns shift between subjects); ours
    keep it as NaN (n/a); drop_empty=True gives nilearn's columns."""
    paths, left, right = pair
    labels_l, labels_r = atlas[1:]
    mask_l, mask_r = labels_l != 2, np.ones(right.shape[0], bool)
    masks = save_pair(tmp_path, "space-fsaverage5", "mask.shape.gii", mask_l.astype(np.uint8),
                      mask_r.astype(np.uint8), intent="NIFTI_INTENT_NONE")
    ours = surface_labels_masker(paths, atlas[0], mask=masks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = nilearn_maskers.SurfaceLabelsMasker(
            nilearn_surface(labels_l, labels_r), mask_img=nilearn_surface(mask_l, mask_r),
            standardize=None).fit_transform(nilearn_surface(left, right))
    assert theirs.shape == (40, 5) and ours.signals.shape == (40, 6)
    assert np.isnan(ours.signals[:, 1]).all() and ours.sizes[1] == 0 and ours.coverage[1] == 0
    _close(np.delete(ours.signals, 1, axis=1), theirs)
    dropped = surface_labels_masker(paths, atlas[0], mask=masks, drop_empty=True)
    _close(dropped.signals, theirs)


def test_nonfinite_vertex_counts_as_zero_where_nilearn_gives_nan(tmp_path, atlas):
    """nilearn's SurfaceLabelsMasker lets one NaN vertex make its region NaN; ours count it
    as 0, as nilearn's volume labels masker (and ours) do."""
    left, right = make_pair_data()
    vertex = int(np.flatnonzero(atlas[1] == 1)[0])
    left[vertex, 4] = np.nan
    paths = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right)
    ours = surface_labels_masker(paths, atlas[0])
    theirs = nilearn_maskers.SurfaceLabelsMasker(
        nilearn_surface(*atlas[1:]), standardize=None).fit_transform(
        nilearn_surface(left, right))
    assert np.isnan(theirs[4, 0])
    zeroed = left.copy()
    zeroed[vertex, 4] = 0
    expected = nilearn_maskers.SurfaceLabelsMasker(
        nilearn_surface(*atlas[1:]), standardize=None).fit_transform(
        nilearn_surface(zeroed, right))
    _close(ours.signals, expected)


def test_two_of_three_maps_overlapping_refused_where_nilearn_sees_none(pair, tmp_path):
    """nilearn checks for vertices where *all* maps are non-zero; maps 0 and 1 overlap."""
    paths, left, right = pair
    maps_l = np.zeros((left.shape[0], 3), np.float32)
    maps_r = np.zeros((right.shape[0], 3), np.float32)
    maps_l[:100, 0], maps_l[50:150, 1], maps_r[:100, 2] = 1, 1, 1
    maps = save_pair(tmp_path, "atlas-ica", "probseg.func.gii", maps_l, maps_r,
                     intent="NIFTI_INTENT_NONE")
    nilearn_maskers.SurfaceMapsMasker(nilearn_surface(maps_l, maps_r), allow_overlap=False,
                                      standardize=None).fit_transform(
        nilearn_surface(left, right))  # no error
    with pytest.raises(ValueError, match=r"maps_file: maps 0 and 1 overlap at vertex"):
        surface_maps_masker(paths, maps, allow_overlap=False)


def test_label_table_names_and_conflict(pair, tmp_path):
    """Names come from the .label.gii tables (nilearn names regions by value); a value named
    differently in the two hemispheres is refused (nilearn merges the two regions)."""
    paths, *_ = pair
    labels_l, labels_r = make_labels()
    folder = tmp_path / "named"
    folder.mkdir()
    left = folder / "sub-01_hemi-L_atlas-t_dseg.label.gii"
    right = folder / "sub-01_hemi-R_atlas-t_dseg.label.gii"
    nib.save(gifti(labels_l, "L", intent="NIFTI_INTENT_LABEL", table=LEFT_TABLE), left)
    nib.save(gifti(labels_r, "R", intent="NIFTI_INTENT_LABEL", table=RIGHT_TABLE), right)
    result = surface_labels_masker(paths, [left, right])
    assert result.names == ["L_a", "L_b", "L_c", "R_a", "R_b", "both"]
    nib.save(gifti(labels_r, "R", intent="NIFTI_INTENT_LABEL",
                   table={**RIGHT_TABLE, 6: "right only"}), right)
    with pytest.raises(ValueError, match=r"labels_file: label 6 names two regions \(L: 'both', "
                                         r"R: 'right only'\)"):
        surface_labels_masker(paths, [left, right])
    lut = {k: f"r{k}" for k in range(1, 7)}
    assert surface_labels_masker(paths, [left, right], lut=lut).names == list(lut.values())


# --------------------------------------------------------------------------- interfaces


def test_labels_interface_tsv_and_time_step(tmp_path, atlas):
    """TR from the arrays' TimeStep (ms): band-pass without t_r equals nilearn with t_r=2."""
    left, right = make_pair_data()
    paths = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right,
                      time_step=2000.0)
    run = tmp_path / "run"
    run.mkdir()
    result = SurfaceLabelsMasker(in_file=paths, labels_file=atlas[0], low_pass=0.1,
                                 detrend=True).run(cwd=str(run))
    out = result.outputs
    assert out.t_r == 2.0 and out.t_r_source == "GIFTI TimeStep"
    assert out.out_file.endswith("sub-01_task-rest_space-fsaverage5_desc-labels_timeseries.tsv")
    table = read_table(out.out_file, name="out_file", header=True)
    theirs = nilearn_maskers.SurfaceLabelsMasker(
        nilearn_surface(*atlas[1:]), standardize=None, low_pass=0.1, detrend=True,
        t_r=2.0).fit_transform(nilearn_surface(left, right))
    assert table.columns == ["1", "2", "3", "4", "5", "6"]
    _close(table.values, theirs, rtol=1e-5)
    regions = read_table(out.regions_file, name="regions_file", header=True, numeric=False)
    assert regions.columns == ["index", "name", "vertex_count", "coverage"]


def test_masker_and_maps_interfaces(tmp_path, pair):
    paths, left, right = pair
    run = tmp_path / "run"
    run.mkdir()
    out = SurfaceMasker(in_file=paths, volumes="2:30").run(cwd=str(run)).outputs
    signals = np.load(out.out_file)
    assert signals.dtype == np.float32
    np.testing.assert_array_equal(signals, np.vstack([left, right]).T[2:30])
    assert [p.rsplit("/", 1)[1] for p in out.mask_file] == [
        "sub-01_task-rest_hemi-L_space-fsaverage5_mask.shape.gii",
        "sub-01_task-rest_hemi-R_space-fsaverage5_mask.shape.gii"]
    assert out.volumes == list(range(2, 30))
    maps_l, maps_r = make_maps()
    maps = save_pair(tmp_path, "atlas-ica", "probseg.func.gii", maps_l, maps_r,
                     intent="NIFTI_INTENT_NONE")
    out = SurfaceMapsMasker(in_file=paths, maps_file=maps, labels=["a", "b", "c", "d"],
                            sample_mask=list(range(5, 40)), censored="nan",
                            detrend=True).run(cwd=str(run)).outputs
    table = read_table(out.out_file, name="out_file", header=True)
    assert table.columns == ["a", "b", "c", "d"] and table.values.shape == (40, 4)
    assert np.isnan(table.values[:5]).all() and np.isfinite(table.values[5:]).all()


def test_series_streamed_array_by_array(pair, monkeypatch):
    """Streaming: opening decodes the first arrays only; a block decodes little more."""
    from nipype_maskers.core.surface import gifti_stream

    monkeypatch.setattr(gifti_stream, "_CHUNK", 4096)  # ~2 of these small arrays per chunk
    series = read_series_pair(pair[0])
    streams = [hemi.stream for hemi in series._hemis]
    assert all(s is not None and len(s._ready) <= 3 and not s._done for s in streams)
    blocks = series.blocks(np.arange(series.n_volumes), np.arange(10), block_rows=8)
    first = next(blocks)
    np.testing.assert_array_equal(first, pair[1][:10, :8].T)
    assert all(len(s._ready) <= 3 and not s._done for s in streams)
    assert sum(b.shape[0] for b in blocks) == 32 and all(s._file.closed for s in streams)
    with pytest.raises(RuntimeError, match="already been read"):
        next(series.blocks(np.arange(3), np.arange(3)))


@pytest.mark.parametrize("layout", ["one 2D array", "ASCII"])
def test_files_the_stream_leaves_to_nibabel(tmp_path, layout):
    """A single (vertices, volumes) array, or ASCII encoding: read with nibabel, same data."""
    left, right = make_pair_data(50, 40, 6)
    paths = []
    for hemi, data in (("L", left), ("R", right)):
        if layout == "ASCII":
            img = gifti(data, hemi)
            for darray in img.darrays:
                darray.encoding = "ASCII"
        else:
            img = gifti(data[:, :1], hemi)
            img.darrays[0].data = data
            img.darrays[0].dims = list(data.shape)
        path = tmp_path / f"sub-01_hemi-{hemi}_bold.func.gii"
        nib.save(img, path)
        paths.append(str(path))
    series = read_series_pair(paths)
    assert [hemi.stream for hemi in series._hemis] == [None, None]
    np.testing.assert_allclose(surface_masker(paths).signals, np.vstack([left, right]).T,
                               rtol=1e-6)


def test_memory_stays_below_the_data(tmp_path, monkeypatch):
    """Labels: peak memory a fraction of the data (streamed); vertices: the output and little
    more (the data are never held twice, nor in float64)."""
    import tracemalloc

    from nipype_maskers.core.surface import gifti_stream

    monkeypatch.setattr(gifti_stream, "_CHUNK", 1 << 16)
    left, right = make_pair_data(2000, 2000, 400, seed=7)
    data_bytes = left.nbytes + right.nbytes  # 6.4 MB of float32
    paths = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right)
    labels = save_pair(tmp_path, "atlas-x", "dseg.label.gii",
                       *make_labels(2000, 2000), **LABEL)
    del left, right
    tracemalloc.start()
    try:
        surface_labels_masker(paths, labels)
        labels_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        signals = surface_masker(paths).signals
        vertices_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert signals.nbytes == data_bytes
    assert labels_peak < 0.4 * data_bytes, labels_peak  # 1 MB of it: the atlas parser
    assert vertices_peak < 1.5 * data_bytes, vertices_peak  # the output is 1.0


def test_volume_selection_out_of_order_and_float64(pair):
    """``volumes`` as index_img reads it (repeats, any order): rows in the order asked."""
    paths, left, right = pair
    result = surface_masker(paths, volumes=[5, 2, 2, 39], dtype="float64")
    assert result.signals.dtype == np.float64
    np.testing.assert_array_equal(result.signals, np.vstack([left, right]).T[[5, 2, 2, 39]])
    assert result.volumes.tolist() == [5, 2, 2, 39]


def test_negative_background_label_matches_nilearn(pair, tmp_path):
    """FreeSurfer-style atlases mark the medial wall -1."""
    paths, left, right = pair
    labels_l, labels_r = make_labels()
    labels_l[labels_l == 0], labels_r[labels_r == 0] = -1, -1
    atlas = save_pair(tmp_path, "atlas-n", "dseg.label.gii", labels_l, labels_r, **LABEL)
    ours = surface_labels_masker(paths, atlas, background_label=-1)
    theirs = nilearn_maskers.SurfaceLabelsMasker(
        nilearn_surface(labels_l, labels_r), background_label=-1,
        standardize=None).fit_transform(nilearn_surface(left, right))
    assert ours.ids.tolist() == [1, 2, 3, 4, 5, 6]
    _close(ours.signals, theirs)


def test_labels_interface_lut_names_mask_and_min_coverage(tmp_path, pair, atlas):
    paths = pair[0]
    lut = tmp_path / "atlas-test_dseg.tsv"
    lut.write_text("index\tname\n" + "".join(f"{k}\tregion{k}\n" for k in range(1, 7)))
    labels_l, labels_r = atlas[1:]
    keep_l = (labels_l != 1) | (np.arange(labels_l.size) % 2 == 0)  # half of label 1
    masks = save_pair(tmp_path, "space-fsaverage5", "mask.shape.gii", keep_l.astype(np.uint8),
                      np.ones(labels_r.size, np.uint8), intent="NIFTI_INTENT_NONE")
    run = tmp_path / "run"
    run.mkdir()
    out = SurfaceLabelsMasker(in_file=paths, labels_file=atlas[0], lut_file=str(lut),
                              mask_file=masks, min_coverage=0.6).run(cwd=str(run)).outputs
    table = read_table(out.out_file, name="out_file", header=True)
    assert table.columns == [f"region{k}" for k in range(1, 7)]
    assert np.isnan(table.values[:, 0]).all() and np.isfinite(table.values[:, 1:]).all()
    regions = read_table(out.regions_file, name="regions_file", header=True, numeric=False)
    coverage = regions.numbers(["coverage"])[:, 0]
    assert coverage[0] == pytest.approx(keep_l[labels_l == 1].mean()) and coverage[0] < 0.6
    with pytest.raises(ValueError, match=r"expected 6 names"):
        SurfaceLabelsMasker(in_file=paths, labels_file=atlas[0], labels=["a", "b"]).run(
            cwd=str(run))
