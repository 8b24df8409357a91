"""From votes to MOS: screening keeps honest raters (harsh, lenient, noisy) and drops careless
ones, judging each against the other *kept* raters after their offset; it never excludes
everyone silently; revoked raters are out; ``--method mean`` says what it used; the label file
reads back as LEAF labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from leafiqa.data.readers import read_plain_csv
from leafiqa.errors import DataError
from leafiqa.labelling.screening import (
    EXCLUDED,
    FALLBACK,
    KEPT,
    REVOKED,
    UNJUDGED,
    USED,
    Votes,
    check_raters,
    describe_checks,
    estimate,
    votes_from_study,
    write_labels,
)
from leafiqa.labelling.simulate import RaterSpec, errors, simulate_panel
from leafiqa.labelling.study import Study, StudySettings
from tests.cli.test_bad_inputs import assert_user_error, invoke
from tests.cli.test_rate import photos

pytest.importorskip("sureal", reason="rating export needs sureal (pip install 'leaf-iqa[rate]')")

IMAGES = 30


def panel(specs: list[RaterSpec], seed: int, scale: str = "acr", gold: int = 2,
          repeats: int = 3) -> tuple[Votes, np.ndarray]:
    """A study of 30 images spread over the scale, rated by ``specs``; gold: a photo a lab puts
    at 4.3 and one at 1.4, entered as 5 and 1 (as the README used to advise)."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(1.5, 4.5, IMAGES)
    return simulate_panel(truth, np.full(IMAGES, 0.4), specs, scale=scale, gold=gold,
                          repeats=repeats, rng=rng, gold_truth=np.array([4.3, 1.4]))


def verdicts(votes: Votes, scale: str = "acr", method: str = "bt500") -> dict[str, str]:
    result = estimate(votes, StudySettings(scale=scale), method=method)
    return {check.rater: check.verdict for check in result.checks}


@pytest.mark.parametrize("scale", ["acr", "slider"])
def test_a_harsh_and_a_lenient_honest_rater_are_kept(scale: str) -> None:
    """A rater one level harsher (or more lenient) than the others is biased, not careless:
    kept in every draw, even where their raw gold answer misses the owner's 5 by two levels,
    with a careless rater in the panel."""
    missed_by_two = 0
    for seed in range(8):
        votes, _ = panel([RaterSpec("honest", -1.0, 0.5), RaterSpec("honest", 1.0, 0.5),
                          RaterSpec("honest", 0.0, 0.5), RaterSpec("random")], seed, scale)
        result = verdicts(votes, scale)  # (the random rater: excluded in most draws)
        assert [result[f"honest{k}"] for k in range(3)] == [KEPT] * 3, (seed, result)
        level = 25.0 if scale == "slider" else 1.0
        top_gold = votes.scores[IMAGES, 0, 0]  # the harsh rater's answer on the photo at 4.3
        missed_by_two += abs(top_gold - votes.gold[IMAGES]) >= 2 * level - 1e-9
    assert missed_by_two  # the ±1-level gold rule would have excluded them


def test_the_issues_round_keeps_both_honest_raters() -> None:
    """Issue 31: two honest raters agreeing at about .7 and one careless rater; judged against
    a mean that held the careless rater, all three were excluded. Against the kept raters'
    median, the two honest ones stay and the careless one goes, for every careless kind."""
    for seed in range(6):
        for kind in ("random", "one-button", "inverse"):
            votes, _ = panel([RaterSpec("honest", 0.3, 0.4), RaterSpec("honest", -0.2, 0.4),
                              RaterSpec(kind)], seed)
            result = verdicts(votes)
            assert result == {"honest0": KEPT, "honest1": KEPT, f"{kind}2": EXCLUDED}, \
                (seed, kind, result)


