"""``leaf``: the command line. Each command is a thin layer over the Python API."""

from __future__ import annotations

import csv
import glob
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import typer

from leafiqa.cli.base import LeafGroup, LeafTyper, one_line
from leafiqa.cli.rate import rate_app, ratings_app
from leafiqa.cli.select import select as select_command
from leafiqa.data.images import as_sizes
from leafiqa.data.manifest import DataError, Manifest
from leafiqa.defaults import CACHE_HELP
from leafiqa.errors import ConfigError

app = LeafTyper(cls=LeafGroup, add_completion=False, no_args_is_help=True,
                 help="LEAF — label-efficient image quality assessment.")
judgments_app = LeafTyper(cls=LeafGroup, no_args_is_help=True,
                           help="Inspect, export and import judgments.")
app.add_typer(judgments_app, name="judgments")
app.add_typer(rate_app, name="rate")
app.add_typer(ratings_app, name="ratings")
app.command("select")(select_command)
STRICT_HELP = "stop at the first unreadable image or failed judgment (exit code 2)"
KIND_HELP = "dataset kind (agiqa3k, clive, koniq10k, spaq, livec, kadid10k, csv, folder)"
SPLIT_HELP = "split column of AGIQA-3K and clive-dev (split_1, split_2, …)"
STORE_HELP = "SQLite judgment store"
RUNTIME_HELP = "torch, onnx, or auto (ONNX Runtime when it is installed)"


def show_version(value: bool) -> None:
    if value:
        from leafiqa.version import __version__, git_commit

        commit = git_commit()
        typer.echo(f"leaf {__version__}" + (f" ({commit})" if commit else ""))
        raise typer.Exit()


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (a test runner swaps it)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"


def setup_logging() -> None:
    """Every message of LEAF's loggers once on stderr, as ``warning: …`` (no ``root:``)."""
    logger = logging.getLogger("leafiqa")
    for handler in [h for h in logger.handlers if getattr(h, "leaf_cli", False)]:
        logger.removeHandler(handler)
    handler = _Stderr()
    handler.leaf_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(_OneLine())
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=show_version,
                                              is_eager=True, help="print the version and exit")
                 ) -> None:
    """LEAF — label-efficient image quality assessment."""
    setup_logging()


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def nothing_succeeded(message: str) -> None:
    """Every input failed: one line, exit code 1 (a run that did some work exits 0)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def reason_counts(reasons: list[str]) -> str:
    from collections import Counter

    from leafiqa.data.images import failure_reason
    from leafiqa.data.readers import NOT_REGULAR

    counts = Counter(NOT_REGULAR if f": {NOT_REGULAR}" in reason else failure_reason(reason)
                     for reason in reasons)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())


def parse_sizes(text: str) -> tuple[int, ...]:
    """``384`` or ``224,512`` (an image pyramid) → sizes."""
    try:
        return as_sizes([int(part) for part in text.replace("+", ",").split(",") if part.strip()])
    except ValueError:
        raise ConfigError(f"--input-size: expected a size or sizes like 224,512, got {text!r}"
                          ) from None


def parse_json_object(text: str | None, option: str) -> dict | None:
    import json

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"{option}: not valid JSON ({error.msg} at character {error.pos})")
    if not isinstance(value, dict):
        fail(f"{option}: expected a JSON object, got {type(value).__name__}")
    return value


SET_HELP = "override a config value, e.g. --set student.input_size=384 (repeatable)"


def parse_overrides(settings: list[str] | None, option: str = "--set",
                    example: str = "student.input_size=384") -> dict[str, object]:
    """``key.sub=value`` pairs, values read as YAML (``384``, ``[224, 512]``, ``null``)."""
    import yaml

    overrides: dict[str, object] = {}
    for setting in settings or []:
        key, equals, text = setting.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"{option} {setting!r}: expected key=value, e.g. {example}")
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{option} {setting!r}: value is not valid YAML ({error})") from None
    return overrides


def detect_kind(target: Path) -> str:
    """The reader for a path: a file is a CSV; a folder by the files it holds."""
    if target.is_file():
        return "csv"
    if (target / "data.csv").is_file() and (target / "splits.csv").is_file():
        with (target / "data.csv").open(encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
        return "agiqa3k" if "mos_quality" in header else "clive"
    if (target / "koniq10k_scores_and_distributions.csv").is_file():
        return "koniq10k"
    if (target / "dmos.csv").is_file():
        return "kadid10k"
    return "folder"


def read_data(path: str, kind: str = "auto", split: str | None = "split_1",
              limit: int | None = None, image_root: Path | None = None) -> Manifest:
    from leafiqa.data.readers import read_dataset

    target = Path(path)
    if kind == "auto":
        kind = detect_kind(target)
    options: dict[str, object] = {"split": split} if kind in ("agiqa3k", "clive") else {}
    if image_root is not None:
        if kind != "csv":
            raise DataError(f"--image-root applies to a CSV data set only ({path} is {kind})")
        options["image_root"] = image_root
    manifest = read_dataset(kind, target, **options)
    return manifest.head(limit) if limit else manifest


@app.command()
def run(config: Path = typer.Argument(..., help="YAML config (see configs/demo.yaml)"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
        set_: list[str] = typer.Option(None, "--set", help=SET_HELP)) -> None:
    """Run every stage (teach → distill → calibrate → evaluate → model file) from one config."""
    from leafiqa.config import load_config
    from leafiqa.experiments.pipeline import format_results, run_pipeline

    summary = run_pipeline(load_config(config, parse_overrides(set_)), progress=not quiet)
    typer.echo(format_results(summary))


@app.command()
def features(
    config: Path = typer.Argument(..., help="YAML config (its data, student and cache)"),
    engine: str = typer.Option("local", help="local, or ray: the backbone's ONNX graph in an "
                                             "actor pool on a Ray cluster"),
    ray_address: str = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS or "
                                               "a local Ray)"),
    actors: int = typer.Option(None, help="feature actors (ray; default one per CPU)"),
    quiet: bool = typer.Option(False, help="no progress bars"),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Extract the frozen features of a config's images into its feature store (resumes where
    a run stopped); `leaf run` on the same config then finds them all."""
    from leafiqa.config import load_config
    from leafiqa.experiments.workspace import load_manifest
    from leafiqa.judgments.runner import hash_manifest
    from leafiqa.student.features import FeatureExtractor, set_cpu_threads

    if engine not in {"local", "ray"}:
        fail(f"unknown engine '{engine}' (local or ray)")
    settings = load_config(config, parse_overrides(set_))
    manifest = load_manifest(settings)
    keys = hash_manifest(manifest, not quiet)
    extractor = FeatureExtractor(settings.student.backbone, settings.student.input_size,
                                 settings.cache_dir)
    started = time.perf_counter()
    if engine == "ray":
        from leafiqa.distributed.ray_features import extract_with_ray

        report = extract_with_ray(extractor, manifest, keys, address=ray_address,
                                  actors=actors)
        typer.echo(report.summary())
        return
    set_cpu_threads()
    extractor.fill(manifest, keys, progress=not quiet)
    typer.echo(f"features of {len(manifest)} images ({extractor.tag}) in "
               f"{settings.cache_dir} after {time.perf_counter() - started:.1f} s")


