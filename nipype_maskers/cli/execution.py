"""Running the workflows for the command line: one workflow per run, progress, failures.

A failing run fails alone (Nipype carries on with the others); at the end the crash files
are read back so that the summary names the run, the node and the error in one line each.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def workflow_name(entities: dict[str, str]) -> str:
    """A Nipype-safe name for one run: ``sub_01_ses_a_task_rest_run_1_wf``."""
    keys = ("sub", "ses", "task", "acq", "run", "echo", "space", "res", "den")
    parts = [f"{k}_{entities[k]}" for k in keys if entities.get(k)]
    return re.sub(r"[^A-Za-z0-9_]", "", "_".join(parts)) + "_wf"


def run_label(entities: dict[str, str]) -> str:
    """How a run is named to the user: its BIDS entities, e.g. ``sub-01 task-rest run-1``."""
    keys = ("sub", "ses", "task", "acq", "run", "echo", "space")
    return " ".join(f"{k}-{entities[k]}" for k in keys if entities.get(k))


@dataclass
class Progress:
    """Nipype ``status_callback``: a line per finished step, with its run and the count.

    Bookkeeping nodes (merges, selections) run inside the scheduler and are counted silently.
    """

    total: int
    labels: dict[str, str] = field(default_factory=dict)
    stream: Any = None  # sys.stdout at the time of printing
    done: int = 0
    failed: list[str] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)

    def __call__(self, node, status: str) -> None:
        name = node.fullname
        if status == "start":
            self.started[name] = time.monotonic()
            return
        self.done += 1
        if status != "end":
            self.failed.append(name)
        elif getattr(node, "run_without_submitting", False):
            return
        since = self.started.pop(name, None)
        elapsed = f" ({time.monotonic() - since:.1f} s)" if since is not None else ""
        run, _, step = name.partition(".")[2].partition(".")
        label = self.labels.get(run, run)
        word = "done" if status == "end" else "FAILED"
        if status == "end" and since is None:
            # never started: cached, or skipped after an upstream failure (Linear)
            cached = Path(node.output_dir(), f"result_{node.name}.pklz").exists()
            word = "cached" if cached else "skipped (an upstream step failed)"
        print(f"[{self.done}/{self.total}] {label}: {step or node.name} {word}{elapsed}",
              file=self.stream or sys.stdout, flush=True)


def count_steps(workflow) -> int:
    """Nodes that will run: every node but the identity ones Nipype removes."""
    from nipype.interfaces.utility import IdentityInterface

    return sum(not isinstance(workflow.get_node(n).interface, IdentityInterface)
               for n in workflow.list_node_names())


def crash_messages(crash_dir: Path, since: float) -> dict[str, str]:
    """{node full name: 'ExceptionType: message'} from the text crash files written since."""
    messages = {}
    for path in sorted(crash_dir.glob("crash-*.txt")) if crash_dir.is_dir() else []:
        if path.stat().st_mtime < since:
            continue
        text = path.read_text(errors="replace")
        node = re.search(r"^Node: (\S+)", text, re.MULTILINE)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        errors = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b.*:", ln)]
        message = errors[-1] if errors else (lines[-1] if lines else "unknown error")
        messages[node.group(1) if node else path.name] = message
    return messages


def plugin_settings(plugin: str, *, nprocs: int | None, mem_gb: float | None,
                    plugin_args: dict[str, Any] | None, progress: Progress | None
                    ) -> dict[str, Any]:
    """Nipype plugin arguments for the command line's options."""
    args = dict(plugin_args or {})
    if plugin == "MultiProc":
        if nprocs:
            args.setdefault("n_procs", nprocs)
        if mem_gb:
            args.setdefault("memory_gb", mem_gb)
        args.setdefault("raise_insufficient", False)
    if progress is not None and plugin in ("MultiProc", "Linear", "SLURM", "SGE"):
        args["status_callback"] = progress
    return args


def run_workflows(workflow, *, plugin: str | Any, plugin_args: dict[str, Any], crash_dir: Path,
                  runs: dict[str, str], stream=None,
                  wait: Callable[[Callable[[], dict[str, str]]], dict[str, str]] | None = None
                  ) -> int:
    """Run; print a summary naming each failed run, node and error. Returns the exit code.

    ``plugin`` is a Nipype plugin name or object. ``runs`` maps each run's workflow name to
    the label shown to the user. ``wait``, for
    plugins that only submit jobs (SLURMGraph, SGEGraph), is called after the submission with
    a function that reads the crash files; it waits for the jobs and returns the failed nodes.
    """
    stream = stream or sys.stdout
    started = time.time()
    # MultiProc runs a full garbage collection before each submission: over the heap of
    # nipype, scipy and the graph that is 70 ms a time, 2.7 s of a core taken from the workers
    # in a 2-subject run. Frozen objects are skipped, and forked workers copy fewer pages.
    gc.freeze()
    try:
        workflow.run(plugin=plugin, plugin_args=plugin_args)
        failed_nodes: dict[str, str] = {}
        if wait is not None:
            failed_nodes = wait(lambda: crash_messages(crash_dir, started - 1))
    except Exception as exc:  # MultiProc raises RuntimeError; Linear re-raises the node's error
        failed_nodes = crash_messages(crash_dir, started - 1)
        if not failed_nodes:  # e.g. a scheduler command failed: say which and why
            reason = str(exc).strip().splitlines()
            failed_nodes = {"(unknown node)": f"{type(exc).__name__}: {reason[0]}" if reason
                            else "the workflow did not run cleanly; see the log"}
    finally:
        gc.unfreeze()
    failed_runs: dict[str, list[tuple[str, str]]] = {}
    for node, message in failed_nodes.items():
        run = next((label for name, label in runs.items() if f".{name}." in f".{node}"),
                   "(unknown run)")
        step = node.split(".", 2)[-1] if node.count(".") >= 2 else node
        failed_runs.setdefault(run, []).append((step, message))
    n_ok = sum(label not in failed_runs for label in runs.values())
    print(f"\n{n_ok} of {len(runs)} runs finished"
          + (f"; {len(failed_runs)} failed:" if failed_runs else "."), file=stream)
    for run, problems in failed_runs.items():
        for step, message in problems:
            print(f"  FAILED {run}: {step}: {message}", file=stream)
    if failed_runs:
        print(f"  crash reports: {crash_dir}", file=stream)
    return 1 if failed_runs else 0


