-- Your SQL goes here
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
