"""Nipype interfaces over :mod:`nipype_maskers.core`."""
