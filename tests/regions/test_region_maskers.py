"""Image-level region maskers (core.region_maskers, core.region_images) against nilearn 0.14.1.

Each test runs nilearn's ``Nifti{Labels,Maps,Spheres}Masker(...).fit_transform`` (or its
``inverse_transform``) on the same images as ours. Tolerances: float32 data ``rtol=1e-5`` with
``atol=1e-5 * max|ref|`` (nilearn's float32 lstsq / filters round differently), float64 data
``rtol=1e-10`` (maps: 1e-8, a pseudo-inverse from the Gram matrix against ``lstsq``), masks,
sizes and names exactly. Where we deliberately differ (stable NaN columns, B4 inverse), the test
compares the columns nilearn keeps and checks the difference itself.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker, NiftiSpheresMasker
from region_data import (
    AFFINE,
    EMPTIED,
    LABELS,
    N_VOLUMES,
    SHAPE,
    STRATEGIES,
    _atlas_data,
    _close32,
    _fine_grid,
    _nilearn,
    _seeds,
    _world_to_coarse,
)
from synthetic import make_epi

from nipype_maskers.core.io.images import ImageError
from nipype_maskers.core.regions.inverse import labels_image, maps_image
from nipype_maskers.core.regions.label_names import read_lut
from nipype_maskers.core.regions.maskers import labels_masker, maps_masker, spheres_masker

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning:nipype_maskers")


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_labels_every_strategy_float32(bold, atlas, strategy):
    masker = NiftiLabelsMasker(atlas, strategy=strategy)
    ref = _nilearn(masker, bold)
    ours = labels_masker(bold, atlas, strategy=strategy)
    assert ours.signals.dtype == np.float32 and ref.dtype == np.float32
    _close32(ours.signals, ref)
    assert ours.names == list(masker.get_feature_names_out()) == [str(v) for v in LABELS]
    np.testing.assert_array_equal(ours.ids, LABELS)
    np.testing.assert_array_equal(ours.sizes, [np.sum(_atlas_data() == v) for v in LABELS])
    np.testing.assert_array_equal(ours.volumes, np.arange(N_VOLUMES))


@pytest.mark.parametrize("strategy", ["mean", "median", "standard_deviation", "variance"])
def test_labels_float64(bold64, atlas, strategy):
    ref = _nilearn(NiftiLabelsMasker(atlas, strategy=strategy), bold64)
    ours = labels_masker(bold64, atlas, strategy=strategy, dtype=np.float64)
    assert ours.signals.dtype == np.float64
    np.testing.assert_allclose(ours.signals, ref, rtol=1e-10)


def test_labels_mask_emptying_a_region(bold, atlas, emptying_mask):
    masker = NiftiLabelsMasker(atlas, mask_img=emptying_mask)
    ref = _nilearn(masker, bold)
    assert ref.shape == (N_VOLUMES, 4)  # nilearn drops label 9
    ours = labels_masker(bold, atlas, mask=emptying_mask)
    column = LABELS.index(EMPTIED)
    assert ours.signals.shape == (N_VOLUMES, 5)
    assert np.isnan(ours.signals[:, column]).all()
    kept = [i for i in range(5) if i != column]
    assert not np.isnan(ours.signals[:, kept]).any()
    _close32(ours.signals[:, kept], ref)
    assert ours.sizes[column] == 0 and ours.coverage[column] == 0
    masked = _atlas_data() * (np.asarray(emptying_mask.dataobj) != 0)
    np.testing.assert_array_equal(ours.sizes, [np.sum(masked == v) for v in LABELS])

    dropped = labels_masker(bold, atlas, mask=emptying_mask, drop_empty=True)
    np.testing.assert_array_equal(dropped.signals, ref)
    assert dropped.names == list(masker.get_feature_names_out()) == ["2", "3", "7", "12"]
    np.testing.assert_array_equal(dropped.ids, [2, 3, 7, 12])


@pytest.mark.parametrize("target", ["data", "labels"])
def test_labels_resampling_target_atlas_on_finer_grid(bold, fine_atlas, emptying_mask, target):
    masker = NiftiLabelsMasker(fine_atlas, mask_img=emptying_mask, resampling_target=target)
    ref = _nilearn(masker, bold)
    ours = labels_masker(bold, fine_atlas, mask=emptying_mask, resampling_target=target)
    kept = ours.sizes > 0
    assert kept.sum() == ref.shape[1] == 4 and not kept[LABELS.index(EMPTIED)]
    assert np.isnan(ours.signals[:, ~kept]).all()
    _close32(ours.signals[:, kept], ref)
    # The voxels used per region are those of nilearn's masked atlas on the working grid.
    region_atlas = np.asarray(masker.region_atlas_.dataobj)
    expected_shape = SHAPE if target == "data" else fine_atlas.shape
    assert region_atlas.shape == expected_shape
    np.testing.assert_array_equal(ours.sizes, [np.sum(region_atlas == v) for v in LABELS])


def test_labels_region_lost_by_resampling(bold, fine_atlas):
    """A one-voxel region of the fine atlas vanishes on the data grid: a NaN column, size 0."""
    data = np.asarray(fine_atlas.dataobj).copy()
    data[4, 4, 4] = 20
    tiny = nib.Nifti1Image(data, fine_atlas.affine)
    masker = NiftiLabelsMasker(tiny)
    ref = _nilearn(masker, bold)
    assert 20 not in np.unique(np.asarray(masker.labels_img_.dataobj))  # the premise
    ours = labels_masker(bold, tiny)
    assert ours.names == ["2", "3", "7", "9", "12", "20"]
    assert np.isnan(ours.signals[:, 5]).all() and ours.sizes[5] == 0 and ours.coverage[5] == 0
    _close32(ours.signals[:, :5], ref)
    # its column still paints back on the atlas's own grid
    back = labels_image(ours.signals, tiny).get_fdata()
    assert np.isnan(back[4, 4, 4]).all()


def test_labels_resampling_none(bold, atlas, fine_atlas):
    ref = _nilearn(NiftiLabelsMasker(atlas, resampling_target=None), bold)
    _close32(labels_masker(bold, atlas, resampling_target=None).signals, ref)
    with pytest.raises(ValueError, match=r"labels_file: its grid differs from in_file's "
                       r"\(\(21, 23, 17\) vs \(11, 12, 9\)\).*resampling_target='data'"):
        labels_masker(bold, fine_atlas, resampling_target=None)
    shifted = nib.Nifti1Image(_atlas_data(), AFFINE + _shift(1.0))
    with pytest.raises(ValueError, match=r"labels_file: its affine differs from in_file's"):
        labels_masker(bold, shifted, resampling_target=None)


def _shift(mm):
    out = np.zeros((4, 4))
    out[:3, 3] = mm
    return out


def test_labels_background_label(bold):
    data = _atlas_data()
    swapped = np.where(data == 0, 3, np.where(data == 3, 0, data)).astype(np.int16)
    atlas = nib.Nifti1Image(swapped, AFFINE)
    masker = NiftiLabelsMasker(atlas, background_label=3)
    ref = _nilearn(masker, bold)
    ours = labels_masker(bold, atlas, background_label=3)
    _close32(ours.signals, ref)
    assert ours.names == list(masker.get_feature_names_out()) == ["0", "2", "7", "9", "12"]


@pytest.mark.parametrize("names", [
    ["Background", "a", "b", "c", "d", "e"],
    ["a", "b", "c", "d", "e"],
    ["a", "Background", "b", "c", "d", "e"],
])
def test_labels_names_list(bold, atlas, names):
    masker = NiftiLabelsMasker(atlas, labels=names)
    _nilearn(masker, bold)
    ours = labels_masker(bold, atlas, names=names)
    assert ours.names == list(masker.get_feature_names_out())
    assert ours.names == list(masker.region_names_.values())


def test_labels_names_from_lut_file(bold, atlas, tmp_path):
    lut = tmp_path / "atlas_dseg.tsv"
    lut.write_text("index\tname\tcolor\n0\tBackground\t#000000\n2\tfrontal\t#ff0000\n"
                   "3\tparietal\t#00ff00\n7\ttemporal\t#0000ff\n9\toccipital\t#ffff00\n"
                   "12\tcerebellum\t#00ffff\n40\tabsent\t#ffffff\n")
    masker = NiftiLabelsMasker(atlas, lut=str(lut))
    _nilearn(masker, bold)
    ours = labels_masker(bold, atlas, lut=read_lut(lut))
    assert ours.names == ["frontal", "parietal", "temporal", "occipital", "cerebellum"]
    assert ours.names == list(masker.get_feature_names_out())
    assert ours.names == list(masker.region_names_.values())


def test_labels_smoothing(bold, atlas, brain):
    ref = _nilearn(NiftiLabelsMasker(atlas, mask_img=brain, smoothing_fwhm=5.0), bold)
    ours = labels_masker(bold, atlas, mask=brain, smoothing_fwhm=5.0)
    _close32(ours.signals, ref)
    plain = labels_masker(bold, atlas, mask=brain).signals
    assert np.abs(ours.signals - plain).max() > 1.0  # the smoothing did something


# Censored volumes whose mirror positions (n-1-i) are kept: nilearn's B1 bug interpolates the
# wrong volumes otherwise, and our clean (which fixes B1) would rightly differ.
SAMPLE_MASK = np.setdiff1d(np.arange(N_VOLUMES), [5, 6, 17, 30])
CLEANING = {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.2,
            "high_pass": 0.02, "t_r": 2.0}


@pytest.mark.parametrize("float64", [False, True])
def test_labels_cleaning(bold, bold64, atlas, emptying_mask, float64):
    img = bold64 if float64 else bold
    confounds = np.random.default_rng(0).normal(size=(N_VOLUMES, 2))
    ref = _nilearn(NiftiLabelsMasker(atlas, mask_img=emptying_mask, **CLEANING), img,
                   confounds=confounds, sample_mask=SAMPLE_MASK)
    ours = labels_masker(img, atlas, mask=emptying_mask,
                         dtype=np.float64 if float64 else np.float32,
                         clean_args={**CLEANING, "confounds": confounds,
                                     "sample_mask": SAMPLE_MASK})
    assert ours.signals.shape == (SAMPLE_MASK.size, 5)
    np.testing.assert_array_equal(ours.volumes, SAMPLE_MASK)
    column = LABELS.index(EMPTIED)
    assert np.isnan(ours.signals[:, column]).all()  # cleaning leaves the empty column NaN
    kept = np.delete(ours.signals, column, axis=1)
    if float64:
        assert ours.signals.dtype == np.float64
        np.testing.assert_allclose(kept, ref, rtol=1e-10, atol=1e-12)
    else:
        # z-scored values of order 1: float32 filtering rounds to ~1e-6
        np.testing.assert_allclose(kept, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nan", [False, True])
def test_in_memory_image_is_not_modified(atlas, nan):
    data, _ = make_epi(SHAPE, 3)  # Fortran-ordered, as nibabel gives arrays
    if nan:
        data[5, 5, 5, 1] = np.nan
    img = nib.Nifti1Image(data, AFFINE)
    before = data.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels_masker(img, atlas, smoothing_fwhm=None if nan else 5.0)
    np.testing.assert_array_equal(np.asarray(img.dataobj), before)


def test_labels_3d_input(bold, atlas):
    volume = nib.Nifti1Image(np.asarray(bold.dataobj)[..., 3], AFFINE)
    ref = _nilearn(NiftiLabelsMasker(atlas), volume)
    assert ref.shape == (5,)
    ours = labels_masker(volume, atlas)
    assert ours.signals.shape == (1, 5)  # a 3D image gives one row (a TSV row)
    _close32(ours.signals[0], ref)


def test_labels_coverage_and_min_coverage_by_hand():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    atlas = np.zeros((5, 6, 7), np.int16)
    atlas[0:2, 0:5, 0] = 1  # 10 voxels
    atlas[3, 0:4, 0] = 2  # 4 voxels
    mask = np.ones((5, 6, 7), np.uint8)
    mask[0, 0:3, 0] = 0  # 3 voxels of label 1 out: coverage 7/10
    mask[3, 0:3, 0] = 0  # 3 voxels of label 2 out: coverage 1/4
    data = np.arange(5 * 6 * 7 * 2, dtype=np.float64).reshape(5, 6, 7, 2)
    img = nib.Nifti1Image(data, affine)
    result = labels_masker(img, nib.Nifti1Image(atlas, affine),
                           mask=nib.Nifti1Image(mask, affine), dtype=np.float64)
    np.testing.assert_array_equal(result.sizes, [7, 1])
    np.testing.assert_allclose(result.coverage, [0.7, 0.25])
    region1 = (atlas == 1) & (mask == 1)
    np.testing.assert_allclose(result.signals[:, 0], data[region1].mean(axis=0))
    np.testing.assert_allclose(result.signals[:, 1], data[3, 3, 0])

    strict = labels_masker(img, nib.Nifti1Image(atlas, affine),
                           mask=nib.Nifti1Image(mask, affine), min_coverage=0.5,
                           dtype=np.float64)
    np.testing.assert_array_equal(strict.signals[:, 0], result.signals[:, 0])
    assert np.isnan(strict.signals[:, 1]).all()
    dropped = labels_masker(img, nib.Nifti1Image(atlas, affine),
                            mask=nib.Nifti1Image(mask, affine), min_coverage=0.5,
                            drop_empty=True, dtype=np.float64)
    assert dropped.names == ["1"] and dropped.signals.shape == (2, 1)


@pytest.mark.parametrize("target", ["data", "labels"])
def test_labels_coverage_counts_the_data_field_of_view(target):
    """An atlas sticking out of the data: only the part inside the data's FOV is covered."""
    data = np.random.default_rng(0).normal(size=(6, 6, 6, 2))
    img = nib.Nifti1Image(data, np.eye(4))
    atlas_affine = np.eye(4)
    atlas_affine[0, 3] = 3.0  # atlas voxel i is at world x = i + 3
    atlas = np.zeros((6, 6, 6), np.int16)
    atlas[1:6, 2, 2] = 1  # world x 4..8; the data stops at x = 5: 2 of 5 voxels inside
    atlas[0:2, 4, 4] = 2  # world x 3..4: inside
    result = labels_masker(img, nib.Nifti1Image(atlas, atlas_affine), resampling_target=target,
                           dtype=np.float64)
    np.testing.assert_allclose(result.coverage, [0.4, 1.0])
    # On the data grid only the 2 voxels inside remain; on the atlas grid all 5 are averaged,
    # the 3 outside the data being 0 (as nilearn: resampling fills them with 0).
    np.testing.assert_array_equal(result.sizes, [2, 2] if target == "data" else [5, 2])


