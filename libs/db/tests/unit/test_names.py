import pytest
from trademesh_db.migrate import _dbmate_url
from trademesh_db.pool import check_identifier, check_role_name, check_schema_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["risk", "market_data", "t_0a1b"])
def test_plain_schema_names_are_accepted(name: str) -> None:
    assert check_schema_name(name) == name


@pytest.mark.parametrize("name", ["", "Risk", "risk; drop table x", "1risk", "a-b", "x" * 64])
def test_unsafe_schema_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        check_schema_name(name)


def test_dbmate_url_sets_search_path_and_disables_tls_on_loopback() -> None:
    url = _dbmate_url("postgresql://u:p@127.0.0.1:5432/db", "risk")
    assert url == "postgres://u:p@127.0.0.1:5432/db?search_path=risk&sslmode=disable"


def test_dbmate_url_keeps_tls_settings_for_remote_hosts() -> None:
    url = _dbmate_url("postgresql://u@db.example:5432/db?sslmode=require", "risk")
    assert url == "postgres://u@db.example:5432/db?sslmode=require&search_path=risk"


@pytest.mark.parametrize("name", ["", "Writer", 'w" ; RESET ROLE; --', "1w", "a-b", "x" * 64])
def test_unsafe_role_names_are_refused_before_connecting(name: str) -> None:
    with pytest.raises(ValueError, match="invalid role name"):
        check_role_name(name)


@pytest.mark.parametrize("name", ["", "Inbox", "inbox; drop table x", "sent_at)", "a-b", "x" * 64])
def test_unsafe_table_and_column_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid SQL identifier"):
        check_identifier(name)
