"""The web app: static files served by the service itself (see reservation.api.web) and
the pure helpers behind its few extra routes (CSV upload)."""
