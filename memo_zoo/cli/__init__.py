"""Command-line entry point (``memo-zoo``)."""

import sys

from memo_zoo.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
