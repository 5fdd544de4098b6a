"""Explainability and visual reports for a FIRE registration (``firereg explain``, docs/explain.md).

One module per concept: :mod:`~firereg.explain.analysis` runs the model's pieces (G, T, F) on a
preprocessed pair; :mod:`~firereg.explain.overlays` (alignment, Figs. 5-7 of the paper),
:mod:`~firereg.explain.deformation`, :mod:`~firereg.explain.synthesis`,
:mod:`~firereg.explain.latent` (modality invariance of G) and :mod:`~firereg.explain.sensitivity`
(gradient saliency and Grad-CAM) draw the figures; :mod:`~firereg.explain.slices` picks the 3D
slices; :mod:`~firereg.explain.report` writes ``explain.html``. Figures use matplotlib's Agg canvas.
"""

from firereg.explain.pipeline import ModelInfo, explain_pair
from firereg.explain.report import ExplainReport, render_html, write_report

__all__ = ["ExplainReport", "ModelInfo", "explain_pair", "render_html", "write_report"]
