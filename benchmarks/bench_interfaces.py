"""Per-interface benchmark: our Nipype interfaces (``.run()``) vs nilearn 0.14.1, with targets.

Usage::

    python benchmarks/bench_interfaces.py [--volumes 100] [--repeat 3] [--ours-only]
                                          [--cases epi,labels,maps,spheres,clean,memory]
                                          [--num-threads N] [--blas-threads N]

On the synthetic MNI 2 mm float32 ``.nii.gz`` (``common.bold_file``), each case runs as a
user would: nilearn's masker ``fit_transform`` against our interface's ``.run()`` in a fresh
work directory, its output files written, with ``num_threads`` = the CPUs (at most 4;
``--num-threads``). Every run is a fresh process (imports untimed); the
two sides alternate (nilearn, ours, nilearn, ours, ...) and the median of ``--repeat`` runs is
kept. The cases: EPI mask + apply; labels (400 Voronoi regions) with one ISA-L decompression
of the same file run alongside as the floor; maps (64 Gaussian blobs); spheres (264 Power 2011
seeds, 5 mm, from a TSV); a given mask + 6 mm smoothing + detrend, band-pass, 6 motion
confounds and z-scoring; and ``memory``: our labels and EPI peak memory minus the RSS after
imports at 100 vs 300 volumes. Prints each case's runs and medians with its target and
PASS/MISS, then a summary table. ``--ours-only`` skips nilearn (quick iterations of ours).
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import shutil
from pathlib import Path

from bench_clean import CLEAN, FWHM, epi_mask, motion_file
from bench_regions import N_MAPS, POWER, RADIUS, labels_atlas, maps_atlas
from common import DATA_DIR, alternating_medians, apply_repeat_options, bold_file, isal_case

#: Every ours run chdirs into a fresh directory under here (removed after each case).
WORK_ROOT = DATA_DIR / "interfaces_work"

#: Our side's imports. nipype's ``run`` imports psutil on its first call: an import, so it
#: is done here, out of the time, as the interface modules' own imports are.
OURS_SETUP = """
import os, tempfile
import psutil
from nipype_maskers.interfaces.masking import NiftiMasker
from nipype_maskers.interfaces.regions import (
    NiftiLabelsMasker, NiftiMapsMasker, NiftiSpheresMasker)
os.chdir(tempfile.mkdtemp(dir={root!r}))
"""
NILEARN_SETUP = """
import numpy as np
from nilearn.maskers import NiftiLabelsMasker, NiftiMapsMasker, NiftiMasker, NiftiSpheresMasker
"""

ALL_CASES = ("epi", "labels", "maps", "spheres", "clean", "memory")
#: The targets: nilearn median / ours median at least this.
TARGETS = {"epi": 5.0, "labels": 5.0, "maps": 10.0, "spheres": 20.0, "clean": 40.0}
#: Ours for labels within this factor of one ISA-L decompression of the same file.
FLOOR_TARGET = 1.25
#: RSS noise allowed on top of the output's growth in the memory check (allocator, page
#: cache of the written files).
MEMORY_SLACK_MB = 5.0
TITLES = {
    "epi": "EPI mask + apply",
    "labels": "labels 400",
    "maps": f"maps {N_MAPS}",
    "spheres": f"spheres 264 r={RADIUS:g}",
    "clean": f"mask + smooth {FWHM:g} + clean + confounds",
}


def seeds_tsv() -> str:
    """nilearn's Power 2011 seeds as a TSV of x, y, z (what our ``seeds_file`` reads)."""
    path = DATA_DIR / "power_2011_seeds.tsv"
    if not path.exists():
        with open(POWER, newline="") as f:
            rows = [(r["X"], r["Y"], r["Z"]) for r in csv.DictReader(f)]
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text("x\ty\tz\n" + "".join("\t".join(r) + "\n" for r in rows))
    return str(path)


