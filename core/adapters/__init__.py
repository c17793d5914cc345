"""Adapters between platforms (Discord, the terminal) and the neutral dispatcher."""
