"""Prebuilt Nipype workflows (shipped as ``nipype_maskers.workflows``)."""