def test_labels_errors(bold, atlas):
    with pytest.raises(ValueError, match="resampling_target: unknown 'maps'; accepted: "
                       "'data', 'labels', None"):
        labels_masker(bold, atlas, resampling_target="maps")
    with pytest.raises(ImageError, match="labels_file: a 4D image"):
        labels_masker(bold, bold, resampling_target="data")
    with pytest.raises(ValueError, match="strategy"):
        labels_masker(bold, atlas, strategy="mode")


# --------------------------------------------------------------------------- maps


@pytest.mark.parametrize("with_mask", [False, True])
def test_maps_with_and_without_mask(bold, maps, brain, with_mask):
    mask = brain if with_mask else None
    ref = _nilearn(NiftiMapsMasker(maps, mask_img=mask), bold)
    ours = maps_masker(bold, maps, mask=mask)
    assert ours.signals.dtype == np.float32
    _close32(ours.signals, ref)
    assert ours.names == ["0", "1", "2", "3"]
    support = np.asarray(maps.dataobj) != 0
    if with_mask:
        inside = support & (np.asarray(brain.dataobj) != 0)[..., None]
        np.testing.assert_array_equal(ours.sizes, inside.sum(axis=(0, 1, 2)))
        np.testing.assert_allclose(ours.coverage, ours.sizes / support.sum(axis=(0, 1, 2)))
        assert (ours.coverage < 1).all()
    else:
        np.testing.assert_array_equal(ours.sizes, support.sum(axis=(0, 1, 2)))
        np.testing.assert_array_equal(ours.coverage, 1.0)


