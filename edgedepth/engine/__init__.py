"""The engine that turns a config into a running pipeline: ``config`` (YAML → validated
config), ``registry`` (the plugin manager, one per process), ``pipeline`` (build the stages),
``run`` (threads, queues, one failure guard), ``queues``, ``stats``, ``progress``."""
