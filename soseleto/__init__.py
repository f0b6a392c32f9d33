"""SOSELETO: SOurce SELEction for Target Optimization.

A bilevel scheme that learns one weight per source sample so that training on the
weighted source helps a small target set (transfer learning) or filters a noisy source
with the help of a small clean one (noisy labels).
"""

__version__ = "0.1.0"
