"""Bad CIFTI input: one clear error naming the input and what differs, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes
from surface.cifti_data import (
    AFFINE,
    label_dict,
    layout,
    parcel_keys,
    save_dlabel,
    save_dscalar,
    save_dtseries,
    save_ptseries,
    series,
)

from nipype_maskers.core.surface.cifti import CiftiError, grayordinate_index
from nipype_maskers.interfaces.cifti import CiftiLabelsMasker, CiftiMapsMasker


@pytest.fixture
def grayordinates():
    return layout()


@pytest.fixture
def bold(tmp_path, grayordinates):
    return save_dtseries(tmp_path / "in" / "bold.dtseries.nii",
                         series(8, len(grayordinates)), grayordinates)


@pytest.fixture(autouse=True)
def _inputs_folder(tmp_path):
    (tmp_path / "in").mkdir()


def _fails(tmp_path, monkeypatch, interface, match: str) -> None:
    """The interface raises ``match`` and writes nothing in its working folder."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(Exception, match=match):
        interface.run()
    assert [p.name for p in work.iterdir()] == []


def _labels(tmp_path, grayordinates, name="atlas.dlabel.nii"):
    keys = parcel_keys(grayordinates, 5)
    return save_dlabel(tmp_path / "in" / name, keys, grayordinates)


def test_data_vertices_missing_from_the_atlas(tmp_path, monkeypatch, grayordinates, bold):
    fewer = np.ones(len(grayordinates), dtype=bool)
    fewer[np.flatnonzero(grayordinates.name == "CIFTI_STRUCTURE_CORTEX_RIGHT")[:4]] = False
    dlabel = _labels(tmp_path, grayordinates[fewer])
    _fails(tmp_path, monkeypatch, CiftiLabelsMasker(in_file=str(bold), labels_file=str(dlabel)),
           r"labels_file: 4 of the \d+ vertices of CORTEX_RIGHT in in_file are not in "
           "labels_file")


def test_atlas_from_another_resolution(tmp_path, monkeypatch, bold):
    """A 59k atlas (another surface mesh) for 32k-like data."""
    dlabel = _labels(tmp_path, layout(n_vertex=180))
    _fails(tmp_path, monkeypatch, CiftiLabelsMasker(in_file=str(bold), labels_file=str(dlabel)),
           "labels_file: CORTEX_LEFT is a surface of 180 vertices in labels_file and of 120 in "
           "in_file: another resolution")


def test_atlas_missing_structures(tmp_path, monkeypatch, grayordinates, bold):
    cortex_only = grayordinates[grayordinates.surface_mask]
    dlabel = _labels(tmp_path, cortex_only)
    _fails(tmp_path, monkeypatch, CiftiLabelsMasker(in_file=str(bold), labels_file=str(dlabel)),
           "labels_file: no grayordinates for THALAMUS_LEFT, THALAMUS_RIGHT, "
           "CEREBELLUM_LEFT, which in_file has")


def test_voxels_on_another_grid():
    surface = cifti2_axes.BrainModelAxis.from_surface(np.arange(5), 10, "CortexLeft")
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[1, 1, :] = True
    data = surface + cifti2_axes.BrainModelAxis.from_mask(mask, "ThalamusLeft", affine=AFFINE)
    other = surface + cifti2_axes.BrainModelAxis.from_mask(
        mask, "ThalamusLeft", affine=AFFINE * np.array([[1.5], [1.5], [1.5], [1]]))
    with pytest.raises(CiftiError, match=r"labels_file: the voxels of THALAMUS_LEFT are on a "
                       r"grid of shape \(4, 4, 4\) in labels_file"):
        grayordinate_index(data, other)


