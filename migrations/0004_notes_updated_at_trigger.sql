-- Keep notes.updated_at current; the trigger body holds ';' inside BEGIN ... END.
-- migrate:up
CREATE TRIGGER notes_touch AFTER UPDATE OF title, body ON notes
FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE notes SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;

-- migrate:down
DROP TRIGGER notes_touch;
