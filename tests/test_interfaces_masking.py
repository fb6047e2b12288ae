"""ComputeMask, NiftiMasker and Unmask as Nipype interfaces and nodes."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn.maskers import NiftiMasker as NilearnMasker
from nipype.pipeline import engine as pe
from synthetic import make_epi, oblique_affine

from nipype_maskers.interfaces.masking import ComputeMask, NiftiMasker, Unmask


def test_masker_node_matches_nilearn_and_round_trips(epi_file, tmp_path):
    node = pe.Node(NiftiMasker(in_file=str(epi_file), mask_strategy="epi", smoothing_fwhm=4.0),
                   name="masker", base_dir=str(tmp_path / "work"))
    result = node.run()
    signals = np.load(result.outputs.out_file)
    assert result.outputs.out_file.endswith("sub-01_task-rest_signals.npy")
    assert result.outputs.mask_file.endswith("sub-01_task-rest_mask.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = NilearnMasker(mask_strategy="epi", smoothing_fwhm=4.0).fit_transform(
            str(epi_file))
    assert signals.dtype == np.float32
    np.testing.assert_array_equal(signals, reference)

    unmask = Unmask(in_file=result.outputs.out_file, mask_file=result.outputs.mask_file)
    unmask_result = unmask.run(cwd=str(tmp_path))
    back = nib.load(unmask_result.outputs.out_file)
    mask = np.asanyarray(nib.load(result.outputs.mask_file).dataobj) != 0
    assert back.shape == mask.shape + (12,)
    np.testing.assert_array_equal(back.get_fdata(dtype=np.float32)[mask].T, signals)
    assert not back.get_fdata()[~mask].any()
    np.testing.assert_allclose(back.affine, oblique_affine())


def test_rerun_is_cached(epi_file, tmp_path):
    def node():
        return pe.Node(NiftiMasker(in_file=str(epi_file), volumes="0:6"), name="masker",
                       base_dir=str(tmp_path))
    first = node().run()
    mtime = (tmp_path / "masker" / "sub-01_task-rest_signals.npy").stat().st_mtime_ns
    second = node().run()
    assert second.outputs.out_file == first.outputs.out_file
    assert (tmp_path / "masker" / "sub-01_task-rest_signals.npy").stat().st_mtime_ns == mtime
    assert np.load(second.outputs.out_file).shape[0] == 6


def test_compute_mask_single_and_multi_run(tmp_path):
    from nilearn.masking import compute_multi_epi_mask

    paths = []
    for seed in range(2):
        data, _ = make_epi(seed=seed, n_volumes=4)
        path = tmp_path / f"sub-01_run-{seed + 1}_bold.nii.gz"
        nib.save(nib.Nifti1Image(data, oblique_affine()), path)
        paths.append(str(path))
    single = ComputeMask(in_file=paths[0], mask_strategy="epi").run(cwd=str(tmp_path))
    assert single.outputs.mask_file.endswith("sub-01_run-1_mask.nii.gz")
    multi = ComputeMask(in_file=paths, mask_strategy="epi", threshold=1.0, opening=1).run(
        cwd=str(tmp_path))
    reference = compute_multi_epi_mask(paths, threshold=1.0, opening=1)
    np.testing.assert_array_equal(nib.load(multi.outputs.mask_file).get_fdata(),
                                  reference.get_fdata())


def test_unmask_reads_tsv_and_1d(tmp_path, affine):
    mask = np.zeros((7, 8, 9), np.int8)
    mask[2:5, 1:4, 3:8] = 1
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask, affine), mask_path)
    values = np.arange(45, dtype=np.float64).reshape(1, 45) / 7
    tsv = tmp_path / "row.tsv"
    tsv.write_text("\t".join(f"v{i}" for i in range(45)) + "\n"
                   + "\t".join(repr(float(v)) for v in values[0]) + "\n")
    out = nib.load(Unmask(in_file=str(tsv), mask_file=str(mask_path), dtype="float64")
                   .run(cwd=str(tmp_path)).outputs.out_file)
    assert out.shape == (7, 8, 9, 1)
    np.testing.assert_array_equal(out.get_fdata()[mask != 0][:, 0], values[0])
    npy = tmp_path / "vec.npy"
    np.save(npy, values[0].astype(np.float32))
    out3 = nib.load(Unmask(in_file=str(npy), mask_file=str(mask_path)).run(
        cwd=str(tmp_path)).outputs.out_file)
    assert out3.shape == (7, 8, 9) and out3.get_data_dtype() == np.float32


def test_unknown_strategy_is_refused_with_the_choices(epi_file):
    with pytest.raises(Exception, match="'background' or 'epi' or 'whole-brain-template'"):
        NiftiMasker(in_file=str(epi_file), mask_strategy="otsu")


def test_failed_run_leaves_no_output(epi_file, tmp_path):
    other = tmp_path / "mask_other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((7, 8, 9), np.int8), np.eye(4)), other)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(Exception, match="mask_file: its grid differs from in_file's"):
        NiftiMasker(in_file=str(epi_file), mask_file=str(other)).run(cwd=str(work))
    assert not list(work.glob("*.npy")) and not list(work.glob("*.nii.gz"))
    assert not list(work.glob(".*part*"))
    with pytest.raises(Exception, match="smoothing_fwhm: the FWHM must be finite and >= 0"):
        NiftiMasker(in_file=str(epi_file), smoothing_fwhm=-1.0).run(cwd=str(work))
    assert not list(work.iterdir())


def test_volumes_string_slice(epi_file, tmp_path):
    (tmp_path / "all").mkdir()
    (tmp_path / "some").mkdir()
    full = NiftiMasker(in_file=str(epi_file)).run(cwd=str(tmp_path / "all"))
    some = NiftiMasker(in_file=str(epi_file), volumes="2:10:2", mask_file=full.outputs.mask_file
                       ).run(cwd=str(tmp_path / "some"))
    np.testing.assert_array_equal(np.load(some.outputs.out_file),
                                  np.load(full.outputs.out_file)[2:10:2])


def test_masker_cleaning_inputs_match_nilearn(tmp_path):
    """NiftiMasker's cleaning inputs, t_r from the header, against nilearn's masker."""
    from nilearn.image import index_img

    data, brain = make_epi(n_volumes=40, seed=11)
    img = nib.Nifti1Image(data, oblique_affine())
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    bold = tmp_path / "sub-01_task-rest_bold.nii.gz"
    nib.save(img, bold)
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(brain.astype(np.int8), oblique_affine()), mask)
    confounds = np.random.default_rng(3).normal(size=(40, 3))
    conf_file = tmp_path / "confounds.tsv"
    conf_file.write_text("a\tb\tc\n" + "".join(
        "\t".join(repr(float(v)) for v in row) + "\n" for row in confounds))
    result = NiftiMasker(in_file=str(bold), mask_file=str(mask), detrend=True,
                         standardize="zscore_sample", low_pass=0.1, high_pass=0.01,
                         confounds_file=str(conf_file), volumes="0:36").run(cwd=str(tmp_path))
    assert result.outputs.t_r == 2.0 and result.outputs.t_r_source == "NIfTI header"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = NilearnMasker(mask_img=str(mask), detrend=True, standardize="zscore_sample",
                                  low_pass=0.1, high_pass=0.01, t_r=2.0).fit_transform(
            index_img(str(bold), slice(0, 36)), confounds=confounds[:36])
    ours = np.load(result.outputs.out_file)
    # z-scored values: float32 filtering and projection round-off, 1e-5 of the scale
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5 * np.abs(reference).max())


@pytest.mark.parametrize("as_array", [False, True])
def test_boolean_volumes_select_a_mask_as_nilearn_index_img(epi_file, tmp_path, as_array):
    """``volumes=[False, True, ...]`` keeps the True volumes (not the indices 0 and 1)."""
    from nilearn.image import index_img

    keep = [False, True, True] * 4  # one per volume: 8 of the 12 kept
    volumes = np.array(keep) if as_array else keep
    result = NiftiMasker(in_file=str(epi_file), mask_strategy="epi", volumes=volumes).run(
        cwd=str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = NilearnMasker(mask_strategy="epi").fit_transform(
            index_img(str(epi_file), np.array(keep)))
    assert result.outputs.volumes == [i for i, kept in enumerate(keep) if kept]
    np.testing.assert_array_equal(np.load(result.outputs.out_file), reference)


def test_boolean_volumes_of_another_length_are_refused(epi_file, tmp_path):
    with pytest.raises(ValueError, match="volumes: a boolean mask needs one entry per volume; "
                       "got 4 booleans for an image with 12 volumes"):
        NiftiMasker(in_file=str(epi_file), volumes=[True, False, True, True]).run(
            cwd=str(tmp_path))
    assert not list(tmp_path.glob("*.npy"))


@pytest.fixture
def nan_slab_file(tmp_path):
    """A run whose first three x-planes are NaN: compute_epi_mask's ensure_finite decides."""
    data, _ = make_epi(seed=5)
    data = data.copy()
    data[:3] = np.nan
    data[4, 4, 4, 2] = np.inf
    img = nib.Nifti1Image(data, oblique_affine())
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    path = tmp_path / "sub-01_task-rest_bold.nii.gz"
    nib.save(img, path)
    return path


