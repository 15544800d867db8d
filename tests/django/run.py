"""Runs Django against one database — the one the environment names (HOST, PORT, USER,
PASSWORD, NAME) — and prints what Django saw: the server as Django reads it, `check`,
`migrate`, `showmigrations`, `inspectdb`, the introspected constraints, ORM work (saves,
get_or_create, update_or_create, transactions with savepoints, select_for_update, locks and
isolation seen from a second connection, bulk_create, queries with aggregates and JSON
lookups, sessions, dumpdata and loaddata), then `migrate shop zero`, `migrate` again and
`flush`.

Run once through the router and once on MariaDB directly, the two printouts must be equal:
nothing printed depends on which server answered (no connection ids, no clock times). A step
that fails prints one `error:` line and the run goes on, so one difference does not hide the
next. DJANGO_SQL_LOG=1 logs every statement to stderr.
"""

import datetime
import io
import os
import sys
import tempfile
import traceback
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import (  # noqa: E402
    DatabaseError,
    IntegrityError,
    connection,
    connections,
    transaction,
)
from django.db.models import Avg, Count, F, Max, Min, Q, Sum  # noqa: E402

from shop.models import Author, Book, Review, Shelf, Tag  # noqa: E402


def at(day, hour=12, minute=0):
    return datetime.datetime(2024, 3, day, hour, minute, 30, tzinfo=datetime.timezone.utc)


def command(*args, **options):
    """Runs a management command and prints its output (stdout and stderr, in order)."""
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out, no_color=True, **options)
    print(out.getvalue(), end="")


def step(name, fn):
    print(f"== {name}")
    try:
        fn()
    except Exception as e:
        traceback.print_exc()
        print(f"error: {type(e).__name__}: {e}")
    sys.stdout.flush()


def one(sql, params=None):
    with connection.cursor() as c:
        c.execute(sql, params)
        return c.fetchall()


def server():
    connection.ensure_connection()
    f = connection.features
    print("mariadb:", connection.mysql_is_mariadb)
    print("version:", connection.mysql_version)
    print("sql_mode:", sorted(connection.sql_mode))
    print("sql_auto_is_null, autocommit, isolation:",
          one("SELECT @@sql_auto_is_null, @@autocommit, @@tx_isolation"))
    print("database, charset:",
          one("SELECT DATABASE(), @@character_set_client, @@character_set_connection, "
              "@@character_set_results, @@collation_connection"))
    print("time_zone:", one("SELECT @@session.time_zone"))
    for name in [
        "supports_transactions",
        "can_return_columns_from_insert",
        "can_return_rows_from_bulk_insert",
        "has_select_for_update_nowait",
        "has_select_for_update_skip_locked",
        "supports_json_field",
        "supports_column_check_constraints",
        "supports_table_check_constraints",
        "supports_over_clause",
        "is_sql_auto_is_null_enabled",
        "supports_timezones",
        "has_zoneinfo_database",
    ]:
        print(f"feature {name}:", getattr(f, name))


def constraints():
    tables = sorted(t for t in connection.introspection.table_names() if t.startswith("shop_"))
    with connection.cursor() as c:
        for t in tables:
            cs = connection.introspection.get_constraints(c, t)
            for name in sorted(cs):
                d = cs[name]
                print(
                    f"{t} {name}: columns={d['columns']} primary_key={d['primary_key']} "
                    f"unique={d['unique']} index={d['index']} check={d['check']} "
                    f"foreign_key={d['foreign_key']} type={d.get('type')}"
                )
            rel = connection.introspection.get_relations(c, t)
            print(f"{t} relations: {sorted(rel.items())}")
            desc = connection.introspection.get_table_description(c, t)
            for col in desc:
                print(f"{t} column: {tuple(col)}")


def show_author(a):
    return f"{a.pk} {a.name!r} bio={a.bio!r} active={a.active} joined={a.joined.isoformat()}"


def show_book(b):
    published = b.published.isoformat() if b.published else None
    return (f"{b.pk} {b.title!r} author={b.author_id} ed={b.edition} price={b.price} "
            f"published={published} attrs={b.attrs}")


state = {}


