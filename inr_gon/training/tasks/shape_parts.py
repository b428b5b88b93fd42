"""The config parts of the shape tasks (the SDF GON and the auto-decoder):
:class:`ShapeDataConfig` (which shapes), :class:`ShapeLossConfig` (points per shape, the
reconstruction loss), :class:`ShapeOutputConfig` (what is evaluated and written), and the
presets both tasks take (:data:`SHAPE_PRESETS`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, Preset, at_least, option, positive

__all__ = ["ShapeDataConfig", "ShapeLossConfig", "ShapeOutputConfig", "SHAPE_PRESETS", "SDF_LOSSES"]

SDF_LOSSES = ("clamped_l1", "truncated_l1", "truncated_l2", "l2", "mse", "l1")


@dataclass
class ShapeDataConfig(Config):
    """Which shapes: procedural (the default), a folder of meshes, or DeepSDF samples."""

    meshes: str | None = option(
        None, "a folder of mesh files (normalised, sampled, cached)", metavar="DIR", group="data"
    )
    deepsdf: str | None = option(None, "a DeepSDF data folder (SdfSamples/...)", metavar="DIR", group="data")
    num_shapes: int = option(64, "procedural: training shapes", check=at_least(1), group="data")
    num_unseen: int | None = option(
        None, "shapes held out (default: procedural 8, folders 1/4)", check=at_least(0), group="data"
    )
    pool: int | None = option(
        None,
        "points kept per shape (half uniform in [-1, 1]^3, half near the surface)",
        check=at_least(2),
        group="data",
    )
    cache_dir: str | None = option(None, "mesh sample cache (default: <out>/cache)", group="data")
    split: str | None = option(
        None,
        "a DeepSDF split file ({dataset: {class: [ids]}}): the training shapes of --deepsdf or a --meshes tree",
        metavar="JSON",
        group="data",
    )
    test_split: str | None = option(
        None, "a split file of the unseen shapes (with --split; default: none)", metavar="JSON", group="data"
    )
    stream: str | None = option(
        None,
        "DeepSDF data: read each step's shapes from their sample files (on), hold every shape's pool "
        "in memory (off), or stream when the pools would take over 1 GiB (auto)",
        choices=("auto", "on", "off"),
        group="data",
    )

    DEFAULTS = dict(stream="auto")

    @property
    def source(self) -> str:
        return "meshes" if self.meshes else "deepsdf" if self.deepsdf else "procedural"

    @property
    def data(self) -> str | None:
        return self.meshes or self.deepsdf

    def inactive(self):
        out = super().inactive()
        if self.source != "meshes":
            out["cache_dir"] = "is the mesh folders' sample cache (--meshes)"
        if self.source != "deepsdf":
            out["stream"] = "reads --deepsdf sample files (a mesh tree: inr-gon prepare writes them)"
        if self.source == "procedural":
            out["split"] = out["test_split"] = "names shapes of --deepsdf or --meshes data"
        elif self.split is None:
            out["test_split"] = "needs --split (the training shapes)"
        if self.split is not None:
            out["num_unseen"] = "is set by --test-split when --split is given"
        return out

    def _checks(self):
        return super()._checks() + [("meshes", not (self.meshes and self.deepsdf), "and deepsdf: give one of them")]


@dataclass
class ShapeLossConfig(Config):
    """How a shape's reconstruction is scored: points per shape per step and the point loss."""

    points: int | None = option(None, "points per shape per step", check=at_least(2))
    outer_loss: str = option(
        "truncated_l1",
        "point loss of the reconstruction (truncated_l1: DeepSDF's clamped L1 without its dead zones)",
        choices=SDF_LOSSES,
    )
    delta: float = option(
        0.1,
        "clamp of clamped_l1 / truncated_l1 / truncated_l2 (and the band of the near-surface error)",
        check=positive,
    )

    def _checks(self):
        return super()._checks() + [
            (
                "pool",
                self.pool is None or self.points is None or self.pool >= self.points,
                f"must be >= points ({self.points})",
            )
        ]


@dataclass
class ShapeOutputConfig(Config):
    """What a shape run evaluates and writes."""

    eval_shapes: int = option(6, "training/unseen shapes evaluated and written", check=at_least(1), group="output")
    mesh_resolution: int = option(
        64, "marching-cubes samples per axis of the evaluated meshes", check=at_least(8), group="output"
    )
    slerp_frames: int = option(6, "meshes along the slerp between two shapes", check=at_least(2), group="output")


#: the shape tasks' presets (over their ``DEFAULTS``)
SHAPE_PRESETS = {
    "cpu": Preset(
        "a run of a few minutes on a CPU: SIREN 3x128, 1,024 points per shape, batch 16, a time budget",
        dict(
            hidden=128,
            layers=3,
            pool=4096,
            points=1024,
            steps=10_000,
            seconds=420.0,
            batch_size=16,
            schedule_by="time",
            checkpoint_every=1000,
            eval_every=500,
        ),
    ),
    "gpu": Preset(
        "a GPU's share: SIREN 4x256, 4x the points per shape, batch 64, 20,000 steps",
        dict(
            hidden=256,
            layers=4,
            pool=16384,
            points=4096,
            batch_size=64,
            steps=20_000,
            seconds=0.0,
            schedule_by="steps",
            eval_every=1000,
            checkpoint_every=1000,
        ),
    ),
}
