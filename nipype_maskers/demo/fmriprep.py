"""An fMRIPrep-like derivatives dataset of simulated runs, written atomically and resumably.

:func:`write_fmriprep_dataset` lays runs of :func:`nipype_maskers.demo.data.simulate_run` out as
fMRIPrep derivatives: the BOLD run in MNI space, its brain mask, and the confounds TSV and JSON
computed from the simulated data (:mod:`nipype_maskers.demo.confounds`). NIfTI files are
streamed block by block through :func:`nipype_maskers.files.open_atomic` (gzip without file
name or time stamp), so the same parameters give the same bytes.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from ..core.io.images import same_grid
from ..core.io.tables import read_table
from ..files import open_atomic
from ..files import write_text as write_text_atomically
from .confounds import confounds_sidecar, fmriprep_confounds, format_confounds
from .data import (
    GENERATOR_VERSION,
    MNI_2MM_AFFINE,
    MNI_2MM_SHAPE,
    SimulatedRun,
    check_grid,
    nifti_header,
    simulate_run,
)

SPACE = "MNI152NLin2009cAsym"
_BLOCK = 16  # volumes per write


# --------------------------------------------------------------------------------------------
# Writing files: atomic, deterministic, streamed
# --------------------------------------------------------------------------------------------
def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically, unless it already holds exactly this text."""
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    return write_text_atomically(text, path)


def write_json(data: dict, path: str | os.PathLike) -> Path:
    """Write a JSON sidecar atomically (indented, keys sorted, as fMRIPrep)."""
    return write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", path)


def write_nifti(path: str | os.PathLike, header: nib.Nifti1Header,
                chunks: Iterable[NDArray]) -> Path:
    """Stream a NIfTI image to ``path`` (gzipped if it ends in ``.gz``), atomically.

    ``chunks`` are consecutive pieces of the data in file (Fortran) order, e.g. blocks of
    volumes; the whole 4D array is never needed. The gzip stream has no file name and no time
    stamp, so the same data give the same bytes.
    """
    header = header.copy()
    header.set_data_offset(0)  # write_to then puts the data right after the header (352)
    dtype = header.get_data_dtype()
    with open_atomic(path) as stream:
        header.write_to(stream)
        for chunk in chunks:
            chunk = np.asarray(chunk, dtype=dtype)
            stream.write(memoryview(chunk.ravel(order="F")).cast("B"))
    return Path(path)


def save_image(data: NDArray, affine: NDArray, path: str | os.PathLike,
               t_r: float | None = None) -> Path:
    """Write an in-memory array as a (gzipped) NIfTI file, atomically."""
    return write_nifti(path, nifti_header(data.shape, affine, data.dtype, t_r), [data])


def _volumes(run: SimulatedRun) -> Iterator[NDArray[np.float32]]:
    """The run's volumes in blocks, each a zero-filled F-ordered (block * n_voxels) vector.

    One buffer is reused (the background stays 0, the brain voxels are overwritten): consume
    each block before asking for the next.
    """
    anat = run.anatomy
    n_volumes = run.signals.shape[0]
    buffer = np.zeros((min(_BLOCK, n_volumes), int(np.prod(anat.shape))), dtype=np.float32)
    for start in range(0, n_volumes, _BLOCK):
        block = run.signals[start:start + _BLOCK]
        out = buffer[: block.shape[0]]
        out[:, anat.index] = block
        yield out.ravel()  # volume after volume: the F order of a 4D array


# --------------------------------------------------------------------------------------------
# The fMRIPrep-like dataset
# --------------------------------------------------------------------------------------------
class SubjectFiles(NamedTuple):
    """The files of one subject's run in an fMRIPrep derivatives dataset."""

    bold: Path
    bold_json: Path
    mask: Path
    confounds: Path
    confounds_json: Path