def create():
    ada = Author.objects.create(name="Ada", bio="engines\nand notes: ü €", joined=at(1, 9))
    bob = Author.objects.create(name="Bob", active=False, joined=at(2, 10, 15))
    cy = Author.objects.create(name="Cy 'quoted' \\ back", joined=at(3))
    for a in (ada, bob, cy):
        print("created:", show_author(a))
    classic = Tag.objects.get(label="classic")
    scifi = Tag.objects.create(label="sci-fi")
    books = [
        Book.objects.create(author=ada, title="Engines", price=Decimal("12.50"),
                            published=at(4), attrs={"color": "red", "pages": 120,
                                                    "langs": ["en", "fr"]}),
        Book.objects.create(author=ada, title="Engines", edition=2, price=Decimal("15.00"),
                            published=at(5), attrs={"color": "blue", "pages": 180}),
        Book.objects.create(author=bob, title="Orbits", price=Decimal("9.99"),
                            published=None, attrs={"color": "red", "nested": {"a": [1, 2]}}),
        Book.objects.create(author=cy, title="Notes", price=Decimal("100000.01"),
                            published=at(6, 23, 59), attrs={}),
    ]
    for b in books:
        print("created:", show_book(b))
    books[0].tags.add(classic, scifi)
    books[1].tags.set([scifi])
    books[2].tags.add(classic)
    print("tags of Engines 1:", sorted(t.label for t in books[0].tags.all()))
    state.update(ada=ada, bob=bob, cy=cy, books=books)


def save_unchanged():
    ada = state["ada"]
    ada.save()
    print("save() of an unchanged row: ok; authors:", Author.objects.count())
    ada.save(update_fields=["bio", "active"])
    print("save(update_fields) of unchanged fields: ok")
    fresh = Author.objects.get(pk=ada.pk)
    fresh.save()
    print("save() of a fetched row: ok; authors:", Author.objects.count())
    print("update() matching one unchanged row:",
          Author.objects.filter(pk=ada.pk).update(active=True))
    print("update() matching three rows:", Author.objects.update(active=F("active")))
    with connection.cursor() as c:
        c.execute("UPDATE shop_author SET bio = bio WHERE name = %s", ["Ada"])
        print("cursor rowcount of an UPDATE that changes nothing:", c.rowcount)
        c.execute("UPDATE shop_author SET active = NOT active WHERE name = %s", ["Bob"])
        print("cursor rowcount of an UPDATE that changes one row:", c.rowcount)
        c.execute("UPDATE shop_author SET active = NOT active WHERE name = %s", ["Bob"])
        c.execute("DELETE FROM shop_author WHERE name = %s", ["nobody"])
        print("cursor rowcount of a DELETE of nothing:", c.rowcount)
        c.execute("INSERT INTO shop_tag (label) VALUES (%s)", ["raw"])
        print("cursor lastrowid of an INSERT:", c.lastrowid)
        c.execute("SELECT LAST_INSERT_ID()")
        print("LAST_INSERT_ID():", c.fetchall())
        c.execute("DELETE FROM shop_tag WHERE label = %s", ["raw"])


def get_or_create():
    for label in ["sci-fi", "poetry", "poetry"]:
        tag, created = Tag.objects.get_or_create(label=label)
        print(f"get_or_create({label!r}): {tag.pk} {tag.label} created={created}")
    a, created = Author.objects.update_or_create(name="Ada", defaults={"bio": "updated"})
    print("update_or_create(Ada):", show_author(a), "created =", created)
    a, created = Author.objects.update_or_create(
        name="Dee", defaults={"bio": "new", "joined": at(7)})
    print("update_or_create(Dee):", show_author(a), "created =", created)
    a, created = Author.objects.update_or_create(
        name="Dee", defaults={"bio": "new", "joined": at(7)})
    print("update_or_create(Dee) again, nothing changes:", show_author(a), "created =", created)


def labels():
    return sorted(Tag.objects.values_list("label", flat=True))


def transactions():
    with transaction.atomic():
        Tag.objects.create(label="outer")
        try:
            with transaction.atomic():
                Tag.objects.create(label="inner")
                raise RuntimeError("roll back to the savepoint")
        except RuntimeError:
            pass
        sid = transaction.savepoint()
        Tag.objects.create(label="inner2")
        transaction.savepoint_rollback(sid)
        sid = transaction.savepoint()
        Tag.objects.create(label="kept")
        transaction.savepoint_commit(sid)
        try:
            with transaction.atomic():
                Tag.objects.create(label="classic")
        except IntegrityError as e:
            print("duplicate in a savepoint:", e.args)
        print("in the transaction:", labels())
    print("after commit:", labels())
    try:
        with transaction.atomic():
            Tag.objects.create(label="rolled back")
            raise RuntimeError("roll back the transaction")
    except RuntimeError:
        pass
    print("after rollback:", labels())
    try:
        Tag.objects.create(label="classic")
    except IntegrityError as e:
        print("duplicate in autocommit:", e.args)
    print("in atomic block after all:", connection.in_atomic_block)


