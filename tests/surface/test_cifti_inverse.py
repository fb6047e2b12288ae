"""SignalsToImage with CIFTI atlases: region signals back to a ``.dtseries.nii``."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from surface.cifti_data import (
    layout,
    parcel_keys,
    save_dlabel,
    save_dscalar,
    save_dtseries,
    series,
)

from nipype_maskers.interfaces.cifti import CiftiLabelsMasker, CiftiMapsMasker
from nipype_maskers.interfaces.regions import SignalsToImage


@pytest.fixture
def grayordinates():
    return layout()


def test_labels_round_trip(tmp_path, monkeypatch, grayordinates):
    keys = parcel_keys(grayordinates, 6)
    keys[keys == 4] = 0  # a label absent from the map: not a column
    dlabel = save_dlabel(tmp_path / "atlas.dlabel.nii", keys, grayordinates)
    data = series(7, len(grayordinates))
    dtseries = save_dtseries(tmp_path / "sub-01_bold.dtseries.nii", data, grayordinates,
                             step=1.5)
    monkeypatch.chdir(tmp_path)
    masked = CiftiLabelsMasker(in_file=str(dtseries), labels_file=str(dlabel)).run().outputs
    out = SignalsToImage(in_file=masked.out_file, labels_file=str(dlabel), t_r=1.5).run()
    img = nib.load(out.outputs.out_file)
    assert out.outputs.out_file.endswith("sub-01_desc-labels_unmasked.dtseries.nii")
    assert img.header.get_axis(1) == grayordinates
    assert img.header.get_axis(0).step == 1.5 and img.shape == (7, len(grayordinates))
    painted = np.asarray(img.get_fdata())
    for key in (1, 2, 3, 5, 6):
        mean = data[:, keys == key].astype(np.float64).mean(axis=1)
        np.testing.assert_allclose(painted[:, keys == key], np.repeat(
            mean[:, None], (keys == key).sum(), axis=1), rtol=1e-6)
    np.testing.assert_array_equal(painted[:, keys == 0], 0)


def test_maps_inverse_is_signals_times_maps(tmp_path, monkeypatch, grayordinates):
    n = len(grayordinates)
    maps = np.random.default_rng(4).random((3, n)).astype(np.float32)
    dscalar = save_dscalar(tmp_path / "maps.dscalar.nii", maps, grayordinates)
    signals = np.random.default_rng(5).standard_normal((4, 3))
    np.save(tmp_path / "signals.npy", signals)
    monkeypatch.chdir(tmp_path)
    out = SignalsToImage(in_file=str(tmp_path / "signals.npy"), maps_file=str(dscalar)).run()
    img = nib.load(out.outputs.out_file)
    assert img.header.get_axis(1) == grayordinates
    assert img.header.get_axis(0).step == 1.0
    np.testing.assert_allclose(img.get_fdata(), signals @ maps.astype(np.float64), rtol=1e-5)


def test_maps_round_trip_recovers_the_maps_signals(tmp_path, monkeypatch, grayordinates):
    """Data made of the maps: extraction then painting gives the data back."""
    n = len(grayordinates)
    maps = np.random.default_rng(7).random((2, n)).astype(np.float32)
    dscalar = save_dscalar(tmp_path / "maps.dscalar.nii", maps, grayordinates)
    weights = np.random.default_rng(8).uniform(1, 2, (5, 2))
    dtseries = save_dtseries(tmp_path / "bold.dtseries.nii",
                             (weights @ maps).astype(np.float32), grayordinates)
    monkeypatch.chdir(tmp_path)
    masked = CiftiMapsMasker(in_file=str(dtseries), maps_file=str(dscalar),
                             dtype="float64").run().outputs
    img = nib.load(SignalsToImage(in_file=masked.out_file,
                                  maps_file=str(dscalar)).run().outputs.out_file)
    np.testing.assert_allclose(img.get_fdata(), weights @ maps, rtol=1e-5)


def test_wrong_column_count_and_mask(tmp_path, monkeypatch, grayordinates):
    dlabel = save_dlabel(tmp_path / "atlas.dlabel.nii", parcel_keys(grayordinates, 4),
                         grayordinates)
    np.save(tmp_path / "signals.npy", np.ones((2, 3)))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="in_file: 3 columns for the 4 labels; expected one "
                       "column per label"):
        SignalsToImage(in_file=str(tmp_path / "signals.npy"), labels_file=str(dlabel)).run()
    with pytest.raises(ValueError, match="mask_file: not used with a CIFTI atlas"):
        SignalsToImage(in_file=str(tmp_path / "signals.npy"), labels_file=str(dlabel),
                       mask_file=str(dlabel)).run()
    assert not list(tmp_path.glob("*unmasked*"))
