"""The built-in demonstrations run by ``make demo`` / ``firereg demo``: the real-data evaluation
(:mod:`firereg.demo.brain_demo`) and the synthetic pair of ``firereg demo --synthetic``
(:mod:`firereg.demo.phantom_demo`)."""

from firereg.demo.phantom_demo import DemoResult, run_phantom_demo

__all__ = ["DemoResult", "run_phantom_demo"]
