"""A small handmade data set holding every kind of bad row, duplicates and ties, plus an independent
pure-Python model of the orders rules (csv/json/datetime/Decimal, no DuckDB) to compute expected tables."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

HEADER = "order_id,customer_id,order_ts,product_id,quantity,unit_price,currency,country,status,updated_at"
FIELDS = HEADER.split(",")

BATCH1_CSV = (
    "\n".join(
        [
            HEADER,
            "A1,C1,2024-03-01T10:00:00Z,P001,2,10.50,USD,US,paid,2024-03-01T10:00:00Z",
            "A2, C2 ,2024-03-01 23:30:00-02:00, p002 ,1,4.99, eur ,fr,SHIPPED,2024-03-01T23:30:00-02:00",
            "A3,C1,2024-03-02T08:00:00,P003,3,2.00,GBP,GB,placed,2024-03-02T08:00:00",
            "A4,C3,2024-03-02T09:00:00Z,P005,1,12.00,USD,US,paid,2024-03-02T09:00:00Z",
            "A5,C3,2024-03-02T09:30:00Z,P009,5,0.001,USD,US,paid,2024-03-02T09:30:00Z",
            "A6,C4,2024-03-02T09:31:00Z,P009,5,0.001,USD,US,paid,2024-03-02T09:31:00Z",
            "A7,C4,2024-03-02T09:32:00Z,P009,5,0.001,usd,US,shipped,2024-03-02T09:32:00Z",
            ",C5,2024-03-01T10:00:00Z,P001,1,1.00,USD,US,paid,2024-03-01T10:00:00Z",
            "B1,,2024-03-01T10:00:00Z,P001,1,1.00,USD,US,paid,2024-03-01T10:00:00Z",
            "B2,C5,2024-03-01T10:00:00Z,,1,1.00,USD,US,paid,2024-03-01T10:00:00Z",
            "B3,C5,2024-03-01T10:00:00Z,P999,1,1.00,USD,US,paid,2024-03-01T10:00:00Z",
            "B4,C5,2024-13-01T10:00:00Z,P001,1,1.00,USD,US,paid,2024-03-01T10:00:00Z",
            "B5,C5,2024-03-01T10:00:00Z,P001,1,1.00,USD,US,paid,yesterday",
            "B6,C5,2024-03-01T10:00:00Z,P001,0,1.00,USD,US,paid,2024-03-01T10:00:00Z",
            "B7,C5,2024-03-01T10:00:00Z,P001,1.5,1.00,USD,US,paid,2024-03-01T10:00:00Z",
            "B8,C5,2024-03-01T10:00:00Z,P001,1,-1.00,USD,US,paid,2024-03-01T10:00:00Z",
            "B9,C5,2024-03-01T10:00:00Z,P001,1,1.00,XYZ,US,paid,2024-03-01T10:00:00Z",
            "B10,C5,2024-03-01T10:00:00Z,P001,1,1.00,USD,ZZ,paid,2024-03-01T10:00:00Z",
            "B11,C5,2024-03-01T10:00:00Z,P001,1,1.00,USD,US,lost,2024-03-01T10:00:00Z",
            "B12,  ,2024-02-30T10:00:00,P001,-2,abc,usd,us,paid,2024-03-01T10:00:00Z",
            "B13,C5,2024-03-01T24:00:00Z,P001,1,1.00,USD,US,paid,2024-03-01",
            "too,few,fields",
            "",
            '"A8,C1,unterminated quote',
            'A9,C6,2024-03-03T12:00:00+05:30,P004,"2",3.333333,GBP,gb,paid,2024-03-03T12:00:00+05:30',
            "A10,C6,2024-03-03T12:00:00Z,P001,1,10.00,USD,US,paid,2024-03-03T12:00:00Z",
            "A10,C6,2024-03-03T12:00:00Z,P001,4,10.00,USD,US,paid,2024-03-03T12:00:00Z",
            "A11,C7,2024-03-04T00:00:00Z,P002,1,5.00,EUR,DE,paid,2024-03-04T10:00:00Z",
        ]
    )
    + "\n"
)

BATCH1_JSONL = (
    "\n".join(
        [
            json.dumps(
                {
                    "order_id": "J1",
                    "customer_id": "C8",
                    "order_ts": "2024-03-05T10:00:00+01:00",
                    "product_id": "P006",
                    "quantity": 3,
                    "unit_price": "1000",
                    "currency": "JPY",
                    "country": "JP",
                    "status": "paid",
                    "updated_at": "2024-03-05T10:00:00+01:00",
                }
            ),
            json.dumps(
                {
                    "order_id": "A11",
                    "customer_id": "C7",
                    "order_ts": "2024-03-04T00:00:00Z",
                    "product_id": "P002",
                    "quantity": "9",
                    "unit_price": "5.00",
                    "currency": "EUR",
                    "country": "DE",
                    "status": "paid",
                    "updated_at": "2024-03-04T09:00:00Z",
                }
            ),
            json.dumps(
                {
                    "order_id": "A1",
                    "customer_id": "C1",
                    "order_ts": "2024-03-01T10:00:00Z",
                    "product_id": "P001",
                    "quantity": "3",
                    "unit_price": 10.5,
                    "currency": "USD",
                    "country": "US",
                    "status": "paid",
                    "updated_at": "2024-03-01T12:00:00+02:00",
                }
            ),
            "not json at all",
            "[1, 2, 3]",
            json.dumps(
                {
                    "order_id": "J2",
                    "customer_id": "C8",
                    "order_ts": "2024-03-05T10:00:00Z",
                    "product_id": "P007",
                    "quantity": "2",
                    "unit_price": "80",
                    "currency": "cad",
                    "country": "ca",
                    "status": "shipped",
                    "updated_at": "2024-03-05T10:00:00Z",
                }
            ),
            json.dumps(
                {
                    "order_id": "J3",
                    "order_ts": "2024-03-05T10:00:00Z",
                    "product_id": "P007",
                    "quantity": "2",
                    "unit_price": "80",
                    "currency": "CAD",
                    "country": "CA",
                    "updated_at": "2024-03-05T10:00:00Z",
                }
            ),
        ]
    )
    + "\n"
)

BATCH2_CSV = (
    "\n".join(
        [
            HEADER,
            "A3,C1,2024-03-02T08:00:00,P003,3,2.00,GBP,GB,shipped,2024-03-06T08:00:00Z",
            "A4,C3,2024-03-02T09:00:00Z,P005,1,12.00,USD,US,refunded,2024-03-06T09:00:00Z",
            "J2,C8,2024-03-05T10:00:00Z,P007,1,80,CAD,CA,shipped,2024-03-05T11:00:00+01:00",
            "A2,C2,2024-03-01T23:30:00-02:00,P002,1,4.99,EUR,FR,placed,2024-03-01T00:00:00Z",
            "C1X,C9,2024-03-06T10:00:00Z,P008,2,15.00,SEK,SE,paid,2024-03-06T10:00:00Z",
        ]
    )
    + "\n"
)

FILES_BATCH1 = {"a_orders.csv": BATCH1_CSV, "b_orders.jsonl": BATCH1_JSONL}
FILES_BATCH2 = {"c_orders.csv": BATCH2_CSV, "d_copy_of_a.csv": BATCH1_CSV}  # same content as a: ingested once

_TS = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?"
)
STATUSES = {"placed", "paid", "shipped", "cancelled", "refunded"}


def load_reference(ref: Path) -> tuple[dict[str, tuple[str, str, str]], dict[str, str], dict[str, Decimal]]:
    with (ref / "products.csv").open() as f:
        products = {
            r["product_id"].strip().upper(): (r["product_id"].strip(), r["name"], r["category"])
            for r in csv.DictReader(f)
        }
    with (ref / "countries.csv").open() as f:
        countries = {r["country_code"].strip().upper(): r["name"] for r in csv.DictReader(f)}
    with (ref / "fx_rates.csv").open() as f:
        fx = {r["currency"].strip().upper(): Decimal(r["rate_to_usd"]) for r in csv.DictReader(f)}
    return products, countries, fx


def parse_ts(s: str | None) -> dt.datetime | None:
    if s is None or not _TS.fullmatch(s.strip()):
        return None
    try:
        t = dt.datetime.fromisoformat(s.strip())
    except ValueError:
        return None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def parse_lines(name: str, text: str) -> list[dict[str, Any] | None]:
    """Rows in physical order (None for a malformed line); CSV header is not a row."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    out: list[dict[str, Any] | None] = []
    if name.endswith(".csv"):
        header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
        for line in lines[1:]:
            try:
                fields = next(csv.reader([line], strict=True)) if line.strip() else None
            except csv.Error:
                fields = None
            out.append(dict(zip(header, fields, strict=True)) if fields and len(fields) == len(header) else None)
    else:
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                out.append({k: (None if obj.get(k) is None else str(obj[k])) for k in FIELDS})
            else:
                out.append(None)
    return out


