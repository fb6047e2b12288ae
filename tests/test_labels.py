"""nipype_maskers.core.regions.labels against nilearn 0.14.1 on the same arrays.

Tolerances: float64 input rtol 1e-10 (only the float64 summation order differs); float32 input
rtol 1e-5, atol 1e-6 (nilearn also accumulates in float64, then casts); integer results, voxel
indices and painted images exactly.
"""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.maskers import NiftiLabelsMasker
from nilearn.regions import img_to_signals_labels, signals_to_img_labels

from nipype_maskers.core.regions.labels import (
    STRATEGIES,
    LabelRegions,
    labels_signals,
    prepare_labels,
    read_lut,
    region_coverage,
    region_names,
    signals_to_labels_image_data,
)

SHAPE = (7, 8, 9)
N_VOLUMES = 11
LABELS = np.array([1, 5, 10, 17])
EMPTIED = 10  # the region the mask removes entirely
pytestmark = [
    # nilearn's own noise; any RuntimeWarning raised by our module is an error
    pytest.mark.filterwarnings("ignore:Non-finite values detected:UserWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("error::RuntimeWarning:nipype_maskers"),
]
AFFINE = np.array(
    [[2.0, 0.1, 0.0, -10.0], [0.0, 2.5, 0.2, 5.0], [0.0, 0.0, 3.0, -7.0], [0.0, 0.0, 0.0, 1.0]]
)


@pytest.fixture(scope="module")
def atlas():
    rng = np.random.default_rng(0)
    return rng.choice([0, 1, 5, 10, 17], size=SHAPE, p=[0.4, 0.2, 0.2, 0.1, 0.1]).astype(np.int16)


@pytest.fixture(scope="module")
def mask(atlas):
    rng = np.random.default_rng(1)
    mask = rng.random(SHAPE) < 0.8
    mask[atlas == EMPTIED] = False
    return mask


@pytest.fixture(scope="module")
def data64(atlas):
    rng = np.random.default_rng(2)
    data = 100.0 + 10.0 * rng.standard_normal((*SHAPE, N_VOLUMES))
    data[np.argwhere(atlas == 5)[0]] = np.nan  # every volume of one voxel of region 5
    i, j, k = np.argwhere(atlas == 1)[3]
    data[i, j, k, 4] = np.inf
    return data


def _img(data):
    return nib.Nifti1Image(np.array(data), AFFINE)  # a copy: nilearn zeroes NaNs in place


def _gather(data, regions):
    return data.reshape(-1, data.shape[-1], order="F")[regions.voxel_index].T


def _tolerance(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-10, "atol": 0}


# --------------------------------------------------------------------------- prepare_labels


def test_prepare_groups_voxels_by_region(atlas, mask):
    regions = prepare_labels(atlas, mask)
    assert isinstance(regions, LabelRegions)
    np.testing.assert_array_equal(regions.labels, LABELS)
    np.testing.assert_array_equal(regions.atlas_sizes, [(atlas == v).sum() for v in LABELS])
    np.testing.assert_array_equal(regions.sizes, [((atlas == v) & mask).sum() for v in LABELS])
    assert regions.sizes[2] == 0 and regions.atlas_sizes[2] > 0
    np.testing.assert_array_equal(regions.empty_labels, [EMPTIED])
    np.testing.assert_array_equal(regions.starts, np.cumsum(regions.sizes) - regions.sizes)
    assert regions.shape == SHAPE and regions.n_voxels == regions.sizes.sum()
    for label, start, size in zip(LABELS, regions.starts, regions.sizes, strict=True):
        expected = np.ravel_multi_index(np.nonzero((atlas == label) & mask), SHAPE, order="F")
        np.testing.assert_array_equal(regions.voxel_index[start : start + size], np.sort(expected))
    with pytest.raises(ValueError, match="read-only"):
        regions.sizes[0] = 3


def test_prepare_accepts_integer_valued_float_atlas(atlas, mask):
    float_atlas = atlas.astype(np.float32)
    float_atlas[0, 0, 0] = np.nan  # non-finite: background, as nilearn's 0
    reference = atlas.copy()
    reference[0, 0, 0] = 0
    ours, expected = prepare_labels(float_atlas, mask), prepare_labels(reference, mask)
    for field in ("labels", "voxel_index", "starts", "sizes", "atlas_sizes"):
        np.testing.assert_array_equal(getattr(ours, field), getattr(expected, field))
    unmasked = prepare_labels(atlas[..., np.newaxis])  # one volume is 3D
    np.testing.assert_array_equal(unmasked.sizes, unmasked.atlas_sizes)


def test_prepare_other_background(atlas):
    regions = prepare_labels(atlas, background_label=5)
    np.testing.assert_array_equal(regions.labels, [0, 1, 10, 17])
    assert regions.background_label == 5
    float_atlas = atlas.astype(float)
    float_atlas[atlas == 0] = np.nan  # non-finite voxels are background, not a region 0
    regions = prepare_labels(float_atlas, background_label=5)
    np.testing.assert_array_equal(regions.labels, [1, 10, 17])


# --------------------------------------------------------------------------- labels_signals


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_signals_match_img_to_signals_labels(atlas, data64, strategy, dtype):
    data = np.nan_to_num(np.round(data64), posinf=0) if dtype == np.int16 else data64
    data = data.astype(dtype)
    regions = prepare_labels(atlas)
    values = _gather(data, regions)
    before = values.copy()
    ours = labels_signals(values, regions, strategy)
    np.testing.assert_array_equal(values, before)  # the input is not modified
    expected, labels, _ = img_to_signals_labels(_img(data), nib.Nifti1Image(atlas, AFFINE),
                                                strategy=strategy)
    np.testing.assert_array_equal(labels, LABELS)
    assert ours.dtype == (np.float32 if dtype == np.float32 else np.float64) == expected.dtype
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, expected, **_tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_masked_signals_match_masker(atlas, mask, data64, strategy, dtype):
    data = data64.astype(dtype)
    regions = prepare_labels(atlas, mask)
    ours = labels_signals(_gather(data, regions), regions, strategy)
    masker = NiftiLabelsMasker(
        nib.Nifti1Image(atlas, AFFINE),
        mask_img=nib.Nifti1Image(mask.astype(np.uint8), AFFINE),
        strategy=strategy,
        standardize=None,
    )
    with pytest.warns(UserWarning, match="labels were removed"):
        expected = masker.fit_transform(_img(data))
    kept = LABELS != EMPTIED
    assert ours.shape == (N_VOLUMES, 4) and expected.shape == (N_VOLUMES, 3)
    assert np.isnan(ours[:, ~kept]).all()  # nilearn drops the column, we keep an n/a one
    np.testing.assert_allclose(ours[:, kept], expected, **_tolerance(dtype))
    with pytest.warns(UserWarning, match="labels were removed"):
        direct, _, _ = img_to_signals_labels(
            _img(data), nib.Nifti1Image(atlas, AFFINE),
            mask_img=nib.Nifti1Image(mask.astype(np.uint8), AFFINE), strategy=strategy,
        )
    np.testing.assert_allclose(ours[:, kept], direct, **_tolerance(dtype))


def test_chunks_and_single_volume_equal_whole(atlas, mask, data64):
    regions = prepare_labels(atlas, mask)
    values = _gather(data64.astype(np.float32), regions)
    for strategy in ("mean", "median", "variance"):
        whole = labels_signals(values, regions, strategy)
        chunks = [labels_signals(values[i : i + 4], regions, strategy) for i in (0, 4, 8)]
        np.testing.assert_array_equal(np.concatenate(chunks), whole)
        single = labels_signals(values[5], regions, strategy)
        assert single.shape == (4,)
        np.testing.assert_array_equal(single, whole[5])


# --------------------------------------------------------------------------- coverage


def test_region_coverage_by_hand(atlas, mask):
    regions = prepare_labels(atlas, mask)
    fov = np.zeros(SHAPE, dtype=bool)
    fov[:, :5] = True
    expected = [((atlas == v) & mask).sum() / (atlas == v).sum() for v in LABELS]
    np.testing.assert_allclose(region_coverage(regions), expected, rtol=1e-15)
    expected_fov = [((atlas == v) & mask & fov).sum() / (atlas == v).sum() for v in LABELS]
    np.testing.assert_allclose(region_coverage(regions, fov), expected_fov, rtol=1e-15)
    assert region_coverage(regions)[2] == 0 and 0 < expected_fov[0] < expected[0] < 1
    np.testing.assert_array_equal(region_coverage(prepare_labels(atlas)), 1.0)


# --------------------------------------------------------------------------- inverse


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("ndim", [1, 2])
def test_inverse_matches_signals_to_img_labels(atlas, mask, use_mask, ndim):
    rng = np.random.default_rng(3)
    signals = rng.standard_normal((N_VOLUMES, 4)).astype(np.float32)
    if ndim == 1:
        signals = signals[0]
    mask_data = mask if use_mask else None
    regions = prepare_labels(atlas, mask_data)
    kept = regions.sizes > 0
    ours_signals = signals.copy()
    ours_signals[..., ~kept] = np.nan  # an n/a column paints nothing: its voxels are masked
    ours = signals_to_labels_image_data(ours_signals, atlas, regions.labels, mask_data=mask_data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "labels were removed"
        expected = signals_to_img_labels(
            signals[..., kept],
            nib.Nifti1Image(atlas, AFFINE),
            None if mask_data is None else nib.Nifti1Image(mask.astype(np.uint8), AFFINE),
        )
    assert ours.dtype == np.float32 and ours.flags.f_contiguous
    np.testing.assert_array_equal(ours, np.asarray(expected.dataobj))


def test_inverse_paints_nan_columns(atlas):
    regions = prepare_labels(atlas)
    signals = np.array([1.0, np.nan, 3.0, 4.0])
    image = signals_to_labels_image_data(signals, atlas, regions.labels)
    assert np.isnan(image[atlas == 5]).all() and (image[atlas == 0] == 0).all()
    assert (image[atlas == 17] == 4.0).all()


# --------------------------------------------------------------------------- names


def _nilearn_names(atlas, **kwargs):
    masker = NiftiLabelsMasker(nib.Nifti1Image(atlas, AFFINE), **kwargs).fit()
    return list(masker.get_feature_names_out())


@pytest.mark.parametrize(
    "names",
    [
        None,
        ["Background", "a", "b", "c", "d"],
        ["a", "b", "c", "d", "Background"],
        ["background", "a", "b", "c", "d"],
        ["a", "b", "c", "d"],
    ],
)
def test_names_match_nilearn(atlas, names):
    ours = region_names(LABELS, names=names)
    assert ours == _nilearn_names(atlas, labels=None if names is None else list(names))
    assert len(ours) == 4


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["Background", "a", "b"], "naming the last 2"),
        (["Background", "a", "b", "c"], "naming the last 1"),  # not 1:1: has a Background
        (["Background", "a", "b", "c", "d", "e", "f"], "dropping the last 2"),
        (["a", "b"], "naming the last 2"),
    ],
)
def test_names_too_few_or_many_warn_like_nilearn(atlas, names, message):
    with pytest.warns(UserWarning, match=message):
        ours = region_names(LABELS, names=names)
    with pytest.warns(UserWarning, match="Too many"):
        assert ours == _nilearn_names(atlas, labels=list(names))


