"""Running model requests: deduplication, batching (by the adapter), progress and the on-disk cache."""
