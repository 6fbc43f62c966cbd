"""Where the public churn datasets (../shared/datasets) are.

They are not part of this repository (their licences are not ours to grant).
Looked for, in order: $CRMRESEARCH_DATASETS, ``shared/datasets`` beside any
parent folder of this checkout, and /work/shared/datasets.  Tests that need
them skip with this path in the reason when none exists.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _find() -> Path:
    env = os.environ.get("CRMRESEARCH_DATASETS")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" / "datasets" for p in ROOT.parents]
    candidates.append(Path("/work/shared/datasets"))
    for c in candidates:
        if (c / "bank-churn-modelling").is_dir():
            return c
    return candidates[0] if env else ROOT.parent / "shared" / "datasets"


DATASETS = _find()
BANK_CSV = DATASETS / "bank-churn-modelling" / "Churn_Modelling.csv"
TELCO_CSV = DATASETS / "telco-customer-churn" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
