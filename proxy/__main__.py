"""``python -m proxy``: the same entry point as the ``s3tier`` console script."""

import sys

from proxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
