"""Paths the runbooks name. The routes live with their domains (app/<domain>/routes.py)."""
