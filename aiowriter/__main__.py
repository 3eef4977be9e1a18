"""``python -m aiowriter``: the same command line as the ``aiowriter`` script."""

import sys

from ._cli.main import main

sys.exit(main())