def test_names_never_shifted_unlike_nilearn_b7(atlas):
    names = ["Unknown", "a", "b", "c", "d"]  # one name per atlas value, background first
    with pytest.warns(UserWarning, match="Too many names"):
        assert _nilearn_names(atlas, labels=names) == ["Unknown", "a", "b", "c"]
    assert region_names(LABELS, names=names) == ["a", "b", "c", "d"]
    # background in the middle of the sorted values
    assert region_names([-2, 3], names=["neg", "bg", "pos"]) == ["neg", "pos"]


def test_names_from_lut_match_nilearn(atlas, tmp_path):
    path = tmp_path / "atlas_dseg.tsv"
    rows = [(0, "Background", "000000"), (1, "left"), (5, "right"), (10, "deep"), (99, "gone")]
    path.write_text("index\tname\tcolor\n" + "".join(
        f"{r[0]}\t{r[1]}\t{r[2] if len(r) > 2 else 'ff0000'}\n" for r in rows))
    lut = read_lut(path)
    assert lut == {0: "Background", 1: "left", 5: "right", 10: "deep", 99: "gone"}
    assert lut == dict(pd.read_table(path)[["index", "name"]].itertuples(index=False))
    ours = region_names(LABELS, lut=lut)
    assert ours == ["left", "right", "deep", "17"]
    expected = _nilearn_names(atlas, lut=path)
    assert expected == ["left", "right", "deep", "unknown"]  # nilearn: 'unknown' for 17
    assert ours[:3] == expected[:3]
    assert region_names(LABELS) == ["1", "5", "10", "17"]