def test_cleaning_ensure_finite_with_detrend_matches_nilearn_clean_args(nan_slab_file, tmp_path):
    """``ensure_finite`` is the cleaning option (nilearn: ``clean_args``), not a mask argument:
    it used to be refused by the default mask strategy ('background')."""
    with pytest.warns(RuntimeWarning, match="voxels held NaN or inf values"):
        result = NiftiMasker(in_file=str(nan_slab_file), detrend=True, ensure_finite=True).run(
            cwd=str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = NilearnMasker(detrend=True, clean_args={"ensure_finite": True}
                                  ).fit_transform(str(nan_slab_file))
    ours = np.load(result.outputs.out_file)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5 * np.abs(reference).max())


@pytest.mark.parametrize("how", ["trait", "mask_args"])
def test_mask_ensure_finite_matches_nilearn_mask_args(nan_slab_file, tmp_path, how):
    """The EPI mask's ``ensure_finite``: ``mask_ensure_finite`` or ``mask_args``, as nilearn's
    ``mask_args={'ensure_finite': ...}``; both values give nilearn's outcome."""
    def ours(value):
        given = ({"mask_ensure_finite": value} if how == "trait"
                 else {"mask_args": {"ensure_finite": value}})
        return NiftiMasker(in_file=str(nan_slab_file), mask_strategy="epi", detrend=True,
                           ensure_finite=True, **given).run(cwd=str(tmp_path))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nilearn_masker = NilearnMasker(mask_strategy="epi", mask_args={"ensure_finite": True},
                                       detrend=True, clean_args={"ensure_finite": True})
        reference = nilearn_masker.fit_transform(str(nan_slab_file))
        with pytest.raises(ValueError, match="empty"):  # the NaN slab swamps the histogram
            NilearnMasker(mask_strategy="epi", mask_args={"ensure_finite": False}).fit(
                str(nan_slab_file))
    with pytest.warns(RuntimeWarning, match="voxels held NaN or inf values"):
        result = ours(True)
    np.testing.assert_array_equal(nib.load(result.outputs.mask_file).get_fdata() != 0,
                                  nilearn_masker.mask_img_.get_fdata() != 0)
    np.testing.assert_allclose(np.load(result.outputs.out_file), reference, rtol=0,
                               atol=1e-5 * np.abs(reference).max())
    with (pytest.raises(ValueError, match="computed an empty mask"),
          pytest.warns(UserWarning, match="Computed an empty mask")):
        ours(False)
    mask = ComputeMask(in_file=str(nan_slab_file), mask_strategy="epi", mask_ensure_finite=True
                       ).run(cwd=str(tmp_path))
    np.testing.assert_array_equal(nib.load(mask.outputs.mask_file).get_fdata() != 0,
                                  nilearn_masker.mask_img_.get_fdata() != 0)
