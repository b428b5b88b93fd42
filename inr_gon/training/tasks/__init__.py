"""The tasks: what differs by modality (see :mod:`.base` for the hooks the trainer calls).

======================  ==========================================  ===========================
``inr-gon train NAME``  task                                        config
======================  ==========================================  ===========================
``image``               implicit GON on images (the main job)       :class:`ImageConfig`
``sdf``                 SDF GON on shapes (procedural, meshes)      :class:`SdfConfig`
``superres``            modality conversion: 14² in, 28² out        :class:`ConversionConfig`
``classifier``          classifier GON (Eq. 4)                      :class:`ClassifierConfig`
``variational``         variational GON (Eq. 2)                     :class:`VariationalConfig`
``autoencoder``         AE / VAE baselines with the GON's decoder   :class:`AutoencoderConfig`
``autodecoder``         DeepSDF's auto-decoder (SDF baseline)       :class:`AutoDecoderConfig`
======================  ==========================================  ===========================
"""

from .autodecoder import AutoDecoderConfig, AutoDecoderTask
from .base import Task
from .conversion import ConversionConfig, ConversionTask, fit_conversion
from .image import ImageConfig, ImageDataConfig, ImageDataTask, ImageTask
from .sdf import SdfConfig, SdfTask
from .variants import (
    AutoencoderConfig,
    AutoencoderTask,
    ClassifierConfig,
    ClassifierTask,
    VariationalConfig,
    VariationalTask,
)

__all__ = [
    "Task",
    "TASKS",
    "task_for_config",
    "ImageConfig",
    "ImageDataConfig",
    "ImageDataTask",
    "ImageTask",
    "SdfConfig",
    "SdfTask",
    "ConversionConfig",
    "ConversionTask",
    "fit_conversion",
    "ClassifierConfig",
    "ClassifierTask",
    "VariationalConfig",
    "VariationalTask",
    "AutoencoderConfig",
    "AutoencoderTask",
    "AutoDecoderConfig",
    "AutoDecoderTask",
]

#: task name -> task class
TASKS = {
    t.name: t
    for t in (ImageTask, SdfTask, ConversionTask, ClassifierTask, VariationalTask, AutoencoderTask, AutoDecoderTask)
}


def task_for_config(cfg) -> type:
    """The task class whose config class ``cfg`` is an instance of."""
    if type(cfg).task_class is None:
        raise TypeError(f"no task takes a {type(cfg).__name__}")
    return type(cfg).task_class