#: Virtual memory a Python job maps beyond what it holds, added to Grid Engine's h_vmem.
SGE_VMEM_OVERHEAD_GB = 1.0


def scheduler_args(plugin: str, mem_gb: float, n_procs: int = 1) -> dict[str, str]:
    """A node's resource request for a cluster plugin, from its ``mem_gb`` / ``n_procs``.

    Nipype's SLURM and SGE plugins ignore a node's ``mem_gb``; per-node ``plugin_args`` reach
    the job script (appended to the global sbatch/qsub arguments), so each job asks for what
    its node is estimated to use.

    Grid Engine's ``h_vmem`` caps the job's virtual memory (address space), not what it
    holds: Python with numpy/scipy maps about 0.3 GB more than it holds (thread stacks,
    allocator arenas, shared libraries; measured 385 MB virtual for 137 MB resident), so the
    request adds ``SGE_VMEM_OVERHEAD_GB``; without it every job dies with a MemoryError at
    import. ``h_vmem`` is per slot.

    Examples
    --------
    >>> scheduler_args('SLURM', 0.58)
    {'sbatch_args': '--mem=594M --cpus-per-task=1'}
    >>> scheduler_args('SGEGraph', 1.5, 2)
    {'qsub_args': '-l h_vmem=1280M -pe smp 2'}
    >>> scheduler_args('SLURMGraph', 0.01, 0)
    {'sbatch_args': '--mem=64M --cpus-per-task=1'}
    """
    megabytes = max(int(-(-mem_gb * 1024 // 1)), 64)
    n_procs = max(n_procs, 1)  # bookkeeping nodes claim no CPU from MultiProc; a job needs one
    if plugin.startswith("SLURM"):
        return {"sbatch_args": f"--mem={megabytes}M --cpus-per-task={n_procs}"}
    if plugin.startswith("SGE"):
        megabytes += int(SGE_VMEM_OVERHEAD_GB * 1024)
        per_slot = max(-(-megabytes // n_procs), 64)
        pe = f" -pe smp {n_procs}" if n_procs > 1 else ""
        return {"qsub_args": f"-l h_vmem={per_slot}M{pe}"}
    return {}


def request_resources(workflow, plugin: str) -> None:
    """Give every node of ``workflow`` its scheduler resource request (cluster plugins)."""
    for name in workflow.list_node_names():
        node = workflow.get_node(name)
        request = scheduler_args(plugin, node.mem_gb, node.n_procs)
        if request:
            node.plugin_args = {**request, **(node.plugin_args or {})}


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def default_omp_nthreads(plugin: str, *, nprocs: int | None, n_runs: int) -> int:
    """CPUs per heavy node when ``--omp-nthreads`` is not given (at most 4: beyond that
    decompression, which is sequential, is the limit).

    MultiProc: its processes shared among the runs, so a lone run gets every core and many
    runs get one each. Linear runs one node at a time: the machine's cores. Cluster jobs: 1
    (each job asks the scheduler for its ``n_procs``).
    """
    from ..core.io.streaming import default_threads

    if plugin == "MultiProc":
        return max(1, min(4, (nprocs or default_threads()) // max(n_runs, 1)))
    if plugin == "Linear":
        return default_threads()
    return 1


def thread_limits_per_node(omp_nthreads: int) -> Any:
    """Hold each node to the ``omp_nthreads`` CPUs it asks for (``n_procs``), whatever runs it.

    Nodes run side by side (MultiProc workers, cluster jobs); a BLAS library that starts a
    thread per core in each of them oversubscribes the machine (MultiProc with 2 processes
    ran no faster than Linear on 2 cores). Linear is held too, so that ``--omp-nthreads``
    means the same for every plugin (unheld, its BLAS took 9% of a second core with
    ``--omp-nthreads 1``). The environment variables reach cluster jobs and spawned
    processes; threadpoolctl (the "fast" extra), if installed, also limits this process,
    whose state forked MultiProc workers inherit. Returns the limiter to keep alive.
    """
    for variable in _THREAD_VARIABLES:
        os.environ.setdefault(variable, str(omp_nthreads))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return threadpool_limits(omp_nthreads)