def test_careless_raters_are_excluded_with_the_reason_said() -> None:
    votes, _ = panel([RaterSpec("honest", 0.0, 0.4), RaterSpec("honest", 0.5, 0.6),
                      RaterSpec("honest", -0.5, 0.5), RaterSpec("random"),
                      RaterSpec("one-button"), RaterSpec("inverse")], seed=3)
    result = estimate(votes, StudySettings())
    checks = {check.rater: check for check in result.checks}
    assert [checks[f"honest{k}"].verdict for k in range(3)] == [KEPT] * 3
    assert any("one button" in reason for reason in checks["one-button4"].reasons)
    assert checks["inverse5"].correlation < -0.3
    assert any("agree" in reason for reason in checks["random3"].reasons)
    lines = describe_checks(result.checks)
    assert all(line.endswith("→ kept") for line in lines[:3]), lines
    assert all("→ excluded: " in line for line in lines[3:6]), lines


def test_a_noisy_honest_rater_is_not_lost_to_one_gold_answer() -> None:
    """One gold answer off by two levels (after the rater's offset) is not enough: gold
    excludes only when most gold answers miss."""
    votes, _ = panel([RaterSpec("honest", 0.0, 0.4), RaterSpec("honest", 0.0, 0.4),
                      RaterSpec("honest", 0.0, 0.7)], seed=5)
    votes.scores[IMAGES, 2, 0] = 2.0  # the photo at 4.3 (entered as 5) answered "Poor"
    checks = {check.rater: check for check in check_raters(votes, StudySettings())}
    assert checks["honest2"].gold_pass == 0.5 and checks["honest2"].kept


def test_an_all_excluded_study_falls_back_and_says_so() -> None:
    """Three raters answering at random: nobody passes. The export neither stops nor passes it
    off as screened: the two who agree best are kept, and a warning says so."""
    votes, _ = panel([RaterSpec("random"), RaterSpec("random"), RaterSpec("random")], seed=1)
    result = estimate(votes, StudySettings())
    assert sorted(check.verdict for check in result.checks) == [EXCLUDED, FALLBACK, FALLBACK]
    assert not np.isnan(result.mos).any() and set(result.n) == {2}
    lines = describe_checks(result.checks)
    assert sum("→ kept by the fallback (failed: " in line for line in lines) == 2
    assert lines[-1].startswith("warning: no rater passed the checks; ")
    assert "agree best" in lines[-1] and "before trusting them" in lines[-1]


def test_two_raters_who_disagree_with_nothing_to_tell_them_apart_fall_back() -> None:
    votes, _ = panel([RaterSpec("honest", 0.0, 0.5), RaterSpec("random")], seed=2, gold=0,
                     repeats=0)
    votes.scores[:, 1, 0] = votes.scores[::-1, 0, 0]  # the same votes, in another order
    result = estimate(votes, StudySettings())
    assert [check.verdict for check in result.checks] == [FALLBACK, FALLBACK]
    assert describe_checks(result.checks)[-1].startswith("warning: ")


def test_gold_tells_an_honest_rater_from_a_random_one_when_they_are_alone() -> None:
    votes, _ = panel([RaterSpec("honest", 0.0, 0.3), RaterSpec("random")], seed=4, gold=2)
    votes.scores[IMAGES:, 1, 0] = [1.0, 5.0]  # the random rater: both gold answers reversed
    assert verdicts(votes) == {"honest0": KEPT, "random1": EXCLUDED}


def test_a_revoked_rater_is_excluded_and_said() -> None:
    votes, _ = panel([RaterSpec("honest", 0.0, 0.4)] * 4, seed=6)
    votes.revoked = [False, True, False, False]
    result = estimate(votes, StudySettings())
    assert result.checks[1].verdict == REVOKED and not result.checks[1].kept
    assert set(result.n) == {3}
    assert describe_checks(result.checks)[1].endswith("→ excluded: revoked")
    mean = estimate(votes, StudySettings(), method="mean")
    assert mean.checks[1].verdict == REVOKED and set(mean.n) == {3}
    assert "(1 revoked left out)" in describe_checks(mean.checks)[-1]


