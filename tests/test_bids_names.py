"""One rule per BIDS question: a file's sidecar, reading it; the BIDS modules' layering."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nipype_maskers import bids, bids_dataset, bids_names, spaces
from nipype_maskers.cli import checks
from nipype_maskers.interfaces import bids as bids_interfaces


def test_every_layer_names_a_sidecar_with_the_one_rule():
    # the writer, the atlas-space and the TR checks share it (spaces and the interfaces had
    # their own copies)
    assert bids_interfaces.sidecar_of is bids_names.sidecar_of is bids.sidecar_of
    assert checks.sidecar_of is bids_names.sidecar_of
    assert not hasattr(spaces, "sidecar_path")
    assert bids_names.sidecar_of(Path("/d/sub-01_task-rest_bold.nii.gz")) == Path(
        "/d/sub-01_task-rest_bold.json")
    assert bids_names.sidecar_of("x.tsv") == Path("x.json")


def test_read_sidecar(tmp_path):
    image = tmp_path / "atlas-X_dseg.nii.gz"
    assert bids_names.read_sidecar(image) == (None, tmp_path / "atlas-X_dseg.json")
    (tmp_path / "atlas-X_dseg.json").write_text('{"Space": "T1w"}')
    assert bids_names.read_sidecar(image) == ({"Space": "T1w"}, tmp_path / "atlas-X_dseg.json")
    (tmp_path / "atlas-X_dseg.json").write_text("[1, 2]")  # not an object: no key
    assert bids_names.read_sidecar(image)[0] == {}
    (tmp_path / "atlas-X_dseg.json").write_text("{")
    with pytest.raises(ValueError, match=r"sidecar '.*atlas-X_dseg.json': not readable JSON"):
        bids_names.read_sidecar(image)


def test_unreadable_bold_sidecar_is_a_usage_error_naming_it(tmp_path):
    bold = tmp_path / "sub-01_task-rest_desc-preproc_bold.nii.gz"
    (tmp_path / "sub-01_task-rest_desc-preproc_bold.json").write_text("{")
    with pytest.raises(checks.UsageError,
                       match=r"sidecar '.*sub-01_task-rest_desc-preproc_bold.json': not "
                             "readable JSON"):
        checks.sidecar_t_r(bold)


def test_public_names_stay_importable_from_bids():
    # the names moved to bids_names / bids_dataset are the same objects through bids
    for name in ("validate_label", "parse_entities", "format_name", "derived_name",
                 "derivative_path", "same_source", "ENTITY_ORDER", "ADDED_ENTITIES"):
        assert getattr(bids, name) is getattr(bids_names, name), name
    for name in ("dataset_description", "source_uri", "bids_root", "file_sha256"):
        assert getattr(bids, name) is getattr(bids_dataset, name), name
    assert set(bids.__all__) <= set(dir(bids))


@pytest.mark.parametrize("module", ["nipype_maskers.bids", "nipype_maskers.spaces"])
def test_bids_modules_are_standard_library_only(module, tmp_path):
    # the CLI checks its arguments with them before anything heavy is imported
    code = (f"import sys, {module}\n"
            "print(sorted(m for m in ('nibabel', 'numpy', 'nipype') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert out.strip() == "[]"