def test_maps_float64(bold64, maps, brain):
    maps64 = nib.Nifti1Image(np.asarray(maps.dataobj, dtype=np.float64), AFFINE)
    ref = _nilearn(NiftiMapsMasker(maps64, mask_img=brain), bold64)
    ours = maps_masker(bold64, maps64, mask=brain, dtype=np.float64)
    np.testing.assert_allclose(ours.signals, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())


@pytest.mark.parametrize("target", ["data", "maps"])
def test_maps_resampling_target_maps_on_other_grid(bold, fine_maps, brain, target):
    ref = _nilearn(NiftiMapsMasker(fine_maps, mask_img=brain, resampling_target=target), bold)
    ours = maps_masker(bold, fine_maps, mask=brain, resampling_target=target)
    _close32(ours.signals, ref)


def test_maps_resampling_target_mask(bold, maps):
    """The mask on the finer grid: maps and data go onto it."""
    affine, shape = _fine_grid()
    coarse = _world_to_coarse(affine, shape)
    centre = np.reshape([5.5, 6.0, 4.5], (3, 1, 1, 1))
    mask = nib.Nifti1Image(((((coarse - centre) / 4.5) ** 2).sum(axis=0) < 1).astype(np.uint8),
                           affine)
    ref = _nilearn(NiftiMapsMasker(maps, mask_img=mask, resampling_target="mask"), bold)
    ours = maps_masker(bold, maps, mask=mask, resampling_target="mask")
    _close32(ours.signals, ref)
    with pytest.raises(ValueError, match="resampling_target='mask' needs mask_file"):
        maps_masker(bold, maps, resampling_target="mask")


