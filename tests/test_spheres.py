"""nipype_maskers.core.regions.spheres against nilearn 0.14.1 (NiftiSpheresMasker).

The sphere voxel sets are compared *exactly* with nilearn's own adjacency
(``apply_mask_and_get_affinity``); the signals (means of the same voxels, float64) with
``rtol=1e-12`` (summation order differs: nilearn's pairwise ``np.mean`` vs a sparse product).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import nilearn
import numpy as np
import pandas as pd
import pytest
from nilearn.datasets import fetch_coords_dosenbach_2010, fetch_coords_power_2011
from nilearn.maskers import NiftiSpheresMasker
from nilearn.maskers.nifti_spheres_masker import apply_mask_and_get_affinity

from nipype_maskers.core.regions.spheres import (
    SphereRegions,
    prepare_spheres,
    read_seeds,
    signals_to_spheres_image_data,
    spheres_signals,
)

SHAPE = (17, 19, 15)
N_VOL = 6
NILEARN_DATA = Path(nilearn.__file__).parent / "datasets" / "data"


def _oblique_affine() -> np.ndarray:
    """Anisotropic voxels (3, 2.5, 3.5 mm), a rotation and an offset."""
    angle = 0.1
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([3.0, 2.5, 3.5])
    affine[:3, 3] = [-25.0, -30.0, -20.0]
    return affine


AFFINE = _oblique_affine()


def _world(affine, ijk) -> np.ndarray:
    ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
    return ijk @ affine[:3, :3].T + affine[:3, 3]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def data(rng):
    return np.asfortranarray(rng.normal(size=(*SHAPE, N_VOL)))


@pytest.fixture
def mask():
    mask = np.ones(SHAPE, dtype=bool)
    mask[0] = False  # seed 6 is next to this face
    mask[9:, 0:3, 0:6] = False  # a hole that cuts some spheres
    return mask


@pytest.fixture
def seeds(rng):
    """Seeds inside, including some near the borders of the grid and of the mask."""
    vox = rng.uniform([2, 3, 2], [14, 16, 12], size=(6, 3))
    vox = np.vstack([vox, [[0.6, 5.2, 7.1], [16.2, 18.4, 14.3], [7.6, 8.7, 6.4]]])
    return _world(AFFINE, vox)


def _gather(data, regions):
    return data.reshape(-1, data.shape[3], order="F")[regions.voxel_index].T


def _nilearn_sets(seeds, radius, data, affine, mask=None, allow_overlap=True):
    """nilearn's sphere voxel sets as sets of flat Fortran indices."""
    img = nib.Nifti1Image(data, affine)
    mask_img = None if mask is None else nib.Nifti1Image(mask.astype(np.int8), affine)
    _, adjacency = apply_mask_and_get_affinity(
        seeds.tolist(), img, radius, allow_overlap, mask_img=mask_img
    )
    cand = np.ones(data.shape[:3], bool) if mask is None else mask
    cand_ijk = np.nonzero(cand)  # nilearn's candidate order (C)
    cand_f = np.ravel_multi_index(cand_ijk, data.shape[:3], order="F")
    return [set(cand_f[row].tolist()) for row in adjacency.rows]


def _our_sets(regions):
    adj = regions.adjacency
    return [
        set(regions.voxel_index[adj.indices[adj.indptr[i] : adj.indptr[i + 1]]].tolist())
        for i in range(regions.n_seeds)
    ]


def _masker(seeds, radius, mask, affine=AFFINE, **kwargs):
    mask_img = None if mask is None else nib.Nifti1Image(mask.astype(np.int8), affine)
    return NiftiSpheresMasker(
        seeds.tolist(), radius=radius, mask_img=mask_img, standardize=None, **kwargs
    )


@pytest.mark.parametrize("radius", [1.0, 2.6, 4.0, 7.5])
@pytest.mark.parametrize("use_mask", [False, True])
def test_same_voxels_and_signals_as_nilearn(seeds, data, mask, radius, use_mask):
    mask = mask if use_mask else None
    regions = prepare_spheres(seeds, radius, AFFINE, SHAPE, mask_data=mask, allow_overlap=True)
    assert _our_sets(regions) == _nilearn_sets(seeds, radius, data, AFFINE, mask)
    ref = _masker(seeds, radius, mask, allow_overlap=True).fit_transform(
        nib.Nifti1Image(data, AFFINE)
    )
    ours = spheres_signals(_gather(data, regions), regions)
    assert ours.shape == (N_VOL, len(seeds)) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(regions.sizes, [len(s) for s in _our_sets(regions)])
    if mask is not None:
        assert mask.ravel(order="F")[regions.voxel_index].all()


