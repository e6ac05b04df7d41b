"""``python -m harness``: the same as the ``losscheck`` console script."""
import sys

from harness.cli import main

sys.exit(main())
