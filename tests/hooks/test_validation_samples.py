"""``samples="hashed"``: sample values leave the task as HMAC-SHA256 fingerprints keyed by a secret salt of the
store, which no summary, XCom value, status report or export shows, and which nobody can change."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from sqlalchemy import text

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.validation_results import sample_key
from tests.hooks.validation_helpers import ROWS, SUITE, events

pytestmark = pytest.mark.integration


def _hmac(key: bytes, value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()
    return "hmac-sha256:" + hmac.new(key, canonical, hashlib.sha256).hexdigest()[:16]


def test_each_store_has_its_own_secret_salt_that_cannot_be_changed(store, store_url: str, tmp_path) -> None:
    key = sample_key(store)
    assert isinstance(key, bytes) and len(key) == 32
    again = IntegrityStore(StoreLocation.from_url(store_url))
    assert sample_key(again) == key  # stored, not made up per process
    again.engine.dispose()

    other = IntegrityStore(StoreLocation.from_url(f"sqlite:///{tmp_path / 'other.db'}"))
    other.migrate()
    assert sample_key(other) != key  # random per store
    other.engine.dispose()

    for statement in (
        "UPDATE integrity_validation_secret SET sample_salt = 'x'",
        "DELETE FROM integrity_validation_secret",
    ):
        with pytest.raises(Exception, match="cannot be changed"), store.begin() as conn:
            conn.execute(text(statement))
    assert sample_key(store) == key
    assert key.hex() not in json.dumps(store.describe().as_dict())


@pytest.mark.requirement("hipaa.164.312c1")
def test_hashed_samples_are_keyed_by_the_store_salt_and_never_show_it(store_conn_env: str) -> None:
    hook = IntegrityCheckHook()
    run = hook.validate_data(ROWS, SUITE, samples="hashed", business_key="intake-7")
    key = sample_key(hook.get_store())
    by_column = {f["column"]: f for f in run.summary["failures"]}
    assert by_column["age"]["samples"] == [_hmac(key, 150)]
    assert by_column["email"]["samples"] == [_hmac(key, "no-mail")]
    # Without the salt the sample is not the plain SHA-256 anyone could compute by trying every age.
    assert by_column["age"]["samples"][0][-16:] != hashlib.sha256(b"150").hexdigest()[:16]

    stored = hook.get_validation_result(run.result_id)
    assert stored is not None and stored.summary == run.summary
    exported = json.dumps([event.as_dict() for event in events(store_conn_env)], default=str)
    assert "intake-7" in exported
    for shown in (json.dumps(run.summary), exported, json.dumps(hook.get_store().describe().as_dict())):
        assert key.hex() not in shown and "no-mail" not in shown
