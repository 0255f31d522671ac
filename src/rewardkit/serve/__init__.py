"""Scoring: the batch scorer shared by evaluation, `rewardkit score` and the HTTP server."""