def subject_files(root: str | os.PathLike, subject: str, task: str = "rest") -> SubjectFiles:
    """fMRIPrep's names for a subject's BOLD run, brain mask and confounds."""
    func = Path(root) / f"sub-{subject}" / "func"
    prefix = f"sub-{subject}_task-{task}"
    std = f"{prefix}_space-{SPACE}"
    return SubjectFiles(
        func / f"{std}_desc-preproc_bold.nii.gz", func / f"{std}_desc-preproc_bold.json",
        func / f"{std}_desc-brain_mask.nii.gz", func / f"{prefix}_desc-confounds_timeseries.tsv",
        func / f"{prefix}_desc-confounds_timeseries.json",
    )  # fmt: skip


def header_matches(path: Path, shape: tuple[int, ...], dtype: np.dtype,
                   t_r: float | None = None, affine: NDArray | None = None) -> bool:
    """Whether ``path`` is a NIfTI file with this shape, data type (TR, affine)."""
    try:
        header = nib.load(path).header
    except Exception:  # missing, truncated, not NIfTI: rewrite it
        return False
    return (tuple(header.get_data_shape()) == shape and header.get_data_dtype() == dtype
            and (t_r is None or bool(np.isclose(header.get_zooms()[3], t_r)))
            and (affine is None or same_grid(shape, affine, shape, header.get_best_affine())))


def _rows(path: Path) -> int:
    """The data rows of a TSV written earlier; -1 when it is missing or unreadable."""
    try:
        return len(read_table(path, name="confounds", header=True, delimiter="\t",
                              numeric=False).cells)
    except (OSError, ValueError):
        return -1


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def dataset_description() -> dict:
    """The ``dataset_description.json`` of the demo derivatives."""
    from .. import __version__

    return {
        "Name": "nipype-maskers demo: synthetic fMRIPrep-like derivatives",
        "BIDSVersion": "1.11.1",
        "DatasetType": "derivative",
        "GeneratedBy": [{
            "Name": "nipype-maskers demo_data (fMRIPrep-like)",
            "Version": str(__version__),
            "Description": "Synthetic BOLD runs with fMRIPrep's file layout, brain masks and "
                           "confounds (columns, n/a rows and JSON sidecar as fMRIPrep writes "
                           "them), computed from the simulated data.",
        }],
    }  # fmt: skip


