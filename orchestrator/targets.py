"""What a workflow does to a subscription (DESIGN §4.4)."""

from enum import StrEnum


class Target(StrEnum):
    CREATE = "create"
    MODIFY = "modify"
    TERMINATE = "terminate"
    VALIDATE = "validate"
    SYSTEM = "system"
