"""`python -m equalinfo ...` runs the `equalinfo` command line."""
import sys

from equalinfo.cli import main

if __name__ == "__main__":
    sys.exit(main())
