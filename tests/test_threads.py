"""Threads: every thread count gives the same numbers, errors still surface, nothing hangs."""

from __future__ import annotations

import gc
import pickle
import threading

import nibabel as nib
import numpy as np
import pytest

from nipype_maskers.core.io import streaming, volumes
from nipype_maskers.core.io.images import ImageError, load_img
from nipype_maskers.core.io.streaming import check_threads
from nipype_maskers.core.regions import maskers as region_maskers
from nipype_maskers.core.voxels import masker as nifti_masker


def _rows(path, n_threads, indices, fn=lambda v: v.sum(dtype=np.float64)):
    img = load_img(path)
    return [(positions.tolist(), value) for positions, value in streaming.map_volumes(
        img, np.asarray(indices), fn, dtype=np.float32, n_threads=n_threads)]


@pytest.mark.parametrize("n_threads", [2, 3, 5])
def test_map_volumes_is_ordered_and_equal_for_any_thread_count(epi_file, epi_int16_file,
                                                                 n_threads):
    indices = [7, 0, 3, 3, 11, 0, 5]  # unsorted, repeated
    for path in (epi_file, epi_int16_file):  # gzip stream, and scaled int16 .nii
        one = _rows(path, 1, indices)
        many = _rows(path, n_threads, indices)
        assert [p for p, _ in many] == [p for p, _ in one] == [[1, 5], [2, 3], [6], [0], [4]]
        assert [v for _, v in many] == [v for _, v in one]
        data = np.asanyarray(nib.load(path).dataobj, dtype=np.float32)
        # each result is its own volume's (not a neighbour's buffer)
        expected = [data[..., i].sum(dtype=np.float64) for i in (0, 3, 5, 7, 11)]
        np.testing.assert_array_equal([v for _, v in many], expected)


def test_in_memory_images_are_mapped_from_copies(epi_file):
    data = np.asanyarray(nib.load(epi_file).dataobj).copy()
    img = nib.Nifti1Image(data, np.eye(4))
    before = data.copy()

    def clobber(volume):
        total = volume.sum(dtype=np.float64)
        volume[...] = -1  # callers work in place: never on the caller's array
        return total

    out = [v for _, v in streaming.map_volumes(img, np.arange(12), clobber,
                                                dtype=np.float32, n_threads=3)]
    np.testing.assert_array_equal(data, before)
    np.testing.assert_array_equal(out, before.sum(axis=(0, 1, 2), dtype=np.float64))


@pytest.mark.parametrize("options", [
    {"smoothing_fwhm": 5},
    {"smoothing_fwhm": [4, 0, 6], "target_affine": np.diag([3.0, 3.0, 3.0])},
    {"target_affine": np.diag([2.5, 2.5, 2.5])},
    {"mask_strategy": "epi", "volumes": [9, 2, 2]},
])
def test_masker_rows_are_bit_identical_for_any_thread_count(epi_file, options):
    one = nifti_masker.mask_volumes(epi_file, **options, n_threads=1).signals
    for n in (2, 4):
        np.testing.assert_array_equal(
            nifti_masker.mask_volumes(epi_file, **options, n_threads=n).signals, one)


def test_region_maskers_are_bit_identical_for_any_thread_count(epi_file):
    img = load_img(epi_file)
    atlas = np.zeros(img.shape[:3], np.int16)
    atlas[4:10, 4:12, 3:9] = 1
    atlas[10:16, 6:14, 5:11] = 2
    labels = nib.Nifti1Image(atlas, img.affine)
    clean = {"detrend": True, "standardize": "zscore_sample", "t_r": 2.0}
    one = region_maskers.labels_masker(epi_file, labels, smoothing_fwhm=4,
                                       clean_args=clean, n_threads=1).signals
    two = region_maskers.labels_masker(epi_file, labels, smoothing_fwhm=4,
                                       clean_args=clean, n_threads=3).signals
    np.testing.assert_array_equal(two, one)


def test_a_corrupt_stream_fails_cleanly_in_threads(epi_file, tmp_path):
    raw = epi_file.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(raw[: len(raw) * 2 // 3])
    before = threading.active_count()
    with pytest.raises(ImageError, match="cut.nii.gz' is truncated or corrupt"):
        nifti_masker.mask_volumes(cut, smoothing_fwhm=4, mask_strategy="background",
                                  mask_args={"opening": 0}, n_threads=3)
    assert threading.active_count() == before  # the pool is gone, no thread left waiting


def test_stopping_early_closes_the_file_and_the_threads(epi_file, monkeypatch):
    closed = []
    real_open = volumes._open_stream

    def tracked(filename):
        stream = real_open(filename)
        real_close = stream.close
        stream.close = lambda: closed.append(filename) or real_close()
        return stream

    monkeypatch.setattr(volumes, "_open_stream", tracked)
    before = threading.active_count()
    rows = streaming.map_volumes(load_img(epi_file), np.arange(12), np.sum,
                                 dtype=np.float32, n_threads=3)
    next(rows)
    rows.close()
    assert closed == [str(epi_file)]
    assert threading.active_count() == before


def test_a_failing_function_stops_the_stream(epi_file):
    def fail_on_the_fourth(volume, seen=[]):  # noqa: B006 - counts calls
        seen.append(1)
        if len(seen) == 4:
            raise ZeroDivisionError("boom")
        return 0

    with pytest.raises(ZeroDivisionError, match="boom"):
        list(streaming.map_volumes(load_img(epi_file), np.arange(12), fail_on_the_fourth,
                                   dtype=np.float32, n_threads=2))


def test_thread_counts_are_checked():
    assert check_threads(3) == 3
    assert 1 <= check_threads(None) <= 4
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n_threads: expected a whole number of threads"):
            check_threads(bad)


def test_prefaulted_empty_is_an_ordinary_array():
    small = streaming.prefaulted_empty((3, 4), np.float32)
    assert small.shape == (3, 4) and small.dtype == np.float32
    big = streaming.prefaulted_empty((64, 70_000), np.float32)  # 17.9 MB: mapped up front
    assert big.shape == (64, 70_000) and big.dtype == np.float32 and big.flags.writeable
    big[:] = np.arange(70_000, dtype=np.float32)
    assert float(big[63, 69_999]) == 69_999.0
    copy = pickle.loads(pickle.dumps(big))
    np.testing.assert_array_equal(copy, big)
    view = big[:, ::2]
    del big
    gc.collect()
    assert float(view[5, 1]) == 2.0  # the memory lives as long as a view does
