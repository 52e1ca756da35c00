import sys

from segfit.cli import main

sys.exit(main())
