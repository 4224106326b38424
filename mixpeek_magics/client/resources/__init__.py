"""API resources, one module each. A module defines ``RESOURCE = <Resource subclass>``
and the clients expose it as ``client.<module name>`` (e.g. ``client.tasks``)."""
