"""Tools a persona's model may call: built-ins, HTTP tools declared in the persona file,
tools installed under the entry point group ``personae.tools``, and the bounded loop
that runs a reply's tool calls."""
