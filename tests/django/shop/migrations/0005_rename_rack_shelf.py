# A model and a field renamed: tables, the many-to-many table and columns renamed in place.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("shop", "0004_rack"),
    ]

    operations = [
        migrations.RenameModel(old_name="Rack", new_name="Shelf"),
        migrations.RenameField(model_name="shelf", old_name="label", new_name="name"),
    ]
