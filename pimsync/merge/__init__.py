"""Three-way merge of one record (``conflict = "merge"``): pure functions on texts.

A record changed on both sides since the last sync is merged against its base, per
component (overrides matched by RECURRENCE-ID), property by property; multi-valued
properties (ATTENDEE, CATEGORIES, EXDATE, RDATE, vCard EMAIL, TEL, ADR, URL...) as sets.
See ``merge``. No I/O here.
"""

from __future__ import annotations

from pimsync.merge.api import apply_changes, merge
from pimsync.merge.result import MergeResult, PropertyConflict, Side

__all__ = ["MergeResult", "PropertyConflict", "Side", "apply_changes", "merge"]
