"""``python -m factorcl_jax`` runs the ``factorcl-jax`` command."""

import sys

from factorcl_jax.runs.cli import main

sys.exit(main())
