"""One reading of a surface run's TR for the maskers, the CLI's checks and the reports.

CIFTI: the SeriesAxis step in seconds; GIFTI: the first data arrays' ``TimeStep`` (ms from 100
up, else seconds; both hemispheres must agree), read from the first data array only.
"""

from __future__ import annotations

import os
from pathlib import Path

from surface.cifti_data import layout, save_dtseries, series
from surface.gifti_data import make_pair_data, save_pair

from nipype_maskers.cli.checks import surface_t_r
from nipype_maskers.core.surface.gifti_series import read_series_pair
from nipype_maskers.reporting.surface import summarize_surface_run


def test_cli_reads_the_cifti_series_axis(tmp_path):
    axis = layout()
    dtseries = save_dtseries(tmp_path / "sub-01_task-rest_space-fsLR_den-91k_bold.dtseries.nii",
                             series(6, len(axis)), axis, step=0.8)
    assert surface_t_r(dtseries) == (0.8, "CIFTI SeriesAxis")


def test_cli_reads_the_gifti_time_step_from_the_first_data_array_only(tmp_path):
    left, right = make_pair_data(n_volumes=30)
    path = Path(save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right,
                          time_step=720.0)[0])
    assert surface_t_r(path) == (0.72, "GIFTI TimeStep")
    # the rest of the file is not read: a truncated file still states its TR
    with open(path, "r+b") as stream:
        stream.truncate(os.path.getsize(path) // 2)
    assert surface_t_r(path) == (0.72, "GIFTI TimeStep")


def test_report_reads_the_tr_as_the_maskers_do(tmp_path):
    left, right = make_pair_data(n_volumes=8)
    agree = save_pair(tmp_path, "space-fsaverage5", "bold.func.gii", left, right,
                      time_step=2000.0)
    assert summarize_surface_run(agree).t_r == read_series_pair(agree).t_r == 2.0
    other = tmp_path / "other"
    other.mkdir()
    disagree = [agree[0], save_pair(other, "space-fsaverage5", "bold.func.gii", left, right,
                                    time_step=1000.0)[1]]
    # hemispheres that disagree state no TR (the report used to take the left one's)
    assert read_series_pair(disagree).t_r is None
    assert summarize_surface_run(disagree).t_r is None
