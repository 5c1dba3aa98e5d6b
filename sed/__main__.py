"""``python -m sed``: the ``sedcity`` console script without the script on the ``PATH``."""

import sys

from sed.cli import main

sys.exit(main())
