# Columns changed in place (a unique one among them) and a model with a many-to-many table.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("shop", "0003_seed_tags"),
    ]

    operations = [
        migrations.AlterField(
            model_name="tag",
            name="label",
            field=models.CharField(max_length=80, unique=True),
        ),
        migrations.AlterField(
            model_name="review",
            name="stars",
            field=models.SmallIntegerField(db_index=True),
        ),
        migrations.CreateModel(
            name="Rack",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("label", models.CharField(max_length=40)),
                ("books", models.ManyToManyField(related_name="shelves", to="shop.Book")),
            ],
        ),
    ]
