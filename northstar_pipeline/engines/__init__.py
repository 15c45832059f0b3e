"""Execution engines: where a plan's SQL runs. Nothing outside this package asks which engine it is."""
