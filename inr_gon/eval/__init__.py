"""Metrics: images (:mod:`.image`: PSNR, SSIM), shapes (:mod:`.shape`: Chamfer, normal
consistency, IoU) and latents (:mod:`.latent`: normality). Depend on no other part of the
package."""
