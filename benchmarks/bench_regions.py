"""M3 benchmark: the region maskers (labels, maps, spheres), nilearn vs nipype-maskers.

Usage::

    python benchmarks/bench_regions.py [--volumes 300] [--ours-only] [--skip-scaling]
                                       [--repeat 1] [--blas-threads N]

On the same synthetic MNI 2 mm float32 ``.nii.gz``: a 400-region labels atlas (Voronoi parcels
of the brain around 400 random in-brain seeds), a 64-map probabilistic atlas (smooth Gaussian
blobs in the brain, float32, 4D) and nilearn's bundled Power 2011 seeds (264, 5 mm spheres).
The atlases are built once and cached in ``benchmarks/_data/``. Prints the gunzip floor, time
and peak memory of nilearn and us with their ratios, and the max abs difference of the outputs;
then a scaling check of ours: 100 vs N volumes for each masker, 100 vs 400 labels.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path

import numpy as np
from common import (
    DATA_DIR,
    SAVE,
    add_repeat_options,
    apply_repeat_options,
    bold_file,
    isal_floor,
    report,
    time_command,
    timed,
)

POWER = (Path(importlib.util.find_spec("nilearn").origin).parent / "datasets" / "data"
         / "power_2011.csv")
RADIUS = 5.0
N_MAPS = 64

def _brain() -> tuple[np.ndarray, np.ndarray]:
    """The MNI 2 mm brain (as in ``synthetic_bold``) and the grid's affine."""
    from nipype_maskers.demo.data import MNI_2MM_AFFINE, template_on_grid

    return template_on_grid() > 0.2, MNI_2MM_AFFINE


def labels_atlas(n_regions: int, seed: int = 0) -> str:
    """A Voronoi parcellation of the brain into ``n_regions`` labels 1..n (int16), cached."""
    path = DATA_DIR / f"atlas_labels_{n_regions}_seed{seed}.nii.gz"
    if not path.exists():
        import nibabel as nib
        from scipy.spatial import cKDTree

        print(f"  building {path.name} ...", flush=True)
        brain, affine = _brain()
        voxels = np.argwhere(brain)
        rng = np.random.default_rng(seed)
        centres = voxels[rng.choice(len(voxels), n_regions, replace=False)]
        _, nearest = cKDTree(centres).query(voxels)
        data = np.zeros(brain.shape, dtype=np.int16)
        data[tuple(voxels.T)] = nearest + 1
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, affine), path)
    return str(path)


def maps_atlas(n_maps: int = N_MAPS, seed: int = 0, sigma_mm: float = 10.0) -> str:
    """``n_maps`` Gaussian blobs centred on random brain voxels, in the brain, 4D float32."""
    path = DATA_DIR / f"atlas_maps_{n_maps}_seed{seed}.nii.gz"
    if not path.exists():
        import nibabel as nib

        print(f"  building {path.name} ...", flush=True)
        brain, affine = _brain()
        voxels = np.argwhere(brain)
        rng = np.random.default_rng(seed)
        centres = voxels[rng.choice(len(voxels), n_maps, replace=False)]
        sigma = sigma_mm / abs(affine[0, 0])
        axes = [np.arange(s, dtype=np.float32) for s in brain.shape]
        data = np.zeros((*brain.shape, n_maps), dtype=np.float32)
        for k, centre in enumerate(centres):
            gx, gy, gz = (np.exp(-((a - c) ** 2) / (2 * sigma**2))
                          for a, c in zip(axes, centre, strict=True))
            blob = gx[:, None, None] * gy[None, :, None] * gz[None, None, :]
            blob[blob < 0.01] = 0  # a probabilistic atlas is sparse
            data[..., k] = blob * brain
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, affine), path)
    return str(path)


# The three maskers, as (nilearn setup, nilearn body, ours setup, ours body); bodies set
# ``signals`` from the data ``{img}`` and the atlas ``{atlas}``.
NILEARN_SETUP = "import numpy as np\nfrom nilearn.maskers import {cls}\n"
OURS_SETUP = ("import numpy as np\nfrom nipype_maskers.core.regions.maskers import {fn}\n"
              "from nipype_maskers.core.regions.spheres import read_seeds\n")
CASES = {
    "labels": ("NiftiLabelsMasker",
               "signals = NiftiLabelsMasker({atlas!r}, strategy='mean').fit_transform({img!r})",
               "labels_masker",
               "signals = labels_masker({img!r}, {atlas!r}, strategy='mean').signals"),
    "maps": ("NiftiMapsMasker",
             "signals = NiftiMapsMasker({atlas!r}).fit_transform({img!r})",
             "maps_masker",
             "signals = maps_masker({img!r}, {atlas!r}).signals"),
    "spheres": ("NiftiSpheresMasker",
                "from nipype_maskers.core.regions.spheres import read_seeds\n"
                "seeds = [tuple(s) for s in read_seeds({atlas!r})[0]]\n"
                f"signals = NiftiSpheresMasker(seeds, radius={RADIUS}).fit_transform({{img!r}})",
                "spheres_masker",
                "seeds = read_seeds({atlas!r})[0]\n"
                f"signals = spheres_masker({{img!r}}, seeds, radius={RADIUS}).signals"),
}


