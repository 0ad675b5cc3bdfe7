"""What this machine offers: ``host`` (interpreter, OS, CPU), ``network`` (reachability),
``aihub_config`` (the qai-hub client's config) and ``doctor`` (the report)."""
