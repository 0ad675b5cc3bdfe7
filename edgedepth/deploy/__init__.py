"""The deploy tool: ``edgedepth deploy export|compile|quantize|status``."""