def validate(row: dict[str, Any] | None, ref: tuple[Any, Any, Any]) -> tuple[list[str], dict[str, Any]]:
    products, countries, fx = ref
    if row is None:
        return ["malformed_line"], {}

    def t(k: str) -> str:
        v = row.get(k)
        return "" if v is None else v.strip()

    reasons = []
    if not t("order_id"):
        reasons.append("missing_order_id")
    if not t("customer_id"):
        reasons.append("missing_customer_id")
    if not t("product_id"):
        reasons.append("missing_product_id")
    elif t("product_id").upper() not in products:
        reasons.append("unknown_product")
    order_ts, updated_at = parse_ts(row.get("order_ts")), parse_ts(row.get("updated_at"))
    if order_ts is None:
        reasons.append("invalid_order_ts")
    if updated_at is None:
        reasons.append("invalid_updated_at")
    q = t("quantity")
    if not (re.fullmatch(r"[0-9]{1,9}", q) and int(q) > 0):
        reasons.append("invalid_quantity")
    p = t("unit_price")
    if not re.fullmatch(r"[0-9]{1,12}(?:\.[0-9]{1,6})?", p):
        reasons.append("invalid_unit_price")
    if t("currency").upper() not in fx:
        reasons.append("unknown_currency")
    if t("country").upper() not in countries:
        reasons.append("unknown_country")
    if t("status").lower() not in STATUSES:
        reasons.append("invalid_status")
    if reasons:
        return reasons, {}
    return [], {
        "order_id": t("order_id"),
        "customer_id": t("customer_id"),
        "order_ts": order_ts,
        "updated_at": updated_at,
        "product_id": products[t("product_id").upper()][0],
        "quantity": int(q),
        "unit_price": Decimal(p),
        "currency": t("currency").upper(),
        "country": t("country").upper(),
        "status": t("status").lower(),
        "amount_usd": int(q) * Decimal(p) * fx[t("currency").upper()],
    }


