"""The streamed NiftiMasker transform against nilearn's NiftiMasker on the same files.

Tolerances: float32 data give bit-identical rows (same float32 operations in the same order,
smoothing included); scaled int16 data (float64 in nilearn) agree to float32 round-off
(rtol 1e-6).
"""


from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn.image import index_img
from nilearn.maskers import NiftiMasker
from synthetic import make_epi, oblique_affine

from nipype_maskers.core.io import images as image
from nipype_maskers.core.io import volumes as volume_io
from nipype_maskers.core.io.images import ImageError
from nipype_maskers.core.spatial.masking import MaskError
from nipype_maskers.core.voxels import masker as nifti_masker


def _nilearn(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masker = NiftiMasker(standardize=None, **kwargs)
        return masker.fit_transform(str(path)), masker


@pytest.mark.parametrize("strategy", ["background", "epi"])
@pytest.mark.parametrize("fwhm", [None, 5.0])
def test_float32_rows_are_identical_to_nilearn(epi_file, strategy, fwhm):
    ours = nifti_masker.mask_volumes(epi_file, mask_strategy=strategy, smoothing_fwhm=fwhm)
    theirs, masker = _nilearn(epi_file, mask_strategy=strategy, smoothing_fwhm=fwhm)
    assert ours.signals.dtype == np.float32 and ours.signals.shape == theirs.shape
    np.testing.assert_array_equal(ours.signals, theirs)
    np.testing.assert_array_equal(np.asanyarray(ours.mask.dataobj) != 0,
                                  masker.mask_img_.get_fdata() != 0)


def test_per_axis_fwhm_matches_smooth_img(epi_file):
    from nilearn.image import smooth_img
    from nilearn.masking import apply_mask

    fwhm = [4.0, 0.0, 7.0]
    ours = nifti_masker.mask_volumes(epi_file, mask_strategy="epi", smoothing_fwhm=fwhm)
    theirs = apply_mask(smooth_img(str(epi_file), fwhm), ours.mask)
    np.testing.assert_array_equal(ours.signals, theirs)
    unsmoothed = nifti_masker.mask_volumes(epi_file, ours.mask)
    assert np.abs(ours.signals - unsmoothed.signals).max() > 1


def test_scaled_int16_to_float32_round_off(epi_int16_file):
    ours = nifti_masker.mask_volumes(epi_int16_file, mask_strategy="epi", smoothing_fwhm=6)
    theirs, _ = _nilearn(epi_int16_file, mask_strategy="epi", smoothing_fwhm=6)
    assert theirs.dtype == np.float64
    np.testing.assert_allclose(ours.signals, theirs, rtol=1e-6, atol=1e-4)
    as64 = nifti_masker.mask_volumes(epi_int16_file, mask_strategy="epi", smoothing_fwhm=6,
                                     dtype="float64")
    np.testing.assert_allclose(as64.signals, theirs, rtol=1e-12)


def test_given_mask_and_volume_selection(epi_file, tmp_path):
    mask_data = np.zeros((17, 19, 15), np.int8)
    mask_data[4:12, 5:14, 3:11] = 1
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask_data, oblique_affine()), mask_path)
    for selection, nilearn_index in [(slice(0, 5), slice(0, 5)), ([7, 2, 2, 9], [7, 2, 2, 9]),
                                     (3, [3]), ([True, False] * 6, [True, False] * 6)]:
        ours = nifti_masker.mask_volumes(epi_file, mask_path, volumes=selection,
                                         smoothing_fwhm=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = NiftiMasker(mask_path, smoothing_fwhm=3).fit_transform(
                index_img(str(epi_file), nilearn_index))
        np.testing.assert_array_equal(ours.signals, theirs)


def test_nan_voxels_become_zero_with_one_warning(tmp_path):
    data, _ = make_epi(n_volumes=4)
    data[8, 9, 7, :] = np.nan
    data[9, 9, 7, 1] = np.inf
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, oblique_affine()), path)
    mask = np.ones((17, 19, 15), np.int8)
    mask_img = nib.Nifti1Image(mask, oblique_affine())
    with pytest.warns(RuntimeWarning, match=r"2 voxels held NaN or inf values \(5 values"):
        ours = nifti_masker.mask_volumes(path, mask_img)
    theirs, _ = _nilearn(path, mask_img=mask_img)
    assert np.isfinite(ours.signals).all()
    np.testing.assert_array_equal(ours.signals, theirs)


def test_3d_image_gives_one_row(epi_file, tmp_path):
    path = tmp_path / "vol.nii.gz"
    nib.save(index_img(str(epi_file), 4), path)
    ours = nifti_masker.mask_volumes(path, mask_strategy="epi")
    theirs, _ = _nilearn(path, mask_strategy="epi")
    assert ours.signals.shape == (1, theirs.shape[-1])
    np.testing.assert_array_equal(ours.signals[0], theirs.ravel())


def test_reader_streams_the_file_once(epi_file, monkeypatch):
    opened = []
    real_open = volume_io._open_stream
    monkeypatch.setattr(volume_io, "_open_stream", lambda f: opened.append(f) or real_open(f))
    mask = nifti_masker.mask_volumes(epi_file, mask_strategy="epi").mask
    assert len(opened) == 2  # one pass for the mean, one for the rows
    opened.clear()
    nifti_masker.mask_volumes(epi_file, mask, smoothing_fwhm=4)
    assert len(opened) == 1


