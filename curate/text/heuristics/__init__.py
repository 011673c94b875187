"""Heuristic text signals."""