def write_fmriprep_dataset(
    root: str | os.PathLike, *, subjects: Sequence[str] = ("01", "02"), n_volumes: int = 100,
    t_r: float = 2.0, seed: int = 0, n_dummy: int = 2, ica_aroma: bool = False,
    shape: Sequence[int] = MNI_2MM_SHAPE, affine: Any = MNI_2MM_AFFINE,
    cifti: bool = False, cifti_layout: Any = None,
) -> list[Path]:
    """Write (or complete) an fMRIPrep-like derivatives dataset of synthetic resting-state runs.

    For each subject ``XX``, in ``root/sub-XX/func/``:
    ``sub-XX_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz`` (float32, TR in the
    header) and its ``.json``, ``..._desc-brain_mask.nii.gz`` (uint8) and
    ``sub-XX_task-rest_desc-confounds_timeseries.tsv`` + ``.json`` (see
    :func:`nipype_maskers.demo.confounds.fmriprep_confounds`); plus
    ``root/dataset_description.json``.

    Every file is written to a hidden temporary name and renamed, so a killed run never leaves
    a partial file. A subject whose BOLD sidecar records the same parameters (written last) and
    whose files are all present with the expected shapes is not rewritten; a missing file is
    rewritten alone (the simulation is deterministic); changed parameters rewrite the subject.

    Parameters
    ----------
    root : str or os.PathLike
        The derivatives folder (created if needed).
    subjects : sequence of str
        Subject labels (without ``sub-``).
    n_volumes : int
        Volumes per run, non-steady-state ones included.
    t_r : float
        Repetition time (s).
    seed : int
        Seed; each subject's data depend on it and on the subject label only.
    n_dummy : int
        Non-steady-state volumes at the start (``non_steady_state_outlierXX`` columns).
    ica_aroma : bool
        Also write ``aroma_motion_XX`` columns (fMRIPrep < 23.1 with ``--use-aroma``).
    shape, affine : grid
        The grid; by default fMRIPrep's MNI152NLin2009cAsym 2 mm grid (coarser grids make
        small test datasets).
    cifti : bool
        Also write each subject's CIFTI run, ``sub-XX_task-rest_space-fsLR_den-91k_bold
        .dtseries.nii`` and its ``.json`` (:func:`nipype_maskers.demo.cifti.write_cifti_run`:
        the same volumes and head motion as the subject's confounds).
    cifti_layout : CiftiLayout, optional
        Its grayordinates (default :data:`~nipype_maskers.demo.cifti.LAYOUT_91K`).

    Returns
    -------
    list of pathlib.Path
        The BOLD files, in ``subjects`` order.
    """
    shape, affine = check_grid(shape, affine)
    if int(n_volumes) != n_volumes or not 0 <= n_dummy <= n_volumes - 3:
        raise ValueError(f"n_volumes must be an integer >= n_dummy + 3 (CompCor and the "
                         f"derivatives need 3 steady-state volumes); got n_volumes={n_volumes!r}, "
                         f"n_dummy={n_dummy!r}")  # fmt: skip
    labels = [str(s).removeprefix("sub-") for s in subjects]
    if not labels or any(not s.isalnum() for s in labels) or len(set(labels)) < len(labels):
        raise ValueError(f"subjects must be distinct alphanumeric labels; got {list(subjects)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_json(dataset_description(), root / "dataset_description.json")
    bold_files = []
    for label in labels:
        files = subject_files(root, label)
        files.bold.parent.mkdir(parents=True, exist_ok=True)
        params = {"subject": label, "seed": int(seed), "n_volumes": int(n_volumes),
                  "t_r": float(t_r), "n_dummy": int(n_dummy), "ica_aroma": bool(ica_aroma),
                  "shape": list(shape), "affine": affine.tolist(),
                  "generator_version": GENERATOR_VERSION}  # fmt: skip
        mask_json = files.mask.with_name(files.mask.name.replace(".nii.gz", ".json"))
        stale = (_read_json(files.bold_json) or {}).get("SyntheticDataParameters") != params
        if stale:  # the sidecar, written last, vouches for the files: not any more
            files.bold_json.unlink(missing_ok=True)
        bold_shape = (*shape, int(n_volumes))
        todo = {
            "bold": stale or not header_matches(files.bold, bold_shape, np.dtype(np.float32),
                                                t_r, affine),
            "mask": stale or not header_matches(files.mask, shape, np.dtype(np.uint8),
                                                affine=affine) or not mask_json.is_file(),
            "confounds": stale or _rows(files.confounds) != n_volumes
            or _read_json(files.confounds_json) is None,
        }
        bold_files.append(files.bold)
        if not (stale or any(todo.values())):
            continue
        run = simulate_run(n_volumes, t_r=t_r, seed=[int(seed), zlib.crc32(label.encode())],
                           shape=shape, affine=affine, n_dummy=n_dummy)  # fmt: skip
        if todo["bold"]:
            write_nifti(files.bold, nifti_header(bold_shape, affine, np.dtype(np.float32), t_r),
                        _volumes(run))  # fmt: skip
        if todo["mask"]:
            save_image(run.anatomy.brain.astype(np.uint8), affine, files.mask)
            write_json({"Type": "Brain", "RawSources": [files.bold.name]}, mask_json)
        if todo["confounds"]:
            table = fmriprep_confounds(run, ica_aroma=ica_aroma)
            write_text(format_confounds(table), files.confounds)
            write_json(confounds_sidecar(table), files.confounds_json)
        write_json({"RepetitionTime": float(t_r), "TaskName": "rest", "SkullStripped": True,
                    "NonSteadyStateVolumes": int(n_dummy), "SyntheticDataParameters": params},
                   files.bold_json)  # fmt: skip
    if cifti:  # after the confounds: the CIFTI run reads its motion from them
        from .cifti import LAYOUT_91K, write_cifti_run

        for label in labels:
            write_cifti_run(root, label, seed=int(seed), t_r=float(t_r),
                            layout=cifti_layout or LAYOUT_91K)
    return bold_files
