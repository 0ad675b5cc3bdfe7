"""Model code: DepthAnythingV2 (``dav2``), its checkpoints (``dav2_checkpoint``), loading what a
config asks for (``dav2_loading``) and its ONNX export (``dav2_export``), which need torch (the
runtime does not import them); and the layouts of ready ONNX files (``onnx_layouts``), which
does not."""
