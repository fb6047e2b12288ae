"""The one table reader and writer (core/io/tables.py), and every TSV the package writes read back.

References: pandas (``read_csv``) for what a table holds, exact equality for round trips (the
writer prints each float in the shortest form that reads back to the same value in its own
precision), and the exact error messages of the one error style.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import nilearn
import numpy as np
import pandas as pd
import pytest
from synthetic import make_epi, oblique_affine

from nipype_maskers.core.io.tables import (
    MISSING,
    NA_VALUES,
    Table,
    format_table,
    read_table,
)

FMRIPREP_DATA = Path(nilearn.__file__).parent / "interfaces" / "fmriprep" / "data"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# The header rule
# --------------------------------------------------------------------------------------------
def test_numeric_header_is_a_header_when_the_caller_says_so(tmp_path):
    """A labels masker's columns are label values: only ``header=True`` reads them right."""
    path = _write(tmp_path / "signals.tsv", "24\t27\t32\n1.5\tn/a\t-2\n3\t4\t5e-3\n")
    table = read_table(path, name="in_file", header=True, delimiter="\t")
    assert table.columns == ["24", "27", "32"] and table.has_header
    np.testing.assert_array_equal(table.values, [[1.5, np.nan, -2.0], [3.0, 4.0, 0.005]])
    assert table.lines == [2, 3]
    reference = pd.read_csv(path, sep="\t")  # pandas: header=0 by default
    assert list(reference.columns) == table.columns
    np.testing.assert_array_equal(reference.to_numpy(dtype=float), table.values)
    for header in (False, "infer"):  # all numbers: no header
        data = read_table(path, name="in_file", header=header)
        assert not data.has_header and data.columns == ["0", "1", "2"]
        assert data.values.shape == (3, 3) and data.values[0, 0] == 24.0


def test_infer_takes_a_row_with_text_for_a_header_and_na_for_numbers(tmp_path):
    named = read_table(_write(tmp_path / "a.csv", "a,24\n1,2\n"), name="x", header="infer")
    assert named.columns == ["a", "24"] and named.values.tolist() == [[1.0, 2.0]]
    unnamed = read_table(_write(tmp_path / "b.txt", "n/a 1\n2 3\n"), name="x", header="infer")
    assert not unnamed.has_header and np.isnan(unnamed.values[0, 0])
    with pytest.raises(ValueError, match="header must be True, False or 'infer'"):
        read_table(tmp_path / "a.csv", name="x", header="yes")


def test_header_only_gives_no_rows(tmp_path):
    table = read_table(_write(tmp_path / "h.tsv", "a\tb\n"), name="x", header=True)
    assert table.columns == ["a", "b"] and table.values.shape == (0, 2) and table.cells == []


# --------------------------------------------------------------------------------------------
# Missing values
# --------------------------------------------------------------------------------------------
def test_every_pandas_missing_marker_reads_as_nan_and_nan_is_written_n_a(tmp_path):
    markers = sorted(NA_VALUES - {""})
    path = _write(tmp_path / "na.tsv", "\t".join(f"c{i}" for i in range(len(markers))) + "\n"
                  + "\t".join(markers) + "\n" + "\t".join(["1.5"] * len(markers)) + "\n")
    table = read_table(path, name="x", header=True)
    reference = pd.read_csv(path, sep="\t").to_numpy(dtype=float)
    np.testing.assert_array_equal(table.values, reference)
    assert np.isnan(table.values[0]).all() and (table.values[1] == 1.5).all()
    text = format_table(["a", "b"], np.array([[np.nan, 1.0]]))
    assert text == f"a\tb\n{MISSING}\t1.0\n" and MISSING == "n/a"
    assert format_table(["a", "b"], [(None, float("nan"))]) == "a\tb\nn/a\tn/a\n"


