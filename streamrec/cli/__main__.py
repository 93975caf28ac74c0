"""``python -m streamrec.cli``: the same entry point as the ``streamrec`` script."""

import sys

from streamrec.cli import main

sys.exit(main())
