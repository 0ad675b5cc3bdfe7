"""Scoring depth as LPCVC 2025 Track 3 does: ``metrics``, ``scoring`` and ``lpcvc_io``."""
