"""Appointments and what they are booked into: locations and practitioners' time slots."""
