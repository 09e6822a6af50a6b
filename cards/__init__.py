"""Jinja2 templates for dataset cards and the leaderboard page (package data)."""