def test_errors_name_the_input(epi_file, tmp_path, affine):
    other = tmp_path / "other_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((7, 8, 9), np.int8), affine), other)
    with pytest.raises(MaskError, match=r"mask_file: its grid differs from in_file's \(shape"):
        nifti_masker.mask_volumes(epi_file, other)
    with pytest.raises(ValueError, match="smoothing_fwhm: the FWHM must be finite and >= 0"):
        nifti_masker.mask_volumes(epi_file, smoothing_fwhm=-2)
    with pytest.raises(ValueError, match="dtype: expected 'float32' or 'float64'"):
        nifti_masker.mask_volumes(epi_file, dtype="int16")
    with pytest.raises(ValueError, match="volumes: index 12 is out of range .* 12 volumes"):
        nifti_masker.mask_volumes(epi_file, volumes=[0, 12])
    vol = tmp_path / "vol.nii.gz"
    nib.save(index_img(str(epi_file), 0), vol)
    with pytest.raises(ImageError, match="volumes: in_file is a 3D image"):
        nifti_masker.mask_volumes(vol, volumes=[0])


def test_load_img_errors(tmp_path, epi_file):
    with pytest.raises(ImageError, match="in_file: no such file"):
        image.load_img(tmp_path / "missing.nii.gz", name="in_file")
    text = tmp_path / "notes.nii.gz"
    text.write_text("not an image")
    with pytest.raises(ImageError, match="is not a readable NIfTI image"):
        image.load_img(text, name="in_file")
    with pytest.raises(ImageError, match="is 3D .* expected a 4D image"):
        image.load_img(index_img(str(epi_file), 0), ndim=4)
    with pytest.raises(ImageError, match="is 4D with 12 volumes; expected a 3D image"):
        image.load_img(epi_file, ndim=3)


def test_truncated_gzip_is_reported_not_half_read(epi_file, tmp_path):
    raw = epi_file.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageError, match="cut.nii.gz' is truncated or corrupt"):
        nifti_masker.mask_volumes(cut, mask_strategy="epi")
    flipped = bytearray(raw)
    flipped[-len(raw) // 4: -len(raw) // 4 + 64] = bytes(64)
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(bytes(flipped))
    # nibabel itself may notice at load time (with indexed_gzip installed), or our reader does
    with pytest.raises(ImageError, match="bad.nii.gz' is (truncated or corrupt|not a readable)"):
        nifti_masker.mask_volumes(bad, mask_strategy="epi")


def test_absurd_header_is_refused_before_allocating(tmp_path):
    img = nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4))
    path = tmp_path / "huge.nii"
    nib.save(img, path)
    raw = bytearray(path.read_bytes())
    header = nib.Nifti1Header.from_fileobj(open(path, "rb"))
    header.set_data_shape((30000, 30000, 30000, 1000))
    raw[:348] = header.binaryblock
    path.write_bytes(bytes(raw))
    with pytest.raises(ImageError, match="claims shape \\(30000, 30000, 30000, 1000\\)"):
        nifti_masker.mask_volumes(path, mask_strategy="epi")
    gz = tmp_path / "huge.nii.gz"
    import gzip
    gz.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ImageError, match="more than the .* file can hold"):
        image.load_img(gz)


def test_resolve_volumes_matches_index_img_semantics():
    np.testing.assert_array_equal(volume_io.resolve_volumes(slice(None, None, -3), 10),
                                  [9, 6, 3, 0])
    np.testing.assert_array_equal(volume_io.resolve_volumes([-1, 0], 4), [3, 0])
    with pytest.raises(ValueError, match="volumes: a boolean mask needs one entry per volume; "
                       "got 2 booleans for an image with 4 volumes"):
        volume_io.resolve_volumes([True, False], 4)
    with pytest.raises(ValueError, match="expected an int, a slice"):
        volume_io.resolve_volumes([0.5], 4)


@pytest.mark.parametrize("index", [3, slice(2, 9, 3), [7, 1, 1], [True, False] * 6,
                                   np.array([False, True, True] * 4), [0, 1, 1, 0]])
def test_index_img_matches_nilearn(epi_int16_file, index):
    ours = volume_io.index_img(epi_int16_file, index)
    theirs = index_img(str(epi_int16_file), index)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), theirs.get_fdata())
    np.testing.assert_array_equal(ours.affine, theirs.affine)


@pytest.mark.parametrize("mask", [[False, True, True] * 4, np.array([True, False] * 6)])
def test_boolean_volumes_are_a_mask_as_in_nilearn_index_img(epi_file, mask):
    """Booleans select volumes as a mask (numpy's reading), never the indices 0 and 1."""
    ours = nifti_masker.mask_volumes(epi_file, mask_strategy="epi", volumes=mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = NiftiMasker(mask_strategy="epi").fit_transform(
            index_img(str(epi_file), np.asarray(mask)))
    np.testing.assert_array_equal(ours.volumes, np.flatnonzero(mask))
    np.testing.assert_array_equal(ours.signals, theirs)


@pytest.mark.parametrize("volumes, given", [([True, False] * 5, "got 10 booleans"),
                                            (np.ones(13, bool), "got 13 booleans"),
                                            (np.ones((12, 1), bool), "shape \\(12, 1\\)"),
                                            (True, "a single boolean")])
def test_boolean_volumes_of_the_wrong_length_are_refused(epi_file, volumes, given):
    with pytest.raises(ValueError, match=f"^volumes: .*{given}.* 12 volumes"):
        nifti_masker.mask_volumes(epi_file, volumes=volumes)
