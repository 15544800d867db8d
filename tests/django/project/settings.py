"""Settings for the Django project the router is tested with: the database comes from the
environment (HOST, PORT, USER, PASSWORD, NAME); everything else is fixed so that two runs
against two servers print the same."""

import os

SECRET_KEY = "tessera-django-test"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "shop",
]

DATABASE = {
    "ENGINE": "django.db.backends.mysql",
    "HOST": os.environ["HOST"],
    "PORT": os.environ["PORT"],
    "USER": os.environ["USER"],
    "PASSWORD": os.environ["PASSWORD"],
    "NAME": os.environ["NAME"],
    # The sql_mode statement Django's documentation suggests, sent by mysqlclient on connect.
    "OPTIONS": {"charset": "utf8mb4", "init_command": "SET sql_mode='STRICT_TRANS_TABLES'"},
}

# "other" is a second connection to the same database (locks and isolation between sessions).
DATABASES = {"default": DATABASE, "other": dict(DATABASE)}

# DJANGO_SQL_LOG=1 logs every statement Django sends (to stderr), to find the one a server
# answered differently; Django logs statements only with DEBUG on.
if os.environ.get("DJANGO_SQL_LOG"):
    DEBUG = True
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        "loggers": {"django.db.backends": {"handlers": ["stderr"], "level": "DEBUG"}},
    }
