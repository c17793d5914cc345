"""Attachments in: what kind a file is, fetching it within caps, and its content
(image size, decoded text, a PDF's text) ready to store once by its hash."""
