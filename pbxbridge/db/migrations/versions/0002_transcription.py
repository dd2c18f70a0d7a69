"""Transcription: the job queue, transcript segments and their full-text indexes.

Revision ID: 0002_transcription
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_transcription"
down_revision = "0001_core"
branch_labels = ("transcription",)
depends_on = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "transcription_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=False),
        sa.Column("locked_by", sa.String(128), nullable=True),
        sa.Column("locked_at", _utc(), nullable=True),
        sa.Column("heartbeat_at", _utc(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_transcription_jobs"),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"],
            name="fk_transcription_jobs_recording_id_recordings", ondelete="CASCADE",
        ),
        sa.UniqueConstraint("recording_id", name="uq_transcription_jobs_recording_id"),
    )
    op.create_index(
        "ix_transcription_jobs_status_next_attempt_at", "transcription_jobs", ["status", "next_attempt_at"]
    )
    op.create_table(
        "transcript_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column("speaker", sa.String(32), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("lemmas", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transcript_segments"),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"],
            name="fk_transcript_segments_recording_id_recordings", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name="fk_transcript_segments_call_id_calls", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_transcript_segments_recording_id", "transcript_segments", ["recording_id"])
    op.create_index("ix_transcript_segments_call_id", "transcript_segments", ["call_id"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # Snowball's Russian stemmer folds «операторов» and «операторы» alike.
        op.execute(
            "CREATE INDEX ix_transcript_segments_tsv ON transcript_segments "
            "USING gin (to_tsvector('russian', text))"
        )
    elif dialect == "sqlite":
        # FTS5 over the lemmatised text, kept in step with the table by triggers.
        op.execute(
            "CREATE VIRTUAL TABLE transcript_fts USING fts5("
            "lemmas, content='transcript_segments', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER transcript_segments_ai AFTER INSERT ON transcript_segments BEGIN "
            "INSERT INTO transcript_fts(rowid, lemmas) VALUES (new.id, new.lemmas); END"
        )
        op.execute(
            "CREATE TRIGGER transcript_segments_ad AFTER DELETE ON transcript_segments BEGIN "
            "INSERT INTO transcript_fts(transcript_fts, rowid, lemmas) "
            "VALUES ('delete', old.id, old.lemmas); END"
        )
        op.execute(
            "CREATE TRIGGER transcript_segments_au AFTER UPDATE ON transcript_segments BEGIN "
            "INSERT INTO transcript_fts(transcript_fts, rowid, lemmas) "
            "VALUES ('delete', old.id, old.lemmas); "
            "INSERT INTO transcript_fts(rowid, lemmas) VALUES (new.id, new.lemmas); END"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("transcript_segments_ai", "transcript_segments_ad", "transcript_segments_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS transcript_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_transcript_segments_tsv")
    op.drop_index("ix_transcript_segments_call_id", table_name="transcript_segments")
    op.drop_index("ix_transcript_segments_recording_id", table_name="transcript_segments")
    op.drop_table("transcript_segments")
    op.drop_index("ix_transcription_jobs_status_next_attempt_at", table_name="transcription_jobs")
    op.drop_table("transcription_jobs")
