"""lowprec.testing: property testing of number formats.

- Checkers (no extra dependency): ``check_quantizer(fn, fmt, rounding)`` and
  ``check_codec(encode, decode, fmt)`` return a Report (falsy on failure; ``str`` names the property
  and the first counterexample; ``.assert_ok()`` raises).
- Inputs: ``labelled_inputs(fmt, dtype)`` (every boundary class of a format, labelled) and
  ``classify(fmt, x)``.
- Hypothesis strategies (need hypothesis): ``formats()``, ``values_of(fmt)``, ``floats_near(fmt)``,
  ``codes(fmt)``.
"""

from .checks import Counterexample, PropertyResult, Report, check_codec, check_quantizer
from .inputs import CLASSES, classify, labelled_inputs

_STRATEGIES = ("formats", "values_of", "floats_near", "codes")

__all__ = ["check_quantizer", "check_codec", "Report", "PropertyResult", "Counterexample", "labelled_inputs",
           "classify", "CLASSES", *_STRATEGIES]


def __getattr__(name):
    # the strategies import hypothesis, which only tests need: loaded on first use
    if name in _STRATEGIES:
        from . import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'lowprec.testing' has no attribute {name!r}")
