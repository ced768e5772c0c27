"""Fine-tuning, with differential privacy (Opacus DP-SGD) when asked, and canaries planted for
the privacy probes to find."""
