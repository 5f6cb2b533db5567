"""HTTP routes and thin handlers, grouped by audience (citizen, provider, operator)."""
