"""The checks of :mod:`.resampling`'s inputs: each error names the input and says what is
expected, before any data is read."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Spline order of each interpolation, as in nilearn.
INTERPOLATION_ORDERS: dict[str, int] = {"continuous": 3, "linear": 1, "nearest": 0}


def check_interpolation(interpolation: str) -> int:
    """Spline order for ``interpolation``; ValueError listing the accepted values otherwise."""
    if not isinstance(interpolation, str) or interpolation not in INTERPOLATION_ORDERS:
        raise ValueError(
            f"interpolation: unknown {interpolation!r}; accepted: "
            f"{', '.join(repr(k) for k in INTERPOLATION_ORDERS)}"
        )
    return INTERPOLATION_ORDERS[interpolation]


def check_affine(affine: ArrayLike, name: str, shapes: Sequence[tuple[int, int]]) -> NDArray:
    """A finite, invertible affine of one of ``shapes``, as a float64 array."""
    expected = " or ".join(f"{a}x{b}" for a, b in shapes)
    try:
        arr = np.array(affine, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name}: expected a numeric array of shape {expected}, got {type(affine).__name__}"
        ) from exc
    if arr.shape not in shapes:
        raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values: {arr.tolist()}")
    if arr.shape == (4, 4) and not np.array_equal(arr[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"{name}: the last row must be [0, 0, 0, 1], got {arr[3].tolist()}")
    if np.linalg.matrix_rank(arr[:3, :3]) < 3:
        raise ValueError(
            f"{name}: the 3x3 part {arr[:3, :3].tolist()} is singular; expected an invertible "
            "(non-degenerate) voxel-to-world matrix"
        )
    return arr


def check_grid_shape(shape: Sequence[int], name: str) -> tuple[int, int, int]:
    """Three positive integers, as a tuple of int."""
    message = f"{name}: expected 3 positive integers (a 3D grid shape), got {shape!r}"
    try:
        values = tuple(shape)
    except TypeError as exc:
        raise TypeError(message) from exc
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))
           for v in values):
        raise TypeError(message)
    if len(values) != 3 or min(values) < 1:
        raise ValueError(message)
    return tuple(int(v) for v in values)


def check_anchor(target_affine, target_shape) -> None:
    """``target_shape`` needs a 4x4 ``target_affine`` to place the grid."""
    if target_affine is None or np.shape(target_affine) != (4, 4):
        given = "None" if target_affine is None else f"shape {np.shape(target_affine)}"
        raise ValueError(
            f"target_shape {tuple(target_shape)} needs a 4x4 target_affine to anchor the grid "
            f"(target_affine: {given}); pass a 4x4 target_affine"
        )


def check_resample_options(interpolation: str, clip, fill_value
                           ) -> tuple[int, bool | tuple, float]:
    """Spline order, clip (a bool or a 2-tuple) and fill value, checked."""
    order = check_interpolation(interpolation)
    if isinstance(clip, np.bool_):
        clip = bool(clip)
    if not (isinstance(clip, bool) or (isinstance(clip, tuple) and len(clip) == 2)):
        raise TypeError(f"clip: expected a bool or a (vmin, vmax) tuple, got {clip!r}")
    if isinstance(fill_value, (bool, np.bool_)) or not isinstance(
        fill_value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"fill_value: expected a number, got {fill_value!r}")
    return order, clip, float(fill_value)


def check_targets(target_affine, target_shape) -> None:
    """Fail before any data is read (nilearn's ``_check_resample_img_inputs``)."""
    if target_shape is not None:
        check_anchor(target_affine, check_grid_shape(target_shape, "target_shape"))
    if target_affine is not None:
        check_affine(target_affine, "target_affine", [(3, 3), (4, 4)])
