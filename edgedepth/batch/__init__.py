"""``edgedepth batch``: one config over a library of inputs, on this machine or a Dask cluster.

- ``inputs`` — the inputs (video files, image folders, list files) and their folder names;
- ``job`` — one input on a worker: the config for it, its run with the worker's loaded
  backend, its outputs written to a temporary folder and renamed when complete;
- ``report`` — ``batch.json``;
- ``local`` — the local pool of worker processes; ``cluster`` — a Dask distributed cluster;
- ``runner`` — a batch from start to end: check, skip what is finished, run, report.
"""
