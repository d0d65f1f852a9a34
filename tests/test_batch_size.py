"""One default chunk size: every batched call in kit defaults to ``kit.engine.BATCH_SIZE``.

The CPU passes cost 2-3x more per image at 256 than at 16-32 (benchmarks/results/batch_size.md);
a function that keeps its own literal default silently runs at the old cost. Training recipes
and the external inpainters (large images, memory-bound) choose their own on purpose.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import kit
from kit.engine import BATCH_SIZE

# batch sizes that are part of a recipe or bounded by memory, not a speed default
OWN_DEFAULT = {
    "kit.train.train_classifier",                       # the training recipe's batch
    "kit.studies.gad.train_support_models",             # GAD's fine-tuning recipe
    "kit.studies.gad.gad_table",                        # 05's configuration (params/05_*.yaml)
    "kit.models.torchscript.TorchScriptInpainter.__init__",  # LaMa-sized nets: memory
    "kit.models.torchscript.load_torchscript_inpainter",
}


def _callables():
    for info in pkgutil.walk_packages(kit.__path__, "kit."):
        if info.name == "kit.widgets" or info.name.startswith("kit.widgets."):
            continue  # ipywidgets UI, no batched computation of its own
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isclass(obj):
                yield from ((f"{mod.__name__}.{obj.__qualname__}.{k}", v)
                            for k, v in vars(obj).items() if inspect.isfunction(v))
            elif inspect.isfunction(obj):
                yield f"{mod.__name__}.{obj.__qualname__}", obj


def test_every_batched_call_defaults_to_the_engine_batch_size():
    found, wrong = 0, []
    for name, fn in _callables():
        p = inspect.signature(fn).parameters.get("batch_size")
        if p is None or p.default is inspect.Parameter.empty:
            continue
        found += 1
        # None: the caller's choice is passed through to functions that default to BATCH_SIZE
        if p.default not in (BATCH_SIZE, None) and name not in OWN_DEFAULT:
            wrong.append(f"{name} (batch_size={p.default!r})")
    assert found > 30  # the walk reached the package
    assert not wrong, "defaults other than kit.engine.BATCH_SIZE: " + ", ".join(wrong)
