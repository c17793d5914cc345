"""The core dispatcher: inbound messages -> trigger decisions -> replies, all as events.

Three parts, each with its own module: :mod:`~core.dispatcher.admission` (who may
answer), :mod:`~core.dispatcher.pipeline` (the reply: prompt, model, record, deliver)
and :mod:`~core.dispatcher.recovery` (what a crash left open), coordinated by
:class:`core.dispatcher.dispatcher.Dispatcher` (intake, queue, life cycle). Adapters
speak :mod:`core.dispatcher.messages` and implement
:class:`core.dispatcher.sink.ReplySink`. See ``docs/dispatcher.md``.
"""
