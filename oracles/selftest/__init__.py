"""`autodiff-audit selftest`: the audit's power, measured on planted single-rule bugs (`planted.py`)."""
