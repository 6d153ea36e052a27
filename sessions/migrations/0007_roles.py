"""The roles (robotest_site/roles.py) as groups: viewer, operator and admin, with their permissions.

viewer: view_* of every recording and sensors model; operator: the viewer's and the two custom
permissions (operate_session, acknowledge_result); admin: every permission of both apps. Groups
that exist already keep their members and get these permissions added.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

APPS = ("recording", "sensors")
OPERATE = ("operate_session", "acknowledge_result")


def create_roles(apps, schema_editor):
    using = schema_editor.connection.alias
    # Permissions are made after the last migration (post_migrate): make this state's now.
    for label in APPS:
        create_permissions(global_apps.get_app_config(label), verbosity=0, using=using, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    every = Permission.objects.using(using).filter(content_type__app_label__in=APPS)
    views = [p for p in every if p.codename.startswith("view_")]
    operate = [p for p in every if p.codename in OPERATE]
    assert len(operate) == len(OPERATE), "the custom permissions are missing from the models' Meta"
    for name, permissions in (("viewer", views), ("operator", views + operate), ("admin", list(every))):
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(*permissions)


def delete_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(
        name__in=("viewer", "operator", "admin")
    ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("recording", "0006_live_server_lost_readings"),
        ("sensors", "0002_sim_rig"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="recordingsession",
            options={
                "ordering": ["-started_at", "-id"],
                "permissions": [
                    ("operate_session", "Can start, stop and reset recording sessions and ingest readings")
                ],
            },
        ),
        migrations.AlterModelOptions(
            name="validationresult",
            options={
                "ordering": ["-last_timestamp", "-id"],
                "permissions": [("acknowledge_result", "Can acknowledge a validation result")],
            },
        ),
        migrations.RunPython(create_roles, delete_roles),
    ]
