"""The model file and what uses it: batched scoring, ONNX export, the HTTP service."""
