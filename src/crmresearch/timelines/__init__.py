"""The covariate builders: from the validated tables to change points of churn, products held, RM exposure, complaints, activity and contacts.

Imports :mod:`crmresearch.core` and :mod:`crmresearch.data`.
"""
