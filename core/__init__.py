"""personae's runtime: config, personas, dispatcher, limits, model gateway, adapters, CLI."""
