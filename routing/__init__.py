"""Outbound routes and transport security: relays (smarthosts), SRS and ARC for forwarded
mail, the outbound TLS policy (MTA-STS, DANE) and the queue as operators see it."""
