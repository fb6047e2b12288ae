"""CiftiLabelsMasker and CiftiMapsMasker against Connectome Workbench, numpy and nilearn."""

from __future__ import annotations

import numpy as np
import pytest
from nilearn.signal import clean as nilearn_clean
from surface.cifti_data import (
    layout,
    needs_wb,
    parcel_keys,
    save_dlabel,
    save_dscalar,
    save_dtseries,
    series,
    wb_parcellate,
)

from nipype_maskers.core.io.tables import read_table
from nipype_maskers.core.surface.cifti_maskers import cifti_labels_masker, cifti_maps_masker
from nipype_maskers.interfaces.cifti import CiftiLabelsMasker, CiftiMapsMasker

N_PARCELS = 9


@pytest.fixture
def grayordinates():
    return layout()


@pytest.fixture
def atlas(tmp_path, grayordinates):
    keys = parcel_keys(grayordinates, N_PARCELS)
    return save_dlabel(tmp_path / "atlas.dlabel.nii", keys, grayordinates), keys


def _with_bad_grayordinates(data: np.ndarray) -> np.ndarray:
    """All-zero series (one parcel emptied in part), a NaN and an inf, as real data have."""
    data = data.copy()
    data[:, [3, 4, 40, 41, 42]] = 0
    data[5, 7] = np.nan
    data[2, 150] = np.inf
    return data


def _kept(data: np.ndarray) -> np.ndarray:
    return np.isfinite(data).all(axis=0) & (data != 0).any(axis=0)


def _by_hand(data, keys, labels, reduce) -> np.ndarray:
    kept = _kept(data)
    return np.stack([reduce(data[:, kept & (keys == k)].astype(np.float64), axis=1)
                     for k in labels], axis=1)


@needs_wb
def test_labels_mean_matches_workbench(tmp_path, grayordinates, atlas):
    dlabel, _ = atlas
    dtseries = save_dtseries(tmp_path / "sub-01_bold.dtseries.nii",
                             series(25, len(grayordinates)), grayordinates)
    found = cifti_labels_masker(dtseries, dlabel).regions
    expected, names, _ = wb_parcellate(dtseries, dlabel, tmp_path / "wb.ptseries.nii")
    assert found.names == names
    np.testing.assert_allclose(found.signals, expected, rtol=2e-6)
    np.testing.assert_array_equal(found.coverage, 1.0)


@needs_wb
def test_zero_and_nonfinite_grayordinates_follow_xcpd(tmp_path, grayordinates, atlas):
    dlabel, keys = atlas
    data = _with_bad_grayordinates(series(25, len(grayordinates)))
    dtseries = save_dtseries(tmp_path / "bold.dtseries.nii", data, grayordinates)
    found = cifti_labels_masker(dtseries, dlabel).regions
    expected, names, coverage = wb_parcellate(dtseries, dlabel, tmp_path / "wb.ptseries.nii",
                                              kept=_kept(data), axis=grayordinates)
    assert found.names == names
    np.testing.assert_allclose(found.signals, expected, rtol=2e-6)
    np.testing.assert_allclose(found.coverage, coverage, rtol=1e-6)
    assert (found.coverage < 1).sum() >= 2  # the fixture did leave grayordinates out
    np.testing.assert_array_equal(found.sizes, [(_kept(data) & (keys == k)).sum()
                                                for k in range(1, N_PARCELS + 1)])


@needs_wb
def test_full_91k_layout_matches_workbench(tmp_path):
    grayordinates = layout(full=True)
    assert len(grayordinates) == 91282
    keys = parcel_keys(grayordinates, 400)
    dlabel = save_dlabel(tmp_path / "atlas.dlabel.nii", keys, grayordinates)
    data = _with_bad_grayordinates(series(6, len(grayordinates)))
    dtseries = save_dtseries(tmp_path / "bold.dtseries.nii", data, grayordinates)
    found = cifti_labels_masker(dtseries, dlabel).regions
    expected, names, coverage = wb_parcellate(dtseries, dlabel, tmp_path / "wb.ptseries.nii",
                                              kept=_kept(data), axis=grayordinates)
    assert found.names == names and len(names) == 400
    np.testing.assert_allclose(found.signals, expected, rtol=2e-6)
    np.testing.assert_allclose(found.coverage, coverage, rtol=1e-6)


@pytest.mark.parametrize("strategy, reduce", [
    ("median", np.median), ("sum", np.sum), ("minimum", np.min), ("maximum", np.max),
    ("standard_deviation", np.std), ("variance", np.var),
])
def test_strategies_match_numpy(tmp_path, grayordinates, atlas, strategy, reduce):
    dlabel, keys = atlas
    data = _with_bad_grayordinates(series(12, len(grayordinates)))
    dtseries = save_dtseries(tmp_path / "bold.dtseries.nii", data, grayordinates)
    found = cifti_labels_masker(dtseries, dlabel, strategy=strategy, dtype="float64",
                                block_columns=50).regions  # several blocks of parcels
    expected = _by_hand(data, keys, range(1, N_PARCELS + 1), reduce)
    np.testing.assert_allclose(found.signals, expected, rtol=1e-5)


