"""Offline builders and dataset adapters."""
