"""Patients API (`/patients`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/patients", tags=["patients"])
