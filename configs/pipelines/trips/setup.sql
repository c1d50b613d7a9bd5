-- Idempotent schema of the trips pipeline (runs before every run, in its own transaction).
CREATE SCHEMA IF NOT EXISTS trips_bronze;
CREATE SCHEMA IF NOT EXISTS trips_silver;
CREATE SCHEMA IF NOT EXISTS trips_gold;

-- Bronze (trips_bronze.trips_raw) is created by the shipped ingest step from its params.columns.
CREATE TABLE IF NOT EXISTS trips_silver.trips (
    trip_id VARCHAR NOT NULL, pickup_at TIMESTAMPTZ NOT NULL, dropoff_at TIMESTAMPTZ NOT NULL,
    pickup_zone VARCHAR NOT NULL, zone_name VARCHAR NOT NULL, distance_km DECIMAL(10, 3) NOT NULL,
    fare DECIMAL(12, 2) NOT NULL, payment_type VARCHAR NOT NULL, _row_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS trips_silver.trips_rejected (_row_id BIGINT NOT NULL, trip_id VARCHAR, reasons VARCHAR[] NOT NULL);
CREATE TABLE IF NOT EXISTS trips_gold.daily_zone (
    day DATE, pickup_zone VARCHAR, zone_name VARCHAR, trips BIGINT, fare DECIMAL(18, 2), distance_km DECIMAL(18, 3)
);
