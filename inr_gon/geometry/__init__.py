"""Decoders of latents into outputs: rendering at any resolution (:mod:`.render`), marching
cubes (:mod:`.mesh`) and analytic shapes (:mod:`.shapes`). Builds on :mod:`inr_gon.core`."""
