"""Campaigns: a cohort's patients enrolled into a journey, once each, by one durable workflow."""
