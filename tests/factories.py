"""Factories for users with each role (DESIGN §7)."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.net")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if extracted:
            from orchestrator.roles import sync_role_groups

            if not Group.objects.filter(name=extracted).exists():
                sync_role_groups()
            self.groups.add(Group.objects.get(name=extracted))
        self.save()


def user_with_role(role: str | None, **kwargs):
    return UserFactory(role=role, **kwargs)
