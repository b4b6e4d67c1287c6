-- Drop the points hypertable (and with it every chunk).
DROP TABLE points;
