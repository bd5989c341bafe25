"""The `reviewer` staff group: reads conversations, messages, feedback and usage, opens the review
queue and writes reviews; it cannot change a message (its text or anything else)."""

from django.db import migrations

GROUP = "reviewer"
PERMISSIONS = [
    ("chat", "conversation", "view"),
    ("chat", "message", "view"),
    ("chat", "messagefeedback", "view"),
    ("usage", "usagerecord", "view"),
    ("review", "reply", "view"),
    ("review", "replyreview", "view"),
    ("review", "replyreview", "add"),
    ("review", "replyreview", "change"),
]


def create_group(apps, schema_editor):
    # Permissions are made by a post_migrate signal, after every migration of the run: make
    # those of the apps above now (the same call, idempotent), so the group can be given them.
    from django.contrib.auth.management import create_permissions

    for label in {app for app, _, _ in PERMISSIONS}:
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.set(
        [
            Permission.objects.get(
                content_type__app_label=app, codename=f"{action}_{model}"
            )
            for app, model, action in PERMISSIONS
        ]
    )


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0001_initial"),
        ("chat", "0003_review_feedback_and_title_source"),
        ("usage", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
