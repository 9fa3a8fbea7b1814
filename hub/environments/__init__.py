"""The environments area: an admin-managed catalogue of environments (frameworks); see area.py."""
