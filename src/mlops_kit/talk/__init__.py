"""What exists to tell the talk: overview tables, the manual level, the CI/CD tables, the loop's before/after."""
