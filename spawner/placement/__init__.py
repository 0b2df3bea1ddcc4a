"""Placement: which clusters, pools and nodes can take a request, best first, and the sentences users
read about it; reservations for spawns in flight. Pure: no I/O."""
