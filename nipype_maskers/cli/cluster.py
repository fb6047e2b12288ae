"""Running on Slurm or Grid Engine: what Nipype's batch plugins need, and waiting for jobs.

Nipype's SLURM and SGE plugins stay in the foreground, poll the scheduler and read each job's
result themselves. The SLURMGraph and SGEGraph plugins only submit the whole graph (one job per
node, with dependencies) and return at once; the command line then waits here until none of
the submitted jobs is queued any more, and reads the outcome from the work dir: crash files for
steps that failed, and missing completion marks for steps whose job never finished (cancelled
after a failed dependency, or killed by the scheduler). The jobs of steps downstream of a
crashed one, and those that can never start (Slurm's ``DependencyNeverSatisfied``, a Grid
Engine job in error state), are cancelled rather than waited for.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRAPH_PLUGINS = ("SLURMGraph", "SGEGraph")
#: How long the command waits for submitted *Graph jobs, unless --plugin-args says otherwise
#: (``{"wait_timeout": SECONDS}``): long enough for a busy queue.
DEFAULT_WAIT_TIMEOUT = 48 * 3600.0
#: Consecutive failed squeue/qstat calls after which the wait gives up.
MAX_QUERY_FAILURES = 20


def prepare_environment() -> None:
    """Set ``LOGNAME`` when it is missing: Nipype's SLURM and SGE plugins name jobs after it
    (``os.environ['LOGNAME']``) and fail with a KeyError without it (e.g. under cron or in a
    container)."""
    if os.environ.get("LOGNAME"):
        return
    try:
        os.environ["LOGNAME"] = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid
        os.environ["LOGNAME"] = str(os.getuid())


def graph_plugin_args(plugin: str, plugin_args: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Nipype's arguments for a *Graph plugin, and the wait timeout taken out of them.

    ``dont_resubmit_completed_jobs`` defaults to True: on a rerun (resuming after a failure)
    the steps already done in the work dir, whose inputs are done too, get no job (Nipype's
    default resubmits every step: 56 jobs and 82 s for the finished two-subject demo, against
    none and 3 s). SLURMGraph also fails when the key is missing. Both plugins append a
    node's own sbatch/qsub arguments (its resource request) to the global ones without a
    space; the global ones get a trailing space.
    """
    args = dict(plugin_args)
    try:
        timeout = float(args.pop("wait_timeout", DEFAULT_WAIT_TIMEOUT))
    except (TypeError, ValueError):
        raise ValueError("wait_timeout: expected a number of seconds") from None
    if timeout <= 0:
        raise ValueError(f"wait_timeout: must be > 0 seconds, got {timeout}")
    args.setdefault("dont_resubmit_completed_jobs", True)
    key = "sbatch_args" if plugin.startswith("SLURM") else "qsub_args"
    args[key] = f"{args.get(key) or ''} "
    return args, timeout


def _output_tail(paths: list[Path]) -> str:
    """'; its output ends with: <last line> (<file>)' for the last non-empty job output."""
    for path in paths:
        try:
            lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
        except OSError:
            continue
        lines = [ln for ln in lines if ln]
        if lines:
            return f"; its output ends with: {lines[-1][:300]} ({path})"
    return ""


class _ReportKilledJobs:
    """For Nipype's SLURM and SGE plugins: a job that ends without a result file (killed by
    the scheduler for its memory or time limit, or dead before Python could load the node)
    is reported as that node's failure, and the other runs go on.

    Nipype builds the crash report of such a job from a string traceback and then fails to
    append to it (``TypeError: can only concatenate str (not "list") to str``), which stops the
    whole run and leaves the other jobs running unobserved. Here the traceback is a list, and
    its last line names the job and the end of its output.
    """

    def _submit_batchtask(self, scriptfile, node):
        taskid = super()._submit_batchtask(scriptfile, node)
        self._batch_dirs[taskid] = Path(scriptfile).parent
        return taskid

    def _get_result(self, taskid):
        result = super()._get_result(taskid)
        if result is not None and isinstance(result.get("traceback"), str):
            batch_dir = self._batch_dirs.get(taskid, Path())
            outputs = [batch_dir / f"slurm-{taskid}.out", *batch_dir.glob(f"*.e{taskid}"),
                       *batch_dir.glob(f"*.o{taskid}")]
            result["traceback"] = [*result["traceback"].splitlines(keepends=True),
                                   f"JobError: job {taskid} ended without a result (killed "
                                   "by the scheduler, e.g. for its memory or time limit?)"
                                   f"{_output_tail(outputs)}\n"]
        return result

    def _report_crash(self, node, result=None):
        if result is not None and isinstance(result.get("traceback"), str):
            result = {**result, "traceback": result["traceback"].splitlines(keepends=True)}
        return super()._report_crash(node, result)


