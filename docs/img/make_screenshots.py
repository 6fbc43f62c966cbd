"""Regenerate the screenshots of docs/reports.md: a zh branch report, the bank summary and the index.

Run from the repository (needs the ``pdf`` extra's Playwright and Debian's ``chromium``)::

    .venv/bin/python docs/img/make_screenshots.py

It builds a small demo bank (6 branches) in a temporary folder, renders its
month in Chinese with ``crmresearch report --language zh``, opens the index,
the bank summary and the first branch report in headless Chromium at
1280 × 900 (the "first screen" of docs/reports.md) and writes
``index-zh.png``, ``bank-zh.png`` and ``branch-zh.png`` next to this script.
The demo data are synthetic (no real customer); the pictures change only
when the reports do.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from crmresearch.batch.pdf import CHROMIUM_ARGS, chromium_executable
from crmresearch.data.demo import DEFAULT_AS_OF

HERE = Path(__file__).resolve().parent
MONTH = f"{DEFAULT_AS_OF:%Y-%m}"
VIEWPORT = {"width": 1280, "height": 900}


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-c", "import sys; from crmresearch.cli import main; sys.exit(main())", *args],
                   check=True)  # fmt: skip


def main() -> int:
    """Render the zh demo month and write the three screenshots; returns the exit status."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="crm-shots-") as tmp:
        root = Path(tmp)
        _cli("demo-data", str(root / "bank"), "--branches", "6", "--customers-per-branch", "800", "--months", "30")
        _cli("keygen", str(root / "key"))
        _cli("report", str(root / "bank"), "--month", MONTH, "--language", "zh", "--out", str(root / "out"),
             "--key-file", str(root / "key"), "--cache-dir", str(root / "cache"), "--workers", "2")  # fmt: skip
        month = root / "out" / MONTH
        branch = sorted((month / "branches").glob("*.html"))[0]
        pages = {"index-zh.png": month / "index.html", "bank-zh.png": month / "bank.html", "branch-zh.png": branch}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
                for name, html in pages.items():
                    page.goto(html.as_uri(), wait_until="load")
                    page.evaluate("document.fonts.ready")
                    page.screenshot(path=str(HERE / name))
                    print(f"wrote {HERE / name}", file=sys.stderr)
            finally:
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
