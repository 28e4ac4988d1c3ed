"""Everything the kit keeps outside MLflow: prediction log, data versions, review sets and labels."""
