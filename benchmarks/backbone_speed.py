"""Feature extraction speed of each backbone on this CPU (images/s, PyTorch, batch 4), at 224
and 512 px. Hub models are not downloaded: random weights in each real model's configuration
(ConvNeXt-Base, DINOv2-S/B, CLIP ViT-B/16, SigLIP-B/16) cost what the real ones cost.

    python benchmarks/backbone_speed.py [--sizes 224,512] [--batch 4] [--repeat 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

from leafiqa.student.backbone import build_backbone


def real_size_configs() -> dict[str, object]:
    import transformers as t

    vit_b = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072}
    return {
        "ConvNeXt-Base (facebook/convnext-base-224)": t.ConvNextConfig(
            hidden_sizes=[128, 256, 512, 1024], depths=[3, 3, 27, 3]),
        "DINOv2-S/14 (facebook/dinov2-small)": t.Dinov2Config(
            hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14,
            image_size=518),
        "DINOv2-B/14 (facebook/dinov2-base)": t.Dinov2Config(patch_size=14, image_size=518,
                                                             **vit_b),
        "CLIP ViT-B/16 (openai/clip-vit-base-patch16)": t.CLIPVisionConfig(
            patch_size=16, image_size=224, **vit_b),
        "SigLIP-B/16 (google/siglip-base-patch16-224)": t.SiglipVisionConfig(
            patch_size=16, image_size=224, **vit_b),
    }


def images_per_second(backbone: torch.nn.Module, size: int, batch: int, repeat: int) -> float:
    x = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        backbone(x)  # warm-up
        start = time.perf_counter()
        for _ in range(repeat):
            backbone(x)
    return batch * repeat / (time.perf_counter() - start)


def main() -> None:
    import transformers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="224,512")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    transformers.logging.set_verbosity_error()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch}, {args.repeat} timed "
          "batches after one warm-up")
    print(f"{'backbone':<48} {'features':>8} " + " ".join(f"{f'{s} px img/s':>12}"
                                                          for s in sizes), flush=True)
    backbones: list[tuple[str, torch.nn.Module]] = [
        ("EfficientNet-Lite0 (default, ImageNet weights)",
         build_backbone("efficientnet-lite0").eval())]
    with tempfile.TemporaryDirectory() as folder:
        for name, config in real_size_configs().items():
            model = transformers.AutoModel.from_config(config)
            model.save_pretrained(Path(folder) / "m")
            del model
            backbones.append((name, build_backbone(f"hf:{Path(folder) / 'm'}").eval()))
            _report(*backbones.pop(), sizes, args)
            import shutil

            shutil.rmtree(Path(folder) / "m")
    for name, backbone in backbones:
        _report(name, backbone, sizes, args)


def _report(name: str, backbone: torch.nn.Module, sizes: list[int],
            args: argparse.Namespace) -> None:
    speeds = [images_per_second(backbone, s, args.batch, args.repeat) for s in sizes]
    print(f"{name:<48} {backbone.feature_dim:>8} "
          + " ".join(f"{v:>12.2f}" for v in speeds), flush=True)


if __name__ == "__main__":
    main()
