"""The client's codes are the Go registry's (wire/codes.go): a code the
Go side added and this client lacked reached users as a bare number
(code 25, forbidden, was added to Go first)."""

import re

import pocket
from pocket import errors

from conftest import REPO

_GO_CODE = re.compile(r"^\tCode(\w+)\s+Code = (\d+)", re.M)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).upper()


def go_codes() -> dict[str, int]:
    return {_snake(n): int(v) for n, v in _GO_CODE.findall((REPO / "wire" / "codes.go").read_text())}


def test_every_go_code_is_a_client_code():
    codes = go_codes()
    assert len(codes) >= 26, codes  # the parse found the registry
    for name, num in codes.items():
        assert pocket.Code[name] == num, name


def test_forbidden_is_its_own_error():
    e = errors.error_for(pocket.Code.FORBIDDEN, "job-profile needs the role operator or client")
    assert type(e) is pocket.Forbidden and e.code is pocket.Code.FORBIDDEN
    assert not isinstance(e, pocket.BadToken) and str(e).startswith("pocket: forbidden: ")
