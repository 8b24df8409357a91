"""Build the 20,000-image pool of the scale run (docs/notes/scale.md) outside the repository.

Labelled part: AGIQA-3K's 2,982 images as they are, with their MOS and ``split_1`` (train/test).
Unlabeled part: label-free variants of AGIQA-3K and clive-dev images (a mirror, a crop, a
rescale, a quarter turn, in combinations) until the pool holds ``--size`` images, every file
distinct (its own bytes). Variants have no MOS and are training images, so LEAF judges them with
its teacher and distils from them, never uses them as labels, and tests on AGIQA-3K's test split
only. Idempotent: a rerun keeps the files already written (resumable after a kill).

    python scripts/build_pool20k.py --shared ../shared/data --out /work/pool20k
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

from PIL import Image

# (mirror, crop fraction, scale, quarter turns): every combination but the identity
VARIANTS = [v for v in itertools.product((False, True), (1.0, 0.9, 0.8), (1.0, 0.75), (0, 1))
            if v != (False, 1.0, 1.0, 0)]


def variant(image: Image.Image, mirror: bool, crop: float, scale: float, turns: int
            ) -> Image.Image:
    out = image.convert("RGB")
    if crop < 1.0:
        w, h = out.size
        cw, ch = int(w * crop), int(h * crop)
        out = out.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
    if scale != 1.0:
        out = out.resize((max(1, int(out.width * scale)), max(1, int(out.height * scale))),
                         Image.Resampling.BICUBIC)
    if mirror:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for _ in range(turns):
        out = out.transpose(Image.Transpose.ROTATE_90)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("/work/pool20k"))
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    agiqa, clive = args.shared.resolve() / "agiqa3k", args.shared.resolve() / "clive-dev"
    images = args.out / "images"
    images.mkdir(parents=True, exist_ok=True)
    with (agiqa / "data.csv").open(newline="") as handle:
        mos = {row["name"]: row["mos"] for row in csv.DictReader(handle)}
    with (agiqa / "splits.csv").open(newline="") as handle:
        split = {row["name"]: row["split_1"] for row in csv.DictReader(handle)}
    with (clive / "data.csv").open(newline="") as handle:
        clive_names = [row["name"] for row in csv.DictReader(handle)]
    rows: list[tuple[str, str, str]] = []
    for name in sorted(mos):
        rows.append((f"{agiqa / 'images' / name}", mos[name], split.get(name, "train")))
    sources = ([agiqa / "images" / n for n in sorted(mos)]
               + [clive / "images" / n for n in clive_names])
    count = 0
    for index, (parameters, source) in enumerate(itertools.product(VARIANTS, sources)):
        if len(rows) >= args.size:
            break
        target = images / f"v{index:06d}-{source.stem}.jpg"
        if not target.is_file():
            with Image.open(source) as image:
                temporary = target.with_suffix(".tmp.jpg")
                variant(image, *parameters).save(temporary, quality=92)
                temporary.replace(target)
            count += 1
        rows.append((str(target), "", "train"))
    with (args.out / "data.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "mos", "split"])
        writer.writerows(rows)
    print(f"{len(rows)} images in {args.out / 'data.csv'} ({count} written now)")


if __name__ == "__main__":
    main()
