"""A demo cloud catalogue for the "Production Environment" blueprint (DESIGN §10): a VPC, an
EKS cluster and an RDS database, each a product whose create workflow simulates
provisioning with short, realistic pauses and exposes the outputs the next ones need.

| product      | create workflow     | outputs                                              |
| ------------ | ------------------- | ---------------------------------------------------- |
| VPC          | create_vpc          | vpc_id, private_subnet_ids, public_subnet_ids        |
| EKS Cluster  | create_eks_cluster  | cluster_endpoint, cluster_arn                        |
| RDS Database | create_rds_database | db_endpoint, db_port                                 |

Nothing here talks to a cloud: ids and endpoints are made up, the pauses stand in for the
provider's API. A cluster and a database depend on the subscriptions of their parent
resources (the VPC), so the VPC cannot be terminated while they live, and a tear down
terminates them first.
"""

from __future__ import annotations

import hashlib
import secrets as token_source
import time
from typing import Any

from django import forms

from orchestrator.catalogue import WorkflowDefinition, WorkflowTag
from orchestrator.forms import SecretField
from orchestrator.workflow import State, StepList, begin, step
from orchestrator.workflows.utils import create_workflow, terminate_workflow
from subscriptions.domain import SubscriptionModel

# Pauses (seconds) standing in for the cloud provider's API; short enough for a demo.
PAUSES = {"reserve": 0.8, "vpc": 1.5, "control_plane": 2.5, "node_group": 1.5,
          "subnet_group": 0.8, "instance": 3.0, "delete": 1.0}
REGIONS = ["eu-west-1", "eu-central-1", "us-east-1"]


def fake_id(prefix: str, *parts: Any) -> str:
    """A stable, made-up cloud id from what identifies the resource."""
    return f"{prefix}-{hashlib.sha256(repr(parts).encode()).hexdigest()[:12]}"


def pause(name: str) -> None:
    time.sleep(PAUSES[name])


# --- VPC -----------------------------------------------------------------------------------


class VpcProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
    name: str | None = None
    cidr_block: str | None = None
    region: str | None = None
    vpc_id: str | None = None


class Vpc(VpcProvisioning, lifecycles=["active", "disabled"]):
    name: str
    vpc_id: str


class VpcForm(forms.Form):
    customer_id = forms.CharField(max_length=100, initial="platform")
    name = forms.CharField(max_length=60)
    cidr_block = forms.CharField(max_length=18, initial="10.0.0.0/16")
    region = forms.ChoiceField(choices=[(r, r) for r in REGIONS], initial="eu-west-1")
    availability_zones = forms.IntegerField(min_value=1, max_value=6, initial=3, required=False)


@step("Reserve the address space")
def reserve_address_space(cidr_block: str, region: str) -> State:
    pause("reserve")
    return {"reserved_cidr": cidr_block, "region": region}


@step("Create the VPC and its subnets")
def create_vpc_and_subnets(subscription_id: str, name: str, cidr_block: str, region: str,
                           availability_zones: int | None = 3) -> State:
    pause("vpc")
    vpc_id = fake_id("vpc", subscription_id)
    zones = "abcdef"[: availability_zones or 3]
    vpc = VpcProvisioning.from_subscription(subscription_id)
    vpc.name, vpc.cidr_block, vpc.region, vpc.vpc_id = name, cidr_block, region, vpc_id
    vpc.description = f"VPC {name} ({region})"
    return {
        "subscription": vpc,
        "vpc_id": vpc_id,
        "private_subnet_ids": [fake_id("subnet", vpc_id, "private", z) for z in zones],
        "public_subnet_ids": [fake_id("subnet", vpc_id, "public", z) for z in zones],
    }


@create_workflow("Create a VPC with private and public subnets", initial_input_form=VpcForm)
def create_vpc() -> StepList:
    return begin >> reserve_address_space >> create_vpc_and_subnets


# --- EKS cluster ----------------------------------------------------------------------------


class EksProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
    cluster_name: str | None = None
    kubernetes_version: str | None = None
    node_count: int | None = None
    cluster_endpoint: str | None = None


class EksCluster(EksProvisioning, lifecycles=["active", "disabled"]):
    cluster_name: str
    cluster_endpoint: str


class EksForm(forms.Form):
    customer_id = forms.CharField(max_length=100, initial="platform")
    cluster_name = forms.CharField(max_length=60)
    vpc_id = forms.CharField(max_length=40)
    subnet_ids = forms.JSONField(help_text="The private subnets the nodes run in.")
    kubernetes_version = forms.ChoiceField(choices=[(v, v) for v in ("1.29", "1.30", "1.31")],
                                           initial="1.31")
    node_count = forms.IntegerField(min_value=1, max_value=100, initial=3)


