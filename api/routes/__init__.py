"""The service's HTTP routes, one module per resource (``api.app`` includes them).

Every router but ``health.router`` and ``catalogue.public_router`` is made by
:func:`api.routes.deps.token_router`, which puts the bearer-token check on the router
itself, so a route added to a resource module is protected without saying so. Public are
only health, readiness, metrics and the stage catalogue: nothing derived from a corpus or
a job.
"""
