"""Foundations every layer may use: errors, atomic file writes, parameters, the calendar, fingerprints, pseudonyms and small-cell suppression.

Imports nothing else of crmresearch.
"""
