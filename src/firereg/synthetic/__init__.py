"""Small synthetic images with known ground truth, for tests, the demo and sanity checks.

Everything here is synthetic and is called so wherever its results appear.
"""

from firereg.synthetic.phantom_pair import PhantomPair, make_phantom_pair, phantom_labels, render

__all__ = ["PhantomPair", "make_phantom_pair", "phantom_labels", "render"]
