"""Demo data of the blueprints app (DESIGN §10): the cloud products of
`blueprints.demo_workflows`, the VPC, EKS Cluster and RDS Database templates, and the
"Production Environment" blueprint wiring them:

    VPC.vpc_id             → EKS Cluster.vpc_id
    VPC.private_subnet_ids → EKS Cluster.subnet_ids
    VPC.vpc_id             → RDS Database.vpc_id

It plans level 0: VPC; level 1: EKS Cluster, RDS Database. `load(stdout)` is called by
`manage.py load_demo_data` and is idempotent: what exists already is left as it is.
"""

from __future__ import annotations

import secrets as token_source

from blueprints import services
from blueprints.demo_workflows import PRODUCT_WORKFLOWS
from blueprints.models import Blueprint, Secret, Template
from orchestrator import registry
from orchestrator import services as engine
from orchestrator.models import Workflow
from subscriptions.models import Product, ProductType
from subscriptions.services import link_product_workflows

BLUEPRINT = "Production Environment"
PRODUCTS = {
    "VPC": "A virtual private cloud with private and public subnets",
    "EKS Cluster": "A managed Kubernetes cluster",
    "RDS Database": "A managed relational database",
}
TEMPLATES = [
    {
        "name": "VPC",
        "description": "The network: a VPC with a private and a public subnet per zone.",
        "workflow": "create_vpc",
        "product": "VPC",
        "variables": [
            {"name": "customer_id", "default": "platform"},
            {"name": "name", "required": True, "description": "The VPC's name."},
            {"name": "cidr_block", "default": "10.0.0.0/16"},
            {"name": "region", "type": "string", "default": "eu-west-1"},
            {"name": "availability_zones", "default": 3},
        ],
        "outputs": [{"name": "vpc_id", "type": "string"},
                    {"name": "private_subnet_ids", "type": "array"},
                    {"name": "public_subnet_ids", "type": "array"}],
        "source_code_versions": ["v1.4.0", "v1.5.0"],
    },
    {
        "name": "EKS Cluster",
        "description": "Kubernetes for the applications, in the VPC's private subnets.",
        "workflow": "create_eks_cluster",
        "product": "EKS Cluster",
        "variables": [
            {"name": "customer_id", "default": "platform"},
            {"name": "cluster_name", "required": True},
            {"name": "vpc_id", "required": True},
            {"name": "subnet_ids", "type": "array", "required": True},
            {"name": "kubernetes_version", "type": "string", "default": "1.31"},
            {"name": "node_count", "default": 3},
        ],
        "outputs": [{"name": "cluster_endpoint", "type": "string"},
                    {"name": "cluster_arn", "type": "string"}],
        "source_code_versions": ["v2.0.1"],
    },
    {
        "name": "RDS Database",
        "description": "PostgreSQL for the applications, in the VPC.",
        "workflow": "create_rds_database",
        "product": "RDS Database",
        "variables": [
            {"name": "customer_id", "default": "platform"},
            {"name": "db_name", "required": True},
            {"name": "vpc_id", "required": True},
            {"name": "engine", "type": "string", "default": "postgres"},
            {"name": "instance_class", "default": "db.t4g.medium"},
            {"name": "master_password", "secret": True},
        ],
        "outputs": [{"name": "db_endpoint", "type": "string"},
                    {"name": "db_port", "type": "integer"}],
        "source_code_versions": ["v3.2.0"],
    },
]
BLUEPRINT_DATA = {
    "name": BLUEPRINT,
    "description": "A VPC, an EKS cluster and an RDS database: the cluster and the database "
                   "are provisioned in parallel once the VPC exists.",
    "templates": ["VPC", "EKS Cluster", "RDS Database"],
    "default_variables": {
        "VPC": {"name": "production"},
        "EKS Cluster": {"cluster_name": "production"},
        "RDS Database": {"db_name": "production"},
    },
    "wiring": [
        {"source_template": "VPC", "source_output": "vpc_id",
         "target_template": "EKS Cluster", "target_variable": "vpc_id"},
        {"source_template": "VPC", "source_output": "private_subnet_ids",
         "target_template": "EKS Cluster", "target_variable": "subnet_ids"},
        {"source_template": "VPC", "source_output": "vpc_id",
         "target_template": "RDS Database", "target_variable": "vpc_id"},
    ],
}


def ensure_products() -> None:
    engine.sync_workflows()
    cloud, _ = ProductType.objects.get_or_create(
        name="Cloud", defaults={"description": "Cloud resources provisioned by blueprints"}
    )
    for name, description in PRODUCTS.items():
        product, _ = Product.objects.get_or_create(
            name=name, defaults={"product_type": cloud, "description": description,
                                 "tag": "CLOUD"},
        )
        missing = Workflow.objects.filter(name__in=PRODUCT_WORKFLOWS[name]).exclude(
            products=product
        )
        if missing.exists():
            link_product_workflows(product=product, workflows=list(missing))


def load(stdout) -> None:
    names = [name for names in PRODUCT_WORKFLOWS.values() for name in names]
    if any(registry.get_definition(name) is None for name in names):
        stdout.write("blueprints demo skipped: its workflows are not registered (add "
                     "blueprints.demo_workflows to ORCHESTRATOR_WORKFLOW_MODULES)")
        return
    ensure_products()
    for data in TEMPLATES:
        if not Template.objects.filter(name=data["name"]).exists():
            services.save_template(data=data)
    if not Blueprint.objects.filter(name=BLUEPRINT).exists():
        services.save_blueprint(data=BLUEPRINT_DATA)
    if not Secret.objects.filter(name="rds_master_password").exists():
        services.save_secret(data={
            "name": "rds_master_password", "value": token_source.token_urlsafe(18),
            "description": "The demo database's master password (used when none is given).",
        })
    stdout.write(f"demo blueprint: {BLUEPRINT} (VPC, then EKS Cluster and RDS Database)")
