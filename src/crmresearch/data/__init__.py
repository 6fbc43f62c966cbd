"""The input: the data contract (tables, columns, rules), sources (a folder of files, a DuckDB file, a flat extract), what each can answer, and the demo bank.

Imports only :mod:`crmresearch.core`.
"""
