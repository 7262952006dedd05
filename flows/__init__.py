"""Prefect flows of the score pipeline."""
