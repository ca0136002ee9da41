"""The attribution service: FastAPI api and Celery worker sharing one data layer."""
