"""Node factories shared by the workflows."""

from __future__ import annotations

from nipype.pipeline import engine as pe


def bookkeeping_node(interface, name: str) -> pe.Node:
    """A node that passes names and small values on (Merge, Select), or hashes a few small
    input files (the sidecar metadata): no real work.

    It runs in the scheduler's own process (``run_without_submitting``), claims no CPU
    (``n_procs=0``) and next to no memory: MultiProc then runs it as soon as its inputs
    exist, next to the busy workers. With the default claim of one CPU it waited for a free
    slot, so with both slots busy a finished subject's outputs were merged and written only
    after the last subject's steps (0.3 s added to the end of a 2-subject run).
    """
    return pe.Node(interface, name=name, run_without_submitting=True, n_procs=0, mem_gb=0.01)


def heavy_node(interface, name: str, omp_nthreads: int, mem_gb: float | None = None
               ) -> pe.Node:
    """A node that reads the data: it claims ``omp_nthreads`` CPUs (``n_procs``, which
    Nipype also sets as the interface's ``num_threads``) and ``mem_gb`` when estimated."""
    extra = {} if mem_gb is None else {"mem_gb": mem_gb}
    return pe.Node(interface, name=name, n_procs=omp_nthreads, **extra)


def preset_t_r(inputnode: pe.Node, clean_args: dict | None) -> None:
    """Give the inputnode's ``t_r`` the factory's ``clean_args['t_r']`` as its value.

    The cleaning nodes take ``t_r`` from the inputnode (a parent pipeline connects fMRIPrep's
    TR there); an inputnode field left unset would pass Undefined on and erase the value
    set from ``clean_args``. Unset both ways, the nodes read the TR from the NIfTI header.
    """
    t_r = (clean_args or {}).get("t_r")
    if t_r is not None:
        inputnode.inputs.t_r = float(t_r)
