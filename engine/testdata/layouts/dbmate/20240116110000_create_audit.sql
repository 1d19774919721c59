-- migrate:up
CREATE TABLE audit (id INTEGER PRIMARY KEY, user_id INTEGER, note TEXT);
CREATE TRIGGER users_audit AFTER INSERT ON users BEGIN
  INSERT INTO audit (user_id, note) VALUES (new.id, 'created; welcome');
END;

-- migrate:down
DROP TRIGGER users_audit;
DROP TABLE audit;