def batch_plugin(plugin: str, plugin_args: dict[str, Any]):
    """Nipype's SLURM or SGE plugin object, reporting jobs killed by the scheduler."""
    from nipype.pipeline.plugins import SGEPlugin, SLURMPlugin

    base = {"SLURM": SLURMPlugin, "SGE": SGEPlugin}[plugin]
    cls = type(f"{plugin}Plugin", (_ReportKilledJobs, base), {})
    runner = cls(plugin_args=plugin_args)
    runner._batch_dirs = {}
    return runner


@dataclass(frozen=True)
class Job:
    """One of our jobs as the scheduler lists it."""

    id: str
    script: str
    state: str
    #: A job that can never start: Slurm's DependencyNeverSatisfied, Grid Engine's error state.
    stuck: bool = False


def submitted_scripts(batch_dir: Path) -> dict[str, str]:
    """{batch script path: job name} from the ``submit_jobs.sh`` a *Graph plugin just ran."""
    path = batch_dir / "submit_jobs.sh"
    scripts = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            match = re.match(r"^(\w+)=\$\((?:sbatch|qsub) .* (\S+\.sh) \|", line)
            if match:
                scripts[match.group(2)] = match.group(1)
    return scripts


def _user() -> str:
    return os.environ.get("LOGNAME") or getpass.getuser()


def _query(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}): "
                           f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def slurm_jobs(scripts: dict[str, str]) -> list[Job]:
    """Our queued Slurm jobs: the user's jobs whose batch script is one of ``scripts``."""
    out = _query(["squeue", "-h", "-u", _user(), "-o", "%i|%T|%r|%o"])
    jobs = []
    for line in out.splitlines():
        parts = line.strip().split("|", 3)
        if len(parts) == 4 and parts[3] in scripts:
            jobs.append(Job(parts[0], parts[3], parts[1],
                            stuck=parts[2] == "DependencyNeverSatisfied"))
    return jobs


class SgeJobs:
    """Our queued Grid Engine jobs: the user's jobs with one of our names whose script
    (``qstat -j``, asked once per job) is one of ours."""

    def __init__(self, scripts: dict[str, str]):
        self.names = set(scripts.values())
        self.scripts = scripts
        self.script_of: dict[str, str | None] = {}

    def __call__(self) -> list[Job]:
        root = ET.fromstring(_query(["qstat", "-u", _user(), "-xml"]))
        listed = [(e.findtext("JB_job_number", ""), e.findtext("JB_name", ""),
                   e.findtext("state", "")) for e in root.iter("job_list")]
        unknown = [i for i, name, _ in listed if name in self.names and i not in self.script_of]
        if unknown:
            details = _query(["qstat", "-j", ",".join(unknown)])
            for number, script in re.findall(r"^job_number:\s+(\d+)$.*?^script_file:\s+(\S+)",
                                             details, re.MULTILINE | re.DOTALL):
                self.script_of[number] = script if script in self.scripts else None
            for number in unknown:
                self.script_of.setdefault(number, None)
        return [Job(i, script, state, stuck="E" in state) for i, _, state in listed
                if (script := self.script_of.get(i))]


def cancel(jobs: list[Job], plugin: str) -> None:
    """Cancel ``jobs`` (scancel / qdel)."""
    command = ["scancel"] if plugin.startswith("SLURM") else ["qdel"]
    subprocess.run([*command, *(j.id for j in jobs)], capture_output=True, timeout=120,
                   check=False)


def wait_for_jobs(list_jobs: Callable[[], list[Job]], *, plugin: str, timeout: float,
                  doomed: Callable[[list[Job]], list[Job]] = lambda jobs: [],
                  stream=None, poll: float = 2.0, max_poll: float = 30.0) -> list[Job]:
    """Wait until none of our jobs is queued; return those still queued at the timeout.

    Jobs that can never start, and those ``doomed`` picks (dependents of a failed step), are
    cancelled. The interval between polls grows from ``poll`` to ``max_poll`` seconds as the
    wait goes on, to spare the scheduler on long runs.
    """
    stream = stream or sys.stdout
    started = time.monotonic()
    failures, last, last_print = 0, None, -60.0
    while True:
        try:
            jobs = list_jobs()
            failures = 0
        except (RuntimeError, OSError, subprocess.TimeoutExpired, ET.ParseError) as exc:
            failures += 1
            if failures >= MAX_QUERY_FAILURES:
                raise RuntimeError(f"cannot list the submitted jobs: {exc}") from None
            jobs = None
        if jobs is not None:
            stuck = {j.id: j for j in [*(j for j in jobs if j.stuck), *doomed(jobs)]}
            if stuck:
                print(f"  {plugin}: cancelling {len(stuck)} job(s) of steps that depend on a "
                      "failed one", file=stream, flush=True)
                cancel(list(stuck.values()), plugin)
            active = [j for j in jobs if j.id not in stuck]
            if not active:
                return []
            running = sum(j.state.upper() in ("RUNNING", "R", "T", "COMPLETING")
                          for j in active)
            elapsed = time.monotonic() - started
            if ((len(active), running) != last and elapsed - last_print >= 10) \
                    or elapsed - last_print >= 300:
                print(f"  {plugin}: {len(active)} job(s) queued, {running} running "
                      f"({elapsed:.0f} s)", file=stream, flush=True)
                last, last_print = (len(active), running), elapsed
            if elapsed > timeout:
                return active
        time.sleep(min(max_poll, poll + (time.monotonic() - started) / 20))


