"""The REST API serving ``models:/<name>@champion`` (FastAPI, uvicorn) and its prediction log."""
