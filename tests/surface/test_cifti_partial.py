"""grayordinate_index(partial=True): the maskers' matching, with -1 where the atlas cannot
place a grayordinate (what the reports use to order their rows by parcel)."""

from __future__ import annotations

import numpy as np
import pytest
from surface.cifti_data import layout, parcel_keys, save_dlabel

from nipype_maskers.core.surface.cifti import CiftiError, grayordinate_index
from nipype_maskers.reporting.surface import cifti_labels_on


def test_partial_index_marks_what_the_atlas_lacks(tmp_path):
    data = layout()
    names = np.asarray(data.name)
    thalamus_left = np.flatnonzero(names == "CIFTI_STRUCTURE_THALAMUS_LEFT")
    cortex_left = np.flatnonzero(names == "CIFTI_STRUCTURE_CORTEX_LEFT")
    lacking = np.zeros(len(data), dtype=bool)
    lacking[thalamus_left] = True  # a whole structure
    lacking[cortex_left[:5]] = True  # and some vertices of another
    atlas = data[np.flatnonzero(~lacking)]
    with pytest.raises(CiftiError, match="no grayordinates for THALAMUS_LEFT"):
        grayordinate_index(data, atlas)
    index = grayordinate_index(data, atlas, partial=True)
    assert (index[lacking] == -1).all()
    np.testing.assert_array_equal(index[~lacking], np.arange(len(atlas)))
    # the report's parcels: the atlas's where it has the grayordinate, else 0
    keys = parcel_keys(data, 5)
    dlabel = save_dlabel(tmp_path / "atlas.dlabel.nii", keys[~lacking], atlas)
    parcels = cifti_labels_on(data, dlabel)
    np.testing.assert_array_equal(parcels, np.where(lacking, 0, keys))


def test_superset_atlas_is_matched_in_its_last_structure_too(tmp_path):
    """nibabel ends the last structure's slice with None: the atlas positions of that
    structure's grayordinates were arange(start) (a shape error, or wrong positions)."""
    from surface.cifti_data import save_dtseries, series

    from nipype_maskers.core.surface.cifti_maskers import cifti_labels_masker

    grayordinates = layout()
    keys = parcel_keys(grayordinates, 6)
    dlabel = save_dlabel(tmp_path / "atlas.dlabel.nii", keys, grayordinates)
    subset = np.ones(len(grayordinates), dtype=bool)
    subset[::7] = False  # the data lack some grayordinates of every structure, the last too
    assert not subset[np.asarray(grayordinates.name) == "CIFTI_STRUCTURE_CEREBELLUM_LEFT"].all()
    data = series(8, len(grayordinates))[:, subset]
    dtseries = save_dtseries(tmp_path / "bold.dtseries.nii", data, grayordinates[subset])
    index = grayordinate_index(grayordinates[subset], grayordinates)
    np.testing.assert_array_equal(index, np.flatnonzero(subset))
    found = cifti_labels_masker(dtseries, dlabel, dtype="float64").regions
    expected = np.stack([data[:, keys[subset] == k].mean(axis=1) for k in range(1, 7)], axis=1)
    np.testing.assert_allclose(found.signals, expected, rtol=1e-6)
