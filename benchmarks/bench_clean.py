"""M2 benchmark: NiftiMasker with smoothing and full cleaning, nilearn vs nipype-maskers.

Usage::

    python benchmarks/bench_clean.py [--volumes 100] [--ours-only] [--repeat 1] [--blas-threads N]

The issue's case: a given mask (our ``compute_mask('epi')``, computed once and saved next to
the data), 6 mm smoothing, detrend, Butterworth band-pass 0.01-0.1 Hz (t_r = 2 s), the 6
motion columns as confounds and ``'zscore_sample'``. Prints the gunzip floor, nilearn and us
side by side, the max abs difference of the two outputs and our peak memory relative to the
float32 output matrix. ``--ours-only`` skips nilearn (for sizes where it is too slow).
"""

from __future__ import annotations

import argparse
import shutil
from textwrap import dedent

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

CLEAN = dict(detrend=True, standardize="zscore_sample", low_pass=0.1, high_pass=0.01, t_r=2.0)
FWHM = 6.0

def epi_mask(path) -> str:
    """Our EPI mask of ``path``, computed once and saved next to it."""
    mask = path.with_name(path.name.split(".")[0] + "_epimask.nii.gz")
    if not mask.exists():
        import nibabel as nib

        from nipype_maskers.core.spatial.masking import compute_mask

        print(f"  computing {mask.name} ...", flush=True)
        nib.save(compute_mask(str(path), "epi"), mask)
    return str(mask)


def motion_file(path) -> str:
    return str(path.with_suffix("").with_suffix(".motion.tsv"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--ours-only", action="store_true",
                        help="skip nilearn (too slow at large sizes)")
    add_repeat_options(parser)
    args = parser.parse_args()
    apply_repeat_options(args)
    path = bold_file(args.volumes)
    mask = epi_mask(path)
    motion = motion_file(path)
    print(f"# NiftiMasker + clean benchmark: {path.name} "
          f"({path.stat().st_size / 2**20:.0f} MB on disk), smoothing {FWHM} mm, {CLEAN}, "
          "confounds = 6 motion columns")

    rows = [("ISA-L stream read (our reader's decompressor)", isal_floor(path))]
    if shutil.which("gzip"):
        rows.append(("plain gunzip (gzip -dc > /dev/null)",
                     {"seconds": time_command(["gzip", "-dc", str(path)]),
                      "peak_mb": 0, "base_mb": 0}))

    setup = dedent(f"""
        import numpy as np
        confounds = np.loadtxt({motion!r}, skiprows=1, delimiter="\\t", ndmin=2)
    """)
    ours_out = DATA_DIR / f"out_clean_ours_{args.volumes}.npy"
    theirs_out = DATA_DIR / f"out_clean_nilearn_{args.volumes}.npy"
    nilearn_label = "nilearn NiftiMasker(mask, fwhm 6, clean).fit_transform"
    ours_label = "ours mask_volumes(mask, fwhm 6, clean_args)"
    if not args.ours_only:
        rows.append((nilearn_label, timed(
            setup + "from nilearn.maskers import NiftiMasker\n",
            dedent(f"""
            masker = NiftiMasker({mask!r}, smoothing_fwhm={FWHM}, detrend=True,
                                 standardize="zscore_sample", low_pass=0.1, high_pass=0.01,
                                 t_r=2.0)
            signals = masker.fit_transform({str(path)!r}, confounds=confounds)
            """) + SAVE.format(out=str(theirs_out)))))
    rows.append((ours_label, timed(
        setup + "from nipype_maskers.core.voxels.masker import mask_volumes\n",
        dedent(f"""
        signals = mask_volumes({str(path)!r}, {mask!r}, smoothing_fwhm={FWHM},
                               clean_args=dict({CLEAN!r}, confounds=confounds)).signals
        """) + SAVE.format(out=str(ours_out)))))
    report(f"given mask + 6 mm smoothing + clean, {args.volumes} volumes", rows,
           reference=nilearn_label, ours=ours_label)

    ours = np.load(ours_out, mmap_mode="r")
    output_mb = ours.shape[0] * ours.shape[1] * 4 / 2**20
    result = dict(rows)[ours_label]
    print(f"\noutput matrix: {ours.shape[0]} x {ours.shape[1]} float32 = {output_mb:.0f} MB; "
          f"ours: peak {result['peak_mb']:.0f} MB = x{result['peak_mb'] / output_mb:.2f} the "
          f"output, work (peak - RSS after imports) {result['peak_mb'] - result['base_mb']:.0f}"
          f" MB = x{(result['peak_mb'] - result['base_mb']) / output_mb:.2f} the output")
    print(f"ours / ISA-L gunzip floor: x{result['seconds'] / rows[0][1]['seconds']:.2f}")
    if not args.ours_only:
        theirs = np.load(theirs_out, mmap_mode="r")
        if theirs.shape != ours.shape:
            print(f"SHAPES DIFFER: nilearn {theirs.shape}, ours {ours.shape}")
        else:
            diff = max(float(np.max(np.abs(np.asarray(theirs[i:i + 16], np.float64)
                                            - np.asarray(ours[i:i + 16], np.float64))))
                       for i in range(0, ours.shape[0], 16))
            scale = float(np.max(np.abs(theirs)))
            print(f"max |nilearn - ours| = {diff:.3g} (max |nilearn| = {scale:.3g}; "
                  f"nilearn dtype {theirs.dtype})")
    for out in (ours_out, theirs_out):
        out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
