"""Placeholder router (filled in by the next commits)."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
