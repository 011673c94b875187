"""PreSelect: predictive-strength labels and fastText quality scorers (placeholder)."""