# --------------------------------------------------------------------------------------------
# Delimiters
# --------------------------------------------------------------------------------------------
def test_csv_tsv_semicolon_and_whitespace_give_the_same_table(tmp_path):
    expected = [[1.0, -2.5, np.nan], [4.0, 5.0, 6.0]]
    texts = {
        "t.tsv": "a\tb\tc\n1\t-2.5\tn/a\n4\t5\t6\n",
        "t.csv": 'a,b,c\n1,-2.5,\n"4",5,6\n',  # quoted cell, empty cell = missing
        "t_semicolon.csv": "a;b;c\n1;-2.5;NaN\n4;5;6\n",
        "t.txt": "a  b c\n 1 -2.5   NA\n\n4 5 6\n",  # runs of spaces, a blank line
    }
    for file_name, text in texts.items():
        table = read_table(_write(tmp_path / file_name, text), name="x", header="infer")
        assert table.columns == ["a", "b", "c"], file_name
        np.testing.assert_array_equal(table.values, expected)
    # a comma inside a quoted CSV cell; a TSV has no quoting (a '"' is text)
    quoted = _write(tmp_path / "q.csv", 'x,name\n1,"V1, left"\n')
    assert read_table(quoted, name="x", header=True, numeric=False).text("name") == ["V1, left"]
    tsv = _write(tmp_path / "q.tsv", 'x\tname\n1\t"V1" left\n')
    assert read_table(tsv, name="x", header=True, delimiter="\t",
                      numeric=False).text("name") == ['"V1" left']


def test_comment_lines_are_skipped_when_asked(tmp_path):
    path = _write(tmp_path / "s.txt", "# MNI\n1 2 3\n  # more\n4 5 6\n")
    table = read_table(path, name="seeds_file", header="infer", comment="#")
    assert table.values.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]] and table.lines == [2, 4]


# --------------------------------------------------------------------------------------------
# Errors: one style, "<name> '<path>': <what is wrong>; <what is expected>"
# --------------------------------------------------------------------------------------------
def test_ragged_rows_error_names_the_line_and_both_counts(tmp_path):
    path = _write(tmp_path / "r.tsv", "a\tb\tc\n1\t2\t3\n\n4\t5\n6\t7\n")
    with pytest.raises(ValueError) as info:
        read_table(path, name="confounds_file", header=True)
    assert str(info.value) == (f"confounds_file '{path}': line 4 has 2 cells, the header has 3 "
                               "(2 such row(s)); expected one cell per column in every row")
    headerless = _write(tmp_path / "r.txt", "1 2\n3\n")
    with pytest.raises(ValueError, match=r"line 2 has 1 cells, the first row has 2"):
        read_table(headerless, name="x", header=False)


def test_a_cell_that_is_not_a_number(tmp_path):
    path = _write(tmp_path / "t.tsv", "a\tb\n1\t2\n3\tlow\n")
    with pytest.raises(ValueError) as info:
        read_table(path, name="in_file", header=True)
    assert str(info.value) == (f"in_file '{path}': line 3: 'low' in column 'b' is not a number; "
                               "expected a number or n/a")
    table = read_table(path, name="in_file", header=True, numeric=False)  # text allowed
    assert table.values.shape == (2, 0) and table.text("b") == ["2", "low"]
    np.testing.assert_array_equal(table.numbers(["a"]), [[1.0], [3.0]])
    with pytest.raises(ValueError, match=r"line 3: 'low' in column 'b' is not a number"):
        table.numbers(["b"])
    with pytest.raises(ValueError, match=r"columns \['z'\] not found; available columns: "
                       r"\['a', 'b'\]"):
        table.numbers(["a", "z"])
    with pytest.raises(TypeError, match="list of column names"):
        table.numbers("a")


def test_empty_missing_and_binary_files(tmp_path):
    empty = _write(tmp_path / "e.tsv", "\n  \n")
    with pytest.raises(ValueError, match=r"lut_file '.*e.tsv': the file is empty; expected a "
                       r"header row"):
        read_table(empty, name="lut_file", header=True)
    with pytest.raises(FileNotFoundError, match=r"in_file '.*nope.tsv': the file does not exist"):
        read_table(tmp_path / "nope.tsv", name="in_file", header=True)
    binary = tmp_path / "b.tsv"
    binary.write_bytes(b"\x93NUMPY\xff\xfe")
    with pytest.raises(ValueError, match=r"in_file '.*b.tsv': not UTF-8 text"):
        read_table(binary, name="in_file", header=True)
    with pytest.raises(TypeError, match="in_file must be a path"):
        read_table(3, name="in_file", header=True)