def test_atlas_superset_of_the_data(tmp_path, grayordinates, atlas):
    """The data lack some atlas vertices and a whole structure: resolved by vertex index."""
    dlabel, keys = atlas
    data = series(10, len(grayordinates))
    subset = np.ones(len(grayordinates), dtype=bool)
    subset[::7] = False  # vertices and voxels missing from the data
    subset[grayordinates.name == "CIFTI_STRUCTURE_CEREBELLUM_LEFT"] = False
    dtseries = save_dtseries(tmp_path / "bold.dtseries.nii", data[:, subset],
                             grayordinates[subset])
    found = cifti_labels_masker(dtseries, dlabel, dtype="float64").regions
    sub_keys = keys[subset]
    expected = np.stack([data[:, subset][:, sub_keys == k].mean(axis=1)
                         for k in range(1, N_PARCELS + 1)], axis=1)
    np.testing.assert_allclose(found.signals, expected, rtol=1e-6)
    atlas_sizes = np.array([(keys == k).sum() for k in range(1, N_PARCELS + 1)])
    np.testing.assert_allclose(found.coverage, [(sub_keys == k).sum() for k in
                                                range(1, N_PARCELS + 1)] / atlas_sizes)


def test_labels_interface_outputs(tmp_path, monkeypatch, grayordinates, atlas):
    dlabel, keys = atlas
    data = _with_bad_grayordinates(series(40, len(grayordinates)))
    dtseries = save_dtseries(tmp_path / "sub-01_task-rest_space-fsLR_den-91k_bold.dtseries.nii",
                             data, grayordinates, step=0.8)
    monkeypatch.chdir(tmp_path)
    result = CiftiLabelsMasker(in_file=str(dtseries), labels_file=str(dlabel), detrend=True,
                               standardize="zscore_sample", volumes="2:38", high_pass=0.01,
                               min_coverage=0.97, write_ptseries=True).run()
    out = result.outputs
    assert out.out_file.endswith("sub-01_task-rest_space-fsLR_den-91k_desc-labels_"
                                 "timeseries.tsv")
    assert out.t_r == 0.8 and out.t_r_source == "CIFTI SeriesAxis"
    assert out.volumes == list(range(2, 38))
    table = read_table(out.out_file, name="t", header=True, delimiter="\t")
    assert table.columns == [f"parcel{k:03d}" for k in range(1, N_PARCELS + 1)]
    raw = _by_hand(data[2:38], keys, range(1, N_PARCELS + 1), np.mean)
    expected = nilearn_clean(raw, detrend=True, standardize="zscore_sample", high_pass=0.01,
                             t_r=0.8)
    regions = read_table(out.regions_file, name="t", header=True, delimiter="\t", numeric=False)
    assert regions.columns == ["index", "name", "voxel_count", "coverage", "vertex_count",
                               "subcortical_voxel_count"]
    coverage = regions.numbers(["coverage"])[:, 0]
    poor = coverage < 0.97
    assert poor.any() and np.isnan(table.values[:, poor]).all()
    np.testing.assert_allclose(table.values[:, ~poor], expected[:, ~poor], atol=2e-5)
    counts = regions.numbers(["voxel_count", "vertex_count", "subcortical_voxel_count"])
    kept_data = _kept(data[2:38])
    surface = grayordinates.surface_mask
    for row, key in enumerate(range(1, N_PARCELS + 1)):
        parcel = kept_data & (keys == key)
        assert counts[row].tolist() == [parcel.sum(), (parcel & surface).sum(),
                                        (parcel & ~surface).sum()]
    import nibabel as nib

    ptseries = nib.load(out.ptseries_file)
    assert list(ptseries.header.get_axis(1).name) == table.columns
    assert ptseries.header.get_axis(0).step == 0.8
    np.testing.assert_allclose(ptseries.get_fdata(), table.values, atol=1e-6)


