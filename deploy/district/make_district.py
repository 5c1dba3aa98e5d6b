"""Regenerate the example district in this folder (synthetic footprints, not a real city).

    .venv/bin/python deploy/district/make_district.py

Seeded: it writes the same files every time (see ``sed.coverage.synthetic``).
"""

from __future__ import annotations

from pathlib import Path

from sed.coverage.synthetic import DistrictSpec, write_district

if __name__ == "__main__":
    plan = write_district(Path(__file__).resolve().parent, DistrictSpec())
    print(f"wrote {plan.parent}/ (plan file {plan.name})")
