"""Training: one :class:`Trainer` for every task, the config system, checkpoints, DDP, logs.

The outer layer of the package (it does file I/O): it imports the core, the networks, the
variants, geometry, evaluation and data, and nothing below imports it.
"""

from .checkpoint import CheckpointError, RunDirectoryError, load_checkpoint, save_checkpoint
from .config import Config, option
from .parts import EncodingConfig, GradientOriginConfig, LatentConfig, SirenConfig
from .guard import NonFiniteGuard, NonFiniteLossError
from .tasks import (
    TASKS,
    AutoDecoderConfig,
    AutoencoderConfig,
    ClassifierConfig,
    ConversionConfig,
    ImageConfig,
    SdfConfig,
    Task,
    VariationalConfig,
    fit_conversion,
)
from .run import LoadedRun, load_run
from .trainer import BatchSampler, Trainer, TrainerConfig, learning_rate, select_device

__all__ = [
    "Trainer",
    "TrainerConfig",
    "BatchSampler",
    "learning_rate",
    "select_device",
    "Task",
    "TASKS",
    "ImageConfig",
    "SdfConfig",
    "ConversionConfig",
    "ClassifierConfig",
    "VariationalConfig",
    "AutoencoderConfig",
    "AutoDecoderConfig",
    "fit_conversion",
    "Config",
    "SirenConfig",
    "LatentConfig",
    "GradientOriginConfig",
    "EncodingConfig",
    "option",
    "load_run",
    "LoadedRun",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "CheckpointError",
    "RunDirectoryError",
    "load_checkpoint",
    "save_checkpoint",
]