@step("Create the control plane")
def create_control_plane(subscription_id: str, cluster_name: str, vpc_id: str,
                         subnet_ids: list, kubernetes_version: str) -> State:
    if not subnet_ids:
        raise ValueError("an EKS cluster needs at least one subnet")
    pause("control_plane")
    cluster_id = fake_id("eks", subscription_id)
    return {
        "cluster_endpoint": f"https://{cluster_id}.gr7.eu-west-1.eks.amazonaws.com",
        "cluster_arn": f"arn:aws:eks:eu-west-1:123456789012:cluster/{cluster_name}",
        "control_plane_version": kubernetes_version,
        "vpc_id": vpc_id,
    }


@step("Add the node group")
def add_node_group(subscription_id: str, cluster_name: str, kubernetes_version: str,
                   node_count: int, cluster_endpoint: str,
                   parent_resource_ids: list | None = None) -> State:
    pause("node_group")
    cluster = EksProvisioning.from_subscription(subscription_id)
    cluster.cluster_name, cluster.kubernetes_version = cluster_name, kubernetes_version
    cluster.node_count, cluster.cluster_endpoint = node_count, cluster_endpoint
    cluster.description = f"EKS cluster {cluster_name} ({node_count} nodes)"
    cluster.depends_on = list(parent_resource_ids or [])
    return {"subscription": cluster, "node_group": f"{cluster_name}-default"}


@create_workflow("Create an EKS cluster in a VPC", initial_input_form=EksForm)
def create_eks_cluster() -> StepList:
    return begin >> create_control_plane >> add_node_group


# --- RDS database -------------------------------------------------------------------------


class RdsProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
    db_name: str | None = None
    engine: str | None = None
    instance_class: str | None = None
    db_endpoint: str | None = None


class RdsDatabase(RdsProvisioning, lifecycles=["active", "disabled"]):
    db_name: str
    db_endpoint: str


class RdsForm(forms.Form):
    customer_id = forms.CharField(max_length=100, initial="platform")
    db_name = forms.CharField(max_length=60)
    vpc_id = forms.CharField(max_length=40)
    engine = forms.ChoiceField(choices=[("postgres", "PostgreSQL"), ("mysql", "MySQL")],
                               initial="postgres")
    instance_class = forms.CharField(max_length=40, initial="db.t4g.medium")
    master_password = SecretField(
        required=False, max_length=128,
        help_text="Leave blank to use the execution's secret rds_master_password, or a "
                  "generated one.",
    )


@step("Create the subnet group")
def create_subnet_group(db_name: str, vpc_id: str) -> State:
    pause("subnet_group")
    return {"db_subnet_group": f"{db_name}-{vpc_id}"}


@step("Create the database instance")
def create_database_instance(subscription_id: str, db_name: str, engine: str,
                             instance_class: str, master_password: str = "",
                             secrets: dict | None = None,
                             parent_resource_ids: list | None = None) -> State:
    password = master_password or (secrets or {}).get("rds_master_password") or \
        token_source.token_urlsafe(24)
    if len(password) < 8:
        raise ValueError("the master password must have at least 8 characters")
    pause("instance")
    database = RdsProvisioning.from_subscription(subscription_id)
    database.db_name, database.engine, database.instance_class = db_name, engine, instance_class
    database.db_endpoint = f"{db_name}.{fake_id('c', subscription_id)[2:]}.eu-west-1.rds." \
                           "amazonaws.com"
    database.description = f"RDS {engine} {db_name}"
    database.depends_on = list(parent_resource_ids or [])
    return {
        "subscription": database,
        "db_endpoint": database.db_endpoint,
        "db_port": 5432 if engine == "postgres" else 3306,
        "password_source": "given" if master_password else "secret or generated",
    }


@create_workflow("Create an RDS database in a VPC", initial_input_form=RdsForm)
def create_rds_database() -> StepList:
    return begin >> create_subnet_group >> create_database_instance


# --- terminate -----------------------------------------------------------------------------


@step("Delete the cloud resource")
def delete_cloud_resource(subscription_id: str) -> State:
    pause("delete")
    return {"deleted": subscription_id}


@terminate_workflow("Terminate a VPC")
def terminate_vpc() -> StepList:
    return begin >> delete_cloud_resource


@terminate_workflow("Terminate an EKS cluster")
def terminate_eks_cluster() -> StepList:
    return begin >> delete_cloud_resource


@terminate_workflow("Terminate an RDS database")
def terminate_rds_database() -> StepList:
    return begin >> delete_cloud_resource


PRODUCT_WORKFLOWS = {
    "VPC": ("create_vpc", "terminate_vpc"),
    "EKS Cluster": ("create_eks_cluster", "terminate_eks_cluster"),
    "RDS Database": ("create_rds_database", "terminate_rds_database"),
}
WORKFLOWS = [
    WorkflowDefinition(name=name, module=__name__, function=name, tags=(WorkflowTag("cloud"),))
    for names in PRODUCT_WORKFLOWS.values() for name in names
]
