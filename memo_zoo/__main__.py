"""``python -m memo_zoo``: the memo-zoo command line."""

import sys

from memo_zoo.cli.app import main

sys.exit(main())
