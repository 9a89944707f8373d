"""The mock's domain: money, ledger, idempotency and pricing, with no web framework import.

Everything here is callable and testable on its own; the web layer only translates HTTP
to these calls and their results (and :class:`QuotaError`) back to HTTP.
"""
