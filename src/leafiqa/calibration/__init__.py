"""Stage 5 — calibration: label selection, fine-tuning on few MOS labels, monotonic MOS maps."""
