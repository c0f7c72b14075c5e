"""Tenants: the clinics (or clinic groups) whose data the service keeps apart."""