def test_method_mean_says_used_for_every_rater_it_uses() -> None:
    votes, _ = panel([RaterSpec("honest", 0.0, 0.4), RaterSpec("honest", 0.0, 0.4),
                      RaterSpec("random")], seed=7)
    result = estimate(votes, StudySettings(), method="mean")
    assert [check.verdict for check in result.checks] == [USED] * 3 and set(result.n) == {3}
    lines = describe_checks(result.checks)
    assert not any("excluded" in line for line in lines), lines
    assert lines[2].startswith("random2: ") and "→ used (the checks would flag: " in lines[2]
    assert lines[-1] == "no screening: the MOS is the mean of every vote of 3 rater(s)"


def test_three_identical_votes_do_not_make_a_rater_the_only_source_of_a_label() -> None:
    """A rater who stopped after 3 votes (all the same button) cannot be judged: their votes
    are not used while judged raters are kept, so an image only they rated gets no label."""
    votes, _ = panel([RaterSpec("honest", 0.0, 0.4), RaterSpec("honest", 0.0, 0.4),
                      RaterSpec("honest", 0.0, 0.4)], seed=8)
    votes.scores[:, 2, :] = np.nan
    votes.scores[:3, 2, 0] = 5.0
    votes.scores[:3, :2, :] = np.nan  # images 0–2: only the third rater's votes
    result = estimate(votes, StudySettings())
    check = result.checks[2]
    assert check.verdict == UNJUDGED and not check.kept
    assert "too few votes to judge: 0 study images shared" in check.reasons[0]
    assert np.isnan(result.mos[:3]).all() and (result.n[:3] == 0).all()
    assert "→ not used: too few votes to judge" in describe_checks(result.checks)[2]


def test_nobody_judgeable_uses_every_vote_and_warns() -> None:
    votes, _ = panel([RaterSpec("honest", 0.0, 0.4)] * 2, seed=9)
    votes.scores[6:IMAGES] = np.nan  # six study images: too few to judge anyone
    result = estimate(votes, StudySettings())
    assert [check.verdict for check in result.checks] == [FALLBACK, FALLBACK]
    assert (result.n[:6] == 2).all()
    assert "too few shared votes to judge any rater" in describe_checks(result.checks)[-1]


def test_screening_recovers_the_true_mos_better_than_a_plain_mean() -> None:
    """Honest raters with offsets and noise, a third of the panel careless: the screened MOS
    is closer to the truth than the plain mean, in every one of 6 simulated studies."""
    for seed in range(6):
        specs = [RaterSpec("honest", o, n) for o, n in ((-0.8, 0.6), (0.5, 0.3), (0.0, 0.8),
                                                        (0.9, 0.5))]
        specs += [RaterSpec("random"), RaterSpec("inverse")]
        votes, truth = panel(specs, seed)
        screened = errors(estimate(votes, StudySettings()).mos, truth)
        plain = errors(estimate(votes, StudySettings(), method="mean").mos, truth)
        assert screened["srcc"] > plain["srcc"] + 0.05, seed
        assert screened["rmse"] < plain["rmse"], seed


