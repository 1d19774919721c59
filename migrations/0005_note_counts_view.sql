-- Per-user note counts for the dashboard; a string with ';' in it stays one statement.
-- migrate:up
CREATE VIEW user_note_counts AS
SELECT u.id AS user_id, u.email, count(n.id) AS notes, 'notes; per user' AS label
FROM users u LEFT JOIN notes n ON n.user_id = u.id
GROUP BY u.id;

-- migrate:down
DROP VIEW user_note_counts;
