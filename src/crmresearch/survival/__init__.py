"""The customer table and counting-process episodes, the exact time-varying Cox model, and the estimators shared by the analyses.

Imports the layers to its left (core, data, timelines).
"""
