"""Django's PostgreSQL backend, told the parameter limit of server-side binding.

With `server_side_binding` (orchestrator.config) a statement carries at most 65,535
parameters: the protocol counts them in 16 bits. Django 5.2 does not know that limit, so a
delete that cascades over more rows (the clean-up of old task runs, an admin's bulk delete)
sent one `IN (...)` with a parameter per row and failed ("number of parameters must be
between 0 and 65535"). As Django 6.0 does (ticket #36822), the backend declares the limit,
and the deletion collector and bulk writes cut their statements into batches under it.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base, features, operations
from django.utils.functional import cached_property

SERVER_SIDE_PARAMETER_LIMIT = 2**16 - 1


class DatabaseFeatures(features.DatabaseFeatures):
    @cached_property
    def max_query_params(self) -> int | None:
        return SERVER_SIDE_PARAMETER_LIMIT if self.uses_server_side_binding else None


class DatabaseOperations(operations.DatabaseOperations):
    def bulk_batch_size(self, fields: list[Any], objs: list[Any]) -> int:
        limit = self.connection.features.max_query_params
        if limit is None:
            return super().bulk_batch_size(fields, objs)
        return max(limit // max(len(fields), 1), 1)


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations
