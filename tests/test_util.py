"""The shared helpers: masking credentials, JSON-safe numbers, atomic writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from admtune.util import atomic_write, json_safe, mask

# Printable passwords, '@' included (the last '@' before the host ends the password).
SECRET = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "P", "S"),
                                        blacklist_characters="/&"),
                 min_size=1, max_size=20).filter(lambda s: "***" not in s)


@given(user=st.from_regex(r"[a-z]{1,8}", fullmatch=True), pw=SECRET)
def test_a_url_password_never_survives_masking(user, pw):
    for url in (f"postgresql+psycopg2://{user}:{pw}@db.example:5432/study",
                f"postgresql://{user}@host/db?sslmode=require&password={pw}",
                f"postgresql://{user}@host/db?sslpassword={pw}"):
        masked = mask(f"admtune study quick --storage {url} --seeds 3")
        assert f":{pw}@" not in masked and f"password={pw}" not in masked
        assert "***" in masked and masked.endswith("--seeds 3")


@pytest.mark.parametrize("text", ["sqlite:///reports/quick/study.db", "admtune study quick",
                                  "postgresql://alice@host/db"])
def test_text_without_credentials_is_unchanged(text):
    assert mask(text) == text


def test_json_safe_matches_what_json_can_hold():
    data = {"a": np.float64("nan"), "b": [1, np.int64(2), math.inf, (np.bool_(True), 0.5)],
            3: np.array([1.0, -np.inf])}
    out = json_safe(data)
    assert out == {"a": None, "b": [1, 2, None, [True, 0.5]], "3": [1.0, None]}
    json.dumps(out, allow_nan=False)  # raises if anything non-finite were left


def test_atomic_write_replaces_whole_files(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write(p, "one")
    atomic_write(p, b"two")
    assert p.read_text() == "two" and [q.name for q in tmp_path.iterdir()] == ["f.txt"]
