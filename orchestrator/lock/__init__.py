"""Named locks held across every worker and machine (DESIGN §4.4), as Infrahub's code takes
them:

    from orchestrator.lock import registry

    with registry.get(name="device-42", namespace="config-push", timeout=30):
        ...                      # one holder at a time, on any worker of any machine
    async with registry.get(name="device-42", namespace="config-push"):
        ...

On PostgreSQL a lock is a session-level advisory lock on a connection of its own (not the
caller's: it outlives no transaction and waits in no step's transaction); a holder that
dies closes that connection, and PostgreSQL releases its locks with it. Elsewhere (SQLite)
it is a row of `NamedLock` with a lease that its holder renews while it holds the lock; a
holder that dies stops renewing and the lock is free once the lease has expired.

Waiting longer than `timeout` seconds raises `LockTimeout` naming the lock. A lock object
is not re-entrant: taking a name you already hold, through another object, waits for
yourself until the timeout.
"""

from orchestrator.lock.base import Lock, LockRegistry, LockTimeout

registry = LockRegistry()

__all__ = ["Lock", "LockRegistry", "LockTimeout", "registry"]
