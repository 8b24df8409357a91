"""The bench's HTML report, built from rows and opened in a real headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from leafiqa.evaluation.report import format_cell, write_report


def bench_rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for split in ("split_1", "split_2"):
        for budget, n in ((0.0, 0), (0.1, 24), (1.0, 240)):
            for method, base in (("LEAF", 0.75), ("linear probe (ridge)", 0.65)):
                if method.startswith("linear") and n == 0:
                    continue
                srcc = base + 0.05 * budget + 0.01 * rng.normal()
                rows.append({"split": split, "seed": 0, "selection": "random", "budget": budget,
                             "n_labels": n, "method": method, "srcc": srcc, "krcc": srcc - 0.2,
                             "plcc": np.nan if n == 0 else srcc + 0.05,
                             "plcc_fitted": np.nan if n == 0 else srcc + 0.06,
                             "rmse": np.nan if n == 0 else 0.5, "n": 100, "seconds": 0.1})
    return pd.DataFrame(rows)


def test_the_report_renders_its_tables_plots_and_provenance_in_chromium(
        tmp_path: Path, browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    pred = np.linspace(1, 4, 50)
    record = {"tool_version": "0.1.0", "git_commit": "abc123", "command": "leaf bench x.yaml",
              "overrides": {"bench.seeds": [0, 1]}, "wall_seconds": 12.0,
              "started_utc": "2026-11-30T12:00:00+00:00", "machine": {"cpus": 2},
              "config": {"labels": {"seed": 0}}}
    report = write_report(bench_rows(), tmp_path, teacher="qbench:test", dataset="toy",
                          n_train=240, seconds=12.0, splits=["split_1", "split_2"], seeds=[0],
                          selections=["random"], scatter=(pred, pred + 0.1, 24),
                          provenance=record)
    assert json.loads(report.provenance.read_text()) == record
    browser.get(report.html.as_uri())
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h2, h3")]
    assert any("Per split" in h for h in headings) and "SRCC / KRCC" in headings
    assert "LEAF against the strongest other method (SRCC, random selection)" in headings
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 3  # SRCC curve, PLCC curve, scatter
    assert all(browser.execute_script("return arguments[0].complete && "
                                      "arguments[0].naturalWidth", i) > 300
               for i in images)  # embedded PNGs decode and have real size
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "linear probe (ridge)" in text and "Seconds per run" in text
    assert "(n=" not in text and "±" not in text
    provenance = browser.find_element(By.ID, "provenance").text
    assert "abc123" in provenance and "bench.seeds=[0, 1]" in provenance
    assert "leaf bench x.yaml" in provenance and "12 s" in provenance


def test_cells_show_an_interval_or_just_the_value() -> None:
    assert format_cell(0.5, float("nan"), float("nan")) == "0.500"
    assert format_cell(0.5, 0.48, 0.53) == "0.500 [0.480, 0.530]"
    assert format_cell(float("nan")) == ""


def test_a_quick_grid_says_once_that_it_has_no_intervals(tmp_path: Path) -> None:
    rows = bench_rows()
    rows = rows[rows["split"] == "split_1"]
    report = write_report(rows, tmp_path, teacher="t", dataset="toy", n_train=240, seconds=1.0,
                          splits=["split_1"], seeds=[0], selections=["random"])
    assert "(n=" not in report.markdown and "[" not in report.markdown.split("\n\n", 1)[1]
    assert report.markdown.startswith("One run per cell")
    assert report.provenance is None and not (tmp_path / "provenance.json").exists()


def test_a_budget_is_one_cell_whatever_each_split_makes_of_it() -> None:
    """clive-dev's splits train on 433 or 434 images, so 100 % is 433 labels on some and 434 on
    others: still one cell over every run (it once showed the 433-label splits alone)."""
    from leafiqa.evaluation.report import summarise

    rows = bench_rows()
    rows.loc[(rows["split"] == "split_2") & (rows["budget"] == 1.0), "n_labels"] = 241
    summary = summarise(rows)
    full = summary[(summary["method"] == "LEAF") & (summary["budget"] == 1.0)]
    assert len(full) == 1 and int(full["runs"].iloc[0]) == 2
    expected = rows[(rows["method"] == "LEAF") & (rows["budget"] == 1.0)]["srcc"].mean()
    assert np.isclose(full["srcc_mean"].iloc[0], expected)
    assert int(full["n_labels"].iloc[0]) in (240, 241)


def test_a_bench_of_one_split_whose_draws_agree_writes_its_report(tmp_path: Path) -> None:
    """One split, three seeds: the 0-label cell's three runs are one model, so the same value
    three times (0.7: the mean of three 0.7s is a float below 0.7). The plot crashed with
    "'yerr' must not contain negative values" (issue 31)."""
    rows = []
    for seed in (0, 1, 2):
        for budget, n, srcc in ((0.0, 0, 0.7), (0.1, 24, 0.7), (1.0, 240, 0.8 + 0.01 * seed)):
            rows.append({"split": "split_1", "seed": seed, "selection": "random",
                         "budget": budget, "n_labels": n, "method": "LEAF", "srcc": srcc,
                         "krcc": srcc - 0.2, "plcc": srcc, "plcc_fitted": srcc,
                         "rmse": 0.5, "n": 100, "seconds": 0.1})
    report = write_report(pd.DataFrame(rows), tmp_path, teacher="t", dataset="toy",
                          n_train=240, seconds=1.0, splits=["split_1"], seeds=[0, 1, 2],
                          selections=["random"])
    assert (tmp_path / "budget-srcc.png").is_file() and report.html.is_file()
    summary = pd.read_csv(tmp_path / "bench-summary.csv")
    for metric in ("srcc", "plcc"):
        assert (summary[f"{metric}_low"] <= summary[f"{metric}_mean"]).all()
        assert (summary[f"{metric}_mean"] <= summary[f"{metric}_high"]).all()
