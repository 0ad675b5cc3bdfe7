"""What this machine offers: ``host`` (interpreter, OS, CPU), ``network`` (reachability),
``aihub_config`` (the qai-hub client's config), ``doctor`` (the report) and ``console`` (text
for any console or pipe encoding)."""
