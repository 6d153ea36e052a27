"""Signals to run RoboTest by: Prometheus metrics, readiness checks, request ids and JSON logs (docs/operations.md).

Site plumbing: these modules import Django, prometheus_client and the models, never the app's
upper layers, so the pipeline and the engine may record into them.
"""