@app.command()
def teach(
    data: str = typer.Option(..., help="dataset folder, manifest CSV or image folder"),
    teacher: str = typer.Option("cues", help="teacher spec: cues, qbench:FILE, jsonl:FILE, "
                                             "openai, transformers:MODEL"),
    store: Path = typer.Option(Path("runs/judgments.sqlite"), help="SQLite judgment store"),
    kind: str = typer.Option("auto", help="dataset kind (agiqa3k, koniq10k, spaq, livec, "
                                          "kadid10k, csv, folder)"),
    split: str = typer.Option("split_1", help="split column for AGIQA-3K"),
    limit: int = typer.Option(None, help="only the first N images"),
    pairs_per_image: int = typer.Option(4, help="pair-wise judgments per image (0: none)"),
    max_requests: int = typer.Option(None, help="stop after this many judgments"),
    url: list[str] = typer.Option(None, help="OpenAI-compatible base URL (or LEAF_TEACHER_URL); "
                                             "repeat to spread requests over several servers"),
    model: str = typer.Option(None, help="model name (or LEAF_TEACHER_MODEL)"),
    concurrency: int = typer.Option(None, help="requests in flight (openai; per server with "
                                               "several --url)"),
    timeout: float = typer.Option(None, help="seconds per request (openai)"),
    backend: str = typer.Option(None, help="alias: --backend openai means --teacher openai"),
    engine: str = typer.Option("local", help="local, or ray: a Ray Data pipeline with the "
                                             "teacher in an actor pool (openai, vllm:MODEL, …)"),
    ray_address: str = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS or "
                                               "a local Ray)"),
    actors: int = typer.Option(None, help="teacher actors (ray)"),
    gpus_per_actor: float = typer.Option(0.0, help="GPUs per teacher actor (ray, vllm:MODEL)"),
    vllm_arg: list[str] = typer.Option(None, help="KEY=VALUE for the vLLM engine (vllm:MODEL), "
                                                  "e.g. max_model_len=8192; repeatable"),
    runtime_env: str = typer.Option(None, help="the teacher actors' Ray runtime environment "
                                               "as JSON (ray), e.g. '{\"env_vars\": {…}}'"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
) -> None:
    """Ask a teacher for point-wise and pair-wise judgments; resumes where a run stopped."""
    from leafiqa.judgments.runner import teach as run_teach
    from leafiqa.judgments.store import JudgmentStore
    from leafiqa.teachers.specs import make_teacher

    spec = backend if backend and teacher == "cues" else teacher
    options: dict[str, object] = {k: v for k, v in {"urls": url or None, "model": model,
                                                    "concurrency": concurrency,
                                                    "timeout": timeout}.items() if v is not None}
    if not spec.startswith("openai"):
        options = {}
    if spec.startswith("vllm"):
        options = parse_overrides(vllm_arg, "--vllm-arg", "max_model_len=8192")
    elif vllm_arg:
        fail(f"--vllm-arg is for a vllm:MODEL teacher, not '{spec}'")
    if engine not in {"local", "ray"}:
        fail(f"unknown engine '{engine}' (local or ray)")
    manifest = read_data(data, kind, split, limit)
    if engine == "ray":
        from leafiqa.distributed.ray_teach import RaySettings, teach_with_ray

        with JudgmentStore(store) as judgment_store:
            ray_report = teach_with_ray(
                spec, options, manifest, judgment_store, pairs_per_image=pairs_per_image,
                max_requests=max_requests,
                settings=RaySettings(address=ray_address, actors=actors,
                                     num_gpus=gpus_per_actor,
                                     runtime_env=parse_json_object(runtime_env,
                                                                   "--runtime-env")))
        typer.echo(ray_report.summary())
        for error in ray_report.errors[:5]:
            typer.echo(f"  failed: {error}", err=True)
        return
    chosen = make_teacher(spec, **options)
    with JudgmentStore(store) as judgment_store:
        try:
            report = run_teach(chosen, manifest, judgment_store, pairs_per_image=pairs_per_image,
                               max_requests=max_requests, progress=not quiet, strict=strict)
        finally:
            chosen.close()
    typer.echo(report.summary())
    for endpoint in getattr(getattr(chosen, "endpoint_pool", None), "stats", list)():
        typer.echo(f"  {endpoint.line()}")
    for error in report.errors[:5]:
        typer.echo(f"  failed: {error}", err=True)
    if report.images and report.succeeded == 0 and not report.budget_exhausted \
            and not report.claimed_elsewhere:
        nothing_succeeded(f"no judgment succeeded for any of {report.images} images")


