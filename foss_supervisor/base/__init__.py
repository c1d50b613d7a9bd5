"""Helpers every room may use, at the level of the standard library.

What lives here, by what it is for:

* files: :mod:`~.atomicfile` (replace a file in one rename), :mod:`~.filemodes` (0600 files, 0700 folders),
  :mod:`~.filewriter` (one writer thread for programs' output files), :mod:`~.writefailures` (failed writes
  counted and reported once per interval), :mod:`~.diskroom` (free-space floor, export budget), :mod:`~.jsontext`
  (JSON from files we did not write this run: parsed or ValueError);
* the daemon's places and locks: :mod:`~.resources` (the package's data and default paths),
  :mod:`~.controlsocket` (where a daemon's control socket is, as plain strings), :mod:`~.pidfile` (the PID
  file and its ``fcntl`` lock), :mod:`~.configlock` (one daemon per config file), :mod:`~.tokens` (the owner
  and viewer token files);
* the OS: :mod:`~.procinfo` (a PID checked against its start time), :mod:`~.listening` (TCP ports a set of
  processes listens on), :mod:`~.peakrss` (this process's peak resident memory), :mod:`~.usagespan` (memory,
  CPU and I/O over a stretch of work);
* the event loop: :mod:`~.loopguard` (its rate-limited error handler), :mod:`~.loopgate` (a per-loop bound on
  work at once), :mod:`~.turnshare` (clients' share of
  a loop turn), :mod:`~.poll` (the one blocking bounded poll, never on a loop);
* one of each: :mod:`~.redact` (the one redaction of secrets) with :mod:`~.secretshapes` (the shapes a
  secret takes), :mod:`~.secretforms` (its shapes in markup, SQL, a tool's flags, encoded names) and
  :mod:`~.secretnames` (the names that say a value is one), :mod:`~.transitions` (the one state-table type),
  :mod:`~.jsonable` (the one JSON converter), :mod:`~.wanted` (whether a program is as wanted: ``status``,
  ``why``, the health verdict);
* the house's state words, which every room speaks (the core and the pipeline keep them, the CLI, the graph, the
  pages show them): :mod:`~.processstates` (a program's states as supervisord names them, their groups, the
  daemon's phase; their tables are the core's), :mod:`~.pipelinestates` (a step's and a run's, with their tables).

May import: the standard library, third-party libraries, and :mod:`foss_supervisor.errors`; nothing
else of ours.
"""