def model(batches: list[dict[str, str]], ref_dir: Path) -> dict[str, Any]:
    """Expected outcome of running the pipeline once per batch (files of a batch in name order;
    identical content ingested once)."""
    ref = load_reference(ref_dir)
    products = ref[0]
    seen: set[str] = set()
    seq = 0
    current: dict[str, tuple[dt.datetime, int, dict[str, Any]]] = {}
    rejected: list[tuple[str, int, list[str]]] = []
    valid = superseded = 0
    for batch in batches:
        for name in sorted(batch):
            if batch[name] in seen:
                continue
            seen.add(batch[name])
            first_line = 2 if name.endswith(".csv") else 1
            for i, row in enumerate(parse_lines(name, batch[name])):
                seq += 1
                reasons, rec = validate(row, ref)
                if reasons:
                    rejected.append((name, first_line + i, reasons))
                    continue
                valid += 1
                key = (rec["updated_at"], seq)
                old = current.get(rec["order_id"])
                if old is None or key > old[:2]:
                    if old is not None:
                        superseded += 1
                    current[rec["order_id"]] = (*key, rec)
                else:
                    superseded += 1
    counted = [r for _, _, r in current.values() if r["status"] in ("paid", "shipped")]
    cents = Decimal("0.01")

    def money(x: Decimal) -> str:
        return str(x.quantize(cents, rounding=ROUND_HALF_UP))

    daily: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    prod: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    cust: dict[str, list[Any]] = {}
    for r in counted:
        d = daily[(r["order_ts"].date().isoformat(), r["country"])]
        d[0] += 1
        d[1] += r["amount_usd"]
        p = prod[(r["product_id"], products[r["product_id"].upper()][2])]
        p[0] += r["quantity"]
        p[1] += r["amount_usd"]
        c = cust.setdefault(r["customer_id"], [0, Decimal(0), r["order_ts"], r["order_ts"]])
        c[0] += 1
        c[1] += r["amount_usd"]
        c[2] = min(c[2], r["order_ts"])
        c[3] = max(c[3], r["order_ts"])
    return {
        "silver_orders": {k: v[2] for k, v in current.items()},
        "rejected": rejected,
        "valid": valid,
        "superseded": superseded,
        "daily_revenue": sorted([k[0], k[1], str(v[0]), money(v[1])] for k, v in daily.items()),
        "product_sales": sorted([k[0], k[1], str(v[0]), money(v[1])] for k, v in prod.items()),
        "customer_ltv": sorted(
            [k, str(v[0]), money(v[1]), v[2].strftime("%Y-%m-%d %H:%M:%S+00"), v[3].strftime("%Y-%m-%d %H:%M:%S+00")]
            for k, v in cust.items()
        ),
    }


def write_files(landing: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (landing / name).write_text(text, encoding="utf-8")