@app.command()
def distill(
    data: str = typer.Option(..., help="images the student learns from (their train split)"),
    store: Path = typer.Option(Path("runs/judgments.sqlite"), help=STORE_HELP),
    teacher_id: str = typer.Option(None, help="teacher id in the store (default: the only one)"),
    out: Path = typer.Option(Path("runs/student.safetensors"), help="model file to write"),
    kind: str = typer.Option("auto", help=KIND_HELP),
    split: str = typer.Option("split_1", help=SPLIT_HELP),
    limit: int = typer.Option(None, help="only the first N images"),
    backbone: str = typer.Option("efficientnet-lite0", help="the student's image backbone"),
    input_size: str = typer.Option("224,512", help="input size, or the sizes of an image "
                                                    "pyramid (e.g. 224,512)"),
    point_weight: float = typer.Option(1.0, help="weight of the point-wise (score) loss"),
    pair_weight: float = typer.Option(1.0, help="weight of the pair-wise (ranking) loss"),
    no_reliability: bool = typer.Option(False, "--no-reliability",
                                        help="weight every judgment equally"),
    cache: Path = typer.Option(None, help=CACHE_HELP),
) -> None:
    """Distil stored teacher judgments into a student (an uncalibrated model file)."""
    from leafiqa.api import distill_from_store

    manifest = read_data(data, kind, split, limit)
    path = distill_from_store(manifest, store, out, teacher_id=teacher_id,
                              backbone=backbone, input_size=parse_sizes(input_size),
                              cache_dir=cache,
                              point_weight=point_weight, pair_weight=pair_weight,
                              use_reliability=not no_reliability)
    typer.echo(f"wrote {path}")
    from leafiqa.model.file import read_info
    from leafiqa.student.distill import DistillFit

    fit = read_info(path).notes.get("distill")
    if fit:
        typer.echo(DistillFit(**fit).summary())


@app.command()
def calibrate(
    model_path: Path = typer.Argument(..., help="a distilled model file"),
    labels: str = typer.Option(..., help="images with MOS (dataset folder or CSV)"),
    pool: str = typer.Option(None, help="every image the model is for (folder or CSV), the "
                                        "labelled ones among them: the pool the selection's "
                                        "weights and the accuracy estimate speak for "
                                        "(default: the labelled images alone)"),
    budget: float = typer.Option(1.0, help="labels to use: fraction (≤1) or count (default: "
                                           "every label)"),
    selection: str = typer.Option("random", help="random, spread, kcenter or variance (all "
                                                 "but random need --store); with labels "
                                                 "`leaf select` chose, name its design: the "
                                                 "estimate is re-weighted for it over --pool"),
    seed: int = typer.Option(0, help="seed of the label draw"),
    store: Path = typer.Option(None, help="judgment store (for a --selection but random)"),
    teacher_id: str = typer.Option(None, help="teacher id in the store (default: the only one)"),
    out: Path = typer.Option(None, help="output model file (default: <model>-calibrated)"),
    kind: str = typer.Option("auto", help=KIND_HELP),
    split: str = typer.Option("split_1", help=SPLIT_HELP),
    cache: Path = typer.Option(None, help=CACHE_HELP),
    next_labels: int = typer.Option(None, "--next", min=1,
                                    help="say what this many more labels are expected to add "
                                         "(default: as many as there are)"),
) -> None:
    """Map the student onto the MOS scale with a few labels (4-parameter logistic) and let the
    labels correct it where leave-one-out says they should."""
    from leafiqa.api import calibrate_model, training_images
    from leafiqa.data.manifest import with_labels
    from leafiqa.data.readers import check_label_values, declared_scale
    from leafiqa.experiments.workspace import label_count

    manifest = read_data(labels, kind, split)
    log = logging.getLogger("leafiqa.calibrate")
    scale = declared_scale(detect_kind(Path(labels)) if kind == "auto" else kind, Path(labels))
    for note in check_label_values(manifest, scale):
        log.warning(note)
    if pool:
        manifest = with_labels(read_data(pool, kind, split), manifest)
    labelled = sum(item.mos is not None for item in training_images(manifest))
    if budget > 1 and int(budget) > labelled:
        log.warning("--budget %g: only %d labelled images; calibrating on those %d", budget,
                    labelled, labelled)
    path = calibrate_model(model_path, manifest, budget=budget, selection=selection,
                           seed=seed, store=store, teacher_id=teacher_id, out=out,
                           cache_dir=cache, target="pool" if pool else "new",
                           next_labels=next_labels or min(labelled, label_count(budget,
                                                                                labelled)))
    typer.echo(f"wrote {path}")
    from leafiqa.calibration.estimate import LearningCurve
    from leafiqa.experiments.pipeline import format_expected
    from leafiqa.model.file import read_info

    calibrated = read_info(path)
    notes = calibrated.notes
    typer.echo(describe_calibration(notes, Path(labels), calibrated.output_map.kind != "none"))
    if notes.get("expected_accuracy"):
        typer.echo(format_expected(notes["expected_accuracy"]))
    if notes.get("learning_curve"):
        typer.echo("worth more labels? " + LearningCurve(**notes["learning_curve"]).summary())
    if pool and selection == "random":
        typer.echo("note: the labels are read as a random draw of the pool; if `leaf select` "
                   "chose them, name its design (--selection variance --store …) or the "
                   "estimate flatters", err=True)


