"""Voxel-wise masking of 4D images (NiftiMasker's transform) and voxel-wise cleaning."""
