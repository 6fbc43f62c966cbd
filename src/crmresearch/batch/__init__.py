"""The monthly run: guards, kernels and worker processes, the local pool or a Dask cluster, the manifest and the index page.

Imports the layers to its left (core … report).
"""