def case_bodies(kind: str, path: Path, threads: int = 2) -> tuple[str, str, str]:
    """(nilearn extra setup, nilearn body, ours body) for one case on the BOLD ``path``; ours
    with ``num_threads=threads`` (nilearn has no such input: numpy's BLAS takes the cores)."""
    img, t = str(path), f", num_threads={threads}"
    if kind == "epi":
        return ("", f"NiftiMasker(mask_strategy='epi', standardize=None).fit_transform({img!r})",
                f"NiftiMasker(in_file={img!r}, mask_strategy='epi'{t}).run()")
    if kind == "labels":
        atlas = labels_atlas(400)
        return ("", f"NiftiLabelsMasker({atlas!r}, standardize=None).fit_transform({img!r})",
                f"NiftiLabelsMasker(in_file={img!r}, labels_file={atlas!r}{t}).run()")
    if kind == "maps":
        atlas = maps_atlas()
        return ("", f"NiftiMapsMasker({atlas!r}, standardize=None).fit_transform({img!r})",
                f"NiftiMapsMasker(in_file={img!r}, maps_file={atlas!r}{t}).run()")
    if kind == "spheres":
        seeds = seeds_tsv()
        return (f"seeds = [tuple(s) for s in np.loadtxt({seeds!r}, skiprows=1, ndmin=2)]",
                f"NiftiSpheresMasker(seeds, radius={RADIUS}, standardize=None)"
                f".fit_transform({img!r})",
                f"NiftiSpheresMasker(in_file={img!r}, seeds_file={seeds!r}, "
                f"radius={RADIUS}{t}).run()")
    if kind == "clean":
        mask, motion = epi_mask(path), motion_file(path)
        options = ", ".join(f"{k}={v!r}" for k, v in CLEAN.items())
        # nilearn gets the confounds as an array read before the clock (as in bench_clean);
        # ours reads the TSV in its run, as a user gives it
        return (f"confounds = np.loadtxt({motion!r}, skiprows=1, delimiter='\\t', ndmin=2)",
                f"NiftiMasker(mask_img={mask!r}, smoothing_fwhm={FWHM}, {options})"
                f".fit_transform({img!r}, confounds=confounds)",
                f"NiftiMasker(in_file={img!r}, mask_file={mask!r}, smoothing_fwhm={FWHM}, "
                f"{options}, confounds_file={motion!r}{t}).run()")
    raise ValueError(kind)


