"""The operations-centre HTTP API and dashboard."""
