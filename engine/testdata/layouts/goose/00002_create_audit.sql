-- +goose Up
CREATE TABLE audit (id INTEGER PRIMARY KEY, user_id INTEGER, note TEXT);
-- +goose StatementBegin
CREATE TRIGGER users_audit AFTER INSERT ON users BEGIN
  INSERT INTO audit (user_id, note) VALUES (new.id, 'created; welcome');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER users_audit;
DROP TABLE audit;
