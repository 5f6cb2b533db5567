"""Fair access: waiting room, lottery, rate limits, waitlist, audit chain."""
