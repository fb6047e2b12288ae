"""M1 benchmark: NiftiMasker on MNI 2 mm BOLD, nilearn vs nipype-maskers, with the read floor.

Usage::

    python benchmarks/bench_masker.py [--volumes 300] [--dtype float32|int16] [--uncompressed]

Prints, for the same file: plain gunzip and nibabel's float32 load (the floor), then nilearn
and us for a computed EPI mask, a given mask, and a given mask with 6 mm smoothing; with the
time and peak-memory ratios.
"""

from __future__ import annotations

import argparse
import shutil

from common import bold_file, report, run_case, time_command

NILEARN = "from nilearn.maskers import NiftiMasker; import nibabel as nib"
OURS = "from nipype_maskers.core.voxels.masker import mask_volumes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=300)
    parser.add_argument("--dtype", default="float32", choices=["float32", "int16"])
    parser.add_argument("--uncompressed", action="store_true")
    args = parser.parse_args()
    path = bold_file(args.volumes, dtype=args.dtype, compressed=not args.uncompressed)
    mask = path.with_name(path.name.split(".")[0] + "_epimask.nii.gz")
    print(f"# NiftiMasker benchmark: {path.name} ({path.stat().st_size / 2**20:.0f} MB on disk)")

    floor = []
    if path.suffix == ".gz" and shutil.which("gzip"):
        seconds = time_command(["gzip", "-dc", str(path)])
        floor.append(("plain gunzip (gzip -dc > /dev/null)", {"seconds": seconds,
                                                              "peak_mb": 0, "base_mb": 0}))
    floor.append(("nibabel load to float32 (get_fdata)", run_case(
        "import nibabel as nib, numpy as np",
        f"nib.load({str(path)!r}).get_fdata(dtype=np.float32)")))
    report("read floor", floor)

    ours_mask = run_case(OURS, f"""
        r = mask_volumes({str(path)!r}, mask_strategy='epi')
        import nibabel as nib; nib.save(r.mask, {str(mask)!r})
    """)
    theirs_mask = run_case(NILEARN, f"""
        NiftiMasker(mask_strategy='epi', standardize=None).fit_transform({str(path)!r})
    """)
    report("computed EPI mask + masking", [
        ("nilearn NiftiMasker(mask_strategy='epi').fit_transform", theirs_mask),
        ("ours mask_volumes(mask_strategy='epi')", ours_mask),
    ], reference="nilearn NiftiMasker(mask_strategy='epi').fit_transform",
        ours="ours mask_volumes(mask_strategy='epi')")

    for fwhm in (None, 6.0):
        theirs = run_case(NILEARN, f"""
            NiftiMasker({str(mask)!r}, smoothing_fwhm={fwhm}, standardize=None
                        ).fit_transform({str(path)!r})
        """)
        ours = run_case(OURS, f"mask_volumes({str(path)!r}, {str(mask)!r}, smoothing_fwhm={fwhm})")
        label = "given mask" + (f", smoothing {fwhm} mm" if fwhm else "")
        report(label, [(f"nilearn NiftiMasker(mask_img) [{label}]", theirs),
                       (f"ours mask_volumes(mask) [{label}]", ours)],
               reference=f"nilearn NiftiMasker(mask_img) [{label}]",
               ours=f"ours mask_volumes(mask) [{label}]")
    if floor and floor[0][0].startswith("plain gunzip"):
        gunzip = floor[0][1]["seconds"]
        print(f"\nours / gunzip floor: computed mask x{ours_mask['seconds'] / gunzip:.2f} "
              "(two passes)")


if __name__ == "__main__":
    main()
