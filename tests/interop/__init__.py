"""Interop and hostile-input tests against the running recorder (issue 3)."""
