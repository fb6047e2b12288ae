"""The numerics of the maskers: numpy, scipy and nibabel only, never Nipype.

One folder per step of the pipeline, in the order data flow through it:

``io``
    Images in (``load_img``, volume selection, streaming one volume at a time) and text tables.
``spatial``
    Voxel grids: resampling, smoothing, brain masks and unmasking.
``signal``
    Temporal cleaning (``clean``): detrending, filters (Butterworth, cosine), confound
    regression, censoring, standardization.
``confounds``
    Confound files: finding fMRIPrep's tables and nilearn's ``load_confounds`` strategies.
``voxels``
    The voxel-wise masker (NiftiMasker's transform) and voxel-wise cleaning of images.
``regions``
    Region signals from labels, maps and spheres atlases, and back to images.

A core function takes arrays or nibabel images and returns arrays or images; it never writes
files.
"""
