"""The last guard of the product ↔ workflow rule, whatever path links them (admin, code,
`migrate_workflows`, the demo, a shell): linking a second create, terminate or validate
workflow to a product raises a ValidationError naming the first, and nothing is linked."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models.signals import m2m_changed
from django.dispatch import receiver

from orchestrator.models import Workflow
from subscriptions.models import Product
from subscriptions.selectors import workflow_link_refusal


@receiver(m2m_changed, sender=Product.workflows.through, dispatch_uid="product_workflow_rule")
def refuse_second_single_workflow(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action != "pre_add" or not pk_set:
        return
    if reverse:  # workflow.products.add(product, ...)
        products = Product.objects.select_for_update().filter(pk__in=pk_set)
        links = [(product, [instance]) for product in products]
    else:  # product.workflows.add(workflow, ...)
        Product.objects.select_for_update().filter(pk=instance.pk).first()  # serialise links
        links = [(instance, list(Workflow.objects.filter(pk__in=pk_set)))]
    for product, adding in links:
        refusal = workflow_link_refusal(product, [*product.workflows.all(), *adding])
        if refusal:
            raise ValidationError(refusal, code="single_workflow")
