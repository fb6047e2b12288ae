"""Bad GIFTI input: one clear line naming the input, what is wrong and what is expected, and
nothing written."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from surface.gifti_data import gifti, make_labels, make_maps, make_pair_data, save_pair

from nipype_maskers.core.surface.gifti import series_t_r
from nipype_maskers.core.surface.gifti_series import read_series_pair, time_series_t_r
from nipype_maskers.interfaces.surface import (
    SurfaceLabelsMasker,
    SurfaceMapsMasker,
    SurfaceMasker,
)

LABEL = {"intent": "NIFTI_INTENT_LABEL"}


@pytest.fixture
def files(tmp_path):
    """A good BOLD pair, labels pair, maps pair, and an empty output folder."""
    left, right = make_pair_data(60, 50, 6)
    bold = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right)
    labels = save_pair(tmp_path, "atlas-a", "dseg.label.gii", *make_labels(60, 50), **LABEL)
    maps = save_pair(tmp_path, "atlas-m", "probseg.func.gii", *make_maps(60, 50, 3),
                     intent="NIFTI_INTENT_NONE")
    out = tmp_path / "out"
    out.mkdir()
    return {"bold": bold, "labels": labels, "maps": maps, "out": out, "dir": tmp_path,
            "data": (left, right)}


def _fails(interface, out, match):
    """The run raises one line matching ``match`` and writes nothing."""
    with pytest.raises(ValueError) as info:
        interface.run(cwd=str(out))
    message = str(info.value).strip().splitlines()[-1]
    assert "\n" not in str(info.value.args[0]), str(info.value)
    import re

    assert re.search(match, message), message
    assert list(out.iterdir()) == []


def _save(folder, name, img):
    path = folder / name
    nib.save(img, path)
    return str(path)


def test_single_hemisphere(files):
    _fails(SurfaceMasker(in_file=files["bold"][0]), files["out"],
           r"in_file: 1 files; expected a pair of GIFTI files, \[left hemisphere, right")
    _fails(SurfaceLabelsMasker(in_file=files["bold"], labels_file=files["labels"][:1]),
           files["out"], r"labels_file: 1 files; expected a pair")


def test_swapped_pair(files):
    _fails(SurfaceMasker(in_file=files["bold"][::-1]), files["out"],
           r"in_file: the pair is swapped \(sub-01_task-rest_hemi-R_.* is R, .* is L\); "
           r"expected \[left hemisphere, right hemisphere\]")
    _fails(SurfaceMapsMasker(in_file=files["bold"], maps_file=files["maps"][::-1]),
           files["out"], r"maps_file: the pair is swapped")


def test_both_left(files):
    _fails(SurfaceMasker(in_file=[files["bold"][0]] * 2), files["out"],
           r"in_file: the pair is both L")


def test_meta_decides_over_a_misleading_order_and_names_must_agree(files):
    """Meta data say R, name says hemi-L: refused (one of them is wrong)."""
    left, _right = files["data"]
    bad = _save(files["dir"], "sub-01_hemi-L_bold.func.gii", gifti(left, "R"))
    _fails(SurfaceMasker(in_file=[bad, files["bold"][1]]), files["out"],
           r"in_file: sub-01_hemi-L_bold.func.gii is named hemi-L but its "
           r"AnatomicalStructurePrimary is CortexRight")


def test_name_alone_decides_and_neither_is_refused(files):
    """Without AnatomicalStructurePrimary the hemi entity decides; with neither, refused."""
    left, right = files["data"]
    named = save_pair(files["dir"] / "out", "x", "bold.func.gii", left, right, meta=False)
    with read_series_pair(named) as series:
        assert series.sizes == (60, 50)
    for path in named:
        (files["dir"] / "out" / path.rsplit("/", 1)[1]).unlink()
    anonymous = [_save(files["dir"], f"{h}.func.gii", gifti(d, None))
                 for h, d in (("a", left), ("b", right))]
    _fails(SurfaceMasker(in_file=anonymous), files["out"],
           r"in_file: a.func.gii does not say its hemisphere; expected the meta data "
           r"AnatomicalStructurePrimary=CortexLeft\|CortexRight or 'hemi-L'/'hemi-R'")


def test_freesurfer_prefix_decides(files):
    left, right = files["data"]
    paths = [_save(files["dir"], f"{h}h.bold.func.gii", gifti(d, None))
             for h, d in (("l", left), ("r", right))]
    with read_series_pair(paths) as series:
        assert series.sizes == (60, 50)


def test_other_structure_refused(files):
    left, _ = files["data"]
    img = gifti(left, None)
    img.meta["AnatomicalStructurePrimary"] = "Cerebellum"
    bad = _save(files["dir"], "cb.func.gii", img)
    _fails(SurfaceMasker(in_file=[bad, files["bold"][1]]), files["out"],
           r"in_file: cb.func.gii is AnatomicalStructurePrimary=Cerebellum; expected "
           r"CortexLeft or CortexRight")


@pytest.mark.parametrize("which", ["labels", "maps", "mask"])
def test_vertex_counts_differ(files, which):
    n_left = 61  # one vertex more than the data's left hemisphere
    if which == "labels":
        paths = save_pair(files["dir"] / "out", "atlas-b", "dseg.label.gii",
                          *make_labels(n_left, 50), **LABEL)
        interface = SurfaceLabelsMasker(in_file=files["bold"], labels_file=paths)
    elif which == "maps":
        paths = save_pair(files["dir"] / "out", "atlas-b", "probseg.func.gii",
                          *make_maps(n_left, 50, 3), intent="NIFTI_INTENT_NONE")
        interface = SurfaceMapsMasker(in_file=files["bold"], maps_file=paths)
    else:
        paths = save_pair(files["dir"] / "out", "b", "mask.shape.gii",
                          np.ones(n_left, np.uint8), np.ones(50, np.uint8),
                          intent="NIFTI_INTENT_NONE")
        interface = SurfaceMasker(in_file=files["bold"], mask_file=paths)
    moved = []
    for path in paths:  # keep the output folder empty: move the inputs out of it
        target = files["dir"] / ("moved_" + path.rsplit("/", 1)[1])
        (files["out"] / path.rsplit("/", 1)[1]).rename(target)
        moved.append(str(target))
    interface.inputs.trait_set(**{f"{which}_file": moved})
    _fails(interface, files["out"],
           rf"in_file: 60 vertices in the L hemisphere, {which}_file has 61; expected the "
           r"same surface")


def test_non_integer_labels(files):
    labels_l, labels_r = make_labels(60, 50)
    floats = labels_l.astype(np.float32)
    floats[3] = 1.5
    paths = [_save(files["dir"], "sub-01_hemi-L_atlas-f_dseg.func.gii",
                   gifti(floats, "L", intent="NIFTI_INTENT_NONE")),
             _save(files["dir"], "sub-01_hemi-R_atlas-f_dseg.func.gii",
                   gifti(labels_r.astype(np.float32), "R", intent="NIFTI_INTENT_NONE"))]
    _fails(SurfaceLabelsMasker(in_file=files["bold"], labels_file=paths), files["out"],
           r"labels_file: sub-01_hemi-L_atlas-f_dseg.func.gii holds 1 non-integer labels such "
           r"as 1.5; expected integer labels")


def test_integer_func_labels_accepted(files):
    labels_l, labels_r = make_labels(60, 50)
    paths = save_pair(files["dir"], "atlas-i", "dseg.shape.gii", labels_l.astype(np.float32),
                      labels_r.astype(np.float32), intent="NIFTI_INTENT_NONE")
    out = SurfaceLabelsMasker(in_file=files["bold"], labels_file=paths).run(
        cwd=str(files["out"])).outputs
    assert out.out_file.endswith("_desc-labels_timeseries.tsv")


def test_label_file_given_as_bold(files):
    _fails(SurfaceMasker(in_file=files["labels"]), files["out"],
           r"in_file: sub-01_task-rest_hemi-L_atlas-a_dseg.label.gii is a label file "
           r"\(NIFTI_INTENT_LABEL\); expected BOLD time series")


def test_darrays_of_different_lengths(files):
    left, _right = files["data"]
    img = gifti(left, "L")
    img.darrays[2].data = img.darrays[2].data[:-1]
    img.darrays[2].dims = [59]
    bad = _save(files["dir"], "sub-01_hemi-L_ragged_bold.func.gii", img)
    _fails(SurfaceMasker(in_file=[bad, files["bold"][1]]), files["out"],
           r"in_file: sub-01_hemi-L_ragged_bold.func.gii data array 2 has 59 values, array 0 "
           r"60; expected one value per vertex in every array")


def test_volume_counts_differ(files):
    _left, right = files["data"]
    short = _save(files["dir"], "sub-01_hemi-R_short_bold.func.gii", gifti(right[:, :4], "R"))
    _fails(SurfaceMasker(in_file=[files["bold"][0], short]), files["out"],
           r"in_file: 6 volumes in the left file, 4 in the right; expected the same volumes")


def test_maps_counts_differ(files):
    maps_l, maps_r = make_maps(60, 50, 3)
    paths = [_save(files["dir"], "sub-01_hemi-L_m_probseg.func.gii",
                   gifti(maps_l, "L", intent="NIFTI_INTENT_NONE")),
             _save(files["dir"], "sub-01_hemi-R_m_probseg.func.gii",
                   gifti(maps_r[:, :2], "R", intent="NIFTI_INTENT_NONE"))]
    _fails(SurfaceMapsMasker(in_file=files["bold"], maps_file=paths), files["out"],
           r"maps_file: 3 maps in the left file, 2 in the right; expected the same maps")


def test_not_gifti(files, epi_file):
    _fails(SurfaceMasker(in_file=[str(epi_file), files["bold"][1]]), files["out"],
           r"in_file: sub-01_task-rest_bold.nii.gz is a Nifti1Image, not GIFTI")


def test_only_background_labels(files):
    zeros = save_pair(files["dir"], "atlas-z", "dseg.label.gii", np.zeros(60, np.int32),
                      np.zeros(50, np.int32), **LABEL)
    _fails(SurfaceLabelsMasker(in_file=files["bold"], labels_file=zeros), files["out"],
           r"labels_file holds only the background label 0; expected at least one region")


def test_time_step_rules(tmp_path):
    """TimeStep: ms from 100 up (FreeSurfer), seconds below; 0, missing or unequal: no TR."""
    def imgs(*steps):
        out = []
        for step in steps:
            img = gifti(np.zeros((3, 2), np.float32), "L")
            for darray in img.darrays:
                if step is not None:
                    darray.meta["TimeStep"] = str(step)
            out.append(img)
        return out

    assert series_t_r(imgs(720.0, 720.0)) == 0.72
    assert series_t_r(imgs(0.0, 0.0)) is None  # fMRIPrep's mri_vol2surf output: unknown
    assert series_t_r(imgs(2.0, 2.0)) == 2.0  # seconds: no TR is 2 ms
    assert series_t_r(imgs(2000.0, 1000.0)) is None
    assert series_t_r(imgs(None, None)) is None
    path = tmp_path / "sub-01_hemi-L_bold.func.gii"
    nib.save(gifti(np.zeros((3, 4), np.float32), "L", time_step=1500.0), path)
    assert time_series_t_r(path) == 1.5
