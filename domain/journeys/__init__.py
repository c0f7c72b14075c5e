"""Journeys: definitions with ordered stages, and patients' running instances of them."""