def test_maps_least_squares_match_numpy_and_nilearn(tmp_path, grayordinates):
    rng = np.random.default_rng(5)
    n = len(grayordinates)
    maps = np.clip(rng.standard_normal((3, n)), 0, None).astype(np.float32)
    maps[2, : n // 2] = 0
    dscalar = save_dscalar(tmp_path / "maps.dscalar.nii", maps, grayordinates,
                           names=["dmn", "visual", "motor"])
    data = _with_bad_grayordinates(series(15, n))
    dtseries = save_dtseries(tmp_path / "bold.dtseries.nii", data, grayordinates)
    found = cifti_maps_masker(dtseries, dscalar, dtype="float64", block_columns=64).regions
    kept = _kept(data) & maps.any(axis=0)
    expected = np.linalg.lstsq(maps[:, kept].T.astype(np.float64),
                               data[:, kept].T.astype(np.float64), rcond=None)[0].T
    assert found.names == ["dmn", "visual", "motor"]
    np.testing.assert_allclose(found.signals, expected, rtol=1e-6)
    support = maps != 0
    np.testing.assert_allclose(found.coverage, (support & _kept(data)).sum(1) / support.sum(1))

    # nilearn's maps masker math, the grayordinates as a (n, 1, 1) grid and the kept mask
    import nibabel as nib
    from nilearn.maskers import NiftiMapsMasker

    as_grid = nib.Nifti1Image(maps.T.reshape(n, 1, 1, 3), np.eye(4))
    bold = nib.Nifti1Image(np.nan_to_num(data.T, posinf=0).reshape(n, 1, 1, -1), np.eye(4))
    mask = nib.Nifti1Image(_kept(data).reshape(n, 1, 1).astype(np.int8), np.eye(4))
    reference = NiftiMapsMasker(as_grid, mask_img=mask, standardize=None).fit_transform(bold)
    np.testing.assert_allclose(found.signals, reference, rtol=1e-5)


def test_maps_interface(tmp_path, monkeypatch, grayordinates):
    n = len(grayordinates)
    maps = np.random.default_rng(6).random((2, n)).astype(np.float32)
    dscalar = save_dscalar(tmp_path / "maps.dscalar.nii", maps, grayordinates)
    data = series(10, n)
    dtseries = save_dtseries(tmp_path / "sub-01_bold.dtseries.nii", data, grayordinates)
    monkeypatch.chdir(tmp_path)
    out = CiftiMapsMasker(in_file=str(dtseries), maps_file=str(dscalar)).run().outputs
    assert out.out_file.endswith("sub-01_desc-maps_timeseries.tsv")
    table = read_table(out.out_file, name="t", header=True, delimiter="\t")
    assert table.columns == ["map0", "map1"]
    expected = np.linalg.lstsq(maps.T.astype(np.float64), data.T.astype(np.float64),
                               rcond=None)[0].T
    np.testing.assert_allclose(table.values, expected, rtol=1e-4)
    regions = read_table(out.regions_file, name="t", header=True, delimiter="\t", numeric=False)
    surface = int(grayordinates.surface_mask.sum())
    assert regions.numbers(["voxel_count", "vertex_count"]).tolist() == [[n, surface]] * 2


def test_images_in_memory_and_memory_map(tmp_path, grayordinates, atlas):
    """nibabel images give the files' numbers; an uncompressed dtseries is memory-mapped and
    its pages are given back after each block (the file is never held in memory)."""
    import nibabel as nib

    from nipype_maskers.core.surface import cifti

    dlabel, _ = atlas
    dtseries = save_dtseries(tmp_path / "bold.dtseries.nii", series(9, len(grayordinates)),
                             grayordinates)
    from_files = cifti_labels_masker(dtseries, dlabel, block_columns=40).regions
    from_images = cifti_labels_masker(nib.load(dtseries), nib.load(dlabel)).regions
    np.testing.assert_array_equal(from_files.signals, from_images.signals)
    data = cifti.series_data(cifti.load_cifti(dtseries, "dtseries"))
    assert isinstance(data, np.memmap) and data.shape == (9, len(grayordinates))
    np.testing.assert_array_equal(data, nib.load(dtseries).get_fdata(dtype=np.float32))
    cifti.release_pages(data)  # the pages are read again from the file when used
    np.testing.assert_array_equal(data[:, :5], nib.load(dtseries).dataobj[:, :5])


@needs_wb
def test_ptseries_matches_workbench(tmp_path, monkeypatch, grayordinates, atlas):
    """The .ptseries.nii is Workbench's: same parcels (ParcelsAxis), series axis and data."""
    import nibabel as nib

    dlabel, _ = atlas
    dtseries = save_dtseries(tmp_path / "sub-01_bold.dtseries.nii",
                             series(12, len(grayordinates)), grayordinates, step=0.72)
    monkeypatch.chdir(tmp_path)
    out = CiftiLabelsMasker(in_file=str(dtseries), labels_file=str(dlabel),
                            write_ptseries=True).run().outputs
    expected, _, _ = wb_parcellate(dtseries, dlabel, tmp_path / "wb.ptseries.nii")
    ours, theirs = nib.load(out.ptseries_file), nib.load(tmp_path / "wb.ptseries.nii")
    assert ours.header.get_axis(1) == theirs.header.get_axis(1)
    assert ours.header.get_axis(0) == theirs.header.get_axis(0)
    assert ours.nifti_header.get_intent() == theirs.nifti_header.get_intent()
    np.testing.assert_allclose(ours.get_fdata(), expected, rtol=2e-6)
