"""Conversation context: the prompt built from the log, and rebuilt from it later."""