# --------------------------------------------------------------------------- errors


def test_labels_errors(atlas, mask):
    bad = atlas.astype(float)
    bad[1, 2, 3] = 1.5
    with pytest.raises(ValueError, match=r"labels_img .*integer.*1\.5"):
        prepare_labels(bad)
    with pytest.raises(ValueError, match="labels_img must be a 3D"):
        prepare_labels(np.stack([atlas, atlas], axis=-1))
    with pytest.raises(TypeError, match="labels_img"):
        prepare_labels(atlas.astype(str))
    with pytest.raises(ValueError, match=r"labels_img holds only the background"):
        prepare_labels(np.zeros(SHAPE, int))
    with pytest.raises(ValueError, match=r"mask_img has shape \(7, 8, 8\)"):
        prepare_labels(atlas, mask[:, :, :8])
    with pytest.raises(ValueError, match="No region left after masking"):
        prepare_labels(atlas, atlas == 0)
    with pytest.raises(ValueError, match="background_label"):
        prepare_labels(atlas, background_label=0.5)


def test_signals_errors(atlas, mask):
    regions = prepare_labels(atlas, mask)
    values = np.zeros((2, regions.n_voxels))
    with pytest.raises(ValueError, match="Unknown strategy 'avg'. Accepted: mean, median"):
        labels_signals(values, regions, "avg")
    with pytest.raises(ValueError, match=rf"values has shape \(2, 5\); expected \(n_samples, "
                       rf"{regions.n_voxels}\)"):
        labels_signals(values[:, :5], regions)
    with pytest.raises(TypeError, match="values"):
        labels_signals(values.astype(complex), regions)
    with pytest.raises(ValueError, match="fov_mask"):
        region_coverage(regions, mask[:-1])
    with pytest.raises(ValueError, match=r"signals has shape \(2, 3\)"):
        signals_to_labels_image_data(np.zeros((2, 3)), atlas, regions.labels)
    with pytest.raises(ValueError, match=r"labels_img has regions \[17\]"):
        signals_to_labels_image_data(np.zeros(3), atlas, [1, 5, 10])


