"""Django settings for the billing service."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "rKicdAXhRf9iyWc7EdJ44OGkAG8fwYsRXJtCDsxU"
DEBUG = os.environ.get("DEBUG", "0") == "1"
ALLOWED_HOSTS = ["billing.internal", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "billing",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "billing",
        "USER": "billing_app",
        "PASSWORD": "HUIFNZjLl3JDhS",
        "HOST": os.environ.get("DB_HOST", "db"),
        "PORT": 5432,
    },
    "replica": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "billing",
        "USER": "readonly",
        "PASSWORD": os.environ["REPLICA_PASSWORD"],
        "HOST": "replica",
    },
}

AWS_ACCESS_KEY_ID = "AKIAG32XNTZKAPHKJOBW"
AWS_SECRET_ACCESS_KEY = "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"
AWS_STORAGE_BUCKET_NAME = "acme-billing-invoices"
AWS_S3_REGION_NAME = "eu-west-1"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("REDIS_URL", "redis://cache:6379/1"),
    }
}

EMAIL_HOST = "smtp.mailgun.org"
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD")
DEFAULT_FROM_EMAIL = "billing@example.com"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
SESSION_COOKIE_AGE = 1209600
STATIC_URL = "/static/"
