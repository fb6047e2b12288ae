"""fMRIPrep confound strategies: nilearn's ``load_confounds`` without pandas.

Reimplements ``nilearn.interfaces.fmriprep.load_confounds`` and
``load_confounds_strategy`` (nilearn 0.14.1) on numpy and the standard
library. Given the same fMRIPrep confounds file they return the same columns
(same order), values and ``sample_mask``; the file-reading side lives in
:mod:`nipype_maskers.core.confounds.files`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .files import (
    MissingConfoundsError,
    _as_path,
    _load_sidecar,
    find_tedana_files,
    read_confounds_text,
    read_fmriprep_table,
)

__all__ = ["Confounds", "load_confounds", "load_confounds_strategy"]

STRATEGIES = ("motion", "high_pass", "wm_csf", "global_signal", "compcor", "ica_aroma",
              "tedana", "scrub", "non_steady_state")  # fmt: skip
MODELS = ("basic", "power2", "derivatives", "full")
COMPCOR_TYPES = ("anat_combined", "anat_separated", "temporal", "temporal_anat_combined",
                 "temporal_anat_separated")  # fmt: skip
ICA_AROMA_TYPES = ("full", "basic")
TEDANA_TYPES = ("aggressive", "non-aggressive")

_MODEL_SUFFIXES = {
    "basic": (),
    "derivatives": ("_derivative1",),
    "power2": ("_power2",),
    "full": ("_derivative1", "_power2", "_derivative1_power2"),
}
_MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
_COMPCOR_PREFIXES = {
    "anat_combined": ("a",),
    "anat_separated": ("a", "w", "c"),
    "temporal": ("t",),
    "temporal_anat_combined": ("t", "a"),
    "temporal_anat_separated": ("t", "a", "w", "c"),
}
_ANAT_MASKS = {"combined": ("combined",), "separated": ("WM", "CSF")}
_OUTLIER_KEYS = ("motion_outlier", "non_steady_state")

#: nilearn's presets (``load_confounds_strategy.preset_strategies``).
PRESETS: dict[str, dict[str, Any]] = {
    "simple": {"strategy": ("high_pass", "motion", "wm_csf"), "motion": "full",
               "wm_csf": "basic", "global_signal": None, "demean": True},
    "scrubbing": {"strategy": ("high_pass", "motion", "wm_csf", "scrub"), "motion": "full",
                  "wm_csf": "full", "scrub": 5, "fd_threshold": 0.5, "std_dvars_threshold": 1.5,
                  "global_signal": None, "demean": True},
    "compcor": {"strategy": ("high_pass", "motion", "compcor"), "motion": "full",
                "n_compcor": "all", "compcor": "anat_combined", "global_signal": None,
                "demean": True},
    "ica_aroma": {"strategy": ("high_pass", "wm_csf", "ica_aroma"), "wm_csf": "basic",
                  "ica_aroma": "full", "global_signal": None, "demean": True},
}  # fmt: skip

Model = Literal["basic", "power2", "derivatives", "full"]


class Confounds(NamedTuple):
    """Confound regressors selected by a strategy.

    Attributes
    ----------
    confounds : ndarray of shape (n_volumes, k), float64
        The regressors (``k`` may be 0, e.g. for ``ica_aroma='full'`` alone).
    columns : list of str
        Their names, in nilearn's order (sorted).
    sample_mask : ndarray of int or None
        Indices of the volumes to keep, or None when nothing is censored (no
        non-steady-state column and no scrubbed volume).
    """

    confounds: NDArray[np.float64]
    columns: list[str]
    sample_mask: NDArray[np.intp] | None


# --------------------------------------------------------------------------------------------
# Parameter checks
# --------------------------------------------------------------------------------------------
def _check_choice(value: Any, accepted: Sequence[str], name: str) -> None:
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f"{name}={value!r} is not supported; accepted: {list(accepted)}")


def _check_int(value: Any, name: str, minimum: int, extra: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be {extra}an integer >= {minimum}, got {value!r}")


def _check_number(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")


def _check_params(strategy: Any, p: dict[str, Any]) -> tuple[str, ...]:
    """Validate the strategy and the parameters of its components (as nilearn)."""
    if not isinstance(strategy, (tuple, list)):
        raise TypeError(
            f"strategy must be a tuple or list of component names, got "
            f"{type(strategy).__name__} {strategy!r}; accepted components: {list(STRATEGIES)}"
        )
    for component in strategy:
        _check_choice(component, STRATEGIES, "strategy component")
    if "non_steady_state" in strategy:
        warnings.warn("Non-steady-state volumes are always detected; 'non_steady_state' in "
                      "strategy has no additional effect.", UserWarning, stacklevel=3)  # fmt: skip
    if "compcor" in strategy and "high_pass" not in strategy:
        raise ValueError(
            f"strategy {tuple(strategy)!r}: 'compcor' requires 'high_pass' in the strategy "
            "(fMRIPrep's CompCor is computed on high-pass filtered data)"
        )
    for name in ("motion", "wm_csf", "global_signal"):
        if name in strategy:
            _check_choice(p[name], MODELS, name)
    if "compcor" in strategy:
        _check_choice(p["compcor"], COMPCOR_TYPES, "compcor")
        if p["n_compcor"] != "all":
            _check_int(p["n_compcor"], "n_compcor", 1, "'all' or ")
    if "ica_aroma" in strategy:
        _check_choice(p["ica_aroma"], ICA_AROMA_TYPES, "ica_aroma")
    if "tedana" in strategy:
        _check_choice(p["tedana"], TEDANA_TYPES, "tedana")
    if "scrub" in strategy:
        _check_int(p["scrub"], "scrub", 0)
        _check_number(p["fd_threshold"], "fd_threshold")
        _check_number(p["std_dvars_threshold"], "std_dvars_threshold")
    if not isinstance(p["demean"], (bool, np.bool_)):
        raise TypeError(f"demean must be a bool, got {p['demean']!r}")
    return tuple(strategy)


# --------------------------------------------------------------------------------------------
# Components: each returns (selected columns, missing columns, missing components)
# --------------------------------------------------------------------------------------------
def _with_suffixes(bases: Sequence[str], model: str) -> list[str]:
    """Return the base names, then each with the model's suffixes (nilearn's ``add_suffix``)."""
    return list(bases) + [b + s for b in bases for s in _MODEL_SUFFIXES[model]]


def _exact(names: list[str], present: set[str], component: str):
    missing = [n for n in names if n not in present]
    if len(missing) == len(names):
        return [], [], [component]
    return names, missing, []


def _containing(key: str, columns: list[str]) -> list[str]:
    return [c for c in columns if key in c]


def _compcor_columns(meta: dict, compcor: str, n_compcor: int | str, sidecar_desc: str
                     ) -> list[str]:  # fmt: skip
    """CompCor column names from the sidecar, as nilearn's ``find_compcor``."""

    def first(cols: list[str]) -> list[str]:
        return cols if n_compcor == "all" else cols[:n_compcor]

    masks = _ANAT_MASKS.get(compcor.split("_")[-1]) if "_" in compcor else None
    out: list[str] = []
    for prefix in _COMPCOR_PREFIXES[compcor]:
        count = sum(f"{prefix}_comp_cor" in key for key in meta)
        cols = [f"{prefix}_comp_cor_{i:02d}" for i in range(count)]
        if prefix != "a":
            out += first(cols)
            continue
        for mask in masks or ():
            kept = []
            for col in cols:
                entry = meta.get(col)
                if not isinstance(entry, Mapping) or not isinstance(entry.get("Mask"), str):
                    raise ValueError(f"sidecar {sidecar_desc}: no 'Mask' entry for {col!r}; "
                                     "anatomical CompCor needs it (fMRIPrep >= 1.4)")  # fmt: skip
                if entry["Mask"] in mask:  # nilearn's substring test
                    kept.append(col)
            out += first(kept)
    return out


