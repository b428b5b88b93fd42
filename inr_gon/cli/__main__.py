"""``python -m inr_gon.cli``: the ``inr-gon`` command."""

import sys

from . import main

sys.exit(main())
