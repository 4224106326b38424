"""API resources, one module each, shared by both clients; ``Mixpeek`` and ``AsyncMixpeek``
expose each as a ``cached_property`` (``client.tasks``), typed for the async client by
the generated ``_async`` module."""
