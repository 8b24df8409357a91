"""From raw ratings to MOS: which raters to trust, then one MOS per image in a ``name,mos,std,n``
table that ``leaf calibrate --labels`` and ``leaf run`` read as is.

Screening judges each rater against the *kept* raters, after each rater's own offset is taken
out (ITU-T P.913's subject model: a vote is the image's quality + the rater's bias + noise; a
consistent harsh or lenient rater is biased, not careless):

1. revoked raters are out; a rater whose votes barely vary (one button) is out;
2. a rater who shares too few study images with the others cannot be judged, and is said so
   (their votes are not used while judged raters are kept);
3. agreement: Pearson r between a rater's votes and the median of the *other kept* raters'
   offset-free votes (leave-one-out, robust), on the study and gold images. It must be above
   chance (Fisher's z, atanh(r)·√(n − 3), at least ``min_agreement_z``); when it is only weakly
   above (z below ``weak_agreement_z``, judged against two or more others) every gold answer
   must pass and the repeats must agree. Starting from everyone, the worst rater that fails is
   dropped and the rest are judged again without them, until nobody fails; then every dropped
   rater is judged once more against the final panel and taken back if they pass. A careless
   rater is thus never part of the consensus an honest rater is measured against; the last of
   two raters who disagree stays only if every gold answer passes and their repeats agree;
4. gold: a gold answer, after the rater's offset, passes within a tolerance of the owner's
   answer (one-sided at the ends of the scale, where an honest vote can only fall short) or of
   the other kept raters' median on that image; most gold answers missed fails;
5. never everyone silently: when nobody passes, the two raters who agree best are kept, and
   the export says so (``describe_checks``).

``--method bt500`` (default) then applies ITU-R BT.500 subject screening to the kept raters'
offset-free votes (``sureal``'s ``BR_SR_MOS``) when they are 15 or more (BT.500's own minimum
panel; with fewer its per-image ±2σ rejects honest noisy raters) and gives each image the mean of
its kept votes, each taken less its rater's offset (with every rater on every image, the plain
mean); ``std`` and ``n`` are those votes' spread and count. ``mle`` runs P.913's
maximum-likelihood subject model on the kept raters instead (with a handful of raters its
inconsistency estimate can collapse to zero for one rater and hand them the MOS, so it is not
the default). ``mean`` screens nobody: every vote of every rater not revoked. The constants
are in :class:`ScreeningRules` (chosen on simulated studies,
benchmarks/bench_rating_screening.py)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leafiqa.data.manifest import FORMULA_STARTS, printable
from leafiqa.data.readers import scale_declaration
from leafiqa.errors import DataError
from leafiqa.labelling.reliability import label_noise
from leafiqa.labelling.study import Study, StudySettings

METHODS = ("bt500", "mle", "mean")
# BT.500's subject screening marks votes outside each image's mean ± 2σ; it asks for 15 or more
# observers. With fewer (a study of 6–8 raters) its mean and σ rest on too few votes: on
# simulated studies it rejected honest noisy raters the checks had kept, and excluded about as
# many careless ones as the checks alone (benchmarks/bench_rating_screening.py --data
# ../shared/data/agiqa3k --studies 100 with and without --bt500-min-raters 2;
# docs/results/screening.md)
BT500_MIN_RATERS = 15

KEPT = "kept"
EXCLUDED = "excluded"
REVOKED = "revoked"
UNJUDGED = "not judged"
FALLBACK = "kept by the fallback"
USED = "used"


@dataclass(frozen=True)
class ScreeningRules:
    """What decides which raters are kept, in ACR levels (a 0–100 slider's 25 points are one
    level). Chosen on simulated studies drawn from AGIQA-3K's MOS
    (``benchmarks/bench_rating_screening.py --data ../shared/data/agiqa3k --tune``), and
    checked on clive-dev with these values (docs/results/screening.md)."""

    min_votes: int = 8            # study images a rater shares with the others, to be judged
    min_spread: float = 0.3       # std of a rater's votes below this: one button
    # agreement: Pearson r with the median of the other kept raters, as a one-sided z score
    # (Fisher's atanh(r)·√(n − 3) over the n images both rated): how far above chance it is,
    # whatever the study's size. 27 images (25 + 2 gold): z 1.25 is r .25, z 2.25 is r .43
    min_agreement_z: float = 1.25  # below it: fails
    weak_agreement_z: float = 2.25  # below it: kept only with every gold answer and repeat fine
    max_repeat_difference: float = 1.4  # mean |first − second| of a rater's repeats
    gold_tolerance: float = 2.0   # a gold answer, less the rater's offset, this close passes
    min_gold_pass: float = 0.5    # share of gold answers that must pass


RULES = ScreeningRules()


@dataclass
class Votes:
    """``scores[e, s, r]``: rater ``s``'s ``r``-th vote on image ``e`` (NaN where none);
    ``gold[e]``: the known answer of a hidden gold image, NaN for a study image; ``revoked[s]``:
    the owner revoked rater ``s`` (empty: nobody)."""

    names: list[str]
    raters: list[str]
    scores: np.ndarray
    gold: np.ndarray
    revoked: list[bool] = field(default_factory=list)

    def is_revoked(self, rater: int) -> bool:
        return bool(self.revoked) and bool(self.revoked[rater])


@dataclass
class RaterCheck:
    """One rater's figures (levels) and verdict. ``correlation`` and ``offset`` are against
    the kept raters' consensus (leaving the rater out when they are one of them); ``reasons``:
    what the checks hold against the rater (also for a rater kept by the fallback or used by
    ``--method mean``, for information)."""

    rater: str
    votes: int
    gold_pass: float | None = None
    gold_answers: int = 0
    repeat_difference: float | None = None
    spread: float | None = None
    correlation: float | None = None
    offset: float | None = None
    reasons: list[str] = field(default_factory=list)
    verdict: str = KEPT
    note: str = ""
    screened_out: bool = False  # by BT.500

    @property
    def kept(self) -> bool:
        """Whether the rater's votes make the MOS."""
        return self.verdict in (KEPT, FALLBACK, USED)


