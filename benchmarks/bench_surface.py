"""M8 benchmark: CIFTI parcellation vs Connectome Workbench, GIFTI pairs vs nilearn.

Usage::

    python benchmarks/bench_surface.py [--volumes 1200] [--parcels 400] [--skip-gifti]
                                       [--repeat 1] [--blas-threads N]

1. A 91,282-grayordinate float32 ``.dtseries.nii`` (29,696 + 29,716 cortical vertices of the
   32,492 of each fsLR hemisphere, 31,870 subcortical voxels on the 2 mm grid; 1,200 volumes:
   440 MB) and a 400-parcel ``.dlabel.nii`` whose parcels are scattered over the file (each
   made of several runs of grayordinates, as a real atlas is): ours (``CiftiLabelsMasker``, end
   to end from the files, TSVs written) vs ``wb_command -cifti-parcellate ... -method MEAN``
   (the ``.ptseries.nii`` written), each in a fresh process: time, peak memory (VmHWM; for
   Workbench the peak RSS of the child), the ratios and the largest difference between the two
   outputs. Targets: ours at least as fast, peak memory at most 1.5x the dtseries.
2. fsaverage5 GIFTI pairs (2 x 10,242 vertices, 1,200 volumes) and a 400-label pair of
   ``.label.gii``: ours (``nipype_maskers.interfaces.surface.SurfaceLabelsMasker``) vs nilearn's
   ``SurfaceLabelsMasker`` on a ``SurfaceImage`` of the same files. Target: at least 5x faster.

The inputs are built once into ``benchmarks/_data/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys

import numpy as np
from common import DATA_DIR, add_repeat_options, apply_repeat_options, report, timed

N_VERTEX = 32492
KEPT_VERTICES = (29696, 29716)
N_VOXELS = 31870
GRID = (91, 109, 91)
AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])
SUBCORTICAL = ("CIFTI_STRUCTURE_ACCUMBENS_LEFT", "CIFTI_STRUCTURE_THALAMUS_LEFT",
               "CIFTI_STRUCTURE_THALAMUS_RIGHT", "CIFTI_STRUCTURE_CEREBELLUM_LEFT",
               "CIFTI_STRUCTURE_CEREBELLUM_RIGHT", "CIFTI_STRUCTURE_BRAIN_STEM")


def grayordinates():
    """The 91k layout: both cortices without a "medial wall", subcortical voxels."""
    from nibabel.cifti2 import cifti2_axes

    rng = np.random.default_rng(0)
    axis = None
    for structure, n_kept in zip(("CortexLeft", "CortexRight"), KEPT_VERTICES, strict=True):
        vertices = np.sort(rng.choice(N_VERTEX, n_kept, replace=False))
        part = cifti2_axes.BrainModelAxis.from_surface(vertices, N_VERTEX, structure)
        axis = part if axis is None else axis + part
    flat = np.sort(rng.choice(int(np.prod(GRID)), N_VOXELS, replace=False))
    owner = np.minimum(np.arange(N_VOXELS) * len(SUBCORTICAL) // N_VOXELS, len(SUBCORTICAL) - 1)
    for k, structure in enumerate(SUBCORTICAL):
        mask = np.zeros(int(np.prod(GRID)), dtype=bool)
        mask[flat[owner == k]] = True
        axis = axis + cifti2_axes.BrainModelAxis.from_mask(mask.reshape(GRID), structure,
                                                          affine=AFFINE)
    return axis


def scattered_keys(n: int, n_parcels: int, runs_per_parcel: int = 5, seed: int = 1):
    """Parcels 1..n_parcels, each several runs of consecutive grayordinates; 5% background."""
    rng = np.random.default_rng(seed)
    n_runs = n_parcels * runs_per_parcel
    run_of = np.minimum(np.arange(n) * n_runs // n, n_runs - 1)
    run_key = rng.permutation(np.repeat(np.arange(1, n_parcels + 1), runs_per_parcel))
    keys = run_key[run_of]
    keys[rng.random(n) < 0.05] = 0
    return keys


def cifti_files(n_volumes: int, n_parcels: int):
    """The dtseries and dlabel, built once (the dtseries a block of grayordinates at a time)."""
    import nibabel as nib
    from nibabel.cifti2 import cifti2_axes

    dtseries = DATA_DIR / f"bold_91k_{n_volumes}.dtseries.nii"
    dlabel = DATA_DIR / f"atlas_91k_{n_parcels}.dlabel.nii"
    axis = None
    if not dtseries.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        print(f"  building {dtseries.name} ...", flush=True)
        axis = grayordinates()
        series = cifti2_axes.SeriesAxis(0, 0.8, n_volumes, unit="SECOND")
        rng = np.random.default_rng(2)
        # a memory-mapped array filled a block at a time: never two copies of 440 MB
        data = np.lib.format.open_memmap(DATA_DIR / ".bold.npy", mode="w+", dtype=np.float32,
                                         shape=(n_volumes, len(axis)), fortran_order=True)
        for start in range(0, len(axis), 8192):
            stop = min(start + 8192, len(axis))
            block = rng.uniform(500, 1500, stop - start) + 20 * rng.standard_normal(
                (n_volumes, stop - start))
            data[:, start:stop] = block
        img = nib.Cifti2Image(data, header=(series, axis))
        img.nifti_header.set_intent("ConnDenseSeries")
        tmp = dtseries.with_name(".tmp_" + dtseries.name)
        img.to_filename(tmp)
        tmp.replace(dtseries)
        del data, img
        (DATA_DIR / ".bold.npy").unlink()
    if not dlabel.exists():
        print(f"  building {dlabel.name} ...", flush=True)
        axis = grayordinates() if axis is None else axis
        keys = scattered_keys(len(axis), n_parcels)
        table = {0: ("???", (1.0, 1.0, 1.0, 0.0))}
        table.update({k: (f"parcel{k:03d}", (k / n_parcels, 0.5, 0.5, 1.0))
                      for k in range(1, n_parcels + 1)})
        img = nib.Cifti2Image(keys[None].astype(np.float32),
                              header=(cifti2_axes.LabelAxis(["atlas"], [table]), axis))
        img.nifti_header.set_intent("ConnDenseLabel")
        img.to_filename(dlabel)
    return dtseries, dlabel


def wb_case(dtseries, dlabel, out) -> dict:
    """``wb_command -cifti-parcellate`` in a fresh process; its peak RSS is the child's."""
    return timed("import resource, subprocess", f"""
        subprocess.run(["wb_command", "-cifti-parcellate", {str(dtseries)!r}, {str(dlabel)!r},
                        "COLUMN", {str(out)!r}, "-method", "MEAN"], check=True,
                       stdout=subprocess.DEVNULL)
        _wb_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        _base = 0  # Workbench's own peak, not this process's

        def _status_mb(key):
            return _wb_peak
    """)


