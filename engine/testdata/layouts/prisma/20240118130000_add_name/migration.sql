-- CreateStep
ALTER TABLE users ADD COLUMN name TEXT;
