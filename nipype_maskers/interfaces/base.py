"""Input-spec pieces shared by the interfaces, and the Undefined -> None boundary."""

from __future__ import annotations

from typing import Any

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    isdefined,
    traits,
)

from .. import __version__


class MaskersInputSpec(BaseInterfaceInputSpec):
    """Every interface's inputs carry the package version, so it is part of each node's hash:
    an upgrade never reuses results cached by another version."""

    package_version = traits.Str(
        __version__, usedefault=True,
        desc="version of nipype-maskers (part of the cache key; do not set)",
    )


class ThreadsSpecMixin(traits.HasTraits):
    """``num_threads``: the CPUs a node may keep busy (NiPreps' name; not part of the hash,
    so changing it reuses cached results). A Nipype node's ``n_procs`` sets it."""

    num_threads = traits.Int(
        1, usedefault=True, nohash=True,
        desc="threads that read, resample and smooth volumes side by side (and BLAS threads)",
    )


class CensoredSpecMixin(traits.HasTraits):
    """``censored``: what the output holds for the volumes ``sample_mask`` censors."""

    censored = traits.Enum(
        "drop", "nan", usedefault=True,
        desc="'drop': the output holds the kept volumes only (nilearn); 'nan': one output "
        "row (or volume) per input volume, NaN for the censored ones, so that onsets stay "
        "aligned. The cleaning excludes the censored volumes either way",
    )


def defined(value: Any, default: Any = None) -> Any:
    """``value`` unless it is Undefined, else ``default``."""
    return value if isdefined(value) else default


Affine = traits.List(
    traits.List(traits.Float, minlen=3, maxlen=4), minlen=3, maxlen=4,
    desc="a 3x3 or 4x4 affine as nested lists (rows)",
)


