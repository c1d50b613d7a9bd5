"""Hypothesis strategies shared by the test files: generated secrets and the names that hold them."""

from __future__ import annotations

import string

from hypothesis import strategies as st

__all__ = ["SECRET", "SECRET_NAME"]

# a secret as they come: letters, digits and URL-safe marks, with a letter and a digit so that it cannot
# occur by chance in a reply (no "0000000000")
SECRET = st.text(string.ascii_letters + string.digits + "-_.~", min_size=10, max_size=40).filter(
    lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s) and s.strip("-_.~") == s
)
# a name that says it holds a secret, spelt as environments, headers and flags spell them
SECRET_NAME = st.builds(
    lambda prefix, word: f"{prefix}{word}",
    st.sampled_from(["", "DB_", "APP_", "x-", "my", "GITHUB_", "AWS_"]),
    st.sampled_from(
        [
            "PASSWORD",
            "PASS",
            "TOKEN",
            "SECRET",
            "API_KEY",
            "ApiKey",
            "Auth-Token",
            "Authorization",
            "ACCESS_KEY",
            "PRIVATE_KEY",
            "CREDENTIALS",
            "COOKIE",
            "DSN",
            "Pwd",
        ]
    ),
)
