"""The reports: the sections of a branch or bank page, and the report notebooks (package data, ``notebooks/*.ipynb``).

Imports the layers to its left (core … month).
"""
