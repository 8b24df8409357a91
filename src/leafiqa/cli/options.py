"""The options several commands share, each defined once (a ``typing.Annotated`` alias), and
every choice an option offers as an Enum. One spelling per idea across every command:
``--data`` is the data set, ``--out`` a file the command writes, ``--json`` (a flag) JSON on
stdout, ``--selection`` the label design, ``--store`` the judgment store."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from leafiqa.defaults import CACHE_HELP, KIND_HELP, SPLIT_HELP, STORE_HELP


class Choice(str, Enum):
    """A value an option takes; it prints as itself (``auto``, not ``Kind.auto``)."""

    def __str__(self) -> str:
        return str(self.value)


class Kind(Choice):
    """``defaults.DATASET_KINDS`` and ``auto`` (``data.inputs.detect_kind``)."""

    auto = "auto"
    agiqa3k = "agiqa3k"
    clive = "clive"
    koniq10k = "koniq10k"
    spaq = "spaq"
    livec = "livec"
    kadid10k = "kadid10k"
    csv = "csv"
    folder = "folder"


class Runtime(Choice):
    auto = "auto"
    torch = "torch"
    onnx = "onnx"


class Precision(Choice):
    """``model.graphs.PRECISIONS``."""

    auto = "auto"
    fp32 = "fp32"
    int8 = "int8"


class Engine(Choice):
    """``defaults.ENGINES``."""

    local = "local"
    ray = "ray"


class Selection(Choice):
    """``labelling.designs.STRATEGIES``."""

    random = "random"
    spread = "spread"
    kcenter = "kcenter"
    variance = "variance"


class ExportFormat(Choice):
    onnx = "onnx"


class Quantize(Choice):
    int8 = "int8"


class QuantFormat(Choice):
    """``model.quantize.FORMATS``."""

    qdq = "qdq"
    qoperator = "qoperator"


class RatingScale(Choice):
    """``labelling.study.SCALES``."""

    acr = "acr"
    slider = "slider"


class Screening(Choice):
    """The methods of ``labelling.screening.estimate``."""

    bt500 = "bt500"
    mle = "mle"
    mean = "mean"


SET_HELP = "override a config value, e.g. --set student.input_size=384 (repeatable)"

DATA_HELP = ("the data set: a dataset folder, a CSV (name[,mos][,std][,split]) or an image "
             "folder")
DataOption = Annotated[str, typer.Option("--data", help=DATA_HELP)]  # required without a default
MaybeDataOption = Annotated[str | None, typer.Option("--data", help=DATA_HELP)]
KindOption = Annotated[Kind, typer.Option(help=KIND_HELP)]
SplitOption = Annotated[str, typer.Option(help=SPLIT_HELP)]
LimitOption = Annotated[int | None, typer.Option(help="only the first N images")]
ImageRootOption = Annotated[Path | None, typer.Option(
    help="csv: folder the image names are relative to (default: the CSV's folder)")]
StoreOption = Annotated[Path, typer.Option(help=STORE_HELP)]
TeacherIdOption = Annotated[str | None, typer.Option(
    help="teacher id in the store (default: the only one)")]
CacheOption = Annotated[Path | None, typer.Option(help=CACHE_HELP)]
SelectionOption = Annotated[Selection, typer.Option(
    help="the label design (labelling.designs); all but random read the teacher's judgments "
         "(--store)")]
ConfigArgument = Annotated[Path, typer.Argument(help="YAML config (see configs/demo.yaml)")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)]
ModelArgument = Annotated[str, typer.Argument(
    help="a model name (see `leaf models`) or model file")]
ModelFileArgument = Annotated[Path, typer.Argument(help="a model file")]
RuntimeOption = Annotated[Runtime, typer.Option(
    help="auto: ONNX Runtime when it is installed, else PyTorch")]
EngineOption = Annotated[Engine, typer.Option(
    help="where it runs: here, or in an actor pool on a Ray cluster")]
RayAddressOption = Annotated[str | None, typer.Option(
    help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")]
ActorsOption = Annotated[int | None, typer.Option(
    help="actors of the Ray pool (ray; default: one per CPU)")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
StrictOption = Annotated[bool, typer.Option(
    "--strict", help="stop at the first unreadable image or failed judgment (exit code 2)")]
ForceOption = Annotated[bool, typer.Option("--force", help="replace an existing --out file")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]
SeedOption = Annotated[int, typer.Option(help="seed of the random choices")]
StudyArgument = Annotated[Path, typer.Argument(
    help="the study's folder (made by `leaf rate create`)")]
BaseUrlOption = Annotated[str, typer.Option(help="address raters will open")]
