"""The analyses of a month: KPIs, product coverage, causes, lifecycle, RM turnover, early warnings, the retention loop, the watch list, risk adjustment.

Imports the layers to its left (core … viz).
"""