def test_maps_map_emptied_by_mask(bold, maps, brain):
    mask = np.asarray(brain.dataobj).copy()
    mask[np.asarray(maps.dataobj)[..., 3] > 0] = 0
    mask = nib.Nifti1Image(mask, AFFINE)
    masker = NiftiMapsMasker(maps, mask_img=mask)
    ref = _nilearn(masker, bold)
    assert ref.shape == (N_VOLUMES, 3)
    ours = maps_masker(bold, maps, mask=mask)
    assert ours.signals.shape == (N_VOLUMES, 4)
    assert np.isnan(ours.signals[:, 3]).all() and ours.sizes[3] == 0
    assert ours.coverage[3] == 0
    _close32(ours.signals[:, :3], ref)
    dropped = maps_masker(bold, maps, mask=mask, drop_empty=True)
    assert dropped.names == ["0", "1", "2"]
    _close32(dropped.signals, ref)

    # Our inverse takes our output as it is; nilearn's breaks on its own output (B4).
    with pytest.raises(ValueError, match="wrong shape"):
        masker.inverse_transform(ref)
    back = maps_image(ours.signals, maps, mask=mask)
    assert back.shape == (*SHAPE, N_VOLUMES) and np.isfinite(back.get_fdata()).all()
    padded = np.column_stack([ref, np.zeros(N_VOLUMES, np.float32)])
    expected = masker.inverse_transform(padded).get_fdata()
    np.testing.assert_allclose(back.get_fdata(), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())