def test_names_errors():
    with pytest.raises(TypeError, match="labels must be a list of str; got str"):
        region_names(LABELS, names="abcd")
    with pytest.raises(TypeError, match="labels must be a list of str"):
        region_names(LABELS, names=["a", 2, "c", "d"])
    with pytest.raises(TypeError, match="lut must be a mapping"):
        region_names(LABELS, lut=[(1, "a")])
    with pytest.raises(ValueError, match="either"):
        region_names(LABELS, names=["a"] * 4, lut={1: "a"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("index\tcolor\n1\tff0000\n", "no column name"),
        ("idx\tlabel\n1\ta\n", "no column index or name"),
        ("index\tname\n", "no rows"),
        ("index\tname\n1\ta\nx\tb\n", r"line 3: index 'x' is not an integer"),
        ("index\tname\n1\ta\n1.5\tb\n", r"index '1.5' is not an integer"),
        ("index\tname\n1\ta\n2\tb\n1\tc\n", r"line 4: duplicate index 1 \(first named 'a'\)"),
        ("index\tname\n1\ta\textra\n", "line 2 has 3 cells, the header has 2"),
        ("index,name\n1,a\n", "no column index or name"),
        ("index\tname\n1\t \n", "empty name"),
    ],
)
def test_read_lut_errors(tmp_path, text, message):
    path = tmp_path / "lut.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_lut(path)
    assert "lut_file" in str(info.value)