def ours_cifti_case(dtseries, dlabel, folder) -> dict:
    return timed("from nipype_maskers.interfaces.cifti import CiftiLabelsMasker\nimport os", f"""
        os.makedirs({str(folder)!r}, exist_ok=True)
        os.chdir({str(folder)!r})
        CiftiLabelsMasker(in_file={str(dtseries)!r}, labels_file={str(dlabel)!r}).run()
    """)


def compare_cifti(ptseries, folder) -> float:
    import nibabel as nib

    from nipype_maskers.core.io.tables import read_table

    tsv = next(folder.glob("*_timeseries.tsv"))
    ours = read_table(tsv, name="out_file", header=True, delimiter="\t").values
    return float(np.abs(ours - np.asarray(nib.load(ptseries).get_fdata())).max())


def gifti_files(n_volumes: int, n_parcels: int):
    """fsaverage5 BOLD and label pairs (10,242 vertices per hemisphere), built once."""
    import nibabel as nib

    paths = {}
    rng = np.random.default_rng(3)
    for hemi, structure in (("L", "CortexLeft"), ("R", "CortexRight")):
        bold = DATA_DIR / f"fsaverage5_hemi-{hemi}_{n_volumes}_bold.func.gii"
        labels = DATA_DIR / f"fsaverage5_hemi-{hemi}_{n_parcels}_dseg.label.gii"
        meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": structure})
        if not bold.exists():
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            print(f"  building {bold.name} ...", flush=True)
            baseline = rng.uniform(500, 1500, 10242)
            arrays = [nib.gifti.GiftiDataArray(
                (baseline + 20 * rng.standard_normal(10242)).astype(np.float32),
                intent="NIFTI_INTENT_TIME_SERIES", datatype="NIFTI_TYPE_FLOAT32",
                meta={"TimeStep": "800"}) for _ in range(n_volumes)]
            nib.save(nib.GiftiImage(darrays=arrays, meta=meta), bold)
        if not labels.exists():
            half = n_parcels // 2
            offset = 0 if hemi == "L" else half
            keys = scattered_keys(10242, half, seed=4 if hemi == "L" else 5)
            keys = np.where(keys > 0, keys + offset, 0).astype(np.int32)
            table = nib.gifti.GiftiLabelTable()
            for key in [0, *range(offset + 1, offset + half + 1)]:
                label = nib.gifti.GiftiLabel(key=key, red=0.5, green=0.5, blue=0.5, alpha=1.0)
                label.label = "???" if key == 0 else f"parcel{key:03d}"
                table.labels.append(label)
            darray = nib.gifti.GiftiDataArray(keys, intent="NIFTI_INTENT_LABEL",
                                              datatype="NIFTI_TYPE_INT32")
            nib.save(nib.GiftiImage(darrays=[darray], meta=meta, labeltable=table), labels)
        paths[hemi] = (bold, labels)
    return paths


