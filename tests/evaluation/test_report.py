"""The bench's HTML report, built from rows and opened in a real headless Chromium."""

from __future__ import annotations

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


def test_the_report_renders_its_tables_and_plots_in_chromium(tmp_path: Path,
                                                            browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    pred = np.linspace(1, 4, 50)
    report = write_report(bench_rows(), tmp_path, teacher="qbench:test", dataset="toy",
                          n_train=240, seconds=12.0, splits=["split_1", "split_2"], seeds=[0],
                          selections=["random"], scatter=(pred, pred + 0.1, 24))
    browser.get(report.html.as_uri())
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h2, h3")]
    assert any("Per split" in h for h in headings) and "SRCC / KRCC" in headings
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 3  # SRCC curve, PLCC curve, scatter
    assert all(browser.execute_script("return arguments[0].naturalWidth", i) > 300
               for i in images)  # embedded PNGs decode and have real size
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "linear probe (ridge)" in text and "Seconds per run" in text
    assert "±" in text  # two splits: mean±std, never a lone ±0.000


def test_a_single_run_shows_n_instead_of_a_zero_spread() -> None:
    assert format_cell(0.5, float("nan"), 1) == "0.500 (n=1)"
    assert format_cell(0.5, 0.01, 3) == "0.500±0.010"
