"""The North Star model: the tree of metrics, its formulas and the scoring arithmetic (as SQL)."""
