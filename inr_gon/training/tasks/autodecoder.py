"""The auto-decoder task: DeepSDF's baseline on the SDF task's data, network and outputs.

One code per training shape is optimised with the network (clamped L1 on each shape's points,
plus ``code_reg · ||z||²``); unseen shapes are encoded by ``encode_iterations`` Adam steps on a
fresh code with the network frozen (DeepSDF uses 800). Everything else — shape sets,
evaluation, meshes, pictures, the collapse check — is every shape task's (:mod:`.shapes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...nn.siren import LatentSiren
from ...variants.autodecoder import AutoDecoder, fit_codes
from ..config import Config, at_least, nonneg, option, positive
from ..parts import LatentConfig, SirenConfig
from ..objectives import LossObjective
from ..trainer import TrainerConfig
from .shape_parts import SHAPE_PRESETS, ShapeDataConfig, ShapeLossConfig, ShapeOutputConfig
from .shapes import ShapeTask

__all__ = ["CodeFittingConfig", "AutoDecoderConfig", "AutoDecoderTask"]

AUTODECODER_CHECKPOINT_KIND = "inr_gon.autodecoder"


@dataclass
class CodeFittingConfig(Config):
    """The auto-decoder's encoder: one code per training shape, learned with the network; an
    unseen shape's code fitted by Adam with the network frozen."""

    code_reg: float = option(1e-4, "weight of the codes' mean squared norm", check=nonneg, group="encoder")
    code_init_std: float = option(0.01, "standard deviation of the initial codes", check=positive, group="encoder")
    encode_iterations: int = option(
        200, "Adam steps that encode an unseen shape (DeepSDF: 800)", check=at_least(0), group="encoder"
    )
    encode_lr: float = option(5e-3, "learning rate of those steps", check=positive, group="encoder")


@dataclass
class AutoDecoderConfig(
    ShapeDataConfig, LatentConfig, SirenConfig, CodeFittingConfig, ShapeLossConfig, ShapeOutputConfig, TrainerConfig
):
    """A DeepSDF-style auto-decoder on a shape set (the shape tasks' data, network and outputs;
    codes instead of the gradient-origin step)."""

    TASK = "autodecoder"
    PARTS = ("trainer", "shape data", "latent", "siren", "code fitting", "shape loss", "shape outputs")
    DEFAULTS = dict(lr=5e-4, lr_schedule="cosine", keep_checkpoints=2, w0_first=60.0, amp="off")
    PRESETS = SHAPE_PRESETS
    DEVICE_PRESETS = dict(cpu="cpu", cuda="gpu")


class AutoDecoderTask(ShapeTask):
    """DeepSDF's auto-decoder (a code per training shape) on the shape tasks' data and network."""

    name = "autodecoder"
    about = "DeepSDF-style auto-decoder baseline (a learned code per training shape)"
    config_class = AutoDecoderConfig
    checkpoint_kind = AUTODECODER_CHECKPOINT_KIND
    commands = ("eval", "mesh")

    @classmethod
    def model_from_checkpoint(cls, state):
        mc = state["model_config"]
        return AutoDecoder(LatentSiren(**mc["net"]), mc["num_codes"], init_std=mc["init_std"])

    def build_model(self):
        return AutoDecoder(super().build_model(), len(self.shapes.train_index), init_std=self.cfg.code_init_std)

    def model_config(self, model):
        return model.config()

    def build_objective(self, model):
        from ...core.sdf import sdf_point_loss

        point_loss = sdf_point_loss(self.cfg.outer_loss, delta=self.cfg.delta)
        reg = self.cfg.code_reg

        def loss_fn(m, codes_index, points, sdf):
            z = m.codes(codes_index)
            data = point_loss(m(points, z), sdf.unsqueeze(-1)).mean()
            return data + reg * z.square().sum(-1).mean(), z, {"loss": data.detach()}

        return LossObjective(model, loss_fn)

    def make_batch(self, index, mine, generator):
        """``(code rows (b,), points (b, M, 3), sdf (b, M))``: each shape's points drawn at random from
        its pool (the same count as the GON's inner plus outer points)."""
        from ...core.sdf import random_shape_points

        pts, sdf = random_shape_points(*self.batch_pools(index), self.cfg.points, generator)
        return index[mine].to(self.device), pts[mine], sdf[mine]

    @torch.no_grad()
    def encode(self, index, *, num_points: int = 8192) -> torch.Tensor:
        """Training shapes: their codes. Unseen shapes: ``encode_iterations`` Adam steps on fresh
        codes (seeded) against ``num_points`` of each shape's points, the network frozen."""
        model = self.trainer.model
        index = [int(i) for i in index]
        pos = {int(s): r for r, s in enumerate(self.shapes.train_index)}
        out = torch.zeros(len(index), self.cfg.latent, device=self.device)
        seen = [j for j, i in enumerate(index) if i in pos]
        if seen:
            out[seen] = model.codes(torch.tensor([pos[index[j]] for j in seen], device=self.device))
        new = [j for j, i in enumerate(index) if i not in pos]
        if new:
            pool_pts, pool_sdf = self.pools([index[j] for j in new])
            N = pool_pts.shape[1]
            n = min(num_points, N)
            g = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 54321)
            sel = torch.stack([torch.randperm(N, generator=g, device=self.device)[:n] for _ in new])
            pts = pool_pts.gather(1, sel[..., None].expand(-1, -1, 3))
            sdf = pool_sdf.gather(1, sel)
            out[new] = fit_codes(
                model.net,
                pts,
                sdf,
                iterations=self.cfg.encode_iterations,
                lr=self.cfg.encode_lr,
                loss=self.cfg.outer_loss,
                delta=self.cfg.delta,
                code_reg=self.cfg.code_reg,
                init_std=self.cfg.code_init_std,
                generator=g,
            )
        return out

    def encoder_metrics(self) -> dict:
        return {
            "encode_iterations": self.cfg.encode_iterations,
            "encoding": f"{self.cfg.encode_iterations} Adam steps on a fresh code",
        }


AutoDecoderConfig.task_class = AutoDecoderTask
