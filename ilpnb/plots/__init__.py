"""Plot functions: each takes data and an optional ``ax`` and returns the axes (never shows)."""
