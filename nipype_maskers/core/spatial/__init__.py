"""Voxel grids: resampling, Gaussian smoothing, brain masks (computing, checking, unmasking)."""
