"""Evaluation: metrics, the evaluate command, reports."""