def test_maps_allow_overlap_false_names_the_pair(bold, maps):
    with pytest.raises(ValueError, match=r"maps_file: maps 0 and 1 overlap at voxel \(6, 2, 2\)"):
        maps_masker(bold, maps, allow_overlap=False)
    disjoint = np.asarray(maps.dataobj).copy()
    disjoint[disjoint < 0.5] = 0
    disjoint = nib.Nifti1Image(disjoint, AFFINE)
    ref = _nilearn(NiftiMapsMasker(disjoint, allow_overlap=False), bold)
    _close32(maps_masker(bold, disjoint, allow_overlap=False).signals, ref)


def test_maps_cleaning(bold64, maps, brain):
    """float64 data, float32 maps: solved in float64 as nilearn's lstsq (a float32 solve left
    ~1e-4 errors once detrending removes the mean of ~1000)."""
    confounds = np.random.default_rng(1).normal(size=(N_VOLUMES, 3))
    args = {"detrend": True, "standardize": "zscore_sample", "high_pass": 0.03, "t_r": 2.0}
    ref = _nilearn(NiftiMapsMasker(maps, mask_img=brain, **args), bold64, confounds=confounds,
                   sample_mask=SAMPLE_MASK)
    ours = maps_masker(bold64, maps, mask=brain, dtype=np.float64,
                       clean_args={**args, "confounds": confounds, "sample_mask": SAMPLE_MASK})
    np.testing.assert_allclose(ours.signals, ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(ours.volumes, SAMPLE_MASK)


def test_maps_3d_image_is_refused(bold, atlas):
    with pytest.raises(ImageError, match=r"maps_file: a 3D image \(11, 12, 9\); maps are a 4D"):
        maps_masker(bold, atlas)


# --------------------------------------------------------------------------- spheres


@pytest.mark.parametrize("radius", [None, 2.0, 4.0, 6.5])
def test_spheres_radius_values(bold, radius):
    seeds = _seeds()
    ref = _nilearn(NiftiSpheresMasker(seeds.tolist(), radius=radius), bold)
    ours = spheres_masker(bold, seeds, radius=radius)
    _close32(ours.signals, ref)
    assert ours.names == ["0", "1", "2"]
    np.testing.assert_array_equal(ours.coverage, 1.0)
    if radius is None:
        np.testing.assert_array_equal(ours.sizes, 1)


def test_spheres_with_mask_and_smoothing(bold, brain):
    seeds = _seeds()
    masker = NiftiSpheresMasker(seeds.tolist(), radius=6.5, mask_img=brain, smoothing_fwhm=4.0)
    ref = _nilearn(masker, bold)
    ours = spheres_masker(bold, seeds, radius=6.5, mask=brain, smoothing_fwhm=4.0)
    _close32(ours.signals, ref)
    whole = spheres_masker(bold, seeds, radius=6.5)
    np.testing.assert_allclose(ours.coverage, ours.sizes / whole.sizes)
    assert (ours.sizes <= whole.sizes).all()


def test_spheres_power_2011_subset_on_mni_grid():
    """nilearn's bundled Power 2011 seeds on an MNI-like 4 mm grid (every 6th seed)."""
    from pathlib import Path

    import nilearn

    from nipype_maskers.core.regions.spheres import read_seeds

    seeds, names = read_seeds(Path(nilearn.__file__).parent / "datasets/data/power_2011.csv")
    assert seeds.shape == (264, 3) and names is None
    seeds = seeds[::6]
    affine = np.array([[4.0, 0, 0, -90], [0, 4, 0, -126], [0, 0, 4, -72], [0, 0, 0, 1]])
    data = np.random.default_rng(3).normal(100, 10, (46, 55, 46, 4)).astype(np.float32)
    img = nib.Nifti1Image(data, affine)
    ref = _nilearn(NiftiSpheresMasker(seeds.tolist(), radius=5.0), img)
    ours = spheres_masker(img, seeds, radius=5.0)
    _close32(ours.signals, ref)


def test_spheres_allow_overlap(bold):
    seeds = _seeds()
    with pytest.raises(ValueError, match=r"spheres 0 \[.*\] and 1 \[.*\] overlap"):
        spheres_masker(bold, seeds, radius=12.0)
    ref = _nilearn(NiftiSpheresMasker(seeds.tolist(), radius=12.0, allow_overlap=True), bold)
    _close32(spheres_masker(bold, seeds, radius=12.0, allow_overlap=True).signals, ref)


def test_spheres_cleaning(bold64):
    seeds = _seeds()
    args = {"detrend": True, "standardize": "zscore_sample", "low_pass": 0.15, "t_r": 2.0}
    ref = _nilearn(NiftiSpheresMasker(seeds.tolist(), radius=4.0, **args), bold64)
    ours = spheres_masker(bold64, seeds, radius=4.0, dtype=np.float64, clean_args=args)
    np.testing.assert_allclose(ours.signals, ref, rtol=1e-10, atol=1e-12)

