#!/usr/bin/env python
"""Download MNIST and/or Fashion-MNIST into ``<root>/mnist/`` and ``<root>/fashion-mnist/``.

Usage (from the repository root)::

    python datasets/download.py                  # both, into datasets/
    python datasets/download.py mnist            # only MNIST
    python datasets/download.py fashion --root /data/inr_gon

Uses :func:`inr_gon.data.download_mnist`: canonical mirrors, MD5 check of the uncompressed
bytes, atomic writes; files already present and valid are kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if (HERE.parent / "inr_gon" / "data").is_dir():  # in a checkout: use this checkout's package
    sys.path.insert(0, str(HERE.parent))

from inr_gon.data import DownloadError, download_mnist  # noqa: E402

FOLDERS = {"mnist": "mnist", "fashion": "fashion-mnist"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="mnist and/or fashion (default: both)"
    )
    parser.add_argument(
        "--root", type=Path, default=HERE, help=f"data root (default: {HERE})"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    args = parser.parse_args(argv)
    names = args.names or list(FOLDERS)
    unknown = [n for n in names if n not in FOLDERS]
    if unknown:
        parser.error(f"unknown data set(s) {', '.join(unknown)}; choose from {', '.join(FOLDERS)}")
    status = 0
    for name in names:
        target = args.root / FOLDERS[name]
        try:
            folder = download_mnist(name, target, timeout=args.timeout)
        except DownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
        else:
            print(f"{name}: four verified IDX files in {folder}")
    return status


if __name__ == "__main__":
    sys.exit(main())
