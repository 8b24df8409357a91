"""The model file and what reads it: its format (``file``, ``modelinfo``), models by name
(``registry``), scoring (``scorer``, ``pixel_graph``, ``graphs``, ``outputs``), the pyiqa-style
metric (``metric``) and the ONNX/INT8 exports (``onnx_export``, ``quantize``)."""
