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

from ..core.io.hashing import hash_reads
from ..core.io.images import compute_dtype, load_img, mean_image, n_volumes
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
from .io import output_path, read_matrix, save_masked_matrix


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
    dtype = traits.Enum(
        "float32", "float64", "auto", usedefault=True,
        desc="output matrix dtype; 'auto': the precision the maskers compute in_file's volumes "
        "in (float64 for float64 data, else float32), what masked_file readers expect")
    keep_unsmoothed = traits.Bool(
        False, usedefault=True,
        desc="with smoothing_fwhm: also write the rows before smoothing (unsmoothed_file), "
        "from the same read, for the steps that take the run unsmoothed (no cleaning)")
    mean_image = traits.Bool(
        False, usedefault=True,
        desc="also write the volumes' mean image (mean_file), from the same read: the "
        "report's summary (SummarizeBold) then reads no volume")


class _NiftiMaskerOutputSpec(TraitedSpec):
    out_file = File(desc="(volumes x voxels) matrix, .npy, voxels in the mask's C order; "
                    "after the array (numpy.load stops before it) the file describes the "
                    "run it holds (source, mask, smoothing) for the steps that take it as "
                    "masked_file")
    mask_file = File(desc="the mask actually used (on the output grid)")
    t_r = traits.Either(None, traits.Float, desc="the TR used for cleaning (None: not needed)")
    t_r_source = traits.Str(desc="where t_r came from: 'input t_r', 'NIfTI header' or ''")
    volumes = traits.List(traits.Int, desc="the input volume of each output row")
    in_file_sha256 = traits.Str(
        desc="SHA-256 (hex) of in_file's bytes, computed while it was streamed (no second read)"
    )
    unsmoothed_file = File(desc="keep_unsmoothed: out_file's rows before smoothing (.npy, "
                           "described as out_file is)")
    mean_file = File(desc="mean_image: the mean over the volumes (float32 NIfTI, in_file's "
                     "grid)")


class NiftiMasker(SimpleInterface):
    """nilearn's ``NiftiMasker.fit_transform``: a 4D image to a (volumes x voxels) matrix.

    The image is streamed volume by volume (resample, smooth, mask), so the 4D data are never
    in memory at once; then the rows are cleaned (nilearn's ``signal.clean`` options, with
    the maskers' defaults: nothing unless asked; ``t_r`` from the header when not given).
    The matrix is written as ``.npy`` with the mask used beside it; :class:`Unmask` takes
    both back to an image.

    The matrix is also the run read once for the steps after it: the region maskers and
    CleanImage take it as ``masked_file`` and read its rows instead of decompressing
    ``in_file`` again (its ``.json`` sidecar says what it was read from; uncleaned, every
    volume, no target grid, ``dtype='auto'``; the file says so after the array, where
    ``numpy.load`` does not read). A mask computed from the run's mean costs no
    second decompression (see :func:`~nipype_maskers.core.voxels.masker.mask_volumes`).
    """

    input_spec = _NiftiMaskerInputSpec
    output_spec = _NiftiMaskerOutputSpec

    def _run_interface(self, runtime):
        target_affine, target_shape = grid_from(self.inputs)
        img = load_img(self.inputs.in_file, name="in_file")
        clean_args, provenance = clean_args_from(self.inputs, header_t_r=header_t_r(img))
        smoothing = defined(self.inputs.smoothing_fwhm)
        # hashed as it is streamed (beside the reading, with more than one thread)
        with hash_reads(self.inputs.in_file, background=self.inputs.num_threads > 1) as digest:
            result = nifti_masker.mask_volumes(
                img,
                defined(self.inputs.mask_file),
                mask_strategy=self.inputs.mask_strategy,
                mask_args=mask_args_from(self.inputs),
                smoothing_fwhm=smoothing,
                target_affine=target_affine,
                target_shape=target_shape,
                volumes=parse_volumes(defined(self.inputs.volumes)),
                dtype=(compute_dtype(img) if self.inputs.dtype == "auto"
                       else self.inputs.dtype),
                clean_args=clean_args,
                n_threads=self.inputs.num_threads,
                keep_unsmoothed=self.inputs.keep_unsmoothed,
                mean_image=self.inputs.mean_image,
            )
        source = self.inputs.in_file
        self._results["t_r"] = provenance.get("RepetitionTime")
        self._results["t_r_source"] = provenance.get("RepetitionTimeSource", "")
        self._results["volumes"] = [int(v) for v in result.volumes]
        mask_out = output_path(source, runtime.cwd, suffix="mask", extension=".nii.gz")
        signals_out = output_path(source, runtime.cwd, suffix="signals", extension=".npy")
        self._results["in_file_sha256"] = digest.hexdigest()
        self._results["mask_file"] = str(save_nifti(result.mask, mask_out))
        facts = {"mask": np.asanyarray(result.mask.dataobj) != 0, "affine": result.mask.affine,
                 "source": source, "source_sha256": self._results["in_file_sha256"],
                 "all_volumes": np.array_equal(result.volumes, np.arange(n_volumes(img))),
                 "cleaned": bool(clean_args),
                 "resampled": target_affine is not None or target_shape is not None}
        self._results["out_file"] = str(save_masked_matrix(
            result.signals, signals_out, smoothing_fwhm=smoothing, **facts))
        if result.mean is not None:
            self._results["mean_file"] = str(save_nifti(
                mean_image(result.mean, img), output_path(source, runtime.cwd, desc="mean",
                                                          suffix="boldref",
                                                          extension=".nii.gz")))
        if result.unsmoothed is not None:
            self._results["unsmoothed_file"] = str(save_masked_matrix(
                result.unsmoothed, output_path(source, runtime.cwd, desc="unsmoothed",
                                               suffix="signals", extension=".npy"),
                smoothing_fwhm=None, **facts))
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
