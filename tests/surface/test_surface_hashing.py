"""The surface and CIFTI maskers' ``in_file_sha256``: the BOLD hashed from the step's own read.

Reference: ``hashlib.sha256`` of the file's bytes. "From its own read" is checked on the
digest itself: when the masker returns, :class:`StreamDigest` has already taken every byte
(``hashed`` equals the file's size), so :meth:`~StreamDigest.hexdigest` reads nothing again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from surface.cifti_data import (
    layout,
    parcel_keys,
    save_dlabel,
    save_dscalar,
    save_dtseries,
    series,
)
from surface.gifti_data import make_labels, make_pair_data, save_pair

from nipype_maskers.core.io.hashing import hash_reads
from nipype_maskers.core.surface.cifti_maskers import cifti_labels_masker, cifti_maps_masker
from nipype_maskers.core.surface.gifti_maskers import surface_masker
from nipype_maskers.core.surface.gifti_series import read_series_pair
from nipype_maskers.interfaces.cifti import CiftiLabelsMasker, CiftiMapsMasker
from nipype_maskers.interfaces.surface import SurfaceLabelsMasker, SurfaceMasker


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _cifti_files(tmp_path):
    axis = layout()
    dtseries = save_dtseries(tmp_path / "sub-01_task-rest_bold.dtseries.nii",
                             series(30, len(axis)), axis)
    dlabel = save_dlabel(tmp_path / "atlas.dlabel.nii", parcel_keys(axis, 7), axis)
    maps = np.random.default_rng(3).random((2, len(axis))).astype(np.float32)
    dscalar = save_dscalar(tmp_path / "maps.dscalar.nii", maps, axis)
    return dtseries, dlabel, dscalar


def test_cifti_maskers_hash_the_dtseries_from_their_memory_mapped_read(tmp_path):
    dtseries, dlabel, dscalar = _cifti_files(tmp_path)
    size = os.path.getsize(dtseries)
    for extract in (lambda: cifti_labels_masker(dtseries, dlabel, block_columns=16,
                                                volumes=slice(3, 9)),
                    lambda: cifti_maps_masker(dtseries, dscalar, block_columns=16)):
        with hash_reads(dtseries) as digest:
            extract()
        assert digest.hashed == size  # fed by the masker's read: nothing left to read
        assert digest.hexdigest() == _sha256(dtseries)


def test_cifti_interfaces_output_in_file_sha256(tmp_path):
    dtseries, dlabel, dscalar = _cifti_files(tmp_path)
    labels = CiftiLabelsMasker(in_file=str(dtseries), labels_file=str(dlabel)
                               ).run(cwd=str(tmp_path)).outputs
    maps = CiftiMapsMasker(in_file=str(dtseries), maps_file=str(dscalar)
                           ).run(cwd=str(tmp_path)).outputs
    assert labels.in_file_sha256 == maps.in_file_sha256 == _sha256(dtseries)


def test_gifti_pair_is_hashed_from_its_stream(tmp_path):
    left, right = make_pair_data()
    paths = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right,
                      time_step=2000.0)
    with hash_reads(paths[0]) as left_digest, hash_reads(paths[1]) as right_digest:
        surface_masker(read_series_pair(paths), volumes=None)
    for digest, path in ((left_digest, paths[0]), (right_digest, paths[1])):
        assert digest.hashed == os.path.getsize(path)
        assert digest.hexdigest() == _sha256(path)


def test_gifti_interfaces_output_both_digests(tmp_path):
    left, right = make_pair_data()
    paths = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right)
    labels = save_pair(tmp_path, "atlas-test", "dseg.label.gii", *make_labels(),
                       intent="NIFTI_INTENT_LABEL")
    expected = [_sha256(path) for path in paths]
    out = SurfaceMasker(in_file=paths, volumes="0:5").run(cwd=str(tmp_path)).outputs
    assert out.in_file_sha256 == expected
    out = SurfaceLabelsMasker(in_file=paths, labels_file=labels).run(cwd=str(tmp_path)).outputs
    assert out.in_file_sha256 == expected
