"""northstar-pipeline: the North Star metric tree as code."""

__version__ = "0.1.0"
