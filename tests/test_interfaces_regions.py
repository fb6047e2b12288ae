"""Region maskers as Nipype interfaces and nodes: BIDS TSVs, nilearn parity, bad inputs.

Signals are read back from the TSVs (float32 written with the shortest round-tripping text)
and compared with nilearn 0.14.1 with ``rtol=1e-5, atol=1e-5 * max|ref|``; cleaned signals
(order 1) with ``atol=1e-5``; names, voxel counts and file names exactly. Every bad input must
fail before any output is written, with a message naming the input and saying what is expected.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import nilearn
import numpy as np
import pandas as pd
import pytest
from nilearn.maskers import NiftiLabelsMasker as NlLabels
from nilearn.maskers import NiftiMapsMasker as NlMaps
from nilearn.maskers import NiftiSpheresMasker as NlSpheres
from nipype.pipeline import engine as pe
from region_data import AFFINE, LABELS, N_VOLUMES, SHAPE, _atlas_data, _maps_data
from synthetic import make_epi

from nipype_maskers.interfaces.regions import (
    NiftiLabelsMasker,
    NiftiMapsMasker,
    NiftiSpheresMasker,
    SignalsToImage,
)

NAMES = ["frontal", "parietal", "temporal", "occipital", "cerebellum"]
POWER = Path(nilearn.__file__).parent / "datasets" / "data" / "power_2011.csv"
OUTPUT_SUFFIXES = (".tsv", ".nii", ".nii.gz", ".npy")


def _save(data, path, affine=AFFINE, t_r=None):
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    if t_r is not None:
        img.header["pixdim"][4] = t_r
    nib.save(img, path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    data, brain = make_epi(SHAPE, N_VOLUMES)
    atlas = _atlas_data()
    out = {
        "bold": _save(data, folder / "sub-01_task-rest_bold.nii.gz", t_r=2.0),
        "atlas": _save(atlas, folder / "atlas.nii.gz"),
        "brain": _save(brain.astype(np.uint8), folder / "brain_mask.nii.gz"),
        "maps": _save(_maps_data(), folder / "maps.nii.gz"),
    }
    for label in (9, 3):  # two "subjects" whose masks empty different regions
        mask = brain.astype(np.uint8)
        mask[atlas == label] = 0
        out[f"mask_no{label}"] = _save(mask, folder / f"mask_no{label}.nii.gz")
    lut = folder / "atlas_dseg.tsv"
    lut.write_text("index\tname\n0\tBackground\n"
                   + "".join(f"{i}\t{n}\n" for i, n in zip(LABELS, NAMES, strict=True)))
    out["lut"] = str(lut)
    return out


def _nilearn(masker, img, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return masker.fit_transform(img, **kwargs)


def _read_tsv(path):
    return pd.read_csv(path, sep="\t")


def _close32(ours, ref):
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def _node(interface, tmp_path, name="masker"):
    return pe.Node(interface, name=name, base_dir=str(tmp_path / "work"))


# --------------------------------------------------------------------------- labels


def test_labels_node_writes_bids_tsv_matching_nilearn(files, tmp_path):
    node = _node(NiftiLabelsMasker(in_file=files["bold"], labels_file=files["atlas"],
                                   mask_file=files["mask_no9"], lut_file=files["lut"]),
                 tmp_path)
    result = node.run()
    out = Path(result.outputs.out_file)
    assert out.name == "sub-01_task-rest_desc-labels_timeseries.tsv"
    assert out.parent == Path(node.output_dir())
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == NAMES  # ascending label order: 2, 3, 7, 9, 12
    assert len(lines) == N_VOLUMES + 1
    assert all(line.split("\t")[3] == "n/a" for line in lines[1:])
    table = _read_tsv(out)
    masker = NlLabels(files["atlas"], mask_img=files["mask_no9"], lut=files["lut"])
    ref = _nilearn(masker, files["bold"])
    assert list(masker.get_feature_names_out()) == [n for n in NAMES if n != "occipital"]
    _close32(table.drop(columns="occipital").to_numpy(), ref)
    assert result.outputs.t_r == 2.0 and result.outputs.t_r_source == "NIfTI header"
    assert result.outputs.volumes == list(range(N_VOLUMES))

    regions = _read_tsv(result.outputs.regions_file)
    assert Path(result.outputs.regions_file).name == "sub-01_task-rest_desc-labels_regions.tsv"
    assert list(regions.columns) == ["index", "name", "voxel_count", "coverage"]
    assert regions["index"].tolist() == LABELS
    assert regions["name"].tolist() == NAMES
    atlas = _atlas_data()
    mask = nib.load(files["mask_no9"]).get_fdata() != 0
    assert regions["voxel_count"].tolist() == [int(np.sum((atlas == v) & mask)) for v in LABELS]
    np.testing.assert_allclose(
        regions["coverage"], [np.sum((atlas == v) & mask) / np.sum(atlas == v) for v in LABELS])
    assert regions["coverage"][3] == 0


def test_stable_columns_for_two_subjects(files, tmp_path):
    tables = {}
    for label in (9, 3):
        work = tmp_path / f"sub{label}"
        work.mkdir()
        result = NiftiLabelsMasker(in_file=files["bold"], labels_file=files["atlas"],
                                   mask_file=files[f"mask_no{label}"]).run(cwd=str(work))
        tables[label] = _read_tsv(result.outputs.out_file)
    assert list(tables[9].columns) == list(tables[3].columns) == [str(v) for v in LABELS]
    assert tables[9]["9"].isna().all() and not tables[9]["3"].isna().any()
    assert tables[3]["3"].isna().all() and not tables[3]["9"].isna().any()
    # nilearn's columns differ between the two subjects (it drops the emptied region)
    columns = []
    for label in (9, 3):
        masker = NlLabels(files["atlas"], mask_img=files[f"mask_no{label}"])
        _nilearn(masker, files["bold"])
        columns.append(list(masker.get_feature_names_out()))
    assert columns == [["2", "3", "7", "12"], ["2", "7", "9", "12"]]


def test_drop_empty_gives_nilearn_columns(files, tmp_path):
    result = NiftiLabelsMasker(in_file=files["bold"], labels_file=files["atlas"],
                               mask_file=files["mask_no9"], drop_empty=True,
                               labels=["Background", *NAMES]).run(cwd=str(tmp_path))
    table = _read_tsv(result.outputs.out_file)
    masker = NlLabels(files["atlas"], mask_img=files["mask_no9"],
                      labels=["Background", *NAMES])
    ref = _nilearn(masker, files["bold"])
    assert list(table.columns) == list(masker.get_feature_names_out())
    _close32(table.to_numpy(), ref)
    assert _read_tsv(result.outputs.regions_file)["index"].tolist() == [2, 3, 7, 12]


def test_cleaning_with_header_t_r_confounds_file_and_sample_mask(files, tmp_path):
    rng = np.random.default_rng(0)
    confounds = rng.normal(size=(N_VOLUMES, 2))
    conf_file = tmp_path / "confounds.tsv"
    pd.DataFrame(confounds, columns=["a", "b"]).to_csv(conf_file, sep="\t", index=False)
    kept = np.setdiff1d(np.arange(N_VOLUMES), [5, 6, 17, 30])  # avoids nilearn's B1
    interface = NiftiLabelsMasker(
        in_file=files["bold"], labels_file=files["atlas"], mask_file=files["brain"],
        detrend=True, standardize="zscore_sample", low_pass=0.2, high_pass=0.02,
        confounds_file=[str(conf_file)], sample_mask=kept.tolist(),
    )
    result = _node(interface, tmp_path).run()
    assert result.outputs.t_r == 2.0 and result.outputs.t_r_source == "NIfTI header"
    assert result.outputs.volumes == kept.tolist()
    table = _read_tsv(result.outputs.out_file)
    ref = _nilearn(NlLabels(files["atlas"], mask_img=files["brain"], detrend=True,
                            standardize="zscore_sample", low_pass=0.2, high_pass=0.02, t_r=2.0),
                   files["bold"], confounds=confounds, sample_mask=kept)
    np.testing.assert_allclose(table.to_numpy(), ref, rtol=1e-5, atol=1e-5)

    given = NiftiLabelsMasker(in_file=files["bold"], labels_file=files["atlas"], t_r=2.5,
                              high_pass=0.02).run(cwd=str(tmp_path))
    assert given.outputs.t_r == 2.5 and given.outputs.t_r_source == "input t_r"


def test_labels_round_trip_through_tsv(files, tmp_path):
    masked = NiftiLabelsMasker(in_file=files["bold"], labels_file=files["atlas"],
                               mask_file=files["mask_no9"]).run(cwd=str(tmp_path))
    back = _node(SignalsToImage(in_file=masked.outputs.out_file, labels_file=files["atlas"],
                                mask_file=files["mask_no9"]), tmp_path, "unmask").run()
    assert Path(back.outputs.out_file).name.endswith(".nii.gz")
    masker = NlLabels(files["atlas"], mask_img=files["mask_no9"])
    ref = _nilearn(masker, files["bold"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the following labels were removed: {9}"
        expected = masker.inverse_transform(ref)
    img = nib.load(back.outputs.out_file)
    assert img.shape == expected.shape == (*SHAPE, N_VOLUMES)
    np.testing.assert_allclose(img.affine, expected.affine)
    _close32(img.get_fdata(), expected.get_fdata())


# --------------------------------------------------------------------------- maps


def test_maps_node_and_round_trip(files, tmp_path):
    result = _node(NiftiMapsMasker(in_file=files["bold"], maps_file=files["maps"],
                                   mask_file=files["brain"], labels=["a", "b", "c", "d"]),
                   tmp_path).run()
    assert Path(result.outputs.out_file).name == "sub-01_task-rest_desc-maps_timeseries.tsv"
    table = _read_tsv(result.outputs.out_file)
    assert list(table.columns) == ["a", "b", "c", "d"]
    masker = NlMaps(files["maps"], mask_img=files["brain"])
    ref = _nilearn(masker, files["bold"])
    _close32(table.to_numpy(), ref)
    regions = _read_tsv(result.outputs.regions_file)
    assert regions["index"].tolist() == [0, 1, 2, 3]
    assert regions["name"].tolist() == ["a", "b", "c", "d"]
    support = _maps_data() != 0
    inside = support & (nib.load(files["brain"]).get_fdata() != 0)[..., None]
    assert regions["voxel_count"].tolist() == inside.sum(axis=(0, 1, 2)).tolist()

    back = SignalsToImage(in_file=result.outputs.out_file, maps_file=files["maps"],
                          mask_file=files["brain"]).run(cwd=str(tmp_path))
    expected = masker.inverse_transform(ref).get_fdata()
    _close32(nib.load(back.outputs.out_file).get_fdata(), expected)


# --------------------------------------------------------------------------- spheres


@pytest.fixture(scope="module")
def mni(tmp_path_factory):
    """An MNI-like 4 mm grid, 4 volumes, and a mask holding every Power 2011 seed."""
    folder = tmp_path_factory.mktemp("mni")
    affine = np.array([[4.0, 0, 0, -90], [0, 4, 0, -126], [0, 0, 4, -72], [0, 0, 0, 1]])
    shape = (46, 55, 46)
    data = np.random.default_rng(3).normal(100, 10, (*shape, 4)).astype(np.float32)
    grid = np.indices(shape).astype(float)
    half = np.reshape(shape, (3, 1, 1, 1)) / 2
    mask = (((grid - half) / (0.96 * half)) ** 2).sum(axis=0) < 1
    return (_save(data, folder / "sub-02_bold.nii.gz", affine, t_r=2.0),
            _save(mask.astype(np.uint8), folder / "mni_mask.nii.gz", affine))


def test_spheres_power_2011_seeds_file_and_round_trip(mni, tmp_path):
    bold, mask = mni
    result = _node(NiftiSpheresMasker(in_file=bold, seeds_file=str(POWER), radius=5.0,
                                      mask_file=mask), tmp_path).run()
    table = _read_tsv(result.outputs.out_file)
    seeds = pd.read_csv(POWER)[["X", "Y", "Z"]].to_numpy(dtype=float)
    assert table.shape == (4, 264) and list(table.columns) == [str(i) for i in range(264)]
    masker = NlSpheres(seeds.tolist(), radius=5.0, mask_img=mask)
    ref = _nilearn(masker, bold)
    _close32(table.to_numpy(), ref)
    assert (_read_tsv(result.outputs.regions_file)["coverage"] > 0).all()

    back = SignalsToImage(in_file=result.outputs.out_file, seeds_file=str(POWER), radius=5.0,
                          mask_file=mask).run(cwd=str(tmp_path))
    expected = masker.inverse_transform(ref).get_fdata()
    _close32(nib.load(back.outputs.out_file).get_fdata(), expected)


def test_spheres_seeds_list_names_and_smoothing(files, tmp_path):
    seeds = [(-15.8, -22.0, -9.1), (-4.2, -18.4, -5.6), (-3.0, -6.9, -1.0)]
    result = NiftiSpheresMasker(in_file=files["bold"], seeds=seeds, radius=4.0,
                                smoothing_fwhm=4.0, labels=["s1", "s2", "s3"]
                                ).run(cwd=str(tmp_path))
    table = _read_tsv(result.outputs.out_file)
    assert list(table.columns) == ["s1", "s2", "s3"]
    ref = _nilearn(NlSpheres([list(s) for s in seeds], radius=4.0, smoothing_fwhm=4.0),
                   files["bold"])
    _close32(table.to_numpy(), ref)


# --------------------------------------------------------------------------- bad inputs


def _fails(interface, tmp_path, *patterns):
    """Run as a node; it must fail with every pattern in the message and leave no output."""
    node = _node(interface, tmp_path)
    with pytest.raises(Exception) as info:  # nipype wraps the error in NodeExecutionError
        node.run()
    message = str(info.value).strip().splitlines()[-1]
    for pattern in patterns:
        assert pattern in message, f"{pattern!r} not in {message!r}"
    leftovers = [p.name for p in Path(node.output_dir()).iterdir()
                 if p.name.endswith(OUTPUT_SUFFIXES) or ".part" in p.name]
    assert not leftovers
    return message


def test_bad_labels_non_integer(files, tmp_path):
    atlas = _atlas_data().astype(np.float32)
    atlas[atlas == 7] = 7.5
    path = _save(atlas, tmp_path / "float_atlas.nii.gz")
    _fails(NiftiLabelsMasker(in_file=files["bold"], labels_file=path), tmp_path,
           "labels_file", "integer label values", "7.5", "nearest")


def test_bad_labels_4d(files, tmp_path):
    _fails(NiftiLabelsMasker(in_file=files["bold"], labels_file=files["maps"]), tmp_path,
           "labels_file: a 4D image (4 volumes)", "one 3D image of integer labels")


def test_bad_maps_3d(files, tmp_path):
    _fails(NiftiMapsMasker(in_file=files["bold"], maps_file=files["atlas"]), tmp_path,
           "maps_file: a 3D image (11, 12, 9)", "a 4D image with one map per volume")


def test_bad_labels_grid_with_resampling_target_none(files, tmp_path):
    shifted = AFFINE.copy()
    shifted[:3, 3] += 2.0
    path = _save(_atlas_data(), tmp_path / "shifted_atlas.nii.gz", shifted)
    _fails(NiftiLabelsMasker(in_file=files["bold"], labels_file=path, resampling_target=None),
           tmp_path, "labels_file: its affine differs from in_file's", "resampling_target='data'")


def test_bad_no_region_left_after_masking(files, tmp_path):
    mask = np.zeros(SHAPE, np.uint8)
    mask[0, 0, 0] = 1
    path = _save(mask, tmp_path / "corner_mask.nii.gz")
    _fails(NiftiLabelsMasker(in_file=files["bold"], labels_file=files["atlas"], mask_file=path),
           tmp_path, "No region left after masking", "mask_file", "expected a mask that overlaps")


def test_bad_names_count_labels(files, tmp_path):
    _fails(NiftiLabelsMasker(in_file=files["bold"], labels_file=files["atlas"],
                             labels=["a", "b", "c"]),
           tmp_path, "labels has 4 names (background included) for 6 label values "
           "(background and 5 regions)", "expected 5 names")


def test_bad_names_count_maps(files, tmp_path):
    _fails(NiftiMapsMasker(in_file=files["bold"], maps_file=files["maps"], labels=["a", "b"]),
           tmp_path, "labels: 2 names for 4 maps", "expected one name per map")


def test_bad_overlapping_maps(files, tmp_path):
    _fails(NiftiMapsMasker(in_file=files["bold"], maps_file=files["maps"],
                           allow_overlap=False),
           tmp_path, "maps_file: maps 0 and 1 overlap", "allow_overlap")


def test_bad_overlapping_spheres(files, tmp_path):
    seeds = [(-15.8, -22.0, -9.1), (-4.2, -18.4, -5.6)]
    _fails(NiftiSpheresMasker(in_file=files["bold"], seeds=seeds, radius=12.0), tmp_path,
           "seeds: spheres 0 [", "and 1 [", "overlap", "allow_overlap=True")


def test_bad_seed_outside_image(files, tmp_path):
    _fails(NiftiSpheresMasker(in_file=files["bold"], seeds=[(-3.0, -6.9, -1.0), (300, 0, 0)],
                              radius=4.0),
           tmp_path, "seeds: seeds outside the image", "seed 1 [300.0, 0.0, 0.0]",
           "expected every seed inside in_file's field of view")


def test_bad_seed_outside_mask(files, tmp_path):
    corner = (AFFINE @ [0, 0, 0, 1])[:3]
    _fails(NiftiSpheresMasker(in_file=files["bold"], seeds=[tuple(corner)], radius=2.0,
                              mask_file=files["brain"]),
           tmp_path, "seeds: empty spheres", "seed 0", "expected at least one voxel of mask_file")


def test_bad_negative_radius(files, tmp_path):
    _fails(NiftiSpheresMasker(in_file=files["bold"], seeds=[(-3.0, -6.9, -1.0)], radius=-2.0),
           tmp_path, "radius", "-2.0", ">= 0")


def test_bad_seeds_file(files, tmp_path):
    path = tmp_path / "seeds.tsv"
    path.write_text("x\ty\n1\t2\n")
    _fails(NiftiSpheresMasker(in_file=files["bold"], seeds_file=str(path), radius=4.0),
           tmp_path, "seeds_file", "must name the columns x, y, z", "missing ['z']")
    path.write_text("x\ty\tz\n1\t2\tabc\n")
    _fails(NiftiSpheresMasker(in_file=files["bold"], seeds_file=str(path), radius=4.0),
           tmp_path, "seeds_file", "line 2", "'abc' in column 'z' is not a number")


def test_bad_lut_file(files, tmp_path):
    path = tmp_path / "bad_dseg.tsv"
    path.write_text("index\tlabel\n2\tfrontal\n")
    _fails(NiftiLabelsMasker(in_file=files["bold"], labels_file=files["atlas"],
                             lut_file=str(path)),
           tmp_path, "lut_file", "has no column name", "expected a tab-separated header")
    path.write_text("index\tname\ntwo\tfrontal\n")
    _fails(NiftiLabelsMasker(in_file=files["bold"], labels_file=files["atlas"],
                             lut_file=str(path)),
           tmp_path, "lut_file", "index 'two' is not an integer")


def test_bad_spheres_inverse_without_mask(files, tmp_path):
    tsv = tmp_path / "signals.tsv"
    tsv.write_text("0\n1.5\n")
    _fails(SignalsToImage(in_file=str(tsv), seeds=[(-3.0, -6.9, -1.0)]), tmp_path,
           "mask_file: painting spheres back needs the mask")


def test_bad_signals_for_another_atlas(files, tmp_path):
    result = NiftiMapsMasker(in_file=files["bold"], maps_file=files["maps"]).run(
        cwd=str(tmp_path))
    _fails(SignalsToImage(in_file=result.outputs.out_file, labels_file=files["atlas"]),
           tmp_path, "in_file: 4 columns for the 5 labels", "expected one column per label")


def test_labels_boolean_volumes_are_a_mask_as_nilearn_index_img(files, tmp_path):
    from nilearn.image import index_img

    keep = np.arange(N_VOLUMES) % 3 != 0
    result = NiftiLabelsMasker(in_file=files["bold"], labels_file=files["atlas"],
                               lut_file=files["lut"], volumes=keep.tolist()).run(
        cwd=str(tmp_path))
    ref = _nilearn(NlLabels(files["atlas"], lut=files["lut"]), index_img(files["bold"], keep))
    assert result.outputs.volumes == np.flatnonzero(keep).tolist()
    _close32(_read_tsv(result.outputs.out_file).to_numpy(), ref)


def test_output_names_on_an_fmriprep_bold_have_one_desc(files, tmp_path):
    """Masker outputs replace the BOLD's ``desc-preproc`` (they used to append a second desc)."""
    from nipype_maskers.bids import parse_entities
    from nipype_maskers.interfaces.masking import NiftiMasker

    stem = "sub-01_task-rest_space-MNI152NLin2009cAsym"
    bold = tmp_path / f"{stem}_desc-preproc_bold.nii.gz"
    bold.symlink_to(files["bold"])
    runs = {
        "labels": NiftiLabelsMasker(in_file=str(bold), labels_file=files["atlas"]),
        "maps": NiftiMapsMasker(in_file=str(bold), maps_file=files["maps"]),
        "spheres": NiftiSpheresMasker(in_file=str(bold), seeds=[(-3.0, -6.9, -1.0)],
                                      radius=4.0),
    }
    names = []
    for kind, interface in runs.items():
        (tmp_path / kind).mkdir()
        outputs = interface.run(cwd=str(tmp_path / kind)).outputs
        assert Path(outputs.out_file).name == f"{stem}_desc-{kind}_timeseries.tsv"
        assert Path(outputs.regions_file).name == f"{stem}_desc-{kind}_regions.tsv"
        names += [outputs.out_file, outputs.regions_file]
        back = SignalsToImage(in_file=outputs.out_file, mask_file=files["brain"],
                              **({"labels_file": files["atlas"]} if kind == "labels" else
                                 {"maps_file": files["maps"]} if kind == "maps" else
                                 {"seeds": [(-3.0, -6.9, -1.0)], "radius": 4.0})
                              ).run(cwd=str(tmp_path / kind))
        assert Path(back.outputs.out_file).name == f"{stem}_desc-{kind}_unmasked.nii.gz"
        names.append(back.outputs.out_file)
    (tmp_path / "voxels").mkdir()
    outputs = NiftiMasker(in_file=str(bold)).run(cwd=str(tmp_path / "voxels")).outputs
    names += [outputs.out_file, outputs.mask_file]
    for name in names:
        assert Path(name).name.count("desc-") == 1, name
        parse_entities(name)  # a BIDS name: raises on a repeated entity
