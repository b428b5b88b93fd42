"""Learned super-resolution with a GON (modality conversion): 14² in, 28² out.

The latent of each digit is the gradient at the origin of the INNER loss on its 14² copy
(2×2 area average); the network is trained with the OUTER loss on the 28² original. On the
MNIST test set, each 14² input is encoded with one gradient step and rendered at 28², and
the PSNR is compared with classical upsampling of the same 14² input (bicubic, bilinear,
nearest; ``align_corners=False``, clamped to [0, 1]).

    python examples/superres_mnist.py                       # CPU: the CPU defaults
    python examples/superres_mnist.py --device cuda --steps 20000 --hidden 256 --layers 4
    python examples/superres_mnist.py --help

Writes into --out (default runs/superres_mnist): ``superres_vs_bicubic.png`` (rows: the 14²
input shown nearest-upscaled, bicubic, GON, ground truth; every cell shown at 4× its 28² size),
``metrics.json``, ``metrics.jsonl``, ``config.json`` and a checkpoint. Same as
``inr-gon train superres``.
"""

import sys

from inr_gon.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main(task="superres"))