@dataclass
class Estimate:
    mos: np.ndarray   # per study image (gold rows removed), NaN where no kept vote
    std: np.ndarray
    n: np.ndarray
    names: list[str]
    checks: list[RaterCheck]
    #: each MOS's standard error against a large panel's (``labelling.reliability``), on the
    #: study's scale; NaN where it cannot be told (one kept rater)
    se: np.ndarray | None = None


def votes_from_study(study: Study) -> Votes:
    images = study.images()
    raters = [rater for rater in study.raters() if rater.done]
    row = {image.id: k for k, image in enumerate(images)}
    column = {rater.id: k for k, rater in enumerate(raters)}
    scores = np.full((len(images), len(raters), 2), np.nan)
    for rating in study.ratings():
        if rating.rater_id in column:
            scores[row[rating.image_id], column[rating.rater_id], int(rating.repeat)] = \
                rating.value
    gold = np.array([np.nan if image.gold is None else image.gold for image in images])
    return Votes([image.name for image in images], [rater.label for rater in raters], scores,
                 gold, [rater.revoked for rater in raters])


def _levels(values: np.ndarray, settings: StudySettings) -> np.ndarray:
    """Votes on the study's scale → ACR levels (1..5)."""
    return (np.asarray(values, dtype=np.float64) - settings.low) / settings.level + 1.0


def _per_rater(levels: np.ndarray) -> np.ndarray:
    """images × raters: each rater's vote, their repeats averaged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(levels, axis=2)


def _consensus(matrix: np.ndarray, members: Sequence[int], offsets: np.ndarray,
               centre=np.nanmedian) -> np.ndarray:  # noqa: ANN001 - nanmedian or nanmean
    """Per row: the ``centre`` of the members' offset-free votes (NaN where none voted)."""
    if not len(members):
        return np.full(len(matrix), np.nan)
    members = list(members)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return centre(matrix[:, members] - offsets[members], axis=1)


