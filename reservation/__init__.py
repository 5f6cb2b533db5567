"""fairseat: a fair reservation service for train seats, hospital registrations and vaccines."""
