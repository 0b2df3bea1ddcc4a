"""The hub side's pure model: clusters and pools, node capacity, labels, quantities, health.

Nothing here does I/O; every other package of ``spawner`` builds on it.
"""
