"""Celery's broker and result tables, created by the owner so app_user never needs CREATE.

The shapes match kombu's SQLAlchemy transport and Celery's database result backend (extended
result columns included), so their start-up ``create_all`` finds everything present.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from app.core.roles import OPS_READER_ROLE, READ_WRITE_GROUP

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEQUENCES = ("queue_id_sequence", "message_id_sequence", "task_id_sequence", "taskset_id_sequence")
TABLES = ("kombu_queue", "kombu_message", "celery_taskmeta", "celery_tasksetmeta")


def upgrade() -> None:
    for sequence in SEQUENCES:
        op.execute(f"CREATE SEQUENCE {sequence}")
    op.execute(
        """
        CREATE TABLE kombu_queue (
            id    integer PRIMARY KEY DEFAULT nextval('queue_id_sequence'),
            name  varchar(200) UNIQUE
        )
        """
    )
    op.execute(
        """
        CREATE TABLE kombu_message (
            id         integer PRIMARY KEY DEFAULT nextval('message_id_sequence'),
            visible    boolean,
            timestamp  timestamp without time zone,
            payload    text NOT NULL,
            version    smallint NOT NULL,
            queue_id   integer CONSTRAINT "FK_kombu_message_queue" REFERENCES kombu_queue (id)
        )
        """
    )
    op.execute("CREATE INDEX ix_kombu_message_visible ON kombu_message (visible)")
    op.execute("CREATE INDEX ix_kombu_message_timestamp ON kombu_message (timestamp)")
    op.execute("CREATE INDEX ix_kombu_message_timestamp_id ON kombu_message (timestamp, id)")
    op.execute(
        """
        CREATE TABLE celery_taskmeta (
            id         integer PRIMARY KEY DEFAULT nextval('task_id_sequence'),
            task_id    varchar(155) UNIQUE,
            status     varchar(50),
            result     bytea,
            date_done  timestamp without time zone,
            traceback  text,
            children   bytea,
            name       varchar(155),
            args       bytea,
            kwargs     bytea,
            worker     varchar(155),
            retries    integer,
            queue      varchar(155),
            stamps     bytea
        )
        """
    )
    op.execute("CREATE INDEX ix_celery_taskmeta_date_done ON celery_taskmeta (date_done)")
    op.execute(
        """
        CREATE TABLE celery_tasksetmeta (
            id          integer PRIMARY KEY DEFAULT nextval('taskset_id_sequence'),
            taskset_id  varchar(155) UNIQUE,
            result      bytea,
            date_done   timestamp without time zone
        )
        """
    )
    op.execute("CREATE INDEX ix_celery_tasksetmeta_date_done ON celery_tasksetmeta (date_done)")
    for table in TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {READ_WRITE_GROUP}")
        op.execute(f"GRANT SELECT ON {table} TO {OPS_READER_ROLE}")
    for sequence in SEQUENCES:
        op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {sequence} TO {READ_WRITE_GROUP}")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE {table}")
    for sequence in SEQUENCES:
        op.execute(f"DROP SEQUENCE {sequence}")
