"""A small catalogue: authors, books (a foreign key, JSON, decimal, a unique constraint over
three columns, a composite index), tags (many-to-many), reviews (unique_together) and
shelves (created as racks, then renamed by a migration)."""

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100, unique=True)
    bio = models.TextField(blank=True, default="")
    active = models.BooleanField(default=True)
    joined = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["joined"], name="author_joined_idx")]


class Tag(models.Model):
    label = models.CharField(max_length=80, unique=True)


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    title = models.CharField(max_length=200)
    edition = models.PositiveSmallIntegerField(default=1)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    published = models.DateTimeField(null=True)
    attrs = models.JSONField(default=dict)
    tags = models.ManyToManyField(Tag, related_name="books", blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["title", "author", "edition"], name="book_unique_edition"
            )
        ]
        indexes = [models.Index(fields=["price", "published"], name="book_price_idx")]


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.CharField(max_length=100)
    stars = models.SmallIntegerField(db_index=True)
    body = models.TextField()
    helpful = models.BooleanField(default=False)

    class Meta:
        unique_together = [("book", "reviewer")]


class Shelf(models.Model):
    name = models.CharField(max_length=40)
    books = models.ManyToManyField(Book, related_name="shelves")
