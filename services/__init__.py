"""Model and search services, each its own FastAPI app (issues 4 and 5)."""
