-- clean: type, check and deduplicate the bronze rows not seen yet; a trip id seen again replaces the
-- earlier version (the later ingested row wins). Rules: trip_id present; pickup/dropoff are timestamps
-- with dropoff >= pickup; zone in zones.csv; distance >= 0; fare >= 0; payment_type in card, cash.
SET VARIABLE v_from = (SELECT coalesce(max(_row_id), 0) FROM (
    SELECT _row_id FROM trips_silver.trips UNION ALL SELECT _row_id FROM trips_silver.trips_rejected));

CREATE TEMP TABLE _zones AS
SELECT upper(trim(zone)) AS zone, trim(name) AS name
FROM read_csv(getvariable('reference_dir') || '/zones.csv', header = true, all_varchar = true);

CREATE TEMP TABLE _checked AS
SELECT r._row_id, nullif(trim(r.trip_id), '') AS trip_id,
       try_cast(trim(r.pickup_at) AS TIMESTAMPTZ) AS pickup_at, try_cast(trim(r.dropoff_at) AS TIMESTAMPTZ) AS dropoff_at,
       upper(trim(r.pickup_zone)) AS pickup_zone, z.name AS zone_name,
       try_cast(trim(r.distance_km) AS DECIMAL(10, 3)) AS distance_km, try_cast(trim(r.fare) AS DECIMAL(12, 2)) AS fare,
       lower(trim(r.payment_type)) AS payment_type,
       list_filter([
           CASE WHEN r._parse_error IS NOT NULL THEN 'malformed_line' END,
           CASE WHEN nullif(trim(r.trip_id), '') IS NULL THEN 'missing_trip_id' END,
           CASE WHEN try_cast(trim(r.pickup_at) AS TIMESTAMPTZ) IS NULL THEN 'invalid_pickup_at' END,
           CASE WHEN try_cast(trim(r.dropoff_at) AS TIMESTAMPTZ) IS NULL
                  OR try_cast(trim(r.dropoff_at) AS TIMESTAMPTZ) < try_cast(trim(r.pickup_at) AS TIMESTAMPTZ)
                THEN 'invalid_dropoff_at' END,
           CASE WHEN z.zone IS NULL THEN 'unknown_zone' END,
           CASE WHEN coalesce(try_cast(trim(r.distance_km) AS DECIMAL(10, 3)) >= 0, false) = false THEN 'invalid_distance' END,
           CASE WHEN coalesce(try_cast(trim(r.fare) AS DECIMAL(12, 2)) >= 0, false) = false THEN 'invalid_fare' END,
           CASE WHEN lower(trim(r.payment_type)) NOT IN ('card', 'cash') OR r.payment_type IS NULL THEN 'invalid_payment_type' END
       ], lambda x: x IS NOT NULL) AS reasons
FROM trips_bronze.trips_raw r LEFT JOIN _zones z ON z.zone = upper(trim(r.pickup_zone))
WHERE r._row_id > getvariable('v_from');

INSERT INTO trips_silver.trips_rejected SELECT _row_id, trip_id, reasons FROM _checked WHERE len(reasons) > 0;

-- the newest version of each trip id among the new valid rows replaces any earlier one in silver
CREATE TEMP TABLE _winners AS
SELECT * EXCLUDE (reasons) FROM _checked WHERE len(reasons) = 0
QUALIFY row_number() OVER (PARTITION BY trip_id ORDER BY _row_id DESC) = 1;
DELETE FROM trips_silver.trips WHERE trip_id IN (SELECT trip_id FROM _winners);
INSERT INTO trips_silver.trips
SELECT trip_id, pickup_at, dropoff_at, pickup_zone, zone_name, distance_km, fare, payment_type, _row_id FROM _winners;

SELECT (SELECT count(*) FROM _checked) AS rows_in,
       (SELECT count(*) FROM _winners) AS rows_out,
       (SELECT count(*) FROM _checked WHERE len(reasons) = 0) AS valid,
       (SELECT count(*) FROM _checked WHERE len(reasons) > 0) AS rejected;
