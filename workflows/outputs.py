"""A run's outputs handed to a parent pipeline that writes them with its own sink.

``init_maskers_wf(write_derivatives=False)`` stops before writing: its outputnode carries,
for each output, the file, its BIDS entities and its sidecar metadata. A NiPreps parent then
writes them with niworkflows' ``DerivativesDataSink`` (``in_file``, ``source_file``,
``meta_dict`` and one input per entity), one sink per output::

    maskers_wf = init_maskers_wf(bold_file=bold, labels=atlases, write_derivatives=False)
    entities = maskers_wf.get_node("outputnode").inputs.entities  # known at build time
    for index, wanted in enumerate(entities):
        sink = pe.Node(DerivativesDataSink(base_directory=out_dir, **wanted),
                       name=f"ds_maskers_{index}")
        for field, sink_input in (("out_files", "in_file"), ("metadata", "meta_dict")):
            pick = pe.Node(niu.Select(index=index), name=f"pick_{field}_{index}")
            workflow.connect([(maskers_wf, pick, [(f"outputnode.{field}", "inlist")]),
                              (pick, sink, [("out", sink_input)])])
        workflow.connect(inputnode, "bold_file", sink, "source_file")

The metadata is what our own writer (``WriteDerivatives``) puts in each sidecar, the
images' ``SpatialReference`` included, except the fields it adds when it writes
(``Sources``, the source's SHA-256, the software versions): the parent's sink records its own
provenance.
"""

from __future__ import annotations

from typing import Any

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from .nodes import bookkeeping_node

#: The outputnode of ``init_maskers_wf(write_derivatives=False)``: three lists, one item per
#: output, in the same order.
UNWRITTEN_FIELDS = ["out_files", "entities", "metadata"]


def _sidecar_ready(in_files: list, metadata: list, source_file: str) -> list:
    """Each output's sidecar metadata as our writer would write it.

    A Nipype Function node (its imports are inside): a ``ColumnDescription`` template becomes
    BIDS's ``{"<column>": {"Description": ...}}`` entries, read from each TSV's header; an
    image gets the ``SpatialReference`` of the BOLD run ``source_file`` it derives from
    (unless its metadata gives one), as ``WriteDerivatives`` adds it.
    """
    from pathlib import Path

    from nipype_maskers.bids_dataset import is_image, spatial_reference
    from nipype_maskers.interfaces.bids import describe_columns

    ready = []
    for path, meta in zip(in_files, metadata, strict=True):
        meta = describe_columns(meta, Path(path))
        if is_image(path):
            meta = {"SpatialReference": spatial_reference(source_file), **meta}
        ready.append(meta)
    return ready


def connect_unwritten_outputs(
    workflow: pe.Workflow,
    *,
    files: tuple[pe.Node | pe.Workflow, str],
    metadata: tuple[pe.Node, str],
    source: tuple[pe.Node, str],
    entities: list[dict[str, Any]],
    outputnode: pe.Node,
) -> None:
    """Hand every output to ``outputnode`` (fields :data:`UNWRITTEN_FIELDS`) instead of writing.

    Parameters
    ----------
    workflow : Workflow
        The run's workflow.
    files : (node, field)
        The list of output files, in order.
    metadata : (node, field)
        The list of their sidecar metadata dicts, in the same order.
    source : (node, field)
        The BOLD run they derive from (the images' ``SpatialReference``).
    entities : list of dict
        Their BIDS entities (``suffix`` and ``extension`` included; the others are added to
        the source BOLD's entities, ``desc`` replacing its ``desc-preproc``); set on the
        outputnode as a value, so a parent can read them when it builds its sinks.
    outputnode : Node
        An IdentityInterface with the fields :data:`UNWRITTEN_FIELDS`.
    """
    if not entities:
        raise ValueError("entities: no output to hand over; give one dict per output file")
    outputnode.inputs.entities = [dict(wanted) for wanted in entities]
    ready = bookkeeping_node(
        niu.Function(function=_sidecar_ready,
                     input_names=["in_files", "metadata", "source_file"],
                     output_names=["metadata"]),
        "sidecar_columns")
    workflow.connect([
        (files[0], ready, [(files[1], "in_files")]),
        (metadata[0], ready, [(metadata[1], "metadata")]),
        (source[0], ready, [(source[1], "source_file")]),
        (files[0], outputnode, [(files[1], "out_files")]),
        (ready, outputnode, [("metadata", "metadata")]),
    ])  # fmt:skip