def ours_case(body: str, root: Path) -> tuple[str, str]:
    """Our interface's (setup, body): each run in a fresh work directory under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return OURS_SETUP.format(root=str(root)), body


def times(result: dict) -> str:
    return ", ".join(f"{t:.2f}" for t in result["times"])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def run_comparison(kind: str, path: Path, args) -> dict:
    """One case, nilearn and ours alternating (labels: the ISA-L floor too); prints it."""
    extra, theirs, ours = case_bodies(kind, path, args.num_threads)
    root = WORK_ROOT / kind
    cases = {}
    if not args.ours_only:
        cases["nilearn"] = (NILEARN_SETUP + extra, theirs)
    cases["ours"] = ours_case(ours, root)
    if kind == "labels":
        cases["isal"] = isal_case(path)
    try:
        results = alternating_medians(cases, args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n## {TITLES[kind]}, {args.volumes} volumes (runs in s, median; peak, work MB)")
    names = {"nilearn": "nilearn " + theirs.split("(")[0].split()[-1] + ".fit_transform",
             "ours": "ours interfaces " + ours.split("(")[0] + ".run()",
             "isal": "ISA-L stream decompression (floor)"}
    for who, result in results.items():
        print(f"  {names[who]:44s} [{times(result)}] -> {result['seconds']:6.2f}   "
              f"peak {result['peak_mb']:5.0f}, work {result['work_mb']:5.0f}")
    row = {"case": TITLES[kind], "ours": results["ours"]["seconds"], "nilearn": None,
           "target": TARGETS[kind]}
    if "nilearn" in results:
        row["nilearn"] = results["nilearn"]["seconds"]
        ratio = row["nilearn"] / row["ours"]
        print(f"  -> nilearn / ours x{ratio:.1f} (target >= x{TARGETS[kind]:g}): "
              f"{verdict(ratio >= TARGETS[kind])}")
    if "isal" in results:
        row["floor"] = results["isal"]["seconds"]
        ratio = row["ours"] / row["floor"]
        print(f"  -> ours / ISA-L floor x{ratio:.2f} (target <= x{FLOOR_TARGET:g}): "
              f"{verdict(ratio <= FLOOR_TARGET)}")
    return row


def output_mb(root: Path, kind: str, n_volumes: int) -> float:
    """What one ours run's output weighs in memory, from the files it wrote under ``root``:
    labels, the float32 matrix and its TSV text; EPI, the matrix (its ``.npy``)."""
    if kind == "labels":
        tsv = glob.glob(str(root / "*" / "*_timeseries.tsv"))[0]
        return (n_volumes * 400 * 4 + os.path.getsize(tsv)) / 2**20
    return os.path.getsize(glob.glob(str(root / "*" / "*.npy"))[0]) / 2**20


def memory_check(args) -> list[dict]:
    """Ours, labels and EPI mask + apply: peak - RSS after imports at 100 vs 300 volumes."""
    paths = {n: bold_file(n) for n in (100, 300)}
    rows = []
    print("\n## memory: ours, peak - RSS after imports (work), 100 vs 300 volumes")
    for kind in ("labels", "epi"):
        cases, roots = {}, {}
        for n, path in paths.items():
            roots[n] = WORK_ROOT / f"memory_{kind}_{n}"
            cases[n] = ours_case(case_bodies(kind, path)[2], roots[n])
        try:
            results = alternating_medians(cases, args.repeat)
            out = {n: output_mb(roots[n], kind, n) for n in paths}
        finally:
            for root in roots.values():
                shutil.rmtree(root, ignore_errors=True)
        work = {n: results[n]["work_mb"] for n in paths}
        growth, out_growth = work[300] - work[100], out[300] - out[100]
        print(f"  {TITLES[kind]:26s} work {work[100]:6.0f} MB (100) -> {work[300]:6.0f} MB "
              f"(300): +{growth:.0f} MB; output {out[100]:.1f} -> {out[300]:.1f} MB: "
              f"+{out_growth:.1f} MB; time {results[100]['seconds']:.2f} -> "
              f"{results[300]['seconds']:.2f} s")
        row = {"case": f"memory {TITLES[kind]}", "work": work, "growth": growth,
               "out_growth": out_growth}
        if kind == "labels":
            ok = growth <= out_growth + MEMORY_SLACK_MB
            print(f"  -> labels work growth {growth:.1f} MB vs output growth {out_growth:.1f} MB "
                  f"(+{MEMORY_SLACK_MB:g} MB RSS noise allowed): {verdict(ok)}")
            row["ok"] = ok
        else:
            print(f"  -> EPI work growth / output growth x{growth / out_growth:.2f} (the "
                  "output is the volumes x voxels matrix)")
        rows.append(row)
    return rows


def summary(rows: list[dict], memory: list[dict]) -> None:
    print("\n## summary (medians)")
    print(f"{'case':40s} {'nilearn s':>10s} {'ours s':>8s} {'ratio':>7s} {'target':>8s}  result")
    for row in rows:
        if row["nilearn"] is None:
            print(f"{row['case']:40s} {'-':>10s} {row['ours']:8.2f} {'-':>7s} "
                  f"{'>= x' + format(row['target'], 'g'):>8s}  -")
        else:
            ratio = row["nilearn"] / row["ours"]
            print(f"{row['case']:40s} {row['nilearn']:10.2f} {row['ours']:8.2f} "
                  f"{'x' + format(ratio, '.1f'):>7s} {'>= x' + format(row['target'], 'g'):>8s}"
                  f"  {verdict(ratio >= row['target'])}")
        if "floor" in row:
            ratio = row["ours"] / row["floor"]
            print(f"{'  ours / ISA-L floor (' + format(row['floor'], '.2f') + ' s)':40s} "
                  f"{'':10s} {row['ours']:8.2f} {'x' + format(ratio, '.2f'):>7s} "
                  f"{'<= x' + format(FLOOR_TARGET, 'g'):>8s}  {verdict(ratio <= FLOOR_TARGET)}")
    for row in memory:
        work = row["work"]
        text = (f"{row['case'] + ', 100 -> 300 volumes':40s} work {work[100]:.0f} -> "
                f"{work[300]:.0f} MB: +{row['growth']:.0f} MB, output +{row['out_growth']:.1f} MB")
        if "ok" in row:
            text += f"; growth <= output + {MEMORY_SLACK_MB:g} MB: {verdict(row['ok'])}"
        print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--num-threads", type=int, default=min(os.cpu_count() or 1, 4),
                        help="our interfaces' num_threads (default: the CPUs, at most 4, "
                        "as the core's default_threads)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per case, alternating, median reported (default 3)")
    parser.add_argument("--cases", default=",".join(ALL_CASES),
                        help=f"comma-separated subset of {','.join(ALL_CASES)} (default all)")
    parser.add_argument("--ours-only", action="store_true",
                        help="skip nilearn (quick iterations of ours)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="set OPENBLAS/OMP/MKL_NUM_THREADS for every case (default: as is)")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.cases.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(ALL_CASES))
    if unknown:
        parser.error(f"--cases: unknown {unknown}; choose among {','.join(ALL_CASES)}")
    apply_repeat_options(args)
    # nipype's import checks online for a newer release: not part of anything timed here
    os.environ.setdefault("NIPYPE_NO_ET", "1")
    path = bold_file(args.volumes)
    print(f"# Interfaces benchmark: {path.name} ({path.stat().st_size / 2**20:.0f} MB on disk), "
          f"median of {args.repeat} alternating runs"
          + (" (ours only)" if args.ours_only else ", nilearn 0.14.1 vs ours"))
    rows = [run_comparison(kind, path, args) for kind in ALL_CASES[:-1] if kind in kinds]
    memory = memory_check(args) if "memory" in kinds else []
    summary(rows, memory)
    shutil.rmtree(WORK_ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()
