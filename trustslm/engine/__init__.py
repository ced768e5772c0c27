"""The engine: plan an audit, execute its requests (batched, cached), score and aggregate."""
