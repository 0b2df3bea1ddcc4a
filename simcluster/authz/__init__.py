"""Who may do what: request attributes, RBAC, impersonation and the built-in roles of an API server."""
