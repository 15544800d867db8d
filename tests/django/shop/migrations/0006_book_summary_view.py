# Raw SQL in a migration: a view, dropped again when the migration is unapplied.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("shop", "0005_rename_rack_shelf"),
    ]

    operations = [
        migrations.RunSQL(
            [
                "CREATE VIEW shop_book_summary AS "
                "SELECT a.name AS author, COUNT(b.id) AS books, SUM(b.price) AS total "
                "FROM shop_author a LEFT JOIN shop_book b ON b.author_id = a.id "
                "GROUP BY a.name",
            ],
            ["DROP VIEW shop_book_summary"],
        ),
    ]
