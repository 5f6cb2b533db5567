"""One module per use case: each coordinates the inventory engine and the store."""
