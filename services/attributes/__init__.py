"""Attribute classification service: crops -> every attribute of each item and its embedding.

Built in issue 4."""