def _fit_offsets(matrix: np.ndarray, members: Sequence[int], centre=np.nanmedian,  # noqa: ANN001
                 rounds: int = 6) -> np.ndarray:
    """Each member's bias (P.913: a vote = quality + bias + noise) against the ``centre`` of
    the members' offset-free votes, centred on 0 over the members; 0 for everyone else."""
    offsets = np.zeros(matrix.shape[1])
    members = list(members)
    if len(members) < 2:
        return offsets
    for _ in range(rounds):
        consensus = _consensus(matrix, members, offsets, centre)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fitted = np.nanmean(matrix[:, members] - consensus[:, None], axis=0)
        offsets[members] = np.nan_to_num(fitted)
        offsets[members] -= offsets[members].mean()
    return offsets


def _pearson(a: np.ndarray, b: np.ndarray, minimum: int) -> tuple[float | None, int]:
    """(r, shared rows) over the rows where both are known; r None below ``minimum`` rows and
    0 when either side does not vary (a constant says nothing about the images)."""
    shared = ~np.isnan(a) & ~np.isnan(b)
    count = int(shared.sum())
    if count < max(minimum, 3):
        return None, count
    x, y = a[shared], b[shared]
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0, count
    return float(np.corrcoef(x, y)[0, 1]), count


def _near_gold(answer: np.ndarray, gold: np.ndarray, tolerance: float) -> np.ndarray:
    """Within ``tolerance`` of the owner's answer; at an end of the scale only falling short
    counts (an honest rater's offset-free vote on a photo entered as 5 may exceed 5)."""
    top, bottom = gold >= 5.0 - 1e-9, gold <= 1.0 + 1e-9
    return np.where(top, answer >= gold - tolerance - 1e-9,
                    np.where(bottom, answer <= gold + tolerance + 1e-9,
                             np.abs(answer - gold) <= tolerance + 1e-9))


def _r_for_z(z: float, images: int) -> float:
    """The Pearson r whose Fisher z score over ``images`` images is ``z``."""
    return float(np.tanh(z / np.sqrt(max(images - 3, 1))))


@dataclass
class _Judgement:
    correlation: float | None
    shared: int  # images the correlation is over
    offset: float
    gold_hits: int
    gold_answers: int
    failures: list[str]

    @property
    def gold_pass(self) -> float | None:
        return self.gold_hits / self.gold_answers if self.gold_answers else None

    @property
    def badness(self) -> tuple[int, float, float]:
        """Order of dropping: most failed checks, then lowest agreement, then fewest gold
        answers passed."""
        return (len(self.failures),
                -(1.0 if self.correlation is None else self.correlation),
                -(1.0 if self.gold_pass is None else self.gold_pass))