def ours_gifti_case(paths, folder) -> dict:
    bold = [str(paths[h][0]) for h in "LR"]
    labels = [str(paths[h][1]) for h in "LR"]
    return timed("from nipype_maskers.interfaces.surface import SurfaceLabelsMasker\nimport os",
                 f"""
        os.makedirs({str(folder)!r}, exist_ok=True)
        os.chdir({str(folder)!r})
        SurfaceLabelsMasker(in_file={bold!r}, labels_file={labels!r}).run()
    """)


def nilearn_gifti_case(paths) -> dict:
    bold = {"left": str(paths["L"][0]), "right": str(paths["R"][0])}
    labels = {"left": str(paths["L"][1]), "right": str(paths["R"][1])}
    return timed("""
        from nilearn.datasets import load_fsaverage
        from nilearn.maskers import SurfaceLabelsMasker
        from nilearn.surface import SurfaceImage
        mesh = load_fsaverage("fsaverage5")["pial"]
    """, f"""
        img = SurfaceImage(mesh=mesh, data={bold!r})
        atlas = SurfaceImage(mesh=mesh, data={labels!r})
        signals = SurfaceLabelsMasker(labels_img=atlas).fit_transform(img)
    """)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=1200)
    parser.add_argument("--parcels", type=int, default=400)
    parser.add_argument("--skip-gifti", action="store_true")
    add_repeat_options(parser)
    args = parser.parse_args(argv)
    apply_repeat_options(args)

    dtseries, dlabel = cifti_files(args.volumes, args.parcels)
    size_mb = dtseries.stat().st_size / 2**20
    work = DATA_DIR / "work_surface"
    shutil.rmtree(work, ignore_errors=True)
    ours = ours_cifti_case(dtseries, dlabel, work / "ours")
    rows = [("ours: CiftiLabelsMasker (end to end)", ours)]
    wb = None
    if shutil.which("wb_command"):
        (work / "wb").mkdir(parents=True, exist_ok=True)
        ptseries = work / "wb" / "wb.ptseries.nii"
        wb = wb_case(dtseries, dlabel, ptseries)
        rows.insert(0, ("wb_command -cifti-parcellate -method MEAN", wb))
    else:
        print("wb_command is not installed: Workbench's side is skipped")
    report(f"CIFTI: 91,282 grayordinates x {args.volumes} volumes ({size_mb:.0f} MB) with "
           f"{args.parcels} parcels", rows)
    work_mb = ours["peak_mb"] - ours["base_mb"]
    print(f"-> ours peak memory / dtseries size: x{ours['peak_mb'] / size_mb:.2f} (target <= "
          f"1.5; the work alone, without the imports: x{work_mb / size_mb:.2f})")
    if wb is not None:
        print(f"-> Workbench / ours: time x{wb['seconds'] / ours['seconds']:.2f} (target >= 1), "
              f"peak memory x{wb['peak_mb'] / ours['peak_mb']:.2f}")
        print(f"-> largest |ours - Workbench|: {compare_cifti(ptseries, work / 'ours'):.3g}")

    if args.skip_gifti:
        return
    if importlib.util.find_spec("nipype_maskers.interfaces.surface") is None:
        print("nipype_maskers.interfaces.surface is missing: the GIFTI comparison is skipped")
        return
    paths = gifti_files(args.volumes, args.parcels)
    ours_g = ours_gifti_case(paths, work / "ours_gifti")
    nilearn_g = nilearn_gifti_case(paths)
    report(f"GIFTI: fsaverage5 pairs (20,484 vertices x {args.volumes} volumes), "
           f"{args.parcels} labels", [("nilearn SurfaceLabelsMasker", nilearn_g),
                                      ("ours: SurfaceLabelsMasker (end to end)", ours_g)],
           reference="nilearn SurfaceLabelsMasker",
           ours="ours: SurfaceLabelsMasker (end to end)")
    print("-> target: nilearn / ours time >= 5")


if __name__ == "__main__":
    sys.exit(main())
