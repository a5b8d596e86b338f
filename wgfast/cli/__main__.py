"""`python -m wgfast.cli ...`: the same as the `wgfast` command."""

import sys

from wgfast.cli.main import main

sys.exit(main())
