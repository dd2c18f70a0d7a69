"""Search: an inverted index of spoken words ordered by call time; clients' names folded for search.

transcript_terms (word in dictionary form, call start, call, segment) replaces the
SQLite FTS5 table and the PostgreSQL GIN index over to_tsvector('russian', text):
those find a word's segments but cannot give them newest call first, so a word
said in thousands of calls had every match read and sorted for one page.
Triggers on transcript_segments keep it in step; existing segments are indexed here.

clients.name_folded is the card's name in lower case with «ё» as «е», so a search
for «иванов» finds «Иванов» on SQLite too (whose lower() and LIKE fold ASCII only).
The application folds names as it sets them; a name written by any other writer
(SQL by hand, an import) without a folded copy is folded by a trigger as far as the
database's lower() can.
Search reads the names' folded copies through a partial index of the named cards,
a fraction of the size of the table.

Revision ID: 0007_search_terms
Revises: 0002_transcription
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_search_terms"
down_revision = "0002_transcription"
branch_labels = None
depends_on = None

# A segment's lemmas (words of [0-9a-zа-яё] joined by single spaces) as a JSON
# array, for json_each: lemmas hold no quote or backslash to escape.
_SQLITE_WORDS = "json_each('[\"' || replace(trim({lemmas}), ' ', '\",\"') || '\"]')"

SQLITE_TRIGGERS = (
    "CREATE TRIGGER transcript_terms_ai AFTER INSERT ON transcript_segments BEGIN "
    "INSERT OR IGNORE INTO transcript_terms (term, started_at, call_id, segment_id) "
    "SELECT DISTINCT w.value, c.started_at, new.call_id, new.id FROM calls AS c, "
    + _SQLITE_WORDS.format(lemmas="new.lemmas")
    + " AS w WHERE c.id = new.call_id AND w.value <> ''; END",
    "CREATE TRIGGER transcript_terms_ad AFTER DELETE ON transcript_segments BEGIN "
    "DELETE FROM transcript_terms WHERE term IN (SELECT value FROM "
    + _SQLITE_WORDS.format(lemmas="old.lemmas")
    + ") AND started_at = (SELECT started_at FROM calls WHERE id = old.call_id) "
    "AND call_id = old.call_id AND segment_id = old.id; END",
    "CREATE TRIGGER transcript_terms_au AFTER UPDATE OF lemmas, call_id ON transcript_segments BEGIN "
    "DELETE FROM transcript_terms WHERE term IN (SELECT value FROM "
    + _SQLITE_WORDS.format(lemmas="old.lemmas")
    + ") AND started_at = (SELECT started_at FROM calls WHERE id = old.call_id) "
    "AND call_id = old.call_id AND segment_id = old.id; "
    "INSERT OR IGNORE INTO transcript_terms (term, started_at, call_id, segment_id) "
    "SELECT DISTINCT w.value, c.started_at, new.call_id, new.id FROM calls AS c, "
    + _SQLITE_WORDS.format(lemmas="new.lemmas")
    + " AS w WHERE c.id = new.call_id AND w.value <> ''; END",
)
# A call whose start is corrected (a rewrite of the same linkedid) keeps its
# words where its new start puts them; the key's leading columns find its rows.
SQLITE_CALL_TRIGGER = (
    "CREATE TRIGGER transcript_terms_call_moved AFTER UPDATE OF started_at ON calls "
    "WHEN old.started_at IS NOT new.started_at BEGIN "
    "UPDATE transcript_terms SET started_at = new.started_at "
    "WHERE term IN (SELECT w.value FROM transcript_segments AS s, "
    + _SQLITE_WORDS.format(lemmas="s.lemmas")
    + " AS w WHERE s.call_id = new.id) AND started_at = old.started_at AND call_id = new.id; END"
)
SQLITE_BACKFILL = (
    # A word said twice in a segment is one entry: OR IGNORE drops the second (no DISTINCT sort).
    "INSERT OR IGNORE INTO transcript_terms (term, started_at, call_id, segment_id) "
    "SELECT w.value, c.started_at, s.call_id, s.id FROM transcript_segments AS s "
    "JOIN calls AS c ON c.id = s.call_id, " + _SQLITE_WORDS.format(lemmas="s.lemmas") + " AS w "
    # In key order: appended to the index rather than inserted all over it.
    "WHERE w.value <> '' ORDER BY 1, 2, 3, 4"
)

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION transcript_terms_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM transcript_terms AS t
        WHERE t.term = ANY (string_to_array(OLD.lemmas, ' '))
          AND t.started_at = (SELECT started_at FROM calls WHERE id = OLD.call_id)
          AND t.call_id = OLD.call_id AND t.segment_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO transcript_terms (term, started_at, call_id, segment_id)
        SELECT DISTINCT w, c.started_at, NEW.call_id, NEW.id
        FROM calls AS c, unnest(string_to_array(NEW.lemmas, ' ')) AS w
        WHERE c.id = NEW.call_id AND w <> ''
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$
"""
PG_TRIGGER = (
    "CREATE TRIGGER transcript_terms_sync AFTER INSERT OR DELETE OR UPDATE OF lemmas, call_id "
    "ON transcript_segments FOR EACH ROW EXECUTE FUNCTION transcript_terms_sync()"
)
PG_CALL_FUNCTION = """
CREATE OR REPLACE FUNCTION transcript_terms_call_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE transcript_terms AS t SET started_at = NEW.started_at
    WHERE t.term IN (SELECT unnest(string_to_array(s.lemmas, ' ')) FROM transcript_segments AS s
                     WHERE s.call_id = NEW.id)
      AND t.started_at = OLD.started_at AND t.call_id = NEW.id;
    RETURN NULL;
END
$$
"""
PG_CALL_TRIGGER = (
    "CREATE TRIGGER transcript_terms_call_moved AFTER UPDATE OF started_at ON calls FOR EACH ROW "
    "WHEN (OLD.started_at IS DISTINCT FROM NEW.started_at) EXECUTE FUNCTION transcript_terms_call_moved()"
)
PG_BACKFILL = (
    "INSERT INTO transcript_terms (term, started_at, call_id, segment_id) "
    "SELECT DISTINCT w, c.started_at, s.call_id, s.id FROM transcript_segments AS s "
    "JOIN calls AS c ON c.id = s.call_id, unnest(string_to_array(s.lemmas, ' ')) AS w "
    "WHERE w <> '' ON CONFLICT DO NOTHING"
)

