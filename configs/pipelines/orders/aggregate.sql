-- aggregate (gold): only orders whose current status is paid or shipped count; revenue is summed exactly
-- and rounded to cents after summing. Gold tables are small, so they are rebuilt in full.
DELETE FROM gold.daily_revenue;
INSERT INTO gold.daily_revenue
SELECT CAST(timezone('UTC', order_ts) AS DATE) AS day, country, count(*) AS orders,
       CAST(round(sum(amount_usd), 2) AS DECIMAL(18, 2)) AS revenue_usd
FROM silver.orders_enriched WHERE status IN ('paid', 'shipped')
GROUP BY ALL;

DELETE FROM gold.product_sales;
INSERT INTO gold.product_sales
SELECT product_id, category, sum(quantity) AS units, CAST(round(sum(amount_usd), 2) AS DECIMAL(18, 2))
FROM silver.orders_enriched WHERE status IN ('paid', 'shipped')
GROUP BY ALL;

DELETE FROM gold.customer_ltv;
INSERT INTO gold.customer_ltv
SELECT customer_id, count(*) AS orders, CAST(round(sum(amount_usd), 2) AS DECIMAL(18, 2)),
       min(order_ts), max(order_ts)
FROM silver.orders_enriched WHERE status IN ('paid', 'shipped')
GROUP BY ALL;

SELECT
    (SELECT count(*) FROM silver.orders_enriched) AS rows_in,
    (SELECT count(*) FROM gold.daily_revenue) + (SELECT count(*) FROM gold.product_sales)
        + (SELECT count(*) FROM gold.customer_ltv) AS rows_out,
    (SELECT count(*) FROM silver.orders_enriched WHERE status IN ('paid', 'shipped')) AS counted_orders;
