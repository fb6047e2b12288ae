"""Connectivity matrices from region signals: nilearn's ``ConnectivityMeasure`` in numpy.

- :mod:`.covariance`: the covariance estimators, Ledoit-Wolf (nilearn's default, ported from
  scikit-learn's formula) and the empirical covariance.
- :mod:`.measures`: one run's matrix of each kind (correlation, partial correlation,
  covariance, precision), the Fisher z transform, the discarded diagonal, and the handling of
  ``n/a`` regions and censored (all ``n/a``) volumes.
- :mod:`.tangent`: the group level: the geometric mean of covariances and each subject's
  tangent-space matrix (nilearn's ``kind='tangent'``), and the group mean of the other kinds.

Signals are ``(n_volumes, n_regions)`` float arrays, as in nilearn. Pure numpy/scipy: no
scikit-learn, no nilearn, no file access.
"""

from .covariance import empirical_covariance, estimate_covariance, ledoit_wolf
from .measures import (
    KINDS,
    SHRINKAGES,
    RunMatrix,
    connectivity_matrix,
    fisher_z_transform,
    run_connectivity,
    valid_signals,
)
from .tangent import (
    GROUP_KINDS,
    GroupMatrices,
    common_signals,
    geometric_mean,
    group_connectivity,
    tangent_vectors,
)

__all__ = [
    "GROUP_KINDS",
    "KINDS",
    "SHRINKAGES",
    "GroupMatrices",
    "RunMatrix",
    "common_signals",
    "connectivity_matrix",
    "empirical_covariance",
    "estimate_covariance",
    "fisher_z_transform",
    "geometric_mean",
    "group_connectivity",
    "ledoit_wolf",
    "run_connectivity",
    "tangent_vectors",
    "valid_signals",
]
