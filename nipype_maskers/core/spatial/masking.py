"""Brain masks: computing them (nilearn's five strategies), checking them, and unmasking.

The mean image behind the ``background`` and ``epi`` strategies is computed in one streaming
pass over the volumes (:func:`mean_volume`), so a mask of a 4D file never needs the 4D array.
The template strategies need only the image's grid: no data is read at all.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import binary_dilation, binary_erosion, label

from ...data import MNI152_TEMPLATES
from ..io.images import (
    ImageLike,
    finite_range,
    load_img,
    n_volumes,
    natural_dtype,
    new_img_like,
    same_grid,
)
from ..io.streaming import check_threads
from ..io.volumes import iter_volumes
from .smoothing import fwhm_to_sigma, smooth_volume

MaskStrategy = Literal[
    "background", "epi", "whole-brain-template", "gm-template", "wm-template"
]
MASK_STRATEGIES: tuple[str, ...] = (
    "background",
    "epi",
    "whole-brain-template",
    "gm-template",
    "wm-template",
)


class MaskError(ValueError):
    """A mask that cannot be used: empty, not binary, or on another grid than the data."""


class MeanVolume(NamedTuple):
    """The temporal mean of an image and the range of its data (for resampling's clip)."""

    mean: NDArray
    data_min: float
    data_max: float


def mean_volume(
    img: ImageLike, volumes: NDArray[np.intp] | None = None, *, name: str = "in_file",
    n_threads: int = 2,
) -> MeanVolume:
    """Temporal mean of a 3D/4D image, read one volume at a time.

    The mean is accumulated in the dtype numpy's ``mean`` would use on the data nibabel
    returns (float32 for float32 data, float64 otherwise), volume after volume: the same
    sums in the same order as ``nilearn.image.compute_mean``, hence bit-identical means.
    A 3D image is returned as is (copied), in its own dtype, as nilearn does.
    NaN propagates to the mean, as in nilearn; the data range ignores it. ``n_threads`` > 1
    decompresses the next volume while this one is added
    (:func:`~nipype_maskers.core.io.volumes.iter_volumes`).
    """
    img = load_img(img, name=name)
    dtype = natural_dtype(img)
    volumes = np.arange(n_volumes(img)) if volumes is None else np.asarray(volumes)
    if len(img.shape) == 3 or (img.shape[3] == 1 and volumes.size == 1):
        (_, volume), = iter_volumes(img, [0], dtype=dtype, name=name)
        volume = np.array(volume, order="F")
        return MeanVolume(volume, *finite_range(volume))
    accumulate = np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)
    total = np.zeros(img.shape[:3], dtype=accumulate, order="F")
    low, high = np.inf, -np.inf
    for positions, volume in iter_volumes(img, volumes, dtype=dtype, name=name,
                                          n_threads=n_threads):
        for _ in positions:
            total += volume
        vmin, vmax = finite_range(volume)
        low, high = min(low, vmin), max(high, vmax)
    total /= accumulate.type(volumes.size)
    return MeanVolume(total, low, high)


