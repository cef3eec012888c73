"""Bulk sends: one template to the endusers that filters select."""
