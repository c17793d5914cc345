"""The moderation step: what a message to a persona, or a persona's reply, is held to.

:class:`~.moderator.Moderator` scores a text with the local word and pattern lists
(:mod:`.wordlist`, linear time) and, when config names one, a provider's
``/v1/moderations`` endpoint (:mod:`.openai_provider`), within a deadline; the
:mod:`.policy` turns the scores into a verdict (pass, flag, block) against per-category
thresholds and the verdict into actions (refuse, warn, alert, log), with a persona's
overrides over config's. The dispatcher records each decision as a ModerationChecked
event and acts on it (docs/privacy.md, "Moderation").
"""
