"""Input-spec pieces shared by the interfaces, and the Undefined -> None boundary."""

from __future__ import annotations

from typing import Any

from nipype.interfaces.base import BaseInterfaceInputSpec, isdefined, traits

from .. import __version__


class MaskersInputSpec(BaseInterfaceInputSpec):
    """Every interface's inputs carry the package version, so it is part of each node's hash:
    an upgrade never reuses results cached by another version."""

    package_version = traits.Str(
        __version__, usedefault=True,
        desc="version of nipype-maskers (part of the cache key; do not set)",
    )


def defined(value: Any, default: Any = None) -> Any:
    """``value`` unless it is Undefined, else ``default``."""
    return value if isdefined(value) else default


Affine = traits.List(
    traits.List(traits.Float, minlen=3, maxlen=4), minlen=3, maxlen=4,
    desc="a 3x3 or 4x4 affine as nested lists (rows)",
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
    ensure_finite = traits.Bool(desc="epi: set non-finite values of the mean to 0")
    threshold = traits.Float(
        desc="templates: probability threshold (0.5); several runs: intersection level (0.5)"
    )


MASK_ARG_NAMES = ("border_size", "lower_cutoff", "upper_cutoff", "connected", "opening",
                  "exclude_zeros", "ensure_finite", "threshold")


def mask_args_from(inputs: Any) -> dict[str, Any]:
    """Merge ``mask_args`` with the single mask-argument traits that are set."""
    args = dict(defined(inputs.mask_args, {}))
    for name in MASK_ARG_NAMES:
        value = getattr(inputs, name)
        if isdefined(value):
            args[name] = value
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