def run_ours(kind: str, img: str, atlas: str, out: Path | None = None) -> dict:
    _, _, fn, body = CASES[kind]
    body = body.format(img=img, atlas=atlas) + (SAVE.format(out=str(out)) if out else "")
    return timed(OURS_SETUP.format(fn=fn), body)


def run_nilearn(kind: str, img: str, atlas: str, out: Path) -> dict:
    cls, body, _, _ = CASES[kind]
    body = body.format(img=img, atlas=atlas) + SAVE.format(out=str(out))
    return timed(NILEARN_SETUP.format(cls=cls), body)


def max_diff(a: Path, b: Path) -> str:
    x, y = np.load(a).astype(np.float64), np.load(b).astype(np.float64)
    if x.shape != y.shape:
        return f"SHAPES DIFFER: nilearn {x.shape}, ours {y.shape}"
    return (f"max |nilearn - ours| = {np.max(np.abs(x - y)):.3g} "
            f"(max |nilearn| = {np.max(np.abs(x)):.3g}, shape {x.shape}; "
            f"ours has {int(np.isnan(y).all(axis=0).sum())} NaN columns)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=300)
    parser.add_argument("--ours-only", action="store_true", help="skip nilearn")
    parser.add_argument("--skip-scaling", action="store_true", help="skip the scaling check")
    add_repeat_options(parser)
    args = parser.parse_args()
    apply_repeat_options(args)
    path = bold_file(args.volumes)
    img = str(path)
    atlases = {"labels": labels_atlas(400), "maps": maps_atlas(), "spheres": str(POWER)}
    print(f"# Region maskers benchmark: {path.name} ({path.stat().st_size / 2**20:.0f} MB on "
          f"disk); labels 400 regions, maps {N_MAPS}, spheres 264 Power seeds r={RADIUS} mm")

    gunzip = isal_floor(path)["seconds"]
    print(f"\ngunzip floor: ISA-L stream read (our reader's decompressor) {gunzip:.2f} s", end="")
    if shutil.which("gzip"):
        print(f"; plain gzip -dc > /dev/null {time_command(['gzip', '-dc', img]):.2f} s", end="")
    print()

    summary = []
    for kind, atlas in atlases.items():
        ours_out, theirs_out = (DATA_DIR / f"out_{kind}_{who}_{args.volumes}.npy"
                                for who in ("ours", "nilearn"))
        nilearn_label = f"nilearn {CASES[kind][0]}.fit_transform"
        ours_label = f"ours {CASES[kind][2]}"
        rows = []
        if not args.ours_only:
            rows.append((nilearn_label, run_nilearn(kind, img, atlas, theirs_out)))
        rows.append((ours_label, run_ours(kind, img, atlas, ours_out)))
        report(f"{kind}, {args.volumes} volumes", rows, reference=nilearn_label,
               ours=ours_label)
        ours = dict(rows)[ours_label]
        print(f"ours / ISA-L gunzip floor: x{ours['seconds'] / gunzip:.2f}")
        if not args.ours_only:
            print(max_diff(theirs_out, ours_out))
        summary.append((kind, dict(rows)))
        for out in (ours_out, theirs_out):
            out.unlink(missing_ok=True)

    if not args.skip_scaling:
        scaling_check(img, args.volumes, atlases, summary)


def scaling_check(img: str, volumes: int, atlases: dict, summary: list) -> None:
    """Ours at 100 volumes vs ``volumes``, and labels with 100 vs 400 regions."""
    main_runs = {kind: results[f"ours {CASES[kind][2]}"] for kind, results in summary}
    rows = []
    if volumes != 100:
        small_img = str(bold_file(100))
        small = {kind: run_ours(kind, small_img, atlas) for kind, atlas in atlases.items()}
        rows += [(f"ours {kind}, 100 volumes", small[kind]) for kind in atlases]
    rows += [(f"ours {kind}, {volumes} volumes", main_runs[kind]) for kind in atlases]
    labels_100 = run_ours("labels", img, labels_atlas(100))
    rows.append((f"ours labels, 100 regions, {volumes} volumes", labels_100))
    report("scaling of ours (volumes, regions)", rows)
    if volumes != 100:
        for kind in atlases:
            big, little = main_runs[kind], small[kind]
            per_volume = (big["seconds"] - little["seconds"]) / (volumes - 100)
            print(f"{kind}: time {volumes} / 100 volumes = "
                  f"x{big['seconds'] / little['seconds']:.2f} (proportional: "
                  f"x{volumes / 100:.2f}); marginal {1000 * per_volume:.1f} ms/volume, fixed "
                  f"{little['seconds'] - 100 * per_volume:.2f} s; peak {little['peak_mb']:.0f} "
                  f"-> {big['peak_mb']:.0f} MB")
    print(f"labels, {volumes} volumes: time 400 / 100 regions = "
          f"x{main_runs['labels']['seconds'] / labels_100['seconds']:.2f}")


if __name__ == "__main__":
    main()
