"""Interfaces for confounds and temporal cleaning: LoadConfounds, CleanSignals, CleanImage.

Output names follow the input's BIDS entities with a new ``desc`` (the suffix kept; see
:func:`nipype_maskers.bids.derived_name`):

- LoadConfounds: ``sub-01_task-rest_desc-confounds_timeseries.tsv`` gives
  ``sub-01_task-rest_desc-selected_timeseries.tsv`` and
  ``sub-01_task-rest_desc-selected_samplemask.tsv``;
- CleanSignals: ``sub-01_task-rest_atlas-X_timeseries.tsv`` gives
  ``sub-01_task-rest_atlas-X_desc-clean_timeseries.tsv`` (``.npy`` stays ``.npy``);
- CleanImage: ``sub-01_task-rest_space-MNI_desc-preproc_bold.nii.gz`` gives
  ``sub-01_task-rest_space-MNI_desc-clean_bold.nii.gz``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from nipype.interfaces.base import (
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..core.confounds.files import check_bold_file, find_confounds_file
from ..core.confounds.strategies import (
    COMPCOR_TYPES,
    ICA_AROMA_TYPES,
    MODELS,
    PRESETS,
    STRATEGIES,
    TEDANA_TYPES,
    load_confounds,
    load_confounds_strategy,
)
from ..core.io.hashing import hash_reads
from ..core.io.images import load_img, n_volumes
from ..core.io.tables import format_table
from ..core.signal.censoring import with_censored
from ..core.signal.cleaning import clean
from ..core.voxels import cleaning as image_cleaning
from ..files import atomic_path, save_nifti_volumes, write_text
from .base import (
    CensoredSpecMixin,
    CleanSpecMixin,
    MaskersInputSpec,
    ThreadsSpecMixin,
    clean_args_from,
    defined,
    header_t_r,
)
from .io import (
    MASKED_FILE_DESC,
    output_path,
    read_masked_run,
    read_matrix,
    read_text_table,
    save_npy,
    split_ext,
)

_DEFAULT_STRATEGY = ("motion", "high_pass", "wm_csf")
_STRATEGY_KEYWORDS = ("motion", "wm_csf", "global_signal", "compcor", "n_compcor", "scrub",
                      "fd_threshold", "std_dvars_threshold", "ica_aroma", "tedana", "demean")


# --------------------------------------------------------------------------------------------
# LoadConfounds
# --------------------------------------------------------------------------------------------
class _LoadConfoundsInputSpec(MaskersInputSpec):
    in_file = File(
        exists=True,
        desc="preprocessed BOLD file of fMRIPrep (e.g. *_desc-preproc_bold.nii.gz): its "
        "confounds TSV is found next to it as nilearn does (that TSV is not in the node's "
        "hash: in cached workflows prefer confounds_file)",
    )
    confounds_file = File(
        exists=True, desc="the fMRIPrep *_desc-confounds_timeseries.tsv itself (not with in_file)"
    )
    sidecar_file = File(
        exists=True,
        desc="JSON sidecar of the confounds (default: the .json next to the TSV); needed for "
        "anatomical CompCor",
    )
    strategy = traits.List(
        traits.Enum(*STRATEGIES),
        desc="nilearn's strategy components (default ['motion', 'high_pass', 'wm_csf']); "
        "not with denoise_strategy",
    )
    denoise_strategy = traits.Enum(
        *PRESETS,
        desc="a nilearn preset (load_confounds_strategy): the keywords below override the "
        "preset only where set",
    )
    motion = traits.Enum(*MODELS, desc="motion expansion (nilearn's default 'full')")
    wm_csf = traits.Enum(*MODELS, desc="WM/CSF expansion (nilearn's default 'basic')")
    global_signal = traits.Enum(
        *MODELS, desc="global signal expansion (nilearn's default 'basic')"
    )
    compcor = traits.Enum(*COMPCOR_TYPES, desc="CompCor type (default 'anat_combined')")
    n_compcor = traits.Either(
        traits.Enum("all"), traits.Int, desc="CompCor components per mask (default 'all')"
    )
    scrub = traits.Int(desc="also censor kept segments shorter than this (default 5)")
    fd_threshold = traits.Float(desc="framewise displacement threshold, mm (default 0.5)")
    std_dvars_threshold = traits.Float(desc="standardized DVARS threshold (default 1.5)")
    ica_aroma = traits.Enum(
        *ICA_AROMA_TYPES,
        desc="'full' (no regressor: in_file must be the desc-smoothAROMAnonaggr image; the "
        "default) or 'basic' (the aroma_motion_* columns)",
    )
    tedana = traits.Enum(*TEDANA_TYPES, desc="tedana components (default 'aggressive')")
    demean = traits.Bool(desc="demean the confounds over the kept volumes (default True)")


class _LoadConfoundsOutputSpec(TraitedSpec):
    out_file = File(
        desc="selected confounds, TSV with a header row (Undefined when no column is "
        "selected, e.g. strategy ['scrub'] alone)"
    )
    sample_mask = traits.List(
        traits.Int, desc="indices of the kept volumes (every volume when nothing is censored)"
    )
    sample_mask_file = File(desc="the kept indices, one per line under a 'sample_mask' header")
    columns = traits.List(traits.Str, desc="names of the selected confounds (sorted, as nilearn)")


class LoadConfounds(SimpleInterface):
    """nilearn's ``load_confounds`` / ``load_confounds_strategy`` on fMRIPrep's confounds.

    Give the BOLD file (``in_file``, its confounds are found as nilearn finds them) or the
    confounds TSV (``confounds_file``). Choose the regressors with ``strategy`` and nilearn's
    keywords, or with a ``denoise_strategy`` preset. Keywords left unset take nilearn's
    defaults (with a preset, the preset's values). The censoring (non-steady-state volumes
    and scrubbing) comes out as ``sample_mask``, to feed ``CleanImage`` / ``CleanSignals``.
    """

    input_spec = _LoadConfoundsInputSpec
    output_spec = _LoadConfoundsOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        keywords = {k: getattr(inputs, k) for k in _STRATEGY_KEYWORDS
                    if isdefined(getattr(inputs, k))}  # fmt: skip
        preset = defined(inputs.denoise_strategy)
        if preset is not None and isdefined(inputs.strategy):
            raise ValueError(
                f"strategy and denoise_strategy: give one or the other, got strategy="
                f"{list(inputs.strategy)} and denoise_strategy={preset!r}"
            )
        strategy = (PRESETS[preset]["strategy"] if preset is not None
                    else tuple(defined(inputs.strategy, _DEFAULT_STRATEGY)))  # fmt: skip
        ica_aroma = "full" if preset == "ica_aroma" else keywords.get("ica_aroma", "full")
        source, sidecar = _confounds_source(inputs, strategy, ica_aroma)
        if preset is not None:
            result = load_confounds_strategy(source, preset, sidecar=sidecar, **keywords)
        else:
            result = load_confounds(source, sidecar=sidecar, strategy=strategy, **keywords)

        n = result.confounds.shape[0]
        kept = np.arange(n) if result.sample_mask is None else result.sample_mask
        if result.columns:
            out = output_path(source, runtime.cwd, desc="selected", suffix="timeseries",
                              extension=".tsv")
            self._results["out_file"] = str(
                write_text(format_table(result.columns, result.confounds, name="out_file"), out))
        mask_out = output_path(source, runtime.cwd, desc="selected", suffix="samplemask",
                               extension=".tsv")
        text = format_table(["sample_mask"], np.asarray(kept, dtype=np.int64).reshape(-1, 1),
                            name="sample_mask_file")
        self._results["sample_mask_file"] = str(write_text(text, mask_out))
        self._results["sample_mask"] = [int(i) for i in kept]
        self._results["columns"] = list(result.columns)
        return runtime


def _confounds_source(inputs: Any, strategy: Iterable[str], ica_aroma: str
                      ) -> tuple[Path, str | None]:  # fmt: skip
    """The confounds file (and sidecar) from ``in_file`` or ``confounds_file``."""
    in_file, confounds_file = defined(inputs.in_file), defined(inputs.confounds_file)
    if (in_file is None) == (confounds_file is None):
        given = "both" if in_file is not None else "neither"
        raise ValueError(
            f"in_file and confounds_file: give exactly one of them, got {given}; in_file is "
            "the fMRIPrep BOLD file (its confounds TSV is found next to it), confounds_file "
            "the *_desc-confounds_timeseries.tsv itself"
        )
    sidecar = defined(inputs.sidecar_file)
    tedana = "tedana" in strategy
    if confounds_file is not None:
        return Path(confounds_file), sidecar
    check_bold_file(in_file, ica_aroma_full="ica_aroma" in strategy and ica_aroma == "full",
                    tedana=tedana)  # fmt: skip
    if tedana:  # tedana's tables are found from the optcom image's name
        return Path(in_file), sidecar
    found, found_sidecar = find_confounds_file(in_file)
    if sidecar is None and found_sidecar is not None:
        sidecar = str(found_sidecar)
    return found, sidecar


# --------------------------------------------------------------------------------------------
# Checks shared by CleanSignals and CleanImage (messages name the interface's inputs)
# --------------------------------------------------------------------------------------------
def _check_against_volumes(inputs: Any, args: dict[str, Any], n: int, data: str,
                           t_r_hint: str) -> None:  # fmt: skip
    """Refuse confounds, sample mask or a missing t_r that do not fit ``n`` volumes."""
    filtering = (args["filter"] == "cosine"
                 or (args["filter"] == "butterworth"
                     and (args["low_pass"] is not None or args["high_pass"] is not None)))
    if filtering and args["t_r"] is None:
        raise ValueError(
            f"t_r: filtering (filter={args['filter']!r}, low_pass={args['low_pass']}, "
            f"high_pass={args['high_pass']}) needs the repetition time in seconds; "
            f"{t_r_hint}. Set t_r."
        )
    confounds = args.get("confounds")
    if confounds is not None and confounds.shape[0] != n:
        raise ValueError(
            f"confounds_file: the confounds have {confounds.shape[0]} rows but {data} has "
            f"{n} volumes; expected one row per volume"
        )
    mask = args.get("sample_mask")
    if mask is None:
        return
    name = "sample_mask_file" if isdefined(inputs.sample_mask_file) else "sample_mask"
    bad = mask[(mask < 0) | (mask >= n)]
    if bad.size:
        raise ValueError(
            f"{name}: indices {bad[:10].tolist()} are out of range; {data} has {n} volumes, "
            f"expected kept-volume indices in [0, {n - 1}]"
        )
    values, counts = np.unique(mask, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"{name}: indices {values[counts > 1][:10].tolist()} are repeated; expected each "
            "kept volume once"
        )
    if mask.size == 0:
        raise ValueError(
            f"{name}: it is empty, so every one of the {n} volumes of {data} would be "
            f"removed; expected at least one kept-volume index in [0, {n - 1}]"
        )


# --------------------------------------------------------------------------------------------
# CleanSignals
# --------------------------------------------------------------------------------------------
class _CleanSignalsInputSpec(MaskersInputSpec, CleanSpecMixin):
    in_file = File(
        exists=True, mandatory=True,
        desc="signals, one column per signal and one row per volume: a .tsv with a header "
        "row of names (as the region maskers write it; names that are numbers, such as label "
        "values, are names too), a .csv/.txt whose header is inferred, or a .npy; n/a is NaN",
    )


class _CleanSignalsOutputSpec(TraitedSpec):
    out_file = File(
        desc="cleaned signals: .npy for a .npy, else a TSV with the input's header ('0', "
        "'1'... for a text file without one), one row per kept volume"
    )


class CleanSignals(SimpleInterface):
    """nilearn's ``signal.clean`` on a table of time series (e.g. region signals).

    There is no header to read the TR from: ``t_r`` must be set for filtering. When no
    cleaning step is asked for, the output is a copy of the input.
    """

    input_spec = _CleanSignalsInputSpec
    output_spec = _CleanSignalsOutputSpec

    def _run_interface(self, runtime):
        in_file = self.inputs.in_file
        is_npy = split_ext(in_file)[1] == ".npy"
        if is_npy:
            matrix, columns = read_matrix(in_file)[0], None
        else:  # a .tsv (a masker's) always has a header row, even of numbers (label values)
            table = read_text_table(in_file, name="in_file")
            matrix, columns = table.values, table.columns
        args, _ = clean_args_from(self.inputs)
        out = output_path(in_file, runtime.cwd, desc="clean",
                          extension=".npy" if is_npy else ".tsv")
        if args is None:
            if split_ext(in_file)[1] in (".npy", ".tsv"):
                with atomic_path(out) as tmp:
                    shutil.copyfile(in_file, tmp)
                self._results["out_file"] = str(out)
                return runtime
            cleaned = matrix
        else:
            _check_against_volumes(self.inputs, args, matrix.shape[0], "in_file",
                                   "in_file is a table, with no header to read it from")
            cleaned = clean(matrix, **args)
        if is_npy:
            save_npy(cleaned, out)
        else:
            cleaned = cleaned.reshape(cleaned.shape[0], -1)
            write_text(format_table(columns, cleaned, name="out_file"), out)
        self._results["out_file"] = str(out)
        return runtime


# --------------------------------------------------------------------------------------------
# CleanImage
# --------------------------------------------------------------------------------------------
class _CleanImageInputSpec(MaskersInputSpec, CleanSpecMixin, CensoredSpecMixin,
                           ThreadsSpecMixin):
    in_file = File(exists=True, mandatory=True, desc="4D image (NIfTI) to clean voxel-wise")
    mask_file = File(
        exists=True, mandatory=True,
        desc="binary mask on in_file's grid: the voxels cleaned (the rest is 0)",
    )
    dtype = traits.Enum("float32", "float64", usedefault=True, desc="output image dtype")
    masked_file = File(exists=True, desc=MASKED_FILE_DESC + " (unsmoothed)")


class _CleanImageOutputSpec(TraitedSpec):
    out_file = File(
        desc="cleaned 4D NIfTI on the mask's grid, 0 outside the mask, one volume per kept "
        "volume (censored='nan': per input volume, the censored ones NaN in the mask)"
    )
    t_r = traits.Float(desc="the repetition time used, in seconds (unset when unknown)")
    t_r_source = traits.Enum(
        "input t_r", "NIfTI header", "none", desc="where t_r came from"
    )
    in_file_sha256 = traits.Str(
        desc="SHA-256 (hex) of in_file's bytes, computed while it was streamed (no second read)"
    )


class CleanImage(SimpleInterface):
    """Clean every voxel's time series inside a mask, as nilearn's ``NiftiMasker(mask_img,
    detrend=..., standardize=..., low_pass=..., confounds...)`` followed by
    ``inverse_transform``, without its memory: the image is streamed into a float matrix,
    cleaned in place, and written back volume by volume. ``t_r`` is read from the header when
    not given. Volumes censored by ``sample_mask`` are dropped, or with ``censored='nan'``
    kept as NaN volumes (inside the mask) so that the output has every input volume.
    """

    input_spec = _CleanImageInputSpec
    output_spec = _CleanImageOutputSpec

    def _run_interface(self, runtime):
        img = load_img(self.inputs.in_file, name="in_file", ndim=4)
        header_tr = header_t_r(img)
        args, provenance = clean_args_from(self.inputs, header_t_r=header_tr)
        if args is not None:
            _check_against_volumes(
                self.inputs, args, n_volumes(img), "in_file",
                "none was given and in_file's header has no usable TR (pixdim[4] with a "
                "time unit of sec, msec or usec)",
            )
        masked, masked_sha256 = (read_masked_run(self.inputs.masked_file, self.inputs.in_file)
                                 if isdefined(self.inputs.masked_file) else (None, None))
        # hashed as it is streamed; the masked rows know it from their own read
        with hash_reads(self.inputs.in_file, background=self.inputs.num_threads > 1,
                        known=masked_sha256) as digest:
            cleaned = image_cleaning.clean_masked(img, self.inputs.mask_file, clean_args=args,
                                                  dtype=self.inputs.dtype,
                                                  n_threads=self.inputs.num_threads,
                                                  masked=masked)
        out = output_path(self.inputs.in_file, runtime.cwd, desc="clean", extension=".nii.gz")
        header, volumes = _output_volumes(cleaned, args, n_volumes(img), self.inputs.censored)
        self._results["out_file"] = str(save_nifti_volumes(header, volumes, out))
        self._results["in_file_sha256"] = digest.hexdigest()
        t_r = provenance.get("RepetitionTime")
        if t_r is not None:
            self._results["t_r"] = float(t_r)
        self._results["t_r_source"] = provenance.get("RepetitionTimeSource", "none")
        return runtime


def _output_volumes(cleaned: image_cleaning.CleanedSignals, args: dict[str, Any] | None,
                    n_input: int, censored: str) -> tuple[Any, Iterator[np.ndarray]]:
    """The output header and volumes: the kept ones, or with ``censored='nan'`` every input
    volume, a censored one NaN inside the mask (0 outside, like every volume)."""
    volumes = image_cleaning.unmasked_volumes(cleaned.signals, cleaned.mask)
    sample_mask = None if args is None else args.get("sample_mask")
    if censored == "drop" or sample_mask is None:
        return cleaned.header, volumes
    header = cleaned.header.copy()
    header.set_data_shape((*cleaned.mask.shape, n_input))
    censored_volume = np.zeros(cleaned.mask.shape, dtype=cleaned.signals.dtype, order="F")
    censored_volume[cleaned.mask] = np.nan
    positions = np.sort(np.asarray(sample_mask, dtype=np.intp))  # clean keeps volume order
    return header, with_censored(volumes, positions, n_input, censored_volume)
