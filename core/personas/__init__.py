"""Personas: YAML files, their schema, loading, hot reload and character cards.

- ``model``: the frozen :class:`Persona` everything else reads.
- ``loader``: files -> personas, or every problem located (``load_personas``).
- ``defaults``: ``persona_defaults`` located in config.yaml; the known providers.
- ``registry``: the personas serving now; ``watcher``: hot reload.
- ``versions``: each version recorded once in the event log, and rebuilt from it.
- ``prompt``: system prompt templates; ``lorebook``: which lore entries activate.
- ``cards``: Character Card V1/V2/V3 import; ``yamlout``: YAML people can edit.
"""
