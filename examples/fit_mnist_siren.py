"""Fit an implicit GON (SIREN over pixel coordinates) to MNIST, end to end.

    python examples/fit_mnist_siren.py                      # CPU: time budget; CUDA: paper's model
    python examples/fit_mnist_siren.py --dataset fashion    # Fashion-MNIST
    python examples/fit_mnist_siren.py --help               # every option

Writes reconstructions, samples, interpolations, super-resolution renders, curves, metrics
and a checkpoint into --out (default runs/<dataset>_siren). Same as ``inr-gon train``.
"""

import sys

from inr_gon.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
