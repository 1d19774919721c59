-- Add notes.archived with a CHECK constraint: SQLite's ALTER TABLE cannot add
-- a constraint, so this rebuilds notes (the 12-step procedure). shoal runs it
-- with foreign keys off, so note_tags rows (ON DELETE CASCADE) survive the
-- DROP TABLE, and checks foreign keys before COMMIT.
-- migrate:up
CREATE TABLE notes_new (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL DEFAULT '',
    archived   INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO notes_new (id, user_id, title, body, created_at, updated_at)
    SELECT id, user_id, title, body, created_at, updated_at FROM notes;
DROP VIEW user_note_counts;
DROP TABLE notes;
ALTER TABLE notes_new RENAME TO notes;
CREATE INDEX notes_user_id ON notes(user_id);
CREATE TRIGGER notes_touch AFTER UPDATE OF title, body ON notes
FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE notes SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;
CREATE VIEW user_note_counts AS
SELECT u.id AS user_id, u.email, count(n.id) AS notes, 'notes; per user' AS label
FROM users u LEFT JOIN notes n ON n.user_id = u.id AND n.archived = 0
GROUP BY u.id;

-- migrate:down
CREATE TABLE notes_old (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL DEFAULT '',
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO notes_old (id, user_id, title, body, created_at, updated_at)
    SELECT id, user_id, title, body, created_at, updated_at FROM notes;
DROP VIEW user_note_counts;
DROP TABLE notes;
ALTER TABLE notes_old RENAME TO notes;
CREATE INDEX notes_user_id ON notes(user_id);
CREATE TRIGGER notes_touch AFTER UPDATE OF title, body ON notes
FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE notes SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;
CREATE VIEW user_note_counts AS
SELECT u.id AS user_id, u.email, count(n.id) AS notes, 'notes; per user' AS label
FROM users u LEFT JOIN notes n ON n.user_id = u.id
GROUP BY u.id;
