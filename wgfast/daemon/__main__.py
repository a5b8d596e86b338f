"""`python -m wgfast.daemon INTERFACE`: the same as the `wgfastd` command."""

import sys

from wgfast.daemon.main import main

sys.exit(main())
