"""pimsync: two-way sync of calendars and contacts."""

__version__ = "0.1.0"
