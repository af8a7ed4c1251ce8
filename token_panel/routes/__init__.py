"""The panel's pages, one module per area; every router but `auth` needs a signed-in admin."""
