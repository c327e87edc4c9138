"""The public API: /tagging, /search, /recommend. Built in issues 4 and 5."""
