"""``python -m hrnet`` (what ``torchrun ... -m hrnet train`` runs)."""

import sys

from hrnet.cli import main

sys.exit(main())
