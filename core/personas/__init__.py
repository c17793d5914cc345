"""Personas: YAML files, their schema, loading, hot reload and character cards."""