def _scrub_flags(fd: NDArray, dvars: NDArray, scrub: int, fd_threshold: float,
                 std_dvars_threshold: float) -> NDArray[np.bool_]:  # fmt: skip
    """Motion outliers, then every run of kept volumes shorter than ``scrub``.

    Equivalent to nilearn's ``optimize_scrub``: the leading and trailing
    segments and the segments between outliers are censored when they have
    fewer than ``scrub`` volumes (only if at least one outlier exists).
    """
    with np.errstate(invalid="ignore"):
        flags = (fd > fd_threshold) | (dvars > std_dvars_threshold)
    if scrub > 0 and flags.any():
        edges = np.diff(np.concatenate(([0], (~flags).astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        short = (ends - starts) < scrub
        delta = np.zeros(flags.size + 1, dtype=np.intp)
        np.add.at(delta, starts[short], 1)
        np.add.at(delta, ends[short], -1)
        flags |= np.cumsum(delta[:-1]) > 0
    return flags


# --------------------------------------------------------------------------------------------
# Output: censoring, first-row NaN, demeaning
# --------------------------------------------------------------------------------------------
def _nanmean_rows(values: NDArray) -> NDArray:
    """Mean of each row ignoring NaN; summation order as numpy's/pandas' nanmean."""
    nan = np.isnan(values)
    total = np.where(nan, 0.0, values).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / (values.shape[1] - nan.sum(axis=1))


def _finalize(values: NDArray, names: list[str], censored: NDArray | None, demean: bool,
              source: str) -> Confounds:  # fmt: skip
    """Build the output from (k, n_volumes) column values, as nilearn's ``prepare_output``.

    ``censored`` is None when there is no outlier regressor at all.
    """
    order = sorted(range(len(names)), key=names.__getitem__)
    values = np.ascontiguousarray(values[order], dtype=np.float64)
    names = [names[i] for i in order]
    sample_mask = None if censored is None else np.flatnonzero(~censored)
    if sample_mask is not None and sample_mask.size == 0:
        raise ValueError(
            f"{source}: every one of the {censored.size} volumes is censored (non-steady-state "
            "or scrubbed); nothing is left to analyse. Raise fd_threshold / "
            "std_dvars_threshold, lower scrub, or drop 'scrub' from the strategy."
        )
    if values.size:
        if values.shape[1] > 1:
            first = np.isnan(values[:, 0])
            values[first, 0] = values[first, 1]
        if demean:
            if sample_mask is None:  # sklearn.preprocessing.scale(with_std=False)
                values -= _nanmean_rows(values)[:, None]
                residual = _nanmean_rows(values)
                if not np.allclose(residual, 0.0):
                    values -= residual[:, None]
            else:
                values -= _nanmean_rows(np.ascontiguousarray(values[:, sample_mask]))[:, None]
    return Confounds(np.ascontiguousarray(values.T), names, sample_mask)


def _load_tedana(path: Path, tedana: str, demean: bool) -> Confounds:
    """Rejected (and accepted) ICA components from tedana's mixing and metrics tables."""
    mixing_file, metrics_file = find_tedana_files(path)
    mixing = read_confounds_text(mixing_file, name="tedana mixing table")
    metrics = read_confounds_text(metrics_file, name="tedana metrics table")
    mix_cols, met_cols = mixing.columns, metrics.columns
    if not mixing.has_header or "Component" not in met_cols or "classification" not in met_cols:
        raise ValueError(
            f"tedana tables {str(mixing_file)!r} / {str(metrics_file)!r}: expected a header "
            "of 'ICA_xx' names in the mixing table and 'Component' and 'classification' "
            f"columns in the metrics table; got metrics columns {met_cols}"
        )
    wanted = ("rejected",) if tedana == "aggressive" else ("accepted", "rejected")

    def normal(name: str) -> str:
        return re.sub(r"ICA_0*(\d+)$", lambda m: f"ICA_{int(m.group(1))}", name)

    original = {normal(c): i for i, c in enumerate(mix_cols)}
    components = zip(metrics.text("Component"), metrics.text("classification"), strict=True)
    label = {normal(c): kind for c, kind in components if kind in wanted}
    chosen = sorted(c for c in label if c in original)
    values = mixing.numbers([mix_cols[original[c]] for c in chosen])
    names = [f"{label[c]}_{mix_cols[original[c]]}" for c in chosen]
    return _finalize(values.T, names, None, demean, f"tedana table {str(mixing_file)!r}")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def load_confounds(
    confounds_file: str | os.PathLike,
    *,
    sidecar: str | os.PathLike | Mapping | None = None,
    strategy: Sequence[str] = ("motion", "high_pass", "wm_csf"),
    motion: Model = "full",
    scrub: int = 5,
    fd_threshold: float = 0.5,
    std_dvars_threshold: float = 1.5,
    wm_csf: Model = "basic",
    global_signal: Model = "basic",
    compcor: str = "anat_combined",
    n_compcor: int | Literal["all"] = "all",
    ica_aroma: Literal["full", "basic"] = "full",
    tedana: Literal["aggressive", "non-aggressive"] = "aggressive",
    demean: bool = True,
) -> Confounds:
    """Select confound regressors from an fMRIPrep confounds file by strategy.

    Same selection, values, column order and ``sample_mask`` as
    ``nilearn.interfaces.fmriprep.load_confounds`` (0.14.1) on the image whose
    confounds file this is.

    Parameters
    ----------
    confounds_file : str or os.PathLike
        fMRIPrep's ``*_desc-confounds_timeseries.tsv`` (or the older
        ``*_regressors.tsv``); see
        :func:`~nipype_maskers.core.confounds.files.find_confounds_file` to locate
        it from the BOLD file. With ``'tedana'`` in ``strategy`` only its
        folder and BIDS entities are used, to find tedana's
        ``*_desc-ICA_mixing.tsv`` and ``*_desc-tedana_metrics.tsv`` (see
        :func:`~nipype_maskers.core.confounds.files.find_tedana_files`).
    sidecar : str, os.PathLike, dict or None, default=None
        The JSON sidecar (path or parsed dict); by default the ``.json`` file
        with the same name, if it exists. Needed for ``'compcor'``.
    strategy : tuple or list of str, default=('motion', 'high_pass', 'wm_csf')
        Components among ``'motion'``, ``'high_pass'`` (cosine drift
        regressors), ``'wm_csf'``, ``'global_signal'``, ``'compcor'`` (needs
        ``'high_pass'``), ``'ica_aroma'``, ``'tedana'`` (excludes the others)
        and ``'scrub'``. Non-steady-state volumes are always censored.
    motion, wm_csf, global_signal : {'basic', 'power2', 'derivatives', 'full'}
        Expansion of the 6 motion parameters / the WM and CSF means / the
        global signal: base, + squares, + derivatives, or all four forms.
    scrub : int, default=5
        With ``'scrub'``: after censoring volumes with framewise displacement
        above ``fd_threshold`` or standardized DVARS above
        ``std_dvars_threshold``, also censor kept segments shorter than this
        (0: no segment rule).
    fd_threshold, std_dvars_threshold : float, default=0.5, 1.5
        Scrubbing thresholds (mm, standardized DVARS).
    compcor : str, default='anat_combined'
        One of ``'anat_combined'``, ``'anat_separated'``, ``'temporal'``,
        ``'temporal_anat_combined'``, ``'temporal_anat_separated'``.
    n_compcor : int or 'all', default='all'
        Number of CompCor components kept per mask.
    ica_aroma : {'full', 'basic'}, default='full'
        ``'full'``: no regressor (the caller must use fMRIPrep's
        ``desc-smoothAROMAnonaggr`` image, see
        :func:`~nipype_maskers.core.confounds.files.check_bold_file`);
        ``'basic'``: the ``aroma_motion_*`` noise components.
    tedana : {'aggressive', 'non-aggressive'}, default='aggressive'
        Rejected components, or rejected and accepted ones.
    demean : bool, default=True
        Subtract each regressor's mean over the kept volumes.

    Returns
    -------
    Confounds
        ``confounds`` (n_volumes, k), ``columns`` (sorted, as nilearn) and
        ``sample_mask`` (kept volume indices, or None).

    Raises
    ------
    TypeError
        If ``strategy`` is not a tuple or list, or a parameter has a wrong type.
    ValueError
        For an unknown component or option, ``'compcor'`` without
        ``'high_pass'``, a header-less or camel-case (fMRIPrep < 1.2) file,
        CompCor without a sidecar, columns missing from the file
        (:class:`~nipype_maskers.core.confounds.files.MissingConfoundsError`, which
        lists them all), or when every volume is censored.
    FileNotFoundError
        If the confounds file, the tedana tables or (for CompCor) the given
        sidecar do not exist.

    Notes
    -----
    As nilearn: first-row NaNs (derivatives) are replaced by the second row's
    values before demeaning; without censoring the mean is removed as
    ``sklearn.preprocessing.scale(with_std=False)`` does. Deliberate
    differences: when every volume is censored nilearn warns and returns
    all-NaN regressors (nilearn issue #4557), we raise a ValueError; with no
    component nilearn returns None, we return an (n_volumes, 0) array; a
    partially present wm_csf/global_signal/compcor set, missing scrubbing
    columns or a temporal CompCor without sidecar raise a KeyError or a
    misleading error in nilearn, a :class:`MissingConfoundsError` /
    ValueError here; a component listed twice gives its columns once.
    """
    p = {"motion": motion, "scrub": scrub, "fd_threshold": fd_threshold,
         "std_dvars_threshold": std_dvars_threshold, "wm_csf": wm_csf,
         "global_signal": global_signal, "compcor": compcor, "n_compcor": n_compcor,
         "ica_aroma": ica_aroma, "tedana": tedana, "demean": demean}  # fmt: skip
    strategy = _check_params(strategy, p)
    path = _as_path(confounds_file, "confounds_file")
    if "tedana" in strategy:
        if len(strategy) > 1:
            warnings.warn(f"strategy {strategy}: 'tedana' uses only tedana's ICA tables; the "
                          "other components are ignored.", UserWarning, stacklevel=2)  # fmt: skip
        return _load_tedana(path, tedana, bool(demean))

    table = read_fmriprep_table(path)
    columns = table.columns
    present = set(columns)
    selected = _containing("non_steady_state", columns)
    missing_cols: list[str] = []
    missing_parts: list[str] = []
    scrubbed = None
    for component in dict.fromkeys(strategy):
        found: tuple[list[str], list[str], list[str]] = ([], [], [])
        if component == "motion":
            found = _exact(_with_suffixes(_MOTION, motion), present, "motion")
        elif component in ("wm_csf", "global_signal"):
            bases = ("csf", "white_matter") if component == "wm_csf" else ("global_signal",)
            found = _exact(_with_suffixes(bases, p[component]), present, component)
        elif component == "high_pass":
            found = (_containing("cosine", columns), [], [])
        elif component == "ica_aroma" and ica_aroma == "basic":
            aroma = _containing("aroma", columns)
            found = (aroma, [], [] if aroma else ["ica_aroma"])
        elif component == "compcor":
            meta = _load_sidecar(sidecar, path)
            if meta is None:
                raise ValueError(
                    f"compcor needs the confounds JSON sidecar (fMRIPrep >= 1.4): none found "
                    f"next to {str(path)!r}; pass sidecar= explicitly"
                )
            desc = "dict" if isinstance(sidecar, Mapping) else repr(str(sidecar or path))
            cols = _compcor_columns(meta, compcor, n_compcor, desc)
            found = _exact(cols, present, "compcor") if cols else ([], [], ["compcor"])
        elif component == "scrub":
            need = ["framewise_displacement", "std_dvars"]
            absent = [c for c in need if c not in present]
            if absent:
                found = ([], absent, [])
            else:
                fd, dvars = table.numbers(need).T
                scrubbed = _scrub_flags(fd, dvars, scrub, fd_threshold, std_dvars_threshold)
        selected += found[0]
        missing_cols += found[1]
        missing_parts += found[2]
    if missing_cols or missing_parts:
        raise MissingConfoundsError(
            f"confounds file {str(path)!r} lacks what strategy {strategy} needs: missing "
            f"columns {missing_cols}, no columns at all for components {missing_parts}. Try a "
            "different strategy or check the fMRIPrep version.",
            missing_cols, missing_parts,
        )  # fmt: skip

    selected = list(dict.fromkeys(selected))
    values = table.numbers(selected)
    is_outlier = np.array([any(k in c for k in _OUTLIER_KEYS) for c in selected], dtype=bool)
    censored = None
    if is_outlier.any():
        censored = np.any(np.nan_to_num(values[:, is_outlier]) != 0, axis=1)
    if scrubbed is not None and scrubbed.any():
        censored = scrubbed if censored is None else censored | scrubbed
    names = [c for c, out in zip(selected, is_outlier, strict=True) if not out]
    return _finalize(values[:, ~is_outlier].T, names, censored, bool(demean),
                     f"confounds file {str(path)!r}")  # fmt: skip


def load_confounds_strategy(
    confounds_file: str | os.PathLike, denoise_strategy: str = "simple", **kwargs: Any
) -> Confounds:
    """Load confounds with one of nilearn's preset denoising strategies.

    Parameters
    ----------
    confounds_file : str or os.PathLike
        See :func:`load_confounds`.
    denoise_strategy : {'simple', 'scrubbing', 'compcor', 'ica_aroma'}
        The preset (nilearn's ``preset_strategies``):

        - ``'simple'``: high_pass, motion='full', wm_csf='basic';
        - ``'scrubbing'``: high_pass, motion='full', wm_csf='full', scrub=5,
          fd_threshold=0.5, std_dvars_threshold=1.5 (nilearn's code; its
          docstring table still says 0.2 and 3);
        - ``'compcor'``: high_pass, motion='full', compcor='anat_combined',
          n_compcor='all';
        - ``'ica_aroma'``: high_pass, wm_csf='basic', ica_aroma='full'.
    **kwargs
        Overrides of the preset's own parameters (``ica_aroma`` excepted) plus
        ``global_signal`` (a model name adds the global signal to the
        strategy) and ``demean``; None keeps the preset value. ``sidecar`` is
        passed to :func:`load_confounds`. Other keywords are ignored with a
        UserWarning that lists the accepted ones, as in nilearn.

    Returns
    -------
    Confounds
        As :func:`load_confounds`.

    Raises
    ------
    ValueError
        For an unknown ``denoise_strategy``, and as :func:`load_confounds`.
    """
    if not isinstance(denoise_strategy, str) or denoise_strategy not in PRESETS:
        raise ValueError(f"denoise_strategy={denoise_strategy!r} is not supported; accepted: "
                         f"{list(PRESETS)}")  # fmt: skip
    sidecar = kwargs.pop("sidecar", None)
    params = dict(PRESETS[denoise_strategy])
    accepted = [k for k in params if k not in ("strategy", "ica_aroma")]
    for key in accepted:
        value = kwargs.pop(key, None)
        if value is not None:
            params[key] = value
        if key == "global_signal":
            if isinstance(value, str):
                params["strategy"] = (*params["strategy"], "global_signal")
            else:
                params.pop("global_signal")
    if kwargs:
        warnings.warn(f"parameters {sorted(kwargs)} are not used by denoise_strategy="
                      f"{denoise_strategy!r} and are ignored; accepted: {accepted}",
                      UserWarning, stacklevel=2)  # fmt: skip
    return load_confounds(confounds_file, sidecar=sidecar, **params)

