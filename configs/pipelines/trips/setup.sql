-- Idempotent schema of the trips pipeline (runs before every run, in its own transaction).
CREATE SCHEMA IF NOT EXISTS trips_bronze;
CREATE SCHEMA IF NOT EXISTS trips_silver;
CREATE SCHEMA IF NOT EXISTS trips_gold;

-- Bronze, as the shipped ingest step fills it: its eight bookkeeping columns, then the declared columns as text.
CREATE TABLE IF NOT EXISTS trips_bronze.trips_raw (
    _row_id BIGINT NOT NULL, _batch_id VARCHAR NOT NULL, _source_file VARCHAR NOT NULL,
    _source_sha256 VARCHAR NOT NULL, _source_line BIGINT NOT NULL, _ingested_at TIMESTAMPTZ NOT NULL,
    _raw_line VARCHAR, _parse_error VARCHAR,
    trip_id VARCHAR, pickup_at VARCHAR, dropoff_at VARCHAR, pickup_zone VARCHAR, distance_km VARCHAR,
    fare VARCHAR, payment_type VARCHAR
);
CREATE TABLE IF NOT EXISTS trips_silver.trips (
    trip_id VARCHAR NOT NULL, pickup_at TIMESTAMPTZ NOT NULL, dropoff_at TIMESTAMPTZ NOT NULL,
    pickup_zone VARCHAR NOT NULL, zone_name VARCHAR NOT NULL, distance_km DECIMAL(10, 3) NOT NULL,
    fare DECIMAL(12, 2) NOT NULL, payment_type VARCHAR NOT NULL, _row_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS trips_silver.trips_rejected (_row_id BIGINT NOT NULL, trip_id VARCHAR, reasons VARCHAR[] NOT NULL);
CREATE TABLE IF NOT EXISTS trips_gold.daily_zone (
    day DATE, pickup_zone VARCHAR, zone_name VARCHAR, trips BIGINT, fare DECIMAL(18, 2), distance_km DECIMAL(18, 3)
);
