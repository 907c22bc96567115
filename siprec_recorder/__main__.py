"""``python -m siprec_recorder`` is the ``siprec-recorder`` command."""

import sys

from .cli import main

sys.exit(main())
