"""Point-in-time archives of storages (``[exports.NAME]``)."""
