"""The demo's CIFTI run and CIFTI atlases: layout sizes, axes, TR, structures, label table,
resumability and reproducibility.

Most tests use the small layout (1,496 grayordinates) on a 4 mm volume grid; one builds the
full 91k layout (about a second).
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from nibabel import cifti2

from nipype_maskers.demo import cifti as demo_cifti
from nipype_maskers.demo import data as demo_data
from nipype_maskers.demo.atlases import write_demo_atlases
from nipype_maskers.demo.confounds import framewise_displacement
from nipype_maskers.demo.fmriprep import subject_files, write_fmriprep_dataset

SHAPE = (49, 58, 49)
AFFINE = demo_data.MNI_2MM_AFFINE.copy()
AFFINE[:3, :3] *= 2
N_VOLUMES, T_R = 50, 1.5
SMALL = demo_cifti.LAYOUT_SMALL
STRUCTURES = ["CORTEX_LEFT", "CORTEX_RIGHT", "ACCUMBENS_LEFT", "ACCUMBENS_RIGHT",
              "AMYGDALA_LEFT", "AMYGDALA_RIGHT", "BRAIN_STEM", "CAUDATE_LEFT", "CAUDATE_RIGHT",
              "CEREBELLUM_LEFT", "CEREBELLUM_RIGHT", "DIENCEPHALON_VENTRAL_LEFT",
              "DIENCEPHALON_VENTRAL_RIGHT", "HIPPOCAMPUS_LEFT", "HIPPOCAMPUS_RIGHT",
              "PALLIDUM_LEFT", "PALLIDUM_RIGHT", "PUTAMEN_LEFT", "PUTAMEN_RIGHT",
              "THALAMUS_LEFT", "THALAMUS_RIGHT"]  # fmt: skip
#: fMRIPrep's 91k grayordinates, structure by structure (HCP's real voxel counts).
COUNTS_91K = [29696, 29716, 135, 140, 315, 332, 3472, 728, 755, 8709, 9144, 706, 712, 764, 795,
              297, 260, 1060, 1010, 1288, 1248]  # fmt: skip


def write(root, **options):
    return write_fmriprep_dataset(root, subjects=["01"], n_volumes=N_VOLUMES, t_r=T_R,
                                  shape=SHAPE, affine=AFFINE, cifti=True,
                                  cifti_layout=options.pop("layout", SMALL), **options)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "fmriprep"
    write(root)
    return root


def structures(axis: cifti2.BrainModelAxis) -> list[tuple[str, int]]:
    return [(name.removeprefix("CIFTI_STRUCTURE_"), len(sub))
            for name, _, sub in axis.iter_structures()]


def test_91k_layout_has_fmriprep_sizes_and_grid():
    grid = demo_cifti.grayordinates(demo_cifti.LAYOUT_91K)
    axis = grid.axis
    assert len(axis) == demo_cifti.LAYOUT_91K.n_grayordinates == 91282
    assert structures(axis) == list(zip(STRUCTURES, COUNTS_91K, strict=True))
    assert axis.nvertices == {"CIFTI_STRUCTURE_CORTEX_LEFT": 32492,
                              "CIFTI_STRUCTURE_CORTEX_RIGHT": 32492}
    assert axis.volume_shape == (91, 109, 91)
    np.testing.assert_array_equal(axis.affine, [[-2, 0, 0, 90], [0, 2, 0, -126],
                                                [0, 0, 2, -72], [0, 0, 0, 1]])
    assert axis.volume_mask.sum() == 31870
    for name in ("CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT"):
        vertices = axis.vertex[axis.name == name]
        assert np.all(np.diff(vertices) > 0) and vertices.max() < 32492  # medial wall out
    voxels = np.ravel_multi_index(axis.voxel[axis.volume_mask].T, axis.volume_shape)
    assert np.unique(voxels).size == voxels.size  # no voxel in two structures
    # the coordinates: voxels where the affine puts them, left structures on the left
    world = axis.voxel[axis.volume_mask] @ axis.affine[:3, :3].T + axis.affine[:3, 3]
    np.testing.assert_allclose(grid.coords[axis.volume_mask], world)
    left = np.char.endswith(axis.name.astype(str), "_LEFT")
    assert (grid.coords[left, 0] < 0).mean() > 0.95 and (grid.coords[~left & (
        np.char.endswith(axis.name.astype(str), "_RIGHT")), 0] > 0).mean() > 0.95


def test_91k_atlases_written_with_the_layout(tmp_path):
    written = demo_cifti.write_cifti_atlases(tmp_path)
    labels = nib.load(written.labels)
    assert labels.shape == (1, 91282)
    assert labels.header.get_axis(1) == demo_cifti.grayordinates(demo_cifti.LAYOUT_91K).axis
    assert written.labels.name == "tpl-fsLR_den-91k_atlas-DemoCiftiParcels_dseg.dlabel.nii"
    assert written.maps.name == "tpl-fsLR_den-91k_atlas-DemoCiftiMaps_probseg.dscalar.nii"


def test_cifti_run_names_axes_tr_and_sidecar(dataset):
    path = demo_cifti.cifti_run_path(dataset, "01")
    assert path.name == "sub-01_task-rest_space-fsLR_den-91k_bold.dtseries.nii"
    img = nib.load(path)
    series, brain_models = (img.header.get_axis(i) for i in range(2))
    assert isinstance(series, cifti2.SeriesAxis) and isinstance(brain_models,
                                                                cifti2.BrainModelAxis)
    assert (series.size, series.step, series.start, series.unit) == (N_VOLUMES, T_R, 0.0,
                                                                     "SECOND")
    assert img.shape == (N_VOLUMES, SMALL.n_grayordinates) == (N_VOLUMES, 1496)
    assert img.header.get_axis(1) == demo_cifti.grayordinates(SMALL).axis
    assert [name for name, _ in structures(brain_models)] == STRUCTURES
    assert img.nifti_header.get_intent()[0] == "ConnDenseSeries"
    assert img.get_data_dtype() == np.float32
    sidecar = json.loads(path.with_name(path.name.replace(".dtseries.nii", ".json")).read_text())
    assert sidecar["RepetitionTime"] == T_R and sidecar["surface"] == "fsLR"
    assert sidecar["volume"] == "MNI152NLin6Asym"
    # fMRIPrep writes no temporary leftovers, neither do we
    assert not list(dataset.rglob("*.part"))


def test_cifti_signals_have_the_runs_motion_volumes_and_structure(dataset):
    img = nib.load(demo_cifti.cifti_run_path(dataset, "01"))
    data = img.get_fdata(dtype=np.float32)
    confounds = subject_files(dataset, "01").confounds
    motion, n_dummy = demo_cifti.read_run_motion(confounds)
    assert motion.shape == (N_VOLUMES, 6) and n_dummy == 2  # the volume demo's default
    np.testing.assert_array_equal(data * 16, np.rint(data * 16))  # multiples of 1/16
    # the voxels under the field of view are all zero, the others never
    grid = demo_cifti.grayordinates(SMALL)
    outside = (grid.coords[:, 2] < SMALL.fov_bottom_mm) & (grid.structure >= 2)
    assert 0 < outside.sum() < 0.2 * (grid.structure >= 2).sum()
    np.testing.assert_array_equal((data == 0).all(axis=0), outside)
    inside = data[:, ~outside]
    # non-steady-state volumes brighter, then a plausible BOLD baseline
    means = inside.mean(axis=1)
    assert means[0] > means[1] > 1.05 * np.median(means[n_dummy:])
    assert 500 < np.median(inside[n_dummy:]) < 1100
    # networks: neighbouring cortical vertices correlate more than distant ones
    steady = inside[n_dummy:] - inside[n_dummy:].mean(axis=0)
    cortex = np.flatnonzero(grid.structure[~outside] < 2)
    coords = grid.coords[~outside][cortex]
    corr = np.corrcoef(steady[:, cortex].T)
    distance = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    near = corr[(distance > 0) & (distance < 10)].mean()
    far = corr[distance > 80].mean()
    assert near > far + 0.1
    # the head jerks of the confounds (FD > 0.5 mm) drop the signal a little
    fd = np.nan_to_num(framewise_displacement(motion))
    assert (fd > 0.5).any()


def test_dlabel_and_dscalar_atlases(tmp_path):
    atlases = write_demo_atlases(tmp_path, shape=SHAPE, affine=AFFINE, cifti=True,
                                 cifti_layout=SMALL)
    img = nib.load(atlases.cifti_labels)
    label_axis, brain_models = (img.header.get_axis(i) for i in range(2))
    assert isinstance(label_axis, cifti2.LabelAxis) and label_axis.name.tolist() == [
        "DemoCiftiParcels"]
    assert brain_models == demo_cifti.grayordinates(SMALL).axis
    assert img.nifti_header.get_intent()[0] == "ConnDenseLabel"
    table = label_axis.label[0]
    assert sorted(table) == list(range(100))  # 80 cortical + 19 subcortical parcels and 0
    assert table[0] == ("???", (1.0, 1.0, 1.0, 0.0))
    names = [table[k][0] for k in range(1, 100)]
    assert len(set(names)) == 99 and names[0] == "L_parcel_01" and names[40] == "R_parcel_01"
    assert names[80:83] == ["L_accumbens", "R_accumbens", "L_amygdala"]
    assert names[84] == "brain_stem"
    for _, rgba in table.values():
        assert len(rgba) == 4 and all(0 <= v <= 1 for v in rgba)
    labels = np.asanyarray(img.dataobj)[0]
    np.testing.assert_array_equal(np.unique(labels), np.arange(1, 100))  # every parcel used
    # each subcortical structure is exactly one parcel; cortical parcels stay in a hemisphere
    for number, (name, part, _) in enumerate(brain_models.iter_structures()):
        values = np.unique(labels[part])
        if number >= 2:
            assert values.tolist() == [79 + number], name
        else:
            assert values.min() >= 1 + 40 * number and values.max() <= 40 * (number + 1)
    maps = nib.load(atlases.cifti_maps)
    names = maps.header.get_axis(0).name.tolist()
    assert names == atlases.cifti_maps_names == [f"{h}_map_{i:02d}" for h in "LR"
                                                 for i in range(1, 5)]
    values = np.asanyarray(maps.dataobj)
    assert values.shape == (8, SMALL.n_grayordinates) and values.min() == 0
    np.testing.assert_allclose(values.max(axis=1), 1.0)


def test_rerun_leaves_files_alone_and_rebuilds_the_same_bytes(dataset, tmp_path):
    path = demo_cifti.cifti_run_path(dataset, "01")
    before = path.stat()
    content = path.read_bytes()
    write(dataset)
    assert path.stat().st_ino == before.st_ino and path.stat().st_mtime_ns == before.st_mtime_ns
    # a lost or truncated file is rebuilt alone, byte for byte
    path.write_bytes(content[:1000])
    write(dataset)
    assert path.read_bytes() == content
    path.unlink()
    write(dataset)
    assert path.read_bytes() == content
    # another dataset with the same parameters: the same bytes
    other = tmp_path / "fmriprep"
    write(other)
    assert demo_cifti.cifti_run_path(other, "01").read_bytes() == content
    # another seed: other signals, same layout
    write(other, seed=3)
    changed = nib.load(demo_cifti.cifti_run_path(other, "01"))
    assert changed.shape == (N_VOLUMES, SMALL.n_grayordinates)
    assert changed.get_fdata().tobytes() != nib.load(path).get_fdata().tobytes()


def test_atlases_are_resumable(tmp_path):
    first = demo_cifti.write_cifti_atlases(tmp_path, SMALL)
    stats = [p.stat() for p in first[:2]]
    content = first.labels.read_bytes()
    again = demo_cifti.write_cifti_atlases(tmp_path, SMALL)
    assert [p.stat().st_ino for p in again[:2]] == [s.st_ino for s in stats]
    first.labels.write_bytes(content[:500])  # truncated: rebuilt
    demo_cifti.write_cifti_atlases(tmp_path, SMALL)
    assert first.labels.read_bytes() == content
    # another layout: rewritten
    demo_cifti.write_cifti_atlases(tmp_path, demo_cifti.LAYOUT_91K)
    assert nib.load(first.labels).shape == (1, 91282)


def test_blocks_are_generated_one_block_of_grayordinates_at_a_time():
    motion = np.zeros((12, 6))
    blocks = list(demo_cifti.simulate_cifti_blocks(demo_cifti.LAYOUT_91K, motion, t_r=2.0))
    assert len(blocks) == 12 and {b.shape[0] for b in blocks} == {12}
    assert max(b.shape[1] for b in blocks) == 8192
    assert sum(b.shape[1] for b in blocks) == 91282


def test_bad_motion_is_refused():
    with pytest.raises(ValueError, match=r"motion: expected \(n_volumes >= 2, 6\)"):
        next(demo_cifti.simulate_cifti_blocks(SMALL, np.zeros((10, 3)), t_r=2.0))
