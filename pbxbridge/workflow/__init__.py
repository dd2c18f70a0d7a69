"""The daily workflow: missed clients to call back, and each client's own manager from day one."""
