"""Privacy measurements as plain functions (exposure, membership-inference attacks and their
metrics, PII detection, the one-run DP audit), used by the privacy probes and tested on
hand-computed cases."""
