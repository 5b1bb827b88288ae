"""``python -m openmm_timewarp.cli``: the ``openmm-timewarp`` command."""

import sys

from . import main

sys.exit(main())
