"""The ``nipype-maskers`` command line: ``parser`` reads the arguments, ``commands`` runs them.

``execution`` runs the workflows (progress, failures) and ``cluster`` adapts Nipype's batch
plugins; the imports point one way: parser <- commands <- program.
"""

from .program import main, run

__all__ = ["main", "run"]
