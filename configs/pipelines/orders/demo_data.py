"""Reproducible sample data for the orders pipeline: ~100,000 orders as CSV and JSON-lines landing files.

Why generated and not shipped: a fresh machine gets real dashboard numbers without a large file in the
repo, and the same seed always yields byte-identical files. The sample holds every kind of bad row the
validate step knows, malformed lines, re-sent orders (later updates, status changes, exact-timestamp ties)
and a mix of timestamp styles, code casings and stray whitespace. Files are written under a temporary
name and renamed, so a pipeline watching the folder never sees half a file.

It lives beside the orders pipeline it feeds (``orders.yaml`` names it as ``demo_data:``); the daemon loads
it for ``demo-data`` and for ``demo_data: true`` on a first start.

CLI: ``python configs/pipelines/orders/demo_data.py --landing DIR [--orders N] [--seed S] [--reference DIR]``
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.base.jsonable import dataclass_to_json

__all__ = ["COUNTRIES", "FX_RATES", "PRODUCTS", "DemoSummary", "generate", "main", "write_reference"]

FIELDS = (
    "order_id",
    "customer_id",
    "order_ts",
    "product_id",
    "quantity",
    "unit_price",
    "currency",
    "country",
    "status",
    "updated_at",
)

#: product_id -> (name, category, list price in USD)
PRODUCTS: dict[str, tuple[str, str, float]] = {
    "P001": ("Espresso Beans 1kg", "Coffee", 24.0),
    "P002": ("Filter Coffee 500g", "Coffee", 11.5),
    "P003": ("Green Tea 100 bags", "Tea", 6.25),
    "P004": ("Earl Grey 50 bags", "Tea", 4.75),
    "P005": ("Ceramic Mug", "Kitchen", 9.0),
    "P006": ("French Press", "Kitchen", 29.0),
    "P007": ("Burr Grinder", "Kitchen", 89.0),
    "P008": ("Milk Frother", "Kitchen", 35.0),
    "P009": ("Dark Chocolate Bar", "Snacks", 3.2),
    "P010": ("Almond Biscotti", "Snacks", 5.5),
    "P011": ("Oat Milk 1L", "Dairy Alternatives", 2.9),
    "P012": ("Cold Brew Kit", "Coffee", 42.0),
    "P013": ("Matcha Powder 30g", "Tea", 18.0),
    "P014": ("Travel Tumbler", "Kitchen", 21.0),
    "P015": ("Honey Jar 250g", "Snacks", 7.8),
    "P016": ("Gift Card 25", "Gift Cards", 25.0),
    "P017": ("Gift Card 50", "Gift Cards", 50.0),
    "P018": ("Descaling Tablets", "Kitchen", 8.4),
    "P019": ("Chai Spice Mix", "Tea", 6.9),
    "P020": ("Decaf Beans 1kg", "Coffee", 22.0),
}
#: country_code -> (name, usual currency)
COUNTRIES: dict[str, tuple[str, str]] = {
    "US": ("United States", "USD"),
    "CA": ("Canada", "CAD"),
    "MX": ("Mexico", "MXN"),
    "GB": ("United Kingdom", "GBP"),
    "IE": ("Ireland", "EUR"),
    "FR": ("France", "EUR"),
    "DE": ("Germany", "EUR"),
    "ES": ("Spain", "EUR"),
    "IT": ("Italy", "EUR"),
    "NL": ("Netherlands", "EUR"),
    "SE": ("Sweden", "SEK"),
    "PL": ("Poland", "PLN"),
    "JP": ("Japan", "JPY"),
    "AU": ("Australia", "AUD"),
    "BR": ("Brazil", "BRL"),
    "IN": ("India", "INR"),
}
FX_RATES: dict[str, str] = {
    "USD": "1.0",
    "EUR": "1.08",
    "GBP": "1.27",
    "CAD": "0.74",
    "JPY": "0.0067",
    "AUD": "0.66",
    "MXN": "0.058",
    "SEK": "0.095",
    "PLN": "0.25",
    "BRL": "0.2",
    "INR": "0.012",
}
_COUNTRY_WEIGHTS = [30, 6, 3, 12, 2, 8, 10, 4, 4, 3, 2, 2, 5, 3, 3, 3]
_BAD_KINDS = (
    "missing_order_id",
    "missing_customer_id",
    "missing_product_id",
    "unknown_product",
    "invalid_order_ts",
    "invalid_updated_at",
    "invalid_quantity",
    "invalid_unit_price",
    "unknown_currency",
    "unknown_country",
    "invalid_status",
    "several",
)
_MALFORMED_KINDS = ("too_few_fields", "too_many_fields", "bad_quote", "blank", "invalid_json", "json_array")


@dataclasses.dataclass(frozen=True, slots=True)
class DemoSummary:
    """What was written, so callers (and tests) know what to expect."""

    files: tuple[Path, ...]
    orders: int
    lines: int
    resent: int
    bad_rows: int
    malformed_lines: int


def write_reference(directory: Path) -> None:
    """Write products.csv, countries.csv and fx_rates.csv (the shipped configs/reference files)."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(
        directory / "products.csv",
        "product_id,name,category\n" + "".join(f"{k},{v[0]},{v[1]}\n" for k, v in PRODUCTS.items()),
    )
    _write(directory / "countries.csv", "country_code,name\n" + "".join(f"{k},{v[0]}\n" for k, v in COUNTRIES.items()))
    _write(directory / "fx_rates.csv", "currency,rate_to_usd\n" + "".join(f"{k},{v}\n" for k, v in FX_RATES.items()))


