"""Rate limits beside quotas: at most `allowance` spent uses per fixed window (a second or a
minute, aligned to Unix time) for a token or a group, decided in memory.

`leases` takes a share of the current window's allowance from the shared counter row with one
atomic UPDATE; `limiter` serves the validations of one validator process from its leases, so a
busy token costs a database write per lease, not per request. The total of all leases of a
window never exceeds the allowance, so however many processes there are, no window allows more
than its allowance (exact); the price is that a process may refuse while another still holds
unused lease. docs/tokens-and-quotas.md#rate-limits.
"""

from token_validator.rates.limiter import RateLimiter, RateState

__all__ = ["RateLimiter", "RateState"]
