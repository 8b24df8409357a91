"""Stage 2 — teachers: the judgment protocol and its sources (offline cues, recorded MLLM
outputs, OpenAI-compatible servers, local transformers VLMs)."""
