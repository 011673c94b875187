"""The ``curate`` command line: mounts library, worker and service commands.

It sits above every layer (``curate`` -> ``workers`` -> ``api`` -> ``cli``), so the library
never imports it and the service starts job drivers as ``python -m cli run``.
"""
