"""Calls carried into the CRM a department already uses: a durable outbox, Bitrix24, amoCRM, signed webhooks."""
