"""The medallion pipeline on DuckDB."""