def test_partial_coverage_takes_each_rater_offset_out_of_the_mos() -> None:
    """A harsh rater who rated only half the images does not pull those images down."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(2.5, 4.5, 40)  # the harsh rater's votes stay on the scale
    votes, _ = simulate_panel(truth, np.full(40, 0.05), [RaterSpec("honest", 0.0, 0.1)] * 3
                              + [RaterSpec("honest", -1.0, 0.1)], scale="slider", gold=0,
                              repeats=0, rng=rng)
    votes.scores[20:, 3, :] = np.nan
    result = estimate(votes, StudySettings(scale="slider"))
    assert result.checks[3].offset < -0.6  # against the panel's average rater

    def halves_apart(mos: np.ndarray) -> float:  # mean error, rated by all four vs by three
        error = mos - (truth - 1) * 25
        return abs(error[:20].mean() - error[20:].mean())

    plain = estimate(votes, StudySettings(scale="slider"), method="mean").mos
    assert halves_apart(plain) > 5.0  # a quarter of the harsh rater's 25 points
    assert halves_apart(result.mos) < 1.0


votes_matrix = hnp.arrays(np.float64, st.tuples(st.integers(8, 16), st.integers(2, 5)),
                          elements=st.sampled_from([np.nan, 1.0, 2.0, 3.0, 4.0, 5.0]))


@settings(max_examples=40, derandomize=True, deadline=None)
@given(first=votes_matrix, revoked=st.lists(st.booleans(), min_size=5, max_size=5))
def test_any_votes_get_a_said_verdict_and_never_an_unexplained_empty_export(
        first: np.ndarray, revoked: list[bool]) -> None:
    images, raters = first.shape
    scores = np.stack([first, np.full_like(first, np.nan)], axis=2)
    votes = Votes([f"i{k}" for k in range(images)], [f"r{s}" for s in range(raters)], scores,
                  np.full(images, np.nan), revoked[:raters])
    result = estimate(votes, StudySettings())
    lines = describe_checks(result.checks)
    for s, check in enumerate(result.checks):
        assert check.verdict in (KEPT, EXCLUDED, REVOKED, UNJUDGED, FALLBACK)
        assert not (check.kept and revoked[s])
        assert check.verdict in (KEPT, REVOKED) or check.reasons or check.note
    kept = [check.kept for check in result.checks]
    assert (result.n == np.sum(~np.isnan(first[:, kept]), axis=1)).all()
    assert np.nanmin(result.mos, initial=5.0) >= 1.0 and np.nanmax(result.mos, initial=1.0) <= 5
    if np.isnan(result.mos).all():  # nothing to export: every rater is out, and it is said
        assert not any(kept) and lines[-1].startswith("warning: no rater can be used")


@settings(max_examples=25, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**16), careless=st.sampled_from(["random", "one-button",
                                                              "inverse"]))
def test_a_revoked_rater_weighs_exactly_like_no_rater_and_scales_do_not_matter(
        seed: int, careless: str) -> None:
    """Revoking a rater gives the verdicts and MOS of the study without them; the same votes
    on the slider (25 points a level) get the same verdicts as on the ACR scale."""
    specs = [RaterSpec("honest", 0.5, 0.5), RaterSpec("honest", -0.5, 0.7),
             RaterSpec(careless), RaterSpec("honest", 0.0, 0.4)]
    votes, _ = panel(specs, seed)
    revoked = Votes(votes.names, votes.raters, votes.scores, votes.gold, [False, True] + [False]
                    * 2)
    without = Votes(votes.names, votes.raters[:1] + votes.raters[2:],
                    np.delete(votes.scores, 1, axis=1), votes.gold)
    a, b = estimate(revoked, StudySettings()), estimate(without, StudySettings())
    assert [c.verdict for c in a.checks[:1] + a.checks[2:]] == [c.verdict for c in b.checks]
    np.testing.assert_allclose(a.mos, b.mos)
    slider = Votes(votes.names, votes.raters, (votes.scores - 1) * 25, (votes.gold - 1) * 25)
    on_slider = estimate(slider, StudySettings(scale="slider"))
    on_acr = estimate(votes, StudySettings())
    assert [c.verdict for c in on_slider.checks] == [c.verdict for c in on_acr.checks]
    np.testing.assert_allclose(on_slider.mos, (on_acr.mos - 1) * 25)


def test_export_writes_labels_leaf_reads_as_they_are(tmp_path: Path, study: Study) -> None:
    raters = [rater for rater, _ in study.add_raters(3)]
    images = {image.id: image for image in study.images()}
    level = {f"img{k}.jpg": 5 - k // 2 for k in range(8)}  # sharper = better
    level |= {"gold_good.jpg": 5, "gold_bad.jpg": 1}
    for rater in raters[:2]:
        for step in range(rater.total):
            name = images[study.step(rater.id, step).image_id].name
            study.record(rater.id, step, float(max(1, min(5, level[name] + rater.id % 2))))
    out = tmp_path / "labels" / "labels.csv"
    result = estimate(votes_from_study(study), study.settings)
    assert [check.verdict for check in result.checks] == [KEPT, KEPT]
    assert write_labels(study, out, result) == 8
    header = out.read_text().splitlines()[0]
    assert header == "name,mos,std,n,se"
    manifest = read_plain_csv(out)  # what `leaf calibrate --labels` and `leaf run` read
    assert len(manifest) == 8 and all(item.path.is_file() for item in manifest)
    by_file = {item.path.name: item for item in manifest}
    assert by_file["img0.jpg"].mos == 5.0 and by_file["img0.jpg"].std == 0.0
    assert by_file["img2.jpg"].mos == 4.5  # votes 4 and 5
    assert by_file["img2.jpg"].std == pytest.approx(np.std([4, 5], ddof=1), abs=1e-4)
    assert "gold_good.jpg" not in by_file  # gold images are not exported
    assert not list(out.parent.glob("*.partial"))


def test_export_with_no_kept_ratings_is_one_clear_error(tmp_path: Path, study: Study) -> None:
    study.add_raters(1)
    with pytest.raises(DataError, match="no ratings from a kept rater yet"):
        write_labels(study, tmp_path / "labels.csv", estimate(votes_from_study(study),
                                                              study.settings))
    assert not (tmp_path / "labels.csv").exists()


def rate_everything(study: Study, answer) -> None:  # noqa: ANN001 - (rater label, name) → value
    for rater in study.raters():
        for step in range(rater.total):
            name = study.image(study.step(rater.id, step).image_id).name
            study.record(rater.id, step, float(answer(rater.label, name)))


def test_export_of_a_study_of_careless_raters_warns_and_revoking_one_is_said(
        tmp_path: Path) -> None:
    """`leaf ratings export` on a study nobody rated carefully writes the fallback's labels
    with a warning; a rater revoked afterwards is listed as excluded: revoked; `--method
    mean` lists every rater it used as used."""
    folder = photos(tmp_path / "photos", count=12)
    assert invoke("rate", "create", tmp_path / "study", "--images", folder / "selected.csv",
                  "--gold", folder / "gold.csv", "--raters", "3", "--repeats", "2"
                  ).exit_code == 0
    study = Study(tmp_path / "study")
    rng = np.random.default_rng(0)
    rate_everything(study, lambda rater, name: int(rng.integers(1, 6)))
    out = folder / "labels.csv"
    exported = invoke("ratings", "export", tmp_path / "study", "--out", out)
    assert exported.exit_code == 0, exported.output
    assert exported.output.count("→ kept by the fallback") == 2
    assert "warning: no rater passed the checks;" in exported.output
    assert out.is_file() and len(out.read_text().splitlines()) == 13
    assert invoke("rate", "revoke", tmp_path / "study", "rater3").exit_code == 0
    again = invoke("ratings", "export", tmp_path / "study", "--out", out)
    assert "rater3: 16 votes" in again.output and "→ excluded: revoked" in again.output
    mean = invoke("ratings", "export", tmp_path / "study", "--out", out, "--method", "mean")
    assert mean.exit_code == 0 and mean.output.count("→ used") == 2
    assert "excluded" not in mean.output.replace("→ excluded: revoked", "")


def test_gold_on_the_acr_scale_is_refused_for_a_slider_study(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos", count=3)  # gold.csv: good.jpg,5 and bad.jpg,1
    result = invoke("rate", "create", tmp_path / "study", "--images", folder / "selected.csv",
                    "--gold", folder / "gold.csv", "--scale", "slider")
    assert_user_error(result, "gold:", "slider (0–100)", "ACR scale (1–5)")
    assert not (tmp_path / "study").exists()
    (folder / "gold100.csv").write_text("name,value\ngood.jpg,90\nbad.jpg,5\n")
    result = invoke("rate", "create", tmp_path / "study", "--images", folder / "selected.csv",
                    "--gold", folder / "gold100.csv", "--scale", "slider")
    assert result.exit_code == 0, result.output
