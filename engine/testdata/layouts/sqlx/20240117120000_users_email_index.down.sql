-- no-transaction
DROP INDEX users_email;
