"""Surface and grayordinate data: GIFTI pairs and CIFTI-2 files.

Readers, checks and writers for the hemisphere pairs of GIFTI files (``gifti``) and for CIFTI-2
files (``cifti``), and the maskers that reduce them to vertex, parcel or map signals
(``gifti_maskers``, ``cifti_maskers``). Pure numpy/nibabel: no nipype, no nilearn, no file writes
except through the explicit writers that return images.
"""
