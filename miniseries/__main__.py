"""`python -m miniseries ...` (what torchrun runs) is the same as the `miniseries` command."""

import sys

from miniseries.cli import main

if __name__ == "__main__":
    sys.exit(main())
