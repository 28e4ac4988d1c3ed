"""What exists to tell the talk: overview and cycle figure, the manual level, the CI/CD tables and
the broken candidate, the loop's before/after, the evening-before check and its browser checks."""
