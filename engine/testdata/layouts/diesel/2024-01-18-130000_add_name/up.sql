-- Your SQL goes here
ALTER TABLE users ADD COLUMN name TEXT;
