"""DepthAnythingV2: the network (``network``), its checkpoints (``checkpoint``), which weights a
config names (``weights``, no torch), loading (``loading``), the exported graph's options and
contract (``graph``), ONNX export (``export``) and the layouts of ready ONNX files
(``layouts``). ``network``, ``checkpoint``, ``loading`` and ``export`` need torch."""
