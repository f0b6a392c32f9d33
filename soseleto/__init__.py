"""SOSELETO: SOurce SELEction for Target Optimization.

A bilevel scheme that learns one weight per source sample so that training on the
weighted source helps a small target set (transfer learning) or filters a noisy source
with the help of a small clean one (noisy labels).
"""

__version__ = "0.1.0"


def load(path, *, device: str = "cpu"):
    """The model that ``soseleto fit`` wrote to ``path`` (``OUT/model.pt``), ready to label new
    images with the training preprocessing: ``.predict(x)``, ``.predict_proba(x)``
    (:class:`soseleto.experiments.predict.FittedModel`). Imports torch only when called."""
    import importlib  # not a module-level import: the package's layers never import back up to it

    return importlib.import_module("soseleto.experiments.predict").load(path, device=device)
