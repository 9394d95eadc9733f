"""The refprune conformance suite: property-based checks of any oracle-protocol target.

Shared pieces other test code reuses: ``tolerances`` (the per-dtype table and
``assert_close``) and ``gradcheck`` (central differences in float64).
"""
