"""Model code: DepthAnythingV2 (``dav2``), its checkpoints (``dav2_checkpoint``) and its ONNX
export (``dav2_export``). Needs torch; the runtime does not import it."""
