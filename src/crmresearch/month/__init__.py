"""The month's bank-wide stage (the bundle every report of the month reads) and metrics.json.

Imports the layers to its left (core … analyses).
"""