def test_radius_none_is_nearest_voxel(seeds, data, mask):
    """On this grid nilearn's truncation voxel never differs, so radius=None agrees."""
    for radius in (None, 0):
        regions = prepare_spheres(seeds, radius, AFFINE, SHAPE, mask_data=mask)
        nearest = np.round(_world(np.linalg.inv(AFFINE), seeds)).astype(int)
        expected = np.ravel_multi_index(nearest.T, SHAPE, order="F")
        assert _our_sets(regions) == [{int(v)} for v in expected]
        ref = _masker(seeds, radius, mask).fit_transform(nib.Nifti1Image(data, AFFINE))
        np.testing.assert_allclose(spheres_signals(_gather(data, regions), regions), ref)


def test_truncation_quirk_on_1mm_grid(rng):
    """nilearn adds the first (C order) voxel whose int-truncated mm coordinates equal the
    truncated seed; we match it for radius > 0 and use the single nearest voxel for None (B8).
    """
    affine = np.eye(4)
    affine[:3, 3] = -3.5  # voxel centres at ..., -0.5, 0.5, ...: truncation bins of 2 voxels
    shape = (7, 8, 9)
    data = rng.normal(size=(*shape, 3))
    seeds = np.array([[0.3, 0.3, 0.3], [-1.1, 1.6, 2.5], [2.4, 2.6, 2.5]])
    for radius in (0.5, 1.0, 1.5):
        regions = prepare_spheres(seeds, radius, affine, shape, allow_overlap=True)
        assert _our_sets(regions) == _nilearn_sets(seeds, radius, data, affine)
    # the first matching candidate in C order (not F order): remove the first corner
    mask = np.ones(shape, dtype=bool)
    mask[3, 3, 3] = False  # (-0.5, -0.5, -0.5) mm
    regions = prepare_spheres(seeds, 0.5, affine, shape, mask_data=mask, allow_overlap=True)
    assert _our_sets(regions) == _nilearn_sets(seeds, 0.5, data, affine, mask)
    assert np.ravel_multi_index((3, 3, 4), shape, order="F") in _our_sets(regions)[0]
    # seed 0: nearest voxel at +0.5 mm, truncation voxel at -0.5 mm (first in C order)
    regions = prepare_spheres(seeds, 0.5, affine, shape, allow_overlap=True)
    assert regions.sizes[0] == 2
    ref = _masker(seeds, None, None, affine).fit_transform(nib.Nifti1Image(data, affine))
    ours = spheres_signals(_gather(data, prepare_spheres(seeds, None, affine, shape)),
                           prepare_spheres(seeds, None, affine, shape))
    nearest = np.round(_world(np.linalg.inv(affine), seeds)).astype(int)
    np.testing.assert_allclose(ours, data[tuple(nearest.T)].T)
    assert not np.allclose(ours[:, 0], ref[:, 0])  # nilearn B8: a two-voxel mean


def test_half_voxel_seed_rounds_half_to_even():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    regions = prepare_spheres([[3.0, 5.0, 2.2]], None, affine, (5, 5, 5))  # voxel (1.5, 2.5, 1.1)
    assert regions.voxel_index.tolist() == [np.ravel_multi_index((2, 2, 1), (5, 5, 5), order="F")]


