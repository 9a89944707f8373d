"""The HTTP layer: Flask app factory, contract-driven routing and validation, handlers."""
