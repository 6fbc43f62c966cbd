"""The sections of a monthly report, one module each; :class:`crmresearch.report.reports.BranchReport`
and :class:`~crmresearch.report.reports.BankReport` are composed of them."""