def for_update():
    with transaction.atomic():
        a = Author.objects.select_for_update().get(name="Ada")
        a.bio = "locked and changed"
        a.save()
        n = Book.objects.select_for_update(nowait=True).filter(author=a).count()
        print("books locked with nowait:", n)
        rows = list(Book.objects.select_for_update().filter(price__lt=20)
                    .order_by("id").values_list("title", "edition"))
        print("locked:", rows)
    print("after:", show_author(Author.objects.get(name="Ada")))


def sessions():
    """Two connections: what one holds locked or has not committed, the other does not get."""
    other = connections["other"]
    with transaction.atomic():
        Author.objects.select_for_update().get(name="Ada")
        Tag.objects.create(label="uncommitted")
        print("other sees uncommitted:",
              Tag.objects.using("other").filter(label="uncommitted").count())
        try:
            with transaction.atomic(using="other"):
                list(Author.objects.using("other").select_for_update(nowait=True)
                     .filter(name="Ada"))
            print("other locks the locked row: ok")
        except DatabaseError as e:
            print("other locks the locked row:", type(e).__name__, e.args[0])
        with transaction.atomic(using="other"):
            print("other locks another row:", list(
                Author.objects.using("other").select_for_update(nowait=True)
                .filter(name="Dee").values_list("name", flat=True)))
    print("other sees committed:",
          Tag.objects.using("other").filter(label="uncommitted").count())
    Tag.objects.filter(label="uncommitted").delete()
    other.close()
    connection.close()
    print("reconnected:", Author.objects.count(), connection.is_usable())
    print("content type:", ContentType.objects.get_for_model(Author).model)
    s = SessionStore()
    s["cart"] = [1, 2]
    s.create()
    loaded = SessionStore(session_key=s.session_key)
    print("session:", loaded["cart"], loaded.exists(s.session_key))
    loaded.delete()
    print("session deleted:", SessionStore().exists(s.session_key))


def shelves():
    top = Shelf.objects.create(name="top")
    top.books.add(*Book.objects.filter(title="Engines"))
    print("shelf:", top.pk, top.name, sorted(top.books.values_list("edition", flat=True)))
    with connection.cursor() as c:
        c.execute("SELECT author, books, total FROM shop_book_summary ORDER BY author")
        print("view:", c.fetchall())


def bulk():
    books = state["books"]
    reviews = Review.objects.bulk_create([
        Review(book=books[0], reviewer="r1", stars=5, body="great"),
        Review(book=books[0], reviewer="r2", stars=3, body="fine", helpful=True),
        Review(book=books[1], reviewer="r1", stars=4, body="better"),
        Review(book=books[2], reviewer="r3", stars=2, body="meh\ttabbed"),
        Review(book=books[3], reviewer="r1", stars=1, body="x" * 5000),
    ])
    print("bulk_create ids:", [r.pk for r in reviews])
    tags = Tag.objects.bulk_create([Tag(label=f"bulk{i}") for i in range(3)])
    print("bulk_create tag ids:", [t.pk for t in tags])
    try:
        Review.objects.bulk_create([Review(book=books[0], reviewer="r1", stars=1, body="dup")])
    except IntegrityError as e:
        print("bulk_create duplicate:", e.args)
    n = Review.objects.bulk_create(
        [Review(book=books[0], reviewer="r1", stars=1, body="dup")], ignore_conflicts=True)
    print("bulk_create ignore_conflicts:", len(n), Review.objects.count())
    for r in reviews[:2]:
        r.stars += 1
    print("bulk_update:", Review.objects.bulk_update(reviews[:2], ["stars"]))


