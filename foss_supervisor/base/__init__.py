"""Helpers every room may use, at the level of the standard library: atomic files (:mod:`~.atomicfile`),
facts read from /proc (:mod:`~.procinfo`), the package's own data and default paths (:mod:`~.resources`),
the token files (:mod:`~.tokens`), write-failure accounting (:mod:`~.writefailures`), the event loop's
rate-limited error handler (:mod:`~.loopguard`), the one redaction of secrets (:mod:`~.redact`), the one
state-table type (:mod:`~.transitions`), the one JSON converter (:mod:`~.jsonable`) and the one blocking
bounded poll (:mod:`~.poll`).

May import: the standard library, third-party libraries, and :mod:`foss_supervisor.errors`; nothing
else of ours.
"""
