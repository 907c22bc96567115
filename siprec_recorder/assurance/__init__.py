"""Recording assurance: CDR reconciliation and alerts (see docs/assurance.md)."""
