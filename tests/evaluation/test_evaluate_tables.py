"""Aggregation into the paper's table layouts: exact mean (SD) strings from hand-made cases."""

import csv
import io

import pytest

from firereg.evaluation.tables import build_tables, format_cell, mean_sd, to_csv, to_markdown


def _scores(dice_bs, dice_ce, seconds, hd95_bs=2.0, ic=None, folding=0.0):
    dices = [d for d in (dice_bs, dice_ce) if d is not None]
    return {"dice": {"brain stem": dice_bs, "cerebellum": dice_ce},
            "mean_dice": sum(dices) / len(dices) if dices else None,
            "hd95_mm": {"brain stem": hd95_bs, "cerebellum": None if dice_ce is None else 3.0},
            "folding_percent": folding, "log_jacobian_std": 0.0, "inverse_consistency_mm": ic,
            "registration_seconds": seconds, "total_seconds": seconds + 0.5}


RECORDS = [
    {"id": "a", "methods": {"unaligned": _scores(0.5, 0.1, 0.0), "fire": _scores(0.6, 0.8, 1.0, ic=1.0),
                            "ants_syn": _scores(0.7, 0.9, 2.0)}},
    {"id": "b", "methods": {"unaligned": _scores(0.7, None, 0.0), "fire": _scores(0.8, None, 2.0, ic=3.0),
                            "ants_syn": {"error": "RuntimeError: ANTs said no"}}},
    {"id": "c", "methods": {"unaligned": _scores(0.9, 0.3, 0.0), "fire": _scores(1.0, 0.6, 3.0, ic=2.0,
                                                                                  hd95_bs=float("inf")),
                            "ants_syn": _scores(0.9, 0.7, 4.0)}},
]
METHODS = ("unaligned", "ants_syn", "fire")


def test_mean_and_sample_sd_strings_are_exact():
    assert mean_sd([0.5, 0.7, 0.9]) == (pytest.approx(0.7), pytest.approx(0.2), 3)
    assert mean_sd([0.4, None, float("nan")]) == (0.4, None, 1)
    assert format_cell([0.5, 0.7, 0.9], scale=100.0) == "70.00 (20.00)"
    assert format_cell([0.25], scale=100.0) == "25.00 (-)"
    assert format_cell([]) == "-"
    assert format_cell([2.0, float("inf"), 4.0]) == "3.00 (1.41) [1 inf]"
    assert format_cell([1.0, 2.0, 3.0], digits=3) == "2.000 (1.000)"


def test_dice_table_has_structure_rows_and_method_columns():
    tables = build_tables(RECORDS, METHODS, ["brain stem", "cerebellum"], "cpu")
    dice = tables[0]
    assert dice.columns == ["unaligned", "ANTs-SyN", "FIRE"]
    rows = dict(dice.rows)
    assert list(rows) == ["brain stem", "cerebellum", "mean"]
    assert rows["brain stem"] == ["70.00 (20.00)", "80.00 (14.14)", "80.00 (20.00)"]
    assert rows["cerebellum"] == ["20.00 (14.14)", "80.00 (14.14)", "70.00 (14.14)"]  # None left out
    # per-case means (0.3, 0.7, 0.6) for unaligned: 53.33, SD sqrt(0.04333) = 20.82
    assert rows["mean"] == ["53.33 (20.82)", "80.00 (0.00)", "76.67 (5.77)"]
    assert dice.notes == ["failed cases (left out): ANTs-SyN 1"]
    markdown = to_markdown(dice)
    assert "| structure | unaligned | ANTs-SyN | FIRE |" in markdown
    assert "| mean | 53.33 (20.82) | 80.00 (0.00) | 76.67 (5.77) |" in markdown


def test_metrics_and_time_tables():
    _, metrics, time = build_tables(RECORDS, METHODS, ["brain stem", "cerebellum"], "cpu")
    rows = dict(metrics.rows)
    assert rows["HD95 brain stem (mm)"] == ["2.00 (0.00)", "2.00 (0.00)", "2.00 (0.00) [1 inf]"]
    assert rows["inverse consistency (mm)"] == ["-", "-", "2.000 (1.000)"]
    assert rows["registration time per pair (s)"] == ["0.000 (0.000)", "3.000 (1.414)", "2.000 (1.000)"]
    assert rows["total time per pair (s)"][2] == "2.500 (1.000)"
    assert time.columns == ["FIRE-CPU registration (s)", "FIRE-CPU total (s)", "ANTs registration (s)",
                            "ANTs total (s)"]
    assert dict(time.rows) == {
        "affine": ["-", "-", "-", "-"],  # neither affine method ran
        "non-rigid": ["2.000 (1.000)", "2.500 (1.000)", "3.000 (1.414)", "3.500 (1.414)"]}


def test_csv_holds_every_cell_with_its_numbers():
    tables = build_tables(RECORDS, METHODS, ["brain stem", "cerebellum"], "cpu")
    rows = list(csv.DictReader(io.StringIO(to_csv(tables))))
    assert len(rows) == sum(len(t.rows) * len(t.columns) for t in tables)
    cell = next(r for r in rows
                if r["table"] == "dice" and r["row"] == "brain stem" and r["column"] == "FIRE")
    assert float(cell["mean"]) == 80.0 and cell["n"] == "3" and cell["cell"] == "80.00 (20.00)"
    inf = next(r for r in rows if r["row"] == "HD95 brain stem (mm)" and r["column"] == "FIRE")
    assert inf["n"] == "2" and inf["n_inf"] == "1"


def test_time_table_gets_fire_gpu_columns_when_fire_was_also_timed_on_a_gpu():
    import copy

    records = copy.deepcopy(RECORDS)
    for record, seconds in zip(records, (0.01, 0.02, 0.03), strict=True):
        record["methods"]["fire"]["gpu_timing"] = {"device": "cuda", "registration_seconds": seconds,
                                                   "total_seconds": seconds + 0.1}
    time = build_tables(records, METHODS, ["brain stem"], "cpu", "never shown")[2]
    assert time.columns == ["FIRE-CPU registration (s)", "FIRE-CPU total (s)", "FIRE-GPU registration (s)",
                            "FIRE-GPU total (s)", "ANTs registration (s)", "ANTs total (s)"]
    assert dict(time.rows)["non-rigid"] == ["2.000 (1.000)", "2.500 (1.000)", "0.020 (0.010)",
                                            "0.120 (0.010)", "3.000 (1.414)", "3.500 (1.414)"]
    assert time.notes == ["failed cases (left out): ANTs-SyN 1"]
    # without GPU timings: the four columns, and the note saying why
    plain = build_tables(RECORDS, METHODS, ["brain stem"], "cpu", "FIRE on a GPU: not timed")[2]
    assert len(plain.columns) == 4 and "FIRE on a GPU: not timed" in plain.notes
