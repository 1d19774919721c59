-- Your SQL goes here
CREATE INDEX users_email ON users (email);
