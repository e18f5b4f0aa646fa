"""Advice: the cost model (costs.yaml) and the recommendation built on it."""