# --------------------------------------------------------------------------------------------
# The writer, and round trips through the reader
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_exact_in_the_arrays_precision(tmp_path, dtype):
    rng = np.random.default_rng(0)
    values = (rng.normal(size=(30, 4)) * 10.0 ** rng.integers(-12, 12, size=4)).astype(dtype)
    values[3, 1] = np.nan
    values[:, 2] = np.nan  # a region the mask emptied: a column of n/a
    values[5, 3] = np.inf
    columns = ["24", "27", "1e3", "name with spaces"]
    path = _write(tmp_path / "signals.tsv", format_table(columns, values))
    table = read_table(path, name="in_file", header=True, delimiter="\t")
    assert table.columns == columns
    np.testing.assert_array_equal(table.values.astype(dtype), values)
    assert (path.read_text().splitlines()[1 + 4].split("\t")[2]) == "n/a"
    pandas = pd.read_csv(path, sep="\t")
    assert list(pandas.columns) == columns
    np.testing.assert_array_equal(pandas.to_numpy(dtype=float).astype(dtype), values)
    if dtype == np.float32:  # the shortest float32 text, not float64 digits
        assert format_table(["x"], np.array([[0.1]], dtype=np.float32)) == "x\n0.1\n"


def test_float32_text_is_numpys_own_for_every_kind_of_value():
    # float32 tables are formatted in bulk (core/io/float_text.py): the text must be
    # str(np.float32) cell by cell, for any bit pattern (positional and scientific ranges,
    # powers of two whose decimal interval is lopsided, integers, signed zeros, inf, NaN)
    rng = np.random.default_rng(7)
    powers = np.ldexp(np.float32(1), np.arange(-40, 40)).astype(np.float32)
    special = np.concatenate([
        powers, -powers, np.nextafter(powers, np.float32(0)), np.nextafter(powers, np.inf),
        np.float32([0.0, -0.0, np.inf, -np.inf, 1e-4, -1e-4, 1e6, 999999.94, 1e-4 * 1.0001,
                    16777216.0, 0.1, 1 / 3]),
    ]).astype(np.float32)
    blocks = [
        rng.integers(0, 2**32, 60_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        (rng.normal(size=60_000) * 10.0 ** rng.integers(-6, 8, size=60_000)).astype(np.float32),
        (np.rint(rng.normal(size=60_000) * 1e5) / 10.0 ** rng.integers(0, 9, 60_000)
         ).astype(np.float32),
        np.resize(special, 60_000),
    ]
    values = np.stack(blocks).reshape(-1, 300)
    values[::7, 3] = np.nan
    expected = "".join("\t".join(MISSING if v != v else str(v) for v in row) + "\n"
                       for row in values)
    columns = [str(i) for i in range(values.shape[1])]
    assert format_table(columns, values) == "\t".join(columns) + "\n" + expected
    assert format_table(["x"], np.zeros((0, 1), dtype=np.float32)) == "x\n"
    # a block of zeros only (an emptied region's signals, a censored run's first rows)
    zeros = np.float32([[0, -0.0], [0, 0]])
    assert format_table(["x", "y"], zeros) == "x\ty\n0.0\t-0.0\n0.0\t0.0\n"
    assert format_table(["x", "y"], np.asfortranarray(values[:3, :2])) == (
        "x\ty\n" + "".join("\t".join(line.split("\t")[:2]) + "\n"
                            for line in expected.splitlines()[:3]))


def test_mixed_rows_integer_and_boolean_arrays():
    text = format_table(["index", "name", "voxel_count", "coverage", "kept"],
                        [(np.int64(3), "left", 12, np.float32(0.25), True),
                         (4, "right", np.int32(0), float("nan"), False)])
    assert text == ("index\tname\tvoxel_count\tcoverage\tkept\n3\tleft\t12\t0.25\t1\n"
                    "4\tright\t0\tn/a\t0\n")
    assert format_table(["i"], np.array([[1], [2]])) == "i\n1\n2\n"
    assert format_table(["b"], np.array([[True]])) == "b\n1\n"


@pytest.mark.parametrize(("columns", "rows", "message"), [
    ([], np.zeros((1, 0)), "no column; expected at least one column name"),
    (["a", ""], [(1, 2)], "column name ''; expected non-empty text"),
    (["a\tb"], [(1,)], "holds a tab or a line break"),
    (["a", "b"], [(1, 2), (3,)], "row 2 has 1 cells, the header has 2"),
    (["a"], [("x\ny",)], r"row 1: 'x\\ny' holds a tab or a line break"),
    (["a", "b"], np.zeros((2, 3)), r"array of shape \(2, 3\); expected a numeric array of shape "
                                   r"\(n_rows, 2\)"),
    (["a"], np.zeros(3), r"shape \(3,\)"),
    (["a"], np.array([["x"]]), "expected a numeric array"),
])  # fmt: skip
def test_writer_errors(columns, rows, message):
    with pytest.raises(ValueError, match=message):
        format_table(columns, rows, name="out_file")


def test_writer_refuses_other_objects():
    with pytest.raises(TypeError, match=r"out_file: row 1: list \[1\]; expected a number"):
        format_table(["a"], [([1],)], name="out_file")


def test_table_is_a_small_named_tuple(tmp_path):
    table = read_table(_write(tmp_path / "t.tsv", "a\tb\n1\t2\n"), name="x", header=True)
    assert isinstance(table, Table) and table._fields == (
        "columns", "values", "cells", "lines", "has_header", "source")
    assert table.source == f"x '{tmp_path / 't.tsv'}'" and table.position("b") == 1
    with pytest.raises(ValueError, match=r"columns \['c'\] not found"):
        table.text("c")


# --------------------------------------------------------------------------------------------
# Every TSV the package writes, read back by the one reader
# --------------------------------------------------------------------------------------------
@pytest.fixture
def labels_run(tmp_path):
    """A 4D run, a labels atlas (24, 27, 32) and a mask that empties label 27."""
    data, brain = make_epi((9, 10, 11), 20)
    atlas = np.zeros(brain.shape, np.int16)
    atlas[1:4, 2:8, 2:9], atlas[4:7, 2:8, 2:9], atlas[7:9, 1:9, 1:10] = 24, 27, 32
    mask = (brain | (atlas > 0)).astype(np.uint8)
    mask[atlas == 27] = 0
    paths = {}
    for key, array in (("bold", data), ("atlas", atlas), ("mask", mask)):
        paths[key] = str(tmp_path / f"sub-01_task-rest_{key}.nii.gz")
        img = nib.Nifti1Image(array, oblique_affine())
        img.header.set_xyzt_units("mm", "sec")
        nib.save(img, paths[key])
    work = tmp_path / "work"
    work.mkdir()
    paths["work"] = str(work)
    return paths


def test_region_tables_round_trip(labels_run):
    """The signals TSV (numeric names, an n/a column) and the regions TSV read back exactly."""
    from nipype_maskers.core.regions.maskers import labels_masker
    from nipype_maskers.interfaces.regions import NiftiLabelsMasker, read_signals
    from nipype_maskers.interfaces.reports import read_regions_table

    result = NiftiLabelsMasker(in_file=labels_run["bold"], labels_file=labels_run["atlas"],
                               mask_file=labels_run["mask"]).run(cwd=labels_run["work"])
    expected = labels_masker(labels_run["bold"], labels_run["atlas"], mask=labels_run["mask"])
    table = read_table(result.outputs.out_file, name="out_file", header=True, delimiter="\t")
    assert table.columns == expected.names == ["24", "27", "32"]
    assert np.isnan(table.values[:, 1]).all() and np.isfinite(table.values[:, [0, 2]]).all()
    np.testing.assert_array_equal(table.values.astype(np.float32), expected.signals)
    np.testing.assert_array_equal(read_signals(result.outputs.out_file), table.values)
    rows = read_regions_table(result.outputs.regions_file)
    assert [(i, name, n) for i, name, n, _ in rows] == [
        (int(i), name, int(n)) for i, name, n in
        zip(expected.ids, expected.names, expected.sizes, strict=True)]
    np.testing.assert_array_equal([c for *_, c in rows], expected.coverage)
    pandas = pd.read_csv(result.outputs.regions_file, sep="\t")
    assert list(pandas.columns) == ["index", "name", "voxel_count", "coverage"]
    assert pandas["index"].tolist() == [24, 27, 32]


def test_confounds_and_sample_mask_round_trip(tmp_path):
    """LoadConfounds' confounds TSV and sample mask read back as the core computed them."""
    from nipype_maskers.core.confounds.files import read_confounds_table
    from nipype_maskers.core.confounds.strategies import load_confounds
    from nipype_maskers.interfaces.base import read_sample_mask
    from nipype_maskers.interfaces.cleaning import LoadConfounds

    source = tmp_path / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    shutil.copy(FMRIPREP_DATA / "test-v21_desc-confounds_timeseries.tsv", source)
    options = dict(strategy=["motion", "high_pass", "scrub"], scrub=0, fd_threshold=1.0)
    result = LoadConfounds(confounds_file=str(source), **options).run(cwd=str(tmp_path))
    expected = load_confounds(source, **options)
    assert expected.sample_mask is not None and expected.sample_mask.size < 30
    table = read_table(result.outputs.out_file, name="out_file", header=True, delimiter="\t")
    assert table.columns == expected.columns
    np.testing.assert_array_equal(table.values, expected.confounds)
    again = read_confounds_table(result.outputs.out_file)
    np.testing.assert_array_equal(again.data, expected.confounds)
    kept = read_sample_mask(result.outputs.sample_mask_file)
    assert kept == expected.sample_mask.tolist() == result.outputs.sample_mask
    mask_table = read_table(result.outputs.sample_mask_file, name="sample_mask_file",
                            header=True)
    assert mask_table.columns == ["sample_mask"]


def test_sample_mask_file_forms_and_errors(tmp_path):
    from nipype_maskers.interfaces.base import read_sample_mask

    assert read_sample_mask(_write(tmp_path / "a.txt", "0\n2\n5\n")) == [0, 2, 5]
    assert read_sample_mask(_write(tmp_path / "b.txt", "0 2 5\n")) == [0, 2, 5]
    assert read_sample_mask(_write(tmp_path / "c.tsv", "index\n1\n")) == [1]
    with pytest.raises(ValueError, match=r"sample_mask_file '.*d.tsv': line 3: '2.5' is not a "
                       r"volume index; expected integer volume indices"):
        read_sample_mask(_write(tmp_path / "d.tsv", "sample_mask\n1\n2.5\n"))
    with pytest.raises(ValueError, match="2 columns; expected one column"):
        read_sample_mask(_write(tmp_path / "e.tsv", "a\tb\n1\t2\n"))
    # one row of indices: the bad cell is named with its own line (not an IndexError)
    with pytest.raises(ValueError, match=r"f.txt': line 2: '2.5' is not a volume index"):
        read_sample_mask(_write(tmp_path / "f.txt", "\n0 1 2.5\n"))


def test_clean_signals_output_round_trips(tmp_path):
    """CleanSignals on a headerless CSV writes a TSV with a header ('0', '1'...)."""
    from nilearn import signal as nl_signal

    from nipype_maskers.interfaces.cleaning import CleanSignals

    rng = np.random.default_rng(3)
    values = rng.normal(size=(12, 2))
    csv = _write(tmp_path / "signals.csv",
                 "".join(f"{a!r},{b!r}\n" for a, b in values.tolist()))
    result = CleanSignals(in_file=str(csv), detrend=True, standardize=None).run(cwd=str(tmp_path))
    table = read_table(result.outputs.out_file, name="out_file", header=True, delimiter="\t")
    assert table.columns == ["0", "1"]
    reference = nl_signal.clean(values, detrend=True, standardize=None)
    np.testing.assert_allclose(table.values, reference, rtol=1e-10, atol=1e-12)