def _script_key(script: str) -> str:
    """'<hierarchy>_<node>' from batchscript_pyscript_<YYYYmmdd_HHMMSS>_<hierarchy>_<node>.sh."""
    return re.sub(r"^batchscript_pyscript_\d{8}_\d{6}_", "", Path(script).name)[: -len(".sh")]


class GraphJobs:
    """The submitted graph: which node each batch script runs, and what depends on what."""

    def __init__(self, workflow, scripts: dict[str, str]):
        import networkx as nx

        graph = workflow._create_flat_graph()
        self.descendants = {n.fullname: {d.fullname for d in nx.descendants(graph, n)}
                            for n in graph.nodes}
        by_key = {f"{n._hierarchy}_{n.name}": n.fullname for n in graph.nodes}
        self.node_of = {script: by_key.get(_script_key(script)) for script in scripts}

    def downstream(self, failed: set[str]) -> set[str]:
        """Every node that depends on one of the ``failed`` nodes."""
        return set().union(*(self.descendants.get(n, set()) for n in failed))

    def first_failures(self, failures: dict[str, str]) -> dict[str, str]:
        """``failures`` without the nodes that failed because a step before them did."""
        downstream = self.downstream(set(failures))
        return {n: m for n, m in failures.items() if n not in downstream}


def unfinished_steps(workflow, work_dir: Path) -> dict[str, str]:
    """{node full name: message} for the steps without a completion mark in the work dir.

    Nipype writes ``_0x<hash>.json`` in a node's folder when the node finishes (and
    ``_0x<hash>_unfinished.json`` while it runs); identity nodes have no folder.
    """
    from nipype.interfaces.utility import IdentityInterface

    batch_dir = work_dir / workflow.name / "batch"
    missing = {}
    for name in workflow.list_node_names():
        if isinstance(workflow.get_node(name).interface, IdentityInterface):
            continue
        folder = work_dir.joinpath(workflow.name, *name.split("."))
        marks = [p.name for p in folder.glob("_0x*.json")]
        if not marks or any(m.endswith("_unfinished.json") for m in marks):
            # the node's batch script: batchscript_pyscript_<time>_<hierarchy>_<name>.sh
            hierarchy, _, node_name = f"{workflow.name}.{name}".rpartition(".")
            scripts = sorted(batch_dir.glob(f"batchscript_*_{hierarchy}_{node_name}.sh"),
                             key=lambda p: p.stat().st_mtime)
            outputs = [Path(f"{scripts[-1]}.e"), Path(f"{scripts[-1]}.o")] if scripts else []
            missing[f"{workflow.name}.{name}"] = (
                "JobError: its job ended without finishing the step and left no crash report "
                "(not submitted, cancelled, or killed by the scheduler for its time or memory "
                f"limit?){_output_tail(outputs) or f'; job logs in {batch_dir}'}")
    return missing


def graph_outcome(workflow, *, plugin: str, work_dir: Path, timeout: float,
                  failed: Callable[[], dict[str, str]], stream=None) -> dict[str, str]:
    """After a *Graph plugin submitted ``workflow``: wait for its jobs, return the failures.

    ``failed`` reads the crash files (``{node full name: error}``). While waiting, the jobs of
    steps downstream of a crashed one are cancelled. The failures are the steps that crashed
    or did not finish, except those downstream of another failure.
    """
    stream = stream or sys.stdout
    batch_dir = work_dir / workflow.name / "batch"
    scripts = submitted_scripts(batch_dir)
    graph = GraphJobs(workflow, scripts)
    print(f"Submitted {len(scripts)} job(s) to {plugin}; waiting for them (at most "
          f"{timeout / 3600:.3g} h) ...", file=stream, flush=True)
    list_jobs = (lambda: slurm_jobs(scripts)) if plugin.startswith("SLURM") \
        else SgeJobs(scripts)

    def doomed(jobs: list[Job]) -> list[Job]:
        downstream = graph.downstream(set(failed())) if jobs else set()
        return [j for j in jobs if graph.node_of.get(j.script) in downstream]

    left = wait_for_jobs(list_jobs, plugin=plugin, timeout=timeout, doomed=doomed,
                         stream=stream)
    unfinished = unfinished_steps(workflow, work_dir)
    if left:
        still = " ".join(j.id for j in left)
        unfinished = {node: f"JobError: still queued after {timeout:.0f} s (jobs {still} keep "
                      "running; run the same command again once they are done)"
                      for node in unfinished}
    # a crash report says more than a missing completion mark; steps after a failed one
    # (cancelled, or run on missing inputs) are not failures of their own
    return graph.first_failures({**unfinished, **failed()})
