"""``python -m galppl ...`` is the ``galppl`` command."""

import sys

from galppl.cli import main

sys.exit(main())
