"""Prefect tasks: thin adapters over score_core steps that pass paths and small records."""