@dataclass
class _Ratings:
    """A study's votes in ACR levels, as screening reads them."""

    per: np.ndarray                # rows × raters: each rater's vote, repeats averaged
    study: np.ndarray              # per row: a study image (else gold)
    gold: np.ndarray               # per row: the owner's gold answer, NaN for study images
    repeat_difference: np.ndarray  # per rater: mean |first − second| over repeats, or NaN
    rules: ScreeningRules

    def offsets(self, members: Sequence[int]) -> np.ndarray:
        return _fit_offsets(self.per[self.study], members)

    def judge(self, rater: int, others: Sequence[int], fitted: Sequence[int],
              offsets: np.ndarray) -> _Judgement:
        """A rater against the median of ``others``' offset-free votes (``offsets`` fitted
        over ``fitted``): agreement (study and gold images: picked clear, gold images widen the
        range agreement is seen on), offset (study images), gold answers after the offset."""
        rules, study = self.rules, self.study
        consensus = _consensus(self.per, others, offsets)
        mine = self.per[:, rater]
        correlation, shared = _pearson(mine, consensus, rules.min_votes)
        if rater in fitted:
            offset = float(offsets[rater])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                offset = float(np.nan_to_num(np.nanmean(mine[study] - consensus[study])))
        answered = ~study & ~np.isnan(mine)
        answer = mine[answered] - offset
        hits = _near_gold(answer, self.gold[answered], rules.gold_tolerance) | (
            np.abs(answer - consensus[answered]) <= rules.gold_tolerance + 1e-9)
        judgement = _Judgement(correlation, shared, offset, int(hits.sum()),
                               int(answered.sum()), [])
        judgement.failures = self._failures(judgement, float(self.repeat_difference[rater]),
                                            len(others))
        return judgement

    def _failures(self, judgement: _Judgement, repeats: float, others: int) -> list[str]:
        """Agreement below ``min_agreement_z`` fails; below ``weak_agreement_z`` (against two
        or more others: one other rater's own noise lowers r) it fails unless the rater's gold
        answers all pass and their repeats agree (what was measured of them, at least one);
        gold mostly missed fails."""
        rules, failures = self.rules, []
        r, gold, images = judgement.correlation, judgement.gold_pass, judgement.shared
        median = "with the other kept raters' median"
        least, weak = (_r_for_z(rules.min_agreement_z, images),
                       _r_for_z(rules.weak_agreement_z, images))
        if r is not None and r < least:
            failures.append(f"votes agree r {r:.2f} {median} (minimum {least:.2f} on "
                            f"{images} images)")
        elif r is not None and r < weak and others >= 2:
            signs = []
            if gold is not None and gold < 1.0:
                signs.append(f"gold {judgement.gold_hits}/{judgement.gold_answers} within "
                             f"±{rules.gold_tolerance:g} levels")
            if repeats > rules.max_repeat_difference:
                signs.append(f"repeats differ by {repeats:.2f} levels on average (limit "
                             f"{rules.max_repeat_difference:g})")
            if gold is None and np.isnan(repeats):
                signs.append("no gold answers or repeats to vouch for them")
            if signs:
                failures.append(f"votes agree only r {r:.2f} {median} (below {weak:.2f} on "
                                f"{images} images), and {'; '.join(signs)}")
        if gold is not None and gold < rules.min_gold_pass:
            failures.append(f"gold {judgement.gold_hits}/{judgement.gold_answers} within "
                            f"±{rules.gold_tolerance:g} levels after its offset "
                            f"({judgement.offset:+.2f})")
        return failures

    def drop_until_agreed(self, raters: Sequence[int]
                          ) -> tuple[list[int], dict[int, list[str]]]:
        """Judge every rater against the others still kept and drop the worst one that fails,
        until nobody fails. Two raters who disagree with nothing (gold, repeats) to tell them
        apart are both dropped. Returns the kept raters and, per dropped rater, what they
        failed when dropped."""
        kept, dropped = list(raters), dict[int, list[str]]()
        while len(kept) >= 2:
            offsets = self.offsets(kept)
            judged = {s: self.judge(s, [t for t in kept if t != s], kept, offsets)
                      for s in kept}
            failing = [s for s in kept if judged[s].failures]
            if not failing:
                break
            if len(kept) == 2 and len(failing) == 2 and \
                    judged[kept[0]].badness == judged[kept[1]].badness:
                dropped |= {s: judged[s].failures for s in kept}
                return [], dropped
            worst = max(failing, key=lambda s: judged[s].badness)
            dropped[worst] = judged[worst].failures
            kept.remove(worst)
        return kept, dropped

    def screen(self, raters: Sequence[int]) -> tuple[list[int], dict[int, list[str]]]:
        """:meth:`drop_until_agreed`, then every dropped rater judged once more against the
        final panel (a rater dropped while a careless one was still in it gets a fair second
        look): those who pass come back, and the panel is checked again."""
        kept, dropped = self.drop_until_agreed(raters)
        returned: set[int] = set()
        while kept:
            offsets = self.offsets(kept)
            back = [s for s in dropped if s not in returned
                    and not self.judge(s, kept, kept, offsets).failures]
            if not back:
                break
            returned |= set(back)
            for rater in back:
                del dropped[rater]
            kept, again = self.drop_until_agreed(kept + back)
            dropped |= again
        if len(kept) == 1:  # the one left of two who disagreed: kept only when vouched for
            survivor = self.survivor_failures(kept[0])
            if survivor:
                dropped[kept.pop()] = survivor
        return kept, dropped

    def survivor_failures(self, rater: int) -> list[str]:
        """Why the last rater left cannot stand alone: with nobody to agree with, every gold
        answer must pass (against the owner's answer) and the repeats must agree."""
        alone = self.judge(rater, [], [rater], np.zeros(self.per.shape[1]))
        repeats = float(self.repeat_difference[rater])
        failures = [] if alone.gold_pass == 1.0 else [
            "left alone, and not every gold answer passed (nobody else to agree with)"
            if alone.gold_answers else "left alone, with no gold answers to vouch for them"]
        if repeats > self.rules.max_repeat_difference:
            failures.append(f"left alone, and repeats differ by {repeats:.2f} levels on average "
                            f"(limit {self.rules.max_repeat_difference:g})")
        return failures


