"""Figures, fonts and the one phrase catalog (en, zh).  Plots take results as arguments and import no analysis.

Imports the layers to its left (core … survival).
"""
