"""RULER-style tasks: multi-key needles, variable tracking, common words."""