def _write(path: Path, text: str) -> None:
    """A sample file lands whole (a landing folder is watched), readable like files copied in by hand."""
    atomic_write(path, text, mode=0o644, durable=False)


def _ts(rng: random.Random, t: dt.datetime) -> str:
    """The same instant in one of several ISO-8601 spellings (Z, offset, none = UTC, space separator)."""
    style = rng.random()
    if style < 0.55:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style < 0.75:
        hours = rng.choice((-5, -3, 1, 2, 5, 9))
        local = t + dt.timedelta(hours=hours)
        sign = "+" if hours >= 0 else "-"
        return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{abs(hours):02d}:00"
    if style < 0.9:
        return t.strftime("%Y-%m-%dT%H:%M:%S")
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _messy(rng: random.Random, code: str) -> str:
    """Codes arrive in any case and sometimes padded; validate trims and compares case-insensitively."""
    r = rng.random()
    if r < 0.1:
        code = code.lower()
    elif r < 0.15:
        code = code.capitalize()
    if rng.random() < 0.05:
        code = f" {code} "
    return code


def generate(
    landing: Path,
    *,
    orders: int = 100_000,
    seed: int = 20240601,
    files: int = 8,
    jsonl_share: float = 0.25,
    bad_fraction: float = 0.03,
    malformed_fraction: float = 0.005,
    resend_fraction: float = 0.06,
    prefix: str = "demo",
) -> DemoSummary:
    """Write ``files`` landing files (the last ``jsonl_share`` of them JSON-lines) holding ``orders``
    orders plus re-sends, bad rows and malformed lines. Same arguments, same bytes."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible sample, not a secret)
    landing.mkdir(parents=True, exist_ok=True)
    files = max(2, files)
    n_jsonl = max(1, round(files * jsonl_share))
    country_codes = list(COUNTRIES)
    product_ids = list(PRODUCTS)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    span_s = 182 * 86400
    buckets: list[list[dict[str, str] | str]] = [[] for _ in range(files)]
    resent = bad = malformed = 0

    for i in range(orders):
        country = rng.choices(country_codes, _COUNTRY_WEIGHTS)[0]
        currency = COUNTRIES[country][1] if rng.random() < 0.9 else "USD"
        pid = rng.choice(product_ids)
        price_usd = PRODUCTS[pid][2]
        price = price_usd / float(FX_RATES[currency])
        order_t = start + dt.timedelta(seconds=rng.randrange(span_s))
        status = rng.choices(("placed", "paid", "shipped", "cancelled", "refunded"), (15, 45, 30, 6, 4))[0]
        row = {
            "order_id": f"{prefix.upper()}-{i:08d}",
            "customer_id": f"C{rng.randrange(max(1, orders // 8)):07d}",
            "order_ts": _ts(rng, order_t),
            "product_id": _messy(rng, pid),
            "quantity": str(rng.choices((1, 2, 3, 4, 5, 10), (50, 25, 10, 7, 5, 3))[0]),
            "unit_price": f"{price:.2f}",
            "currency": _messy(rng, currency),
            "country": _messy(rng, country),
            "status": _messy(rng, status),
            "updated_at": "",
        }
        upd_t = order_t + dt.timedelta(minutes=rng.randrange(0, 120))
        row["updated_at"] = _ts(rng, upd_t)
        if rng.random() < bad_fraction:
            _spoil(rng, row)
            bad += 1
        f = rng.randrange(files)
        buckets[f].append(row)
        if rng.random() < resend_fraction and f < files - 1:
            again = dict(row)
            r = rng.random()
            if r < 0.7:  # a later update: status moves on
                again["status"] = rng.choice(("paid", "shipped", "refunded", "cancelled"))
                again["updated_at"] = _ts(rng, upd_t + dt.timedelta(hours=rng.randrange(1, 240)))
            elif r < 0.85:  # an exact tie: same updated_at, different quantity; the later file wins
                again["quantity"] = str(int(row["quantity"]) + 1) if row["quantity"].isdigit() else "1"
            else:  # a stale re-send: older updated_at, loses to the version already there
                again["status"] = "placed"
                again["updated_at"] = _ts(rng, order_t - dt.timedelta(minutes=rng.randrange(1, 600)))
            buckets[rng.randrange(f + 1, files)].append(again)
            resent += 1
        if rng.random() < malformed_fraction:
            buckets[rng.randrange(files)].append(rng.choice(_MALFORMED_KINDS))
            malformed += 1

    written: list[Path] = []
    lines = 0
    for f, bucket in enumerate(buckets):
        is_jsonl = f >= files - n_jsonl
        name = f"{prefix}_orders_{f + 1:03d}.{'jsonl' if is_jsonl else 'csv'}"
        out: list[str] = [] if is_jsonl else [",".join(FIELDS)]
        for item in bucket:
            out.append(
                _malformed_line(rng, item, is_jsonl)
                if isinstance(item, str)
                else (json.dumps(item) if is_jsonl else _csv_line(item))
            )
        lines += len(bucket)
        path = landing / name
        _write(path, "\n".join(out) + "\n")
        written.append(path)
    return DemoSummary(tuple(written), orders, lines, resent, bad, malformed)


def _csv_line(row: dict[str, str]) -> str:
    out = []
    for k in FIELDS:
        v = row[k]
        out.append('"' + v.replace('"', '""') + '"' if ("," in v or '"' in v) else v)
    return ",".join(out)


def _malformed_line(rng: random.Random, kind: str, is_jsonl: bool) -> str:
    if kind == "blank":
        return ""
    if is_jsonl:
        return "[1, 2, 3]" if kind == "json_array" else '{"order_id": "X-' + str(rng.randrange(10**6)) + '", '
    if kind == "too_many_fields":
        return "X1,C1,2024-01-01T00:00:00Z,P001,1,1.00,USD,US,paid,2024-01-01T00:00:00Z,extra"
    if kind == "bad_quote":
        return '"X2,C1,2024-01-01T00:00:00Z,P001,1,1.00,USD,US,paid,2024-01-01T00:00:00Z'
    return "X3,C1,2024-01-01"


def _spoil(rng: random.Random, row: dict[str, str]) -> None:
    kind = rng.choice(_BAD_KINDS)
    if kind == "several":
        for k in rng.sample(_BAD_KINDS[:-1], 3):
            _spoil_one(rng, row, k)
    else:
        _spoil_one(rng, row, kind)


def _spoil_one(rng: random.Random, row: dict[str, str], kind: str) -> None:
    if kind == "missing_order_id":
        row["order_id"] = rng.choice(("", "  "))
    elif kind == "missing_customer_id":
        row["customer_id"] = ""
    elif kind == "missing_product_id":
        row["product_id"] = ""
    elif kind == "unknown_product":
        row["product_id"] = rng.choice(("P999", "P0XX", "SKU-1"))
    elif kind == "invalid_order_ts":
        row["order_ts"] = rng.choice(("2024-02-30T10:00:00Z", "yesterday", "2024/03/01 10:00", "1709287200"))
    elif kind == "invalid_updated_at":
        row["updated_at"] = rng.choice(("2024-13-01T00:00:00Z", "n/a", "2024-03-01T25:00:00Z"))
    elif kind == "invalid_quantity":
        row["quantity"] = rng.choice(("0", "-1", "1.5", "two", ""))
    elif kind == "invalid_unit_price":
        row["unit_price"] = rng.choice(("-3.50", "abc", "", "1,50", "1e3"))
    elif kind == "unknown_currency":
        row["currency"] = rng.choice(("XYZ", "", "US$"))
    elif kind == "unknown_country":
        row["country"] = rng.choice(("ZZ", "", "USA"))
    elif kind == "invalid_status":
        row["status"] = rng.choice(("lost", "", "pending", "paid?"))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints a one-line JSON summary."""
    parser = argparse.ArgumentParser(prog="demo_data.py", description=__doc__)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--reference", type=Path, help="also write the three reference CSVs here")
    args = parser.parse_args(argv)
    summary = generate(args.landing, orders=args.orders, seed=args.seed, files=args.files)
    if args.reference:
        write_reference(args.reference)
    sys.stdout.write(json.dumps(dataclass_to_json(summary)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
