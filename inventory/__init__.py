"""The Lua inventory engine: key layout, scripts, thin async wrappers and reference models."""
