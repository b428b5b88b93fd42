"""Deprecated flat module paths (``inr_gon.<module>``) kept importable: ``import inr_gon.siren`` is
:mod:`inr_gon.nn.siren`, with a ``DeprecationWarning`` naming the new path. ``inr_gon.train`` and
``inr_gon.sdf_train`` have no alias: training is :mod:`inr_gon.training`."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "coords": "core.coords",
    "integrators": "core.integrators",
    "losses": "core.losses",
    "gon": "core.gon",
    "sdf_gon": "core.sdf",
    "sampling": "core.sampling",
    "siren": "nn.siren",
    "render": "geometry.render",
    "mesh": "geometry.mesh",
    "shapes": "geometry.shapes",
    "metrics": "eval.image",
    "shape_metrics": "eval.shape",
    "analysis": "eval.latent",
    "variational": "variants.variational",
    "classifier": "variants.classifier",
    "modality": "variants.modality",
    "autoencoder": "variants.autoencoder",
    "checkpoint": "training.checkpoint",
    "distributed": "training.distributed",
    "runtime": "training.runtime",
    "config": "training.config",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        head, _, tail = name.partition(".")
        if head != "inr_gon" or tail not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        new = "inr_gon." + MOVED[spec.name.partition(".")[2]]
        warnings.warn(f"{spec.name} moved to {new}", DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
