"""The built-in demonstration run by ``make demo`` / ``firereg demo``."""

from firereg.demo.phantom_demo import DemoResult, run_phantom_demo

__all__ = ["DemoResult", "run_phantom_demo"]
