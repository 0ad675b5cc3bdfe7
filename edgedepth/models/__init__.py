"""Model families, one package each: ``dav2`` (DepthAnythingV2). What needs torch (the network,
checkpoints, export) is imported only when a graph is built, so a run from a cached export or a
ready model never imports torch."""
