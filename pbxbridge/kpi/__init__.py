"""Daily KPIs of a sales team, updated as each call ends."""
