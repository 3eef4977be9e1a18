"""Optional integrations (web frameworks, metrics exporters), each behind its own extra.

Nothing here is imported by ``aiowriter`` itself: the public entry points are the modules of
``aiowriter.integrations``, which import the framework when they are imported.
"""
