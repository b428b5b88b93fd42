"""The mathematical core: pure tensor code, no file I/O, no networks of its own.

Coordinates (:mod:`.coords`) -> integrators (:mod:`.integrators`) -> point losses
(:mod:`.losses`) -> gradient-origin latents and the GON loss (:mod:`.gon`; SDF shapes:
:mod:`.sdf`; partial observations under a prior on latents: :mod:`.posterior`), latent-space
tools (:mod:`.sampling`), and the interfaces a model must offer (:mod:`.protocols`).
Imports nothing else of the package.
"""
