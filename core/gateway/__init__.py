"""The model gateway: OpenAI-compatible providers with retries, breakers and fallbacks."""