def test_allow_overlap(seeds, data, mask):
    close = np.vstack([seeds[:3], seeds[0] + [1.0, 1.0, 0.0]])  # seeds 0 and 3 overlap
    with pytest.raises(ValueError, match=r"spheres 0 .* and 3 .* overlap"):
        prepare_spheres(close, 5.0, AFFINE, SHAPE, mask_data=mask)
    with pytest.raises(ValueError, match="Overlap detected between spheres"):
        _masker(close, 5.0, mask).fit_transform(nib.Nifti1Image(data, AFFINE))
    regions = prepare_spheres(close, 5.0, AFFINE, SHAPE, mask_data=mask, allow_overlap=True)
    ref = _masker(close, 5.0, mask, allow_overlap=True).fit_transform(
        nib.Nifti1Image(data, AFFINE)
    )
    np.testing.assert_allclose(spheres_signals(_gather(data, regions), regions), ref,
                               rtol=1e-12, atol=1e-12)
    far = seeds[[0, 1, 4]]  # disjoint with radius 4
    regions = prepare_spheres(far, 4.0, AFFINE, SHAPE, mask_data=mask, allow_overlap=False)
    ref = _masker(far, 4.0, mask).fit_transform(nib.Nifti1Image(data, AFFINE))
    np.testing.assert_allclose(spheres_signals(_gather(data, regions), regions), ref,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("allow_overlap", [True, False])
def test_inverse_matches_nilearn(seeds, data, mask, allow_overlap):
    chosen = seeds[[0, 1, 4]] if not allow_overlap else np.vstack([seeds[:3], seeds[0] + 2.0])
    masker = _masker(chosen, 4.0, mask, allow_overlap=allow_overlap)
    signals = masker.fit_transform(nib.Nifti1Image(data, AFFINE))
    ref = masker.inverse_transform(signals).get_fdata()
    regions = prepare_spheres(
        chosen, 4.0, AFFINE, SHAPE, mask_data=mask, allow_overlap=allow_overlap
    )
    ours = signals_to_spheres_image_data(signals, regions)
    assert ours.shape == (*SHAPE, N_VOL)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    ref1 = masker.inverse_transform(signals[2]).get_fdata()
    ours1 = signals_to_spheres_image_data(signals[2], regions)
    assert ours1.shape == SHAPE
    np.testing.assert_allclose(ours1, ref1, rtol=1e-12, atol=1e-12)


def test_dtypes_non_finite_and_streaming(seeds, data, mask):
    regions = prepare_spheres(seeds, 4.0, AFFINE, SHAPE, mask_data=mask, allow_overlap=True)
    values = _gather(data, regions)
    full = spheres_signals(values, regions)
    streamed = np.vstack([spheres_signals(values[t : t + 4], regions) for t in (0, 4)])
    np.testing.assert_allclose(streamed, full, rtol=1e-15)
    out32 = spheres_signals(values.astype(np.float32), regions)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, full, rtol=1e-5, atol=1e-6)
    ints = np.round(values * 10).astype(np.int16)
    out_i = spheres_signals(ints, regions)
    assert out_i.dtype == np.float64  # nilearn truncates the means of integer data
    adjacency = regions.adjacency.toarray()
    np.testing.assert_allclose(out_i, ints @ adjacency.T / adjacency.sum(1), rtol=1e-12)
    # NaN voxels count as 0, as nilearn (ensure_finite)
    data_nan = data.copy()
    data_nan.reshape(-1, N_VOL, order="F")[regions.voxel_index[::7], 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = _masker(seeds, 4.0, None, allow_overlap=True).fit_transform(
            nib.Nifti1Image(data_nan.copy(), AFFINE)
        )
    regions_nm = prepare_spheres(seeds, 4.0, AFFINE, SHAPE, allow_overlap=True)
    ours = spheres_signals(_gather(data_nan, regions_nm), regions_nm)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


# -- errors --------------------------------------------------------------------------------


def test_errors(seeds, mask):
    with pytest.raises(ValueError, match=r"radius must be a finite number of mm >= 0"):
        prepare_spheres(seeds, -1.0, AFFINE, SHAPE)
    with pytest.raises(ValueError, match="radius must be a finite"):
        prepare_spheres(seeds, np.nan, AFFINE, SHAPE)
    with pytest.raises(TypeError, match="radius must be a number"):
        prepare_spheres(seeds, "5", AFFINE, SHAPE)
    outside = np.vstack([seeds[:2], _world(AFFINE, [[-1.2, 3, 3]])])
    with pytest.raises(ValueError, match=r"seeds outside the image .* seed 2 \[-?\d"):
        prepare_spheres(outside, 5.0, AFFINE, SHAPE)
    in_hole = _world(AFFINE, [[12, 1, 3]])  # in the part removed from the mask
    with pytest.raises(ValueError, match=r"empty spheres .* seed 1 "):
        prepare_spheres(np.vstack([seeds[0], in_hole]), 1.0, AFFINE, SHAPE, mask_data=mask)
    with pytest.raises(ValueError, match=r"shape \(n_seeds, 3\).*got \(3,\)"):
        prepare_spheres([1.0, 2.0, 3.0], 5.0, AFFINE, SHAPE)
    with pytest.raises(ValueError, match=r"got \(2, 2\)"):
        prepare_spheres([[1.0, 2.0], [3.0, 4.0]], 5.0, AFFINE, SHAPE)
    with pytest.raises(ValueError, match=r"got \(0,\)"):
        prepare_spheres([], 5.0, AFFINE, SHAPE)
    with pytest.raises(ValueError, match="not a triplet"):
        prepare_spheres([[1.0, 2.0, 3.0], [1.0, 2.0]], 5.0, AFFINE, SHAPE)
    with pytest.raises(TypeError, match="seeds must hold numbers"):
        prepare_spheres([["a", "b", "c"]], 5.0, AFFINE, SHAPE)
    with pytest.raises(TypeError, match="seeds must be a sequence"):
        prepare_spheres(3.0, 5.0, AFFINE, SHAPE)
    with pytest.raises(ValueError, match=r"seeds must be finite; seed 1"):
        prepare_spheres([[0, 0, 0], [np.nan, 0, 0]], 5.0, AFFINE, SHAPE)
    with pytest.raises(ValueError, match="mask_img has shape"):
        prepare_spheres(seeds, 5.0, AFFINE, SHAPE, mask_data=mask[:-1])
    with pytest.raises(ValueError, match="mask_img is empty"):
        prepare_spheres(seeds, 5.0, AFFINE, SHAPE, mask_data=np.zeros(SHAPE))
    with pytest.raises(ValueError, match="affine must be a finite 4x4"):
        prepare_spheres(seeds, 5.0, AFFINE[:3], SHAPE)
    regions = prepare_spheres(seeds, 3.0, AFFINE, SHAPE, allow_overlap=True)
    assert isinstance(regions, SphereRegions) and regions.n_seeds == len(seeds)
    with pytest.raises(ValueError, match=r"values must be 2D \(n_samples, \d+\)"):
        spheres_signals(np.zeros((2, regions.voxel_index.size + 1)), regions)
    with pytest.raises(TypeError, match="regions must be a SphereRegions"):
        spheres_signals(np.zeros((2, 3)), None)
    with pytest.raises(ValueError, match=r"region_signals must have shape \(9,\)"):
        signals_to_spheres_image_data(np.zeros((2, 8)), regions)


# -- seed files ----------------------------------------------------------------------------


def test_read_power_and_dosenbach_files():
    coords, names = read_seeds(NILEARN_DATA / "power_2011.csv")
    ref = fetch_coords_power_2011().rois
    assert names is None and coords.shape == (264, 3)
    np.testing.assert_array_equal(coords, ref[["x", "y", "z"]].to_numpy(float))

    coords, names = read_seeds(NILEARN_DATA / "dosenbach_2010.csv")
    ref = fetch_coords_dosenbach_2010(ordered_regions=False)
    assert coords.shape == (160, 3)
    np.testing.assert_array_equal(coords, ref.rois[["x", "y", "z"]].to_numpy(float))
    raw = pd.read_csv(NILEARN_DATA / "dosenbach_2010.csv")
    assert names == raw["name"].tolist()
    assert [f"{n} {i}" for n, i in zip(names, raw["number"], strict=True)] == list(ref.labels)


def test_read_seed_formats(tmp_path):
    expected = np.array([[-25.5, -98.0, -12.0], [27.0, -97.25, 13.0]])
    tsv = tmp_path / "seeds.tsv"
    tsv.write_text("Name\tZ\tX\tY\tnetwork\nleft V1\t-12\t-25.5\t-98\tvis\n"
                   "right V1\t13\t27\t-97.25\tvis\n\n")
    coords, names = read_seeds(tsv)
    np.testing.assert_array_equal(coords, expected)
    assert names == ["left V1", "right V1"]
    csv_file = tmp_path / "seeds.csv"
    csv_file.write_text('x,y,z,name\n-25.5,-98,-12,"V1, left"\n27,-97.25,13,V1r\n')
    coords, names = read_seeds(csv_file)
    np.testing.assert_array_equal(coords, expected)
    assert names == ["V1, left", "V1r"]
    txt = tmp_path / "seeds.txt"
    txt.write_text("# MNI coordinates\n-25.5  -98 -12\n27 -97.25   13\n")
    coords, names = read_seeds(txt)
    np.testing.assert_array_equal(coords, expected)
    assert names is None
    np.testing.assert_array_equal(read_seeds(str(txt))[0], expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("x,y,z\n", r"no seeds \(only a header\)"),
        ("x,y,name\n1,2,a\n", r"missing \['z'\]"),
        ("x,y,z\n1,2\n", r"line 2 has 2 cells, the header has 3"),
        ("x,y,z\n1,two,3\n", r"line 2: 'two' in column 'y' is not a number"),
        ("x\ty\tz\n1\t2\tnan\n", r"line 2: column 'z' is not finite"),
        ("x,y,z,X\n1,2,3,4\n", r"duplicated columns \['x'\]"),
        ("1 2 3 4\n", "without header must have 3 columns"),
    ],
)
def test_read_seeds_errors(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_seeds(path)


def test_read_seeds_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_seeds(tmp_path / "nope.tsv")
