"""pytest setup for the chart tests: the modules beside this file import
each other by name, and rendering is shared between tests."""

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import chart  # noqa: E402


@functools.lru_cache(maxsize=None)
def _rendered(label):
    return chart.render(dict(chart.values_sets())[label])


@functools.lru_cache(maxsize=None)
def _linted(label):
    import tempfile
    values = dict(chart.values_sets())[label]
    if label == "default values":
        return chart.lint(chart.CHART)
    with tempfile.TemporaryDirectory(prefix="helm-lint-") as tmp:
        return chart.lint(chart.chart_copy(tmp, values))


def rendered(label):
    """The chart rendered for one values set, once per run."""
    return _rendered(label)


def linted(label):
    """`helm lint` of the chart with one values set, once per run."""
    return _linted(label)


def required():
    """Whether a missing tool must fail the test (CI) rather than skip it."""
    return bool(os.environ.get("CI"))
