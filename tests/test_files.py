"""nipype_maskers.files: atomic writes, and gzip members that are the same bytes on every run.

The gzip header (RFC 1952) is checked byte by byte: ``FLG`` (byte 3) must not have ``FNAME``
(0x08) and ``MTIME`` (bytes 4-7) must be 0; the BIDS validator warns otherwise
(GZIP_HEADER_FILENAME, GZIP_HEADER_MTIME) and two runs on the same data would differ.
"""

from __future__ import annotations

import gzip
import os
import struct
import time

import nibabel as nib
import numpy as np
import pytest
from synthetic import make_epi, oblique_affine

from nipype_maskers import files
from nipype_maskers.demo import fmriprep as demo_fmriprep
from nipype_maskers.interfaces.masking import ComputeMask

_FNAME = 0x08


def _gzip_header(path):
    """(flags, mtime) of the first gzip member of ``path``."""
    head = path.read_bytes()[:10]
    assert head[:2] == b"\x1f\x8b", f"{path.name} is not gzip"
    return head[3], struct.unpack("<I", head[4:8])[0]


def _image():
    data, _ = make_epi(n_volumes=3)
    img = nib.Nifti1Image(data, oblique_affine())
    img.header.set_xyzt_units("mm", "sec")
    return img


def _write_all_ways(img, folder):
    """The same image through every NIfTI writer of the package."""
    folder.mkdir(exist_ok=True)
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    volumes = [np.asfortranarray(v) for v in np.moveaxis(img.get_fdata(dtype=np.float32), -1, 0)]
    return [
        files.save_nifti(img, folder / "whole.nii.gz"),
        files.save_nifti_volumes(header, volumes, folder / "streamed.nii.gz"),
        demo_fmriprep.write_nifti(folder / "demo.nii.gz", header, volumes),
        files.write_text("a\tb\n1\t2\n", folder / "table.tsv.gz"),
    ]


@pytest.mark.parametrize("backend", ["default", "zlib"])
def test_gzip_members_have_no_mtime_no_name_and_rewrites_are_identical(tmp_path, monkeypatch,
                                                                       backend):
    if backend == "zlib":  # the fallback without the "fast" extra (ISA-L)
        monkeypatch.setattr(files, "_gzip_module", gzip)
    img = _image()
    first = _write_all_ways(img, tmp_path / "first")
    # another clock for the second write: nothing of it may reach the bytes
    monkeypatch.setattr(time, "time", lambda: 1.0e9)
    second = _write_all_ways(img, tmp_path / "second")
    for a, b in zip(first, second, strict=True):
        flags, mtime = _gzip_header(a)
        assert not flags & _FNAME and mtime == 0, a.name
        assert a.read_bytes() == b.read_bytes(), a.name
    whole, streamed, demo, table = first
    for path in (whole, streamed, demo):
        back = nib.load(path)
        np.testing.assert_array_equal(back.get_fdata(dtype=np.float32),
                                      img.get_fdata(dtype=np.float32))
        np.testing.assert_allclose(back.affine, img.affine, rtol=1e-6)  # float32 srow
    assert gzip.decompress(table.read_bytes()) == b"a\tb\n1\t2\n"


def test_interface_outputs_are_byte_identical_on_rerun(epi_file, tmp_path):
    """A node's .nii.gz output used to hold the write time and its temporary file name."""
    outputs = []
    for run in ("one", "two"):
        (tmp_path / run).mkdir()
        result = ComputeMask(in_file=str(epi_file), mask_strategy="epi").run(
            cwd=str(tmp_path / run))
        outputs.append(open(result.outputs.mask_file, "rb").read())
    assert outputs[0] == outputs[1]
    assert outputs[0][3] & _FNAME == 0 and outputs[0][4:8] == b"\0\0\0\0"


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = files.write_text("old\n", tmp_path / "x.tsv")
    with pytest.raises(RuntimeError, match="disk full"), files.open_atomic(path) as stream:
        stream.write(b"half of the new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tsv"]

    def volumes():
        yield np.zeros((2, 3, 4), np.float32)  # one of the two volumes the header promises

    header = nib.Nifti1Header()
    header.set_data_shape((2, 3, 4, 2))
    header.set_data_dtype(np.float32)
    with pytest.raises(ValueError, match="got 1 volumes for a header of shape"):
        files.save_nifti_volumes(header, volumes(), tmp_path / "y.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tsv"]


def test_temporary_files_are_hidden_parts_with_the_umask_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        with files.atomic_path(tmp_path / "a.nii.gz") as tmp:
            assert tmp.parent == tmp_path
            assert tmp.name.startswith(".a.nii.gz.") and tmp.name.endswith(".part")
            tmp.write_bytes(b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.nii.gz").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["a.nii.gz"]
