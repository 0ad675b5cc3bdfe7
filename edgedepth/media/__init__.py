"""Pictures and recordings: ``imageops`` (every resize, image files), ``colorize``,
``recording`` (mp4 and lossless depth), ``cameras`` (what the OS offers) and
``synthetic_scene``."""
