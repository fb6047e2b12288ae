"""nilearn's maskers as Nipype interfaces and workflows.

``nipype_maskers.core`` holds the numerics (numpy, scipy and nibabel only),
``nipype_maskers.interfaces`` the Nipype interfaces over it and
``nipype_maskers.workflows`` the prebuilt workflows.
"""

__version__ = "0.2.0"
