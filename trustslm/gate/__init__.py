"""The release gate: a YAML policy of thresholds, evaluated on a report."""
