-- no-transaction
CREATE INDEX users_email ON users (email);
