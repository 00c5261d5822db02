"""What is asked: design spaces, budgets and rules (a problem), presets, a design's report."""
