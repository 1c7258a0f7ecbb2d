"""`python -m cli ...` is the `htr` command."""

import sys

from cli.main import main

sys.exit(main())
