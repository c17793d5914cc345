"""Operations: ``personae doctor`` (``doctor``), the metrics recorder and health endpoint
wired by :func:`core.ops.observability.start_observability` (``metrics``, ``health``),
and online backups of the event log (``backup``).

Import the modules themselves: this package imports nothing, so that ``personae db``
does not load the Discord client to make a backup.
"""
