"""Notifications: recorded with the change they report, delivered once per channel."""
