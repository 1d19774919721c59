-- This file should undo anything in `up.sql`
DROP TRIGGER users_audit;
DROP TABLE audit;
