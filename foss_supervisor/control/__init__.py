"""The control socket: newline-delimited JSON over a Unix socket (0600, peer uid checked).

What lives here: :mod:`~.protocol` (the wire format, ``subscribe`` included), :mod:`~.server` (a thin
transport over the commands' egress gate, with bounded reads and the event stream) and :mod:`~.client` (a
blocking stdlib client for the CLI, with busy-socket retries).

May import: the commands (the server), the core's event log, the base. The client is stdlib only, so
``foss-supervisor status`` starts fast.
"""
