"""Interfaces for the NiftiMasker path: ComputeMask, NiftiMasker and Unmask."""

from __future__ import annotations

import numpy as np
from nipype.interfaces.base import (
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ..core.io.images import load_img
from ..core.spatial import masking
from ..core.voxels import masker as nifti_masker
from ..files import save_nifti
from .base import (
    CleanSpecMixin,
    GridSpecMixin,
    MaskArgsSpecMixin,
    MaskersInputSpec,
    ThreadsSpecMixin,
    VolumeSelection,
    clean_args_from,
    defined,
    grid_from,
    header_t_r,
    mask_args_from,
    parse_volumes,
)
from .io import output_path, read_matrix, save_npy


class _ComputeMaskInputSpec(MaskersInputSpec, MaskArgsSpecMixin, GridSpecMixin,
                            ThreadsSpecMixin):
    in_file = InputMultiObject(
        File(exists=True), mandatory=True,
        desc="3D/4D image, or a list of runs (one mask per run, then intersected)",
    )


class _ComputeMaskOutputSpec(TraitedSpec):
    mask_file = File(desc="the binary mask (int8 NIfTI)")


class ComputeMask(SimpleInterface):
    """Compute a brain mask with one of nilearn's strategies.

    One run: ``compute_background_mask`` / ``compute_epi_mask`` / ``compute_brain_mask``.
    Several runs: a mask per run intersected with ``threshold`` (nilearn's
    ``compute_multi_*_mask``, whose background defaults are ``opening=2, connected=True``).
    """

    input_spec = _ComputeMaskInputSpec
    output_spec = _ComputeMaskOutputSpec

    def _run_interface(self, runtime):
        runs = list(self.inputs.in_file)
        target_affine, target_shape = grid_from(self.inputs)
        args = mask_args_from(self.inputs)
        if len(runs) == 1:
            mask = masking.compute_mask(
                runs[0], self.inputs.mask_strategy, mask_args=args,
                target_affine=target_affine, target_shape=target_shape,
                n_threads=self.inputs.num_threads,
            )
        else:
            mask = masking.compute_multi_mask(
                runs, self.inputs.mask_strategy, mask_args=args,
                target_affine=target_affine, target_shape=target_shape,
                n_threads=self.inputs.num_threads,
            )
        out = output_path(runs[0], runtime.cwd, suffix="mask", extension=".nii.gz")
        self._results["mask_file"] = str(save_nifti(mask, out))
        return runtime


class _NiftiMaskerInputSpec(MaskersInputSpec, MaskArgsSpecMixin, GridSpecMixin, CleanSpecMixin,
                            ThreadsSpecMixin):
    in_file = File(exists=True, mandatory=True, desc="3D or 4D image (NIfTI)")
    mask_file = File(
        exists=True, desc="binary mask on the data's (or target) grid; computed when absent"
    )
    smoothing_fwhm = traits.Either(
        traits.Float, traits.List(traits.Float, minlen=3, maxlen=3),
        desc="Gaussian smoothing FWHM in mm (one value or one per axis)",
    )
    volumes = VolumeSelection(
        desc="volumes to use, as nilearn.image.index_img: an index, a list of indices, a "
        "list of booleans (a mask, one per volume), or 'start:stop[:step]' (e.g. '0:100' "
        "for the first 100)",
    )
    dtype = traits.Enum("float32", "float64", usedefault=True, desc="output matrix dtype")


class _NiftiMaskerOutputSpec(TraitedSpec):
    out_file = File(desc="(volumes x voxels) matrix, .npy, voxels in the mask's C order")
    mask_file = File(desc="the mask actually used (on the output grid)")
    t_r = traits.Either(None, traits.Float, desc="the TR used for cleaning (None: not needed)")
    t_r_source = traits.Str(desc="where t_r came from: 'input t_r', 'NIfTI header' or ''")
    volumes = traits.List(traits.Int, desc="the input volume of each output row")


class NiftiMasker(SimpleInterface):
    """nilearn's ``NiftiMasker.fit_transform``: a 4D image to a (volumes x voxels) matrix.

    The image is streamed volume by volume (resample, smooth, mask), so the 4D data are never
    in memory at once; then the rows are cleaned (nilearn's ``signal.clean`` options, with
    the maskers' defaults: nothing unless asked; ``t_r`` from the header when not given).
    The matrix is written as ``.npy`` with the mask used beside it; :class:`Unmask` takes
    both back to an image.
    """

    input_spec = _NiftiMaskerInputSpec
    output_spec = _NiftiMaskerOutputSpec

    def _run_interface(self, runtime):
        target_affine, target_shape = grid_from(self.inputs)
        img = load_img(self.inputs.in_file, name="in_file")
        clean_args, provenance = clean_args_from(self.inputs, header_t_r=header_t_r(img))
        result = nifti_masker.mask_volumes(
            img,
            defined(self.inputs.mask_file),
            mask_strategy=self.inputs.mask_strategy,
            mask_args=mask_args_from(self.inputs),
            smoothing_fwhm=defined(self.inputs.smoothing_fwhm),
            target_affine=target_affine,
            target_shape=target_shape,
            volumes=parse_volumes(defined(self.inputs.volumes)),
            dtype=self.inputs.dtype,
            clean_args=clean_args,
            n_threads=self.inputs.num_threads,
        )
        source = self.inputs.in_file
        self._results["t_r"] = provenance.get("RepetitionTime")
        self._results["t_r_source"] = provenance.get("RepetitionTimeSource", "")
        self._results["volumes"] = [int(v) for v in result.volumes]
        mask_out = output_path(source, runtime.cwd, suffix="mask", extension=".nii.gz")
        signals_out = output_path(source, runtime.cwd, suffix="signals", extension=".npy")
        self._results["mask_file"] = str(save_nifti(result.mask, mask_out))
        self._results["out_file"] = str(save_npy(result.signals, signals_out))
        return runtime


class _UnmaskInputSpec(MaskersInputSpec):
    in_file = File(
        exists=True, mandatory=True,
        desc="matrix: .npy, a .tsv (its first row is its header) or a .csv/.txt (header "
        "inferred); 1D -> 3D image, 2D -> 4D",
    )
    mask_file = File(exists=True, mandatory=True, desc="the mask the matrix was extracted with")
    dtype = traits.Enum("float32", "float64", usedefault=True, desc="output image dtype")


class _UnmaskOutputSpec(TraitedSpec):
    out_file = File(desc="3D/4D NIfTI on the mask's grid, 0 outside the mask")


class Unmask(SimpleInterface):
    """nilearn's ``NiftiMasker.inverse_transform``: rows of voxel values back to volumes."""

    input_spec = _UnmaskInputSpec
    output_spec = _UnmaskOutputSpec

    def _run_interface(self, runtime):
        matrix, _ = read_matrix(self.inputs.in_file)
        load_img(self.inputs.mask_file, name="mask_file", ndim=3)
        img = masking.unmask(np.asarray(matrix, dtype=self.inputs.dtype), self.inputs.mask_file)
        out = output_path(self.inputs.in_file, runtime.cwd, suffix="unmasked",
                          extension=".nii.gz")
        self._results["out_file"] = str(save_nifti(img, out))
        return runtime
