"""``python -m audionets`` is the same program as ``audionets`` (so torchrun can start it)."""

import sys

from audionets.cli import main

sys.exit(main())
