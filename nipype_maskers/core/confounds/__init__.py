"""Confounds: fMRIPrep's confound files and nilearn's ``load_confounds`` strategies."""

from .strategies import Confounds, load_confounds, load_confounds_strategy

__all__ = ["Confounds", "load_confounds", "load_confounds_strategy"]
