"""The core dispatcher: inbound messages -> trigger decisions -> replies, all as events.

Adapters speak :mod:`core.dispatcher.messages` and implement
:class:`core.dispatcher.sink.ReplySink`; the dispatcher itself is
:class:`core.dispatcher.dispatcher.Dispatcher`. See ``docs/dispatcher.md``.
"""
