"""Data collection: crawl an author's links into standardized raw documents in the warehouse."""
