"""``python -m newswire``: the same as the ``newswire`` command."""

import sys

from .cli import main

sys.exit(main())
