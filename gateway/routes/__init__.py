"""The gateway's public routes, one module per topic; each handler gets what it works on by dependency
(gateway/state.py)."""
