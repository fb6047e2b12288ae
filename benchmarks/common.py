"""Shared benchmark machinery: build realistic inputs once, time each case in a fresh process.

Each case runs in its own Python process so its peak memory (``VmHWM``) is its own; the
process also reports its resident memory after imports, so the figures show what the work
itself added. Generated data go to ``benchmarks/_data/`` (git-ignored), rebuilt when missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "_data"

_CHILD = """
import time, json, sys, warnings
warnings.simplefilter("ignore")
def _status_mb(key):
    # VmHWM, unlike ru_maxrss, is not inherited from the parent across fork + exec
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
{setup}
_base = _status_mb("VmRSS")
_t0 = time.perf_counter()
{body}
_elapsed = time.perf_counter() - _t0
_peak = _status_mb("VmHWM")
print("__RESULT__" + json.dumps({{"seconds": _elapsed, "peak_mb": _peak, "base_mb": _base}}))
"""


def run_case(setup: str, body: str, *, env: dict | None = None) -> dict:
    """Run ``setup`` (imports, untimed) then ``body`` (timed) in a fresh interpreter."""
    code = _CHILD.format(setup=textwrap.dedent(setup), body=textwrap.dedent(body))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    for line in out.stdout.splitlines():
        if line.startswith("__RESULT__"):
            return json.loads(line[len("__RESULT__"):])
    raise RuntimeError(f"benchmark case failed:\n{out.stderr[-3000:]}")


def time_command(command: list[str]) -> float:
    """Wall time of a shell command (its output discarded)."""
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def bold_file(n_volumes: int, *, dtype: str = "float32", compressed: bool = True,
              seed: int = 0) -> Path:
    """A synthetic MNI 2 mm BOLD run on disk (built once, then reused)."""
    import nibabel as nib
    import numpy as np

    from nipype_maskers.demo.data import synthetic_bold

    ext = ".nii.gz" if compressed else ".nii"
    path = DATA_DIR / f"bold_{n_volumes}_{dtype}_seed{seed}{ext}"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        print(f"  building {path.name} ...", flush=True)
        img, motion, names = synthetic_bold(n_volumes, seed=seed, dtype=np.dtype(dtype))
        tmp = path.with_name(".tmp_" + path.name)
        nib.save(img, tmp)
        tmp.replace(path)
        np.savetxt(path.with_suffix("").with_suffix(".motion.tsv"), motion, delimiter="\t",
                   header="\t".join(names), comments="")
    return path


def report(title: str, rows: list[tuple[str, dict]], *, reference: str | None = None,
           ours: str | None = None) -> None:
    """Print a table of cases, with the nilearn/ours ratios when both are named."""
    print(f"\n## {title}")
    print(f"{'case':58s} {'time (s)':>9s} {'peak (MB)':>10s} {'work (MB)':>10s}")
    for label, result in rows:
        if result is None:
            continue
        work = result["peak_mb"] - result.get("base_mb", 0)
        median = result.get("median")
        runs = ""
        if REPEAT["runs"] > 1 and median:
            runs = f"   (median of {REPEAT['runs']}: {median:.2f} s)"
        print(f"{label:58s} {result['seconds']:9.2f} {result['peak_mb']:10.0f} {work:10.0f}{runs}")
    results = dict(rows)
    if reference and ours and results.get(reference) and results.get(ours):
        ref, us = results[reference], results[ours]
        print(f"-> nilearn / ours: time x{ref['seconds'] / us['seconds']:.1f}, peak memory "
              f"x{ref['peak_mb'] / us['peak_mb']:.1f}")


#: Runs per case for :func:`timed` (the scripts' ``--repeat``).
REPEAT = {"runs": 1}


def timed(setup: str, body: str) -> dict:
    """``run_case`` ``REPEAT['runs']`` times: the best time, the worst peak (the machine is
    shared)."""
    results = [run_case(setup, body) for _ in range(REPEAT["runs"])]
    best = dict(min(results, key=lambda r: r["seconds"]))
    best["peak_mb"] = max(r["peak_mb"] for r in results)
    best["median"] = float(sorted(r["seconds"] for r in results)[len(results) // 2])
    return best


#: Appended to a timed body that saves its output for the comparison: the save is taken out
#: of the time by moving the child's start time forward by its duration (np.save writes the
#: array's buffer without a copy: no memory added).
SAVE = """
_ts = time.perf_counter()
np.save({out!r}, signals)
_t0 += time.perf_counter() - _ts
"""


def isal_case(path) -> tuple[str, str]:
    """The (setup, body) of one ISA-L stream decompression of ``path``, for :func:`run_case`."""
    return "from isal import igzip", f"""
        with igzip.open({str(path)!r}, "rb") as f:
            while f.read(1 << 22):
                pass
    """


def isal_floor(path) -> dict:
    """Time to stream-decompress ``path`` with ISA-L (what our reader uses when installed)."""
    return timed(*isal_case(path))


def alternating_medians(cases: dict[str, tuple[str, str]], repeat: int) -> dict[str, dict]:
    """Run each case (label -> (setup, body), as :func:`run_case`) ``repeat`` times,
    alternating: A, B, ..., then A, B, ... again, so that a drift of the machine's speed
    hits every case alike (:func:`timed` runs one case's repeats back to back).

    Returns, per label, the median time as ``seconds``, the worst peak ``peak_mb``, the
    largest peak minus RSS after imports ``work_mb`` (the machine being shared), and each
    run's times under ``times``.
    """
    runs: dict[str, list[dict]] = {label: [] for label in cases}
    for _ in range(max(1, repeat)):
        for label, (setup, body) in cases.items():
            runs[label].append(run_case(setup, body))
    summary = {}
    for label, results in runs.items():
        times = [r["seconds"] for r in results]
        summary[label] = {
            "seconds": float(sorted(times)[len(times) // 2]),
            "peak_mb": max(r["peak_mb"] for r in results),
            "base_mb": min(r["base_mb"] for r in results),
            "work_mb": max(r["peak_mb"] - r["base_mb"] for r in results),
            "times": times,
        }
    return summary


def add_repeat_options(parser) -> None:
    """``--repeat`` and ``--blas-threads``, shared by the comparison scripts."""
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per case, best time reported (default 1)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="set OPENBLAS/OMP/MKL_NUM_THREADS for every case (default: as is)")


def apply_repeat_options(args) -> None:
    """Apply ``--repeat`` and ``--blas-threads`` (inherited by every child process)."""
    REPEAT["runs"] = max(1, args.repeat)
    if args.blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
