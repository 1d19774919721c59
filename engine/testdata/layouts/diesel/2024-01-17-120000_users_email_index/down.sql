-- This file should undo anything in `up.sql`
DROP INDEX users_email;