# A name written around the application (SQL by hand, an import) without a folded
# copy gets one folded as well as the database can: lower() folds ASCII only on
# SQLite, and search also matches the query as typed against it. (A folded copy
# the writer left as it was is kept: the database cannot tell it stale from a
# rename that only changed the case, which folds alike.)
SQLITE_CLIENT_TRIGGERS = (
    "CREATE TRIGGER clients_name_folded_ai AFTER INSERT ON clients "
    "WHEN new.name IS NOT NULL AND new.name_folded IS NULL BEGIN "
    "UPDATE clients SET name_folded = replace(lower(new.name), 'ё', 'е') WHERE id = new.id; END",
    "CREATE TRIGGER clients_name_folded_au AFTER UPDATE OF name ON clients "
    "WHEN (new.name IS NULL) IS NOT (new.name_folded IS NULL) BEGIN "
    "UPDATE clients SET name_folded = replace(lower(new.name), 'ё', 'е') WHERE id = new.id; END",
)
PG_CLIENT_FUNCTION = """
CREATE OR REPLACE FUNCTION clients_name_folded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.name IS NULL) <> (NEW.name_folded IS NULL) THEN
        NEW.name_folded := replace(lower(NEW.name), 'ё', 'е');
    END IF;
    RETURN NEW;
END
$$
"""
PG_CLIENT_TRIGGER = (
    "CREATE TRIGGER clients_name_folded BEFORE INSERT OR UPDATE OF name, name_folded ON clients "
    "FOR EACH ROW EXECUTE FUNCTION clients_name_folded()"
)


def _fold(name: str) -> str:
    # As pbxbridge.clients.tables.fold_name; copied so that the revision stays as written.
    return name.casefold().replace("ё", "е")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "transcript_terms",
        sa.Column("term", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("term", "started_at", "call_id", "segment_id", name="pk_transcript_terms"),
        sqlite_with_rowid=False,
    )
    if dialect == "sqlite":
        for trigger in ("transcript_segments_ai", "transcript_segments_ad", "transcript_segments_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS transcript_fts")
        op.execute(SQLITE_BACKFILL)
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)
        op.execute(SQLITE_CALL_TRIGGER)
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_transcript_segments_tsv")
        op.execute(PG_BACKFILL)
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
        op.execute(PG_CALL_FUNCTION)
        op.execute(PG_CALL_TRIGGER)

    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("name_folded", sa.String(200), nullable=True))
    op.create_index(
        "ix_clients_name_folded", "clients", ["name_folded", "id"],
        sqlite_where=sa.text("name_folded IS NOT NULL"), postgresql_where=sa.text("name_folded IS NOT NULL"),
    )
    clients = sa.table("clients", sa.column("id", sa.Integer), sa.column("name", sa.String),
                       sa.column("name_folded", sa.String))
    bind = op.get_bind()
    named = bind.execute(sa.select(clients.c.id, clients.c.name).where(clients.c.name.is_not(None))).all()
    if named:
        bind.execute(
            clients.update().where(clients.c.id == sa.bindparam("cid")).values(name_folded=sa.bindparam("folded")),
            [{"cid": cid, "folded": _fold(name)} for cid, name in named],
        )
    if dialect == "sqlite":
        for trigger in SQLITE_CLIENT_TRIGGERS:
            op.execute(trigger)
    elif dialect == "postgresql":
        op.execute(PG_CLIENT_FUNCTION)
        op.execute(PG_CLIENT_TRIGGER)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS clients_name_folded_ai")
        op.execute("DROP TRIGGER IF EXISTS clients_name_folded_au")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS clients_name_folded ON clients")
        op.execute("DROP FUNCTION IF EXISTS clients_name_folded()")
    op.drop_index("ix_clients_name_folded", table_name="clients")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("name_folded")
    if dialect == "sqlite":
        for trigger in ("transcript_terms_ai", "transcript_terms_ad", "transcript_terms_au",
                        "transcript_terms_call_moved"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute(
            "CREATE VIRTUAL TABLE transcript_fts USING fts5("
            "lemmas, content='transcript_segments', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute("INSERT INTO transcript_fts(transcript_fts) VALUES ('rebuild')")
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
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS transcript_terms_call_moved ON calls")
        op.execute("DROP FUNCTION IF EXISTS transcript_terms_call_moved()")
        op.execute("DROP TRIGGER IF EXISTS transcript_terms_sync ON transcript_segments")
        op.execute("DROP FUNCTION IF EXISTS transcript_terms_sync()")
        op.execute(
            "CREATE INDEX ix_transcript_segments_tsv ON transcript_segments "
            "USING gin (to_tsvector('russian', text))"
        )
    op.drop_table("transcript_terms")