def check_raters(votes: Votes, settings: StudySettings,
                 rules: ScreeningRules = RULES) -> list[RaterCheck]:
    """Every rater's figures and verdict (kept, excluded, revoked, not judged, or kept by the
    fallback when nobody passes); see the module's docstring for the rules."""
    levels = _levels(votes.scores, settings)
    study = np.isnan(votes.gold)
    checks = []
    repeats = np.full(len(votes.raters), np.nan)
    for s, rater in enumerate(votes.raters):
        mine = levels[:, s, :]
        check = RaterCheck(rater, int(np.sum(~np.isnan(mine))))
        both = ~np.isnan(mine[:, 0]) & ~np.isnan(mine[:, 1])
        if both.any():
            repeats[s] = check.repeat_difference = float(
                np.mean(np.abs(mine[both, 0] - mine[both, 1])))
        values = mine[~np.isnan(mine)]
        if values.size >= rules.min_votes:
            check.spread = float(np.std(values))
        checks.append(check)
    ratings = _Ratings(_per_rater(levels), study, _levels(votes.gold, settings), repeats, rules)
    pool = []
    for s, check in enumerate(checks):
        if votes.is_revoked(s):
            check.verdict = REVOKED
        elif check.votes == 0:
            check.verdict, check.reasons = EXCLUDED, ["no votes"]
        elif check.spread is not None and check.spread < rules.min_spread:
            check.verdict = EXCLUDED
            check.reasons.append(f"votes spread only {check.spread:.2f} levels (one button; "
                                 f"minimum {rules.min_spread:g})")
        else:
            pool.append(s)
    judged = []
    voted = ~np.isnan(ratings.per[study])
    for s in pool:
        others = [t for t in pool if t != s]
        shared = int(np.sum(voted[:, s] & voted[:, others].any(axis=1))) if others else 0
        if shared >= rules.min_votes:
            judged.append(s)
        else:
            checks[s].verdict = UNJUDGED
            checks[s].reasons.append(f"too few votes to judge: {shared} study images shared "
                                     f"with other raters ({rules.min_votes} needed)")
    kept, dropped = ratings.screen(judged)
    _record(ratings, checks, kept, dropped)
    if not kept:
        _fall_back(ratings, checks, judged, [s for s in pool if s not in judged])
    return checks


def _record(ratings: _Ratings, checks: list[RaterCheck], kept: list[int],
            dropped: dict[int, list[str]]) -> None:
    """Figures of the judged raters against the final panel (the kept raters, leaving the
    rater out when they are one of them) and the verdicts."""
    panel = kept or list(dropped)
    offsets = ratings.offsets(panel)
    for s in [*kept, *dropped]:
        judgement = ratings.judge(s, [t for t in panel if t != s], panel, offsets)
        check = checks[s]
        check.correlation, check.offset = judgement.correlation, judgement.offset
        check.gold_pass, check.gold_answers = judgement.gold_pass, judgement.gold_answers
        if s in dropped:
            check.verdict = EXCLUDED
            check.reasons = (judgement.failures if kept and judgement.failures
                             else dropped[s]) or ["disagrees with the only other rater, and "
                                                  "nothing tells which of them is right"]