def test_dscalar_given_as_bold(tmp_path, monkeypatch, grayordinates):
    dscalar = save_dscalar(tmp_path / "in" / "bold.dscalar.nii",
                           series(3, len(grayordinates)), grayordinates)
    dlabel = _labels(tmp_path, grayordinates)
    _fails(tmp_path, monkeypatch,
           CiftiLabelsMasker(in_file=str(dscalar), labels_file=str(dlabel)),
           r"in_file: '.*bold.dscalar.nii' holds dense maps \(.dscalar.nii: maps x "
           r"grayordinates\); expected a dense time series \(.dtseries.nii")


def test_ptseries_given_as_atlas(tmp_path, monkeypatch, grayordinates, bold):
    keys = parcel_keys(grayordinates, 3)
    parcels = cifti2_axes.ParcelsAxis.from_brain_models(
        [(f"p{k}", grayordinates[keys == k]) for k in (1, 2, 3)])
    ptseries = save_ptseries(tmp_path / "in" / "atlas.ptseries.nii", np.zeros((4, 3)), parcels)
    _fails(tmp_path, monkeypatch,
           CiftiLabelsMasker(in_file=str(bold), labels_file=str(ptseries)),
           r"labels_file: '.*atlas.ptseries.nii' holds a parcellated time series .*; "
           r"expected a dense label atlas \(.dlabel.nii")


def test_dtseries_given_as_atlas(tmp_path, monkeypatch, bold):
    _fails(tmp_path, monkeypatch, CiftiLabelsMasker(in_file=str(bold), labels_file=str(bold)),
           r"labels_file: .* holds a dense time series .*; expected a dense label atlas")
    _fails(tmp_path / "in", monkeypatch, CiftiMapsMasker(in_file=str(bold), maps_file=str(bold)),
           r"maps_file: .* holds a dense time series .*; expected dense maps")


def test_non_integer_keys(tmp_path, monkeypatch, grayordinates, bold):
    keys = parcel_keys(grayordinates, 4).astype(np.float32)
    keys[10] = 2.5
    dlabel = save_dlabel(tmp_path / "in" / "atlas.dlabel.nii", keys, grayordinates,
                         table=label_dict(4))
    _fails(tmp_path, monkeypatch, CiftiLabelsMasker(in_file=str(bold), labels_file=str(dlabel)),
           r"labels_file: 1 grayordinates hold non-integer label keys such as 2.5; expected "
           "integer keys")


def test_nifti_given_as_bold(tmp_path, monkeypatch, grayordinates):
    import nibabel as nib

    nifti = tmp_path / "in" / "bold.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4)), nifti)
    dlabel = _labels(tmp_path, grayordinates)
    _fails(tmp_path, monkeypatch, CiftiLabelsMasker(in_file=str(nifti), labels_file=str(dlabel)),
           r"in_file: '.*bold.nii.gz' is a Nifti1Image, not a CIFTI-2 file; expected a dense "
           "time series")


def test_several_label_maps(tmp_path, monkeypatch, grayordinates, bold):
    import nibabel as nib

    keys = parcel_keys(grayordinates, 3).astype(np.float32)
    axis = cifti2_axes.LabelAxis(["a", "b"], [label_dict(3)] * 2)
    dlabel = tmp_path / "in" / "two.dlabel.nii"
    nib.Cifti2Image(np.stack([keys, keys]), header=(axis, grayordinates)).to_filename(dlabel)
    _fails(tmp_path, monkeypatch, CiftiLabelsMasker(in_file=str(bold), labels_file=str(dlabel)),
           r"labels_file: 2 label maps \(a, b\); expected a dlabel with one label map")


def test_no_data_in_any_parcel(tmp_path, monkeypatch, grayordinates):
    empty = save_dtseries(tmp_path / "in" / "empty.dtseries.nii",
                          np.zeros((4, len(grayordinates)), np.float32), grayordinates)
    dlabel = _labels(tmp_path, grayordinates)
    _fails(tmp_path, monkeypatch, CiftiLabelsMasker(in_file=str(empty), labels_file=str(dlabel)),
           "in_file: the series of every labelled grayordinate are all zero or non-finite")
