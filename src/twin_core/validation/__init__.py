"""Data validation with Great Expectations 1.x: suites per category, quarantine, Data Docs."""
