"""The demo: a synthetic event warehouse and the starter project that `northstar init` scaffolds."""
