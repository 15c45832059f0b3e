"""northstar-pipeline: the North Star metric tree as code."""
