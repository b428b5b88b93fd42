"""Reading configs of earlier versions: every renamed or removed option, in one place.

``config.json`` files and checkpoints written by inr_gon 0.1 to 0.3 keep loading (for
``--config``, ``--resume``, ``render``, ``eval`` and ``mesh``): :func:`upgrade` maps their
dictionaries onto today's fields before :meth:`~inr_gon.training.config.Config.from_dict`
reads them. Runs written since 0.4 use today's names only. These shims live until 1.0 (the
changelog announces their removal one minor version ahead).
"""

from __future__ import annotations

__all__ = ["upgrade", "RENAMED", "REMOVED"]

_IMAGE = {"inner_scale": "inner_weight", "resolution": "image_size"}
_STEPS = ("latent_steps", "step_size", "learn_step_size", "gauss_newton")
_SIREN = ("hidden", "layers", "w0", "w0_first", "w0_latent", "latent_shifts")

#: task -> {old key: new key}
RENAMED: dict[str, dict[str, str]] = {
    "image": _IMAGE,
    "superres": {**_IMAGE, "test_images": "max_test_images"},
    "classifier": {**_IMAGE, "loss": "inner_loss"},
    "variational": _IMAGE,
    "autoencoder": _IMAGE,
    "sdf": {"resolution": "mesh_resolution", "loss": "outer_loss"},
    "autodecoder": {"resolution": "mesh_resolution", "loss": "outer_loss"},
}

#: task -> keys earlier versions wrote that the task never read (dropped on reading)
REMOVED: dict[str, tuple] = {
    "autoencoder": _STEPS,
    "variational": _STEPS + ("inner_scale",),
    "autodecoder": _STEPS
    + (
        "inner_loss",
        "inner_weight",
        "inner_fraction",
        "inner",
        "inner_sampling",
        "fresh_shapes",
        "fresh_bank",
        "eikonal",
    ),
}


def upgrade(task: str, d: dict) -> dict:
    """``d`` (a saved config dictionary of ``task``, any version) with today's field names."""
    d = dict(d)
    if task in ("image", "superres") and "loss" in d:  # one loss for both integrals
        loss = d.pop("loss")
        d.setdefault("inner_loss", loss)
        d.setdefault("outer_loss", loss)
    if task in ("sdf", "autodecoder"):
        if ("source" in d and "inner_loss" not in d) or ("inner_loss" in d and d["inner_loss"] is None):
            # 0.1 (one loss for both integrals) and early 0.2 configs (None: the same as loss)
            d["inner_loss"] = d.get("loss", "clamped_l1")
        source, data = d.pop("source", None), d.pop("data", None)
        if source in ("meshes", "deepsdf") and data:
            d.setdefault(source, data)
    if task == "variational":
        # a convolutional decoder read none of the SIREN's options, a SIREN decoder not the conv's width
        drop = _SIREN if d.get("decoder", "conv") == "conv" else ("base_channels",)
        for k in drop:
            d.pop(k, None)
    # options saved although the run's other choices never read them
    if task == "classifier" and d.get("mode", "classifier") != "joint":
        d.pop("ce_weight", None)
    if task == "image" and (d.get("outer_fraction") or 0) >= 1:
        d.pop("outer_sampling", None)
    if task == "sdf" and d.get("inner") == "shared":
        d.pop("inner_sampling", None)
    for old, new in RENAMED.get(task, {}).items():
        if old in d:
            v = d.pop(old)
            d.setdefault(new, v)
    for k in REMOVED.get(task, ()):
        d.pop(k, None)
    return d
