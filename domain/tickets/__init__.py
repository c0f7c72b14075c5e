"""Support tickets with SLA clocks."""
