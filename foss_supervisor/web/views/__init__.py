"""One module per page (Datasette's ``views/``): each turns a request into plain data through the commands
and answers it with :func:`foss_supervisor.web.responder.respond`."""
