"""Studies: experiment runners that compose methods, removers and metrics into result tables.

One module per study (``gad``, ``roar``, ``sam``, ...); each returns the long
``image, method, metric, value`` tables that :mod:`kit.report` summarises. Notebooks call them.
"""
