"""Stage 4 — student: EfficientNet-Lite multi-level features, a small head, joint distillation."""
