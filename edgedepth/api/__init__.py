"""What a plugin sees: the hooks (``hookspecs``), what a factory returns and is given
(``stages``), the data that flows (``frame``), option types (``options``), the ``existing``
policy of the files a stage writes (``outputs``) and the errors (``errors``). Everything here is
re-exported by :mod:`edgedepth`; nothing here imports the rest of the package."""
