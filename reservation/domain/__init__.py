"""Pure domain rules: no I/O, tested without servers."""
