"""One module per loss (or per small family of losses), each defining its LossDef object(s).

reference/registry.py lists the modules; nothing outside a loss's own module knows its formula.
Modules whose name starts with ``_`` hold helpers shared by several losses (row form of
elementwise losses, NumPy reductions, case-family and hypothesis helpers).
"""
