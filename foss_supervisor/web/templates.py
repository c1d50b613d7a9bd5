"""The page templates: a Jinja environment over ``ui_templates/``, built when the first page is rendered.

jinja2 (with markupsafe) is imported then, not when the dashboard starts: a dashboard that has served only
JSON, ``/health``, ``/metrics`` or the event stream never loads it. Jinja compiles each template on its
first ``get`` and keeps it (its loader checks the file's modification time on later uses).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.base.resources import data_dir
from foss_supervisor.base.wanted import as_wanted
from foss_supervisor.web.core import LISTED_EVENTS
from foss_supervisor.web.icons import ALREADY_DOWN, ALREADY_UP, PROGRAM_STATES, STATE_ICONS, STATE_LOOKS, STATE_WORDS

if TYPE_CHECKING:
    import jinja2

__all__ = ["READ_ONLY", "Templates", "kpi_number", "make_jinja", "number_cell", "owner_only"]

#: the title of a control a viewer sees disabled (its command would answer 403)
READ_ONLY = "the viewer token only reads: log in with the owner's token (STATE_DIR/api-token) to do this"


def owner_only(context: Mapping[str, Any]) -> str:
    """The attributes of a control that changes state (a ``data-command`` button): `` disabled title="..."``
    (:data:`READ_ONLY`) on a page a viewer reads (its ``viewer`` is true), else nothing; a Markup string.
    Templates call it as ``{{ owner_only() }}`` (tester of issue 18: a viewer saw Run now and Cancel active,
    answering 403)."""
    from markupsafe import Markup

    return Markup(' disabled title="{}"').format(READ_ONLY) if context.get("viewer") else Markup("")


def make_jinja() -> jinja2.Environment:
    """Templates from ``ui_templates/`` with autoescape on and undefined names as errors."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("ui_templates")), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.globals["state_icons"] = STATE_ICONS
    env.globals["listed_events"] = LISTED_EVENTS  # the page script listens for these (none typed in it)
    env.globals["state_words"] = STATE_WORDS
    env.globals["state_looks"] = STATE_LOOKS  # the graph's frames by state (graph.js reads them)
    env.globals["program_states"] = PROGRAM_STATES  # the state words the pages use come from the enums
    env.globals["process_state"] = ProcessState
    env.globals["already_up"] = ALREADY_UP
    env.globals["already_down"] = ALREADY_DOWN
    env.globals["as_wanted"] = as_wanted  # the one rule (base/wanted.py) that status, why and the verdict use
    env.globals["owner_only"] = jinja2.pass_context(owner_only)
    env.filters["num"] = lambda v, digits=0: "\u2013" if v is None else f"{v:,.{digits}f}"
    env.filters["cell"] = number_cell
    env.filters["kpi"] = kpi_number
    return env


class Templates:
    """The app's templates: ``get(name)`` -> a compiled ``jinja2.Template``; the environment is made on the
    first call. Raises ``jinja2.TemplateNotFound`` for a name ``ui_templates/`` does not hold."""

    def __init__(self) -> None:
        self._env: jinja2.Environment | None = None

    def get(self, name: str) -> jinja2.Template:
        if self._env is None:
            self._env = make_jinja()
        return self._env.get_template(name)

    @property
    def loaded(self) -> bool:
        """Whether a page has been rendered yet (jinja2 imported)."""
        return self._env is not None


def kpi_number(value: float) -> str:
    """A key figure as a card shows it: grouped, 2 decimals for a float; from a million on, compact
    (``3.21 M``, ``3.40 B``) so that it fits a card at any width. The exact value goes in the title."""
    if abs(value) >= 1_000_000:
        for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
            if abs(value) >= size:
                return f"{value / size:,.2f} {unit}"
    return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"


_NUMERIC_TEXT = re.compile(r"^(-?)(\d+)(\.\d+)?$")


def number_cell(value: Any) -> str:
    """A warehouse number as a table shows it: digits grouped, exact. Integers whole; a float with at most
    6 decimals; an exact number sent as text (a DECIMAL, an integer beyond 2**53) keeps every digit and
    its scale (``"12345678901234567.89"`` -> ``12,345,678,901,234,567.89``)."""
    if isinstance(value, str):
        m = _NUMERIC_TEXT.match(value)
        return f"{m[1]}{int(m[2]):,}{m[3] or ''}" if m else value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
