"""Text scorers (toxicity first): plugins with one batched interface."""