def _fall_back(ratings: _Ratings, checks: list[RaterCheck], judged: list[int],
               unjudged: list[int]) -> None:
    """Nobody passed: keep the two judged raters who agree best, or (nobody could be judged)
    every rater not already out; their checks say so."""
    best: tuple[float, list[int]] | None = None
    study = ratings.per[ratings.study]
    for k, a in enumerate(judged):
        for b in judged[k + 1:]:
            r, _ = _pearson(study[:, a], study[:, b], ratings.rules.min_votes)
            if r is not None and (best is None or r > best[0]):
                best = (r, [a, b])
    if best is not None:
        chosen = best[1]
        note = (f"no rater passed the checks; {checks[chosen[0]].rater} and "
                f"{checks[chosen[1]].rater} agree best (r {best[0]:.2f})")
    else:
        chosen = judged or unjudged
        note = ("too few shared votes to judge any rater; their votes are used unchecked"
                if not judged else "no rater passed the checks, and no two can be compared")
    for s in chosen:
        checks[s].verdict, checks[s].note = FALLBACK, note


def _sureal_dataset(matrix: np.ndarray):  # noqa: ANN202 - sureal's duck-typed dataset
    from types import SimpleNamespace

    rows = range(matrix.shape[0])
    return SimpleNamespace(
        dataset_name="leaf", ref_videos=[{"content_id": e, "content_name": str(e)} for e in rows],
        dis_videos=[{"content_id": e, "asset_id": e,
                     "os": {str(s): float(v) for s, v in enumerate(matrix[e])
                            if not np.isnan(v)}} for e in rows])


def run_sureal(matrix: np.ndarray, method: str) -> tuple[np.ndarray, list[bool]]:
    """(quality per row, rejected per column) from sureal for an images × raters matrix with
    NaN gaps; sureal's progress printing and numpy warnings are kept off the console.
    ``bt500``: ITU-R BT.500 subject screening on offset-free votes (``BR_SR_MOS``); ``mle``:
    P.913's subject model (bias and inconsistency; content-oblivious MLE: the full model's
    content ambiguity term diverged on simulated 5-level votes)."""
    try:
        from sureal.dataset_reader import RawDatasetReader
        from sureal.subjective_model import (
            BiasremvSubjrejMosModel,
            MaximumLikelihoodEstimationModelContentOblivious,
        )
    except ImportError:
        raise DataError("rating export needs the 'sureal' package: pip install "
                        "'leaf-iqa[rate]' (or use --method mean)") from None
    reader = RawDatasetReader(_sureal_dataset(matrix))
    model = BiasremvSubjrejMosModel if method == "bt500" else \
        MaximumLikelihoodEstimationModelContentOblivious
    with warnings.catch_warnings(), np.errstate(all="ignore"), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            result = model(reader).run_modeling()
        except (ValueError, AssertionError, np.linalg.LinAlgError) as error:
            raise DataError(f"--method {method}: sureal's model failed on these ratings "
                            f"({error}); try --method bt500") from None
    observers = [int(o) for o in result.get("observers", range(matrix.shape[1]))]
    rejected = [False] * matrix.shape[1]
    for observer, flag in zip(observers, result.get("observer_rejected",
                                                    [False] * len(observers)), strict=True):
        rejected[observer] = bool(flag)
    return np.asarray(result["quality_scores"], dtype=np.float64), rejected


