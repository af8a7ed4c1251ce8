"""All admin-side queries, one module per entity. The request (or command) boundary commits."""
