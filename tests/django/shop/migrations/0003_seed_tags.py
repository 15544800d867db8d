# A data migration: rows written, and removed again when the migration is unapplied.

from django.db import migrations

SEED = ["classic", "new"]


def seed(apps, schema_editor):
    Tag = apps.get_model("shop", "Tag")
    Tag.objects.bulk_create([Tag(label=label) for label in SEED])


def unseed(apps, schema_editor):
    apps.get_model("shop", "Tag").objects.filter(label__in=SEED).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("shop", "0002_review_helpful"),
    ]

    operations = [
        migrations.RunPython(seed, unseed),
    ]
