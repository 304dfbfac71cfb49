"""``python -m cherrypick.catalog.refresh ARGS``: ``cherrypick catalog refresh ARGS``."""

import sys

from cherrypick.cli import main

raise SystemExit(main(["catalog", "refresh", *sys.argv[1:]]))