def estimate(votes: Votes, settings: StudySettings, method: str = "bt500",
             use_checks: bool = True, rules: ScreeningRules | None = None) -> Estimate:
    """MOS of the study images (gold rows removed). ``bt500``/``mle``: the raters
    :func:`check_raters` keeps (every rater not revoked with ``use_checks=False``), screened by
    BT.500 or modelled by P.913's MLE; ``mean``: every vote of every rater not revoked. A
    rater's repeats count once (their mean)."""
    if method not in METHODS:
        raise DataError(f"--method: '{method}' is not one of {METHODS}")
    checks = check_raters(votes, settings, rules or RULES)
    if method == "mean" or not use_checks:
        for check in checks:
            if check.verdict != REVOKED and check.votes:
                check.verdict, check.note = USED, ""
    used = np.array([check.kept for check in checks], dtype=bool)
    study_rows = np.isnan(votes.gold)
    matrix = _per_rater(_levels(votes.scores, settings))[study_rows]
    rated = ~np.isnan(matrix[:, used]).all(axis=1) if used.any() else np.zeros(len(matrix), bool)
    quality = None
    panel = BT500_MIN_RATERS if method == "bt500" else 2
    if method != "mean" and used.sum() >= panel and rated.sum() >= 2:
        columns = np.flatnonzero(used)
        scores, rejected = run_sureal(matrix[np.ix_(rated, columns)], method)
        for column, flag in zip(columns, rejected, strict=True):
            if flag:
                checks[column].screened_out, checks[column].verdict = True, EXCLUDED
                checks[column].reasons.append("BT.500 screening (offsets removed): many votes "
                                              "outside the image's ±2σ, on both sides")
                used[column] = False
        if method == "mle":
            quality = np.full(len(matrix), np.nan)
            quality[rated] = scores
    kept = matrix[:, used]
    n = np.sum(~np.isnan(kept), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if quality is not None:
            mos = quality
        elif method == "mean":
            mos = np.nanmean(kept, axis=1) if kept.shape[1] else np.full(len(kept), np.nan)
        else:  # each vote less its rater's offset: with every rater on every image, the mean
            members = [int(k) for k in np.flatnonzero(used)]
            offsets = _fit_offsets(matrix, members, centre=np.nanmean)
            mos = _consensus(matrix, members, offsets, centre=np.nanmean)
        std = np.nanstd(kept, axis=1, ddof=1) if kept.shape[1] else np.full(len(kept), np.nan)
    mos = (np.clip(mos, 1.0, 5.0) - 1.0) * settings.level + settings.low
    std = np.where(n >= 2, std * settings.level, np.nan)
    se = np.sqrt(label_noise(kept)) * settings.level if used.any() else np.full(len(kept),
                                                                                np.nan)
    names = [name for name, row in zip(votes.names, study_rows, strict=True) if row]
    return Estimate(np.asarray(mos, dtype=np.float64), std, n, names, checks, se)


def label_name(name: str, path: Path, out_folder: Path) -> str:
    """The image's study name if it resolves from the labels file's folder, else its path
    relative to that folder (``leaf calibrate --labels`` reads names from there)."""
    if (out_folder / name).resolve() == path.resolve():
        return name
    try:
        return Path(os.path.relpath(path, out_folder.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(path)


def formula_safe(name: str) -> str:
    """A label name no spreadsheet runs as a formula: one starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return is written as ``./name``, the same file for every
    reader of the label file (a leading apostrophe would name another file)."""
    return "./" + name if name.startswith(FORMULA_STARTS) else name


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_labels_target(study: Study, out: Path) -> None:
    """Before any work: a label file never replaces the study's inputs. ``out`` (links
    followed) must not be a folder, lie in the study's folder (its database and journals), or
    be one of the study's images."""
    out = Path(out)
    shown = f"--out {printable(out)}"
    if out.is_dir():
        raise DataError(f"{shown}: is a folder; give the label file's name (labels.csv)")
    target = out.resolve()
    written = [target, scale_declaration(target)]
    if _same_file(out, study.path):
        raise DataError(f"{shown}: is the study's database {printable(study.path)}; write the "
                        "labels elsewhere (the study's files are never replaced)")
    if any(path.is_relative_to(study.folder.resolve()) for path in written):
        raise DataError(f"{shown}: is inside the study folder {printable(study.folder)}; write "
                        "the labels elsewhere (the study's files are never replaced)")
    for image in study.images():
        if any(path == image.path.resolve() for path in written) or _same_file(out, image.path):
            raise DataError(f"{shown}: is the study's image '{printable(image.name)}'; choose "
                            "another file name")


def _write_atomically(out: Path, text: str) -> None:
    """``text`` into a hidden temporary file beside ``out``, renamed over ``out`` once whole;
    on any failure the temporary file is removed and ``out`` is left as it was."""
    descriptor, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.",
                                             suffix=".partial")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(temporary, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_labels(study: Study, out: Path, estimate_: Estimate) -> int:
    """Write ``name,mos,std,n,se`` for every study image with at least one kept vote (``se``:
    the MOS's standard error against a large panel, which ``leaf calibrate`` corrects its
    accuracy estimate for), and the
    study's scale beside it (``scale_file``); returns the rows written. ``out`` is checked
    first (``check_labels_target``); each file is written whole or not at all."""
    out = Path(out)
    check_labels_target(study, out)
    paths = {image.name: image.path for image in study.images()}
    se = estimate_.se if estimate_.se is not None else np.full(len(estimate_.names), np.nan)
    rows = [(label_name(name, paths[name], out.parent), mos, std, n, error)
            for name, mos, std, n, error in zip(estimate_.names, estimate_.mos, estimate_.std,
                                                estimate_.n, se, strict=True) if n > 0]
    if not rows:
        raise DataError(f"{study.folder}: no ratings from a kept rater yet; nothing to export")
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["name", "mos", "std", "n", "se"])
    for name, mos, std, n, error in rows:
        writer.writerow([formula_safe(printable(name)), f"{mos:.4f}",
                         "" if np.isnan(std) else f"{std:.4f}", int(n),
                         "" if np.isnan(error) else f"{error:.4f}"])
    scale = {"scale": study.settings.scale, "range": [study.settings.low, study.settings.high]}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(out, table.getvalue())
        _write_atomically(scale_declaration(out), json.dumps(scale, indent=2) + "\n")
    except OSError as error:
        raise DataError(f"--out {printable(out)}: cannot write it "
                        f"({error.strerror or error})") from None
    return len(rows)


def describe_checks(checks: Sequence[RaterCheck]) -> list[str]:
    """One line per rater (figures in ACR levels, then the verdict), and a warning line when
    the labels rest on a fallback or on no screening at all."""
    lines = []
    for check in checks:
        parts = [f"{check.votes} votes"]
        if check.gold_pass is not None:
            parts.append(f"gold {check.gold_pass:.0%} of {check.gold_answers}")
        if check.repeat_difference is not None:
            parts.append(f"repeat diff {check.repeat_difference:.2f}")
        if check.spread is not None:
            parts.append(f"spread {check.spread:.2f}")
        if check.correlation is not None:
            parts.append(f"r {check.correlation:.2f}")
        if check.offset is not None and check.correlation is not None:
            parts.append(f"offset {check.offset:+.2f}")
        lines.append(f"{check.rater}: {', '.join(parts)} → {_verdict(check)}")
    fallback = [check for check in checks if check.verdict == FALLBACK]
    if fallback:
        lines.append(f"warning: {fallback[0].note}: the labels use "
                     f"{', '.join(check.rater for check in fallback)} only; look at the study "
                     "(gold answers, instructions, who rated what) before trusting them")
    used = [check for check in checks if check.verdict == USED]
    if used:
        revoked = sum(check.verdict == REVOKED for check in checks)
        lines.append(f"no screening: the MOS is the mean of every vote of {len(used)} rater(s)"
                     + (f" ({revoked} revoked left out)" if revoked else ""))
    if checks and not any(check.kept for check in checks):
        lines.append("warning: no rater can be used (revoked, one button or no votes)")
    return lines


def _verdict(check: RaterCheck) -> str:
    if check.verdict == REVOKED:
        return "excluded: revoked"
    if check.verdict == EXCLUDED:
        return "excluded: " + "; ".join(check.reasons)
    if check.verdict == UNJUDGED:
        return "not used: " + "; ".join(check.reasons)
    if check.verdict == FALLBACK:
        return "kept by the fallback" + (f" (failed: {'; '.join(check.reasons)})"
                                         if check.reasons else "")
    if check.verdict == USED:
        return "used" + (f" (the checks would flag: {'; '.join(check.reasons)})"
                         if check.reasons else "")
    return "kept"
