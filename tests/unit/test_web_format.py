"""How the dashboard writes numbers: exact and grouped in tables, compact on key-figure cards."""

from __future__ import annotations

from foss_supervisor.web.responder import kpi_number, number_cell


def test_number_cells_are_grouped_and_exact() -> None:
    assert number_cell("12345678901234567.89") == "12,345,678,901,234,567.89"
    assert number_cell("-9007199254740993") == "-9,007,199,254,740,993"
    assert number_cell("952.70") == "952.70"
    assert (number_cell(1234567), number_cell(0.1234567), number_cell(2.5), number_cell(-0.0000001)) == (
        "1,234,567",
        "0.123457",
        "2.5",
        "0",
    )
    assert number_cell("n/a") == "n/a"


def test_key_figures_fit_a_card() -> None:
    assert (
        kpi_number(999_999.5),
        kpi_number(3_211_885.1),
        kpi_number(110_254_210.24),
        kpi_number(3_400_000_000),
        kpi_number(373),
    ) == ("999,999.50", "3.21 M", "110.25 M", "3.40 B", "373")