class VolumeSelection(traits.TraitType):
    """A ``volumes`` input: an index, a 'start:stop[:step]' string, or a list (or 1D numpy
    array) of indices or of booleans, as ``nilearn.image.index_img`` reads them.

    A value is stored as plain Python values (an array becomes a list, so it hashes by
    content), and booleans stay booleans: ``traits.List(traits.Int)`` would turn
    ``[False, True]`` into the indices ``[0, 1]``, where numpy (hence nilearn) reads a
    selection mask with one entry per volume.
    """

    info_text = ("an index, a list or 1D array of indices or of booleans (one per volume), or "
                 "'start:stop[:step]'")

    def validate(self, obj: Any, name: str, value: Any) -> Any:
        """Accept the forms above; anything else is a TraitError naming the input."""
        import numpy as np

        if isinstance(value, str):
            return value
        if isinstance(value, (bool, np.bool_)):
            return bool(value)  # refused by the core with its message (a mask needs a list)
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (list, tuple, np.ndarray)):
            array = np.asarray(value)
            if array.ndim == 1 and array.dtype == bool:
                return [bool(v) for v in array]
            if array.ndim == 1 and (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
                return [int(v) for v in array]
        self.error(obj, name, value)


def parse_volumes(value: Any) -> Any:
    """A ``volumes`` input for the core: 'start:stop[:step]' becomes a slice, 'i' an int;
    ints and lists (of indices or booleans) pass through, None stays None."""
    if not isinstance(value, str):
        return value
    parts = value.split(":")
    try:
        if len(parts) == 1:
            return int(parts[0])
        if len(parts) <= 3:
            return slice(*[int(p) if p.strip() else None for p in parts])
    except (TypeError, ValueError):
        pass
    raise ValueError(
        f"volumes: expected an index, a list, or 'start:stop[:step]', got {value!r}"
    )


class MaskArgsSpecMixin(traits.HasTraits):
    """nilearn's ``mask_strategy`` / ``mask_args``, one trait each (Undefined = default)."""

    mask_strategy = traits.Enum(
        "background", "epi", "whole-brain-template", "gm-template", "wm-template",
        usedefault=True, desc="how to compute the mask when none is given (nilearn's names)",
    )
    mask_args = traits.Dict(
        traits.Str, traits.Any,
        desc="nilearn's mask_args dict; the single traits below take precedence",
    )
    border_size = traits.Int(desc="background: border width (voxels) giving the background value")
    lower_cutoff = traits.Float(desc="epi: lower fraction of the histogram to search (0.2)")
    upper_cutoff = traits.Float(desc="epi: upper fraction of the histogram to search (0.85)")
    connected = traits.Bool(desc="keep only the largest connected component")
    opening = traits.Either(
        traits.Bool, traits.Int, desc="morphological opening iterations (False for none)"
    )
    exclude_zeros = traits.Bool(desc="epi: ignore zeros in the histogram")
    # not ``ensure_finite``: that name is the cleaning option (CleanSpecMixin, nilearn's
    # clean_args), and one input spec may hold both mixins
    mask_ensure_finite = traits.Bool(
        desc="epi: set non-finite values of the mean to 0 (compute_epi_mask's ensure_finite; "
        "also mask_args={'ensure_finite': ...})"
    )
    threshold = traits.Float(
        desc="templates: probability threshold (0.5); several runs: intersection level (0.5)"
    )


#: The single mask-argument traits and the keyword of nilearn's mask functions each sets.
MASK_ARG_TRAITS = {"border_size": "border_size", "lower_cutoff": "lower_cutoff",
                   "upper_cutoff": "upper_cutoff", "connected": "connected",
                   "opening": "opening", "exclude_zeros": "exclude_zeros",
                   "mask_ensure_finite": "ensure_finite", "threshold": "threshold"}


def mask_args_from(inputs: Any) -> dict[str, Any]:
    """Merge ``mask_args`` with the single mask-argument traits that are set (they win)."""
    args = dict(defined(inputs.mask_args, {}))
    for trait_name, keyword in MASK_ARG_TRAITS.items():
        value = getattr(inputs, trait_name)
        if isdefined(value):
            args[keyword] = value
    return args


class GridSpecMixin(traits.HasTraits):
    """nilearn's ``target_affine`` / ``target_shape``."""

    target_affine = Affine
    target_shape = traits.List(
        traits.Int, minlen=3, maxlen=3, desc="output grid shape; needs a 4x4 target_affine"
    )


def grid_from(inputs: Any) -> tuple[Any, Any]:
    """(target_affine, target_shape) as numpy-ready values or None."""
    import numpy as np

    affine = defined(inputs.target_affine)
    shape = defined(inputs.target_shape)
    return (None if affine is None else np.asarray(affine, dtype=np.float64),
            None if shape is None else tuple(shape))


class RegionExtractionSpecMixin(traits.HasTraits):
    """The volume and CIFTI region maskers' shared choices: volumes, precision, empty regions.

    ``min_coverage`` stays with each spec: its text names the unit (voxels, grayordinates).
    """

    volumes = VolumeSelection(
        desc="volumes to use, as nilearn.image.index_img: an index, a list of indices, a "
        "list of booleans (a mask, one per volume), or 'start:stop[:step]'",
    )
    dtype = traits.Enum("float32", "float64", usedefault=True,
                        desc="precision of the extracted signals")
    drop_empty = traits.Bool(
        False, usedefault=True,
        desc="drop empty regions' columns, as nilearn does (default: keep them as n/a, so "
        "every subject gets the same columns)",
    )


class CleanSpecMixin(traits.HasTraits):
    """nilearn's cleaning parameters, with the maskers' defaults (nothing done by default)."""

    detrend = traits.Bool(False, usedefault=True, desc="remove linear trends (and the mean)")
    standardize = traits.Enum(
        None, "zscore_sample", "zscore", "psc", usedefault=True,
        desc="'zscore_sample' (ddof=1), 'zscore' (ddof=0), 'psc' (percent signal change) or "
        "None",
    )
    standardize_confounds = traits.Bool(
        True, usedefault=True, desc="z-score the confounds before regressing them out"
    )
    low_pass = traits.Float(desc="low-pass cutoff in Hz (needs t_r)")
    high_pass = traits.Float(desc="high-pass cutoff in Hz (needs t_r)")
    t_r = traits.Float(desc="repetition time in seconds (images: read from the header if unset)")
    filter = traits.Enum(
        "butterworth", "cosine", usedefault=True,
        desc="'butterworth' (band-pass on signals and confounds) or 'cosine' (DCT drift "
        "regressors, high-pass only)",
    )
    butterworth_order = traits.Int(5, usedefault=True, desc="order of the Butterworth filter")
    extrapolate = traits.Bool(
        False, usedefault=True,
        desc="extrapolate censored volumes at the run's edges instead of dropping them",
    )
    ensure_finite = traits.Bool(
        False, usedefault=True, desc="set non-finite signal values to 0 before cleaning"
    )
    confounds_file = InputMultiObject(
        File(exists=True),
        desc="confounds table(s) (TSV/CSV/TXT, header optional); several are stacked",
    )
    confounds_columns = traits.List(
        traits.Str, desc="use only these columns of the confounds tables (by header name)"
    )
    sample_mask = traits.List(
        traits.Int, desc="indices of the volumes to keep (censoring); all when unset. Like "
        "confounds and runs, they count the input's volumes, also when `volumes` selects some"
    )
    sample_mask_file = File(
        exists=True, desc="sample mask as a file: one kept index per line (LoadConfounds)"
    )
    runs = traits.List(traits.Any, desc="a run label per volume: each run cleaned on its own")


CLEAN_OPTION_NAMES = ("detrend", "standardize", "standardize_confounds", "low_pass",
                      "high_pass", "filter", "butterworth_order", "extrapolate",
                      "ensure_finite")


def read_sample_mask(path: str, *, name: str = "sample_mask_file") -> list[int]:
    """A sample mask file: the kept volume indices, one per line, under an optional header.

    LoadConfounds writes it as a one-column TSV headed ``sample_mask``; a user file of one
    column (or one row) of indices is read too (header inferred, delimiter sniffed).
    """
    import numpy as np

    from ..core.io.tables import read_table

    table = read_table(path, name=name, header="infer")
    if table.values.shape[0] == 1 and not table.has_header:  # one row of indices ("0 1 2 5")
        indices = table.values[0]
        where = [(table.lines[0], cell) for cell in table.cells[0]]
    elif table.values.shape[1] == 1:
        indices = table.values[:, 0]
        where = [(line, row[0]) for line, row in zip(table.lines, table.cells, strict=True)]
    else:
        raise ValueError(f"{table.source}: {table.values.shape[1]} columns; expected one "
                         "column of kept-volume indices")
    bad = ~np.isfinite(indices) | (indices != np.round(indices))
    if bad.any():
        line, cell = where[int(np.flatnonzero(bad)[0])]
        raise ValueError(f"{table.source}: line {line}: {cell!r} is not a volume index; "
                         "expected integer volume indices")
    return [int(i) for i in indices]


def clean_args_from(inputs: Any, *, header_t_r: float | None = None
                    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The keyword arguments for :func:`~.signal.cleaning.clean` and their provenance.

    Returns ``(None, provenance)`` when no cleaning step is requested, so the caller skips
    cleaning altogether (nilearn's maskers then return the signals unchanged). ``t_r``
    comes from the input when set, else from ``header_t_r`` (the image header).
    """
    import numpy as np

    from ..core.confounds.files import read_confounds_text

    args: dict[str, Any] = {name: getattr(inputs, name) for name in CLEAN_OPTION_NAMES}
    args["low_pass"] = defined(args["low_pass"])
    args["high_pass"] = defined(args["high_pass"])
    provenance: dict[str, Any] = {}
    if isdefined(inputs.t_r):
        args["t_r"], provenance["RepetitionTimeSource"] = inputs.t_r, "input t_r"
    elif header_t_r is not None:
        args["t_r"], provenance["RepetitionTimeSource"] = header_t_r, "NIfTI header"
    else:
        args["t_r"] = None
    provenance["RepetitionTime"] = args["t_r"]
    confounds, columns = [], []
    wanted = defined(inputs.confounds_columns)
    for path in defined(inputs.confounds_file, []):
        table = read_confounds_text(path, name="confounds_file")
        unknown = [c for c in (wanted or []) if c not in table.columns]
        if unknown:
            raise ValueError(f"confounds_columns: columns {unknown} not found in "
                             f"{table.source}; available columns: {table.columns}")
        names = list(table.columns) if wanted is None else list(wanted)
        data = table.numbers(names)
        if confounds and data.shape[0] != confounds[0].shape[0]:
            raise ValueError(
                f"{table.source}: {data.shape[0]} rows, the first table "
                f"{confounds[0].shape[0]}; expected stacked tables of one row per volume each"
            )
        confounds.append(data)
        columns.extend(names)
    if confounds:
        args["confounds"] = np.hstack(confounds)
        provenance["Confounds"] = columns
    if isdefined(inputs.sample_mask) and isdefined(inputs.sample_mask_file):
        raise ValueError("sample_mask and sample_mask_file: give one or the other, not both")
    sample_mask = defined(inputs.sample_mask)
    if isdefined(inputs.sample_mask_file):
        sample_mask = read_sample_mask(inputs.sample_mask_file)
    if sample_mask is not None:
        args["sample_mask"] = np.asarray(sample_mask, dtype=np.intp)
        provenance["SampleMask"] = [int(i) for i in sample_mask]
    if isdefined(inputs.runs) and inputs.runs:
        args["runs"] = np.asarray(inputs.runs)
    active = (args["detrend"] or args["standardize"] is not None or confounds
              or args["low_pass"] is not None or args["high_pass"] is not None
              or sample_mask is not None or args["ensure_finite"])
    if not active:
        return None, provenance
    if args["filter"] == "butterworth" and args["low_pass"] is None and args["high_pass"] is None:
        args["filter"] = None
    provenance.update({k: args[k] for k in CLEAN_OPTION_NAMES})
    return args, provenance


def header_t_r(img: Any) -> float | None:
    """The TR in seconds from a NIfTI header, when the time unit says what pixdim[4] means."""
    try:
        _, time_unit = img.header.get_xyzt_units()
        value = float(img.header["pixdim"][4])
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return None
    scale = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}.get(time_unit)
    if scale is None or not value > 0 or len(img.shape) < 4:
        return None
    return value * scale
