"""Optional real-data loaders, outside kit's core import surface.

Nothing in the core package (``kit.models``, ``kit.attributors``, ``kit.metrics``, ...) nor any
notebook imports from here; these modules are tested and kept working for users who bring their
own photographs.

* :mod:`kit.extras.voc`: image folders with Pascal-VOC box annotations (the ImageNet validation
  layout) as a world-like batch.
"""
