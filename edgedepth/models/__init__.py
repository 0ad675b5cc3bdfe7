"""Model code: DepthAnythingV2 (``dav2``), its checkpoints (``dav2_checkpoint``), loading the
model a config asks for (``dav2_loading``) and its ONNX export (``dav2_export``) need torch; which
weights a config names and their identity (``dav2_weights``) and the layouts of ready ONNX files
(``onnx_layouts``) do not, so a run whose export is cached, or from a ready model, never imports
torch."""
