"""SignalsToImage back to GIFTI pairs: labels painted, maps weighted, SurfaceMasker's .npy
unmasked; round trips through the maskers and nilearn's inverse_transform."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from surface.gifti_data import make_labels, make_maps, make_pair_data, nilearn_surface, save_pair

from nipype_maskers.interfaces.regions import SignalsToImage
from nipype_maskers.interfaces.surface import (
    SurfaceLabelsMasker,
    SurfaceMapsMasker,
    SurfaceMasker,
)

LABEL = {"intent": "NIFTI_INTENT_LABEL"}


def _pair_data(paths):
    """(vertices, samples) of a written pair, left then right, and its hemispheres."""
    imgs = [nib.load(p) for p in paths]
    hemis = [img.meta["AnatomicalStructurePrimary"] for img in imgs]
    data = np.vstack([np.column_stack([d.data for d in img.darrays]) for img in imgs])
    return data, hemis, imgs


@pytest.fixture
def run(tmp_path):
    left, right = make_pair_data(120, 90, 10)
    bold = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right)
    out = tmp_path / "run"
    out.mkdir()
    return bold, left, right, tmp_path, out


def test_labels_round_trip(run):
    bold, left, right, folder, out = run
    labels_l, labels_r = make_labels(120, 90)
    atlas = save_pair(folder, "atlas-a", "dseg.label.gii", labels_l, labels_r, **LABEL)
    tsv = SurfaceLabelsMasker(in_file=bold, labels_file=atlas).run(cwd=str(out)).outputs.out_file
    result = SignalsToImage(in_file=tsv, labels_file=atlas, t_r=2.0).run(cwd=str(out))
    paths = result.outputs.out_file
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "sub-01_task-rest_hemi-L_space-fsaverage5_desc-labels_unmasked.func.gii",
        "sub-01_task-rest_hemi-R_space-fsaverage5_desc-labels_unmasked.func.gii"]
    data, hemis, imgs = _pair_data(paths)
    assert hemis == ["CortexLeft", "CortexRight"] and data.shape == (210, 10)
    assert imgs[0].darrays[0].meta["TimeStep"] == "2000.000000"
    labels = np.concatenate([labels_l, labels_r])
    values = np.vstack([left, right])
    for k in range(1, 7):  # each vertex of label k holds the mean of label k (6: both hemis)
        np.testing.assert_allclose(data[labels == k], np.broadcast_to(
            values[labels == k].mean(axis=0), data[labels == k].shape), rtol=1e-6)
    assert (data[labels == 0] == 0).all()
    # and back: the painted pair gives the same signals
    again = SurfaceLabelsMasker(in_file=paths, labels_file=atlas).run(cwd=str(folder))
    np.testing.assert_allclose(np.loadtxt(again.outputs.out_file, skiprows=1),
                               np.loadtxt(tsv, skiprows=1), rtol=1e-6)


def test_maps_inverse_matches_nilearn(run):
    bold, left, right, folder, out = run
    maps_l, maps_r = make_maps(120, 90, 3)
    maps = save_pair(folder, "atlas-m", "probseg.func.gii", maps_l, maps_r,
                     intent="NIFTI_INTENT_NONE")
    tsv = SurfaceMapsMasker(in_file=bold, maps_file=maps).run(cwd=str(out)).outputs.out_file
    paths = SignalsToImage(in_file=tsv, maps_file=maps).run(cwd=str(out)).outputs.out_file
    data, _, _ = _pair_data(paths)
    from nilearn.maskers import SurfaceMapsMasker as NilearnMaps

    masker = NilearnMaps(nilearn_surface(maps_l, maps_r), standardize=None)
    signals = masker.fit_transform(nilearn_surface(left, right))
    theirs = masker.inverse_transform(signals)
    expected = np.vstack([theirs.data.parts["left"], theirs.data.parts["right"]])
    np.testing.assert_allclose(data, expected, rtol=1e-4, atol=1e-3)


def test_vertex_signals_back_on_their_mask(run):
    bold, left, right, folder, out = run
    mask_l = (np.arange(120) % 5 != 0).astype(np.uint8)
    mask_r = (np.arange(90) > 10).astype(np.uint8)
    masks = save_pair(folder, "space-fsaverage5", "mask.shape.gii", mask_l, mask_r,
                      intent="NIFTI_INTENT_NONE")
    outputs = SurfaceMasker(in_file=bold, mask_file=masks).run(cwd=str(out)).outputs
    paths = SignalsToImage(in_file=outputs.out_file, mask_file=outputs.mask_file).run(
        cwd=str(out)).outputs.out_file
    data, hemis, _ = _pair_data(paths)
    keep = np.concatenate([mask_l, mask_r]).astype(bool)
    np.testing.assert_array_equal(data[keep], np.vstack([left, right])[keep])
    assert (data[~keep] == 0).all() and hemis == ["CortexLeft", "CortexRight"]


def test_wrong_column_count_and_mixed_inputs(run):
    _bold, _left, _right, folder, out = run
    atlas = save_pair(folder, "atlas-a", "dseg.label.gii", *make_labels(120, 90), **LABEL)
    npy = folder / "signals.npy"
    np.save(npy, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"in_file: 4 columns for the 6 labels; expected one "
                                         r"column per label"):
        SignalsToImage(in_file=str(npy), labels_file=atlas).run(cwd=str(out))
    mask = save_pair(folder, "m", "mask.shape.gii", np.ones(120, np.uint8),
                     np.ones(90, np.uint8), intent="NIFTI_INTENT_NONE")
    with pytest.raises(ValueError, match=r"in_file: \(3, 4\) signals for the 210 vertices of "
                                         r"mask_file; expected \(volumes, vertices in the mask\)"):
        SignalsToImage(in_file=str(npy), mask_file=mask).run(cwd=str(out))
    with pytest.raises(ValueError, match=r"labels_file: one file; expected a \[hemi-L, hemi-R\]"):
        SignalsToImage(in_file=str(npy), labels_file=atlas[0], mask_file=mask).run(cwd=str(out))
    assert list(out.iterdir()) == []


def test_labels_inverse_inside_the_mask_only(run):
    """As nilearn's inverse_transform of a masked SurfaceLabelsMasker: 0 outside the mask."""
    *_, folder, out = run
    labels_l, labels_r = make_labels(120, 90)
    atlas = save_pair(folder, "atlas-a", "dseg.label.gii", labels_l, labels_r, **LABEL)
    keep_l, keep_r = np.arange(120) < 60, np.ones(90, bool)
    mask = save_pair(folder, "m", "mask.shape.gii", keep_l.astype(np.uint8),
                     keep_r.astype(np.uint8), intent="NIFTI_INTENT_NONE")
    npy = folder / "signals.npy"
    signals = np.arange(12, dtype=np.float64).reshape(2, 6) + 1
    np.save(npy, signals)
    paths = SignalsToImage(in_file=str(npy), labels_file=atlas, mask_file=mask).run(
        cwd=str(out)).outputs.out_file
    data, _, _ = _pair_data(paths)
    labels = np.concatenate([labels_l, labels_r])
    keep = np.concatenate([keep_l, keep_r])
    expected = np.zeros((210, 2))
    for k in range(1, 7):
        expected[(labels == k) & keep] = signals[:, k - 1]
    np.testing.assert_array_equal(data, expected)
