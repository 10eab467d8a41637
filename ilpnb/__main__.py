"""``python -m ilpnb ...`` runs the ``ilpnb`` command (e.g. under ``torchrun``)."""

import sys

from ilpnb.cli import main

sys.exit(main())
