"""Reads of the core domain: series buckets over the rollup tiers, and the series catalog."""
