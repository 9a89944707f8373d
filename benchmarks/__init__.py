"""Benchmarks of quota-mock against bare Flask (the framework's ceiling) and Stoplight Prism.

Run everything with ``python -m benchmarks.run``; results go to ``benchmarks/RESULTS.md``.
"""