def describe_calibration(notes: dict, labels: Path, logistic: bool) -> str:
    """``leaf calibrate``'s account of what it did: the labels it used (per round when the
    label file has them) and the form it kept, with its penalty."""
    from leafiqa.calibration.prior import describe_correction
    from leafiqa.labelling.rounds import round_counts

    rounds = round_counts(labels) if labels.is_file() else {}
    per_round = (" (" + ", ".join(f"{name or 'no round'}: {count}" for name, count
                                  in rounds.items()) + ")") if len(rounds) > 1 else ""
    kept = describe_correction(notes.get("correction_form", ""),
                               float(notes.get("correction_alpha", float("inf"))),
                               notes.get("correction_prior", ""),
                               notes.get("correction_reason", ""), logistic)
    return (f"calibrated on {plural(int(notes.get('labels', 0)), 'label')} of {labels}"
            f"{per_round}, selection {notes.get('selection', 'random')}: kept {kept}")


@app.command()
def evaluate(
    model_path: Path = typer.Argument(..., help="a model file"),
    data: str = typer.Option(..., help="images with MOS"),
    kind: str = typer.Option("auto", help=KIND_HELP),
    split: str = typer.Option("split_1", help=SPLIT_HELP),
    subset: str = typer.Option("test", help="split value to evaluate on ('' for all)"),
    json_out: Path = typer.Option(None, "--json", help="write the metrics here"),
    force: bool = typer.Option(False, "--force", help="replace an existing --json file"),
    runtime: str = typer.Option("auto", help=RUNTIME_HELP),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
    image_root: Path = typer.Option(None, help="csv: folder the image names are relative to "
                                               "(default: the CSV's folder)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """SRCC / KRCC / PLCC / RMSE of a model file against MOS, and how many of the evaluated
    images trained the model (from the record in the model file; "unknown" without one)."""
    import numpy as np

    from leafiqa.evaluation.metrics import evaluate as compute
    from leafiqa.evaluation.metrics import scale_mismatch
    from leafiqa.judgments.runner import hash_manifest
    from leafiqa.model.info import labelled_in_training, seen_in_training
    from leafiqa.model.outputs import check_not_an_input, check_writable_target
    from leafiqa.model.scorer import Scorer

    if json_out is not None:
        check_not_an_input(json_out, [model_path, Path(data)], "--json")
        check_writable_target(json_out, force, "--json")
    manifest = read_data(data, kind, split, image_root=image_root)
    if subset and any(i.split for i in manifest):
        manifest = manifest.split(subset)
    mos = np.array(manifest.mos_array())  # before scoring: no MOS is an error, not a crash
    scorer = Scorer(model_path, runtime=runtime)
    predictions = scorer.score_paths([i.path for i in manifest], progress=not quiet)
    ok = ~np.isnan(predictions)
    if strict and not ok.all():
        raise DataError(f"--strict: {manifest[int(np.argmin(ok))].path}: could not be decoded")
    if not ok.any():
        nothing_succeeded(f"none of the {len(manifest)} images could be decoded")
    metrics: dict[str, float | str] = dict(compute(
        predictions[ok], mos[ok], calibrated=scorer.info.score_map.kind != "none"))
    metrics["unreadable"] = int((~ok).sum())
    readable = manifest.subset(item for item, good in zip(manifest, ok, strict=True) if good)
    readable_keys = hash_manifest(readable)
    seen = seen_in_training(scorer.info, readable_keys)
    labelled = labelled_in_training(scorer.info, readable_keys)
    metrics["seen_in_training"] = "unknown" if seen is None else seen
    metrics["labelled_in_training"] = "unknown" if labelled is None else labelled
    report_training_overlap(model_path, len(readable), seen, labelled)
    warning = scale_mismatch(scorer.info.score_range, mos[ok])
    if warning:
        metrics["warning"] = warning
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(json.dumps(metrics, indent=2))
    if json_out:
        json_out.write_text(json.dumps(metrics, indent=2))


def report_training_overlap(model_path: Path, evaluated: int, seen: int | None,
                            labelled: int | None) -> None:
    """Say how many evaluated images trained the model, and how: with their labels (then the
    figures are no test of it) or only distilled on, the teacher's judgments (a student is
    distilled on the whole folder it scores: the figure on its own folder, not on new images)."""
    images = plural(evaluated, "image")
    if seen is None:
        typer.echo(f"note: {model_path.name} does not record the images it trained on; how "
                   f"many of these {images} it has seen is unknown", err=True)
    elif labelled:
        logging.getLogger("leafiqa.evaluate").warning(
            "%s of the %s evaluated trained this model with their labels: these figures are "
            "not a test of it", labelled, images)
    elif seen and labelled is None:
        logging.getLogger("leafiqa.evaluate").warning(
            "%s of the %s evaluated trained this model: these figures are not a test of it",
            seen, images)
    elif seen:
        typer.echo(f"note: {seen} of the {images} evaluated were distilled on (the teacher's "
                   "judgments) and never labelled: the figures are the model on its own "
                   "folder, not on new images", err=True)


def expand_inputs(inputs: list[str], unreadable: list[str] | None = None) -> list[Path]:
    """Image paths from files, folders, globs, .txt lists and CSVs; folders that cannot be
    listed are added to ``unreadable`` with their reason (never silently left out)."""
    from leafiqa.data.readers import not_regular, walk_images

    paths: list[Path] = []
    for entry in inputs:
        target = Path(entry)
        if target.is_dir():
            found, failed = walk_images(target)
            paths += found
            if unreadable is not None:
                unreadable += failed
        elif target.suffix.lower() == ".csv" and target.is_file():
            with target.open(newline="") as handle:
                reader = csv.DictReader(handle)
                column = next((c for c in ("path", "name", "image") if c in (reader.fieldnames
                                                                           or [])), None)
                if column is None:
                    raise DataError(f"{target}: needs a 'path' or 'name' column")
                paths += [Path(r[column]) if Path(r[column]).is_absolute()
                          else target.parent / r[column] for r in reader]
        elif target.suffix.lower() == ".parquet" and target.is_file():
            import pyarrow.parquet as pq

            names = pq.read_schema(target).names
            column = next((c for c in ("path", "name", "image") if c in names), None)
            if column is None:
                raise DataError(f"{target}: needs a 'path' or 'name' column")
            for value in pq.read_table(target, columns=[column]).column(0).to_pylist():
                paths.append(Path(value) if Path(value).is_absolute() else target.parent / value)
        elif target.suffix.lower() == ".txt" and target.is_file():
            paths += [Path(line.strip()) for line in target.read_text().splitlines()
                      if line.strip()]
        elif any(ch in entry for ch in "*?["):
            paths += sorted(Path(p) for p in glob.glob(entry, recursive=True))
        else:
            paths.append(target)
    # a named pipe (or socket, device) named directly or in a list: never opened (a pipe
    # blocks its reader until something writes to it)
    special = {path: reason for path in paths if (reason := not_regular(path))}
    if special and unreadable is not None:
        unreadable += list(dict.fromkeys(special.values()))
    return [path for path in paths if path not in special]


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, count: int) -> None:
        return None


def progress_bar(total: int, show: bool) -> Any:
    """tqdm's bar on stderr, or (not shown) an object that only counts nothing: tqdm is not
    even imported then (``leaf score`` on one image starts faster)."""
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc="scoring")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def list_files(inputs: list[str]) -> list[Path]:
    """The inputs that are files themselves (lists of paths, data sets, images)."""
    return [Path(entry) for entry in inputs if Path(entry).is_file()]


@app.command()
def score(
    model_path: str = typer.Argument(..., help="a model name (see `leaf models`) or model file"),
    inputs: list[str] = typer.Argument(..., help="images, folders, globs, .txt lists, CSVs or "
                                                 "Parquet files of paths"),
    out: str = typer.Option(None, help="output file: .csv (written as it goes; an existing "
                                       "one is resumed), .json or .parquet, one row per image "
                                       "(path, score, error); '-' writes the CSV to stdout. "
                                       "Default: path<TAB>score lines on stdout (the score "
                                       "alone for one image)"),
    force: bool = typer.Option(False, "--force", help="replace an existing output file "
                                                      "(a CSV is otherwise resumed)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar, no summary and "
                                                            "no per-image warnings on stderr"),
    runtime: str = typer.Option("auto", help="torch, onnx or auto"),
    precision: str = typer.Option("auto", help="auto (INT8 when MODEL.int8.onnx passed its "
                                               "parity check), fp32 or int8"),
    batch_size: int = typer.Option(8, help="images per inference call (larger batches were no "
                                           "faster on CPU and took several times the memory)"),
    workers: int = typer.Option(None, help="decoding threads (default: CPU count, ≤ 4)"),
    threads: int = typer.Option(None, help="inference threads"),
    engine: str = typer.Option("local", help="local, or ray: an actor pool on a Ray cluster "
                                             "(row per input with an error column; resumable)"),
    ray_address: str = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS or "
                                               "a local Ray)"),
    actors: int = typer.Option(None, help="scoring actors (ray; default: one per CPU)"),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
) -> None:
    """Score images with a model: one score per image on stdout, or a file written as it goes.
    Images that cannot be read keep their row (empty score, the reason in the error column),
    are reported once on stderr and counted by reason. Exit status: 0 when images were
    scored, 1 when every image failed, 2 for bad arguments or, with --strict, the first
    unreadable image."""
    from leafiqa.data.manifest import printable
    from leafiqa.model.outputs import STDOUT, ScoreWriter, check_not_an_input, output_format
    from leafiqa.model.scorer import Scorer

    log = logging.getLogger("leafiqa.score")
    if quiet:
        logging.getLogger("leafiqa").setLevel(logging.ERROR)
    if engine not in {"local", "ray"}:
        fail(f"unknown engine '{engine}' (local or ray)")
    target = None if out is None else (STDOUT if out == STDOUT else Path(out))
    if isinstance(target, Path):
        output_format(target)
    unlisted: list[str] = []
    paths = expand_inputs(inputs, unlisted)
    if strict and unlisted:
        raise DataError(f"--strict: {unlisted[0]}")
    if not paths and not unlisted:
        fail("no images to score")
    if isinstance(target, Path):
        check_not_an_input(target, list_files(inputs) + paths)
    if engine == "ray":
        from leafiqa.distributed.ray_score import score_with_ray

        if not isinstance(target, Path):
            fail("--engine ray writes a file: give --out FILE.csv or FILE.parquet")
        report = score_with_ray(model_path, paths, target, address=ray_address,
                                actors=actors, batch_size=batch_size, precision=precision,
                                threads=threads)
        typer.echo(report.summary(), err=True)
        return
    single = target is None and len(paths) == 1 and not unlisted
    # the output is opened (checked writable, an existing one refused or resumed) before the
    # model is loaded and anything is scored
    with ScoreWriter(target, force=force, single=single) as writer:
        scorer = Scorer(model_path, runtime=runtime, threads=threads, precision=precision)
        scorer.engine  # noqa: B018 - load the graph now so a bad --precision fails here
        failures: list[str] = []
        for reason in unlisted:
            log.warning("skipped %s", reason)
            failures.append(reason)
        if writer.resumed:
            log.warning("%s: resuming; %s already there are not scored again (--force to "
                        "start again)", writer.description, plural(writer.resumed, "image"))
            paths = [path for path in paths if printable(path) not in writer.done]
        start = time.time()
        position = {path: index for index, path in reversed(list(enumerate(paths)))}
        show_bar = not quiet and sys.stderr.isatty()
        with progress_bar(len(paths), show_bar) as bar:
            for batch in scorer.iter_scores(paths, batch_size, workers):
                rows: list[tuple[Path, float | None, str]] = [
                    (path, value, "") for path, value in zip(batch.paths, batch.scores,
                                                             strict=True)]
                rows += [(path, None, reason) for path, reason in batch.failures]
                for path, value, reason in sorted(rows, key=lambda row: position[row[0]]):
                    if reason and strict:
                        raise DataError(f"--strict: {printable(reason)}")
                    writer.add(path, value, reason)
                    if reason:
                        failures.append(printable(reason))
                        log.warning("skipped %s", printable(reason))
                writer.flush()
                bar.update(len(batch.paths) + len(batch.failures))
    elapsed = max(time.time() - start, 1e-9)
    counts = f" ({reason_counts(failures)})" if failures else ""
    if not quiet:
        skipped = f"; skipped {len(failures)} unreadable{counts}" if failures else ""
        typer.echo(f"scored {plural(writer.scored, 'image')} in {elapsed:.1f} s "
                   f"({writer.scored / elapsed:.1f} img/s, {scorer.engine}) → "
                   f"{writer.description}{skipped}", err=True)
    if writer.scored == 0 and not writer.resumed:
        total = len(paths) + len(unlisted)
        nothing_succeeded(f"none of the inputs could be scored: {len(failures)} of "
                          f"{plural(total, 'image')} failed{counts}")


DATA_HELP = (
    "Check a dataset and show how a run will split it; --out writes it as one CSV (absolute "
    "paths, a split column) that every command reads.\n\n"
    "A CSV is name[,mos][,std][,split] (path or image also name the image column). Names are "
    "relative to --image-root, by default the CSV's folder; absolute paths are kept.\n\n"
    "Rows with an empty mos are the unlabeled pool: the teacher judges them and the student "
    "distils from them; only rows with a MOS can be calibration labels or test images.\n\n"
    "split is optional: train or test in any case (training/testing too); an empty cell trains. "
    "Without a split column every image trains, or --holdout 0.2 makes a seeded 20 % of the "
    "rows with MOS the test set.")


@app.command(help=DATA_HELP)
def data(
    path: str = typer.Argument(..., help="dataset folder, CSV or image folder"),
    kind: str = typer.Option("auto", help="agiqa3k, clive, koniq10k, spaq, livec, kadid10k, "
                                          "csv, folder"),
    split: str = typer.Option("split_1", help="split column (AGIQA-3K, clive-dev)"),
    image_root: Path = typer.Option(None, help="csv: folder the image names are relative to"),
    holdout: float = typer.Option(None, help="no split column: this fraction of the images with "
                                             "MOS becomes the test set"),
    seed: int = typer.Option(0, help="seed of the holdout draw"),
    out: Path = typer.Option(None, help="write the prepared manifest here (CSV, absolute "
                                        "paths)"),
    force: bool = typer.Option(False, "--force", help="replace an existing --out file"),
) -> None:
    from leafiqa.data.splits import load_data, write_manifest_csv
    from leafiqa.model.outputs import check_not_an_input, check_writable_target

    if out is not None:
        check_not_an_input(out, [Path(path)] + ([Path(image_root)] if image_root else []))
        check_writable_target(out, force)
    try:
        manifest = load_data(detect_kind(Path(path)) if kind == "auto" else kind, path,
                             split=split, image_root=image_root, holdout=holdout,
                             holdout_seed=seed)
    except (DataError, FileNotFoundError, ValueError) as error:
        fail(str(error))
    counts = {name: [i for i in manifest if i.split == name] for name in ("train", "test")}
    labelled = sum(item.mos is not None for item in manifest)
    typer.echo(f"{manifest.source}: {len(manifest)} images, {labelled} with MOS, "
               f"{len(manifest) - labelled} unlabeled")
    for name, items in counts.items():
        typer.echo(f"  {name}: {len(items)} images ({sum(i.mos is not None for i in items)} "
                   "with MOS)")
    if not counts["test"]:
        typer.echo("  no test images: a run trains on everything and cannot evaluate "
                   "(use --holdout)")
    if out:
        typer.echo(f"wrote {write_manifest_csv(manifest, out)}")


@app.command()
def models(as_json: bool = typer.Option(False, "--json",
                                        help="print the list as JSON (name, path, card, …)")
           ) -> None:
    """The models create_metric and leaf score accept by name: the packaged ones and any in the
    folders of LEAF_MODEL_PATH."""
    from leafiqa.model.registry import recorded_card, registered_models

    entries = registered_models()
    listed: list[dict] = []
    for name, entry in entries.items():
        try:
            info = entry.info()
        except (FileNotFoundError, ValueError) as error:
            listed.append({"name": name, "path": str(entry.path), "packaged": entry.packaged,
                           "error": one_line(error)})
            continue
        card = info.card or ({} if entry.packaged else recorded_card(entry.path))
        listed.append({"name": name, "path": str(entry.path), "packaged": entry.packaged,
                       "title": card.get("title", "(own model)"), "scale": info.score_range,
                       "test": card.get("test", {}), "card": card})
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    if not entries:
        typer.echo("no models registered")
        return
    typer.echo(f"{'name':<16} {'for':<22} {'scale':<24} {'SRCC':>6}  file")
    for model in listed:
        if "error" in model:
            typer.echo(f"{model['name']:<16} unreadable: {model['error']}")
            continue
        scale = model["scale"]
        scale_text = f"{scale[0]:g}–{scale[1]:g} higher better" if scale else "uncalibrated"
        srcc = model["test"].get("srcc")
        typer.echo(f"{model['name']:<16} {model['title']:<22} {scale_text:<24} "
                   f"{'' if srcc is None else f'{srcc:.3f}':>6}  {model['path']}")


@app.command()
def info(model_path: str = typer.Argument(..., help="a model name or model file")) -> None:
    """A model's card and metadata as JSON: training data, teacher, labels, MOS scale, test
    metrics, licence, tool version, commit, labels file and seeds."""
    from leafiqa.model.file import read_info
    from leafiqa.model.registry import resolve_model
    from leafiqa.model.scorer import describe

    try:
        path = resolve_model(model_path)
        model_info = read_info(path)
    except (FileNotFoundError, ValueError) as error:
        fail(str(error))
    typer.echo(json.dumps({"path": str(path), **describe(model_info)}, indent=2))


@app.command()
def export(model_path: Path = typer.Argument(..., help="a calibrated model file"),
           format: str = typer.Option("onnx", help="onnx"),
           out: Path = typer.Option(None, help="the ONNX file (default: MODEL.onnx)"),
           quantize: str = typer.Option(None, help="int8: also write MODEL.int8.onnx (ONNX "
                                                   "Runtime static quantization; needs --data)"),
           data: str = typer.Option(None, help="training images to calibrate INT8 on (dataset "
                                               "folder, manifest CSV or image folder)"),
           kind: str = typer.Option("auto", help=KIND_HELP),
           split: str = typer.Option("split_1", help=SPLIT_HELP),
           calibration: int = typer.Option(64, help="images to calibrate on"),
           parity: int = typer.Option(128, help="other images to check INT8 against FP32 on"),
           quant_format: str = typer.Option("qdq", help="qdq or qoperator")) -> None:
    """Export the calibrated student (calibration included) as one ONNX graph; with
    --quantize int8, an INT8 scoring graph with its parity check against FP32."""
    if format != "onnx":
        fail(f"unknown format '{format}' (onnx)")
    from leafiqa.model.onnx_export import export_model_onnx

    path = export_model_onnx(model_path, out)
    typer.echo(f"wrote {path}")
    if quantize is None:
        return
    if quantize != "int8":
        fail(f"unknown --quantize '{quantize}' (int8)")
    if not data:
        fail("--quantize int8 needs --data: training images to calibrate on")
    from leafiqa.model.quantize import quantize_int8

    try:
        manifest = read_data(data, kind, split)
        if any(i.split for i in manifest) and manifest.split("train").items:
            manifest = manifest.split("train")
        path, record = quantize_int8(model_path, [i.path for i in manifest],
                                     calibration=calibration, parity=parity,
                                     quant_format=quant_format)
    except (DataError, FileNotFoundError, ValueError) as error:
        fail(str(error))
    typer.echo(f"wrote {path}\n{record.summary()}")


@app.command()
def serve(model_path: str = typer.Argument(..., help="a model name or model file"),
          host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every "
                                                     "interface)"),
          port: int = typer.Option(8000, help="TCP port to listen on"),
          runtime: str = typer.Option("auto", help=RUNTIME_HELP),
          max_upload_mb: float = typer.Option(20.0, help="largest request body, in MB"),
          max_batch: int = typer.Option(16, help="most images in one POST /score"),
          max_pixels: int = typer.Option(None, help="decompression-bomb limit per image "
                                                    "(default: PIL's, about 89 MP)"),
          read_timeout: float = typer.Option(30.0, help="seconds to receive a request body"),
          header_timeout: float = typer.Option(10.0, help="seconds for a connection to send "
                                                          "its request's headers (then 408)"),
          api_key_env: str = typer.Option("LEAF_SERVE_API_KEY",
                                          help="require this variable's value as the bearer "
                                               "token when it is set")) -> None:
    """An HTTP scoring service: a page to drop images on at /, POST /score, GET /health,
    GET /model, the API's docs at /docs (works offline)."""
    import uvicorn

    from leafiqa.serve.service import create_app, server_config

    service = create_app(model_path, runtime=runtime, max_upload_bytes=int(max_upload_mb * 2**20),
                         max_batch=max_batch, max_pixels=max_pixels, read_timeout=read_timeout,
                         api_key_env=api_key_env)
    uvicorn.Server(server_config(service, host, port, header_timeout=header_timeout)).run()


@app.command()
def bench(config: Path = typer.Argument(..., help="YAML config (see configs/demo.yaml)"),
          quick: bool = typer.Option(False, "--quick", help="a small grid (CI)"),
          out: Path = typer.Option(None, help="report folder (default: <output>/bench)"),
          set_: list[str] = typer.Option(None, "--set", help=SET_HELP)) -> None:
    """Label-budget study: methods × budgets × splits × seeds, with plots and an HTML report."""
    from leafiqa.config import load_config
    from leafiqa.experiments.bench import run_bench

    overrides = parse_overrides(set_)
    report = run_bench(load_config(config, overrides), quick=quick, out=out, overrides=overrides)
    typer.echo(report.markdown)
    typer.echo(f"\nreport: {report.html}   csv: {report.csv}   time: {report.seconds:.0f} s")


@app.command("config")
def config_command(path: Path = typer.Argument(None, help="a run config to check and print"),
                   schema: bool = typer.Option(False, "--schema",
                                               help="print the config's JSON schema"),
                   set_: list[str] = typer.Option(None, "--set", help=SET_HELP)) -> None:
    """Check a run config (printed with every default filled in), or print its JSON schema."""
    from leafiqa.config import config_to_dict, load_config, schema_text

    if schema:
        typer.echo(schema_text())
    elif path is None:
        fail("give a config file, or --schema")
    else:
        typer.echo(json.dumps(config_to_dict(load_config(path, parse_overrides(set_))),
                              indent=2))


@judgments_app.command("list")
def judgments_list(store: Path = typer.Option(Path("runs/judgments.sqlite"),
                                             help=STORE_HELP)) -> None:
    """Teachers in a store with their judgment counts."""
    from leafiqa.judgments.store import JudgmentStore

    with JudgmentStore(store, create=False) as judgment_store:
        for teacher_id, version, points, pairs in judgment_store.teachers():
            typer.echo(f"{teacher_id}\t{version}\tpoints={points}\tpairs={pairs}")
        failures = judgment_store.failures()
        if failures:
            typer.echo(f"{len(failures)} failed judgments (retried on the next run)")


@judgments_app.command("export")
def judgments_export(out: Path = typer.Argument(..., help=".jsonl, .csv or .parquet"),
                     store: Path = typer.Option(Path("runs/judgments.sqlite"),
                                                 help=STORE_HELP)) -> None:
    """Export judgments (JSONL keeps everything; CSV/Parquet write one file per table)."""
    from leafiqa.judgments.jsonl import export_store
    from leafiqa.judgments.store import JudgmentStore

    with JudgmentStore(store, create=False) as judgment_store:
        written = export_store(judgment_store, out)
    typer.echo("wrote " + ", ".join(str(p) for p in written))


@judgments_app.command("import")
def judgments_import(source: Path = typer.Argument(..., help="a LEAF JSONL export"),
                     store: Path = typer.Option(Path("runs/judgments.sqlite"),
                                                 help=STORE_HELP)) -> None:
    """Import a JSONL export (judgments computed on another machine)."""
    from leafiqa.judgments.jsonl import import_jsonl
    from leafiqa.judgments.store import JudgmentStore

    with JudgmentStore(store) as judgment_store:
        counts = import_jsonl(judgment_store, source)
    typer.echo(f"imported {counts['point']} point-wise and {counts['pair']} pair-wise judgments")


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])
