import sys

from segfit.cli import entry

sys.exit(entry())
