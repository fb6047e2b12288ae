"""M9 benchmark: connectivity matrices, nilearn's ConnectivityMeasure vs nipype-maskers.

Usage::

    python benchmarks/bench_connectivity.py [--regions 400] [--volumes 1200] [--calls 20]
                                            [--subjects 200] [--subject-volumes 300]
                                            [--skip-tangent] [--repeat 1] [--blas-threads N]

1. One run: ``kind='correlation'`` with Ledoit-Wolf (nilearn's defaults) on 400 regions x
   1,200 volumes, ``--calls`` calls in a row (one call is tens of milliseconds); target: ours
   at least 5x faster.
2. The group: ``kind='tangent'`` for 200 subjects x 400 regions (``--subject-volumes`` each);
   target: at least as fast as nilearn, work memory (peak minus the memory after the signals
   are loaded) at most 2x the stacked covariance matrices.

Each case runs in a fresh process (``common.run_case``); both sides get the same signals
(generated in the untimed setup from a seed), and the largest absolute difference of the
outputs is printed. On a shared machine prefer ``--blas-threads 1``: with the default BLAS
threads, other jobs' load slows nilearn's many small calls far more than ours (December 2026,
2 busy CPUs: tangent x9.6 with default threads, x2.1 with one thread; correlation x8 to x19).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import add_repeat_options, apply_repeat_options, report, timed

SIGNALS = """
import numpy as np
rng = np.random.default_rng({seed})
mixing = np.eye({regions}) + 0.05 * rng.standard_normal(({regions}, {regions}))
"""

RUN_SETUP = SIGNALS + """
signals = rng.standard_normal(({volumes}, {regions})) @ mixing + 10.0
{imports}
"""

GROUP_SETUP = SIGNALS + """
subjects = [rng.standard_normal(({volumes}, {regions})) @ mixing for _ in range({subjects})]
{imports}
"""

NILEARN = """
from nilearn.connectome import ConnectivityMeasure
from sklearn.covariance import LedoitWolf
"""
OURS = "from nipype_maskers.core.connectivity import connectivity_matrix, group_connectivity"


def _save(out: Path, expression: str) -> str:
    """Save the result outside the timed part (the child moves its start time forward)."""
    return f"""
_ts = time.perf_counter()
np.save({str(out)!r}, {expression})
_t0 += time.perf_counter() - _ts
"""


def bench_run(args, tmp: Path) -> None:
    sizes = dict(seed=0, regions=args.regions, volumes=args.volumes)
    calls = args.calls
    nilearn = timed(RUN_SETUP.format(**sizes, imports=NILEARN), f"""
for _ in range({calls}):
    matrix = ConnectivityMeasure(kind="correlation",
                                 cov_estimator=LedoitWolf()).fit_transform([signals])[0]
""" + _save(tmp / "run_nilearn.npy", "matrix"))
    ours = timed(RUN_SETUP.format(**sizes, imports=OURS), f"""
for _ in range({calls}):
    matrix = connectivity_matrix(signals, kind="correlation", shrinkage="ledoit_wolf")
""" + _save(tmp / "run_ours.npy", "matrix"))
    title = (f"correlation + Ledoit-Wolf, {args.regions} regions x {args.volumes} volumes, "
             f"{calls} calls")
    report(title, [("nilearn ConnectivityMeasure", nilearn), ("ours connectivity_matrix", ours)],
           reference="nilearn ConnectivityMeasure", ours="ours connectivity_matrix")
    ratio = nilearn["seconds"] / ours["seconds"]
    difference = np.abs(np.load(tmp / "run_nilearn.npy") - np.load(tmp / "run_ours.npy")).max()
    print(f"per call: nilearn {1e3 * nilearn['seconds'] / calls:.1f} ms, ours "
          f"{1e3 * ours['seconds'] / calls:.1f} ms -> x{ratio:.1f} faster (target >= 5x: "
          f"{'met' if ratio >= 5 else 'NOT met'}); max |difference| {difference:.2e}")


def bench_tangent(args, tmp: Path) -> None:
    sizes = dict(seed=1, regions=args.regions, volumes=args.subject_volumes,
                 subjects=args.subjects)
    nilearn = timed(GROUP_SETUP.format(**sizes, imports=NILEARN), """
measure = ConnectivityMeasure(kind="tangent", cov_estimator=LedoitWolf())
tangents = measure.fit_transform(subjects)
""" + _save(tmp / "mean_nilearn.npy", "measure.mean_")
        + _save(tmp / "tangent0_nilearn.npy", "tangents[0]"))
    ours = timed(GROUP_SETUP.format(**sizes, imports=OURS), """
group = group_connectivity(subjects, kind="tangent", shrinkage="ledoit_wolf")
""" + _save(tmp / "mean_ours.npy", "group.mean")
        + _save(tmp / "tangent0_ours.npy", "group.subjects[0]"))
    title = (f"tangent, {args.subjects} subjects x {args.regions} regions x "
             f"{args.subject_volumes} volumes")
    report(title, [("nilearn ConnectivityMeasure", nilearn), ("ours group_connectivity", ours)],
           reference="nilearn ConnectivityMeasure", ours="ours group_connectivity")
    stack_mb = args.subjects * args.regions**2 * 8 / 2**20
    for label, result in (("nilearn", nilearn), ("ours", ours)):
        work = result["peak_mb"] - result["base_mb"]
        print(f"{label}: work memory {work:.0f} MB = {work / stack_mb:.2f}x the stacked "
              f"matrices ({stack_mb:.0f} MB)")
    ratio = nilearn["seconds"] / ours["seconds"]
    work_ratio = (ours["peak_mb"] - ours["base_mb"]) / stack_mb
    mean_diff = np.abs(np.load(tmp / "mean_nilearn.npy") - np.load(tmp / "mean_ours.npy")).max()
    tangent_diff = np.abs(np.load(tmp / "tangent0_nilearn.npy")
                          - np.load(tmp / "tangent0_ours.npy")).max()
    print(f"-> x{ratio:.2f} nilearn's speed (target >= 1: {'met' if ratio >= 1 else 'NOT met'});"
          f" memory {work_ratio:.2f}x the stack (target <= 2: "
          f"{'met' if work_ratio <= 2 else 'NOT met'}); max |difference| geometric mean "
          f"{mean_diff:.2e}, first tangent matrix {tangent_diff:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=400)
    parser.add_argument("--volumes", type=int, default=1200)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--subject-volumes", type=int, default=300)
    parser.add_argument("--skip-tangent", action="store_true")
    add_repeat_options(parser)
    args = parser.parse_args()
    apply_repeat_options(args)
    with tempfile.TemporaryDirectory() as tmp:
        bench_run(args, Path(tmp))
        if not args.skip_tangent:
            bench_tangent(args, Path(tmp))


if __name__ == "__main__":
    main()
