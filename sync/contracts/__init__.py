"""Versioned contract surfaces shared by box and cloud (exported to /contracts as JSON Schema)."""
