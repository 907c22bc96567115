"""Compliance: retention and legal hold (the only code that deletes recordings), encryption at
rest, and the completeness report (MiFID II record keeping; see issue 6)."""