def largest_connected_component(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The largest 6-connected component of a boolean volume (the first one on ties)."""
    labels, n_labels = label(mask)
    if not n_labels:
        return np.zeros(mask.shape, dtype=bool)
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return labels == counts.argmax()


def post_process_mask(
    mask: NDArray[np.bool_], *, opening: int | bool = 2, connected: bool = True,
    empty_hint: str = "",
) -> NDArray[np.bool_]:
    """Opening and largest-component selection, exactly as nilearn's ``_post_process_mask``."""
    opening = int(opening)
    if opening:
        mask = binary_erosion(mask, iterations=opening)
    if not mask.any():
        warnings.warn(f"Computed an empty mask. {empty_hint}", UserWarning, stacklevel=3)
    elif connected:
        mask = largest_connected_component(mask)
    if opening:
        mask = binary_dilation(mask, iterations=2 * opening)
        mask = binary_erosion(mask, iterations=opening)
    return np.asarray(mask, dtype=bool)


def _resampled_mean(mean: MeanVolume, affine, target_affine, target_shape):
    if target_affine is None and target_shape is None:
        return mean.mean, np.asarray(affine, dtype=np.float64)
    from .resampling import resample_img

    resampled = resample_img(
        new_img_like(None, mean.mean, affine), target_affine=target_affine,
        target_shape=target_shape, interpolation="continuous",
    )
    return np.asanyarray(resampled.dataobj), resampled.affine


def border_values(data: NDArray, border_size: int) -> NDArray:
    """The values within ``border_size`` voxels of the six faces (with repeats, as nilearn)."""
    b = int(border_size)
    return np.concatenate([
        data[:b].ravel(), data[-b:].ravel(),
        data[:, :b].ravel(), data[:, -b:].ravel(),
        data[:, :, :b].ravel(), data[:, :, -b:].ravel(),
    ])


def background_mask_from_mean(
    mean: NDArray, *, border_size: int = 2, connected: bool = False, opening: int | bool = False
) -> NDArray[np.bool_]:
    """Voxels that differ from the background value (the median of the border).

    When the border holds NaN, NaN is the background (SPM's convention), as in nilearn.
    """
    border = border_values(mean, border_size)
    if np.isnan(border).any():
        mask = ~np.isnan(mean)
    else:
        mask = mean != np.median(border)
    return post_process_mask(
        mask, opening=opening, connected=connected,
        empty_hint="Are you sure that input images have a homogeneous background?",
    )


def epi_mask_from_mean(
    mean: NDArray, *, lower_cutoff: float = 0.2, upper_cutoff: float = 0.85,
    connected: bool = True, opening: int | bool = 2, exclude_zeros: bool = False,
    ensure_finite: bool = True,
) -> NDArray[np.bool_]:
    """Threshold the mean at the largest gap of its histogram (T. Nichols' heuristic).

    The mean is first smoothed by one voxel FWHM when ``opening`` is set, as nilearn does.
    """
    mean, threshold = epi_threshold(mean, lower_cutoff=lower_cutoff, upper_cutoff=upper_cutoff,
                                    opening=opening, exclude_zeros=exclude_zeros,
                                    ensure_finite=ensure_finite)
    return post_process_mask(
        mean >= threshold, opening=opening, connected=connected,
        empty_hint="Are you sure that input data are EPI images, not detrended?",
    )


def epi_threshold(
    mean: NDArray, *, lower_cutoff: float = 0.2, upper_cutoff: float = 0.85,
    opening: int | bool = 2, exclude_zeros: bool = False, ensure_finite: bool = True,
) -> tuple[NDArray, float]:
    """:func:`epi_mask_from_mean`'s threshold, and the mean it applies to (a smoothed copy
    when ``opening``)."""
    if not 0 <= lower_cutoff < upper_cutoff <= 1:
        raise ValueError(
            f"mask_args: lower_cutoff ({lower_cutoff}) and upper_cutoff ({upper_cutoff}) must "
            "satisfy 0 <= lower_cutoff < upper_cutoff <= 1"
        )
    mean = np.array(mean, order="F")
    if opening:
        nan_mask = np.isnan(mean) if mean.dtype.kind == "f" else None
        if mean.dtype.kind != "f":
            mean = mean.astype(np.float64 if mean.dtype.itemsize >= 8 else np.float32)
        mean[~np.isfinite(mean)] = 0
        smooth_volume(mean, fwhm_to_sigma(np.ones(3), np.eye(4)))
        if nan_mask is not None:
            mean[nan_mask] = np.nan
    if ensure_finite and mean.dtype.kind == "f":
        mean[~np.isfinite(mean)] = 0
    values = np.sort(mean, axis=None)
    if exclude_zeros:
        values = values[values != 0]
    if values.size < 2:
        raise MaskError("in_file: too few non-zero voxels to compute an EPI mask")
    lower = int(np.floor(lower_cutoff * values.size))
    upper = min(int(np.floor(upper_cutoff * values.size)), values.size - 1)
    if upper <= lower:
        raise MaskError(
            f"mask_args: lower_cutoff={lower_cutoff} and upper_cutoff={upper_cutoff} leave no "
            f"histogram range among {values.size} voxels"
        )
    gap = (values[lower + 1: upper + 1] - values[lower:upper]).argmax()
    return mean, 0.5 * (values[gap + lower] + values[gap + lower + 1])


def brain_mask_for_grid(
    shape: Sequence[int], affine: NDArray, *, threshold: float = 0.5, connected: bool = True,
    opening: int | bool = 2, mask_type: Literal["whole-brain", "gm", "wm"] = "whole-brain",
) -> NDArray[np.bool_]:
    """The MNI152 template (T1, GM or WM), rescaled to [0, 1], on a grid, thresholded.

    nilearn's ``compute_brain_mask``: the 1 mm template is resampled (cubic, no clip) onto the
    grid; only the grid matters, not the data.
    """
    if mask_type not in MNI152_TEMPLATES:
        raise ValueError(
            f"mask_type: unknown {mask_type!r}; accepted: {', '.join(MNI152_TEMPLATES)}"
        )
    from .resampling import resample_to_img

    template = nib.load(MNI152_TEMPLATES[mask_type])
    data = np.asanyarray(template.dataobj).astype(np.float32)
    data /= data.max()
    target = new_img_like(None, np.broadcast_to(np.int8(0), tuple(shape[:3])), affine)
    resampled = resample_to_img(
        new_img_like(None, data, template.affine), target, interpolation="continuous",
        clip=False,
    )
    return post_process_mask(
        np.asanyarray(resampled.dataobj) >= threshold, opening=opening, connected=connected,
        empty_hint=f"{mask_type} mask is empty: lower the threshold or check the input's field "
        "of view",
    )


#: Each strategy's mask_args and their defaults: single image, then several runs (nilearn's
#: compute_multi_* functions default to opening=2, connected=True for the background too).
_STRATEGY_ARGS: dict[str, dict[str, Any]] = {
    "background": {"border_size": 2, "connected": False, "opening": False},
    "epi": {"lower_cutoff": 0.2, "upper_cutoff": 0.85, "connected": True, "opening": 2,
            "exclude_zeros": False, "ensure_finite": True},
    "template": {"threshold": 0.5, "connected": True, "opening": 2},
}
_MULTI_DEFAULTS: dict[str, dict[str, Any]] = {
    "background": {"connected": True, "opening": 2},
}


def check_mask_strategy(strategy: str) -> str:
    """Validate a mask strategy name, listing the accepted ones when it is unknown."""
    if strategy not in MASK_STRATEGIES:
        raise ValueError(
            f"mask_strategy: unknown {strategy!r}; accepted: {', '.join(MASK_STRATEGIES)}"
        )
    return strategy


def strategy_args(strategy: str, mask_args: dict[str, Any] | None, *, multi: bool = False
                  ) -> dict[str, Any]:
    """The full keyword set for a strategy: defaults overridden by ``mask_args``.

    Unknown keys raise (nilearn drops them with a warning, which hides typos).
    """
    family = "template" if strategy.endswith("-template") else check_mask_strategy(strategy)
    args = dict(_STRATEGY_ARGS[family])
    if multi:
        args.update(_MULTI_DEFAULTS.get(family, {}))
    unknown = set(mask_args or {}) - set(args)
    if unknown:
        raise ValueError(
            f"mask_args: {', '.join(sorted(unknown))} not used by mask_strategy={strategy!r}; "
            f"accepted: {', '.join(args)}"
        )
    args.update({k: v for k, v in (mask_args or {}).items() if v is not None})
    return args


def compute_mask(
    img: ImageLike, mask_strategy: MaskStrategy = "background", *,
    mask_args: dict[str, Any] | None = None, target_affine: NDArray | None = None,
    target_shape: Sequence[int] | None = None, name: str = "in_file",
    volumes: NDArray[np.intp] | None = None, mean: MeanVolume | None = None,
    n_threads: int | None = None,
) -> nib.Nifti1Image:
    """Compute a brain mask from one 3D/4D image with one of nilearn's strategies.

    Parameters
    ----------
    img : path or image
        The data (3D or 4D).
    mask_strategy : {'background', 'epi', 'whole-brain-template', 'gm-template', 'wm-template'}
        As ``NiftiMasker(mask_strategy=...)``.
    mask_args : dict, optional
        The strategy's options (``border_size``, ``lower_cutoff``, ``upper_cutoff``,
        ``connected``, ``opening``, ``exclude_zeros``, ``ensure_finite``, ``threshold``).
    target_affine, target_shape : optional
        Compute the mask on this grid: the mean image is resampled (cubic) before
        thresholding, as ``compute_epi_mask(target_affine=...)`` does.
    volumes : array of int, optional
        Compute the mask from these volumes only (all by default).
    mean : MeanVolume, optional
        A mean already computed by :func:`mean_volume` (saves a pass over the data).
    n_threads : int, optional
        1: read in the calling thread only; more (None: :func:`~.io.streaming.default_threads`):
        decompress ahead in a thread.

    Returns
    -------
    nibabel.Nifti1Image
        An int8 mask (0/1). Empty masks raise :class:`MaskError`.
    """
    args = strategy_args(mask_strategy, mask_args)
    img = load_img(img, name=name)
    if mask_strategy.endswith("-template"):
        shape, affine = img.shape[:3], img.affine
        if target_affine is not None or target_shape is not None:
            from .resampling import resolve_target_grid

            affine, shape = resolve_target_grid(shape, affine, target_affine, target_shape)
        mask = brain_mask_for_grid(
            shape, affine, mask_type=mask_strategy[: -len("-template")], **args
        )
    else:
        mean = mean if mean is not None else mean_volume(
            img, volumes, name=name, n_threads=check_threads(n_threads))
        data, affine = _resampled_mean(mean, img.affine, target_affine, target_shape)
        if mask_strategy == "epi":
            mask = epi_mask_from_mean(data, **args)
        else:
            mask = background_mask_from_mean(data, **args)
    if not mask.any():
        raise MaskError(
            f"{name}: mask_strategy={mask_strategy!r} computed an empty mask; check the data "
            "(a homogeneous background for 'background', a non-detrended EPI for 'epi', an "
            "MNI-space field of view for the templates) or adjust mask_args"
        )
    return new_img_like(None, mask.astype(np.int8), affine)


def intersect_masks(
    masks: Sequence[ImageLike], *, threshold: float = 0.5, connected: bool = True
) -> nib.Nifti1Image:
    """Keep the voxels present in more than ``threshold`` of the masks (nilearn's rule).

    threshold=1 is the intersection, 0 the union; the largest connected component is kept
    when ``connected``.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold: expected a value in [0, 1], got {threshold}")
    if len(masks) == 0:
        raise ValueError("masks: no mask to intersect")
    loaded = [load_mask(m, name=f"masks[{i}]", allow_empty=True) for i, m in enumerate(masks)]
    shape, affine = loaded[0][0].shape, loaded[0][1]
    for i, (m, a) in enumerate(loaded[1:], start=1):
        if not same_grid(m.shape, a, shape, affine):
            raise MaskError(
                f"masks[{i}]: grid {m.shape} differs from masks[0] {shape}; resample the masks "
                "onto one grid first"
            )
    counts = np.sum([m for m, _ in loaded], axis=0, dtype=np.int64)
    group = counts > min(threshold, 1 - 1e-7) * len(loaded)
    if connected and group.any():
        group = largest_connected_component(group)
    return new_img_like(None, group.astype(np.int8), affine)


def compute_multi_mask(
    imgs: Sequence[ImageLike], mask_strategy: MaskStrategy = "background", *,
    mask_args: dict[str, Any] | None = None, target_affine: NDArray | None = None,
    target_shape: Sequence[int] | None = None, name: str = "in_file",
    n_threads: int | None = None,
) -> nib.Nifti1Image:
    """A mask for several runs: one mask per run, then :func:`intersect_masks`.

    nilearn's ``compute_multi_*_mask``: the background strategy defaults to ``opening=2,
    connected=True`` here (unlike the single-run form); ``threshold`` is the intersection
    level (and the template threshold for the template strategies, which use the first run's
    grid only, as nilearn does). ``n_threads`` as in :func:`compute_mask`.
    """
    args = dict(mask_args or {})
    if len(imgs) == 0:
        raise ValueError(f"{name}: an empty list of runs")
    if mask_strategy.endswith("-template"):
        full = strategy_args(mask_strategy, args, multi=True)
        for i, run in enumerate(imgs[1:], start=1):
            load_img(run, name=f"{name}[{i}]")
        return compute_mask(imgs[0], mask_strategy, mask_args=full, target_affine=target_affine,
                            target_shape=target_shape, name=f"{name}[0]")
    threshold = args.pop("threshold", 0.5)
    full = strategy_args(mask_strategy, args, multi=True)
    masks = [
        compute_mask(run, mask_strategy, mask_args=full, target_affine=target_affine,
                     target_shape=target_shape, name=f"{name}[{i}]", n_threads=n_threads)
        for i, run in enumerate(imgs)
    ]
    return intersect_masks(masks, threshold=threshold, connected=full["connected"])


def load_mask(
    mask: ImageLike, *, name: str = "mask_file", allow_empty: bool = False
) -> tuple[NDArray[np.bool_], NDArray]:
    """Read a binary mask: 3D, at most two values one of which is 0, not empty.

    nilearn's ``load_mask_img`` rules; non-finite values count as 0.

    Returns
    -------
    mask : numpy.ndarray of bool
    affine : numpy.ndarray (4, 4)
    """
    img = load_img(mask, name=name, ndim=3)
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4:
        data = data[..., 0]
    if data.dtype.kind == "f":
        data = np.where(np.isfinite(data), data, 0)
    values = np.unique(data)
    if values.size > 2 or (values.size == 2 and 0 not in values):
        shown = ", ".join(str(v) for v in values[:5]) + (" ..." if values.size > 5 else "")
        raise MaskError(
            f"{name}: a mask must be binary (0 for background and one other value), got "
            f"{values.size} distinct values ({shown}); threshold or binarize it first"
        )
    binary = data != 0
    if not allow_empty and not binary.any():
        raise MaskError(f"{name}: the mask is empty (every voxel is 0); it would mask all data")
    return binary, np.asarray(img.affine, dtype=np.float64)


def check_same_grid(
    img_shape: Sequence[int], img_affine: NDArray, mask_shape: Sequence[int],
    mask_affine: NDArray, *, names: tuple[str, str] = ("in_file", "mask_file"),
) -> None:
    """Raise a :class:`MaskError` that says how to fix it when two grids differ."""
    if same_grid(img_shape, img_affine, mask_shape, mask_affine):
        return
    what = "shape" if tuple(img_shape[:3]) != tuple(mask_shape[:3]) else "affine"
    raise MaskError(
        f"{names[1]}: its grid differs from {names[0]}'s ({what}: {tuple(mask_shape[:3])} vs "
        f"{tuple(img_shape[:3])}, affines {np.round(mask_affine, 3).tolist()} vs "
        f"{np.round(img_affine, 3).tolist()}); resample one onto the other first, or pass "
        f"target_affine/target_shape to put both on one grid"
    )


def unmask(signals: NDArray, mask: ImageLike, *, name: str = "in_file") -> nib.Nifti1Image:
    """Put (n_samples, n_voxels) rows back into volumes on the mask's grid.

    1D input gives a 3D image, 2D input a 4D image; voxels outside the mask are 0; the voxel
    order is the mask's C order (nilearn's ``unmask``). The dtype of ``signals`` is kept.
    """
    binary, affine = load_mask(mask, name="mask_file")
    signals = np.asarray(signals)
    n_voxels = int(binary.sum())
    if signals.ndim not in (1, 2) or signals.shape[-1] != n_voxels:
        raise ValueError(
            f"{name}: expected {n_voxels} values per row (the mask's voxels), got an array of "
            f"shape {signals.shape}"
        )
    flat_index = flat_indices(binary)
    if signals.ndim == 1:
        data = np.zeros(binary.shape, dtype=signals.dtype, order="F")
        data.reshape(-1, order="F")[flat_index] = signals
    else:
        data = np.zeros(binary.shape + (signals.shape[0],), dtype=signals.dtype, order="F")
        volume_size = binary.size
        flat = data.reshape(-1, order="F")
        for t, row in enumerate(signals):
            flat[t * volume_size + flat_index] = row
    return new_img_like(None, data, affine)


def flat_indices(mask: NDArray[np.bool_]) -> NDArray[np.intp]:
    """Fortran-order flat indices of the mask's voxels, listed in the mask's C order.

    A volume read from a NIfTI file is Fortran-contiguous, so ``volume.reshape(-1, order='F')``
    is free and ``take(flat_indices(mask))`` gives ``volume[mask]`` (nilearn's voxel order).
    """
    return np.ravel_multi_index(np.nonzero(mask), mask.shape, order="F")


__all__ = [
    "MASK_STRATEGIES", "MaskError", "MeanVolume", "background_mask_from_mean",
    "brain_mask_for_grid", "check_mask_strategy", "check_same_grid", "compute_mask",
    "compute_multi_mask", "epi_mask_from_mean", "epi_threshold", "flat_indices",
    "intersect_masks", "largest_connected_component", "load_mask", "mean_volume",
    "post_process_mask", "strategy_args", "unmask",
]
