"""Adversarial robustness: classification tasks posed to a language model, and TextAttack."""
