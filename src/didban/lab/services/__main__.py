"""Entry point: ``python -m didban.lab.services {inet|domestic} --state-dir DIR``."""

import sys

from didban.lab.services.main import main

sys.exit(main())
