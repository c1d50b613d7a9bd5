"""``python -m foss_supervisor.web``: the dashboard process (see :mod:`foss_supervisor.web.serve`)."""

from __future__ import annotations

import sys

from foss_supervisor.web.serve import main

sys.exit(main())