def queries():
    print("filter:", list(Book.objects.filter(price__gte=10).order_by("price")
                          .values_list("title", "edition", "price")))
    print("exclude:", list(Book.objects.exclude(author__name="Ada").order_by("-title")
                           .values_list("title", flat=True)))
    print("Q or:", list(Book.objects.filter(Q(edition=2) | Q(published__isnull=True))
                        .order_by("id").values_list("id", flat=True)))
    print("aggregate:", Book.objects.aggregate(
        n=Count("id"), total=Sum("price"), avg=Avg("price"), hi=Max("price"), lo=Min("price")))
    print("review aggregate:", Review.objects.aggregate(avg=Avg("stars"), n=Count("reviewer",
                                                                                   distinct=True)))
    print("annotate:", [(a.name, a.n, a.total) for a in Author.objects.annotate(
        n=Count("books"), total=Sum("books__price")).order_by("-n", "name")])
    print("annotate filter:", list(Book.objects.annotate(r=Count("reviews"))
                                   .filter(r__gte=1).order_by("-r", "id")
                                   .values_list("title", "edition", "r")))
    print("values:", list(Author.objects.order_by("name").values("name", "active")))
    print("values_list:", list(Tag.objects.order_by("label").values_list("label", flat=True)))
    print("distinct:", list(Book.objects.order_by("title").values_list("title", flat=True)
                            .distinct()))
    print("json key:", list(Book.objects.filter(attrs__color="red").order_by("id")
                            .values_list("title", flat=True)))
    print("json number:", list(Book.objects.filter(attrs__pages__gt=150)
                               .values_list("title", "edition")))
    print("json has_key:", list(Book.objects.filter(attrs__has_key="langs")
                                .values_list("title", "edition")))
    print("json index:", list(Book.objects.filter(attrs__langs__1="fr")
                              .values_list("title", "edition")))
    print("json nested:", list(Book.objects.filter(attrs__nested__a__contains=[2])
                               .values_list("title", flat=True)))
    print("json read:", [b.attrs for b in Book.objects.order_by("id")])
    print("date lookup:", list(Book.objects.filter(published__day=5)
                               .values_list("title", "edition")))
    print("datetime read:", [show_book(b) for b in Book.objects.order_by("id")])
    print("select_related:", [(b.title, b.author.name) for b in
                              Book.objects.select_related("author").order_by("id")])
    print("prefetch_related:", [(b.id, sorted(t.label for t in b.tags.all())) for b in
                                Book.objects.prefetch_related("tags").order_by("id")])
    print("m2m reverse:", sorted(Tag.objects.filter(books__author__name="Ada")
                                 .values_list("label", flat=True).distinct()))
    print("exists, count:", Book.objects.filter(title="Orbits").exists(),
          Book.objects.filter(title="nope").exists(), Book.objects.count())
    print("in_bulk:", sorted((k, v.title) for k, v in Book.objects.in_bulk([1, 2]).items()))
    print("iterator:", [b.title for b in Book.objects.order_by("id").iterator(chunk_size=2)])
    print("slice:", list(Book.objects.order_by("id").values_list("id", flat=True)[1:3]))
    print("F update:", Book.objects.filter(author__name="Ada").update(price=F("price") * 2),
          list(Book.objects.order_by("id").values_list("price", flat=True)))
    print("raw:", [(a.id, a.name) for a in Author.objects.raw(
        "SELECT id, name FROM shop_author WHERE active ORDER BY name")])
    print("delete cascade:", Author.objects.filter(name="Bob").delete())
    print("after delete:", Book.objects.count(), Review.objects.count(),
          Book.tags.through.objects.count())


def fixtures():
    out = io.StringIO()
    call_command("dumpdata", "shop", indent=1, stdout=out)
    data = out.getvalue()
    print(data)
    Shelf.objects.all().delete()
    Review.objects.all().delete()
    Book.objects.all().delete()
    Author.objects.all().delete()
    Tag.objects.all().delete()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "shop.json")
        with open(path, "w") as f:
            f.write(data)
        command("loaddata", path)
    print("loaded:", Author.objects.count(), Book.objects.count(), Tag.objects.count(),
          Review.objects.count(), Shelf.objects.count(), Book.tags.through.objects.count())
    print("loaded books:", [show_book(b) for b in Book.objects.order_by("id")])


def tables():
    with connection.cursor() as c:
        print("tables:", sorted((t.name, t.type) for t in
                                connection.introspection.get_table_list(c)))


step("server", server)
step("check", lambda: command("check", databases=["default"]))
step("migrate", lambda: command("migrate", verbosity=1))
step("showmigrations", lambda: command("showmigrations"))
step("inspectdb", lambda: command("inspectdb", include_views=True))
step("constraints", constraints)
step("create", create)
step("save unchanged", save_unchanged)
step("get_or_create", get_or_create)
step("transactions", transactions)
step("select_for_update", for_update)
step("sessions", sessions)
step("bulk_create", bulk)
step("shelves", shelves)
step("queries", queries)
step("dumpdata and loaddata", fixtures)
step("migrate shop zero", lambda: command("migrate", "shop", "zero", verbosity=1))
step("tables after zero", tables)
step("showmigrations shop", lambda: command("showmigrations", "shop"))
step("migrate again", lambda: command("migrate", verbosity=1))
step("tables", tables)
step("tags after migrate", lambda: print(labels()))
step("flush", lambda: command("flush", interactive=False))
step("after flush", lambda: print(Tag.objects.count(), Author.objects.count(),
                                  Tag.objects.create(label="again").pk))
print("done")
