-- daily: trips, fares and distance per pickup day (UTC) and zone, recomputed from silver.
CREATE OR REPLACE TABLE trips_gold.daily_zone AS
SELECT CAST(pickup_at AS DATE) AS day, pickup_zone, zone_name, count(*) AS trips,
       CAST(sum(fare) AS DECIMAL(18, 2)) AS fare, CAST(sum(distance_km) AS DECIMAL(18, 3)) AS distance_km
FROM trips_silver.trips GROUP BY ALL;

SELECT (SELECT count(*) FROM trips_silver.trips) AS rows_in, (SELECT count(*) FROM trips_gold.daily_zone) AS rows_out;
