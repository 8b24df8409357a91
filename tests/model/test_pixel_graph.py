"""The torch-free scoring path: a uint8-pixel ONNX graph alone scores as the Scorer does, reads
its pyramid sizes from the graph, and never imports PyTorch (what Ray's scoring actors load)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leafiqa.model.pixel_graph import PixelGraphScorer, graph_sizes, pixel_session
from leafiqa.model.scorer import Scorer
from tests.conftest import make_image

pytest.importorskip("onnxruntime")


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    paths = [make_image(tmp_path / f"im{i:02d}.jpg", seed=i, blur=(i % 4) * 0.8, size=90)
             for i in range(11)]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    return [*paths[:5], broken, *paths[5:]]


@pytest.mark.parametrize("which", ["model_file", "pyramid_model_file"])
def test_graph_alone_scores_like_the_scorer(which: str, images: list[Path],
                                            request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(which)
    scorer = Scorer(model, runtime="onnx", precision="fp32", threads=2)
    graph = scorer.pixel_graph_path()
    alone = PixelGraphScorer(graph.read_bytes(), threads=2)
    assert alone.input_sizes == scorer.input_sizes
    expected = scorer.score_paths(images, batch_size=4)
    got, failed = {}, {}
    for batch in alone.iter_scores(images, batch_size=4, workers=2):
        got.update(zip(batch.paths, batch.scores, strict=True))
        failed.update(batch.failures)
    assert list(failed) == [images[5]] and "broken.jpg" in failed[images[5]]
    assert np.isnan(expected[5])
    assert np.allclose([got[p] for p in images if p in got], np.delete(expected, 5), atol=1e-6)
    torch_scores = Scorer(model, runtime="torch").score_paths(images)
    assert np.allclose(np.delete(torch_scores, 5), np.delete(expected, 5), atol=1e-4)


def test_a_graph_that_is_not_a_pixel_graph_is_refused(model_file: Path) -> None:
    feature_graph = Scorer(model_file, runtime="onnx")._session_for()  # float NCHW inputs
    assert feature_graph.get_inputs()[0].shape[1] == 3
    with pytest.raises(ValueError, match="not a LEAF pixel graph"):
        graph_sizes(feature_graph)
    with pytest.raises(ValueError, match="input size"):
        PixelGraphScorer(Scorer(model_file, runtime="onnx").pixel_graph_path()).score_pixels(
            np.zeros((1, 96, 96, 3), np.uint8), np.zeros((1, 64, 64, 3), np.uint8))
    assert graph_sizes(pixel_session(Scorer(model_file).pixel_graph_path())) == (96,)


def test_scoring_from_the_graph_never_imports_torch(pyramid_model_file: Path,
                                                    images: list[Path], tmp_path: Path) -> None:
    """What a Ray scoring actor runs, in a fresh interpreter: its imports and a whole batch."""
    graph = tmp_path / "graph.onnx"
    graph.write_bytes(Scorer(pyramid_model_file, runtime="onnx").pixel_graph_path().read_bytes())
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from leafiqa.distributed.ray_score import ScoreActor\n"
        "from leafiqa.model.pixel_graph import PixelGraphScorer\n"
        f"scorer = PixelGraphScorer(Path({str(graph)!r}).read_bytes(), threads=1)\n"
        f"paths = {[str(p) for p in images]!r}\n"
        "rows = [s for b in scorer.iter_scores([Path(p) for p in paths], 4, 2) for s in b.scores]\n"
        "print(json.dumps({'scored': len(rows), 'torch': 'torch' in sys.modules}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"scored": len(images) - 1, "torch": False}
