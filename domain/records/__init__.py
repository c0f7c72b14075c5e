"""A patient's records across the domains: the 360 view, the statistics, the appointment and message lists
and the merge.

This package composes the domains (patients, scheduling, communications, journeys, tickets) and sits above
them: only the API (and tests) import it, nothing in `domain` does.
"""
