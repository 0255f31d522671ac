"""Data: records on disk -> typed examples -> rendered text -> tokens -> batches."""
