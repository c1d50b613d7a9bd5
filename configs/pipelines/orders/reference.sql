-- reference: reload the lookup tables from the reference folder on every run (and replay), so a fix there
-- takes effect. Keys are trimmed and upper-cased (codes compare case-insensitively); the first spelling of a
-- key wins. A row's product spelling and rate are copied into it when it is validated, so rows validated
-- earlier keep the values they were checked with even if these files change later.
CREATE OR REPLACE TABLE ref.products AS
SELECT trim(product_id) AS product_id, upper(trim(product_id)) AS product_key, trim(name) AS name, trim(category) AS category
FROM read_csv(getvariable('reference_dir') || '/products.csv', header = true, all_varchar = true)
WHERE coalesce(trim(product_id), '') <> ''
QUALIFY row_number() OVER (PARTITION BY upper(trim(product_id)) ORDER BY product_id) = 1;

CREATE OR REPLACE TABLE ref.countries AS
SELECT upper(trim(country_code)) AS country_code, trim(name) AS name
FROM read_csv(getvariable('reference_dir') || '/countries.csv', header = true, all_varchar = true)
WHERE coalesce(trim(country_code), '') <> ''
QUALIFY row_number() OVER (PARTITION BY upper(trim(country_code)) ORDER BY name) = 1;

CREATE OR REPLACE TABLE ref.fx_rates AS
SELECT upper(trim(currency)) AS currency, try_cast(trim(rate_to_usd) AS DECIMAL(18, 8)) AS rate_to_usd
FROM read_csv(getvariable('reference_dir') || '/fx_rates.csv', header = true, all_varchar = true)
WHERE coalesce(trim(currency), '') <> '' AND try_cast(trim(rate_to_usd) AS DECIMAL(18, 8)) > 0
QUALIFY row_number() OVER (PARTITION BY upper(trim(currency)) ORDER BY rate_to_usd) = 1;

SELECT (SELECT count(*) FROM ref.products) + (SELECT count(*) FROM ref.countries)
           + (SELECT count(*) FROM ref.fx_rates) AS rows_in,
       (SELECT count(*) FROM ref.products) + (SELECT count(*) FROM ref.countries)
           + (SELECT count(*) FROM ref.fx_rates) AS rows_out;
