from django.contrib.auth import get_user_model
from django.db import transaction

User = get_user_model()


@transaction.atomic
def register_user(*, username: str, password: str, email: str = ""):
    """Create an active, non-staff user. Password rules were checked by the serializer."""
    return User.objects.create_user(username=username, password=password, email=email)
