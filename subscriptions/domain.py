"""Domain models: typed views of a subscription per product and lifecycle (DESIGN §5).

    class NodeProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
        hostname: str | None = None

    class Node(NodeProvisioning, lifecycles=["active"]):
        hostname: str

A step takes one as a parameter (`node: Node`: loaded from the state's subscription id)
and returns it in its result (`{"subscription": node}`): the runner saves it inside the
step's transaction. `Node.from_other_lifecycle(provisioning, "active")` moves between them.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

BASE_FIELDS = ("subscription_id", "product_id", "customer_id", "description", "note", "status",
               "insync", "version", "depends_on")


class SubscriptionModel(BaseModel):
    model_config = ConfigDict(validate_assignment=True)

    lifecycles: ClassVar[tuple[str, ...]] = ()

    subscription_id: uuid.UUID
    product_id: int
    customer_id: str = ""
    description: str = ""
    note: str = ""
    status: str = "initial"
    insync: bool = False
    version: int = 1
    depends_on: list[uuid.UUID] = []

    def __init_subclass__(cls, lifecycles: list[str] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if lifecycles is not None:
            cls.lifecycles = tuple(lifecycles)

    @classmethod
    def from_subscription(cls, subscription_id: Any) -> SubscriptionModel:
        from subscriptions.models import Subscription

        row = Subscription.objects.get(pk=subscription_id)
        if cls.lifecycles and row.status not in cls.lifecycles:
            raise ValueError(
                f"{cls.__name__} is for {', '.join(cls.lifecycles)} subscriptions; "
                f"{row.pk} is {row.status}"
            )
        return cls(
            subscription_id=row.pk,
            product_id=row.product_id,
            customer_id=row.customer_id,
            description=row.description,
            note=row.note,
            status=row.status,
            insync=row.insync,
            version=row.version,
            depends_on=list(row.depends_on.values_list("pk", flat=True)),
            **row.instance_values,
        )

    @classmethod
    def from_state(cls, value: Any) -> SubscriptionModel:
        """From the state: a subscription id, or a dumped model carrying its id."""
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            value = value.get("subscription_id")
        return cls.from_subscription(value)

    @classmethod
    def from_other_lifecycle(cls, other: SubscriptionModel, status: str) -> SubscriptionModel:
        values = {**other.model_dump(), "status": status}
        return cls(**values)

    @classmethod
    def from_other_product(cls, other: SubscriptionModel, product: Any) -> SubscriptionModel:
        """The same subscription as a model of another product of its product type (id or
        name): a modify workflow moves it by returning this model (Port 10G → Port 100G).
        A product of another type is refused with the reason."""
        from subscriptions.models import Subscription
        from subscriptions.selectors import find_product, product_change_refusal

        row = Subscription.objects.select_related("product__product_type").get(
            pk=other.subscription_id
        )
        new = find_product(product)
        refusal = product_change_refusal(row, new, product)
        if refusal:
            raise ValueError(refusal)
        return cls(**{**other.model_dump(), "product_id": new.pk})

    def instance_values(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in BASE_FIELDS}

    def __orchestrator_save__(self) -> None:
        """Write the model to its subscription row (inside the step's transaction)."""
        from django.utils import timezone

        from subscriptions.models import Subscription

        row = Subscription.objects.select_for_update().get(pk=self.subscription_id)
        if row.product_id != self.product_id:  # moved to another product of its type
            from subscriptions.selectors import find_product, product_change_refusal

            new = find_product(self.product_id)
            refusal = product_change_refusal(row, new, self.product_id)
            if refusal:
                raise ValueError(refusal)
            row.product = new
        row.customer_id = self.customer_id
        row.description = self.description
        row.note = self.note
        if row.status != self.status:
            if self.status == "active" and row.start_date is None:
                row.start_date = timezone.now()
            if self.status == "terminated":
                row.end_date = timezone.now()
        row.status = self.status
        row.instance_values = self.instance_values()
        row.version += 1
        row.save()
        row.depends_on.set(self.depends_on)
        self.version = row.version
