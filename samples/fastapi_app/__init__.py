"""FastAPI relay sample (see app.py)."""
