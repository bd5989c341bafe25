"""Create the benchmark's users and print one access token per user as a JSON list.

python -m bench.users 1000     (with the server's environment: same DB and secret)"""

from __future__ import annotations

import json
import sys


def main() -> None:
    count = int(sys.argv[1])
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from rest_framework_simplejwt.tokens import AccessToken

    user_model = get_user_model()
    password = make_password("bench-password-not-secret")
    names = [f"bench-{i:05d}" for i in range(count)]
    user_model.objects.bulk_create(
        [user_model(username=name, password=password) for name in names], ignore_conflicts=True
    )
    users = {u.username: u for u in user_model.objects.filter(username__in=names)}
    json.dump([str(AccessToken.for_user(users[name])) for name in names], sys.stdout)


if __name__ == "__main__":
    main()
