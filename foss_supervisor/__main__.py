"""Allow ``python -m foss_supervisor``."""

from __future__ import annotations

from foss_supervisor.cli import main

raise SystemExit(main())
