"""The hybridhub service: fleet inventory, health, placement and policy, beside the hub."""

__all__: list[str] = []
