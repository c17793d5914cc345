"""Debugging from the event log alone: the timeline, explain, rerun, projection
rebuilds, usage statistics, export and import. Everything here reads the log (a
copy of a production database works as well as the live file); only ``rerun``
and ``import`` write, and never to a conversation. See ``docs/debugging.md``.
"""
